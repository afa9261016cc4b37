import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  Code,
  type CodeName,
  type Context,
  codeNames,
  createContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  childLogger,
  defaultCodeLevels,
  type LogFields,
  type Logger,
  type LoggingOptions,
  type LogLevel,
  logging,
  noopLogger,
  redact,
  traceIdKey,
} from "@svckit/log";
import {
  createHttpClient,
  createHttpHandler,
  createRouter,
  encodeJsonRequest,
  encodeJsonResponse,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterEach, describe, expect, it, vi } from "vitest";

interface Line {
  level: LogLevel;
  message: string;
  fields: LogFields;
}

/** A logger that keeps its lines; `minLevel` makes lower levels disabled. */
function memoryLogger(minLevel?: LogLevel): Logger & { lines: Line[] } {
  const order: LogLevel[] = ["debug", "info", "warn", "error"];
  const lines: Line[] = [];
  const logger: Logger & { lines: Line[] } = {
    lines,
    log(level, message, fields) {
      lines.push({ level, message, fields });
    },
  };
  if (minLevel !== undefined) {
    logger.isLevelEnabled = (level) => order.indexOf(level) >= order.indexOf(minLevel);
  }
  return logger;
}

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const httpCtx = (metadata?: Record<string, string | string[]>): Context =>
  createContext({ metadata, callInfo: { transport: "http", method: "POST", route: "/users/:id" } });

const servers = new Set<http.Server>();
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(
    [...servers].map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
  servers.clear();
});

