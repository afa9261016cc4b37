import { Code, createContext, ServiceError } from "@svckit/endpoint";
import type { LogFields, Logger, LogLevel } from "@svckit/log";
import { createMetrics } from "@svckit/metrics";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type AddEndpoints, type AddsvcWithMiddleware, makeEndpoints, withMiddleware } from "./endpoints.js";
import { AddServiceError, createAddService } from "./service.js";

/** What a call ended with: the value, or the error's code name and message. */
async function outcome(
  call: Promise<{ v: unknown }>,
): Promise<{ v: unknown } | { code: string; message: string }> {
  try {
    return { v: (await call).v };
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    return { code: err.codeName, message: err.message };
  }
}

const ctx = createContext();
const sum = (e: AddEndpoints, a: bigint, b: bigint) => outcome(e.sum(ctx, { a, b }));
const concat = (e: AddEndpoints, a: string, b: string) => outcome(e.concat(ctx, { a, b }));

const SUM_LIMITED = /^rate limit "sum" exceeded: at most 1 calls per 1000 ms, retry in [\d.]+ s$/;

let made: AddsvcWithMiddleware[] = [];
function wrap(options: Parameters<typeof withMiddleware>[1]): AddsvcWithMiddleware {
  const w = withMiddleware(makeEndpoints(createAddService()), options);
  made.push(w);
  return w;
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  for (const w of made) w.close();
  made = [];
  vi.useRealTimers();
});

describe("makeEndpoints", () => {
  it("wraps the service: sum and concat answer {v}, the service's errors are thrown as they are", async () => {
    const endpoints = makeEndpoints(createAddService());
    expect(await endpoints.sum(ctx, { a: 1n, b: 2n })).toEqual({ v: 3n });
    expect(await endpoints.concat(ctx, { a: "ab", b: "cd" })).toEqual({ v: "abcd" });
    await expect(endpoints.sum(ctx, { a: 0n, b: 0n })).rejects.toBeInstanceOf(AddServiceError);
  });
});

describe("withMiddleware: rate limits", () => {
  it("by default sum admits 1 call per second, as go-kit; the next is RESOURCE_EXHAUSTED", async () => {
    const { endpoints } = wrap({ tracing: false });
    expect(await sum(endpoints, 1n, 2n)).toEqual({ v: 3n });
    const refused = await sum(endpoints, 1n, 2n);
    expect(refused).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expect((refused as { message: string }).message).toMatch(SUM_LIMITED);
    vi.advanceTimersByTime(1_000);
    expect(await sum(endpoints, 2n, 2n)).toEqual({ v: 4n });
  });

  it("by default concat admits 100 calls per second (go-kit's burst), the 101st is refused", async () => {
    const { endpoints } = wrap({ tracing: false, breaker: false });
    for (let i = 0; i < 100; i++) expect(await concat(endpoints, "a", "b")).toEqual({ v: "ab" });
    expect(await concat(endpoints, "a", "b")).toMatchObject({
      code: "RESOURCE_EXHAUSTED",
      message: expect.stringMatching(/^rate limit "concat" exceeded: at most 100 calls per 1000 ms/),
    });
  });

  it("the service's errors use a slot too: the limit is in front of the service", async () => {
    const { endpoints } = wrap({ tracing: false, sumRate: 2 });
    expect(await sum(endpoints, 0n, 0n)).toEqual({
      code: "INVALID_ARGUMENT",
      message: "can't sum two zeroes",
    });
    expect(await sum(endpoints, 1n, 1n)).toEqual({ v: 2n });
    expect(await sum(endpoints, 1n, 1n)).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
  });

  it("a rate of 0 is unlimited", async () => {
    const { endpoints } = wrap({ tracing: false, sumRate: 0, concatRate: 0 });
    for (let i = 0; i < 500; i++) {
      expect(await sum(endpoints, 1n, BigInt(i))).toEqual({ v: 1n + BigInt(i) });
      expect(await concat(endpoints, "x", "")).toEqual({ v: "x" });
    }
  });

  it("sum and concat have limits of their own", async () => {
    const { endpoints } = wrap({ tracing: false, sumRate: 1, concatRate: 1 });
    expect(await sum(endpoints, 1n, 2n)).toEqual({ v: 3n });
    expect(await concat(endpoints, "a", "b")).toEqual({ v: "ab" });
    expect(await sum(endpoints, 1n, 2n)).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expect(await concat(endpoints, "a", "b")).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
  });
});

