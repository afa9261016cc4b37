// Replays every `curl` line of examples/stringsvc/README.md against the stringsvc router (with the
// health probes main.ts adds) on a real server and compares the answer with the `# ...` line under
// it, so the README cannot drift from what the service says. Only the curl options the README uses
// are understood; any other fails.
// Its `grpcurl` lines are replayed the same way against the gRPC server, with a grpc-js client doing
// what grpcurl does (proto3 JSON in, the reply or the status printed as grpcurl prints them), so the
// test needs no grpcurl.
import { existsSync, readFileSync } from "node:fs";
import type http from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client, credentials, Metadata, Server, ServerCredentials } from "@grpc/grpc-js";
import { loadProtoSync } from "@svckit/codec-protobuf";
import { codeToString } from "@svckit/endpoint";
import { createHealth, createHealthHandler } from "@svckit/health";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeEndpoints } from "../examples/stringsvc/src/endpoints.js";
import { createStringService } from "../examples/stringsvc/src/service.js";
import { createStringsvcRouter } from "../examples/stringsvc/src/transport.js";
import { bindStringsvc } from "../examples/stringsvc/src/transport-grpc.js";
import { closeServers, listen, send, type TestServer } from "./support.js";

const root = fileURLToPath(new URL("..", import.meta.url));

const readme = readFileSync(new URL("../examples/stringsvc/README.md", import.meta.url), "utf8");

interface CurlCall {
  readonly line: string;
  readonly expected: string;
}

/** Each `curl ...` line of the README with the `# answer` line that follows it. */
function curlCalls(text: string): CurlCall[] {
  const lines = text.split("\n");
  const calls: CurlCall[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith("curl ")) return;
    const next = lines[i + 1] ?? "";
    if (!next.startsWith("# ")) throw new Error(`no "# answer" line after: ${line}`);
    calls.push({ line, expected: next.slice(2) });
  });
  return calls;
}

/** Splits a shell command line into words: blanks separate, '...' quotes (no escapes inside). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unbalanced quote in: ${line}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === " ") {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "\\" || c === '"' || c === "$" || c === "`" || c === "|" || c === ">" || c === "<") {
      throw new Error(`unsupported shell syntax ${c} in: ${line}`);
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

interface CurlRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.OutgoingHttpHeaders;
  readonly body: string | undefined;
  /** What `-w` appends to the body; only ` %{http_code}\n` is understood. */
  readonly writeOut: ((status: number) => string) | undefined;
}

/** What curl would send for the README's subset of options: -s, -w, -H, -d, -X. */
function parseCurl(line: string): CurlRequest {
  const [command, ...args] = shellWords(line);
  expect(command).toBe("curl");
  let method: string | undefined;
  let url: URL | undefined;
  let body: string | undefined;
  let writeOut: CurlRequest["writeOut"];
  const headers: http.OutgoingHttpHeaders = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${arg} needs a value in: ${line}`);
      return v;
    };
    if (arg === "-s") continue;
    if (arg === "-X") method = value();
    else if (arg === "-d") body = value();
    else if (arg === "-H") {
      const h = value();
      const colon = h.indexOf(":");
      headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    } else if (arg === "-w") {
      const format = value();
      if (format !== " %{http_code}\\n") throw new Error(`unsupported -w format ${format}`);
      writeOut = (status) => ` ${status}`;
    } else if (!arg.startsWith("-") && url === undefined) url = new URL(arg);
    else throw new Error(`unsupported curl argument ${arg} in: ${line}`);
  }
  if (url === undefined) throw new Error(`no URL in: ${line}`);
  expect(url.origin).toBe("http://127.0.0.1:8080");
  // As curl: -d means POST and, without a content-type header, a form content type.
  if (body !== undefined && headers["content-type"] === undefined) {
    headers["content-type"] = "application/x-www-form-urlencoded";
  }
  return {
    method: method ?? (body === undefined ? "GET" : "POST"),
    path: url.pathname,
    headers,
    body,
    writeOut,
  };
}

describe("examples/stringsvc/README.md", () => {
  let server: TestServer;
  const calls = curlCalls(readme);

  beforeAll(async () => {
    // As main.ts mounts them: the health probes beside the service's routes.
    const probes = createHealthHandler(createHealth());
    const router = createStringsvcRouter(makeEndpoints(createStringService()))
      .get("/healthz", probes)
      .get("/readyz", probes);
    server = await listen(router.handle);
  });
  afterAll(closeServers);

  it("documents the success and error answers with curl lines", () => {
    expect(calls.length).toBeGreaterThanOrEqual(10);
    expect(calls.filter((c) => c.line.includes("-w ")).length).toBeGreaterThanOrEqual(5);
  });

  it.each(calls)("$line answers as documented", async ({ line, expected }) => {
    const request = parseCurl(line);
    const res = await send(server.port, {
      method: request.method,
      path: request.path,
      headers: request.headers,
      body: request.body,
    });
    const printed = res.text + (request.writeOut?.(res.status) ?? "");
    expect(printed).toBe(expected);
  });
});

interface GrpcurlCall {
  readonly line: string;
  /** The `# ` lines under it, joined: what grpcurl prints. */
  readonly expected: string;
}

