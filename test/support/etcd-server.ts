// A real etcd for integration tests: started on free 127.0.0.1 ports in a temp data dir and stopped by
// PID afterwards. It can be stopped and started again on the same ports and data dir, as an etcd
// restart would. Tests never depend on an etcd already running.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

/** A running etcd. */
export interface EtcdServer {
  /** The client URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly clientPort: number;
  readonly peerPort: number;
  /** The PID of the etcd process now running (-1 while stopped). */
  readonly pid: number;
  /** Stops it (SIGTERM, SIGKILL after 3 s) and keeps its data dir, so `start()` brings it back. */
  halt(): Promise<void>;
  /** Starts it again on the same ports and data dir after `halt()`; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it for good and removes its data dir. Safe to call twice. */
  stop(): Promise<void>;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The etcd binary: `$ETCD_BIN`, else the first `etcd` on `PATH` (or in /usr/bin, /usr/local/bin). */
export function findEtcd(): string | undefined {
  const fromEnv = process.env.ETCD_BIN;
  if (fromEnv !== undefined && fromEnv !== "") return executable(fromEnv) ? fromEnv : undefined;
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/local/bin", "/usr/sbin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, "etcd");
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Whether the etcd tests must be skipped: only when etcd is missing and `CI` is not `"true"`, and
 * then loudly. Under CI a missing binary does not skip: the tests run and fail in `startEtcd`.
 */
export function skipWithoutEtcd(suite: string): boolean {
  if (findEtcd() !== undefined) return false;
  if (process.env.CI === "true") return false;
  console.warn(
    `\n${"!".repeat(78)}\n!! ${suite}: SKIPPED - etcd not found on PATH (set ETCD_BIN or install\n` +
      `!! etcd, e.g. apt-get install etcd-server). Under CI=true these tests fail instead.\n${"!".repeat(78)}\n`,
  );
  return true;
}

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): Promise<number> {
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

/** Whether the etcd on `port` answers GET /health with `"health":"true"`. */
function healthy(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/health", timeout: 500 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
      res.on("error", () => resolve(false));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

const goArch: Partial<Record<string, string>> = { ia32: "386", ppc64: "ppc64le" };

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => child.once("exit", () => resolve()));
}

async function launch(binary: string, dir: string, client: number, peer: number): Promise<ChildProcess> {
  const clientUrl = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  // etcd 3.4 refuses to start on arm64 (and other non-amd64 machines) unless ETCD_UNSUPPORTED_ARCH
  // names Go's GOARCH for it.
  if (process.arch !== "x64") env.ETCD_UNSUPPORTED_ARCH = goArch[process.arch] ?? process.arch;
  const child = spawn(
    binary,
    [
      "--data-dir",
      join(dir, "data"),
      "--name",
      "default",
      "--listen-client-urls",
      clientUrl,
      "--advertise-client-urls",
      clientUrl,
      "--listen-peer-urls",
      peerUrl,
      "--initial-advertise-peer-urls",
      peerUrl,
      "--initial-cluster",
      `default=${peerUrl}`,
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"], env },
  );
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  const started = Date.now();
  while (Date.now() - started < 15_000) {
    const failure = await Promise.race([
      spawnError,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
    ]);
    if (failure !== undefined) throw new Error(`cannot start ${binary}: ${failure.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
    }
    if (await healthy(client)) return child;
  }
  child.kill("SIGKILL");
  throw new Error(`etcd did not answer on ${clientUrl} within 15 s:\n${output}`);
}

async function terminate(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = exited(child);
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return; // already gone
  }
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }, 3_000);
  await gone;
  clearTimeout(timer);
}

/** Starts etcd on free ports in a new temp dir; throws (also under CI) when it cannot. */
export async function startEtcd(): Promise<EtcdServer> {
  const binary = findEtcd();
  if (binary === undefined) {
    throw new Error(
      "etcd not found on PATH (set ETCD_BIN or apt-get install etcd-server); CI=true requires it",
    );
  }
  const dir = await mkdtemp(join(tmpdir(), "svckit-etcd-"));
  const clientPort = await freePort();
  let peerPort = await freePort();
  while (peerPort === clientPort) peerPort = await freePort();
  let child: ChildProcess | undefined;
  try {
    child = await launch(binary, dir, clientPort, peerPort);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  let stopped = false;
  return {
    url: `http://127.0.0.1:${clientPort}`,
    clientPort,
    peerPort,
    get pid(): number {
      return child?.pid ?? -1;
    },
    async halt() {
      if (child !== undefined) await terminate(child);
      child = undefined;
    },
    async start() {
      if (stopped) throw new Error("etcd was stopped for good");
      if (child !== undefined) return;
      child = await launch(binary, dir, clientPort, peerPort);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child !== undefined) await terminate(child);
      child = undefined;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
