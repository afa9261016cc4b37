#!/usr/bin/env node
// Microbenchmark of @svckit/lb's balancers over 3, 100 and 10 000 instances (a static instancer and an
// endpointer from @svckit/sd; instance i has weight 1 + i % 5):
// - pick: `balancer.pick()` alone, the balancer straight over the endpointer → ns per pick;
// - call: one awaited call through `createBalancedEndpoint(endpointer, { balancer })` (outlier detection
//   on, as by default) to a trivial `async (ctx, req) => req.a + req.b` endpoint: pick, `start`, the
//   endpoint, `end` and the detector's bookkeeping → ns per call, next to the bare endpoint's.
// p2c is measured warm (every instance has completed one call, so it has a latency estimate) and, for
// pick, also cold (no call has completed yet: an instance without an estimate starts at the mean of the
// others, which p2c computes by looking at every instance).
//
//   node bench/lb.mjs [--calls 300000] [--rounds 5] [--sizes 3,100,10000] [--budget-ms 200] [--json out.json]
//
// Each case runs `--rounds` times, interleaved with the others, after a warm-up; the median round counts.
// A case whose `--calls` would take longer than `--budget-ms` per round (an O(n) pick over 10 000
// instances) runs fewer calls, as many as fit the budget by the warm-up's speed (at least 100); the table
// marks those.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createContext } from "@svckit/endpoint";
// bench/package.json does not list @svckit/lb and @svckit/sd (adding them needs a `pnpm install`): load
// their builds by path. Their own imports of @svckit/endpoint resolve to the same packages/endpoint.
import {
  createBalancedEndpoint,
  leastRequests,
  p2c,
  random,
  roundRobin,
  weighted,
} from "../packages/lb/dist/index.js";
import { createEndpointer, createStaticInstancer } from "../packages/sd/dist/index.js";
import { cliArgs, isMain, machineInfo, markdownTable, median } from "./lib.mjs";

export const LB_OPTIONS = {
  calls: { type: "string", default: "300000" },
  rounds: { type: "string", default: "5" },
  sizes: { type: "string", default: "3,100,10000" },
  "budget-ms": { type: "string", default: "200" },
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
};

export const LB_USAGE =
  "usage: node bench/lb.mjs [--calls 300000] [--rounds 5] [--sizes 3,100,10000] [--budget-ms 200] [--json out.json]";

/** The balancers, as `createBalancedEndpoint`'s `balancer` option takes them. */
const BALANCERS = [
  { name: "roundRobin", make: (source) => roundRobin(source) },
  { name: "random", make: (source) => random(source) },
  { name: "weighted (smooth WRR ≤ 16, EEVDF above)", make: (source) => weighted(source) },
  { name: "leastRequests (ties at random)", make: (source) => leastRequests(source) },
  {
    name: "leastRequests (ties in turn)",
    make: (source) => leastRequests(source, { tieBreak: "roundRobin" }),
  },
  { name: "p2c (peak EWMA), warm", make: (source) => p2c(source), warm: true },
  { name: "p2c (peak EWMA), cold", make: (source) => p2c(source), pickOnly: true },
];

const endpoint = async (_ctx, req) => req.a + req.b;
const req = { a: 1, b: 2 };
let sink = 0;

// Each case gets its own compiled copy of its loop (a new Function per case), so each `pick` or call
// site sees one balancer, as an application's would; with one shared loop V8's feedback there would turn
// megamorphic and every case would pay for the others.
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
const PICK_LOOP =
  "let misses = 0; for (let i = 0; i < n; i++) if (balancer.pick() === undefined) misses++; return misses;";
const CALL_LOOP = "let s = 0; for (let i = 0; i < n; i++) s += await call(ctx, req); return s;";
const pickLoop = () => new Function("balancer", "n", PICK_LOOP);
const callLoop = () => new AsyncFunction("call", "ctx", "req", "n", CALL_LOOP);