async function listen(listener: http.RequestListener): Promise<string> {
  const server = http.createServer(listener);
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const fails =
  (thrown: unknown): Endpoint<unknown, never> =>
  async () => {
    throw thrown;
  };

describe("logging: the line", () => {
  it("writes one line per call with the CallInfo's transport, method and route", async () => {
    const logger = memoryLogger();
    const endpoint = logging({ logger, name: "getUser" })(async (_ctx, id: string) => ({ id }));
    expect(await endpoint(httpCtx(), "42")).toEqual({ id: "42" });
    expect(logger.lines).toHaveLength(1);
    const [line] = logger.lines;
    expect(line?.level).toBe("info");
    expect(line?.message).toBe("served getUser: OK");
    expect(line?.fields).toEqual({
      endpoint: "getUser",
      kind: "server",
      transport: "http",
      method: "POST",
      route: "/users/:id",
      code: "OK",
      durationMs: expect.any(Number),
    });
    expect(Object.keys(line?.fields ?? {})).toEqual([
      "endpoint",
      "kind",
      "transport",
      "method",
      "route",
      "code",
      "durationMs",
    ]);
  });

  it("omits what nobody told it, and lets options win over the CallInfo", async () => {
    const logger = memoryLogger();
    await logging({ logger, name: "a" })(async () => 1)(createContext(), {});
    await logging({ logger, name: "b", transport: "nats", method: "sum.v1", route: "/r" })(async () => 1)(
      httpCtx(),
      {},
    );
    await logging({ logger, name: "c" })(async () => 1)(
      createContext({ callInfo: { transport: "grpc", method: "/pb.Add/Sum" } }),
      {},
    );
    expect(logger.lines.map((l) => l.fields)).toEqual([
      { endpoint: "a", kind: "server", code: "OK", durationMs: expect.any(Number) },
      {
        endpoint: "b",
        kind: "server",
        transport: "nats",
        method: "sum.v1",
        route: "/r",
        code: "OK",
        durationMs: expect.any(Number),
      },
      {
        endpoint: "c",
        kind: "server",
        transport: "grpc",
        method: "/pb.Add/Sum",
        code: "OK",
        durationMs: expect.any(Number),
      },
    ]);
  });

  it("on a client endpoint takes transport, method and route from options only", async () => {
    const logger = memoryLogger();
    const client = logging({
      logger,
      name: "users.get",
      kind: "client",
      transport: "grpc",
      method: "/u.Users/Get",
    })(async () => "ok");
    const bare = logging({ logger, name: "prices.get", kind: "client" })(async () => "ok");
    const callerCtx = httpCtx(); // the caller is serving an HTTP call
    await client(callerCtx, {});
    await bare(callerCtx, {});
    expect(logger.lines.map((l) => [l.message, l.fields])).toEqual([
      [
        "called users.get: OK",
        {
          endpoint: "users.get",
          kind: "client",
          transport: "grpc",
          method: "/u.Users/Get",
          code: "OK",
          durationMs: expect.any(Number),
        },
      ],
      [
        "called prices.get: OK",
        { endpoint: "prices.get", kind: "client", code: "OK", durationMs: expect.any(Number) },
      ],
    ]);
  });

  it("measures the duration in ms, rounded to µs", async () => {
    const now = vi.spyOn(performance, "now");
    now.mockReturnValueOnce(1000.0001234).mockReturnValueOnce(1012.3456789);
    const logger = memoryLogger();
    await logging({ logger, name: "a" })(async () => 1)(createContext(), {});
    expect(logger.lines[0]?.fields.durationMs).toBe(12.346);
  });

  it("logs real durations", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "performance"] });
    try {
      const logger = memoryLogger();
      const slow = logging({ logger, name: "slow" })(
        () => new Promise<string>((resolve) => setTimeout(() => resolve("x"), 25)),
      );
      const call = slow(createContext(), {});
      await vi.advanceTimersByTimeAsync(25);
      await call;
      expect(logger.lines[0]?.fields.durationMs).toBe(25);
    } finally {
      vi.useRealTimers();
    }
  });

  it("adds the trace id from the context key or a valid traceparent", async () => {
    const logger = memoryLogger();
    const endpoint = logging({ logger, name: "a" })(async () => 1);
    await endpoint(createContext().with(traceIdKey, TRACE_ID), {});
    await endpoint(createContext({ metadata: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` } }), {});
    await endpoint(
      createContext({ metadata: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01-junk` } }),
      {},
    );
    await endpoint(createContext({ metadata: { traceparent: "<script>" } }), {});
    expect(logger.lines.map((l) => l.fields.traceId)).toEqual([TRACE_ID, TRACE_ID, undefined, undefined]);
    expect(logger.lines.map((l) => "traceId" in l.fields)).toEqual([true, true, false, false]);
  });

  it("adds chosen metadata: incoming on servers, outgoing on clients, redacted", async () => {
    const logger = memoryLogger();
    const metadata = ["User-Agent", "x-request-id", "authorization", "x-absent"];
    const server = logging({ logger, name: "s", metadata })(async () => 1);
    const client = logging({ logger, name: "c", kind: "client", metadata })(async () => 1);
    const ctx = createContext({
      metadata: { "user-agent": "curl/8.5", "x-request-id": ["r1", "r2"], authorization: "Bearer in-secret" },
      outgoingMetadata: { "x-request-id": "out-1", authorization: "Bearer out-secret" },
    });
    await server(ctx, {});
    await client(ctx, {});
    await server(createContext(), {});
    expect(logger.lines.map((l) => l.fields.metadata)).toEqual([
      { "user-agent": "curl/8.5", "x-request-id": ["r1", "r2"], authorization: "[REDACTED]" },
      { "x-request-id": "out-1", authorization: "[REDACTED]" },
      undefined,
    ]);
    expect(JSON.stringify(logger.lines)).not.toContain("secret");
  });
});

