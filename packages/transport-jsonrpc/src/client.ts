import {
  type CancelableContext,
  Code,
  type Context,
  type Endpoint,
  type ErrorDetail,
  httpStatusToCode,
  ServiceError,
} from "@svckit/endpoint";
import {
  codeFromData,
  createRemoteJsonRpcError,
  type JsonRpcError,
  jsonRpcCodeToCode,
} from "./json-rpc-error.js";

/** Turns the endpoint's request into the call's `params`: an object or an array (`undefined` sends none). */
export type JsonRpcEncodeParamsFunc<Req> = (ctx: Context, request: Req) => unknown;

/** Turns the call's `result` into the endpoint's response. */
export type JsonRpcDecodeResultFunc<Res> = (ctx: Context, result: unknown) => Res | Promise<Res>;

/** Runs before the request is sent; may set headers and derive a context (go-kit's `ClientBefore`). */
export type JsonRpcClientRequestFunc = (ctx: Context, headers: Headers) => Context | undefined;

/** Runs when an HTTP response arrived, before it is read; may derive a context (go-kit's `ClientAfter`). */
export type JsonRpcClientResponseFunc = (ctx: Context, response: Response) => Context | undefined;

/** What a client finalizer learns about a finished call. */
export interface JsonRpcClientFinalizerInfo {
  /** The URL called. */
  readonly url: string;
  /** The JSON-RPC method called. */
  readonly method: string;
  /** The id the request was sent with, `undefined` when the call failed before one was made. */
  readonly id: string | number | undefined;
  /** The HTTP status, or 0 when no response arrived. */
  readonly status: number;
  /** The error the call ended with, if any. */
  readonly error: ServiceError | undefined;
}

/** Always runs once a client call is over (go-kit's `ClientFinalizer`). Must not throw. */
export type JsonRpcClientFinalizerFunc = (ctx: Context, info: JsonRpcClientFinalizerInfo) => void;

/** Options of {@link createJsonRpcClient}. */
export interface JsonRpcClientOptions {
  /** Functions run in order before the request is sent. */
  before?: readonly JsonRpcClientRequestFunc[];
  /** Functions run in order once a response arrived. */
  after?: readonly JsonRpcClientResponseFunc[];
  /** Run once per call when it is over. */
  finalizer?: JsonRpcClientFinalizerFunc | readonly JsonRpcClientFinalizerFunc[];
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** The header that carries the remaining deadline in ms (default `x-request-timeout`; `false` to not send it). */
  timeoutHeader?: string | false;
  /** The fetch implementation (default: the global `fetch`). */
  fetch?: typeof fetch;
  /** Makes each request's id (default: 1, 2, 3, ... per client; go-kit's `ClientRequestIDGenerator`). */
  id?: () => string | number;
  /**
   * The largest response body read, in bytes after fetch's decompression (default 16 MiB); a longer
   * one fails the call with RESOURCE_EXHAUSTED, read no further. An error answer (not 2xx) is read up
   * to 64 KiB: its status and the start of its body make the error.
   */
  bodyLimit?: number;
}

/** The most of an HTTP error answer's body that is read (only its start goes into the message). */
const ERROR_BODY_LIMIT = 64 * 1024;

/**
 * A response body as text, reading at most `limit` bytes: `truncated` when there was more (what was
 * not read is cancelled, by leaving the stream's iteration).
 */
async function readLimitedText(
  response: Response,
  limit: number,
): Promise<{ text: string; truncated: boolean }> {
  const stream = response.body;
  if (stream === null) return { text: "", truncated: false };
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) {
      const rest = chunk.subarray(0, chunk.byteLength - (size - limit));
      return { text: text + decoder.decode(rest), truncated: true };
    }
    text += decoder.decode(chunk, { stream: true });
  }
  return { text: text + decoder.decode(), truncated: false };
}

const CONTENT_TYPE = "application/json; charset=utf-8";
const SNIPPET = 200;

function invalidResponse(reason: string, cause?: unknown): ServiceError {
  return new ServiceError(Code.INTERNAL, `invalid response from server: ${reason}`, { cause });
}

/**
 * What a failed fetch, or a failed read of the answer's body (`phase` "response"), is to the caller:
 * the context's own reason when it was aborted, else UNAVAILABLE ("request failed: ECONNREFUSED",
 * "reading the response failed: UND_ERR_SOCKET"), so retries and breakers see a dependency's failure.
 */
