#!/usr/bin/env node
// gRPC unary load benchmark: go-kit addsvc's /pb.Add/Sum {a: 1, b: 2} → {v: 3} on a raw grpc-js
// server and on svckit (transport-grpc + codec-protobuf), each a child process pinned to CPU 0 while
// h2load runs pinned to CPU 1 with a gRPC-framed request body, in two load shapes (50 connections ×
// 1 stream, 1 connection × 50 streams). Prints req/s, latency (p99 from h2load's per-request log) and
// the ratio of svckit to raw grpc-js, measured in the same run.
//
//   node bench/grpc.mjs [--duration 10] [--warmup 3] [--rounds 1] [--keep-servers] [--wait-quiet N]
//                       [--retry-busy N] [--node /path/to/node] [--only raw-grpc-js,svckit-grpc]
//                       [--shapes 50x1,1x50] [--json out.json]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";
import {
  BUSY_CORES,
  fmtMs,
  fmtRps,
  isBusy,
  measureRetryingBusy,
  positiveInt,
  READY_TIMEOUT_MS,
  runLoadTool,
  SERVER_CPU,
  startServer,
  stopServer,
  WRK_CPU,
  waitQuiet,
} from "./http.mjs";
import {
  cpuSeconds,
  cpuSnapshot,
  cpuDelta as delta,
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
} from "./lib.mjs";
import { ADDSVC_PROTO } from "./servers/grpc-common.mjs";

const METHOD_PATH = "/pb.Add/Sum";
/** The packages whose dist/ the svckit server loads (to notice a rebuild during a run). */
const DIST_PACKAGES = ["endpoint", "codec-protobuf", "transport-grpc", "grpc-h2"];

/** The server variants, in run order; svckit runs right after its baseline in each shape. */
export const GRPC_VARIANTS = [
  { name: "raw-grpc-js", server: "servers/raw-grpc.mjs" },
  {
    name: "svckit-grpc",
    server: "servers/svckit-grpc.mjs",
    baseline: "raw-grpc-js",
    target: 0.95,
    p99Target: 1.1,
  },
  // The node:http2 ceiling: a library-free gRPC handler, compared with raw grpc-js for information.
  { name: "raw-h2-grpc", server: "servers/raw-h2-grpc.mjs", baseline: "raw-grpc-js" },
  // svckit on its own node:http2 engine (@svckit/grpc-h2): ≥ 1.4× raw grpc-js and ≥ 0.9× the ceiling.
  {
    name: "svckit-grpc-h2",
    server: "servers/svckit-grpc-h2.mjs",
    baseline: "raw-grpc-js",
    target: 1.4,
    p99Target: 1.1,
    ceiling: "raw-h2-grpc",
    ceilingTarget: 0.9,
  },
  // examples/addsvc's gRPC listener with its whole middleware chain (rate limits lifted), against raw
  // grpc-js. Not in the default set: --only addsvc.
  {
    name: "addsvc-grpc",
    server: "servers/addsvc.mjs",
    args: ["grpc"],
    baseline: "raw-grpc-js",
    optional: true,
  },
  // The same on svckit's node:http2 engine (addsvc's -grpc-engine h2).
  {
    name: "addsvc-grpc-h2",
    server: "servers/addsvc.mjs",
    args: ["grpc", "h2"],
    baseline: "raw-grpc-js",
    optional: true,
  },
];

/** Named groups of variants for --only. */
export const GRPC_GROUPS = { addsvc: ["raw-grpc-js", "addsvc-grpc", "addsvc-grpc-h2"] };

/** The h2load load shapes: `-c clients -m streams` (streams = max concurrent streams per connection). */
export const GRPC_SHAPES = [
  { id: "50x1", label: "50 conns × 1 stream", clients: 50, streams: 1 },
  { id: "1x50", label: "1 conn × 50 streams", clients: 1, streams: 50 },
];