describe("logging: failures", () => {
  it("logs each code at its default level, with the error message", async () => {
    const logger = memoryLogger();
    const endpoint = logging({ logger, name: "e" })(async (_ctx, code: Code) => {
      if (code === Code.OK) return "ok";
      throw new ServiceError(code, `failed with ${codeNames[code]}`);
    });
    for (const code of Object.values(Code)) await endpoint(createContext(), code).catch(() => undefined);
    const byCode = Object.fromEntries(logger.lines.map((l) => [l.fields.code, l.level]));
    expect(byCode).toEqual(defaultCodeLevels);
    const failed = logger.lines.find((l) => l.fields.code === "NOT_FOUND");
    expect(failed?.message).toBe("served e: NOT_FOUND");
    expect(failed?.fields.error).toBe("failed with NOT_FOUND");
    expect(logger.lines.find((l) => l.fields.code === "OK")?.fields).not.toHaveProperty("error");
  });

  it("has server faults at error, client faults at warn, success and cancellation at info", () => {
    const byLevel = (level: LogLevel) =>
      (Object.keys(defaultCodeLevels) as CodeName[]).filter((c) => defaultCodeLevels[c] === level).sort();
    expect(byLevel("error")).toEqual(
      ["DATA_LOSS", "DEADLINE_EXCEEDED", "INTERNAL", "UNAVAILABLE", "UNIMPLEMENTED", "UNKNOWN"].sort(),
    );
    expect(byLevel("info")).toEqual(["CANCELLED", "OK"]);
    expect(byLevel("warn")).toHaveLength(9);
  });

  it("logs a thrown non-ServiceError as INTERNAL with the original as cause, and rethrows it unchanged", async () => {
    const logger = memoryLogger();
    const boom = new Error("connect ECONNREFUSED 10.0.0.7:5432");
    await expect(logging({ logger, name: "db" })(fails(boom))(createContext(), {})).rejects.toBe(boom);
    await expect(logging({ logger, name: "db" })(fails("a string"))(createContext(), {})).rejects.toBe(
      "a string",
    );
    await expect(
      logging({ logger, name: "db" })(fails(undefined))(createContext(), {}),
    ).rejects.toBeUndefined();
    const [first, second, third] = logger.lines;
    expect(first?.level).toBe("error");
    expect(first?.fields).toMatchObject({
      code: "INTERNAL",
      error: "internal error",
      cause: { name: "Error", message: "connect ECONNREFUSED 10.0.0.7:5432" },
    });
    expect((first?.fields.cause as { stack?: string } | undefined)?.stack).toContain("ECONNREFUSED");
    expect(second?.fields).toMatchObject({ code: "INTERNAL", cause: "a string" });
    expect(third?.fields).toMatchObject({ code: "INTERNAL", error: "internal error" });
    expect(third?.fields).not.toHaveProperty("cause");
  });

  it("logs AbortError and TimeoutError as CANCELLED and DEADLINE_EXCEEDED", async () => {
    const logger = memoryLogger();
    await logging({ logger, name: "a" })(fails(new DOMException("x", "AbortError")))(
      createContext(),
      {},
    ).catch(() => undefined);
    await logging({ logger, name: "a" })(fails(new DOMException("x", "TimeoutError")))(
      createContext(),
      {},
    ).catch(() => undefined);
    expect(logger.lines.map((l) => [l.level, l.fields.code])).toEqual([
      ["info", "CANCELLED"],
      ["error", "DEADLINE_EXCEEDED"],
    ]);
  });

  it("uses given levels per code, and writes nothing for off", async () => {
    const logger = memoryLogger();
    const endpoint = logging({
      logger,
      name: "e",
      levels: { OK: "off", NOT_FOUND: "debug", INTERNAL: "warn" },
    })(async (_ctx, code: Code) => {
      if (code !== Code.OK) throw new ServiceError(code);
      return 1;
    });
    await endpoint(createContext(), Code.OK);
    await endpoint(createContext(), Code.NOT_FOUND).catch(() => undefined);
    await endpoint(createContext(), Code.INTERNAL).catch(() => undefined);
    await endpoint(createContext(), Code.UNAVAILABLE).catch(() => undefined);
    expect(logger.lines.map((l) => [l.level, l.fields.code])).toEqual([
      ["debug", "NOT_FOUND"],
      ["warn", "INTERNAL"],
      ["error", "UNAVAILABLE"],
    ]);
  });
});