describe("withMiddleware: circuit breakers", () => {
  it("refused calls count: with minCalls 3, one success and two refusals open sum's breaker (UNAVAILABLE)", async () => {
    const { endpoints, breakers } = wrap({
      tracing: false,
      sumRate: 1,
      breaker: { minCalls: 3, openMs: 5_000 },
    });
    expect(breakers.map((b) => [b.name, b.state])).toEqual([
      ["sum", "closed"],
      ["concat", "closed"],
    ]);
    expect(await sum(endpoints, 1n, 2n)).toEqual({ v: 3n });
    expect(await sum(endpoints, 1n, 2n)).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expect(await sum(endpoints, 1n, 2n)).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expect(breakers[0]?.state).toBe("open");
    expect(await sum(endpoints, 1n, 2n)).toEqual({
      code: "UNAVAILABLE",
      message: 'circuit breaker "sum" is open',
    });
    // concat has a breaker of its own, still closed.
    expect(await concat(endpoints, "a", "b")).toEqual({ v: "ab" });
    expect(breakers[1]?.state).toBe("closed");
  });

  it("after openMs one trial call goes through; its success closes the breaker", async () => {
    const { endpoints, breakers } = wrap({
      tracing: false,
      sumRate: 1,
      breaker: { minCalls: 3, openMs: 5_000 },
    });
    await sum(endpoints, 1n, 2n);
    await sum(endpoints, 1n, 2n);
    await sum(endpoints, 1n, 2n);
    expect(breakers[0]?.state).toBe("open");
    vi.advanceTimersByTime(4_999);
    expect(await sum(endpoints, 1n, 2n)).toMatchObject({ code: "UNAVAILABLE" });
    vi.advanceTimersByTime(1);
    expect(breakers[0]?.state).toBe("halfOpen");
    expect(await sum(endpoints, 5n, 5n)).toEqual({ v: 10n });
    expect(breakers[0]?.state).toBe("closed");
  });

  it("the service's own errors never open it (INVALID_ARGUMENT is a client fault)", async () => {
    const { endpoints, breakers } = wrap({
      tracing: false,
      sumRate: 0,
      breaker: { minCalls: 3, openMs: 5_000 },
    });
    for (let i = 0; i < 20; i++) {
      expect(await sum(endpoints, 0n, 0n)).toEqual({
        code: "INVALID_ARGUMENT",
        message: "can't sum two zeroes",
      });
    }
    expect(breakers[0]?.state).toBe("closed");
  });

  it("the default is go-kit-like: 6 calls in the window, open for 60 s", async () => {
    const { endpoints, breakers } = wrap({ tracing: false });
    const outcomes = [];
    for (let i = 0; i < 7; i++) outcomes.push(await sum(endpoints, 1n, 2n));
    // 1 success, then refusals; the breaker opens once 6 calls were seen and more than half failed.
    expect(outcomes.map((o) => ("v" in o ? "OK" : o.code))).toEqual([
      "OK",
      "RESOURCE_EXHAUSTED",
      "RESOURCE_EXHAUSTED",
      "RESOURCE_EXHAUSTED",
      "RESOURCE_EXHAUSTED",
      "RESOURCE_EXHAUSTED",
      "UNAVAILABLE",
    ]);
    vi.advanceTimersByTime(59_999);
    expect(breakers[0]?.state).toBe("open");
    vi.advanceTimersByTime(1);
    expect(breakers[0]?.state).toBe("halfOpen");
  });

  it("breaker: false, or minCalls 0, leaves the breakers out", async () => {
    for (const breaker of [false, { minCalls: 0, openMs: 1_000 }] as const) {
      const { endpoints, breakers } = wrap({ tracing: false, sumRate: 1, breaker });
      expect(breakers).toEqual([]);
      await sum(endpoints, 1n, 2n);
      for (let i = 0; i < 20; i++)
        expect(await sum(endpoints, 1n, 2n)).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    }
  });
});

