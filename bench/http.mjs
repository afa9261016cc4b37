#!/usr/bin/env node
// HTTP load benchmark: POST /sum {"a":1,"b":2} → 200 {"v":3} against four servers, each a child
// process pinned to CPU 0 while wrk (1 thread, 50 connections) runs pinned to CPU 1. Prints req/s,
// p99 latency and the ratio of each svckit variant to its raw baseline, measured in the same run.
//
//   node bench/http.mjs [--duration 10] [--warmup 3] [--connections 50] [--rounds 1] [--keep-servers]
//                       [--node /path/to/node] [--only raw-http,svckit-http] [--json out.json]
import { spawn } from "node:child_process";
import http from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchAuthorization } from "./auth.mjs";
import {
  cpuDelta,
  cpuSeconds,
  cpuSnapshot,
  distStamp,
  fmtInterval,
  gitHead,
  INTERVAL_NOTE,
  logPrepared,
  loud,
  machineInfo,
  markdownTable,
  median,
  medianInterval,
  nodeVersion,
  otherCpu,
  runBenchCli,
  serverModeText,
  serverPool,
  startFailed,
  trackChild,
} from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const SERVER_CPU = "0";
/** The CPU every load generator (wrk, h2load) is pinned to. */
export const WRK_CPU = "1";
export const READY_TIMEOUT_MS = 15_000;
/** Above this much CPU (in cores) used by other processes during a measurement, say so. */
export const BUSY_CORES = 0.1;
const STOP_TIMEOUT_MS = 3_000;

/**
 * What a variant is called with: wrk's script, and the answer the harness checks before and after the
 * load (once each; wrk itself only counts non-2xx statuses). Every variant uses `sum` unless it names
 * another.
 */
export const CALLS = {
  sum: {
    path: "/sum",
    body: '{"a":1,"b":2}',
    lua: "sum.lua",
    expected: '{"v":3}',
    isExpected: (parsed) => parsed.v === 3 && Object.keys(parsed).length === 1,
  },
  jsonrpc: {
    path: "/",
    body: '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}',
    lua: "jsonrpc-sum.lua",
    expected: '{"jsonrpc":"2.0","result":{"v":3},"id":1}',
    isExpected: (parsed) =>
      parsed.jsonrpc === "2.0" &&
      parsed.id === 1 &&
      parsed.result?.v === 3 &&
      Object.keys(parsed.result).length === 1 &&
      !("error" in parsed),
  },
};