function transportError(err: unknown, ctx: Context, phase: "request" | "response"): ServiceError {
  const aborted = ctx.abortReason;
  if (aborted !== undefined) return aborted;
  if (err instanceof ServiceError) return err;
  const name = (err as { name?: unknown } | null)?.name;
  if (name === "AbortError" || name === "TimeoutError") return ServiceError.from(err);
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const detail =
    typeof cause?.code === "string"
      ? cause.code
      : typeof cause?.message === "string"
        ? cause.message
        : phase === "response" && err instanceof Error
          ? err.message
          : "";
  const what = phase === "request" ? "request failed" : "reading the response failed";
  return new ServiceError(Code.UNAVAILABLE, `${what}${detail ? `: ${detail}` : ""}`, { cause: err });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A JSON-RPC error object as a remote {@link JsonRpcError} (`remote` is `true`, so a server this
 * error passes through does not answer its own caller with the downstream's protocol code):
 * svckit's `data.code` names the code, else the JSON-RPC code does.
 */
function fromErrorObject(error: Record<string, unknown>, code?: Code): JsonRpcError {
  const rpcCode = error.code as number;
  const data = error.data;
  const details = isObject(data) && Array.isArray(data.details) ? (data.details as ErrorDetail[]) : undefined;
  return createRemoteJsonRpcError(
    rpcCode,
    code ?? codeFromData(data) ?? jsonRpcCodeToCode(rpcCode),
    error.message as string,
    {
      data,
      details,
    },
  );
}

function isErrorObject(value: unknown): value is Record<string, unknown> {
  return isObject(value) && Number.isInteger(value.code) && typeof value.message === "string";
}

/** An answer that is not 2xx: the code comes from the status, the message from a JSON-RPC envelope if there is one. */
function httpError(response: Response, text: string): ServiceError {
  const fromStatus = httpStatusToCode(response.status);
  const code = fromStatus === Code.OK ? Code.UNKNOWN : fromStatus;
  const envelope = tryParse(text);
  if (isObject(envelope) && isErrorObject(envelope.error)) return fromErrorObject(envelope.error, code);
  const snippet = text.length > SNIPPET ? `${text.slice(0, SNIPPET)}…` : text;
  return new ServiceError(
    code,
    `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}${snippet ? `: ${snippet}` : ""}`,
  );
}

function describeId(id: unknown): string {
  return typeof id === "string"
    ? JSON.stringify(id.length > SNIPPET ? `${id.slice(0, SNIPPET)}…` : id)
    : String(id);
}

/**
 * Makes an endpoint that calls one method of a remote JSON-RPC 2.0 server over HTTP, go-kit style
 * (`jsonrpc.NewClient`): `encode` turns the request into `params`, the call is POSTed to `url`, and
 * the `result` is decoded by `decode`. A JSON-RPC error comes back as a {@link JsonRpcError} (a
 * ServiceError) with the code svckit's `data.code` names, or the one its JSON-RPC code maps to, and
 * `remote` set, so that a server it propagates through does not resend its protocol code. The
 * context's outgoing metadata become headers, its abort signal cancels the request and its deadline
 * is sent in the timeout header. Connection failures are UNAVAILABLE.
 *
 * @example
 * ```ts
 * const sum = createJsonRpcClient<SumRequest, SumResponse>(
 *   "http://127.0.0.1:8080/rpc", "sum", (_ctx, req) => req, (_ctx, result) => result as SumResponse);
 * const { v } = await sum(createContext({ timeout: 1_000 }), { a: 1, b: 2 });
 * ```
 */
export function createJsonRpcClient<Req, Res>(
  url: string | URL,
  method: string,
  encode: JsonRpcEncodeParamsFunc<Req>,
  decode: JsonRpcDecodeResultFunc<Res>,
  options: JsonRpcClientOptions = {},
): Endpoint<Req, Res> {
  const target = new URL(url).href;
  const methodJson = JSON.stringify(method);
  const before = options.before ?? [];
  const after = options.after ?? [];
  const finalizers =
    options.finalizer === undefined
      ? []
      : Array.isArray(options.finalizer)
        ? options.finalizer
        : [options.finalizer as JsonRpcClientFinalizerFunc];
  const defaultHeaders = options.headers;
  const timeoutHeader =
    options.timeoutHeader === false ? undefined : (options.timeoutHeader ?? "x-request-timeout");
  const doFetch = options.fetch ?? globalThis.fetch;
  const bodyLimit = options.bodyLimit ?? 16 * 1024 * 1024;
  if (!(Number.isSafeInteger(bodyLimit) && bodyLimit >= 0)) {
    throw new RangeError(
      `createJsonRpcClient: bodyLimit must be a whole number of bytes ≥ 0, got ${bodyLimit}`,
    );
  }
  let counter = 0;
  const nextId =
    options.id ??
    ((): number => {
      counter = counter >= Number.MAX_SAFE_INTEGER ? 1 : counter + 1;
      return counter;
    });

  return async function jsonRpcClient(ctx: Context, request: Req): Promise<Res> {
    let status = 0;
    let error: ServiceError | undefined;
    let id: string | number | undefined;
    let call: CancelableContext | undefined;
    try {
      ctx.throwIfAborted();
      let params = encode(ctx, request);
      if (typeof (params as { then?: unknown } | null)?.then === "function") params = await params;
      const newId: unknown = nextId();
      if (typeof newId !== "string" && !(typeof newId === "number" && Number.isFinite(newId))) {
        throw new ServiceError(Code.INTERNAL, "the id generator must return a string or a finite number");
      }
      id = newId;
      const idJson = JSON.stringify(id);
      let paramsJson: string | undefined;
      try {
        paramsJson = params === undefined ? undefined : JSON.stringify(params);
      } catch (err) {
        throw new ServiceError(Code.INTERNAL, "params could not be encoded as JSON", { cause: err });
      }
      const body =
        paramsJson === undefined
          ? `{"jsonrpc":"2.0","method":${methodJson},"id":${idJson}}`
          : `{"jsonrpc":"2.0","method":${methodJson},"params":${paramsJson},"id":${idJson}}`;
      const headers = new Headers(defaultHeaders);
      // A key of the call's metadata replaces the default header of that name (a signed token over a
      // static one) instead of joining it into one "a, b" value; its own repeats are all sent.
      for (const k of ctx.outgoingMetadata.keys()) headers.delete(k);
      for (const [k, v] of ctx.outgoingMetadata) headers.append(k, v);
      headers.set("content-type", CONTENT_TYPE);
      headers.set("accept", "application/json");
      const remaining = ctx.timeRemaining();
      if (timeoutHeader !== undefined && remaining !== undefined) {
        headers.set(timeoutHeader, String(Math.ceil(remaining)));
      }
      for (const fn of before) ctx = fn(ctx, headers) ?? ctx;
      // A per-call child keeps fetch's abort listener off the caller's (maybe long-lived) signal;
      // `release` afterwards drops it without aborting anything.
      call = ctx.withCancel();
      let response: Response;
      try {
        response = await doFetch(target, { method: "POST", headers, body, signal: call.context.signal });
      } catch (err) {
        throw transportError(err, call.context, "request");
      }
      status = response.status;
      for (const fn of after) ctx = fn(ctx, response) ?? ctx;
      const ok = status >= 200 && status < 300;
      let text: string;
      try {
        const read = await readLimitedText(response, ok ? bodyLimit : ERROR_BODY_LIMIT);
        if (read.truncated && ok) {
          throw new ServiceError(
            Code.RESOURCE_EXHAUSTED,
            `response body exceeds the limit of ${bodyLimit} bytes`,
          );
        }
        text = read.text;
      } catch (err) {
        throw transportError(err, call.context, "response");
      }
      if (!ok) throw httpError(response, text);
      if (text.trim() === "") throw invalidResponse(`HTTP ${status} with an empty body`);
      let envelope: unknown;
      try {
        envelope = JSON.parse(text);
      } catch (err) {
        throw invalidResponse("body is not JSON", err);
      }
      if (!isObject(envelope)) throw invalidResponse("expected a JSON-RPC response object");
      // go-kit's server answers some calls with "id": null; any other id must be ours.
      const answeredId = envelope.id;
      if (answeredId !== undefined && answeredId !== null && answeredId !== id) {
        throw invalidResponse(
          `id ${describeId(answeredId)} does not match the request's id ${describeId(id)}`,
        );
      }
      const rpcError = envelope.error;
      if (rpcError !== undefined && rpcError !== null) {
        if (!isErrorObject(rpcError)) throw invalidResponse('"error" is not a { code, message } object');
        throw fromErrorObject(rpcError);
      }
      if (!Object.hasOwn(envelope, "result"))
        throw invalidResponse('neither "result" nor "error" is present');
      return await decode(ctx, envelope.result);
    } catch (err) {
      error = ServiceError.from(err);
      throw error;
    } finally {
      call?.release();
      if (finalizers.length > 0) {
        const info: JsonRpcClientFinalizerInfo = { url: target, method, id, status, error };
        for (const fn of finalizers) {
          try {
            fn(ctx, info);
          } catch {
            // A throwing finalizer must not replace the call's outcome.
          }
        }
      }
    }
  };
}