describe("logging: fields hook", () => {
  it("adds the hook's fields, typed, with the response or the error", async () => {
    const logger = memoryLogger();
    const seen: unknown[] = [];
    const endpoint = logging<{ user: string }, { n: number }>({
      logger,
      name: "e",
      fields: (_ctx, request, response, error) => {
        seen.push([request.user, response?.n, error?.code]);
        return { user: request.user, n: response?.n };
      },
    })(async (_ctx, req) => {
      if (req.user === "bad") throw new ServiceError(Code.PERMISSION_DENIED, "no");
      return { n: 3 };
    });
    await endpoint(createContext(), { user: "ada" });
    await endpoint(createContext(), { user: "bad" }).catch(() => undefined);
    expect(seen).toEqual([
      ["ada", 3, undefined],
      ["bad", undefined, Code.PERMISSION_DENIED],
    ]);
    expect(logger.lines.map((l) => [l.fields.user, l.fields.n])).toEqual([
      ["ada", 3],
      ["bad", undefined],
    ]);
  });

  it("never lets the hook replace the middleware's own fields, nor set a prototype", async () => {
    const logger = memoryLogger();
    const endpoint = logging({
      logger,
      name: "e",
      fields: () =>
        JSON.parse('{"code": "FAKE", "endpoint": "other", "extra": 1, "__proto__": {"x": 1}}') as LogFields,
    })(async () => 1);
    await endpoint(createContext(), {});
    const fields = logger.lines[0]?.fields;
    expect(fields).toMatchObject({ code: "OK", endpoint: "e", extra: 1 });
    expect(Object.getPrototypeOf(fields)).toBe(Object.prototype);
    expect(Object.hasOwn(fields ?? {}, "__proto__")).toBe(false);
  });

  it("writes the line without the hook's fields when the hook throws or returns nothing useful", async () => {
    const logger = memoryLogger();
    const hooks: LoggingOptions["fields"][] = [
      () => {
        throw new Error("hook broke");
      },
      () => undefined,
      () => "not an object" as unknown as LogFields,
      () =>
        new Proxy(
          {},
          {
            ownKeys() {
              throw new Error("no");
            },
          },
        ),
      () =>
        Object.defineProperty({ fine: 1 }, "bad", {
          enumerable: true,
          get() {
            throw new Error("no");
          },
        }),
    ];
    for (const fields of hooks)
      await logging({ logger, name: "e", fields })(async () => 1)(createContext(), {});
    expect(logger.lines).toHaveLength(5);
    expect(logger.lines.slice(0, 4).map((l) => Object.keys(l.fields).length)).toEqual([4, 4, 4, 4]);
    expect(logger.lines[4]?.fields).toMatchObject({ fine: 1, bad: "[Unreadable]" });
  });

  it("redacts the hook's fields", async () => {
    const logger = memoryLogger();
    await logging({
      logger,
      name: "e",
      fields: (ctx) => ({ headers: ctx.metadata.toRecord(), body: { password: "hunter2" } }),
    })(async () => 1)(createContext({ metadata: { cookie: "sid=abc", accept: "*/*" } }), {});
    expect(logger.lines[0]?.fields).toMatchObject({
      headers: { cookie: "[REDACTED]", accept: "*/*" },
      body: { password: "[REDACTED]" },
    });
  });

  it("uses given redaction options", async () => {
    const logger = memoryLogger();
    await logging({
      logger,
      name: "e",
      redact: { keys: ["ssn"], censor: "***" },
      fields: () => ({ ssn: "1", token: "t" }),
    })(async () => 1)(createContext(), {});
    expect(logger.lines[0]?.fields).toMatchObject({ ssn: "***", token: "t" });
  });
});

describe("logging: redaction of a line's own fields", () => {
  it("still redacts the route, method or endpoint name when the redaction would change them", async () => {
    const logger = memoryLogger();
    const call = createContext({
      callInfo: { transport: "http", method: "POST", route: "/keys/Bearer abcdefgh1/:id" },
    });
    await logging({ logger, name: "e" })(async () => 1)(call, {});
    expect(logger.lines[0]?.fields.route).toBe("/keys/Bearer [REDACTED]");

    const byKey = memoryLogger();
    await logging({ logger: byKey, name: "e", redact: { keys: ["route", "endpoint"] } })(async () => 1)(
      httpCtx(),
      {},
    );
    expect(byKey.lines[0]?.fields).toMatchObject({
      route: "[REDACTED]",
      endpoint: "[REDACTED]",
      method: "POST",
    });
  });

  it("gives each call its own line object, equal to the redacted one", async () => {
    const logger = memoryLogger();
    const logged = logging({ logger, name: "e" })(async () => 1);
    await logged(httpCtx(), {});
    await logged(httpCtx(), {});
    const [a, b] = logger.lines;
    expect(a?.fields).not.toBe(b?.fields);
    expect(a?.fields).toEqual(redact(a?.fields));
    expect(a?.fields).toMatchObject({
      endpoint: "e",
      transport: "http",
      method: "POST",
      route: "/users/:id",
    });
  });
});