/** The server variants, in run order; each svckit variant runs right after its baseline. */
export const VARIANTS = [
  { name: "raw-http", server: "servers/raw-http.mjs" },
  { name: "svckit-http", server: "servers/svckit-http.mjs", baseline: "raw-http", target: 0.95 },
  { name: "raw-express", server: "servers/raw-express.mjs" },
  { name: "svckit-express", server: "servers/svckit-express.mjs", baseline: "raw-express", target: 0.97 },
  // Observability on the svckit route (issue #6), each against the bare svckit route of the same run.
  // Not in the default set: ask for them with --only observability (or by name).
  ...[
    // The observed server with nothing composed: what loading the observability libraries (OTel API,
    // winston, prom-client) costs the bare route by itself, if anything.
    ["svckit-http+none", ""],
    ["svckit-http+log", "log"],
    ["svckit-http+log-winston", "log-winston"],
    ["svckit-http+metrics", "metrics"],
    ["svckit-http+tracing", "tracing"],
    ["svckit-http+all3", "log,metrics,tracing"],
    // The same with a production-style sampler: 10% of new traces recorded (parent-based ratio).
    ["svckit-http+tracing-10%", "tracing,sampled"],
    ["svckit-http+all3-10%", "log,metrics,tracing,sampled"],
    // Every span recorded, the SDK making its ids with @svckit/tracing's createIdGenerator (as that
    // package's README advises) instead of its default generator.
    ["svckit-http+tracing-ids", "tracing,ids"],
    ["svckit-http+all3-ids", "log,metrics,tracing,ids"],
    // @svckit/tracing's own cost: no SDK registered, so the API's no-op tracer hands out non-recording
    // spans; what is left is the middleware (propagation extract, span start/end calls, contexts).
    ["svckit-http+tracing-nosdk", "tracing,nosdk"],
    ["svckit-http+all3-nosdk", "log,metrics,tracing,nosdk"],
  ].map(([name, set]) => ({
    name,
    server: "servers/svckit-http-observed.mjs",
    args: [set],
    baseline: "svckit-http",
    target: name === "svckit-http+all3" || name === "svckit-http+all3-ids" ? 0.8 : undefined,
    optional: true,
  })),
  // Yardsticks for the observability group: the bare svckit route with a busy-wait of 1 and 2 µs per
  // call in the endpoint, so a run shows what a known amount of per-call work costs at load on this
  // machine (a middleware's in-process cost from observability.mjs can be read against it).
  ...[1, 2].map((us) => ({
    name: `svckit-http+spin-${us}us`,
    server: "servers/svckit-http.mjs",
    args: [`spin=${us}`],
    baseline: "svckit-http",
    optional: true,
  })),
  // Bearer-token authentication on the svckit route (@svckit/auth-jwt's authenticate), each against the
  // bare svckit route of the same run; `headers` go with every request (wrk -H and the readiness probe).
  // The verifier's cache is on by default, so "-nocache" pays the signature check on every request.
  // Not in the default set: ask for them with --only auth (or by name).
  ...["hs256-nocache", "hs256", "es256-nocache", "es256"].map((mode) => ({
    name: `svckit-http+jwt-${mode}`,
    server: "servers/svckit-http-jwt.mjs",
    args: [mode],
    headers: { authorization: benchAuthorization(mode.slice(0, 5).toUpperCase()) },
    baseline: "svckit-http",
    optional: true,
  })),
  // examples/addsvc with its whole middleware chain (rate limits lifted), over HTTP JSON and JSON-RPC,
  // against raw node:http servers answering the same call. Not in the default set: --only addsvc.
  { name: "addsvc-http", server: "servers/addsvc.mjs", args: ["http"], baseline: "raw-http", optional: true },
  { name: "raw-jsonrpc", server: "servers/raw-jsonrpc.mjs", call: "jsonrpc", optional: true },
  {
    name: "addsvc-jsonrpc",
    server: "servers/addsvc.mjs",
    args: ["jsonrpc"],
    call: "jsonrpc",
    baseline: "raw-jsonrpc",
    optional: true,
  },
];

/** Named groups of variants for --only. */
export const GROUPS = {
  observability: [
    "svckit-http",
    ...VARIANTS.filter((v) => v.server.endsWith("observed.mjs")).map((v) => v.name),
    "svckit-http+spin-1us",
    "svckit-http+spin-2us",
  ],
  auth: ["svckit-http", ...VARIANTS.filter((v) => v.server.endsWith("-jwt.mjs")).map((v) => v.name)],
  addsvc: ["raw-http", "addsvc-http", "raw-jsonrpc", "addsvc-jsonrpc"],
};

/** The call `variant` is measured with. */
const callOf = (variant) => CALLS[variant.call ?? "sum"];

/** Options understood by this bench (node:util parseArgs format); run.mjs accepts them too. */
export const HTTP_OPTIONS = {
  duration: { type: "string", default: "10" },
  warmup: { type: "string", default: "3" },
  connections: { type: "string", default: "50" },
  rounds: { type: "string", default: "1" },
  "keep-servers": { type: "boolean" },
  "wait-quiet": { type: "string", default: "0" },
  "retry-busy": { type: "string", default: "0" },
  node: { type: "string" },
  only: { type: "string" },
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
};

