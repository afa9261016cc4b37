#!/usr/bin/env node
// addsvc: go-kit's examples/addsvc on svckit. One service, one set of endpoints wrapped once in one
// middleware chain, served over HTTP JSON, gRPC and JSON-RPC at once, plus a debug listener with
// /metrics, /healthz and /readyz (see server.ts). Stops gracefully on SIGTERM / SIGINT.
//
// Only the flag parser (and the tiny @svckit/endpoint) is loaded before the flags are read, so --help and a bad command line answer at
// once; the servers and their libraries are imported afterwards.
import { ServiceError } from "@svckit/endpoint";
import { parseChoice, parseCount, parseDuration, parseFlags } from "./flags.js";
import type { GrpcEngine } from "./server.js";

const usage = `usage: addsvc [flags]
  -http-addr host:port     HTTP JSON address (default 127.0.0.1:8081)
  -grpc-addr host:port     gRPC address (default 127.0.0.1:8082)
  -grpc-engine grpc-js|h2  the gRPC server: grpc-js's Server, or h2 for @svckit/grpc-h2's
                           engine on node:http2; the same service on both (default grpc-js)
  -jsonrpc-addr host:port  JSON-RPC over HTTP address (default 127.0.0.1:8084)
  -debug-addr host:port    /metrics, /healthz and /readyz (default 127.0.0.1:8080)
  -sum-rate n              sum calls admitted per second, 0 = unlimited (default 1)
  -concat-rate n           concat calls admitted per second, 0 = unlimited (default 100)
  -breaker-calls n         a breaker opens once its 10 s window held n calls and more than
                           half failed; 0 = no breakers (default 6)
  -breaker-timeout d       how long an open breaker refuses calls, e.g. 500ms, 60s (default 60s)
  -h, -help                print this and exit
Flags take one dash or two, and "-flag value" or "-flag=value". An address of "off" (or "")
turns that listener off; port 0 picks a free port (the log line says which).`;

function usageError(message: string): never {
  console.error(`addsvc: ${message}\n${usage}`);
  process.exit(2);
}

/** The one-line reason a run failed ("HTTP: cannot listen on 127.0.0.1:8081: ... EADDRINUSE ..."). */
function reason(err: unknown): string {
  // The app wraps a server's failure ("app start failed: server ...: <cause>"); the cause says it all.
  if (err instanceof ServiceError && err.cause instanceof ServiceError) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

const listeners = {
  "http-addr": "127.0.0.1:8081",
  "grpc-addr": "127.0.0.1:8082",
  "jsonrpc-addr": "127.0.0.1:8084",
  "debug-addr": "127.0.0.1:8080",
} as const;
type Listener = keyof typeof listeners;

const grpcEngines = ["grpc-js", "h2"] as const satisfies readonly GrpcEngine[];

const addrs: Partial<Record<Listener, string>> = {};
let grpcEngine: GrpcEngine = "grpc-js";
let sumRate = 1;
let concatRate = 100;
let breakerCalls = 6;
let breakerTimeout = 60_000;
try {
  const { values, positionals } = parseFlags(process.argv.slice(2), {
    "http-addr": "string",
    "grpc-addr": "string",
    "grpc-engine": "string",
    "jsonrpc-addr": "string",
    "debug-addr": "string",
    "sum-rate": "string",
    "concat-rate": "string",
    "breaker-calls": "string",
    "breaker-timeout": "string",
    help: "boolean",
    h: "boolean",
  });
  if (values.get("help") === true || values.get("h") === true) {
    console.log(usage);
    process.exit(0);
  }
  if (positionals.length > 0) throw new Error(`unexpected argument "${positionals[0]}"`);
  const str = (name: string): string | undefined => values.get(name) as string | undefined;
  for (const [name, fallback] of Object.entries(listeners) as [Listener, string][]) {
    const addr = str(name) ?? fallback;
    if (addr !== "off" && addr !== "") addrs[name] = addr;
  }
  grpcEngine = parseChoice("grpc-engine", str("grpc-engine") ?? "grpc-js", grpcEngines);
  sumRate = parseCount("sum-rate", str("sum-rate") ?? "1");
  concatRate = parseCount("concat-rate", str("concat-rate") ?? "100");
  breakerCalls = parseCount("breaker-calls", str("breaker-calls") ?? "6");
  breakerTimeout = parseDuration("breaker-timeout", str("breaker-timeout") ?? "60s");
} catch (err) {
  usageError((err as Error).message);
}
if (
  addrs["http-addr"] === undefined &&
  addrs["grpc-addr"] === undefined &&
  addrs["jsonrpc-addr"] === undefined
) {
  usageError("-http-addr, -grpc-addr and -jsonrpc-addr are all off: nothing to serve");
}

const [{ createJsonLogger }, { createAddsvc }] = await Promise.all([
  import("@svckit/log"),
  import("./server.js"),
]);

let addsvc: ReturnType<typeof createAddsvc>;
try {
  addsvc = createAddsvc({
    httpAddr: addrs["http-addr"],
    grpcAddr: addrs["grpc-addr"],
    grpcEngine,
    jsonrpcAddr: addrs["jsonrpc-addr"],
    debugAddr: addrs["debug-addr"],
    sumRate,
    concatRate,
    breaker: breakerCalls === 0 ? false : { minCalls: breakerCalls, openMs: breakerTimeout },
    // One JSON line per event on stdout: the listeners, every call (the logging middleware), the stop.
    // JSON lines on stdout, written in batches; the logging middleware redacts each line already.
    logger: createJsonLogger({ level: "info", redact: false }),
  });
} catch (err) {
  // An address the servers cannot take: not host:port, a port over 65535, ...
  usageError(reason(err));
}

try {
  // Serves until SIGTERM or SIGINT, then stops accepting, drains the calls in flight and closes.
  await addsvc.app.run();
  process.exit(0);
} catch (err) {
  console.error(`addsvc: ${reason(err)}`);
  process.exit(1);
}
