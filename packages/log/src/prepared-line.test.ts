// The logging middleware's fast path on svckit's JSON logger (successful calls' lines prepared once per
// call description) must write exactly what the general path writes.
import { type CallInfo, Code, type Context, createContext, ServiceError } from "@svckit/endpoint";
import {
  createJsonLogger,
  type JsonLoggerOptions,
  type Logger,
  type LoggingOptions,
  logging,
} from "@svckit/log";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { prepareLine } from "./json-logger.js";
import { capture } from "./test-helpers.js";
import { traceIdKey } from "./trace.js";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const sum = async (_ctx: Context, req: { a: number; b: number }) => req.a + req.b;

/** The same logger without the prepared-line method: the middleware takes its general path. */
function general(logger: Logger): Logger {
  return { log: (level, message, fields) => logger.log(level, message, fields) };
}

type Shape = Omit<LoggingOptions, "logger" | "name">;

/**
 * Runs the same calls through the middleware on a JSON logger (fast path) and on the same kind of
 * logger behind {@link general} (general path); returns both outputs, durations zeroed.
 */
async function bothPaths(
  loggerOptions: JsonLoggerOptions,
  shape: Shape,
  calls: readonly { ctx: Context; fail?: unknown }[],
): Promise<{ fast: string[]; slow: string[] }> {
  const out: string[][] = [];
  for (const wrap of [false, true]) {
    const { stream, lines } = capture();
    const json = createJsonLogger({ timestamp: false, ...loggerOptions, destination: stream });
    const logger = wrap ? general(json) : json;
    const endpoint = logging({ ...shape, logger, name: "sum" })(
      async (ctx, req: { a: number; b: number }) => {
        const call = calls.find((c) => c.ctx === ctx);
        if (call?.fail !== undefined) throw call.fail;
        return sum(ctx, req);
      },
    );
    for (const call of calls) await endpoint(call.ctx, { a: 1, b: 2 }).catch(() => undefined);
    await json.close();
    out.push(lines().map((l) => l.replace(/"durationMs":[0-9.e-]+/, '"durationMs":0')));
  }
  return { fast: out[0] as string[], slow: out[1] as string[] };
}

const route: CallInfo = Object.freeze({ transport: "http", method: "POST", route: "/sum" });
const grpc: CallInfo = Object.freeze({ transport: "grpc", method: "/pb.Add/Sum" });

