import { spawnSync } from "node:child_process";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Code, createContext, ServiceError } from "@svckit/endpoint";
import {
  createJsonLogger,
  createRedactor,
  defaultRedactKeys,
  type JsonLoggerOptions,
  type LogFields,
  logging,
} from "@svckit/log";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import winston from "winston";
import { flushAllOnExit, isoTime, numberJson, onProcessExit } from "./json-logger.js";
import { capture } from "./test-helpers.js";
import { createWinstonLogger } from "./winston.js";

type Record_ = Record<string, unknown>;

/**
 * A stream that holds every write until `release()` (its highWaterMark is 1 byte, so each write
 * returns false): a destination that does not keep up.
 */
function heldStream(): { stream: Writable; chunks: string[]; release: () => void } {
  const chunks: string[] = [];
  let held: (() => void)[] | undefined = [];
  const stream = new Writable({
    decodeStrings: false,
    highWaterMark: 1,
    write(chunk: string | Buffer, _encoding, callback) {
      chunks.push(String(chunk));
      if (held === undefined) callback();
      else held.push(() => callback());
    },
  });
  const release = (): void => {
    const waiting = held ?? [];
    held = undefined;
    for (const callback of waiting) callback();
  };
  return { stream, chunks, release };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const quiet: JsonLoggerOptions = { timestamp: false };

afterEach(() => {
  vi.restoreAllMocks();
});

describe("createJsonLogger: lines", () => {
  it("writes level, timestamp, message, base fields and fields as one JSON object per line", async () => {
    const out = capture();
    const logger = createJsonLogger({ destination: out.stream, base: { service: "addsvc", pid: 7 } });
    const before = Date.now();
    logger.log("info", "listening", { port: 8080, tls: false, tags: ["a", "b"], nested: { x: null } });
    await logger.flush();
    const [line] = out.lines();
    expect(line).toMatch(
      /^\{"level":"info","timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","message":"listening","service":"addsvc","pid":7,"port":8080,/,
    );
    const record = JSON.parse(line as string) as Record_;
    expect(record).toEqual({
      level: "info",
      timestamp: expect.any(String),
      message: "listening",
      service: "addsvc",
      pid: 7,
      port: 8080,
      tls: false,
      tags: ["a", "b"],
      nested: { x: null },
    });
    const time = Date.parse(record.timestamp as string);
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
  });

  it("writes the timestamp as epoch milliseconds, or not at all", async () => {
    const out = capture();
    const epoch = createJsonLogger({ destination: out.stream, timestamp: "epoch" });
    const none = createJsonLogger({ destination: out.stream, timestamp: false });
    const before = Date.now();
    epoch.log("info", "a", {});
    none.log("info", "b", { timestamp: "mine" });
    await Promise.all([epoch.flush(), none.flush()]);
    const [a, b] = out.records();
    expect(a?.timestamp).toBeTypeOf("number");
    expect(a?.timestamp).toBeGreaterThanOrEqual(before);
    expect(b).toEqual({ level: "info", message: "b", timestamp: "mine" });
  });

  it("keeps its own level, message and timestamp when the fields name them", async () => {
    const out = capture();
    const logger = createJsonLogger({
      destination: out.stream,
      base: { level: "x", message: "y", env: "prod" },
    });
    logger.log("warn", "real", { level: "fake", message: "fake", timestamp: "fake", ok: 1 });
    await logger.flush();
    const [line] = out.lines();
    expect(line?.match(/"level"/g)).toHaveLength(1);
    expect(line?.match(/"message"/g)).toHaveLength(1);
    expect(line?.match(/"timestamp"/g)).toHaveLength(1);
    expect(JSON.parse(line as string)).toEqual({
      level: "warn",
      timestamp: expect.not.stringMatching("fake"),
      message: "real",
      env: "prod",
      ok: 1,
    });
  });

  it("lets a line's fields replace base fields, without writing a key twice", async () => {
    const out = capture();
    const logger = createJsonLogger({
      ...quiet,
      destination: out.stream,
      base: { service: "a", env: "prod" },
    });
    logger.log("info", "m", { env: "dev", n: 1 });
    logger.log("info", "m", { n: 2 });
    await logger.flush();
    expect(out.lines()).toEqual([
      '{"level":"info","message":"m","service":"a","env":"dev","n":1}',
      '{"level":"info","message":"m","service":"a","env":"prod","n":2}',
    ]);
  });

  it("makes children that add fields and share the buffer", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream, base: { service: "a" } });
    const child = logger.child({ instance: 2 }).child({ instance: 3, region: "eu" });
    child.log("info", "up", { port: 1 });
    logger.log("info", "root", {});
    await child.flush();
    expect(out.chunks).toHaveLength(1);
    expect(out.records()).toEqual([
      { level: "info", message: "up", service: "a", instance: 3, region: "eu", port: 1 },
      { level: "info", message: "root", service: "a" },
    ]);
    expect(child.level).toBe("info");
  });

  it("writes only the enabled levels, and says which they are", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream, level: "warn" });
    for (const level of ["debug", "info", "warn", "error"] as const) logger.log(level, level, {});
    logger.log("verbose" as "info", "unknown level", {});
    await logger.flush();
    expect(out.records().map((r) => r.message)).toEqual(["warn", "error"]);
    expect(logger.level).toBe("warn");
    expect(["debug", "info", "warn", "error", "nope"].map((l) => logger.isLevelEnabled(l as "info"))).toEqual(
      [false, false, true, true, false],
    );
    const all = createJsonLogger({ destination: out.stream, level: "debug" });
    expect(all.isLevelEnabled("debug")).toBe(true);
    expect(createJsonLogger({ destination: out.stream }).isLevelEnabled("debug")).toBe(false);
  });

  it("writes values as JSON.stringify does, bigints as strings, and leaves out what JSON leaves out", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream, redact: false });
    const date = new Date("2025-01-01T00:00:00.000Z");
    logger.log("info", "values", {
      nan: Number.NaN,
      inf: Number.POSITIVE_INFINITY,
      negInf: Number.NEGATIVE_INFINITY,
      negZero: -0,
      big: 12345678901234567890n,
      nestedBig: [1n],
      date,
      badDate: new Date(Number.NaN),
      undef: undefined,
      fn: () => 1,
      sym: Symbol("s"),
      array: [undefined, () => 1, Symbol("s"), 1],
      map: new Map<unknown, unknown>([
        ["a", 1],
        [2, "b"],
      ]),
      set: new Set([1, "x"]),
      bytes: Buffer.from("abc"),
      typed: new Uint16Array(4),
      custom: { toJSON: () => ({ replaced: true }) },
      gone: { toJSON: () => undefined },
      nullProto: Object.assign(Object.create(null) as object, { a: 1 }),
    });
    await logger.flush();
    expect(out.records()[0]).toEqual({
      level: "info",
      message: "values",
      nan: null,
      inf: null,
      negInf: null,
      negZero: 0,
      big: "12345678901234567890",
      nestedBig: ["1"],
      date: "2025-01-01T00:00:00.000Z",
      badDate: null,
      array: [null, null, null, 1],
      map: { a: 1, 2: "b" },
      set: [1, "x"],
      bytes: "[3 bytes]",
      typed: "[8 bytes]",
      custom: { replaced: true },
      nullProto: { a: 1 },
    });
  });

  it("escapes strings so every line is valid JSON: quotes, backslashes, control characters, lone surrogates", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream, redact: false });
    const nasty = [
      'say "hi"',
      "back\\slash",
      "new\nline\r\t\u0000\u001f",
      "\ud800 lone",
      "lone \udfff",
      "😀 pair",
      "\u2028",
    ];
    const long = `${"x".repeat(100)}"\n${"\ud83d"}`;
    logger.log(
      "info",
      'message "quoted"\n',
      Object.fromEntries([...nasty, long].map((s, i) => [`${s}${i}`, s])),
    );
    await logger.flush();
    const lines = out.lines();
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0] as string) as Record_;
    expect(record.message).toBe('message "quoted"\n');
    for (const [i, s] of [...nasty, long].entries()) expect(record[`${s}${i}`]).toBe(s);
    // Lone surrogates are escaped, so the line is well-formed UTF-16 and survives UTF-8 encoding.
    expect(Buffer.from(lines[0] as string).toString("utf8")).toBe(lines[0]);
  });

  it("round-trips any JSON field values, with any strings, as JSON.stringify writes them (property)", async () => {
    const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
    const weird = fc.oneof(fc.string(), fc.string({ unit: anyUnit }), fc.string({ unit: "binary" }));
    const value = fc.letrec((tie) => ({
      json: fc.oneof(
        { depthSize: "small" },
        weird,
        fc.double(),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie("json"), { maxLength: 4 }),
        fc.dictionary(weird, tie("json"), { maxKeys: 4 }),
      ),
    })).json;
    const reserved = new Set(["level", "message", "timestamp"]);
    await fc.assert(
      fc.asyncProperty(weird, fc.dictionary(weird, value, { maxKeys: 8 }), async (message, fields) => {
        const out = capture();
        const logger = createJsonLogger({ destination: out.stream, redact: false, timestamp: false });
        logger.log("error", message, fields);
        await logger.flush();
        const lines = out.lines();
        expect(lines).toHaveLength(1);
        const own = Object.fromEntries(Object.entries(fields).filter(([k]) => !reserved.has(k)));
        const expected = JSON.parse(JSON.stringify({ level: "error", message, ...own })) as unknown;
        expect(JSON.parse(lines[0] as string)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it("writes one valid JSON line for anything, never throwing (property)", async () => {
    const anything = fc.anything({
      maxDepth: 3,
      withBigInt: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withTypedArray: true,
      withNullPrototype: true,
      withSparseArray: true,
      withBoxedValues: true,
    });
    for (const redact of [false, undefined] as const) {
      await fc.assert(
        fc.asyncProperty(fc.dictionary(fc.string(), anything, { maxKeys: 6 }), async (fields) => {
          const out = capture();
          const logger = createJsonLogger({ destination: out.stream, redact });
          expect(() => logger.log("info", "m", fields as LogFields)).not.toThrow();
          await logger.flush();
          const lines = out.lines();
          expect(lines).toHaveLength(1);
          expect((JSON.parse(lines[0] as string) as Record_).message).toBe("m");
        }),
        { numRuns: 150 },
      );
    }
  });
});

describe("createJsonLogger: errors, cycles and hostile values", () => {
  it("writes errors as name, message, code, stack, their own fields and cause", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream, redact: false });
    const cause = Object.assign(new Error("connection refused"), { code: "ECONNREFUSED" });
    const error = new TypeError("lookup failed", { cause });
    Object.assign(error, { userId: 42 });
    logger.log("error", "failed", { error, nested: { list: [new RangeError("r")] } });
    await logger.flush();
    const record = out.records()[0] as Record_;
    expect(record.error).toEqual({
      name: "TypeError",
      message: "lookup failed",
      stack: error.stack,
      userId: 42,
      cause: { name: "Error", message: "connection refused", code: "ECONNREFUSED", stack: cause.stack },
    });
    expect(record.nested).toEqual({
      list: [{ name: "RangeError", message: "r", stack: expect.any(String) }],
    });
  });

  it("writes errors the same with redaction on (scrubbing their strings)", async () => {
    const out = capture();
    const redacting = createJsonLogger({ ...quiet, destination: out.stream });
    const plain = createJsonLogger({ ...quiet, destination: out.stream, redact: false });
    const error = Object.assign(new Error("no"), { code: 7, status: 500 });
    redacting.log("error", "x", { error });
    plain.log("error", "x", { error });
    await Promise.all([redacting.flush(), plain.flush()]);
    const [a, b] = out.records();
    expect(a).toEqual(b);
    const secret = new Error("auth with Bearer abcdefghij failed");
    redacting.log("error", "x", { error: secret });
    await redacting.flush();
    expect(out.records()[2]?.error).toMatchObject({ message: "auth with Bearer [REDACTED] failed" });
  });

  it("survives cycles, with and without redaction", async () => {
    const out = capture();
    const loop: Record_ = { name: "loop" };
    loop.self = loop;
    const list: unknown[] = [1];
    list.push(list);
    const shared = { n: 1 };
    for (const redact of [false, undefined] as const) {
      const logger = createJsonLogger({ ...quiet, destination: out.stream, redact });
      logger.log("info", "cycle", { loop, list, twice: [shared, shared] });
      await logger.flush();
    }
    const [plain, redacted] = out.records();
    for (const record of [plain, redacted]) {
      expect(record).toEqual({
        level: "info",
        message: "cycle",
        loop: { name: "loop", self: "[Circular]" },
        list: [1, "[Circular]"],
        twice: [{ n: 1 }, { n: 1 }],
      });
    }
  });

  it("never throws from log: throwing toJSON, getters and proxies become [Unreadable]", async () => {
    const out = capture();
    const hostile = {
      toJSON() {
        throw new Error("toJSON broke");
      },
    };
    const getter = Object.defineProperty({ ok: 1 }, "bad", {
      enumerable: true,
      get() {
        throw new Error("getter broke");
      },
    });
    const proxy = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error("ownKeys broke");
        },
      },
    );
    const badToString = {
      toString() {
        throw new Error("toString broke");
      },
    };
    for (const redact of [false, undefined] as const) {
      const logger = createJsonLogger({ ...quiet, destination: out.stream, redact });
      expect(() =>
        logger.log("info", "hostile", { hostile, getter, proxy, after: "still here" }),
      ).not.toThrow();
      expect(() => logger.log("info", badToString as unknown as string, {})).not.toThrow();
      expect(() => logger.log("info", "top-level getter", getter)).not.toThrow();
      expect(() => logger.log("info", "fields are a proxy", proxy as LogFields)).not.toThrow();
      expect(() => logger.log("info", "no fields", undefined as unknown as LogFields)).not.toThrow();
      await logger.flush();
    }
    const records = out.records();
    expect(records.slice(0, 5)).toEqual([
      {
        level: "info",
        message: "hostile",
        hostile: "[Unreadable]",
        getter: { ok: 1, bad: "[Unreadable]" },
        proxy: "[Unreadable]",
        after: "still here",
      },
      { level: "info", message: "[Unreadable]" },
      { level: "info", message: "top-level getter", ok: 1, bad: "[Unreadable]" },
      { level: "info", message: "fields are a proxy", fields: "[Unreadable]" },
      { level: "info", message: "no fields" },
    ]);
    // Redacted, the same values read the same way.
    expect(records.slice(5)).toEqual(records.slice(0, 5));
  });

  it("cuts nesting deeper than 32 levels", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream, redact: false });
    let deep: Record_ = { bottom: true };
    for (let i = 0; i < 40; i++) deep = { d: deep };
    logger.log("info", "deep", { deep });
    await logger.flush();
    expect(out.lines()[0]).toContain('"[Depth limit]"');
    expect(() => JSON.parse(out.lines()[0] as string)).not.toThrow();
  });
});