/** Each `grpcurl ...` line of the README with the `# ...` lines that follow it. */
function grpcurlCalls(text: string): GrpcurlCall[] {
  const lines = text.split("\n");
  const calls: GrpcurlCall[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith("grpcurl ")) return;
    const printed: string[] = [];
    for (let j = i + 1; lines[j]?.startsWith("# ") === true; j++) printed.push((lines[j] as string).slice(2));
    if (printed.length === 0) throw new Error(`no "# output" lines after: ${line}`);
    calls.push({ line, expected: printed.join("\n") });
  });
  return calls;
}

interface GrpcurlRequest {
  readonly protoFile: string;
  readonly data: unknown;
  readonly address: string;
  /** `package.Service/Method` */
  readonly symbol: string;
}

/** What grpcurl would do for the README's subset of flags: -plaintext, -import-path, -proto, -d. */
function parseGrpcurl(line: string): GrpcurlRequest {
  const [command, ...args] = shellWords(line);
  expect(command).toBe("grpcurl");
  let importPath = ".";
  let proto: string | undefined;
  let data: unknown = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${arg} needs a value in: ${line}`);
      return v;
    };
    if (arg === "-plaintext") continue;
    if (arg === "-import-path") importPath = value();
    else if (arg === "-proto") proto = value();
    else if (arg === "-d") data = JSON.parse(value());
    else if (!arg.startsWith("-")) positional.push(arg);
    else throw new Error(`unsupported grpcurl argument ${arg} in: ${line}`);
  }
  const [address, symbol, ...rest] = positional;
  if (proto === undefined || address === undefined || symbol === undefined || rest.length > 0) {
    throw new Error(`expected -proto, an address and a method in: ${line}`);
  }
  // The README's commands run from the repository root.
  return { protoFile: join(root, importPath, proto), data, address, symbol };
}

/** Go's `codes.Code.String()`, which grpcurl prints: INVALID_ARGUMENT → InvalidArgument. */
function goCodeName(code: number): string {
  const name = codeToString(code);
  if (name === "OK") return "OK";
  if (name === "CANCELLED") return "Canceled";
  return name
    .split("_")
    .map((word) => word.charAt(0) + word.slice(1).toLowerCase())
    .join("");
}

describe("examples/stringsvc/README.md grpcurl lines", () => {
  const calls = grpcurlCalls(readme);
  const grpcServer = new Server();
  let client: Client;

  beforeAll(async () => {
    bindStringsvc(grpcServer, makeEndpoints(createStringService()));
    const port = await new Promise<number>((resolve, reject) => {
      grpcServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
    client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  afterAll(() => {
    client.close();
    grpcServer.forceShutdown();
  });

  it("documents success and error answers with grpcurl lines", () => {
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.filter((c) => c.expected.startsWith("ERROR:")).length).toBeGreaterThanOrEqual(1);
  });

  // Short names, the method and the data, which tell the lines apart (long names get cut).
  const named = calls.map((c) => ({
    ...c,
    name: c.line.replace(/^.* -d '([^']*)' \S+ \S+\/(\S+)$/, "$2 $1"),
  }));

  it.each(named)("grpcurl $name prints as documented", async ({ line, expected }) => {
    const request = parseGrpcurl(line);
    expect(request.address).toBe("127.0.0.1:8082");
    expect(existsSync(request.protoFile)).toBe(true);
    const [service, method] = request.symbol.split("/") as [string, string];
    const descriptor = loadProtoSync(request.protoFile).service(service).methods[method];
    if (descriptor === undefined) throw new Error(`${request.symbol} is not in ${request.protoFile}`);
    const { requestType, responseType } = descriptor;
    const printed = await new Promise<string>((resolve) => {
      client.makeUnaryRequest(
        descriptor.path,
        (message: Record<string, unknown>) => Buffer.from(requestType.encode(message)),
        (bytes: Buffer) => responseType.decode(bytes),
        requestType.fromJSON(request.data),
        new Metadata(),
        { deadline: Date.now() + 5_000 },
        (err, reply) => {
          // grpcurl: the reply re-indented by two spaces; a status as "ERROR:", its code and message.
          if (err) resolve(`ERROR:\n  Code: ${goCodeName(err.code)}\n  Message: ${err.details}`);
          else resolve(JSON.stringify(responseType.toJSON(reply ?? {}), null, 2));
        },
      );
    });
    expect(printed).toBe(expected);
  });
});
