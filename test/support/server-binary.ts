// What the tests that need a real server binary (etcd, redis-server) share: finding the binary,
// skipping loudly when it is missing (failing under CI=true instead), and running it on 127.0.0.1
// ports in a temp dir, waiting until it answers, and stopping it by PID. Tests never depend on a
// server already running.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { freePort } from "../support.js";

export { freePort };

/** How to find one kind of server binary and what to tell people who do not have it. */
export interface ServerBinary {
  /** The file looked for on `PATH`, also its name in messages: `"etcd"`, `"redis-server"`. */
  readonly name: string;
  /** The environment variable whose value, when set, is the binary's path instead of a `PATH` lookup. */
  readonly envVar: string;
  /** How to install it, for messages: `"apt-get install etcd-server"`. */
  readonly install: string;
}

/** Directories searched after `PATH`. */
const fallbackDirs = ["/usr/bin", "/usr/sbin", "/usr/local/bin"];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The binary's path: `$<envVar>` when set (undefined if that is not executable), else the first
 * executable `<name>` on `PATH` or in /usr/bin, /usr/sbin, /usr/local/bin.
 */
export function findBinary(binary: ServerBinary): string | undefined {
  const fromEnv = process.env[binary.envVar];
  if (fromEnv !== undefined && fromEnv !== "") return executable(fromEnv) ? fromEnv : undefined;
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), ...fallbackDirs]) {
    if (dir === "") continue;
    const candidate = join(dir, binary.name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Whether the tests of `suite` that need `binary` must be skipped: only when it is missing and `CI`
 * is not `"true"`, and then loudly. Under CI a missing binary does not skip: the tests run and fail
 * in {@link startServerBinary}.
 */
export function skipWithoutBinary(binary: ServerBinary, suite: string): boolean {
  if (findBinary(binary) !== undefined) return false;
  if (process.env.CI === "true") return false;
  const bar = "!".repeat(78);
  console.warn(
    `\n${bar}\n!! ${suite}: SKIPPED - ${binary.name} not found on PATH (set ${binary.envVar} or install\n` +
      `!! ${binary.name}, e.g. ${binary.install}). Under CI=true these tests fail instead.\n${bar}\n`,
  );
  return true;
}

/** `n` different ports that were free a moment ago on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}

/** How {@link startServerBinary} runs the binary. */
export interface ServerLaunch {
  /** The prefix of its temp dir's name, e.g. `"svckit-etcd-"`. */
  readonly tempPrefix: string;
  /** Its arguments, given the temp dir; taken again on each start. */
  readonly args: (dir: string) => readonly string[];
  /** Its environment; default this process's. */
  readonly env?: NodeJS.ProcessEnv;
  /** Whether it answers now (a health request, a PING); polled after each start. */
  readonly ready: () => Promise<boolean>;
  /** How long a start may take until `ready` says yes, in ms; default 10 000. */
  readonly startTimeout?: number;
  /** The pause between two `ready` checks, in ms; default 50. */
  readonly pollInterval?: number;
}

/** A server binary started by {@link startServerBinary}. */
export interface ServerProcess {
  /** Its temp dir, kept across restarts and removed by `stop()`. */
  readonly dir: string;
  /** The PID of the process now running, -1 while none runs. */
  readonly pid: number;
  /** Starts it again (same arguments, same temp dir) unless it runs; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it (SIGCONT in case it is paused, SIGTERM, SIGKILL after 3 s) and keeps its temp dir. */
  halt(): Promise<void>;
  /** Kills it at once (SIGKILL), as a crash would, and waits until it is gone; keeps its temp dir. */
  kill(): Promise<void>;
  /** Sends `signal` to it if it runs, without waiting (SIGSTOP / SIGCONT to freeze and thaw it). */
  signal(signal: NodeJS.Signals): void;
  /** Halts it for good and removes its temp dir; `start()` throws afterwards. Safe to call twice. */
  stop(): Promise<void>;
}

function running(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

function exited(child: ChildProcess): Promise<void> {
  if (!running(child)) return Promise.resolve();
  return new Promise<void>((resolve) => child.once("exit", () => resolve()));
}

/** Sends `signal` to `child` by its PID if it still runs; returns whether it was sent. */
function send(child: ChildProcess | undefined, signal: NodeJS.Signals): boolean {
  const pid = child?.pid;
  if (!running(child) || pid === undefined) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false; // already gone
  }
}

async function terminate(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || !running(child)) return;
  const gone = exited(child);
  send(child, "SIGCONT");
  if (!send(child, "SIGTERM")) return;
  const timer = setTimeout(() => send(child, "SIGKILL"), 3_000);
  await gone;
  clearTimeout(timer);
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || !running(child)) return;
  const gone = exited(child);
  if (send(child, "SIGKILL")) await gone;
}

/** Spawns `path` and resolves once `launch.ready()` says yes; kills it and throws when it does not. */
async function launchOnce(
  name: string,
  path: string,
  dir: string,
  launch: ServerLaunch,
): Promise<ChildProcess> {
  const child = spawn(path, launch.args(dir), {
    stdio: ["ignore", "pipe", "pipe"],
    env: launch.env ?? process.env,
  });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  const timeout = launch.startTimeout ?? 10_000;
  const interval = launch.pollInterval ?? 50;
  const started = Date.now();
  while (Date.now() - started < timeout) {
    const failure = await Promise.race([
      spawnError,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), interval)),
    ]);
    if (failure !== undefined) throw new Error(`cannot start ${path}: ${failure.message}`);
    if (!running(child)) {
      throw new Error(`${name} exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
    }
    if (await launch.ready()) return child;
  }
  await kill(child);
  throw new Error(`${name} did not answer within ${timeout / 1_000} s:\n${output}`);
}

/**
 * Starts `binary` in a new temp dir as `launch` says and resolves once it answers; throws (also
 * under CI) when the binary is missing or does not come up, and then removes the temp dir. Pick its
 * ports beforehand with {@link freePorts} and bind it to 127.0.0.1 in `launch.args`.
 */
export async function startServerBinary(binary: ServerBinary, launch: ServerLaunch): Promise<ServerProcess> {
  const path = findBinary(binary);
  if (path === undefined) {
    throw new Error(
      `${binary.name} not found on PATH (set ${binary.envVar} or ${binary.install}); CI=true requires it`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), launch.tempPrefix));
  let child: ChildProcess | undefined;
  try {
    child = await launchOnce(binary.name, path, dir, launch);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  let stopped = false;
  return {
    dir,
    get pid(): number {
      return running(child) ? (child?.pid ?? -1) : -1;
    },
    async start() {
      if (stopped) throw new Error(`${binary.name} was stopped for good`);
      if (running(child)) return;
      child = await launchOnce(binary.name, path, dir, launch);
    },
    halt: () => terminate(child),
    kill: () => kill(child),
    signal(signal) {
      send(child, signal);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