describe("createJsonLogger: redaction", () => {
  it("redacts sensitive fields at any depth, credentials in strings and the message, by default", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream, base: { apiKey: "base-secret" } });
    logger.log("info", "login with Bearer abcdefghij", {
      user: "ada",
      password: "hunter2",
      headers: { Authorization: "Basic QWxhZGRpbjpvcGVu", accept: "*/*" },
      note: "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here",
    });
    await logger.flush();
    expect(out.records()[0]).toEqual({
      level: "info",
      message: "login with Bearer [REDACTED]",
      apiKey: "[REDACTED]",
      user: "ada",
      password: "[REDACTED]",
      headers: { Authorization: "[REDACTED]", accept: "*/*" },
      note: "token [REDACTED] here",
    });
  });

  it("takes redaction options, or none", async () => {
    const out = capture();
    const custom = createJsonLogger({
      ...quiet,
      destination: out.stream,
      redact: { keys: ["ssn"], censor: "<x>" },
    });
    const off = createJsonLogger({ ...quiet, destination: out.stream, redact: false });
    custom.log("info", "m", { ssn: "123", password: "p" });
    off.log("info", "Bearer abcdefghij", { password: "p" });
    await Promise.all([custom.flush(), off.flush()]);
    expect(out.records()).toEqual([
      { level: "info", message: "m", ssn: "<x>", password: "p" },
      { level: "info", message: "Bearer abcdefghij", password: "p" },
    ]);
  });

  it("writes what the winston logger writes, redacted the same way (property)", async () => {
    const sensitiveKey = fc.constantFrom(...defaultRedactKeys, "Authorization", "accessToken", "X_API_KEY");
    const text = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.string({ minLength: 4, maxLength: 12 }).map((s) => `Bearer ${s}x`),
      fc.constant("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
    );
    const key = fc.oneof(sensitiveKey, fc.string({ maxLength: 8 }));
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small" },
        text,
        fc.integer(),
        fc.double(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie("node"), { maxLength: 3 }),
        fc.dictionary(key, tie("node"), { maxKeys: 3 }),
      ),
    })).node;
    const reserved = new Set(["level", "message", "timestamp", "stack", "__proto__"]);
    const fieldsArb = fc
      .dictionary(key, value, { maxKeys: 6 })
      .map((f) => Object.fromEntries(Object.entries(f).filter(([k]) => !reserved.has(k))));
    await fc.assert(
      fc.asyncProperty(
        text.filter((m) => !m.includes("%")),
        fieldsArb,
        async (message, fields) => {
          const json = capture();
          const winstonLines: string[] = [];
          const transport = new winston.transports.Stream({
            stream: new Writable({
              objectMode: true,
              write(info: Record<string | symbol, unknown>, _encoding, callback) {
                winstonLines.push(String(info[Symbol.for("message")]));
                callback();
              },
            }),
          });
          const viaWinston = createWinstonLogger({ transports: [transport] });
          const viaJson = createJsonLogger({ destination: json.stream });
          viaWinston.log("warn", message, fields);
          viaJson.log("warn", message, fields);
          await viaJson.flush();
          await turn();
          const ours = json.records()[0] as Record_;
          const theirs = JSON.parse(winstonLines[0] as string) as Record_;
          expect({ ...ours, timestamp: 0 }).toEqual({ ...theirs, timestamp: 0 });
          expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
        },
      ),
      { numRuns: 150 },
    );
  });

  it("gets the logging middleware's lines, already redacted, to the same result", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream });
    const endpoint = logging({ logger, name: "sum", metadata: ["authorization", "user-agent"] })(
      async (_ctx, fail: boolean) => {
        if (fail) throw new ServiceError(Code.INVALID_ARGUMENT, "a must be a number");
        return 3;
      },
    );
    const ctx = createContext({
      metadata: { authorization: "Bearer s3cr3t-t0k3n", "user-agent": "curl/8.5.0" },
      callInfo: { transport: "http", method: "POST", route: "/sum" },
    });
    await endpoint(ctx, false);
    await endpoint(ctx, true).catch(() => undefined);
    await logger.flush();
    expect(out.records()).toEqual([
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
        metadata: { authorization: "[REDACTED]", "user-agent": "curl/8.5.0" },
      },
      expect.objectContaining({ level: "warn", code: "INVALID_ARGUMENT", error: "a must be a number" }),
    ]);
    expect(out.chunks.join("")).not.toContain("s3cr3t");
  });

  it("redacts base and child fields once, when they are made", async () => {
    const out = capture();
    const logger = createJsonLogger({ ...quiet, destination: out.stream, base: { token: "t" } });
    logger.child({ secret: "s", ok: true }).log("info", "m", {});
    await logger.flush();
    expect(out.records()[0]).toEqual({
      level: "info",
      message: "m",
      token: "[REDACTED]",
      secret: "[REDACTED]",
      ok: true,
    });
    expect(createRedactor()({ token: "t" })).toEqual({ token: "[REDACTED]" });
  });
});

