#!/usr/bin/env node
// Where a server's CPU goes under load, per request: runs HTTP variants of bench/http.mjs one after
// another (server pinned to CPU 0, wrk to CPU 1, as there), samples the server with `perf record -g`
// (cpu-clock) while wrk loads it, and splits the samples, in µs of CPU per request, into:
//   - each package or dependency whose JavaScript frame is the innermost owned frame of the sample
//     (its own code and whatever node, V8 or the kernel did under it, e.g. an IC miss or a syscall);
//   - the rest of the main thread, kernel or user side (node:http, libuv, the TCP stack);
//   - overlapping views of the main thread: all kernel time, the loopback receive path
//     (net_rx_action, which on 127.0.0.1 runs on the sender's CPU: the server pays for wrk's receive
//     path) and waking the reader (sock_def_readable, dearer while wrk sleeps);
//   - other threads (V8's GC helpers and compiler).
// It answers "why does a middleware cost more under load than in process" (issue #6), which
// `--cpu-prof` cannot (it doubles the cost it measures). perf's sampling costs a few percent.
//
//   node bench/perf-split.mjs [--only svckit-http,svckit-http+all3] [--duration 6] [--warmup 2]
//                             [--rounds 1] [--frequency 4000] [--node /path/to/node]
//
// Needs `perf` (Debian: linux-perf) with permission to sample another process, and wrk.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseWrk, runLoadTool, startServer, stopServer, VARIANTS } from "./http.mjs";
import { cliArgs, isMain, loud, markdownTable, median, trackChild } from "./lib.mjs";

const USAGE = `usage: node bench/perf-split.mjs [--only a,b] [--duration 6] [--warmup 2] [--rounds 1]
                                 [--frequency 4000] [--node /path/to/node]`;

/** How long perf samples before wrk starts (attaching takes a moment). */
const LEAD_MS = 200;

/**
 * Node flags for the profiled servers: a perf map names the JIT frames; V8 keeps compiled code where
 * it is (no flushing, no code-space compaction), since perf maps cannot say that an address was
 * freed and reused, and a stale entry would name a startup function for a hot one.
 */
const PERF_FLAGS = [
  "--perf-basic-prof-only-functions",
  "--no-flush-bytecode",
  "--no-flush-baseline-code",
  "--no-compact-code-space",
];

/** A frame of V8's garbage collector. */
const GC_FRAME = /Scavenger|MarkCompact|Heap::Collect|Heap::Perform|MinorMC/;

/** The owner of one stack frame: "@svckit/<package>", a dependency's name, or undefined. */
export function ownerOf(frame) {
  const pkg = /\/packages\/([^/]+)\/(?:dist|src)\//.exec(frame);
  if (pkg) return `@svckit/${pkg[1]}`;
  const dep = /\/node_modules\/\.pnpm\/(@?[^@/]+)@/.exec(frame);
  if (dep) return dep[1].replace("+", "/");
  const plain = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(frame);
  return plain ? plain[1] : undefined;
}

/**
 * Parses `perf script -F tid,ip,sym` output into per-category sample counts: the main thread's
 * samples (thread id `mainTid`) by owner, and the overlapping views named above.
 */
export function splitSamples(text, mainTid) {
  const counts = new Map();
  const add = (key) => counts.set(key, (counts.get(key) ?? 0) + 1);
  const finish = (tid, frames) => {
    if (tid === undefined) return;
    if (tid !== mainTid) {
      add("other threads (GC helpers, compiler)");
      return;
    }
    add("main thread, total");
    const leafIsKernel = frames.length > 0 && frames[0].kernel;
    if (leafIsKernel) add("view: kernel");
    let net = false;
    let wake = false;
    let gc = false;
    let js;
    for (const f of frames) {
      if (!net && f.sym.includes("net_rx_action")) net = true;
      if (!wake && f.sym.includes("sock_def_readable")) wake = true;
      if (!gc && GC_FRAME.test(f.sym)) gc = true;
      if (js === undefined && f.sym.startsWith("JS:")) js = f.sym;
    }
    if (net) add("view: loopback receive path (net_rx_action)");
    if (wake) add("view: waking a reader (sock_def_readable)");
    if (gc) add("view: garbage collection on the main thread");
    if (js !== undefined) add(ownerOf(js) ?? "node's own JavaScript (http, streams, timers) and below");
    else add(leafIsKernel ? "no JavaScript on the stack: kernel" : "no JavaScript on the stack: native");
  };
  let tid;
  let frames = [];
  for (const line of text.split("\n")) {
    const head = /^\s*(\d+)\s*$/.exec(line);
    if (head) {
      finish(tid, frames);
      tid = Number(head[1]);
      frames = [];
      continue;
    }
    const frame = /^\s+([0-9a-f]+)\s+(.*)$/.exec(line);
    if (frame && tid !== undefined) {
      frames.push({ kernel: frame[1].length >= 16 && frame[1].startsWith("ffff"), sym: frame[2] });
    }
  }
  finish(tid, frames);
  return counts;
}

function need(tool, args) {
  const r = spawnSync(tool, args, { stdio: "ignore" });
  if (r.error !== undefined) {
    loud(`perf-split needs ${tool}, which is not installed here`);
    process.exit(2);
  }
}