export const HTTP_USAGE = `options:
  --duration N      seconds of measured load per variant (default 10)
  --warmup N        seconds of warm-up load per variant (with --keep-servers: once per server), not
                    measured (default 3)
  --connections N   wrk connections (default 50; wrk always uses 1 thread)
  --rounds N        repeat the whole set N times, report medians (default 1)
  --keep-servers    paired slices: start, check and warm up every variant's server once, keep them all
                    running, and measure the variants back to back in each round; for a machine whose
                    speed drifts, e.g. --keep-servers --rounds 10 --duration 2 (default: a fresh server
                    per variant and round)
  --wait-quiet N    before each variant (with --keep-servers: before each round), wait up to N s until
                    other processes use < ${BUSY_CORES} cores (default 0)
  --retry-busy N    measure a variant again (up to N times) when other processes used > ${BUSY_CORES} cores
                    during its measurement; the least disturbed measurement counts (default 0)
  --node PATH       Node binary that runs the servers (default: the one running this script)
  --only a,b        run only these variants: ${VARIANTS.map((v) => v.name).join(", ")};
                    "observability" = svckit-http and its +log/+log-winston/+metrics/+tracing/+all3 variants, tracing also
                    with 10% sampling, with @svckit/tracing's id generator (-ids) and with no SDK (-nosdk: the
                    middleware's own cost), and the +spin-1us/+spin-2us yardsticks (not run by default)
                    "auth" = svckit-http and its +jwt-hs256/es256 variants, cache on and off (not run by default)
                    "addsvc" = examples/addsvc's full stack over HTTP and JSON-RPC vs raw node:http (not run by default)
  --json FILE       also write the results as JSON to FILE`;

export function positiveInt(name, raw) {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
}

/** Turns parsed option values into validated settings. */
export function httpSettings(values) {
  const names = VARIANTS.map((v) => v.name);
  const only =
    values.only === undefined
      ? VARIANTS.filter((v) => !v.optional).map((v) => v.name)
      : values.only
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
          .flatMap((s) => GROUPS[s] ?? [s]);
  for (const name of only) {
    if (!names.includes(name))
      throw new Error(`--only: unknown variant "${name}" (known: ${names.join(", ")})`);
  }
  return {
    duration: positiveInt("duration", values.duration),
    warmup: values.warmup === "0" ? 0 : positiveInt("warmup", values.warmup),
    connections: positiveInt("connections", values.connections),
    rounds: positiveInt("rounds", values.rounds),
    keepServers: values["keep-servers"] === true,
    waitQuiet: values["wait-quiet"] === "0" ? 0 : positiveInt("wait-quiet", values["wait-quiet"]),
    retryBusy: values["retry-busy"] === "0" ? 0 : positiveInt("retry-busy", values["retry-busy"]),
    node: values.node ?? process.execPath,
    variants: VARIANTS.filter((v) => only.includes(v.name)),
    json: values.json,
  };
}

// ---------------------------------------------------------------------------------------------
// server processes

/**
 * Starts `variant.server` (relative to bench/) pinned to CPU 0, node given `nodeFlags` first; it must
 * print "listening <port>".
 */
export function startServer(nodeBin, variant, nodeFlags = []) {
  const child = spawn(
    "taskset",
    ["-c", SERVER_CPU, nodeBin, ...nodeFlags, join(here, variant.server), ...(variant.args ?? [])],
    {
      cwd: here,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  trackChild(child);
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-4_000);
  });
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", (error) => resolve({ code: null, signal: null, error }));
  });
  const port = new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`server reported no port within ${READY_TIMEOUT_MS / 1000} s`)),
      READY_TIMEOUT_MS,
    );
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exited.then(({ code, signal, error }) => {
      clearTimeout(timer);
      reject(
        new Error(
          error ? `cannot start server: ${error.message}` : `server exited (code ${code}, signal ${signal})`,
        ),
      );
    });
  });
  port.catch(() => {});
  return {
    child,
    port,
    exited,
    stderr: () => stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
  };
}

