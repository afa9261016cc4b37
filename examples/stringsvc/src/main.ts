#!/usr/bin/env node
import { createServer, type ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import { makeEndpoints } from "./endpoints.js";
import { type CallRecord, stringsvcMiddleware, withMiddleware } from "./middleware.js";
import { createStringService } from "./service.js";
import { createStringsvcRouter } from "./transport.js";
import { bindStringsvc } from "./transport-grpc.js";

const usage = `usage: stringsvc [--http-addr host:port] [--grpc-addr host:port]
  --http-addr  HTTP JSON address (default 127.0.0.1:8080)
  --grpc-addr  gRPC address (default 127.0.0.1:8082)
  "off" or "" turns a listener off; port 0 picks a free port`;

/** Time limit of every call, whichever transport carries it (the shared `timeout` middleware). */
const CALL_TIMEOUT_MS = 1_000;
/** The largest request accepted, the same on both transports. */
const MAX_REQUEST_BYTES = 1 << 20;
/** How long in-flight calls get to finish after SIGTERM / SIGINT before everything is closed. */
const DRAIN_MS = 10_000;

interface Addr {
  readonly host: string;
  readonly port: number;
}

/** `host:port` → an address; `off` and `""` → `undefined` (that listener is off). */
function parseAddr(addr: string): Addr | undefined {
  if (addr === "" || addr === "off") return undefined;
  const i = addr.lastIndexOf(":");
  const host = i <= 0 ? "127.0.0.1" : addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  // Digits only: Number() alone would take "", " ", "0x50" and "1e3" as ports 0, 0, 80 and 1000.
  const digits = addr.slice(i + 1);
  const port = /^\d{1,5}$/.test(digits) ? Number(digits) : Number.NaN;
  if (!(port >= 0 && port <= 65535)) throw new Error(`invalid address "${addr}"`);
  return { host, port };
}

/** `host:port` in the form the flags take: "[::1]:8080" rather than the ambiguous "::1:8080". */
function formatAddr(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function usageError(message: string): never {
  console.error(`stringsvc: ${message}\n${usage}`);
  process.exit(2);
}

function logListening(transport: string, addr: string): void {
  console.log(JSON.stringify({ level: "info", msg: "listening", transport, addr }));
}

let httpAddr: Addr | undefined;
let grpcAddr: Addr | undefined;
try {
  const { values } = parseArgs({
    options: {
      "http-addr": { type: "string", default: "127.0.0.1:8080" },
      "grpc-addr": { type: "string", default: "127.0.0.1:8082" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help === true) {
    console.log(usage);
    process.exit(0);
  }
  httpAddr = parseAddr(values["http-addr"] ?? "127.0.0.1:8080");
  grpcAddr = parseAddr(values["grpc-addr"] ?? "127.0.0.1:8082");
} catch (err) {
  usageError((err as Error).message);
}
if (httpAddr === undefined && grpcAddr === undefined) usageError("--http-addr and --grpc-addr are both off");

// One service, one set of endpoints, one middleware chain: both transports serve these same endpoints.
const logCall = (call: CallRecord): void =>
  console.log(JSON.stringify({ level: "info", msg: "call", ...call }));
const endpoints = withMiddleware(
  makeEndpoints(createStringService()),
  stringsvcMiddleware(logCall, CALL_TIMEOUT_MS),
);

// Responses not yet written. On shutdown they are told to close their connection, or a keep-alive
// client would go on sending requests on it and hold the process up to the hard stop below.
const inFlight = new Set<ServerResponse>();
let stopping = false;
function settled(this: ServerResponse): void {
  inFlight.delete(this);
}

function startHttp({ host, port }: Addr) {
  const router = createStringsvcRouter(endpoints);
  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    if (stopping) {
      res.setHeader("connection", "close");
    } else {
      inFlight.add(res);
      res.once("close", settled);
    }
    router.handle(req, res);
  });
  server.on("error", (err) => {
    console.error(`stringsvc: ${err.message}`);
    process.exit(1);
  });
  server.listen(port, host, () => {
    const bound = server.address();
    logListening(
      "HTTP",
      typeof bound === "object" && bound !== null ? formatAddr(bound.address, bound.port) : String(bound),
    );
  });
  return server;
}

function startGrpc({ host, port }: Addr): GrpcServer {
  const server = new GrpcServer({ "grpc.max_receive_message_length": MAX_REQUEST_BYTES });
  bindStringsvc(server, endpoints);
  server.bindAsync(formatAddr(host, port), ServerCredentials.createInsecure(), (err, boundPort) => {
    if (err) {
      console.error(`stringsvc: gRPC: ${err.message}`);
      process.exit(1);
    }
    logListening("gRPC", formatAddr(host, boundPort));
  });
  return server;
}

const httpServer = httpAddr === undefined ? undefined : startHttp(httpAddr);
const grpcServer = grpcAddr === undefined ? undefined : startGrpc(grpcAddr);

function stop(signal: NodeJS.Signals): void {
  if (stopping) {
    console.error(`stringsvc: ${signal} again, exiting now`);
    process.exit(1);
  }
  stopping = true;
  console.log(JSON.stringify({ level: "info", msg: "shutting down", signal }));
  const closed: Promise<void>[] = [];
  if (httpServer !== undefined) {
    for (const res of inFlight) if (!res.headersSent) res.setHeader("connection", "close");
    closed.push(new Promise<void>((resolve) => httpServer.close(() => resolve())));
    httpServer.closeIdleConnections();
  }
  if (grpcServer !== undefined) {
    // Stops accepting calls, lets the ones in flight finish, then closes the connections.
    closed.push(new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve())));
  }
  void Promise.all(closed).then(() => process.exit(0));
  setTimeout(() => {
    httpServer?.closeAllConnections();
    grpcServer?.forceShutdown();
    process.exit(0);
  }, DRAIN_MS).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
