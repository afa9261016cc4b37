#!/usr/bin/env node
// Microbenchmark of @svckit/endpoint's per-call costs:
// - an async endpoint called bare vs. wrapped by chain() with 10 no-op middlewares
//   (each `next => (ctx, req) => next(ctx, req)`), → ns per awaited call and overhead per middleware;
// - the same with 10 *async* no-op middlewares (`next => async (ctx, req) => next(ctx, req)`), the
//   style users often write, for comparison;
// - createContext() + ctx.with(key, v), what a transport does per request (createContext() with no
//   init returns the shared background context; createContext({}) builds a fresh root scope).
//
//   node bench/chain.mjs [--calls 1000000] [--rounds 5] [--json out.json]
//
// Each case runs `--rounds` times, interleaved with the others, after a warm-up; the median round counts.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { chain, createContext, createContextKey } from "@svckit/endpoint";
import { cliArgs, isMain, machineInfo, markdownTable, median } from "./lib.mjs";

export const CHAIN_OPTIONS = {
  calls: { type: "string", default: "1000000" },
  rounds: { type: "string", default: "5" },
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
};

const DEPTH = 10;
const endpoint = async (_ctx, req) => req.a + req.b;
const noop = (next) => (ctx, req) => next(ctx, req);
const asyncNoop = (next) => async (ctx, req) => next(ctx, req);
const chained = chain(...Array.from({ length: DEPTH }, () => noop))(endpoint);
const chainedAsync = chain(...Array.from({ length: DEPTH }, () => asyncNoop))(endpoint);
const key = createContextKey(0, { description: "bench" });
const req = { a: 1, b: 2 };
let sink = 0;

// One loop function per case, so each call site sees one callee (as a real server's would).
async function loopBare(ctx, n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += await endpoint(ctx, req);
  return s;
}
async function loopChained(ctx, n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += await chained(ctx, req);
  return s;
}
async function loopChainedAsync(ctx, n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += await chainedAsync(ctx, req);
  return s;
}
// The contexts are stored in a ring so they escape, as a transport's context escapes into the endpoint
// call; otherwise V8 may optimise the allocations away and time an empty loop.
const ring = new Array(1024).fill(undefined);
async function loopBackgroundWith(_ctx, n) {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const c = createContext().with(key, i);
    ring[i & 1023] = c;
    s += c.value(key);
  }
  return s;
}
async function loopRootWith(_ctx, n) {
  let s = 0;
  const init = {};
  for (let i = 0; i < n; i++) {
    const c = createContext(init).with(key, i);
    ring[i & 1023] = c;
    s += c.value(key);
  }
  return s;
}

const CASES = [
  { name: "bare endpoint", loop: loopBare },
  { name: `chain of ${DEPTH} no-op middlewares`, loop: loopChained },
  { name: `chain of ${DEPTH} async no-op middlewares`, loop: loopChainedAsync },
  { name: "createContext() + ctx.with(key, v)", loop: loopBackgroundWith },
  { name: "createContext({}) + ctx.with(key, v)", loop: loopRootWith },
];

async function time(loop, ctx, n) {
  const t0 = process.hrtime.bigint();
  sink += await loop(ctx, n);
  return Number(process.hrtime.bigint() - t0) / n;
}

/** Runs every case and returns ns per call (median of rounds) and the derived overheads. */
export async function runChain({ calls, rounds }, log = console.log) {
  const ctx = createContext();
  // Sanity: both paths compute the same answer.
  if ((await chained(ctx, req)) !== 3 || (await chainedAsync(ctx, req)) !== 3) throw new Error("chain broke");
  log(
    `chain bench: node ${process.version}, ${calls.toLocaleString("en-US")} awaited calls × ${rounds} rounds per case`,
  );
  for (let w = 0; w < 3; w++) for (const c of CASES) await time(c.loop, ctx, Math.min(calls, 200_000));
  const samples = CASES.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < CASES.length; i++) samples[i].push(await time(CASES[i].loop, ctx, calls));
  }
  const ns = samples.map((xs) => median(xs));
  const [bare, chain10, chain10Async, bgWith, rootWith] = ns;
  return {
    bench: "chain",
    node: process.version,
    machine: machineInfo(),
    calls,
    rounds,
    depth: DEPTH,
    cases: CASES.map((c, i) => ({ name: c.name, nsPerCall: ns[i], samples: samples[i] })),
    overheadPerMiddlewareNs: (chain10 - bare) / DEPTH,
    overheadPerAsyncMiddlewareNs: (chain10Async - bare) / DEPTH,
    contextNs: { background: bgWith, root: rootWith },
    sink,
  };
}

export function formatChain(result) {
  const bare = result.cases[0].nsPerCall;
  const rows = result.cases.map((c, i) => [
    c.name,
    c.nsPerCall.toFixed(1),
    i === 1 || i === 2 ? `${(c.nsPerCall / bare).toFixed(2)}×` : i === 0 ? "1.00×" : "",
    i === 1
      ? `${result.overheadPerMiddlewareNs.toFixed(1)} ns per middleware`
      : i === 2
        ? `${result.overheadPerAsyncMiddlewareNs.toFixed(1)} ns per middleware`
        : "",
  ]);
  return markdownTable(["case", "ns/call", "vs bare", "overhead"], rows, ["left", "right", "right", "left"]);
}

async function main() {
  const { values } = parseArgs({ args: cliArgs(), options: CHAIN_OPTIONS, strict: true });
  if (values.help) {
    console.log("usage: node bench/chain.mjs [--calls 1000000] [--rounds 5] [--json out.json]");
    return;
  }
  const calls = Number(values.calls);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(calls) || calls < 1)
    throw new Error(`--calls must be a positive integer, got "${values.calls}"`);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error(`--rounds must be a positive integer, got "${values.rounds}"`);
  const result = await runChain({ calls, rounds });
  console.log(`\n${formatChain(result)}`);
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
}

if (isMain(import.meta.url)) {
  main().catch((error) => {
    console.error(`chain bench: ${error.stack ?? error}`);
    process.exit(2);
  });
}
