// Zero-loss graceful shutdown, measured: a child process (test/fixtures/app-server.mjs, on the BUILT
// packages) runs an @svckit/app with an HTTP and a gRPC server. This test sends a steady, bounded
// stream of HTTP requests over keep-alive connections and gRPC calls over one channel, sends SIGTERM
// in the middle and keeps sending for a while. Every request that reached the service must get its
// whole answer; the rest must be refused the way a client can retry (connection refused, a reset of a
// connection the server never read a request from, gRPC UNAVAILABLE).
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { Client, credentials, type ServiceError as GrpcError, Metadata, status } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startProcess, stopProcesses, type TestProcess } from "./support.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/app-server.mjs", import.meta.url));
const PACKAGES = ["endpoint", "app", "health", "transport-http", "transport-grpc"];
const DRAIN_TIMEOUT = 5_000;

/** Sends one request every INTERVAL ms per transport, for LOAD_MS before the signal and AFTER_MS after. */
const INTERVAL = 4;
const LOAD_MS = 700;
const AFTER_MS = 500;

interface Line {
  readonly event: string;
  readonly t: number;
  readonly [key: string]: unknown;
}

function lines(proc: TestProcess): Line[] {
  return proc
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Line);
}

/** How one request ended. */
type Outcome =
  | { readonly kind: "answered"; readonly id: string }
  | { readonly kind: "failed"; readonly id: string; readonly code: string; readonly reused: boolean };

function httpWork(port: number, id: string, agent: http.Agent): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, path: `/work?id=${id}`, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => {
        const whole = res.statusCode === 200 && body === JSON.stringify({ id, ok: true });
        resolve(
          whole
            ? { kind: "answered", id }
            : { kind: "failed", id, code: `HTTP ${res.statusCode} ${body}`, reused: req.reusedSocket },
        );
      });
      res.on("error", (err: NodeJS.ErrnoException) =>
        resolve({
          kind: "failed",
          id,
          code: `truncated: ${err.code ?? err.message}`,
          reused: req.reusedSocket,
        }),
      );
    });
    req.on("error", (err: NodeJS.ErrnoException) =>
      resolve({ kind: "failed", id, code: err.code ?? err.message, reused: req.reusedSocket }),
    );
    req.end();
  });
}

const encodeJson = (message: unknown): Buffer => Buffer.from(JSON.stringify(message));
const decodeJson = (bytes: Buffer): unknown => JSON.parse(bytes.toString("utf8"));

