// Helpers shared by the integration tests in this folder: real servers on 127.0.0.1, raw HTTP
// requests, and child processes that are always stopped by PID.
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";

// Real servers on 127.0.0.1:0, closed after each test: the same helpers transport-http's tests use.
export {
  closeServers,
  freePort,
  listen,
  type TestServer,
} from "../packages/transport-http/src/test-helpers.js";

/** A response read in full. */
export interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON. */
  json(): unknown;
}

/** A request for {@link send}. */
export interface RawRequest {
  method?: string;
  path: string;
  headers?: http.OutgoingHttpHeaders;
  /** Sent whole, with a content-length. */
  body?: string | Uint8Array;
  /**
   * Instead of `body`: stream this many bytes of `a` with chunked transfer encoding, stopping early
   * once the server has answered (as it does when the body is too large).
   */
  streamBytes?: number;
  /** Default: a new connection per request. */
  agent?: http.Agent;
}

/**
 * Sends one request with `node:http` and reads the whole answer. An error on the request after the
 * answer arrived (the server closing on a body it refused) is ignored; one before it rejects.
 */
export function send(port: number, request: RawRequest): Promise<RawResponse> {
  return new Promise<RawResponse>((resolve, reject) => {
    let answered = false;
    const headers: http.OutgoingHttpHeaders = { ...request.headers };
    if (request.body !== undefined) headers["content-length"] = Buffer.byteLength(request.body);
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: request.method ?? "POST",
        path: request.path,
        headers,
        agent: request.agent ?? false,
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    if (request.streamBytes === undefined) {
      req.end(request.body);
      return;
    }
    let left = request.streamBytes;
    const chunk = Buffer.alloc(64 * 1024, "a");
    const pump = (): void => {
      while (left > 0 && !answered && !req.destroyed) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once("drain", pump);
          return;
        }
      }
      if (!answered && !req.destroyed) req.end();
    };
    pump();
  });
}

/** A child process started by {@link startProcess}, with everything it printed so far. */
export interface TestProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code and signal, or rejects if the process runs `ms` longer. */
  exited(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stdout line `match` accepts; rejects if the process exits first or after `ms`. */
  line(match: (line: string) => boolean, ms: number): Promise<string>;
}

const processes = new Set<TestProcess>();

/** Spawns `command args` with piped stdout/stderr; {@link stopProcesses} kills it by PID if still running. */
export function startProcess(command: string, args: readonly string[], cwd: string): TestProcess {
  const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${command}`);
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (s: string) => {
    out += s;
  });
  child.stderr?.on("data", (s: string) => {
    err += s;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  const proc: TestProcess = {
    child,
    pid,
    stdout: () => out,
    stderr: () => err,
    exited: (ms) => within(exit, ms, `process ${pid} still running after ${ms} ms`),
    line: (match, ms) => {
      const found = new Promise<string>((resolve, reject) => {
        const look = (): boolean => {
          const hit = out.split("\n").find((l) => l !== "" && match(l));
          if (hit === undefined) return false;
          child.stdout?.off("data", look);
          resolve(hit);
          return true;
        };
        if (look()) return;
        child.stdout?.on("data", look);
        void exit.then(({ code, signal }) => {
          if (!look()) reject(new Error(`process exited (${code ?? signal}) first; stderr: ${err}`));
        });
      });
      return within(found, ms, `no matching line after ${ms} ms; stdout: ${out}; stderr: ${err}`);
    },
  };
  processes.add(proc);
  void exit.then(() => processes.delete(proc));
  return proc;
}

/** Kills (SIGKILL, by PID) every process {@link startProcess} started that has not exited. */
export async function stopProcesses(): Promise<void> {
  await Promise.all(
    [...processes].map(async (proc) => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) process.kill(proc.pid, "SIGKILL");
      await proc.exited(5_000);
    }),
  );
}

/** `promise`, or a rejection with `message` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