describe("logging on the JSON logger: prepared lines of successful calls", () => {
  it("the JSON logger offers the prepared-line method; a wrapped logger does not", () => {
    const json = createJsonLogger({ destination: capture().stream });
    expect(typeof (json as unknown as Record<symbol, unknown>)[prepareLine]).toBe("function");
    expect((general(json) as unknown as Record<symbol, unknown>)[prepareLine]).toBeUndefined();
    expect(typeof (json.child({ a: 1 }) as unknown as Record<symbol, unknown>)[prepareLine]).toBe("function");
  });

  it("prepares a line once per call description and writes successful calls through it", async () => {
    const { stream, lines } = capture();
    const json = createJsonLogger({ timestamp: false, destination: stream });
    const target = json as unknown as Record<symbol, (...args: unknown[]) => unknown>;
    const original = target[prepareLine] as (...args: unknown[]) => unknown;
    const writes = vi.fn();
    const prepare = vi.fn((...args: unknown[]) => {
      const write = original(...args) as (values: unknown[]) => void;
      return (values: unknown[]) => {
        writes(values);
        write(values);
      };
    });
    target[prepareLine] = prepare;
    const endpoint = logging({ logger: json, name: "sum" })(sum);
    for (let i = 0; i < 3; i++) await endpoint(createContext({ callInfo: route }), { a: 1, b: 2 });
    await endpoint(createContext({ callInfo: grpc }).with(traceIdKey, TRACE_ID), { a: 1, b: 2 });
    await json.close();
    expect(prepare).toHaveBeenCalledTimes(2);
    expect(prepare.mock.calls[0]?.slice(0, 4)).toEqual([
      "info",
      "served sum: OK",
      { endpoint: "sum", kind: "server", transport: "http", method: "POST", route: "/sum", code: "OK" },
      ["durationMs", "traceId"],
    ]);
    expect(writes).toHaveBeenCalledTimes(4);
    expect(writes.mock.calls[3]?.[0]).toEqual([expect.any(Number), TRACE_ID]);
    expect(lines()).toHaveLength(4);
  });

  it("writes the same lines as the general path: field order, trace id or none, several routes", async () => {
    const calls = [
      { ctx: createContext({ callInfo: route }) },
      { ctx: createContext({ callInfo: route }).with(traceIdKey, TRACE_ID) },
      { ctx: createContext({ callInfo: grpc }) },
      {
        ctx: createContext({
          callInfo: route,
          metadata: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` },
        }),
      },
      { ctx: createContext() },
    ];
    const { fast, slow } = await bothPaths({}, {}, calls);
    expect(fast).toEqual(slow);
    expect(fast[0]).toBe(
      '{"level":"info","message":"served sum: OK","endpoint":"sum","kind":"server","transport":"http","method":"POST","route":"/sum","code":"OK","durationMs":0}',
    );
    expect(JSON.parse(fast[1] as string)).toMatchObject({ traceId: TRACE_ID, route: "/sum" });
    expect(JSON.parse(fast[3] as string)).toMatchObject({ traceId: TRACE_ID });
    expect(JSON.parse(fast[4] as string)).not.toHaveProperty("transport");
  });

  it("matches the general path for errors, metadata, hooks, client calls and fixed descriptions", async () => {
    const calls = [
      { ctx: createContext({ callInfo: route, metadata: { "x-tenant": "t1" } }) },
      { ctx: createContext({ callInfo: route }) },
      { ctx: createContext({ callInfo: route }), fail: new ServiceError(Code.NOT_FOUND, "no such sum") },
      { ctx: createContext({ callInfo: route }), fail: new Error("boom") },
    ];
    const shapes: Shape[] = [
      {},
      { metadata: ["x-tenant"] },
      { fields: () => ({ user: "ann" }) },
      { kind: "client", transport: "http", method: "POST", route: "/sum" },
      { route: "/fixed", method: "PUT" },
      { levels: { OK: "warn" } },
    ];
    for (const shape of shapes) {
      const { fast, slow } = await bothPaths({}, shape, calls);
      expect(fast, JSON.stringify(shape)).toEqual(slow);
      expect(fast).toHaveLength(4);
    }
  });

  it("matches the general path with base fields, clashing base fields, timestamps off and redaction", async () => {
    const calls = [
      { ctx: createContext({ callInfo: route }).with(traceIdKey, TRACE_ID) },
      { ctx: createContext({ callInfo: route }) },
    ];
    const loggers: JsonLoggerOptions[] = [
      { base: { service: "addsvc" } },
      // A base field the line also has: the line's own wins, on both paths.
      { base: { route: "/base", code: "base" } },
      // The logger redacts trace ids: the prepared path must not write them in clear.
      { redact: { keys: ["traceId"] } },
      { redact: false },
    ];
    for (const options of loggers) {
      const { fast, slow } = await bothPaths(options, {}, calls);
      expect(fast, JSON.stringify(options)).toEqual(slow);
    }
    const redacted = await bothPaths({ redact: { keys: ["traceId"] } }, {}, calls);
    expect(redacted.fast[0]).not.toContain(TRACE_ID);
  });

  it("a route the middleware's own redaction would change is written by the general path, redacted", async () => {
    const secret: CallInfo = Object.freeze({ transport: "http", method: "GET", route: "/token/:token" });
    const calls = [{ ctx: createContext({ callInfo: secret }) }];
    const shape: Shape = { redact: { keys: ["route"] } };
    const { fast, slow } = await bothPaths({}, shape, calls);
    expect(fast).toEqual(slow);
    expect(fast[0]).not.toContain("/token/:token");
  });

  it("escapes and redacts whatever trace id a context carries, as the general path does (fuzzed)", async () => {
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLWJ5dGVz";
    const traceIds = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom(`Bearer ${jwt}`, jwt, "Basic dXNlcjpwYXNz", TRACE_ID),
    );
    for (const options of [{ redact: false }, {}] as JsonLoggerOptions[]) {
      await fc.assert(
        fc.asyncProperty(traceIds, async (traceId) => {
          const calls = [{ ctx: createContext({ callInfo: route }).with(traceIdKey, traceId) }];
          const { fast, slow } = await bothPaths(options, {}, calls);
          expect(fast).toEqual(slow);
          for (const line of fast) JSON.parse(line);
        }),
        { numRuns: 100 },
      );
    }
    // With the default redaction, a credential in the trace id is scrubbed on the prepared path too.
    const calls = [{ ctx: createContext({ callInfo: route }).with(traceIdKey, `Bearer ${jwt}`) }];
    const { fast } = await bothPaths({}, {}, calls);
    expect(fast[0]).not.toContain(jwt);
  });
});