function endpointerOf(size) {
  const instances = Array.from({ length: size }, (_, i) => ({
    address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`,
    weight: 1 + (i % 5),
  }));
  return createEndpointer(createStaticInstancer(instances), () => ({ endpoint }));
}

/** Gives every instance one completed call, so a p2c balancer has a latency estimate for each. */
function warmUp(balancer, entries) {
  for (const entry of entries) balancer.start(entry).end("success");
}

/** The cases: bare endpoint, then per size and balancer a pick case and (most) a call case. */
function buildCases(sizes) {
  const cases = [];
  const endpointers = [];
  const bare = callLoop();
  cases.push({
    kind: "call",
    balancer: "bare endpoint",
    size: undefined,
    run: (ctx, n) => bare(endpoint, ctx, req, n),
  });
  for (const size of sizes) {
    const endpointer = endpointerOf(size);
    endpointers.push(endpointer);
    const entries = endpointer.endpoints();
    if (entries.length !== size)
      throw new Error(`endpointer has ${entries.length} entries, expected ${size}`);
    for (const b of BALANCERS) {
      const balancer = b.make(endpointer);
      if (b.warm) warmUp(balancer, entries);
      const loop = pickLoop();
      cases.push({ kind: "pick", balancer: b.name, size, run: (_ctx, n) => loop(balancer, n) });
      if (b.pickOnly) continue;
      let inner;
      const call = createBalancedEndpoint(endpointer, {
        balancer: (source) => {
          inner = b.make(source);
          return inner;
        },
      });
      if (b.warm) warmUp(inner, entries);
      const calls = callLoop();
      cases.push({ kind: "call", balancer: b.name, size, run: (ctx, n) => calls(call, ctx, req, n) });
    }
  }
  return { cases, close: () => Promise.all(endpointers.map((e) => e.close())) };
}

async function time(c, ctx, n) {
  const t0 = process.hrtime.bigint();
  const out = await c.run(ctx, n);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (c.kind === "pick" && out !== 0) throw new Error(`${c.balancer} over ${c.size}: pick() found nothing`);
  if (c.kind === "call" && out !== 3 * n)
    throw new Error(`${c.balancer} over ${c.size}: a call answered wrongly`);
  sink += out;
  return ns;
}

/** Runs every case and returns ns per pick or call (median of rounds). */
export async function runLb({ calls, rounds, sizes = [3, 100, 10_000], budgetMs = 200 }, log = console.log) {
  const { cases, close } = buildCases(sizes);
  const ctx = createContext();
  try {
    log(
      `lb bench: node ${process.version}, up to ${calls.toLocaleString("en-US")} picks or awaited calls × ${rounds} rounds per case, ` +
        `${sizes.map((s) => s.toLocaleString("en-US")).join(", ")} instances, ${budgetMs} ms budget per case and round`,
    );
    // Warm-up: three passes of every case, each at most 100 000 calls or about the budget; the last
    // pass's speed decides how many calls fit the budget.
    const perRound = cases.map(() => Math.min(calls, 100_000));
    for (let w = 0; w < 3; w++) {
      for (let i = 0; i < cases.length; i++) {
        let n = Math.min(perRound[i], 100);
        let spent = 0;
        let done = 0;
        while (done < perRound[i] && spent < budgetMs * 1e6) {
          const ns = await time(cases[i], ctx, n);
          spent += ns * n;
          done += n;
          n = Math.min(n * 4, perRound[i] - done);
        }
        perRound[i] = Math.min(calls, Math.max(100, Math.floor((budgetMs * 1e6) / (spent / done))));
      }
    }
    const samples = cases.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < cases.length; i++) samples[i].push(await time(cases[i], ctx, perRound[i]));
    }
    return {
      bench: "lb",
      node: process.version,
      machine: machineInfo(),
      calls,
      rounds,
      sizes,
      budgetMs,
      cases: cases.map((c, i) => ({
        kind: c.kind,
        balancer: c.balancer,
        size: c.size,
        calls: perRound[i],
        ns: median(samples[i]),
        samples: samples[i],
      })),
      sink,
    };
  } finally {
    await close();
  }
}

/** The result as a Markdown table: a row per balancer, pick and call columns per size. */
export function formatLb(result) {
  const { sizes } = result;
  const find = (kind, balancer, size) =>
    result.cases.find((c) => c.kind === kind && c.balancer === balancer && c.size === size);
  const capped = new Set();
  const cell = (c) => {
    if (c === undefined) return "";
    const text = c.ns >= 100 ? c.ns.toFixed(0) : c.ns.toFixed(1);
    if (c.calls >= result.calls) return text;
    capped.add(c.calls);
    return `${text}*`;
  };
  const balancers = [...new Set(result.cases.filter((c) => c.size !== undefined).map((c) => c.balancer))];
  const bare = find("call", "bare endpoint", undefined);
  const rows = [
    ["bare endpoint (no balancer)", ...sizes.map(() => ""), ...sizes.map(() => cell(bare))],
    ...balancers.map((b) => [
      b,
      ...sizes.map((s) => cell(find("pick", b, s))),
      ...sizes.map((s) => cell(find("call", b, s))),
    ]),
  ];
  const n = (s) => s.toLocaleString("en-US");
  const header = [
    "balancer",
    ...sizes.map((s) => `pick ns, ${n(s)}`),
    ...sizes.map((s) => `call ns, ${n(s)}`),
  ];
  const table = markdownTable(
    header,
    rows,
    header.map((_, i) => (i === 0 ? "left" : "right")),
  );
  if (capped.size === 0) return table;
  const counts = [...capped].sort((a, b) => a - b);
  const range = counts.length === 1 ? n(counts[0]) : `${n(counts[0])}–${n(counts.at(-1))}`;
  return `${table}\n\n\\* ran ${range} instead of ${n(result.calls)} calls per round, as many as fit the ${result.budgetMs} ms budget`;
}

function positiveInt(value, flag) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

/** The run settings from parsed options (shared with run.mjs). */
export function lbSettings(values) {
  return {
    calls: positiveInt(values.calls, "--calls"),
    rounds: positiveInt(values.rounds, "--rounds"),
    sizes: values.sizes.split(",").map((s) => positiveInt(s.trim(), "--sizes")),
    budgetMs: positiveInt(values["budget-ms"], "--budget-ms"),
  };
}

async function main() {
  const { values } = parseArgs({ args: cliArgs(), options: LB_OPTIONS, strict: true });
  if (values.help) {
    console.log(LB_USAGE);
    return;
  }
  const result = await runLb(lbSettings(values));
  console.log(`\n${formatLb(result)}`);
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
}

if (isMain(import.meta.url)) {
  main().catch((error) => {
    console.error(`lb bench: ${error.stack ?? error}`);
    process.exit(2);
  });
}