/** Options understood by this bench (node:util parseArgs format). */
export const GRPC_OPTIONS = {
  duration: { type: "string", default: "10" },
  warmup: { type: "string", default: "3" },
  rounds: { type: "string", default: "1" },
  "keep-servers": { type: "boolean" },
  "wait-quiet": { type: "string", default: "0" },
  "retry-busy": { type: "string", default: "0" },
  node: { type: "string" },
  only: { type: "string" },
  shapes: { type: "string" },
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
};

export const GRPC_USAGE = `options:
  --duration N      seconds of measured load per variant and shape (h2load -D; default 10)
  --warmup N        seconds of warm-up load before each measurement (with --keep-servers: once per server
                    and shape), not measured (default 3)
  --rounds N        repeat the whole set N times, report medians (default 1)
  --keep-servers    paired slices: start, check and warm up (in each shape) every variant's server once,
                    keep them all running, and measure the variants back to back in each round; for a
                    machine whose speed drifts, e.g. --keep-servers --rounds 10 --duration 2 (default: a
                    fresh server per variant, shape and round)
  --wait-quiet N    before each measurement (with --keep-servers: before each round), wait up to N s until
                    other processes use < ${BUSY_CORES} cores (default 0)
  --retry-busy N    measure again (up to N times) when other processes used > ${BUSY_CORES} cores during a
                    measurement; the least disturbed measurement counts (default 0)
  --node PATH       Node binary that runs the servers (default: the one running this script)
  --only a,b        run only these variants: ${GRPC_VARIANTS.map((v) => v.name).join(", ")};
                    "addsvc" = raw-grpc-js and examples/addsvc's full stack (not run by default)
  --shapes a,b      run only these load shapes: ${GRPC_SHAPES.map((s) => `${s.id} (${s.label})`).join(", ")}
  --json FILE       also write the results as JSON to FILE`;

function pickNames(flag, raw, known, defaults = known, groups = {}) {
  if (raw === undefined) return defaults;
  const picked = raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .flatMap((s) => groups[s] ?? [s]);
  for (const name of picked) {
    if (!known.includes(name))
      throw new Error(`${flag}: unknown name "${name}" (known: ${known.join(", ")})`);
  }
  return picked;
}

/** Turns parsed option values into validated settings. */
export function grpcSettings(values) {
  const only = pickNames(
    "--only",
    values.only,
    GRPC_VARIANTS.map((v) => v.name),
    GRPC_VARIANTS.filter((v) => !v.optional).map((v) => v.name),
    GRPC_GROUPS,
  );
  const shapes = pickNames(
    "--shapes",
    values.shapes,
    GRPC_SHAPES.map((s) => s.id),
  );
  return {
    duration: positiveInt("duration", values.duration),
    warmup: values.warmup === "0" ? 0 : positiveInt("warmup", values.warmup),
    rounds: positiveInt("rounds", values.rounds),
    keepServers: values["keep-servers"] === true,
    waitQuiet: values["wait-quiet"] === "0" ? 0 : positiveInt("wait-quiet", values["wait-quiet"]),
    retryBusy: values["retry-busy"] === "0" ? 0 : positiveInt("retry-busy", values["retry-busy"]),
    node: values.node ?? process.execPath,
    variants: GRPC_VARIANTS.filter((v) => only.includes(v.name)),
    shapes: GRPC_SHAPES.filter((s) => shapes.includes(s.id)),
    json: values.json,
  };
}

// ---------------------------------------------------------------------------------------------
// messages, the request body file and the grpc-js check call

const proto = protobuf.loadSync(ADDSVC_PROTO);
const SumRequest = proto.lookupType("pb.SumRequest");
const SumReply = proto.lookupType("pb.SumReply");
const REQUEST = { a: 1, b: 2 };

