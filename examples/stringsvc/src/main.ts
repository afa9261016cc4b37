#!/usr/bin/env node
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import {
  type AppEvent,
  createApp,
  type GrpcAppServer,
  grpcServer,
  type HttpAppServer,
  httpServer,
} from "@svckit/app";
import { ServiceError } from "@svckit/endpoint";
import { addHealthService, createHealth, createHealthHandler } from "@svckit/health";
import { makeEndpoints } from "./endpoints.js";
import { type CallRecord, stringsvcMiddleware, withMiddleware } from "./middleware.js";
import { createStringService } from "./service.js";
import { createStringsvcRouter } from "./transport.js";
import { bindStringsvc, STRING_SERVICE } from "./transport-grpc.js";

const usage = `usage: stringsvc [--http-addr host:port] [--grpc-addr host:port]
  --http-addr  HTTP JSON address (default 127.0.0.1:8080)
  --grpc-addr  gRPC address (default 127.0.0.1:8082)
  "off" or "" turns a listener off; port 0 picks a free port`;

/** Time limit of every call, whichever transport carries it (the shared `timeout` middleware). */
const CALL_TIMEOUT_MS = 1_000;
/** The largest request accepted, the same on both transports. */
const MAX_REQUEST_BYTES = 1 << 20;
/** How long in-flight calls get to finish after SIGTERM / SIGINT before their connections are closed. */
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
function formatAddr({ host, port }: Addr): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function usageError(message: string): never {
  console.error(`stringsvc: ${message}\n${usage}`);
  process.exit(2);
}

function log(fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ level: "info", ...fields }));
}

/**
 * The one-line reason a run failed. A server that could not start says so itself ("gRPC: cannot
 * listen on 127.0.0.1:8082: ... EADDRINUSE ..."); the app wraps it as its cause.
 */
function reason(err: unknown): string {
  if (err instanceof ServiceError && err.cause instanceof ServiceError) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
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
const logCall = (call: CallRecord): void => log({ msg: "call", ...call });
const endpoints = withMiddleware(
  makeEndpoints(createStringService()),
  stringsvcMiddleware(logCall, CALL_TIMEOUT_MS),
);

// Liveness and readiness, over HTTP (GET /healthz, /readyz) and gRPC (grpc.health.v1.Health). The app
// turns readiness on once every listener is up and off first thing when it stops.
const health = createHealth();

// The app starts, drains and closes these; their names are the `transport` of the log lines.
const servers: (HttpAppServer | GrpcAppServer<GrpcServer>)[] = [];
try {
  if (httpAddr !== undefined) {
    const healthHandler = createHealthHandler(health);
    const router = createStringsvcRouter(endpoints)
      .get("/healthz", healthHandler)
      .get("/readyz", healthHandler);
    const server = createServer({ keepAliveTimeout: 5_000 }, router.handle);
    servers.push(httpServer(server, { address: formatAddr(httpAddr), name: "HTTP" }));
  }
  if (grpcAddr !== undefined) {
    const server = new GrpcServer({ "grpc.max_receive_message_length": MAX_REQUEST_BYTES });
    bindStringsvc(server, endpoints);
    // "" is the server as a whole; the service's own name follows readiness too.
    addHealthService(server, health, { services: { [STRING_SERVICE]: "SERVING" } });
    servers.push(
      grpcServer(server, {
        address: formatAddr(grpcAddr),
        credentials: ServerCredentials.createInsecure(),
        name: "gRPC",
      }),
    );
  }
} catch (err) {
  // An address stringsvc's flags take but the app's servers do not (e.g. a host with a space).
  usageError(reason(err));
}

const app = createApp({
  name: "stringsvc",
  servers,
  readiness: health,
  drainTimeout: DRAIN_MS,
  afterStart: () => {
    for (const server of servers) log({ msg: "listening", transport: server.name, addr: server.address });
  },
  onEvent: (event: AppEvent) => {
    if (event.type === "stopping") log({ msg: "shutting down", signal: event.reason });
    else if (event.type === "drain-timeout")
      log({ level: "warn", msg: "drain timeout", ms: Math.round(event.ms) });
    else if (event.type === "exit") console.error(`stringsvc: ${event.signal} again, exiting now`);
  },
});

try {
  // Serves until SIGTERM or SIGINT, then stops accepting, drains the calls in flight (up to DRAIN_MS)
  // and closes.
  await app.run();
  process.exit(0);
} catch (err) {
  console.error(`stringsvc: ${reason(err)}`);
  process.exit(1);
}
