#!/usr/bin/env node
import { createServer, type ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import { makeEndpoints } from "./endpoints.js";
import { createStringService } from "./service.js";
import { createStringsvcRouter } from "./transport.js";

const usage = "usage: stringsvc [--http-addr host:port]   (default 127.0.0.1:8080)";

function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const host = i <= 0 ? "127.0.0.1" : addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  // Digits only: Number() alone would take "", " ", "0x50" and "1e3" as ports 0, 0, 80 and 1000.
  const digits = addr.slice(i + 1);
  const port = /^\d{1,5}$/.test(digits) ? Number(digits) : Number.NaN;
  if (!(port >= 0 && port <= 65535)) throw new Error(`invalid address "${addr}"`);
  return { host, port };
}

let args: { "http-addr": string; help: boolean };
try {
  const { values } = parseArgs({
    options: {
      "http-addr": { type: "string", default: "127.0.0.1:8080" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  args = { "http-addr": values["http-addr"] ?? "127.0.0.1:8080", help: values.help ?? false };
} catch (err) {
  console.error(`stringsvc: ${(err as Error).message}\n${usage}`);
  process.exit(2);
}
if (args.help) {
  console.log(usage);
  process.exit(0);
}

let addr: { host: string; port: number };
try {
  addr = parseAddr(args["http-addr"]);
} catch (err) {
  console.error(`stringsvc: ${(err as Error).message}\n${usage}`);
  process.exit(2);
}

const router = createStringsvcRouter(makeEndpoints(createStringService()));
// Responses not yet written. On shutdown they are told to close their connection, or a keep-alive
// client would go on sending requests on it and hold the process up to the hard stop below.
const inFlight = new Set<ServerResponse>();
let stopping = false;
function settled(this: ServerResponse): void {
  inFlight.delete(this);
}
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
server.listen(addr.port, addr.host, () => {
  const bound = server.address();
  // In the form --http-addr takes: "[::1]:8080" rather than the ambiguous "::1:8080".
  const where =
    typeof bound === "object" && bound !== null
      ? `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`
      : String(bound);
  console.log(JSON.stringify({ level: "info", msg: "listening", transport: "HTTP", addr: where }));
});

function stop(signal: NodeJS.Signals): void {
  if (stopping) {
    console.error(`stringsvc: ${signal} again, exiting now`);
    process.exit(1);
  }
  stopping = true;
  console.log(JSON.stringify({ level: "info", msg: "shutting down", signal }));
  for (const res of inFlight) if (!res.headersSent) res.setHeader("connection", "close");
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => {
    server.closeAllConnections();
    process.exit(0);
  }, 10_000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