/** The gRPC-framed request h2load sends: 0 (not compressed), big-endian length, SumRequest{a: 1, b: 2}. */
export function framedSumRequest() {
  const message = SumRequest.encode(REQUEST).finish();
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/**
 * One unary Sum call with a grpc-js client on a fresh channel. Resolves with the decoded reply and the
 * size of the reply message in bytes (to check the bytes h2load received), rejects with grpc-js's error.
 */
function callSum(port) {
  return new Promise((resolve, reject) => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    let replyBytes;
    client.makeUnaryRequest(
      METHOD_PATH,
      (message) => SumRequest.encode(message).finish(),
      (bytes) => {
        replyBytes = bytes.length;
        return SumReply.decode(bytes);
      },
      REQUEST,
      { deadline: Date.now() + 2_000 },
      (error, reply) => {
        client.close();
        if (error) reject(error);
        else resolve({ reply, replyBytes });
      },
    );
  });
}

function checkReply({ reply }) {
  const v = protobuf.util.Long.fromValue(reply.v ?? 0).toString();
  if (v !== "3" || reply.err !== "") {
    return `reply ${JSON.stringify({ v, err: reply.err })}, expected {"v":"3","err":""}`;
  }
  return undefined;
}

/** Waits until the server answers Sum(1, 2) = 3; returns its port and the reply's size in bytes. */
async function waitReady(server) {
  const port = await server.port;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    let answer;
    try {
      answer = await callSum(port);
    } catch (error) {
      // Only "not listening yet" is worth waiting for; any status from the server is an answer.
      if (error.code !== grpc.status.UNAVAILABLE) {
        throw new Error(`Sum call failed: ${grpc.status[error.code] ?? error.code}: ${error.details}`);
      }
      if (!server.alive()) throw new Error("server exited while starting");
      if (Date.now() > deadline) throw new Error(`server never answered: ${error.message}`);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const wrong = checkReply(answer);
    if (wrong !== undefined) throw new Error(`wrong answer to Sum(1, 2): ${wrong}`);
    return { port, replyBytes: answer.replyBytes };
  }
}

// ---------------------------------------------------------------------------------------------
// h2load

/** Fails early, with the install line, when h2load is missing. */
export function checkH2load() {
  try {
    return execFileSync("h2load", ["--version"], { encoding: "utf8", timeout: 10_000 }).trim();
  } catch {
    throw new Error("h2load not found: the gRPC bench needs it (Debian: apt-get install -y nghttp2-client)");
  }
}

const UNIT_MS = { us: 1e-3, ms: 1, s: 1e3 };

/** Extracts req/s, request counts, status counts, bytes and request-time stats from h2load's report. */
export function parseH2load(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const req =
    /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(
      text,
    );
  const codes = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(text);
  const time =
    /^time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/m.exec(
      text,
    );
  return {
    reqPerSec: num(/^finished in [\d.]+\w+, ([\d.]+) req\/s/m),
    requests: req
      ? {
          total: +req[1],
          started: +req[2],
          done: +req[3],
          succeeded: +req[4],
          failed: +req[5],
          errored: +req[6],
          timeout: +req[7],
        }
      : undefined,
    status: codes ? { "2xx": +codes[1], "3xx": +codes[2], "4xx": +codes[3], "5xx": +codes[4] } : undefined,
    dataBytes: num(/^traffic: .*?, [\d.]+\w*B \((\d+)\) data$/m),
    requestTimeMs: time
      ? {
          min: Number(time[1]) * UNIT_MS[time[2]],
          max: Number(time[3]) * UNIT_MS[time[4]],
          mean: Number(time[5]) * UNIT_MS[time[6]],
          sd: Number(time[7]) * UNIT_MS[time[8]],
        }
      : undefined,
  };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * Reads h2load's --log-file (per request: start µs since epoch, HTTP status or -1, µs until the end of
 * the response) and returns the latency distribution in ms and the count of rows per status.
 */
