// Helpers shared by the benchmark scripts: argument clean-up, machine facts, medians, tables.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/**
 * The script's arguments without a standalone "--" (pnpm passes `pnpm bench -- --node x` on as
 * `... run.mjs -- --node x`, and node:util's parseArgs would treat everything after it as positionals).
 */
export function cliArgs(argv = process.argv.slice(2)) {
  return argv.filter((a) => a !== "--");
}

/** Whether the module at `metaUrl` is the script node was started with. */
export function isMain(metaUrl) {
  return process.argv[1] !== undefined && fileURLToPath(metaUrl) === resolve(process.argv[1]);
}

/** Core count and CPU model of this machine. */
export function machineInfo() {
  let cpuModel = os.cpus()[0]?.model ?? "unknown";
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) cpuModel = m[1].trim();
  } catch {}
  let nproc = os.availableParallelism?.() ?? os.cpus().length;
  try {
    nproc = Number(execFileSync("nproc", { encoding: "utf8" }).trim());
  } catch {}
  return {
    nproc,
    cpuModel,
    kernel: `${os.type()} ${os.release()}`,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** `node -v` of the given binary. */
export function nodeVersion(nodeBin) {
  return execFileSync(nodeBin, ["-v"], { encoding: "utf8", timeout: 10_000 }).trim();
}

/** The median of the finite numbers in `xs`, or undefined if there are none. */
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * A distribution-free confidence interval for the median of the finite numbers in `xs`: the k-th
 * smallest and k-th largest value, with k the largest rank for which a Binomial(n, 1/2) count falls
 * below k with probability at most (1 − level)/2. Undefined when there are too few values for the level
 * (fewer than 6 for 95%). What a median of per-round ratios can honestly claim on a noisy machine.
 */
export function medianInterval(xs, level = 0.95) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = v.length;
  const tail = (1 - level) / 2;
  // P(B ≤ j) for B ~ Binomial(n, 1/2), accumulated term by term.
  let term = 0.5 ** n;
  let below = 0;
  let k = 0;
  for (let j = 0; j < n; j++) {
    below += term;
    if (below > tail) break;
    k = j + 1;
    term = (term * (n - j)) / (j + 1);
  }
  return k === 0 ? undefined : [v[k - 1], v[n - k]];
}

/** How tables print a {@link medianInterval}: ` [lo–hi]`, or nothing when there is none. */
export function fmtInterval(interval) {
  return interval === undefined ? "" : ` [${interval[0].toFixed(2)}–${interval[1].toFixed(2)}]`;
}

/** The sentence that says what the bracketed ranges after ratios are. */
export const INTERVAL_NOTE = " ([lo–hi]: 95% confidence interval of that median, from 6 rounds up)";