describe("logging: never fails the call", () => {
  it("swallows a logger that throws, on success and failure", async () => {
    const logger: Logger = {
      log() {
        throw new Error("disk full");
      },
    };
    expect(await logging({ logger, name: "a" })(async () => 7)(createContext(), {})).toBe(7);
    const err = new ServiceError(Code.NOT_FOUND, "nope");
    await expect(logging({ logger, name: "a" })(fails(err))(createContext(), {})).rejects.toBe(err);
  });

  it("swallows a logger whose log returns a rejected promise", async () => {
    const unhandled = vi.fn();
    process.on("unhandledRejection", unhandled);
    try {
      const logger = { log: () => Promise.reject(new Error("async failure")) } as unknown as Logger;
      expect(await logging({ logger, name: "a" })(async () => 7)(createContext(), {})).toBe(7);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off("unhandledRejection", unhandled);
    }
  });

  it("swallows an isLevelEnabled that throws", async () => {
    const logger: Logger = {
      log: vi.fn(),
      isLevelEnabled() {
        throw new Error("bad");
      },
    };
    expect(await logging({ logger, name: "a" })(async () => 7)(createContext(), {})).toBe(7);
    expect(logger.log).not.toHaveBeenCalled();
  });

  it("builds nothing for a disabled level", async () => {
    const logger = memoryLogger("warn");
    const fields = vi.fn(() => ({}));
    const endpoint = logging({ logger, name: "a", fields })(async (_ctx, fail: boolean) => {
      if (fail) throw new ServiceError(Code.INVALID_ARGUMENT, "bad");
      return 1;
    });
    await endpoint(createContext(), false);
    expect(fields).not.toHaveBeenCalled();
    expect(logger.lines).toHaveLength(0);
    await endpoint(createContext(), true).catch(() => undefined);
    expect(fields).toHaveBeenCalledTimes(1);
    expect(logger.lines.map((l) => l.level)).toEqual(["warn"]);
    await logging({ logger: noopLogger, name: "a", fields })(async () => 1)(createContext(), {});
    expect(fields).toHaveBeenCalledTimes(1);
  });
});

describe("logging: options", () => {
  it.each([
    [undefined, TypeError, "logging: options are required"],
    [{ name: "a" }, TypeError, "logging: options.logger must have a log(level, message, fields) method"],
    [
      { logger: {}, name: "a" },
      TypeError,
      "logging: options.logger must have a log(level, message, fields) method",
    ],
    [{ logger: noopLogger }, TypeError, "logging: options.name must be a non-empty string"],
    [{ logger: noopLogger, name: "" }, TypeError, "logging: options.name must be a non-empty string"],
    [
      { logger: noopLogger, name: "a", kind: "peer" },
      TypeError,
      'logging: options.kind must be "server" or "client", got peer',
    ],
    [
      { logger: noopLogger, name: "a", transport: 1 },
      TypeError,
      "logging: options.transport must be a string",
    ],
    [{ logger: noopLogger, name: "a", route: {} }, TypeError, "logging: options.route must be a string"],
    [
      { logger: noopLogger, name: "a", metadata: "user-agent" },
      TypeError,
      "logging: options.metadata must be an array of non-empty strings",
    ],
    [
      { logger: noopLogger, name: "a", metadata: [""] },
      TypeError,
      "logging: options.metadata must be an array of non-empty strings",
    ],
    [
      { logger: noopLogger, name: "a", metadata: Array.from({ length: 33 }, (_, i) => `h${i}`) },
      RangeError,
      "logging: options.metadata may name at most 32 keys",
    ],
    [{ logger: noopLogger, name: "a", fields: "x" }, TypeError, "logging: options.fields must be a function"],
    [
      { logger: noopLogger, name: "a", levels: { NOPE: "info" } },
      TypeError,
      'logging: options.levels has an unknown code "NOPE"',
    ],
    [
      { logger: noopLogger, name: "a", levels: { OK: "verbose" } },
      TypeError,
      'logging: options.levels.OK must be "debug", "info", "warn", "error" or "off", got verbose',
    ],
  ])("rejects %o", (options, type, message) => {
    const make = () => logging(options as unknown as LoggingOptions);
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });

  it("returns named functions", () => {
    const mw = logging({ logger: noopLogger, name: "a" });
    expect(mw.name).toBe("loggingMiddleware");
    expect(mw(async () => 1).name).toBe("loggingEndpoint");
  });
});