/** Stops the server we spawned, by its PID: SIGTERM, then SIGKILL if it lingers. */
export async function stopServer(server) {
  if (!server.alive()) return;
  server.child.kill("SIGTERM");
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), STOP_TIMEOUT_MS).unref());
  if ((await Promise.race([server.exited, timeout])) === "timeout") {
    server.child.kill("SIGKILL");
    await server.exited;
  }
}

/** One `call` (POST /sum {"a":1,"b":2} by default) on a fresh connection, with the variant's extra `headers`. */
function probe(port, headers = {}, call = CALLS.sum) {
  return new Promise((resolve, reject) => {
    const body = call.body;
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: call.path,
        agent: false,
        timeout: 2_000,
        headers: {
          ...headers,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode,
            contentType: res.headers["content-type"] ?? "",
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("probe timed out")));
    req.on("error", reject);
    req.end(body);
  });
}

function checkAnswer({ status, contentType, body }, call = CALLS.sum) {
  if (status !== 200) return `status ${status}, body ${JSON.stringify(body.slice(0, 200))}`;
  if (!/^application\/json\b/i.test(contentType)) return `content-type "${contentType}"`;
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `body is not JSON: ${JSON.stringify(body.slice(0, 200))}`;
  }
  if (parsed === null || typeof parsed !== "object" || !call.isExpected(parsed)) {
    return `body ${JSON.stringify(body.slice(0, 200))}, expected ${call.expected}`;
  }
  return undefined;
}

/** Waits until the server answers `call` correctly; throws if it answers wrongly or never. */
async function waitReady(server, headers, call) {
  const port = await server.port;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    let answer;
    try {
      answer = await probe(port, headers, call);
    } catch (error) {
      if (!server.alive()) throw new Error("server exited while starting");
      if (Date.now() > deadline) throw new Error(`server never answered: ${error.message}`);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const wrong = checkAnswer(answer, call);
    if (wrong !== undefined) throw new Error(`wrong answer to POST ${call.path}: ${wrong}`);
    return port;
  }
}

// ---------------------------------------------------------------------------------------------
// wrk

