// Shared by the tests of this package only: excluded from the build (see tsconfig.json), never exported.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, type Context, type Endpoint, ServiceError } from "@svckit/endpoint";
import { type JsonRpcMethod, jsonRpcMethod } from "@svckit/transport-jsonrpc";
import { expect } from "vitest";

/** A real HTTP server on 127.0.0.1, on a free port. */
export interface TestServer {
  readonly server: http.Server;
  readonly port: number;
  /** `http://127.0.0.1:<port>/rpc` */
  readonly url: string;
  close(): Promise<void>;
}

const open = new Set<TestServer>();

/** Starts `http.createServer(listener)` on 127.0.0.1, port 0. Close with {@link closeServers}. */
export async function listen(listener: http.RequestListener): Promise<TestServer> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const testServer: TestServer = {
    server,
    port,
    url: `http://127.0.0.1:${port}/rpc`,
    close: () =>
      new Promise<void>((resolve) => {
        open.delete(testServer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  open.add(testServer);
  return testServer;
}

/** Closes every server {@link listen} started and that is still open. */
export async function closeServers(): Promise<void> {
  await Promise.all([...open].map((s) => s.close()));
}

/** A port nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** What {@link send} resolves with. */
export interface TestResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
  json(): unknown;
}

/** A request for {@link send}; POST with `content-type: application/json` unless told otherwise. */
export interface TestRequest {
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Uint8Array;
  agent?: http.Agent;
}

/** Sends one request with `node:http` (fresh connection unless an agent is given) and reads the whole answer. */
export function send(port: number, request: TestRequest = {}): Promise<TestResponse> {
  return new Promise<TestResponse>((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: request.method ?? "POST",
        path: request.path ?? "/rpc",
        headers: request.headers ?? { "content-type": "application/json" },
        agent: request.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          const text = body.toString("utf8");
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            text,
            json: () => JSON.parse(text) as unknown,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(request.body);
  });
}

/** POSTs `body` (a value is sent as JSON) as application/json. */
export function post(
  port: number,
  body: unknown,
  headers: http.OutgoingHttpHeaders = { "content-type": "application/json" },
): Promise<TestResponse> {
  const text = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  return send(port, { body: text, headers });
}

/** The content type of every JSON-RPC answer. */
export const JSON_TYPE = "application/json; charset=utf-8";

/** Asserts a JSON answer: the status, the content type, an exact content-length, and returns the parsed body. */
export function envelope(res: TestResponse, status = 200): unknown {
  expect(res.status).toBe(status);
  expect(res.headers["content-type"]).toBe(JSON_TYPE);
  expect(res.headers["content-length"]).toBe(String(res.body.byteLength));
  return res.json();
}

/** Resolves once `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** A promise with its resolve function. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

// ---------------------------------------------------------------------------------------------------
// go-kit's addsvc, as the compatibility target (see /work/shared/wire/addsvc.md).

/** A field of a params object, matched case-insensitively like Go's JSON decoder (exact name first). */
export function field(params: unknown, name: string): unknown {
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new ServiceError(Code.INVALID_ARGUMENT, "params must be an object");
  }
  const record = params as Record<string, unknown>;
  if (Object.hasOwn(record, name)) return record[name];
  for (const key of Object.keys(record)) if (key.toLowerCase() === name) return record[key];
  return undefined;
}

function integer(params: unknown, name: string): number {
  const value = field(params, name) ?? 0;
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new ServiceError(Code.INVALID_ARGUMENT, `${name} must be an integer`);
  }
  return value;
}

function text(params: unknown, name: string): string {
  const value = field(params, name) ?? "";
  if (typeof value !== "string") throw new ServiceError(Code.INVALID_ARGUMENT, `${name} must be a string`);
  return value;
}

export const sum: Endpoint<{ a: number; b: number }, { v: number }> = async (_ctx, { a, b }) => {
  if (a === 0 && b === 0) throw new ServiceError(Code.INVALID_ARGUMENT, "can't sum two zeroes");
  if ((b > 0 && a > 2147483647 - b) || (b < 0 && a < -2147483648 - b)) {
    throw new ServiceError(Code.INVALID_ARGUMENT, "integer overflow");
  }
  return { v: a + b };
};

export const concat: Endpoint<{ a: string; b: string }, { v: string }> = async (_ctx, { a, b }) => {
  if (Buffer.byteLength(a) + Buffer.byteLength(b) > 10) {
    throw new ServiceError(Code.INVALID_ARGUMENT, "result exceeds maximum size");
  }
  return { v: a + b };
};

export const decodeSum = (_ctx: Context, params: unknown): { a: number; b: number } => ({
  a: integer(params, "a"),
  b: integer(params, "b"),
});

export const decodeConcat = (_ctx: Context, params: unknown): { a: string; b: string } => ({
  a: text(params, "a"),
  b: text(params, "b"),
});

export const asIs = <T>(_ctx: Context, value: T): T => value;

/** The addsvc method table: `sum` and `concat`. */
export function addsvcMethods(): Record<string, JsonRpcMethod> {
  return {
    sum: jsonRpcMethod(sum, decodeSum, asIs),
    concat: jsonRpcMethod(concat, decodeConcat, asIs),
  };
}