/** Renders rows (arrays of strings) as a Markdown table, padded for the terminal. */
export function markdownTable(header, rows, align = []) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const cell = (s, i) => (align[i] === "right" ? String(s).padStart(widths[i]) : String(s).padEnd(widths[i]));
  const line = (r) => `| ${r.map(cell).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (align[i] === "right" ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** Prints a message that is hard to miss. */
export function loud(message) {
  const bar = "!".repeat(78);
  console.error(`\n${bar}\n!! ${message.split("\n").join("\n!! ")}\n${bar}\n`);
}

let clkTck;
function ticksPerSecond() {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** pid+starttime → CPU ticks used by the process and by its reaped children (proc(5) fields 14-17). */
function processTimes() {
  const times = new Map();
  let pids = [];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return times;
  }
  for (const pid of pids) {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
      // index = field number - 3 once pid and comm are cut off
      times.set(`${pid}:${f[19]}`, {
        pid: Number(pid),
        name: text.slice(text.indexOf("(") + 1, text.lastIndexOf(")")),
        total: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
      });
    } catch {}
  }
  return times;
}

/** A snapshot of every process's CPU time and the hypervisor's steal time, for {@link otherCpu}. */
export function cpuSnapshot() {
  let steal = 0;
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
    steal = f[7] ?? 0;
  } catch {}
  return { at: process.hrtime.bigint(), steal, processes: processTimes() };
}

/**
 * How much CPU processes other than ours used between two snapshots, in cores (0.25 = a quarter of
 * one core), and the hypervisor's steal time. "Ours" is this process with its reaped children (wrk)
 * and the `ours` pids (the server). A process that ran and exited in between counts through its
 * parent's reaped-children time; one that existed before and exited counts only its share after the
 * first snapshot. Linux only; zeros elsewhere.
 */
export function otherCpu(before, after, ours = []) {
  const seconds = Number(after.at - before.at) / 1e9;
  if (!(seconds > 0)) return { otherCores: 0, stealCores: 0 };
  const skip = new Set([process.pid, ...ours]);
  const used = new Map();
  const add = (p, ticks) => {
    if (ticks !== 0) used.set(p.pid, { name: p.name, ticks: (used.get(p.pid)?.ticks ?? 0) + ticks });
  };
  for (const [key, p] of after.processes) {
    if (!skip.has(p.pid)) add(p, p.total - (before.processes.get(key)?.total ?? 0));
  }
  for (const [key, p] of before.processes) {
    if (!skip.has(p.pid) && !after.processes.has(key)) add(p, -p.total);
  }
  const hz = ticksPerSecond();
  const cores = (ticks) => Math.round((ticks / hz / seconds) * 100) / 100;
  let ticks = 0;
  for (const u of used.values()) ticks += u.ticks;
  return {
    otherCores: Math.max(0, cores(ticks)),
    stealCores: cores(after.steal - before.steal),
    top: [...used.entries()]
      .sort((a, b) => b[1].ticks - a[1].ticks)
      .slice(0, 5)
      .filter(([, u]) => u.ticks > 0)
      .map(([pid, u]) => ({ pid, name: u.name, cores: cores(u.ticks) })),
  };
}

/**
 * The newest modification time (ms) and path among the `dist/` JavaScript files of the packages the
 * benchmarks load, to notice a rebuild in the middle of a run (the measured code would differ).
 */
export function distStamp(packages = ["endpoint", "codec-json", "transport-http"]) {
  let newest = { mtimeMs: 0, path: "" };
  const walk = (dir) => {
    let entries = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".js")) {
        const m = statSync(p).mtimeMs;
        if (m > newest.mtimeMs) newest = { mtimeMs: m, path: p };
      }
    }
  };
  const root = fileURLToPath(new URL("../packages/", import.meta.url));
  for (const pkg of packages) walk(join(root, pkg, "dist"));
  return newest;
}

/** The short commit of the repository's HEAD, or undefined (read-only: git rev-parse). */
export function gitHead() {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined;
  }
}

/**
 * The command-line entry every load bench shares: parse the options, print usage on --help, run,
 * print the report, write --json, exit 1 when a row is invalid and 2 when the bench itself failed.
 */
export function runBenchCli(metaUrl, { name, file, options, usage, settings, run, format }) {
  if (!isMain(metaUrl)) return;
  const main = async () => {
    const { values } = parseArgs({ args: cliArgs(), options, strict: true });
    if (values.help) {
      console.log(`usage: node bench/${file} [options]\n${usage}`);
      return;
    }
    const chosen = settings(values);
    const result = await run(chosen);
    console.log(`\n${format(result)}`);
    if (chosen.json !== undefined) {
      writeFileSync(chosen.json, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`\nwrote ${chosen.json}`);
    }
    if (result.rounds.flat().some((r) => !r.valid)) process.exitCode = 1;
  };
  main().catch((error) => {
    console.error(`${name} bench: ${error.message}`);
    process.exit(2);
  });
}

/**
 * CPU seconds used so far by process `pid` (utime + stime; with `children`, only its reaped
 * children's cutime + cstime), from /proc/<pid>/stat; undefined where that cannot be read.
 */
export function cpuSeconds(pid, children = false) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const ticks = children ? Number(f[13]) + Number(f[14]) : Number(f[11]) + Number(f[12]);
    return ticks / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** `b - a`, or undefined when either is. */
export const cpuDelta = (a, b) => (a !== undefined && b !== undefined ? b - a : undefined);

// ---------------------------------------------------------------------------------------------
// child processes and the servers of the load benches

/** Every child process we spawned (servers, wrk, h2load) that has not exited yet. */
const liveChildren = new Set();
const STOP_CHILDREN_MS = 3_000;
let exitHooked = false;
/** Set once a signal asked the harness to stop. */
let stopping = false;

/**
 * Remembers `child` (a server, wrk or h2load we spawned) until it exits, so that it does not outlive
 * the harness: SIGINT, SIGTERM or SIGHUP to the harness stops every such child by its PID (SIGTERM,
 * SIGKILL after 3 s; one spawned meanwhile is killed at once), waits until they have exited and then
 * exits 128 + the signal's number; any other exit (an error, process.exit) sends them SIGTERM. A
 * second signal kills the harness at once, as usual.
 */
export function trackChild(child) {
  if (!exitHooked) {
    exitHooked = true;
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"])
      process.once(signal, () => stopChildrenAndExit(signal));
    process.once("exit", () => {
      for (const c of liveChildren) c.kill("SIGTERM");
    });
  }
  liveChildren.add(child);
  const done = () => liveChildren.delete(child);
  child.once("exit", done);
  child.once("error", done);
  if (stopping) child.kill("SIGKILL");
}

async function stopChildrenAndExit(signal) {
  stopping = true;
  console.error(`\n${signal}: stopping the ${liveChildren.size} child process(es) we started, then exiting`);
  for (const c of liveChildren) c.kill("SIGTERM");
  const until = async (ms) => {
    const deadline = Date.now() + ms;
    while (liveChildren.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };
  await until(STOP_CHILDREN_MS);
  for (const c of liveChildren) c.kill("SIGKILL");
  await until(1_000);
  process.exit(128 + (os.constants.signals[signal] ?? 0));
}

/** Once a signal asked the harness to stop, never resolves: the measurements stop while it exits. */
const haltIfStopping = () => (stopping ? new Promise(() => {}) : undefined);

/**
 * Where a load bench's measurements get their servers. A "prepared" server has been started, has
 * given the right answer and has been warmed up (`prepare`); `stop` stops it.
 *
 * By default (`keep` false) every measurement gets a server of its own: `use(name, prepare, measure)`
 * waits for a quiet machine (`quiet`, if given), prepares a server, measures on it and stops it.
 *
 * With `keep` (--keep-servers) `prepareAll` prepares every variant's server once, up front; `use`
 * measures on the kept server of that name (`prepare` is not called); `startRound` waits for a quiet
 * machine once per round instead of before each measurement; `stopAll` (call it in a `finally`) stops
 * the kept servers. After SIGINT/SIGTERM/SIGHUP (see {@link trackChild}) `use` and `prepareAll` start
 * nothing more and report nothing more. Either way the quiet sample taken before a measurement (or before its round, on the
 * round's first measurement) is set as the row's `quietBefore`.
 */
export function serverPool({ keep, stop, quiet }) {
  const kept = new Map();
  let roundQuiet;
  return {
    keep,
    /** `entries`: [name, prepare] pairs; resolves with the prepared servers (keep mode only). */
    async prepareAll(entries) {
      for (const [name, prepare] of entries) {
        await haltIfStopping();
        kept.set(name, await prepare());
      }
      await haltIfStopping();
      return [...kept.values()];
    },
    async startRound() {
      if (keep && quiet !== undefined) roundQuiet = await quiet();
    },
    async use(name, prepare, measure) {
      await haltIfStopping();
      if (keep) {
        const row = await measure(kept.get(name));
        await haltIfStopping();
        if (roundQuiet !== undefined) row.quietBefore = roundQuiet;
        roundQuiet = undefined;
        return row;
      }
      const quietBefore = quiet === undefined ? undefined : await quiet();
      const prepared = await prepare();
      try {
        const row = await measure(prepared);
        await haltIfStopping();
        if (quietBefore !== undefined) row.quietBefore = quietBefore;
        return row;
      } finally {
        await stop(prepared);
      }
    },
    async stopAll() {
      const all = [...kept.values()];
      kept.clear();
      await Promise.all(all.map((prepared) => stop(prepared)));
    },
  };
}

/** How the servers ran, for the header and the table (so that a recorded result says its mode). */
export function serverModeText(settings) {
  return settings.keepServers
    ? "--keep-servers (paired slices): every server started, checked and warmed up once, all kept running " +
        "side by side; each round measures the variants back to back on them"
    : "a fresh server per measurement (started, checked, warmed up, measured, stopped)";
}

/** Records on `prepared` why its server did not get ready: the error and the start of its stderr. */
export function startFailed(prepared, server, error) {
  prepared.problems.push(error.message);
  const tail = server.stderr().trim();
  if (tail) prepared.problems.push(`server stderr: ${tail.split("\n").slice(0, 12).join("\n")}`);
  return prepared;
}

/** Logs how a kept server's start went (--keep-servers), loudly when it cannot be measured. */
export function logPrepared(name, prepared, log = console.log) {
  if (prepared.ready && prepared.problems.length === 0) {
    log(`[start] ${name}: pid ${prepared.server.child.pid}, right answer, warmed up`);
    return;
  }
  log(`[start] ${name}: ${prepared.ready ? "warm-up FAILED" : "FAILED"}`);
  loud(`${name}: every measurement on this server will be INVALID:\n${prepared.problems.join("\n")}`);
}

// ---------------------------------------------------------------------------------------------
// in-process micro benches (middleware.mjs, observability.mjs, auth.mjs)

/**
 * The options every micro bench takes: `--calls` (per case and round), `--rounds`, `--json`, `--help`.
 * `calls` is the bench's own default.
 */
export function microBenchOptions(calls) {
  return {
    calls: { type: "string", default: String(calls) },
    rounds: { type: "string", default: "5" },
    json: { type: "string" },
    help: { type: "boolean", short: "h" },
  };
}

/**
 * The command line of a micro bench run as a script: parse its options (exit 2 on calls or rounds
 * that are not positive integers), print usage on --help, `run({ calls, rounds })`, print
 * `format(result)`, write --json.
 */
export function microBenchCli(metaUrl, { file, options, run, format }) {
  if (!isMain(metaUrl)) return;
  const main = async () => {
    const { values } = parseArgs({ args: cliArgs(), options, strict: true });
    if (values.help) {
      console.log(
        `usage: node bench/${file} [--calls ${options.calls.default}] [--rounds ${options.rounds.default}] [--json out.json]`,
      );
      return;
    }
    const calls = Number(values.calls);
    const rounds = Number(values.rounds);
    if (!Number.isInteger(calls) || calls <= 0 || !Number.isInteger(rounds) || rounds <= 0) {
      throw new Error("--calls and --rounds must be positive integers");
    }
    const result = await run({ calls, rounds });
    console.log(format(result));
    if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  };
  main().catch((error) => {
    console.error(`${file}: ${error.message}`);
    process.exit(2);
  });
}

/**
 * Times every case after a warm-up (two passes of up to 100,000 calls each), in `rounds` rounds that
 * each run every case in turn, and returns per case its samples (ns per call), their median and its
 * overhead over the first case's median. `time(case, n)` runs `n` calls of a case and returns ns per call.
 */
export async function interleavedRounds(cases, { calls, rounds }, time) {
  for (let w = 0; w < 2; w++) for (const c of cases) await time(c, Math.min(calls, 100_000));
  const samples = cases.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < cases.length; i++) samples[i].push(await time(cases[i], calls));
  }
  const base = median(samples[0]);
  return cases.map((c, i) => ({
    name: c.name,
    nsPerCall: median(samples[i]),
    overheadNs: median(samples[i]) - base,
    samples: samples[i],
  }));
}