describe("createJsonLogger: batching, backpressure, flush and close", () => {
  it("writes a turn's lines in one write, at the end of the turn", async () => {
    const out = capture();
    const logger = createJsonLogger({ destination: out.stream });
    for (let i = 0; i < 500; i++) logger.log("info", "line", { i });
    expect(out.chunks).toHaveLength(0);
    await turn();
    expect(out.chunks).toHaveLength(1);
    expect(out.records().map((r) => r.i)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it("writes at once when 64 KiB have gathered, so many lines take few writes", async () => {
    const out = capture();
    const logger = createJsonLogger({ destination: out.stream });
    const padding = "x".repeat(200);
    for (let i = 0; i < 5000; i++) logger.log("info", "line", { i, padding });
    const written = out.chunks.length;
    await logger.flush();
    const total = out.chunks.join("").length;
    expect(written).toBeGreaterThan(0);
    expect(out.chunks.length).toBeLessThanOrEqual(Math.ceil(total / 65536) + 1);
    expect(out.records()).toHaveLength(5000);
  });

  it("keeps lines while the stream wants to drain, up to maxBufferBytes, then drops and counts them", async () => {
    const held = heldStream();
    const logger = createJsonLogger({
      ...quiet,
      destination: held.stream,
      maxBufferBytes: 1000,
      redact: false,
    });
    logger.log("info", "first", {});
    await logger.flush(); // handed over; the stream said "wait for drain"
    expect(held.chunks).toHaveLength(1);
    const line = '{"level":"info","message":"line 000"}\n';
    for (let i = 0; i < 100; i++) logger.log("info", `line ${String(i).padStart(3, "0")}`, {});
    const fit = Math.floor(1000 / line.length);
    expect(logger.dropped).toBe(100 - fit);
    await turn();
    expect(held.chunks).toHaveLength(1); // nothing written while the stream has not drained

    let flushed = false;
    const flushing = logger.flush().then(() => {
      flushed = true;
    });
    await turn();
    expect(flushed).toBe(false);
    held.release();
    await flushing;
    expect(held.chunks).toHaveLength(2);
    const batch = held.chunks[1] as string;
    const lines = batch.trimEnd().split("\n");
    expect(lines).toHaveLength(fit + 1);
    expect(lines.slice(0, fit).map((l) => (JSON.parse(l) as Record_).message)).toEqual(
      Array.from({ length: fit }, (_, i) => `line ${String(i).padStart(3, "0")}`),
    );
    expect(batch.length - (lines[fit] as string).length - 1).toBeLessThanOrEqual(1000);
    expect(JSON.parse(lines[fit] as string)).toEqual({
      level: "warn",
      message: "dropped log lines: the destination did not keep up",
      droppedLines: 100 - fit,
    });
    logger.log("info", "after", {});
    await logger.flush();
    expect(held.chunks[2]).toBe('{"level":"info","message":"after"}\n');
    expect(logger.dropped).toBe(100 - fit);
  });

  it("flush resolves at once when nothing is buffered", async () => {
    const logger = createJsonLogger({ destination: capture().stream });
    await expect(logger.flush()).resolves.toBeUndefined();
  });

  it("close waits until the stream has written everything, drops later lines and leaves the stream open", async () => {
    const held = heldStream();
    const logger = createJsonLogger({ ...quiet, destination: held.stream });
    logger.log("info", "one", {});
    let closed = false;
    const closing = logger.close().then(() => {
      closed = true;
    });
    await turn();
    await turn();
    expect(held.chunks).toEqual(['{"level":"info","message":"one"}\n']);
    expect(closed).toBe(false); // the stream has not finished the write yet
    held.release();
    await closing;
    logger.log("info", "too late", {});
    await logger.flush();
    expect(logger.dropped).toBe(1);
    expect(held.chunks).toHaveLength(1);
    expect(held.stream.writable).toBe(true);
    expect(held.stream.listenerCount("error")).toBe(0);
    expect(logger.close()).toBe(logger.close());
    await logger[Symbol.asyncDispose]();
  });
});

describe("createJsonLogger: file destinations", () => {
  it("writes to a file descriptor, synchronously per batch, and leaves it open", async () => {
    const dir = await mkdtemp(join(tmpdir(), "svckit-json-logger-"));
    const fd = openSync(join(dir, "fd.log"), "w");
    try {
      const logger = createJsonLogger({ ...quiet, destination: fd });
      logger.log("info", "one", { n: 1 });
      logger.log("info", "two", { n: 2 });
      expect(readFileSync(join(dir, "fd.log"), "utf8")).toBe("");
      await logger.flush();
      expect(readFileSync(join(dir, "fd.log"), "utf8")).toBe(
        '{"level":"info","message":"one","n":1}\n{"level":"info","message":"two","n":2}\n',
      );
      await logger.close();
      expect(() => fstatSync(fd)).not.toThrow();
    } finally {
      closeSync(fd);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("appends to a path, which close() closes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "svckit-json-logger-"));
    const path = join(dir, "app.log");
    try {
      const first = createJsonLogger({ ...quiet, destination: path });
      first.log("info", "one", {});
      await first.close();
      const second = createJsonLogger({ ...quiet, destination: path });
      second.log("info", "two", {});
      await second.close();
      expect(readFileSync(path, "utf8")).toBe(
        '{"level":"info","message":"one"}\n{"level":"info","message":"two"}\n',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("writes what is buffered when the process exits, and unhooks on close", async () => {
    const dir = await mkdtemp(join(tmpdir(), "svckit-json-logger-"));
    const path = join(dir, "exit.log");
    try {
      const logger = createJsonLogger({ ...quiet, destination: path });
      expect(process.listeners("exit")).toContain(onProcessExit);
      logger.log("error", "crashing", { code: 1 });
      flushAllOnExit(); // what process.on("exit") runs, synchronously
      expect(readFileSync(path, "utf8")).toBe('{"level":"error","message":"crashing","code":1}\n');
      await logger.close();
      expect(process.listeners("exit")).not.toContain(onProcessExit);
      expect(readFileSync(path, "utf8")).toBe('{"level":"error","message":"crashing","code":1}\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("writes a line an exit listener logs after its own, in a real process exit", async () => {
    const dir = await mkdtemp(join(tmpdir(), "svckit-json-logger-"));
    const path = join(dir, "exit.log");
    const entry = new URL("../dist/index.js", import.meta.url).href;
    // The app's exit listener is added after the logger's (which the first logger adds), so it runs
    // after the logger flushed: no event-loop turn is left to write its line in.
    const script = [
      `import { createJsonLogger } from ${JSON.stringify(entry)};`,
      "const logger = createJsonLogger({ destination: process.argv[1], timestamp: false });",
      'logger.log("info", "started", {});',
      'process.on("exit", (code) => logger.log("info", "exiting", { code }));',
      "process.exitCode = 3;",
    ].join("\n");
    try {
      const child = spawnSync(process.execPath, ["--input-type=module", "-e", script, path], {
        timeout: 10_000,
        encoding: "utf8",
      });
      expect(child.stderr).toBe("");
      expect(child.status).toBe(3);
      expect(readFileSync(path, "utf8")).toBe(
        '{"level":"info","message":"started"}\n{"level":"info","message":"exiting","code":3}\n',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("does not hook process exit for other streams", async () => {
    const logger = createJsonLogger({ destination: capture().stream });
    expect(process.listeners("exit")).not.toContain(onProcessExit);
    await logger.close();
  });
});

describe("createJsonLogger: write errors", () => {
  it("reports the first error once, never throws, and drops later lines", async () => {
    const onError = vi.fn();
    const stream = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error("disk full"));
      },
    });
    const logger = createJsonLogger({ destination: stream, onError });
    logger.log("info", "one", {});
    logger.log("info", "two", {});
    await logger.flush();
    await turn();
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]?.[0]).toEqual(new Error("disk full"));
    expect(() => logger.log("info", "three", {})).not.toThrow();
    await logger.flush();
    stream.emit("error", new Error("again"));
    expect(onError).toHaveBeenCalledTimes(1);
    expect(logger.dropped).toBe(1);
    await logger.close();
  });

  it("warns through process.emitWarning by default, and survives a throwing onError", async () => {
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => undefined);
    const failing = (): Writable =>
      new Writable({
        write(_chunk, _encoding, callback) {
          callback(new Error("EPIPE"));
        },
      });
    const logger = createJsonLogger({ destination: failing() });
    logger.log("info", "x", {});
    await logger.flush();
    await turn();
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]).toEqual([
      "@svckit/log: writing log lines failed, later lines are dropped: EPIPE",
      { code: "SVCKIT_LOG_WRITE_FAILED" },
    ]);
    const throwing = createJsonLogger({
      destination: failing(),
      onError: () => {
        throw new Error("handler broke");
      },
    });
    throwing.log("info", "x", {});
    await throwing.flush();
    await turn();
    await expect(throwing.close()).resolves.toBeUndefined();
    await logger.close();
  });

  it("survives a stream whose write throws", async () => {
    const onError = vi.fn();
    const stream = new Writable();
    stream.write = () => {
      throw new Error("write threw");
    };
    const logger = createJsonLogger({ destination: stream, onError });
    logger.log("info", "x", {});
    await logger.flush();
    expect(onError).toHaveBeenCalledWith(new Error("write threw"));
    expect(logger.dropped).toBe(0);
    await logger.close();
  });

  it("reports a failing file descriptor", async () => {
    const onError = vi.fn();
    const logger = createJsonLogger({ destination: 1 << 30, onError }); // no such descriptor
    logger.log("info", "x", {});
    await logger.flush();
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]?.[0]).toMatchObject({ code: "EBADF" });
    expect(logger.dropped).toBe(1);
    logger.log("info", "y", {});
    expect(logger.dropped).toBe(2);
    await logger.close();
  });
});

describe("createJsonLogger: options", () => {
  const make = (options: unknown) => () => createJsonLogger(options as JsonLoggerOptions);

  it("rejects wrong options when the logger is made", () => {
    expect(make({ level: "verbose" })).toThrow(
      new TypeError(
        'createJsonLogger: options.level must be "debug", "info", "warn" or "error", got verbose',
      ),
    );
    expect(make({ destination: {} })).toThrow(TypeError);
    expect(make({ destination: -1 })).toThrow(TypeError);
    expect(make({ destination: "" })).toThrow(TypeError);
    expect(make({ base: [1] })).toThrow(
      new TypeError("createJsonLogger: options.base must be an object of fields"),
    );
    expect(make({ timestamp: "unix" })).toThrow(TypeError);
    expect(make({ maxBufferBytes: 0 })).toThrow(RangeError);
    expect(make({ maxBufferBytes: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(make({ onError: "log" })).toThrow(TypeError);
    expect(make({ redact: true })).toThrow(TypeError);
    expect(make({ redact: { maxDepth: -1 } })).toThrow(RangeError);
    expect(make(null)).toThrow(TypeError);
  });

  it("writes to process.stdout by default", async () => {
    const write = vi
      .spyOn(process.stdout, "write")
      .mockImplementation((_chunk: unknown, callback?: unknown) => {
        if (typeof callback === "function") callback();
        return true;
      });
    const logger = createJsonLogger({ timestamp: false });
    logger.log("info", "to stdout", {});
    await logger.close();
    expect(write).toHaveBeenCalledTimes(1);
    expect(write.mock.calls[0]?.[0]).toBe('{"level":"info","message":"to stdout"}\n');
  });
});

describe("numberJson", () => {
  it("writes exactly what String(n) does, for durations and for any other number", () => {
    const milliseconds = fc
      .integer({ min: -5, max: 0x80000005 })
      .map((k) => Math.round((k / 1000) * 1000) / 1000);
    const durations = fc.double({ min: 0, max: 1e7, noNaN: true }).map((ms) => Math.round(ms * 1000) / 1000);
    fc.assert(
      fc.property(fc.oneof(milliseconds, durations, fc.double(), fc.integer()), (n) => {
        expect(numberJson(n)).toBe(Number.isFinite(n) ? String(n) : "null");
      }),
      { numRuns: 20_000 },
    );
    for (const [n, text] of [
      [0.001, "0.001"],
      [0.01, "0.01"],
      [0.1, "0.1"],
      [0.12, "0.12"],
      [1.005, "1.005"],
      [12.3, "12.3"],
      [12.04, "12.04"],
      [2147483.647, "2147483.647"],
      [2147483.648, "2147483.648"],
      [-0, "0"],
      [-1.5, "-1.5"],
      [1e21, "1e+21"],
      [Number.NaN, "null"],
      [Number.NEGATIVE_INFINITY, "null"],
    ] as const) {
      expect(numberJson(n), String(n)).toBe(text);
    }
  });
});

describe("isoTime", () => {
  it("writes exactly what Date#toISOString does, in and out of the cached second", () => {
    // The whole range a Date holds (±8.64e15 ms), times around the epoch and the four-digit-year edges,
    // and runs of nearby milliseconds so that the per-second prefix is reused and then replaced.
    const MAX = 8.64e15;
    const edges = [0, -1, 1, 253402300799999, 253402300800000, -62167219200000, -62167219200001, MAX, -MAX];
    const anyTime = fc.oneof(
      fc.integer({ min: -MAX, max: MAX }),
      fc.integer({ min: -2e12, max: 5e12 }),
      fc.constantFrom(...edges),
    );
    fc.assert(
      fc.property(anyTime, fc.array(fc.integer({ min: -1500, max: 1500 }), { maxLength: 6 }), (t, steps) => {
        for (const ms of [t, ...steps.map((d) => Math.max(-MAX, Math.min(MAX, t + d)))]) {
          expect(isoTime(ms)).toBe(new Date(ms).toISOString());
        }
      }),
      { numRuns: 20_000 },
    );
    // Fractions of a millisecond are dropped toward zero, as a Date does.
    fc.assert(
      fc.property(fc.double({ min: -MAX, max: MAX, noNaN: true }), (ms) => {
        expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 5_000 },
    );
    for (const ms of [1.5, -1.5, 999.9, -0.2]) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    // Out of a Date's range it throws as toISOString does, every time (nothing stale is cached).
    for (const ms of [1e16, 1e16, Number.NaN, Number.NaN]) expect(() => isoTime(ms)).toThrow(RangeError);
    expect(isoTime(Date.UTC(2026, 11, 2, 11, 22, 33, 7))).toBe("2026-12-02T11:22:33.007Z");
    expect(isoTime(253402300800000)).toBe("+010000-01-01T00:00:00.000Z");
    expect(isoTime(-62167219200001)).toBe("-000001-12-31T23:59:59.999Z");
  });
});
