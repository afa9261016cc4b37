// Shared by the tests of this package only: excluded from the build (see tsconfig.json), never exported.
// The HTTP plumbing (servers, a raw client, promises) is transport-http's test helpers', reached by
// relative path; what is JSON-RPC's own (the /rpc URL and defaults, envelopes, addsvc) is here.
import type http from "node:http";
import { Code, type Context, type Endpoint, ServiceError } from "@svckit/endpoint";
import { type JsonRpcMethod, jsonRpcMethod } from "@svckit/transport-jsonrpc";
import { expect } from "vitest";
import {
  type TestServer as HttpTestServer,
  listen as listenHttp,
  send as sendHttp,
  type TestRequest,
  type TestResponse,
} from "../../transport-http/src/test-helpers.js";

export { aborted, closeServers, deferred, freePort } from "../../transport-http/src/test-helpers.js";
export type { TestRequest, TestResponse };

/** A real HTTP server on 127.0.0.1, on a free port, with its JSON-RPC URL. */
export interface TestServer extends HttpTestServer {
  /** `http://127.0.0.1:<port>/rpc` */
  readonly url: string;
}

/** Starts `http.createServer(listener)` on 127.0.0.1, port 0. Close with {@link closeServers}. */
export async function listen(listener: http.RequestListener): Promise<TestServer> {
  const server = await listenHttp(listener);
  return Object.assign(server, { url: `${server.origin}/rpc` });
}

/**
 * Sends one request with `node:http` (fresh connection unless an agent is given) and reads the whole
 * answer; POST /rpc with `content-type: application/json` unless told otherwise.
 */
export function send(port: number, request: TestRequest = {}): Promise<TestResponse> {
  return sendHttp(port, {
    ...request,
    path: request.path ?? "/rpc",
    headers: request.headers ?? { "content-type": "application/json" },
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