describe("withMiddleware: logging and metrics", () => {
  interface Line {
    level: LogLevel;
    message: string;
    fields: LogFields;
  }

  it("writes one line per call with the endpoint's name and code, the refusals included", async () => {
    const lines: Line[] = [];
    const logger: Logger = { log: (level, message, fields) => lines.push({ level, message, fields }) };
    const { endpoints } = wrap({ tracing: false, logger, sumRate: 1 });
    await sum(endpoints, 1n, 2n);
    await sum(endpoints, 1n, 2n);
    await concat(endpoints, "abcdef", "ghijk");
    expect(lines.map((l) => [l.level, l.message, l.fields.endpoint, l.fields.code, l.fields.error])).toEqual([
      ["info", "served sum: OK", "sum", "OK", undefined],
      [
        "warn",
        "served sum: RESOURCE_EXHAUSTED",
        "sum",
        "RESOURCE_EXHAUSTED",
        expect.stringMatching(SUM_LIMITED),
      ],
      [
        "warn",
        "served concat: INVALID_ARGUMENT",
        "concat",
        "INVALID_ARGUMENT",
        "result exceeds maximum size",
      ],
    ]);
  });

  it("counts calls per endpoint and code, rate-limit refusals, and exports the breakers' states", async () => {
    const metrics = createMetrics();
    const { endpoints } = wrap({
      tracing: false,
      metrics,
      sumRate: 1,
      breaker: { minCalls: 3, openMs: 5_000 },
    });
    await sum(endpoints, 1n, 2n);
    await sum(endpoints, 1n, 2n);
    await sum(endpoints, 1n, 2n);
    await sum(endpoints, 1n, 2n);
    await concat(endpoints, "a", "b");
    const text = await metrics.registry.metrics();
    const line = (prefix: string): string | undefined =>
      text.split("\n").find((l) => l.startsWith(prefix) && !l.startsWith("#"));
    expect(line('svckit_requests_total{endpoint="sum",kind="server",transport="none",code="OK"}')).toMatch(
      / 1$/,
    );
    expect(
      line('svckit_requests_total{endpoint="sum",kind="server",transport="none",code="RESOURCE_EXHAUSTED"}'),
    ).toMatch(/ 2$/);
    expect(
      line('svckit_requests_total{endpoint="sum",kind="server",transport="none",code="UNAVAILABLE"}'),
    ).toMatch(/ 1$/);
    expect(line('svckit_requests_total{endpoint="concat",kind="server",transport="none",code="OK"}')).toMatch(
      / 1$/,
    );
    expect(line('svckit_ratelimit_rejections_total{limiter="sum"}')).toMatch(/ 2$/);
    expect(line('svckit_circuit_breaker_state{breaker="sum"}')).toMatch(/ 2$/);
    expect(line('svckit_circuit_breaker_state{breaker="concat"}')).toMatch(/ 0$/);
  });

  it("runs with the default tracing (the global OpenTelemetry API, a no-op without an SDK)", async () => {
    const { endpoints } = wrap({ sumRate: 0 });
    expect(await sum(endpoints, 20n, 22n)).toEqual({ v: 42n });
  });

  it("with no middleware at all the endpoints are the service's", async () => {
    const { endpoints, breakers } = wrap({ tracing: false, sumRate: 0, concatRate: 0, breaker: false });
    expect(breakers).toEqual([]);
    expect(await sum(endpoints, 1n, 2n)).toEqual({ v: 3n });
    await expect(endpoints.sum(ctx, { a: 0n, b: 0n })).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT });
  });
});
