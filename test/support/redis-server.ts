// A real redis-server for integration tests: started on a free 127.0.0.1 port in a temp dir, with no
// persistence, and stopped by PID afterwards. Tests never depend on a Redis already running.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

/** A running redis-server. */
export interface RedisServer {
  readonly port: number;
  readonly pid: number;
  /** Stops it (SIGTERM, then SIGKILL after 3 s) and removes its temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Kills it at once (SIGKILL), as a crash would; its temp dir stays until `stop()`. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty, after `kill()`. */
  restart(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open but nothing is answered, like a hung server. */
  pause(): void;
  /** Thaws it (SIGCONT) after `pause()`. */
  resume(): void;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The redis-server binary: `$REDIS_SERVER`, else the first on `PATH` (or in /usr/bin, /usr/sbin, /usr/local/bin). */
export function findRedisServer(): string | undefined {
  const fromEnv = process.env.REDIS_SERVER;
  if (fromEnv !== undefined && fromEnv !== "") return executable(fromEnv) ? fromEnv : undefined;
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/sbin", "/usr/local/bin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, "redis-server");
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Whether the Redis tests must be skipped: only when redis-server is missing and `CI` is not `"true"`,
 * and then loudly. Under CI a missing binary does not skip: the tests run and fail in `startRedis`.
 */
export function skipWithoutRedis(suite: string): boolean {
  if (findRedisServer() !== undefined) return false;
  if (process.env.CI === "true") return false;
  console.warn(
    `\n${"!".repeat(78)}\n!! ${suite}: SKIPPED - redis-server not found on PATH (set REDIS_SERVER or install\n` +
      `!! redis-server, e.g. apt-get install redis-server). Under CI=true these tests fail instead.\n${"!".repeat(78)}\n`,
  );
  return true;
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether a Redis on `port` answers PING with PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let answer = "";
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => child.once("exit", () => resolve()));
}

async function launch(binary: string, port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    binary,
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--daemonize",
      "no",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  const started = Date.now();
  while (Date.now() - started < 10_000) {
    const failure = await Promise.race([
      spawnError,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 20)),
    ]);
    if (failure !== undefined) throw new Error(`cannot start ${binary}: ${failure.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
    }
    if (await ping(port)) return child;
  }
  child.kill("SIGKILL");
  throw new Error(`redis-server did not answer on 127.0.0.1:${port} within 10 s:\n${output}`);
}

/** Starts redis-server on a free port in a new temp dir; throws (also under CI) when it cannot. */
export async function startRedis(): Promise<RedisServer> {
  const binary = findRedisServer();
  if (binary === undefined) {
    throw new Error("redis-server not found on PATH (set REDIS_SERVER); CI=true requires it");
  }
  const dir = await mkdtemp(join(tmpdir(), "svckit-redis-"));
  const port = await freePort();
  let child = await launch(binary, port, dir);
  let stopped = false;
  const signal = async (sig: NodeJS.Signals, waitForExit = true): Promise<void> => {
    const pid = child.pid;
    if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
    if (waitForExit) await exited(child);
  };
  return {
    port,
    get pid(): number {
      return child.pid ?? -1;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await signal("SIGCONT", false);
      const term = signal("SIGTERM");
      const timer = setTimeout(() => {
        if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
          process.kill(child.pid, "SIGKILL");
        }
      }, 3_000);
      await term;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
    kill: () => signal("SIGKILL"),
    pause: () => void signal("SIGSTOP", false),
    resume: () => void signal("SIGCONT", false),
    async restart() {
      await signal("SIGKILL");
      child = await launch(binary, port, dir);
    },
  };
}
