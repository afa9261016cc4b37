import { Writable } from "node:stream";
import { Code, createContext, ServiceError } from "@svckit/endpoint";
import { logging } from "@svckit/log";
import { describe, expect, it } from "vitest";
import winston from "winston";
import { createWinstonLogger, redactFormat } from "./winston.js";

/** A winston transport that keeps each written line (the formatted MESSAGE) in `lines`. */
function capture(): { transport: winston.transport; lines: string[]; records: Record<string, unknown>[] } {
  const lines: string[] = [];
  const stream = new Writable({
    objectMode: true,
    write(info: Record<string | symbol, unknown>, _encoding, callback) {
      lines.push(String(info[Symbol.for("message")]));
      callback();
    },
  });
  return {
    transport: new winston.transports.Stream({ stream }),
    lines,
    get records() {
      return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

/** Lets winston's streams pass the lines on. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("createWinstonLogger", () => {
  it("writes through a given winston logger, at the given level, with the fields", async () => {
    const out = capture();
    const base = winston.createLogger({
      level: "debug",
      format: winston.format.json(),
      transports: [out.transport],
    });
    const logger = createWinstonLogger(base);
    expect(logger.winston).toBe(base);
    logger.log("warn", "disk %s nearly full", { percent: 93, level: "fake", message: "fake" });
    logger.log("debug", "details", {});
    await flush();
    expect(out.records).toEqual([
      { level: "warn", message: "disk %s nearly full", percent: 93 },
      { level: "debug", message: "details" },
    ]);
  });

  it("tells which levels winston writes", () => {
    const logger = createWinstonLogger(
      winston.createLogger({ level: "warn", transports: [capture().transport] }),
    );
    expect(["debug", "info", "warn", "error"].map((l) => logger.isLevelEnabled(l as "info"))).toEqual([
      false,
      false,
      true,
      true,
    ]);
  });

  it("maps warn to warning for syslog levels", async () => {
    const out = capture();
    const base = winston.createLogger({
      levels: winston.config.syslog.levels,
      level: "debug",
      format: winston.format.json(),
      transports: [out.transport],
    });
    const logger = createWinstonLogger(base);
    logger.log("warn", "careful", {});
    logger.log("error", "broken", {});
    expect(logger.isLevelEnabled("warn")).toBe(true);
    await flush();
    expect(out.records.map((r) => r.level)).toEqual(["warning", "error"]);
  });

  it("makes children that add fields", async () => {
    const out = capture();
    const logger = createWinstonLogger(
      winston.createLogger({ format: winston.format.json(), transports: [out.transport] }),
    );
    const child = logger.child({ service: "addsvc" }).child({ instance: 2 });
    child.log("info", "up", { port: 8080 });
    await flush();
    expect(out.records).toEqual([
      { level: "info", message: "up", service: "addsvc", instance: 2, port: 8080 },
    ]);
    expect(child.winston).not.toBe(logger.winston);
  });

  it("builds a redacting JSON logger from options", async () => {
    const out = capture();
    const logger = createWinstonLogger({ transports: [out.transport] });
    logger.log("info", "login Bearer abcdefgh", { user: "ada", password: "hunter2", debug: "x" });
    logger.log("debug", "hidden", {});
    await flush();
    expect(out.records).toEqual([
      {
        level: "info",
        message: "login Bearer [REDACTED]",
        user: "ada",
        password: "[REDACTED]",
        debug: "x",
        timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      },
    ]);
    expect(logger.winston.level).toBe("info");
  });

  it("puts a given format after the redaction, and can leave redaction out", async () => {
    const out = capture();
    const printf = winston.format.printf(
      (info) => `${info.level} ${String(info.message)} ${String(info.token)}`,
    );
    createWinstonLogger({ transports: [out.transport], format: printf, level: "debug" }).log("debug", "m", {
      token: "t0k3n",
    });
    createWinstonLogger({ transports: [out.transport], format: printf, redact: false }).log("info", "m", {
      token: "t0k3n",
    });
    createWinstonLogger({ transports: [out.transport], format: printf, redact: { censor: "<x>" } }).log(
      "info",
      "m",
      { token: "t0k3n" },
    );
    await flush();
    expect(out.lines).toEqual(["debug m [REDACTED]", "info m t0k3n", "info m <x>"]);
  });

  it("rejects what is neither a logger nor options", () => {
    expect(() => createWinstonLogger("info" as unknown as winston.LoggerOptions)).toThrow(
      new TypeError("createWinstonLogger: expected a winston logger or winston logger options"),
    );
  });

  it("never throws from log, even when winston does", () => {
    const base = winston.createLogger({ transports: [capture().transport] });
    base.log = () => {
      throw new Error("winston broke");
    };
    base.isLevelEnabled = () => {
      throw new Error("winston broke");
    };
    const logger = createWinstonLogger(base);
    expect(() => logger.log("error", "x", {})).not.toThrow();
    expect(logger.isLevelEnabled("info")).toBe(true);
  });

  it("serves the logging middleware end to end", async () => {
    const out = capture();
    const logger = createWinstonLogger({ transports: [out.transport] });
    const endpoint = logging({ logger, name: "sum", metadata: ["authorization"] })(
      async (_ctx, fail: boolean) => {
        if (fail) throw new ServiceError(Code.INVALID_ARGUMENT, "a must be a number");
        return 3;
      },
    );
    const ctx = createContext({
      metadata: { authorization: "Bearer s3cr3t-t0k3n" },
      callInfo: { transport: "http", method: "POST", route: "/sum" },
    });
    await endpoint(ctx, false);
    await endpoint(ctx, true).catch(() => undefined);
    await flush();
    expect(out.records).toEqual([
      {
        level: "info",
        message: "served sum: OK",
        endpoint: "sum",
        kind: "server",
        transport: "http",
        method: "POST",
        route: "/sum",
        code: "OK",
        durationMs: expect.any(Number),
        metadata: { authorization: "[REDACTED]" },
        timestamp: expect.any(String),
      },
      expect.objectContaining({
        level: "warn",
        message: "served sum: INVALID_ARGUMENT",
        code: "INVALID_ARGUMENT",
        error: "a must be a number",
      }),
    ]);
    expect(out.lines.join("\n")).not.toContain("s3cr3t");
  });
});

describe("redactFormat", () => {
  it("redacts any winston line, keeping winston's own symbols", async () => {
    const out = capture();
    const logger = winston.createLogger({
      format: winston.format.combine(redactFormat(), winston.format.splat(), winston.format.json()),
      transports: [out.transport],
    });
    logger.info("login", { user: "ada", password: "hunter2", headers: { Authorization: "Bearer abcdefgh" } });
    logger.warn("token was %s for %s", "Bearer abcdefgh", "ada", { cookie: "sid=1" });
    logger.error(new Error("failed with Basic QWxhZGRpbjpvcGVu"));
    await flush();
    expect(out.records[0]).toEqual({
      level: "info",
      message: "login",
      user: "ada",
      password: "[REDACTED]",
      headers: { Authorization: "[REDACTED]" },
    });
    expect(out.records[1]).toEqual({
      level: "warn",
      message: "token was Bearer [REDACTED] for ada",
      cookie: "[REDACTED]",
    });
    expect(out.records[2]).toMatchObject({ level: "error", message: "failed with Basic [REDACTED]" });
    expect(out.lines.join("\n")).not.toMatch(/hunter2|abcdefgh|QWxhZGRpbjpvcGVu|sid=1/);
  });

  it("does not change the objects the caller logged", async () => {
    const out = capture();
    const logger = winston.createLogger({
      format: winston.format.combine(redactFormat(), winston.format.json()),
      transports: [out.transport],
    });
    const meta = { password: "hunter2", nested: { token: "t" } };
    logger.info("x", meta);
    await flush();
    expect(meta).toEqual({ password: "hunter2", nested: { token: "t" } });
  });

  it("takes redaction options", async () => {
    const out = capture();
    const logger = winston.createLogger({
      format: winston.format.combine(redactFormat({ keys: ["ssn"], censor: "#" }), winston.format.json()),
      transports: [out.transport],
    });
    logger.info("x", { ssn: "1", password: "p" });
    await flush();
    expect(out.records).toEqual([{ level: "info", message: "x", ssn: "#", password: "p" }]);
  });
});
