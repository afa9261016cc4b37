#!/usr/bin/env node
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { makeEndpoints } from "./endpoints.js";
import { createStringService } from "./service.js";
import { createStringsvcRouter } from "./transport.js";

const usage = "usage: stringsvc [--http-addr host:port]   (default 127.0.0.1:8080)";

function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const host = i <= 0 ? "127.0.0.1" : addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid address "${addr}"`);
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
const server = createServer({ keepAliveTimeout: 5_000 }, router.handle);
server.on("error", (err) => {
  console.error(`stringsvc: ${err.message}`);
  process.exit(1);
});
server.listen(addr.port, addr.host, () => {
  const bound = server.address();
  const where = typeof bound === "object" && bound !== null ? `${bound.address}:${bound.port}` : String(bound);
  console.log(JSON.stringify({ level: "info", msg: "listening", transport: "HTTP", addr: where }));
});

let stopping = false;
function stop(signal: NodeJS.Signals): void {
  if (stopping) {
    console.error(`stringsvc: ${signal} again, exiting now`);
    process.exit(1);
  }
  stopping = true;
  console.log(JSON.stringify({ level: "info", msg: "shutting down", signal }));
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => {
    server.closeAllConnections();
    process.exit(0);
  }, 10_000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