export function parseH2loadLog(text) {
  const times = [];
  const statuses = {};
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const [, status, micros] = line.split("\t");
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === "200") times.push(Number(micros) / 1000);
  }
  times.sort((a, b) => a - b);
  if (times.length === 0) return { rows: 0, statuses, latencyMs: {} };
  let total = 0;
  for (const t of times) total += t;
  return {
    rows: times.length,
    statuses,
    latencyMs: {
      p50: percentile(times, 50),
      p90: percentile(times, 90),
      p99: percentile(times, 99),
      p999: percentile(times, 99.9),
      max: times[times.length - 1],
      mean: total / times.length,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// a server (start, answer check, warm-up) and one measurement on it (one variant, one shape)

/** h2load's arguments for `shape` (without -D and the URL). */
const h2loadArgs = (shape, files) => [
  "-t1",
  `-c${shape.clients}`,
  `-m${shape.streams}`,
  "-d",
  files.body,
  "-H",
  "content-type: application/grpc",
  "-H",
  "te: trailers",
];

/**
 * Starts `variant`'s server, waits until it answers Sum(1, 2) = 3 and warms it up with --warmup
 * seconds of h2load in each of `shapes`. Returns what {@link measureOne} needs; `ready` is false when
 * the server did not answer rightly. Its `problems` (also a failed warm-up) go into every row measured
 * on this server.
 */
async function prepareOne(variant, shapes, settings, files) {
  const server = startServer(settings.node, variant);
  const prepared = { variant, server, ready: false, problems: [] };
  let ready;
  try {
    ready = await waitReady(server);
  } catch (error) {
    return startFailed(prepared, server, error);
  }
  prepared.ready = true;
  prepared.port = ready.port;
  prepared.replyBytes = ready.replyBytes;
  prepared.url = `http://127.0.0.1:${ready.port}${METHOD_PATH}`;
  if (settings.warmup > 0) {
    for (const shape of shapes) {
      const warm = await runLoadTool(
        "h2load",
        [...h2loadArgs(shape, files), "-D", String(settings.warmup), prepared.url],
        (settings.warmup + 30) * 1000,
      );
      if (warm.code !== 0)
        prepared.problems.push(
          `warm-up h2load (${shape.id}) exited with ${warm.code}: ${warm.stderr.trim()}`,
        );
    }
  }
  return prepared;
}

/** One measurement (--duration seconds of h2load in `shape`) on a prepared server, then the answer checked again. */
async function measureOne(prepared, shape, settings, files) {
  const { server } = prepared;
  const row = {
    variant: prepared.variant.name,
    shape: shape.id,
    valid: false,
    problems: [...prepared.problems],
  };
  if (!prepared.ready) return row;
  if (!server.alive()) {
    row.problems.push("server exited before this measurement");
    return row;
  }
  row.pid = server.child.pid;
  row.replyBytes = prepared.replyBytes;
  const url = prepared.url;
  const base = h2loadArgs(shape, files);
  rmSync(files.log, { force: true });
  const before = cpuSnapshot();
  // h2load runs as a child of this process (taskset execs it): its CPU time is our reaped children's.
  const h2loadBefore = cpuSeconds(process.pid, true);
  const serverBefore = cpuSeconds(server.child.pid);
  const run = await runLoadTool(
    "h2load",
    [...base, "-D", String(settings.duration), `--log-file=${files.log}`, url],
    (settings.duration + 30) * 1000,
  );
  const serverAfter = cpuSeconds(server.child.pid);
  const h2loadAfter = cpuSeconds(process.pid, true);
  row.cpu = otherCpu(before, cpuSnapshot(), [server.child.pid]);
  const h2loadCpu = delta(h2loadBefore, h2loadAfter);
  const serverCpu = delta(serverBefore, serverAfter);
  if (h2loadCpu !== undefined) row.h2loadCores = Math.round((h2loadCpu / settings.duration) * 100) / 100;
  if (serverCpu !== undefined) row.serverCores = Math.round((serverCpu / settings.duration) * 100) / 100;
  row.h2loadOutput = run.stdout;
  Object.assign(row, parseH2load(run.stdout));
  if (serverCpu !== undefined && row.requests?.done > 0)
    row.serverCpuUsPerReq = (serverCpu * 1e6) / row.requests.done;
  let logged = { rows: 0, statuses: {}, latencyMs: {} };
  try {
    logged = parseH2loadLog(readFileSync(files.log, "utf8"));
  } catch (error) {
    row.problems.push(`cannot read h2load's log file: ${error.message}`);
  }
  row.latencyMs = logged.latencyMs;
  row.loggedStatuses = logged.statuses;

  if (run.timedOut) row.problems.push("h2load did not finish in time and was killed");
  if (run.code !== 0) row.problems.push(`h2load exited with ${run.code}: ${run.stderr.trim()}`);
  const rq = row.requests;
  if (!(row.reqPerSec > 0) || rq === undefined || !(rq.done > 0))
    row.problems.push("h2load reported no requests");
  else {
    if (rq.failed + rq.errored + rq.timeout > 0) {
      row.problems.push(
        `h2load saw ${rq.failed} failed, ${rq.errored} errored, ${rq.timeout} timed-out requests`,
      );
    }
    if (rq.succeeded !== rq.done) row.problems.push(`h2load: ${rq.done} done but ${rq.succeeded} succeeded`);
    // Status codes also count the requests still in flight when the run ended whose response
    // headers had come: between `succeeded` and `started` 2xx, and nothing else, is right.
    const st = row.status;
    if (st === undefined) row.problems.push("h2load printed no status codes");
    else if (st["2xx"] < rq.succeeded || st["2xx"] > rq.started || st["3xx"] + st["4xx"] + st["5xx"] > 0) {
      row.problems.push(
        `HTTP statuses: ${st["2xx"]} 2xx, ${st["3xx"]} 3xx, ${st["4xx"]} 4xx, ${st["5xx"]} 5xx ` +
          `for ${rq.succeeded} succeeded / ${rq.started} started requests`,
      );
    }
    // h2load counts HTTP statuses only, and a gRPC error is HTTP 200 with grpc-status in a
    // trailers-only response (no DATA). Every good answer is one 5-byte-framed SumReply, so the
    // response body bytes must be (5 + reply size) per finished request (allowing for requests
    // cut off at the end of the run after their DATA frame came).
    const frame = 5 + prepared.replyBytes;
    if (row.dataBytes === undefined) row.problems.push("h2load printed no data byte count");
    else if (row.dataBytes < rq.done * frame || row.dataBytes > rq.started * frame) {
      row.problems.push(
        `response data ${row.dataBytes} B for ${rq.done} done / ${rq.started} started requests; ` +
          `expected ${frame} B (one framed SumReply) each: some calls did not get a reply message`,
      );
    }
    const notOk = Object.entries(logged.statuses).filter(([s]) => s !== "200");
    if (notOk.length > 0) {
      row.problems.push(`h2load's log has non-200 rows: ${notOk.map(([s, n]) => `${n} × ${s}`).join(", ")}`);
    }
    if (logged.rows === 0) row.problems.push("h2load's log file has no successful requests");
  }
  if (!server.alive()) row.problems.push("server exited during the run");
  else {
    try {
      const wrong = checkReply(await callSum(prepared.port));
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

const ratio = (a, b) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);

/** Runs every selected variant in every selected shape `settings.rounds` times. */
export async function runGrpc(settings, log = console.log) {
  const h2loadVersion = checkH2load();
  const startedAt = new Date().toISOString();
  const distBefore = distStamp(DIST_PACKAGES);
  const serverNode = nodeVersion(settings.node);
  const machine = machineInfo();
  if (machine.nproc < 2)
    loud(`this machine has ${machine.nproc} CPU; the bench pins servers to CPU 0 and h2load to CPU 1`);
  const dir = mkdtempSync(join(tmpdir(), "svckit-grpc-bench-"));
  const files = { body: join(dir, "sum-request.grpc"), log: join(dir, "h2load.log") };
  writeFileSync(files.body, framedSumRequest());
  log(
    `grpc bench: servers on ${settings.node} (${serverNode}) pinned to CPU ${SERVER_CPU}; ${h2loadVersion} pinned to CPU ${WRK_CPU}`,
  );
  log(`  mode: ${serverModeText(settings)}`);
  log(
    `  h2load -t1, shapes ${settings.shapes.map((s) => `-c${s.clients} -m${s.streams}`).join(" and ")}: ` +
      (settings.keepServers
        ? `${settings.warmup}s warm-up per server and shape once, then ${settings.duration}s measured each in each round, `
        : `${settings.warmup}s warm-up + ${settings.duration}s measured each, `) +
      `${settings.rounds} round(s), ` +
      `POST ${METHOD_PATH} SumRequest{a: 1, b: 2} (gRPC-framed, ${framedSumRequest().length} B)`,
  );
  const items = settings.shapes.flatMap((shape) => settings.variants.map((variant) => ({ shape, variant })));
  const pool = serverPool({
    keep: settings.keepServers,
    stop: (prepared) => stopServer(prepared.server),
    quiet: settings.waitQuiet > 0 ? () => waitQuiet(settings.waitQuiet, log) : undefined,
  });
  const rounds = [];
  try {
    if (pool.keep) {
      const kept = await pool.prepareAll(
        settings.variants.map((variant) => [
          variant.name,
          () => prepareOne(variant, settings.shapes, settings, files),
        ]),
      );
      for (const p of kept) logPrepared(p.variant.name, p, log);
    }
    for (let r = 0; r < settings.rounds; r++) {
      // Alternate the order each round so neither side of a pair always runs first.
      const order = r % 2 === 0 ? items : [...items].reverse();
      const rows = [];
      await pool.startRound();
      for (const { shape, variant } of order) {
        const label = `${variant.name} ${shape.id}`;
        const row = await measureRetryingBusy(
          () =>
            pool.use(
              variant.name,
              () => prepareOne(variant, [shape], settings, files),
              (prepared) => measureOne(prepared, shape, settings, files),
            ),
          label,
          settings.retryBusy,
          log,
        );
        row.round = r + 1;
        rows.push(row);
        const tag = `[round ${r + 1}/${settings.rounds}] ${variant.name.padEnd(14)} ${shape.id.padEnd(5)}`;
        const busy =
          row.cpu === undefined
            ? ""
            : `   server ${row.serverCores} cores, h2load ${row.h2loadCores}; other processes: ${row.cpu.otherCores} cores, steal ${row.cpu.stealCores}`;
        if (row.valid) {
          log(
            `${tag} ${fmtRps(row.reqPerSec).padStart(8)} req/s   p99 ${fmtMs(row.latencyMs.p99)}   mean ${fmtMs(row.latencyMs.mean)}${busy}`,
          );
        } else {
          log(`${tag} INVALID ${row.reqPerSec === undefined ? "" : `(${fmtRps(row.reqPerSec)} req/s)`}`);
          loud(`${label} (round ${r + 1}) is INVALID:\n${row.problems.join("\n")}`);
        }
      }
      rounds.push(rows);
    }
  } finally {
    await pool.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }

  const distAfter = distStamp(DIST_PACKAGES);
  const distChanged = distAfter.mtimeMs !== distBefore.mtimeMs;
  if (distChanged) {
    loud(
      `the dist of ${DIST_PACKAGES.join(", ")} changed during the run (newest: ${distAfter.path} at ${new Date(distAfter.mtimeMs).toISOString()}):\n` +
        "someone rebuilt the packages; variants may have measured different code. Re-run.",
    );
  }

  const rowOf = (rows, name, shape) => rows.find((x) => x.variant === name && x.shape === shape && x.valid);
  const summary = [];
  for (const shape of settings.shapes) {
    for (const variant of settings.variants) {
      const mine = rounds.map((rows) => rowOf(rows, variant.name, shape.id));
      const valid = mine.filter(Boolean);
      const s = {
        variant: variant.name,
        shape: shape.id,
        validRounds: valid.length,
        rounds: settings.rounds,
        reqPerSec: median(valid.map((x) => x.reqPerSec)),
        p99Ms: median(valid.map((x) => x.latencyMs.p99)),
        meanMs: median(valid.map((x) => x.latencyMs.mean)),
        maxMs: median(valid.map((x) => x.latencyMs.max)),
        serverCores: median(valid.map((x) => x.serverCores)),
        serverCpuUsPerReq: median(valid.map((x) => x.serverCpuUsPerReq)),
        h2loadCores: median(valid.map((x) => x.h2loadCores)),
        perRound: mine.map((x) => x?.reqPerSec ?? null),
      };
      if (variant.baseline !== undefined) {
        s.baseline = variant.baseline;
        s.target = variant.target;
        s.p99Target = variant.p99Target;
        // Each round's pair ran back to back; the medians of the per-round ratios count.
        const pairs = rounds
          .map((rows) => [rowOf(rows, variant.name, shape.id), rowOf(rows, variant.baseline, shape.id)])
          .filter(([a, b]) => a && b);
        s.ratioPerRound = pairs.map(([a, b]) => ratio(a.reqPerSec, b.reqPerSec));
        s.p99RatioPerRound = pairs.map(([a, b]) => ratio(a.latencyMs.p99, b.latencyMs.p99));
        s.cpuPerReqRatioPerRound = pairs.map(([a, b]) => ratio(a.serverCpuUsPerReq, b.serverCpuUsPerReq));
        s.cpuPerReqRatio = median(s.cpuPerReqRatioPerRound);
        s.ratio = median(s.ratioPerRound);
        s.ratioInterval = medianInterval(s.ratioPerRound);
        s.p99Ratio = median(s.p99RatioPerRound);
        s.p99RatioInterval = medianInterval(s.p99RatioPerRound);
        if (variant.ceiling !== undefined) {
          s.ceiling = variant.ceiling;
          s.ceilingTarget = variant.ceilingTarget;
          s.ceilingRatioPerRound = rounds
            .map((rows) => [rowOf(rows, variant.name, shape.id), rowOf(rows, variant.ceiling, shape.id)])
            .filter(([a, b]) => a && b)
            .map(([a, b]) => ratio(a.reqPerSec, b.reqPerSec));
          s.ceilingRatio = median(s.ceilingRatioPerRound);
        }
        if (s.ratio === undefined) {
          s.result = settings.variants.some((v) => v.name === variant.baseline) ? "INVALID" : "n/a";
        } else if (variant.target === undefined) {
          s.result = "";
        } else {
          const misses = [];
          if (s.ratio < variant.target) misses.push("req/s");
          if (!(s.p99Ratio <= variant.p99Target)) misses.push("p99");
          if (variant.ceiling !== undefined && !(s.ceilingRatio >= variant.ceilingTarget))
            misses.push("vs ceiling");
          s.result = misses.length === 0 ? "PASS" : `MISS (${misses.join(", ")})`;
        }
      } else {
        s.result = valid.length > 0 ? "" : "INVALID";
      }
      summary.push(s);
    }
  }
  return {
    bench: "grpc",
    mode: settings.keepServers ? "keep-servers" : "server-per-measurement",
    startedAt,
    finishedAt: new Date().toISOString(),
    command: `node ${process.argv.slice(1).join(" ")}`,
    git: gitHead(),
    dist: {
      packages: DIST_PACKAGES,
      newestBefore: new Date(distBefore.mtimeMs).toISOString(),
      changedDuringRun: distChanged,
    },
    machine,
    h2load: h2loadVersion,
    node: { server: serverNode, serverPath: settings.node, harness: process.version },
    settings: {
      ...settings,
      variants: settings.variants.map((v) => v.name),
      shapes: settings.shapes.map((s) => s.id),
    },
    summary,
    rounds,
  };
}

/** The results table (Markdown) plus the lines around it. */
export function formatGrpc(result) {
  const multi = result.settings.rounds > 1;
  const shapeLabel = (id) => GRPC_SHAPES.find((s) => s.id === id)?.label ?? id;
  const header = [
    "variant",
    "shape",
    "req/s",
    "p99",
    "mean",
    "server CPU",
    "CPU/req",
    "h2load CPU",
    "req/s vs raw",
    "p99 vs raw",
    "vs ceiling",
    "target",
    "result",
  ];
  if (multi) header.push("req/s per round");
  const rows = result.summary.map((s) => {
    const row = [
      s.variant,
      shapeLabel(s.shape),
      fmtRps(s.reqPerSec),
      fmtMs(s.p99Ms),
      fmtMs(s.meanMs),
      s.serverCores === undefined ? "—" : s.serverCores.toFixed(2),
      s.serverCpuUsPerReq === undefined
        ? "—"
        : `${s.serverCpuUsPerReq.toFixed(1)} µs${s.cpuPerReqRatio === undefined ? "" : ` (${s.cpuPerReqRatio.toFixed(2)}×)`}`,
      s.h2loadCores === undefined ? "—" : s.h2loadCores.toFixed(2),
      s.baseline === undefined
        ? "(baseline)"
        : s.ratio === undefined
          ? "—"
          : `${s.ratio.toFixed(3)}×${fmtInterval(s.ratioInterval)}`,
      s.baseline === undefined
        ? ""
        : s.p99Ratio === undefined
          ? "—"
          : `${s.p99Ratio.toFixed(3)}×${fmtInterval(s.p99RatioInterval)}`,
      s.ceiling === undefined ? "" : s.ceilingRatio === undefined ? "—" : `${s.ceilingRatio.toFixed(3)}×`,
      s.target === undefined
        ? ""
        : `≥ ${s.target.toFixed(2)}×, p99 ≤ ${s.p99Target.toFixed(2)}×` +
          (s.ceiling === undefined ? "" : `, ≥ ${s.ceilingTarget.toFixed(2)}× ${s.ceiling}`),
      s.result,
    ];
    if (multi) row.push(s.perRound.map((x) => (x === null ? "invalid" : fmtRps(x))).join(", "));
    return row;
  });
  const m = result.machine;
  const lines = [
    `node ${result.node.server} (${result.node.serverPath}); machine: ${m.nproc} CPUs, ${m.cpuModel}; load average before: ${m.loadavg.join(" ")}`,
    `${result.h2load} -t1 -D ${result.settings.duration} (after ${result.settings.warmup}s warm-up` +
      `${result.settings.keepServers ? " once per server and shape" : ""}), POST ${METHOD_PATH}, ` +
      `${result.settings.rounds} round(s)${multi ? `: req/s and latencies are medians, ratios are medians of the per-round ratios${INTERVAL_NOTE}` : ""}`,
    `mode: ${serverModeText(result.settings)}`,
    "latency: per request, from h2load's --log-file (p99 nearest-rank, mean); server CPU: cores the server used " +
      "while measured (1.00 = CPU 0 saturated); CPU/req: its CPU time per request (× raw's); h2load CPU: cores h2load used",
    "",
    markdownTable(
      header,
      rows,
      header.map((_, i) => (i >= 2 && i <= 7 ? "right" : "left")),
    ),
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
      lines.push(`  - ${r.variant} ${r.shape} round ${r.round}: ${r.problems.join("; ").split("\n")[0]}`);
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
        `  - ${r.variant} ${r.shape} round ${r.round}: ${r.cpu.otherCores} cores other, ${r.cpu.stealCores} steal${who ? ` (${who})` : ""}`,
      );
    }
  }
  return lines.join("\n");
}

runBenchCli(import.meta.url, {
  name: "grpc",
  file: "grpc.mjs",
  options: GRPC_OPTIONS,
  usage: GRPC_USAGE,
  settings: grpcSettings,
  run: runGrpc,
  format: formatGrpc,
});
