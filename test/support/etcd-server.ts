// A real etcd for integration tests: started on free 127.0.0.1 ports in a temp data dir and stopped by
// PID afterwards. It can be stopped and started again on the same ports and data dir, as an etcd
// restart would. Tests never depend on an etcd already running.
import http from "node:http";
import { join } from "node:path";
import {
  findBinary,
  freePorts,
  type ServerBinary,
  skipWithoutBinary,
  startServerBinary,
} from "./server-binary.js";

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

const etcd: ServerBinary = { name: "etcd", envVar: "ETCD_BIN", install: "apt-get install etcd-server" };

/** The etcd binary: `$ETCD_BIN`, else the first `etcd` on `PATH` (or in /usr/bin, /usr/sbin, /usr/local/bin). */
export function findEtcd(): string | undefined {
  return findBinary(etcd);
}

/**
 * Whether the etcd tests must be skipped: only when etcd is missing and `CI` is not `"true"`, and
 * then loudly. Under CI a missing binary does not skip: the tests run and fail in `startEtcd`.
 */
export function skipWithoutEtcd(suite: string): boolean {
  return skipWithoutBinary(etcd, suite);
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

/** Starts etcd on free ports in a new temp dir; throws (also under CI) when it cannot. */
export async function startEtcd(): Promise<EtcdServer> {
  const [clientPort = 0, peerPort = 0] = await freePorts(2);
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  // etcd 3.4 refuses to start on arm64 (and other non-amd64 machines) unless ETCD_UNSUPPORTED_ARCH
  // names Go's GOARCH for it.
  if (process.arch !== "x64") env.ETCD_UNSUPPORTED_ARCH = goArch[process.arch] ?? process.arch;
  const server = await startServerBinary(etcd, {
    tempPrefix: "svckit-etcd-",
    args: (dir) => [
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
    env,
    ready: () => healthy(clientPort),
    startTimeout: 15_000,
  });
  return {
    url: clientUrl,
    clientPort,
    peerPort,
    get pid(): number {
      return server.pid;
    },
    halt: () => server.halt(),
    start: () => server.start(),
    stop: () => server.stop(),
  };
}
