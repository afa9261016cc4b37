#!/usr/bin/env node
// Microbenchmark of the resilience middlewares' per-call cost on the success path: a no-op async
// endpoint called bare, then wrapped by each middleware alone, then by the stack
// breaker + ratelimit + retry (limits lifted so nothing is refused). Each case is an awaited loop of
// `--calls` calls; cases are interleaved round by round after a warm-up and the median round counts.
// Prints ns per call and the overhead over the bare endpoint.
//
//   node bench/middleware.mjs [--calls 300000] [--rounds 5] [--json out.json]
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createBulkhead } from "@svckit/bulkhead";
import { createCircuitBreaker } from "@svckit/circuitbreaker";
import { chain, createContext, timeout } from "@svckit/endpoint";
import { fallback } from "@svckit/fallback";
import { createRateLimiter } from "@svckit/ratelimit";
import { hedge, retry } from "@svckit/retry";
import { cliArgs, isMain, machineInfo, markdownTable, median } from "./lib.mjs";

export const MIDDLEWARE_OPTIONS = {
  calls: { type: "string", default: "300000" },
  rounds: { type: "string", default: "5" },
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
};

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

async function time(fn, ctx, n) {
  const t0 = process.hrtime.bigint();
  let s = 0;
  for (let i = 0; i < n; i++) s += await fn(ctx, req);
  sink += s;
  return Number(process.hrtime.bigint() - t0) / n;
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
    for (let w = 0; w < 2; w++) for (const c of cases) await time(c.endpoint, ctx, Math.min(calls, 100_000));
    const samples = cases.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < cases.length; i++) samples[i].push(await time(cases[i].endpoint, ctx, calls));
    }
    const ns = samples.map((xs) => median(xs));
    return {
      bench: "middleware",
      node: process.version,
      machine: machineInfo(),
      calls,
      rounds,
      cases: cases.map((c, i) => ({
        name: c.name,
        nsPerCall: ns[i],
        overheadNs: ns[i] - ns[0],
        samples: samples[i],
      })),
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

async function main() {
  const { values } = parseArgs({ args: cliArgs(), options: MIDDLEWARE_OPTIONS, strict: true });
  if (values.help) {
    console.log("usage: node bench/middleware.mjs [--calls 300000] [--rounds 5] [--json out.json]");
    return;
  }
  const result = await runMiddleware({ calls: Number(values.calls), rounds: Number(values.rounds) });
  console.log(formatMiddleware(result));
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2));
}

if (isMain(import.meta.url)) await main();