/** Runs a load generator (`wrk`, `h2load`) pinned to WRK_CPU, killed after `timeoutMs`. */
export function runLoadTool(tool, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn("taskset", ["-c", WRK_CPU, tool, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    trackChild(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}${error.message}`, timedOut });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

const runWrk = (args, timeoutMs) => runLoadTool("wrk", args, timeoutMs);

const UNIT_MS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

/** Extracts req/s, latency percentiles, request count and error counts from wrk's report. */
export function parseWrk(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const latency = {};
  for (const m of text.matchAll(/^\s*(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm)) {
    latency[`p${m[1]}`] = Number(m[2]) * UNIT_MS[m[3]];
  }
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = sock
    ? { connect: +sock[1], read: +sock[2], write: +sock[3], timeout: +sock[4] }
    : { connect: 0, read: 0, write: 0, timeout: 0 };
  return {
    reqPerSec: num(/^Requests\/sec:\s+([\d.]+)/m),
    requests: num(/^\s*(\d+) requests in /m),
    latencyMs: latency,
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) ?? 0,
    socketErrors,
  };
}

// ---------------------------------------------------------------------------------------------
// a server (start, answer check, warm-up) and one measurement on it (one variant, one round)

export const isBusy = (row) => row.cpu !== undefined && row.cpu.otherCores + row.cpu.stealCores > BUSY_CORES;

/** Waits (up to `seconds`) until other processes use less than BUSY_CORES over 2 s; returns the last sample. */
export async function waitQuiet(seconds, log = console.log) {
  const deadline = Date.now() + seconds * 1000;
  let said = false;
  for (;;) {
    const before = cpuSnapshot();
    await new Promise((r) => setTimeout(r, 2_000));
    const cpu = otherCpu(before, cpuSnapshot());
    if (cpu.otherCores + cpu.stealCores < BUSY_CORES) return cpu;
    if (Date.now() >= deadline) {
      log(`  still not quiet after ${seconds}s (other processes: ${cpu.otherCores} cores); measuring anyway`);
      return cpu;
    }
    if (!said) {
      const who = cpu.top.map((p) => `${p.name}[${p.pid}] ${p.cores}`).join(", ");
      log(
        `  waiting up to ${seconds}s for a quiet machine (other processes: ${cpu.otherCores} cores: ${who})`,
      );
      said = true;
    }
  }
}

/**
 * Starts `variant`'s server, waits until it gives the right answer and warms it up with --warmup
 * seconds of wrk. Returns what {@link measureVariant} needs; `ready` is false when the server did not
 * answer rightly. Its `problems` (also a failed warm-up) go into every row measured on this server.
 */
async function prepareVariant(variant, settings) {
  const call = callOf(variant);
  const server = startServer(settings.node, variant);
  const prepared = { variant, call, server, ready: false, problems: [] };
  try {
    prepared.port = await waitReady(server, variant.headers, call);
  } catch (error) {
    return startFailed(prepared, server, error);
  }
  prepared.ready = true;
  prepared.url = `http://127.0.0.1:${prepared.port}${call.path}`;
  prepared.wrkArgs = ["-t1", `-c${settings.connections}`, "-s", join(here, call.lua)];
  for (const [name, value] of Object.entries(variant.headers ?? {}))
    prepared.wrkArgs.push("-H", `${name}: ${value}`);
  if (settings.warmup > 0) {
    const warm = await runWrk(
      [...prepared.wrkArgs, `-d${settings.warmup}s`, prepared.url],
      (settings.warmup + 30) * 1000,
    );
    if (warm.code !== 0)
      prepared.problems.push(`warm-up wrk exited with ${warm.code}: ${warm.stderr.trim()}`);
  }
  return prepared;
}

/** One measurement (--duration seconds of wrk) on a prepared server, then the answer checked again. */
async function measureVariant(prepared, settings) {
  const { variant, call, server } = prepared;
  const row = { variant: variant.name, valid: false, problems: [...prepared.problems] };
  if (!prepared.ready) return row;
  if (!server.alive()) {
    row.problems.push("server exited before this measurement");
    return row;
  }
  row.pid = server.child.pid;
  const before = cpuSnapshot();
  const serverBefore = cpuSeconds(server.child.pid);
  const run = await runWrk(
    [...prepared.wrkArgs, `-d${settings.duration}s`, "--latency", prepared.url],
    (settings.duration + 30) * 1000,
  );
  const serverCpu = cpuDelta(serverBefore, cpuSeconds(server.child.pid));
  row.cpu = otherCpu(before, cpuSnapshot(), [server.child.pid]);
  row.wrkOutput = run.stdout;
  Object.assign(row, parseWrk(run.stdout));
  // The server's own CPU time per request: steadier than req/s when other processes share the cores.
  if (serverCpu !== undefined && row.requests > 0) row.serverCpuUsPerReq = (serverCpu * 1e6) / row.requests;
  if (run.timedOut) row.problems.push("wrk did not finish in time and was killed");
  if (run.code !== 0) row.problems.push(`wrk exited with ${run.code}: ${run.stderr.trim()}`);
  if (!(row.reqPerSec > 0) || !(row.requests > 0)) row.problems.push("wrk reported no requests");
  if (row.latencyMs.p99 === undefined) row.problems.push("wrk reported no p99 latency");
  if (row.non2xx > 0) row.problems.push(`wrk saw ${row.non2xx} non-2xx/3xx responses`);
  const se = row.socketErrors;
  if (se.connect + se.read + se.write + se.timeout > 0) {
    row.problems.push(
      `wrk saw socket errors: connect ${se.connect}, read ${se.read}, write ${se.write}, timeout ${se.timeout}`,
    );
  }
  if (!server.alive()) row.problems.push("server exited during the run");
  else {
    try {
      const wrong = checkAnswer(await probe(prepared.port, variant.headers, call), call);
      if (wrong !== undefined) row.problems.push(`wrong answer after the run: ${wrong}`);
    } catch (error) {
      row.problems.push(`no answer after the run: ${error.message}`);
    }
  }
  row.valid = row.problems.length === 0;
  return row;
}

// ---------------------------------------------------------------------------------------------
// the whole benchmark

export const fmtRps = (x) => (x === undefined ? "—" : Math.round(x).toLocaleString("en-US"));
export const fmtMs = (x) => (x === undefined ? "—" : x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(1)} ms`);

/**
 * Measures once with `measure()` (which returns a row with `valid`, `reqPerSec`, `latencyMs` and
 * `cpu`), and again up to `retryBusy` times while the kept measurement was disturbed by other
 * processes (see isBusy); keeps the least disturbed valid one. The others are listed, for the
 * record, as `row.discarded`; `row.attempts` counts them all.
 */
export async function measureRetryingBusy(measure, label, retryBusy, log = console.log) {
  let row = await measure();
  let attempts = 1;
  const discarded = [];
  let latest = row;
  while (attempts <= retryBusy && row.valid && isBusy(row)) {
    const seen = latest.valid
      ? `${fmtRps(latest.reqPerSec)} req/s while other processes used ${latest.cpu.otherCores} cores`
      : "invalid";
    log(`  ${label} attempt ${attempts}: ${seen}; measuring again`);
    const again = await measure();
    latest = again;
    attempts++;
    if (
      again.valid &&
      again.cpu.otherCores + again.cpu.stealCores < row.cpu.otherCores + row.cpu.stealCores
    ) {
      discarded.push(row);
      row = again;
    } else discarded.push(again);
  }
  row.attempts = attempts;
  if (discarded.length > 0) {
    // For the record (JSON only): what the measurements that do not count saw.
    row.discarded = discarded.map((d) => ({
      valid: d.valid,
      reqPerSec: d.reqPerSec,
      p99Ms: d.latencyMs?.p99,
      cpu: d.cpu,
      problems: d.problems,
    }));
  }
  return row;
}

/** Runs every selected variant `settings.rounds` times and returns per-round rows and a summary. */
export async function runHttp(settings, log = console.log) {
  const startedAt = new Date().toISOString();
  const distBefore = distStamp();
  const serverNode = nodeVersion(settings.node);
  const machine = machineInfo();
  if (machine.nproc < 2)
    loud(`this machine has ${machine.nproc} CPU; the bench pins servers to CPU 0 and wrk to CPU 1`);
  log(
    `http bench: servers on ${settings.node} (${serverNode}) pinned to CPU ${SERVER_CPU}; wrk pinned to CPU ${WRK_CPU}`,
  );
  log(`  mode: ${serverModeText(settings)}`);
  log(
    `  wrk -t1 -c${settings.connections}: ` +
      (settings.keepServers
        ? `${settings.warmup}s warm-up per server once, then ${settings.duration}s measured per variant in each round, `
        : `${settings.warmup}s warm-up + ${settings.duration}s measured per variant, `) +
      `${settings.rounds} round(s), POST /sum {"a":1,"b":2}` +
      (settings.variants.some((v) => v.call === "jsonrpc")
        ? ` (JSON-RPC variants: POST / ${CALLS.jsonrpc.body})`
        : ""),
  );
  const pool = serverPool({
    keep: settings.keepServers,
    stop: (prepared) => stopServer(prepared.server),
    quiet: settings.waitQuiet > 0 ? () => waitQuiet(settings.waitQuiet, log) : undefined,
  });
  const rounds = [];
  try {
    if (pool.keep) {
      const kept = await pool.prepareAll(
        settings.variants.map((variant) => [variant.name, () => prepareVariant(variant, settings)]),
      );
      for (const p of kept) logPrepared(p.variant.name, p, log);
    }
    for (let r = 0; r < settings.rounds; r++) {
      // Alternate the order each round so neither side of a pair always runs first.
      const order = r % 2 === 0 ? settings.variants : [...settings.variants].reverse();
      const rows = [];
      await pool.startRound();
      for (const variant of order) {
        const row = await measureRetryingBusy(
          () =>
            pool.use(
              variant.name,
              () => prepareVariant(variant, settings),
              (prepared) => measureVariant(prepared, settings),
            ),
          variant.name,
          settings.retryBusy,
          log,
        );
        row.round = r + 1;
        rows.push(row);
        const tag = `[round ${r + 1}/${settings.rounds}] ${variant.name.padEnd(15)}`;
        const busy =
          row.cpu === undefined
            ? ""
            : `   other processes: ${row.cpu.otherCores} cores, steal ${row.cpu.stealCores}`;
        if (row.valid)
          log(`${tag} ${fmtRps(row.reqPerSec).padStart(8)} req/s   p99 ${fmtMs(row.latencyMs.p99)}${busy}`);
        else {
          log(`${tag} INVALID ${row.reqPerSec === undefined ? "" : `(${fmtRps(row.reqPerSec)} req/s)`}`);
          loud(`${variant.name} (round ${r + 1}) is INVALID:\n${row.problems.join("\n")}`);
        }
      }
      rounds.push(rows);
    }
  } finally {
    await pool.stopAll();
  }

  const distAfter = distStamp();
  const distChanged = distAfter.mtimeMs !== distBefore.mtimeMs;
  if (distChanged) {
    loud(
      `the dist of endpoint, codec-json or transport-http changed during the run (newest: ${distAfter.path} at ${new Date(distAfter.mtimeMs).toISOString()}):\n` +
        "someone rebuilt the packages; variants may have measured different code. Re-run.",
    );
  }

  const rowOf = (rows, name) => rows.find((x) => x.variant === name && x.valid);
  const summary = settings.variants.map((variant) => {
    const mine = rounds.map((rows) => rowOf(rows, variant.name));
    const valid = mine.filter(Boolean);
    const s = {
      variant: variant.name,
      validRounds: valid.length,
      rounds: settings.rounds,
      reqPerSec: median(valid.map((x) => x.reqPerSec)),
      p99Ms: median(valid.map((x) => x.latencyMs.p99)),
      serverCpuUsPerReq: median(valid.map((x) => x.serverCpuUsPerReq).filter((x) => x !== undefined)),
      perRound: mine.map((x) => x?.reqPerSec ?? null),
    };
    if (variant.baseline !== undefined) {
      s.baseline = variant.baseline;
      s.target = variant.target;
      // The ratio of each round's pair (run back to back), then the median of those ratios.
      const ratios = rounds
        .map((rows) => {
          const a = rowOf(rows, variant.name);
          const b = rowOf(rows, variant.baseline);
          return a && b ? a.reqPerSec / b.reqPerSec : undefined;
        })
        .filter((x) => x !== undefined);
      s.ratio = median(ratios);
      s.ratioInterval = medianInterval(ratios);
      s.ratioPerRound = ratios;
      const cpuRatios = rounds
        .map((rows) => {
          const a = rowOf(rows, variant.name)?.serverCpuUsPerReq;
          const b = rowOf(rows, variant.baseline)?.serverCpuUsPerReq;
          return a !== undefined && b !== undefined ? a / b : undefined;
        })
        .filter((x) => x !== undefined);
      s.cpuPerReqRatio = median(cpuRatios);
      s.result =
        s.ratio === undefined
          ? settings.variants.some((v) => v.name === variant.baseline)
            ? "INVALID"
            : "n/a"
          : variant.target === undefined
            ? ""
            : s.ratio >= variant.target
              ? "PASS"
              : "MISS";
    } else {
      s.result = valid.length > 0 ? "" : "INVALID";
    }
    return s;
  });
  return {
    bench: "http",
    mode: settings.keepServers ? "keep-servers" : "server-per-measurement",
    startedAt,
    finishedAt: new Date().toISOString(),
    command: `node ${process.argv.slice(1).join(" ")}`,
    git: gitHead(),
    dist: { newestBefore: new Date(distBefore.mtimeMs).toISOString(), changedDuringRun: distChanged },
    machine,
    node: { server: serverNode, serverPath: settings.node, harness: process.version },
    settings: { ...settings, variants: settings.variants.map((v) => v.name) },
    summary,
    rounds,
  };
}

/** The results table (Markdown) plus the lines around it. */
export function formatHttp(result) {
  const multi = result.settings.rounds > 1;
  const header = ["variant", "req/s", "p99", "CPU/req", "ratio to raw", "target", "result"];
  if (multi) header.push("req/s per round");
  const rows = result.summary.map((s) => {
    const row = [
      s.variant,
      fmtRps(s.reqPerSec),
      fmtMs(s.p99Ms),
      s.serverCpuUsPerReq === undefined
        ? "—"
        : `${s.serverCpuUsPerReq.toFixed(1)} µs${s.cpuPerReqRatio === undefined ? "" : ` (${s.cpuPerReqRatio.toFixed(2)}×)`}`,
      s.baseline === undefined
        ? "(baseline)"
        : s.ratio === undefined
          ? "—"
          : `${s.ratio.toFixed(3)}× ${s.baseline}${fmtInterval(s.ratioInterval)}`,
      s.target === undefined ? "" : `≥ ${s.target.toFixed(2)}×`,
      s.result,
    ];
    if (multi) row.push(s.perRound.map((x) => (x === null ? "invalid" : fmtRps(x))).join(", "));
    return row;
  });
  const m = result.machine;
  const lines = [
    `node ${result.node.server} (${result.node.serverPath}); machine: ${m.nproc} CPUs, ${m.cpuModel}; load average before: ${m.loadavg.join(" ")}`,
    `wrk -t1 -c${result.settings.connections} -d${result.settings.duration}s --latency (after ${result.settings.warmup}s warm-up` +
      `${result.settings.keepServers ? " once per server" : ""}), ` +
      `${result.settings.rounds} round(s)${multi ? `: req/s and p99 are medians, the ratio is the median of the per-round ratios${INTERVAL_NOTE}` : ""}`,
    `mode: ${serverModeText(result.settings)}`,
    "",
    markdownTable(header, rows, ["left", "right", "right", "right", "left", "left", "left"]),
    "CPU/req: the server's own CPU time per request (× its baseline's), steadier than req/s on a shared machine.",
  ];
  if (result.dist.changedDuringRun) {
    lines.push(
      "",
      "WARNING: the svckit packages were rebuilt during this run; variants may have measured different code.",
    );
  }
  const invalid = result.rounds.flat().filter((r) => !r.valid);
  if (invalid.length > 0) {
    lines.push("", `WARNING: ${invalid.length} invalid measurement(s), left out of the table:`);
    for (const r of invalid)
      lines.push(`  - ${r.variant} round ${r.round}: ${r.problems.join("; ").split("\n")[0]}`);
  }
  const busy = result.rounds.flat().filter(isBusy);
  if (busy.length > 0) {
    lines.push(
      "",
      `NOTE: the machine was not quiet; other processes (or steal) used more than ${BUSY_CORES} cores during:`,
    );
    for (const r of busy) {
      const who = r.cpu.top.map((p) => `${p.name}[${p.pid}] ${p.cores}`).join(", ");
      lines.push(
        `  - ${r.variant} round ${r.round}: ${r.cpu.otherCores} cores other, ${r.cpu.stealCores} steal${who ? ` (${who})` : ""}`,
      );
    }
  }
  return lines.join("\n");
}

runBenchCli(import.meta.url, {
  name: "http",
  file: "http.mjs",
  options: HTTP_OPTIONS,
  usage: HTTP_USAGE,
  settings: httpSettings,
  run: runHttp,
  format: formatHttp,
});
