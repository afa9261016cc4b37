#!/usr/bin/env node
// addcli: go-kit's addsvc client on svckit. Calls sum or concat on an addsvc (svckit's or go-kit's)
// over HTTP, gRPC or JSON-RPC and prints the answer the way go-kit's addcli does:
//   addcli -http-addr 127.0.0.1:8081 sum 1 2          → 1 + 2 = 3
//   addcli -grpc-addr 127.0.0.1:8082 -method concat ab cd → "ab" + "cd" = "abcd"
// Errors go to stderr as `error: <message>`, with exit status 1; a bad command line exits 2.
//
// Only the flag parser is loaded before the command line is read; the client of the chosen transport
// is imported afterwards, so a usage error answers at once and HTTP calls never load grpc-js.
import { createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import type { AddEndpoints } from "./endpoints.js";
import { parseDuration, parseFlags } from "./flags.js";
import { goQuote, parseInt64 } from "./go-format.js";

const usage = `usage: addcli [flags] [sum|concat] <a> <b>
  -http-addr host:port     call addsvc over HTTP JSON
  -grpc-addr host:port     call addsvc over gRPC
  -jsonrpc-addr host:port  call addsvc over JSON-RPC
  -method sum|concat       the method (default sum), or give it as the first argument
  -timeout d               give up after d, e.g. 500ms, 5s (default 5s)
  -h, -help                print this and exit
Give exactly one address. Flags take one dash or two; "--" ends them (for a string such as "-x").`;

function usageError(message: string): never {
  console.error(`addcli: ${message}\n${usage}`);
  process.exit(2);
}

let transport: "http" | "grpc" | "jsonrpc";
let address: string;
let method: "sum" | "concat";
let a: string;
let b: string;
let timeoutMs = 5_000;
try {
  const { values, positionals } = parseFlags(process.argv.slice(2), {
    "http-addr": "string",
    "grpc-addr": "string",
    "jsonrpc-addr": "string",
    method: "string",
    timeout: "string",
    help: "boolean",
    h: "boolean",
  });
  if (values.get("help") === true || values.get("h") === true) {
    console.log(usage);
    process.exit(0);
  }
  const given = (["http", "grpc", "jsonrpc"] as const).filter((t) => {
    const addr = values.get(`${t}-addr`);
    return typeof addr === "string" && addr !== "";
  });
  if (given.length === 0) throw new Error("no remote address specified");
  if (given.length > 1)
    throw new Error(`give one address, not ${given.map((t) => `-${t}-addr`).join(" and ")}`);
  transport = given[0] as "http" | "grpc" | "jsonrpc";
  address = values.get(`${transport}-addr`) as string;
  let args = [...positionals];
  let name = values.get("method") as string | undefined;
  if (name === undefined && args.length === 3) {
    name = args[0];
    args = args.slice(1);
  }
  name ??= "sum";
  if (name !== "sum" && name !== "concat")
    throw new Error(`invalid method "${name}": expected sum or concat`);
  method = name;
  if (args.length !== 2) throw new Error(`expected two arguments <a> <b>, got ${args.length}`);
  [a, b] = args as [string, string];
  const timeout = values.get("timeout");
  if (typeof timeout === "string") timeoutMs = parseDuration("timeout", timeout);
} catch (err) {
  usageError((err as Error).message);
}

let sumArgs: [bigint, bigint] | undefined;
if (method === "sum") {
  try {
    sumArgs = [parseInt64(a), parseInt64(b)];
  } catch (err) {
    usageError((err as Error).message);
  }
}

let endpoints: AddEndpoints;
let close = (): void => {};
if (transport === "http") {
  endpoints = (await import("./transport-http.js")).createAddsvcHttpClient(address);
} else if (transport === "jsonrpc") {
  endpoints = (await import("./transport-jsonrpc.js")).createAddsvcJsonRpcClient(address);
} else {
  const client = (await import("./transport-grpc.js")).createAddsvcGrpcClient(address);
  endpoints = client;
  close = () => client.close();
}
const { clientTracing } = await import("@svckit/tracing");

// A client span per call (a no-op unless an OpenTelemetry SDK is registered, e.g. with `node --import`).
const wireMethod = (m: "sum" | "concat"): string =>
  transport === "grpc" ? `/pb.Add/${m === "sum" ? "Sum" : "Concat"}` : transport === "http" ? "POST" : m;
function traced<Req, Res>(m: "sum" | "concat", endpoint: Endpoint<Req, Res>): Endpoint<Req, Res> {
  return clientTracing({ transport, method: wireMethod(m) })(endpoint);
}

const ctx = createContext({ timeout: timeoutMs === 0 ? Number.POSITIVE_INFINITY : timeoutMs });
try {
  if (sumArgs !== undefined) {
    const [x, y] = sumArgs;
    const { v } = await traced("sum", endpoints.sum)(ctx, { a: x, b: y });
    console.log(`${x} + ${y} = ${v}`);
  } else {
    const { v } = await traced("concat", endpoints.concat)(ctx, { a, b });
    console.log(`${goQuote(a)} + ${goQuote(b)} = ${goQuote(v)}`);
  }
  close();
  process.exit(0);
} catch (err) {
  close();
  console.error(`error: ${err instanceof ServiceError || err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