function grpcWork(client: Client, id: string): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    client.makeUnaryRequest(
      "/test.Work/Do",
      encodeJson,
      decodeJson,
      { id },
      new Metadata(),
      { deadline: Date.now() + 5_000 },
      (err: GrpcError | null, value?: unknown) => {
        if (err) resolve({ kind: "failed", id, code: status[err.code] ?? String(err.code), reused: false });
        else if (JSON.stringify(value) === JSON.stringify({ id, ok: true }))
          resolve({ kind: "answered", id });
        else resolve({ kind: "failed", id, code: `bad answer ${JSON.stringify(value)}`, reused: false });
      },
    );
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** GET /readyz on a new connection: the status, or 0 when the connection failed. */
function probe(port: number): Promise<number> {
  return new Promise<number>((resolve) => {
    http
      .get({ host: "127.0.0.1", port, path: "/readyz", agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on("error", () => resolve(0));
  });
}

describe("@svckit/app graceful shutdown under load (child process)", () => {
  beforeAll(() => {
    // Build when a package's dist is missing or older than its sources; `tsc -b` is incremental.
    const stale = PACKAGES.some((name) => {
      const dist = `${root}packages/${name}/dist/index.js`;
      if (!existsSync(dist)) return true;
      const built = statSync(dist).mtimeMs;
      const src = `${root}packages/${name}/src`;
      return readdirSync(src).some((f) => f.endsWith(".ts") && statSync(`${src}/${f}`).mtimeMs > built);
    });
    if (stale) {
      execFileSync(
        "pnpm",
        ["exec", "tsc", "-b", ...PACKAGES.filter((p) => p !== "endpoint").map((p) => `packages/${p}`)],
        { cwd: root, stdio: "pipe", timeout: 60_000 },
      );
    }
  }, 70_000);
  afterEach(stopProcesses);

  it("answers every accepted request in full, refuses the rest, deregisters first and exits 0", async () => {
    const proc = startProcess(process.execPath, [fixture], root);
    const listening = JSON.parse(await proc.line((l) => l.includes('"listening"'), 10_000)) as {
      http: number;
      grpc: number;
    };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const client = new Client(`127.0.0.1:${listening.grpc}`, credentials.createInsecure());
    const sent: Promise<Outcome>[] = [];
    const probes: Promise<number>[] = [];
    let signalledAt = 0;
    let signalledAtN = 0;
    let exitedAt = 0;
    try {
      const exited = proc.exited(15_000).then((result) => {
        exitedAt = performance.now();
        return result;
      });
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < LOAD_MS + AFTER_MS) {
        if (signalledAt === 0 && performance.now() - t0 >= LOAD_MS) {
          process.kill(proc.pid, "SIGTERM");
          signalledAt = performance.now();
          signalledAtN = n;
        }
        n++;
        sent.push(httpWork(listening.http, `h${n}`, agent), grpcWork(client, `g${n}`));
        // After the signal, a readiness probe on a new connection now and then, as a load balancer would.
        if (signalledAt !== 0 && n % 5 === 0) probes.push(probe(listening.http));
        await sleep(INTERVAL);
      }
      const outcomes = await Promise.all(sent);
      const readiness = await Promise.all(probes);
      expect(await exited).toEqual({ code: 0, signal: null });

      const log = lines(proc);
      const stopped = log.find((l) => l.event === "stopped");
      expect(stopped, `stdout: ${proc.stdout()}\nstderr: ${proc.stderr()}`).toBeDefined();
      const accepted = new Set(stopped?.accepted as string[]);
      const answered = outcomes.filter((o) => o.kind === "answered");
      const failed = outcomes.filter((o): o is Extract<Outcome, { kind: "failed" }> => o.kind === "failed");
      const lost = outcomes.filter((o) => accepted.has(o.id) && o.kind !== "answered");
      const refusals = new Map<string, number>();
      for (const f of failed) {
        const key =
          f.code === "ECONNRESET" || f.code === "socket hang up"
            ? `${f.code} (reused socket: ${f.reused})`
            : f.code;
        refusals.set(key, (refusals.get(key) ?? 0) + 1);
      }
      const exitMs = Math.round(exitedAt - signalledAt);
      console.log(
        `app-shutdown: sent ${outcomes.length} (HTTP ${outcomes.length / 2}, gRPC ${outcomes.length / 2}), ` +
          `answered ${answered.length}, refused ${failed.length} (${[...refusals].map(([k, v]) => `${k}: ${v}`).join(", ")}), ` +
          `lost ${lost.length}; accepted after SIGTERM ${
            answered.filter((o) => Number(o.id.slice(1)) > signalledAtN).length
          }; max in flight ${String(stopped?.maxInFlight)}; SIGTERM → exit ${exitMs} ms`,
      );

      // Nothing the service accepted was lost, and everything answered had been accepted.
      expect(lost).toEqual([]);
      for (const o of answered) expect(accepted.has(o.id)).toBe(true);
      // Requests before the signal were all answered; after it, only retryable refusals.
      expect(answered.length).toBeGreaterThan(outcomes.length / 3);
      for (const f of failed) {
        expect(accepted.has(f.id)).toBe(false);
        // ECONNRESET: on a reused keep-alive socket, the request crossed the server closing it while
        // idle; on a new one, the connection sat in the kernel's accept queue as the listener closed.
        // Either way the server never read the request (asserted above), so a client may retry it.
        const retryable = f.code === "ECONNREFUSED" || f.code === "UNAVAILABLE" || f.code === "ECONNRESET";
        expect(retryable, `${f.id}: ${f.code} (reused socket: ${f.reused})`).toBe(true);
      }
      // New connections after the stop were refused, on both transports.
      expect(failed.some((f) => f.id.startsWith("h") && f.code === "ECONNREFUSED")).toBe(true);
      expect(failed.some((f) => f.id.startsWith("g") && f.code === "UNAVAILABLE")).toBe(true);
      // Load balancers saw readiness fail before the listeners closed: 503s, and no 200 after a 503.
      const statuses = readiness.filter((code) => code > 0);
      expect(statuses).toContain(503);
      expect(statuses.slice(statuses.indexOf(503))).not.toContain(200);

      // Order: readiness false, deregistered, then the servers stop accepting and close.
      const at = (event: string, server?: string): number =>
        log.findIndex((l) => l.event === event && (server === undefined || l.server === server));
      const register = log[at("register")];
      expect(register?.endpoints).toEqual([
        `http://127.0.0.1:${listening.http}`,
        `grpc://127.0.0.1:${listening.grpc}`,
      ]);
      expect(at("register")).toBeLessThan(at("listening"));
      expect(log[at("stopping")]).toMatchObject({ reason: "SIGTERM" });
      const servingFalse = log.findIndex(
        (l, i) => i > at("register") && l.event === "serving" && l.serving === false,
      );
      expect(servingFalse).toBeLessThan(at("deregister"));
      for (const server of ["http", "grpc"]) {
        expect(at("deregister")).toBeLessThan(at("server-stop", server));
        expect(at("server-stop", server)).toBeLessThan(at("server-closed", server));
      }
      expect(at("drain-timeout")).toBe(-1);
      expect(at("error")).toBe(-1);
      // Stopped well within the drain timeout.
      expect(exitMs).toBeLessThan(DRAIN_TIMEOUT);
      expect(proc.stderr()).toBe("");
    } finally {
      agent.destroy();
      client.close();
    }
  }, 20_000);
});