describe("childLogger", () => {
  it("adds fields to every line, the line's own winning, and keeps isLevelEnabled", () => {
    const base = memoryLogger("info");
    const child = childLogger(base, { service: "addsvc", region: "eu" });
    child.log("info", "hi", { region: "us", port: 1 });
    expect(base.lines).toEqual([
      { level: "info", message: "hi", fields: { service: "addsvc", region: "us", port: 1 } },
    ]);
    expect(child.isLevelEnabled?.("debug")).toBe(false);
    expect(child.isLevelEnabled?.("error")).toBe(true);
    expect(childLogger({ log: () => undefined }, {}).isLevelEnabled).toBeUndefined();
  });

  it("copies the fields, so later changes to them do not leak in", () => {
    const base = memoryLogger();
    const fields: LogFields = { a: 1 };
    const child = childLogger(base, fields);
    fields.a = 2;
    child.log("info", "x", {});
    expect(base.lines[0]?.fields).toEqual({ a: 1 });
  });
});

describe("over real HTTP", () => {
  it("never lets a Bearer token or cookie reach the log, wherever it shows up", async () => {
    const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXZhbHVl";
    const logger = memoryLogger();
    const whoami: Endpoint<{ id: string }, { id: string }> = async (ctx, req) => {
      if (req.id === "leak") {
        throw new Error(`upstream refused Authorization: ${ctx.metadata.get("authorization")}`);
      }
      return req;
    };
    const logged = logging({
      logger,
      name: "whoami",
      metadata: ["authorization", "cookie", "user-agent"],
      fields: (ctx, request) => ({ headers: ctx.metadata.toRecord(), request }),
    })(whoami);
    const router = createRouter().post(
      "/whoami/:id",
      createHttpHandler(logged, jsonRequestDecoder(), encodeJsonResponse),
    );
    const origin = await listen(router.handle);
    for (const id of ["ok", "leak"]) {
      const res = await fetch(`${origin}/whoami/${id}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${token}`,
          cookie: `session=${token}`,
          "user-agent": "test-agent",
        },
        body: JSON.stringify({ id, access_token: token, nested: { note: `Bearer ${token}` } }),
      });
      await res.arrayBuffer();
    }
    expect(logger.lines.map((l) => [l.level, l.message, l.fields.route, l.fields.method])).toEqual([
      ["info", "served whoami: OK", "/whoami/:id", "POST"],
      ["error", "served whoami: INTERNAL", "/whoami/:id", "POST"],
    ]);
    expect(logger.lines[0]?.fields.metadata).toEqual({
      authorization: "[REDACTED]",
      cookie: "[REDACTED]",
      "user-agent": "test-agent",
    });
    const everything = JSON.stringify(logger.lines);
    expect(everything).toContain("test-agent");
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.split(".")[2]);
  });

  it("logs both sides of an HTTP call, each with its own kind and transport", async () => {
    const logger = memoryLogger();
    const sum: Endpoint<{ a: number; b: number }, { v: number }> = async (_ctx, { a, b }) => ({ v: a + b });
    const router = createRouter().post(
      "/sum",
      createHttpHandler(logging({ logger, name: "sum" })(sum), jsonRequestDecoder(), encodeJsonResponse),
    );
    const origin = await listen(router.handle);
    const client = logging({
      logger,
      name: "sum",
      kind: "client",
      transport: "http",
      method: "POST",
      route: "/sum",
    })(createHttpClient(`${origin}/sum`, "POST", encodeJsonRequest, jsonResponseDecoder<{ v: number }>()));
    const ctx = createContext({ outgoingMetadata: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` } });
    expect(await client(ctx.with(traceIdKey, TRACE_ID), { a: 1, b: 2 })).toEqual({ v: 3 });
    expect(logger.lines.map((l) => [l.message, l.fields.kind, l.fields.transport, l.fields.traceId])).toEqual(
      [
        ["served sum: OK", "server", "http", TRACE_ID],
        ["called sum: OK", "client", "http", TRACE_ID],
      ],
    );
  });
});