async function profileOnce(nodeBin, variant, settings, dir) {
  const server = startServer(nodeBin, variant, PERF_FLAGS);
  try {
    const port = await server.port;
    const url = `http://127.0.0.1:${port}/sum`;
    const wrkArgs = ["-t1", "-c50", "-s", join(import.meta.dirname, "sum.lua")];
    await runLoadTool("wrk", [...wrkArgs, `-d${settings.warmup}s`, url], (settings.warmup + 30) * 1000);
    const data = join(dir, `${variant.name}.data`);
    const pid = server.child.pid;
    // perf samples for the length of wrk's run (it starts a moment before wrk and stops by itself).
    const record = new Promise((resolve) => {
      const child = spawn(
        "perf",
        ["record", "-q", "-e", "cpu-clock", "-F", String(settings.frequency), "-g", "-p", String(pid)].concat(
          ["-o", data, "--", "sleep", String(settings.duration)],
        ),
        { stdio: "ignore" },
      );
      trackChild(child);
      child.once("error", resolve);
      child.once("close", resolve);
    });
    await new Promise((r) => setTimeout(r, LEAD_MS));
    const load = await runLoadTool(
      "wrk",
      [...wrkArgs, `-d${settings.duration}s`, url],
      (settings.duration + 30) * 1000,
    );
    await record;
    const { reqPerSec } = parseWrk(load.stdout);
    if (!(reqPerSec > 0)) throw new Error(`wrk reported no requests: ${load.stderr.trim()}`);
    // perf saw the load from wrk's start (LEAD_MS after its own) to its own end.
    const requests = reqPerSec * (settings.duration - LEAD_MS / 1000);
    const script = execFileSync("perf", ["script", "-i", data, "-F", "tid,ip,sym"], {
      maxBuffer: 1 << 30,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    rmSync(data, { force: true });
    const counts = splitSamples(script, pid);
    const usPerSample = 1e6 / settings.frequency;
    const perRequest = new Map([...counts].map(([k, v]) => [k, (v * usPerSample) / requests]));
    return { reqPerSec, perRequest };
  } finally {
    await stopServer(server);
    rmSync(`/tmp/perf-${server.child.pid}.map`, { force: true });
  }
}

async function main() {
  const { values } = parseArgs({
    args: cliArgs(),
    strict: true,
    options: {
      only: { type: "string", default: "svckit-http,svckit-http+all3" },
      duration: { type: "string", default: "6" },
      warmup: { type: "string", default: "2" },
      rounds: { type: "string", default: "1" },
      frequency: { type: "string", default: "4000" },
      node: { type: "string", default: process.execPath },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const settings = {
    duration: Number(values.duration),
    warmup: Number(values.warmup),
    rounds: Number(values.rounds),
    frequency: Number(values.frequency),
  };
  for (const [k, v] of Object.entries(settings)) {
    if (!(Number.isInteger(v) && v > 0)) throw new Error(`--${k} must be a positive integer`);
  }
  const names = values.only.split(",").filter(Boolean);
  const variants = names.map((name) => {
    const v = VARIANTS.find((x) => x.name === name);
    if (v === undefined) throw new Error(`unknown variant "${name}"`);
    return v;
  });
  need("perf", ["--version"]);
  need("wrk", ["--version"]);
  const dir = mkdtempSync(join(tmpdir(), "svckit-perf-"));
  const results = new Map(names.map((n) => [n, []]));
  try {
    for (let round = 1; round <= settings.rounds; round++) {
      for (const variant of variants) {
        const r = await profileOnce(values.node, variant, settings, dir);
        console.log(`round ${round} ${variant.name}: ${Math.round(r.reqPerSec)} req/s`);
        results.get(variant.name).push(r);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${formatSplit(names, results)}`);
}

/** The table: one row per category, one column per variant (median over rounds), then deltas. */
export function formatSplit(names, results) {
  const keys = new Set();
  for (const runs of results.values()) for (const r of runs) for (const k of r.perRequest.keys()) keys.add(k);
  const med = (name, key) => median(results.get(name).map((r) => r.perRequest.get(key) ?? 0));
  const order = [...keys].sort((a, b) => {
    const rank = (k) => (k.startsWith("main") ? 0 : k.startsWith("view") ? 3 : k.startsWith("other") ? 2 : 1);
    return rank(a) - rank(b) || med(names.at(-1), b) - med(names.at(-1), a);
  });
  const header = ["µs of CPU per request", ...names, ...names.slice(1).map((n) => `Δ ${n}`)];
  const fmt = (x) => (x < 0.005 && x > -0.005 ? "0.00" : x.toFixed(2));
  const rows = [
    [
      "req/s",
      ...names.map((n) => String(Math.round(median(results.get(n).map((r) => r.reqPerSec))))),
      ...names.slice(1).map(() => ""),
    ],
    ...order.map((k) => [
      k,
      ...names.map((n) => fmt(med(n, k))),
      ...names.slice(1).map((n) => {
        const d = med(n, k) - med(names[0], k);
        return `${d >= 0 ? "+" : ""}${fmt(d)}`;
      }),
    ]),
  ];
  return markdownTable(
    header,
    rows,
    header.map((_, i) => (i === 0 ? "left" : "right")),
  );
}

if (isMain(import.meta.url)) {
  main().catch((error) => {
    console.error(`perf-split: ${error.message}`);
    process.exit(2);
  });
}
