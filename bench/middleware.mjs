#!/usr/bin/env node
// Microbenchmark of the resilience middlewares' per-call cost on the success path: a no-op async
// endpoint called bare, then wrapped by each middleware alone, then by the stack
// breaker + ratelimit + retry (limits lifted so nothing is refused). Each case is an awaited loop of
// `--calls` calls; cases are interleaved round by round after a warm-up and the median round counts.
// Prints ns per call and the overhead over the bare endpoint.
//
//   node bench/middleware.mjs [--calls 300000] [--rounds 5] [--json out.json]
import { createBulkhead } from "@svckit/bulkhead";
import { createCircuitBreaker } from "@svckit/circuitbreaker";
import { chain, createContext, timeout } from "@svckit/endpoint";
import { fallback } from "@svckit/fallback";
import { createRateLimiter } from "@svckit/ratelimit";
import { hedge, retry } from "@svckit/retry";
import { interleavedRounds, machineInfo, markdownTable, microBenchCli, microBenchOptions } from "./lib.mjs";

export const MIDDLEWARE_OPTIONS = microBenchOptions(300_000);

const endpoint = async (_ctx, req) => req.a + req.b;
const req = { a: 1, b: 2 };
let sink = 0;

/** Builds the cases; returns them with a `close` that stops the breaker's and limiter's timers. */
function buildCases() {
  const breaker = createCircuitBreaker({ name: "bench" });
  const stackBreaker = createCircuitBreaker({ name: "bench-stack" });
  // Limits lifted: a huge reservoir refreshed often, so no call waits or is refused.
  const lifted = { limit: 1e9, interval: 60_000 };
  const limiter = createRateLimiter({ name: "bench", ...lifted });
  const stackLimiter = createRateLimiter({ name: "bench-stack", ...lifted });
  const bulkhead = createBulkhead({ name: "bench", maxConcurrent: 100, maxQueue: 100 });
  const cases = [
    { name: "bare endpoint", endpoint },
    { name: "timeout(1000) (core)", endpoint: timeout(1_000)(endpoint) },
    { name: "retry()", endpoint: retry()(endpoint) },
    { name: "retry({ perAttemptTimeout })", endpoint: retry({ perAttemptTimeout: 1_000 })(endpoint) },
    { name: "hedge({ delay: 1000 })", endpoint: hedge({ delay: 1_000 })(endpoint) },
    { name: "circuit breaker (closed)", endpoint: breaker.middleware(endpoint) },
    { name: "rate limit (erroring, under limit)", endpoint: limiter.middleware(endpoint) },
    { name: "bulkhead (under limit)", endpoint: bulkhead.middleware(endpoint) },
    { name: "fallback", endpoint: fallback(() => 0)(endpoint) },
    {
      name: "breaker + ratelimit + retry",
      endpoint: chain(stackBreaker.middleware, stackLimiter.middleware, retry())(endpoint),
    },
  ];
  const close = async () => {
    breaker.shutdown();
    stackBreaker.shutdown();
    await limiter.close();
    await stackLimiter.close();
  };
  return { cases, close };
}

/** Runs every case and returns ns per call (median of rounds). */
export async function runMiddleware({ calls, rounds }, log = console.log) {
  const { cases, close } = buildCases();
  const ctx = createContext();
  try {
    for (const c of cases) {
      if ((await c.endpoint(ctx, req)) !== 3) throw new Error(`${c.name} broke the answer`);
    }
    log(
      `middleware bench: node ${process.version}, ${calls.toLocaleString("en-US")} awaited calls × ${rounds} rounds per case`,
    );
    const timed = await interleavedRounds(cases, { calls, rounds }, async (c, n) => {
      const t0 = process.hrtime.bigint();
      let s = 0;
      for (let i = 0; i < n; i++) s += await c.endpoint(ctx, req);
      sink += s;
      return Number(process.hrtime.bigint() - t0) / n;
    });
    return {
      bench: "middleware",
      node: process.version,
      machine: machineInfo(),
      calls,
      rounds,
      cases: timed,
      sink,
    };
  } finally {
    await close();
  }
}

export function formatMiddleware(result) {
  const rows = result.cases.map((c, i) => [
    c.name,
    c.nsPerCall.toFixed(0),
    i === 0 ? "" : `+${c.overheadNs.toFixed(0)}`,
  ]);
  return markdownTable(["case", "ns/call", "overhead ns/call"], rows, ["left", "right", "right"]);
}

microBenchCli(import.meta.url, {
  file: "middleware.mjs",
  options: MIDDLEWARE_OPTIONS,
  run: runMiddleware,
  format: formatMiddleware,
});
