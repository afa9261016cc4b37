import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import {
  type CallInfo,
  type CancelableContext,
  type CancelSource,
  Code,
  type Context,
  callInfoKey,
  createCancelableContext,
  type Endpoint,
  type Metadata,
  metadataFromNodeHeaders,
  ServiceError,
} from "@svckit/endpoint";
import { declaredWithin, readBody } from "./body.js";
import {
  codeToJsonRpcCode,
  errorData,
  isReservedJsonRpcCode,
  JsonRpcError,
  JsonRpcErrorCode,
  type JsonRpcErrorObject,
} from "./json-rpc-error.js";
import { parseBody } from "./parse.js";
import { TransportError } from "./transport-error.js";

/** A JSON-RPC request id: a string, a number or null. */
export type JsonRpcId = string | number | null;

/** The HTTP request carrying JSON-RPC calls, as `before` functions and finalizers see it. */
export interface JsonRpcHttpRequest {
  /** The underlying Node request. */
  readonly raw: IncomingMessage;
  /** The HTTP method (always `POST` once calls are served). */
  readonly method: string;
  /** The request target as sent: path and query. */
  readonly url: string;
  /** The path part of `url`, without the query. */
  readonly path: string;
  /** The request headers, keys lower-case. */
  readonly headers: IncomingHttpHeaders;
  /** The request body as read, up to the body limit (empty when a framework parsed it first). */
  readonly body: Uint8Array;
}

/** One JSON-RPC call read from the body (one entry of a batch). */
export interface JsonRpcCall {
  /** The `method` member as sent. */
  readonly method: string;
  /** The `params` member: an object or an array, `null` if sent so, `undefined` when absent. */
  readonly params: unknown;
  /** The `id` member; `undefined` for a notification (no `id` member). */
  readonly id: JsonRpcId | undefined;
}

/** Turns a call's `params` into the endpoint's request (go-kit's jsonrpc `DecodeRequestFunc`). Throw a ServiceError INVALID_ARGUMENT on bad params. */
export type JsonRpcDecodeParamsFunc<Req> = (ctx: Context, params: unknown) => Req | Promise<Req>;

/** Turns the endpoint's response into the call's `result`, a JSON-serialisable value (go-kit's `EncodeResponseFunc`). */
export type JsonRpcEncodeResultFunc<Res> = (ctx: Context, response: Res) => unknown;

/**
 * Runs before a call's params are decoded and may derive its context (go-kit's jsonrpc
 * `RequestFunc`): it sees the HTTP request and the call. In a batch it runs once per call.
 */
export type JsonRpcRequestFunc = (
  ctx: Context,
  request: JsonRpcHttpRequest,
  call: JsonRpcCall,
) => Context | undefined;

/** Runs after a call succeeded, before the HTTP response is written; may set headers (go-kit's `ServerAfter`). */
export type JsonRpcResponseFunc = (ctx: Context, response: ServerResponse) => Context | undefined;

/**
 * Turns an error into the `error` member of the response; see {@link defaultJsonRpcErrorEncoder}.
 * A {@link JsonRpcError} with `remote` set came from a downstream call through the client: its
 * `rpcCode` and `data` are the downstream server's, so an encoder that sends `rpcCode` should check
 * `remote` first (or hand such errors to the default encoder).
 */
export type JsonRpcErrorEncoder = (ctx: Context, error: ServiceError) => JsonRpcErrorObject;

/** Is told of every error, answered or not (notifications), for logging; must not throw. */
export type JsonRpcErrorHandler = (ctx: Context, error: ServiceError) => void;

/** What a server finalizer learns about a finished call. */
export interface JsonRpcServerFinalizerInfo {
  /** The HTTP request. */
  readonly request: JsonRpcHttpRequest;
  /** The call, or `undefined` when no call could be read (bad HTTP request, parse error, bad batch, invalid entry). */
  readonly call: JsonRpcCall | undefined;
  /** The method as in `CallInfo`: the name when the method table has it, else `"unknown"`. */
  readonly method: string;
  /** The HTTP status sent (200, 204 or a 4xx), or 499 when the client went away before the answer. */
  readonly status: number;
  /** The bytes of HTTP body written (the whole batch's for a call in a batch). */
  readonly bytesWritten: number;
  /** The error the call ended with, if any. */
  readonly error: ServiceError | undefined;
}

/** Runs once per call after the HTTP response is written, whatever happened (go-kit's `ServerFinalizer`). Must not throw. */
export type JsonRpcServerFinalizerFunc = (ctx: Context, info: JsonRpcServerFinalizerInfo) => void;

/** Options of {@link jsonRpcMethod}. */
export interface JsonRpcMethodOptions {
  /** Run after the server's `before` functions, for this method only. */
  before?: readonly JsonRpcRequestFunc[];
  /** Run after the server's `after` functions, for this method only. */
  after?: readonly JsonRpcResponseFunc[];
}

/** One entry of the method table: an endpoint with its params decoder and result encoder (go-kit's `EndpointCodec`). Make it with {@link jsonRpcMethod}. */
export interface JsonRpcMethod {
  /** The endpoint. */
  readonly endpoint: Endpoint<unknown, unknown>;
  /** Turns `params` into the endpoint's request. */
  readonly decode: JsonRpcDecodeParamsFunc<unknown>;
  /** Turns the endpoint's response into `result`. */
  readonly encode: JsonRpcEncodeResultFunc<unknown>;
  /** Per-method `before` functions. */
  readonly before: readonly JsonRpcRequestFunc[];
  /** Per-method `after` functions. */
  readonly after: readonly JsonRpcResponseFunc[];
}

/** Options of {@link createJsonRpcHandler}. */
export interface JsonRpcServerOptions {
  /**
   * Functions run in order before each call's params are decoded (for methods in the table only, once
   * per call of a batch); each may return a derived context.
   */
  before?: readonly JsonRpcRequestFunc[];
  /** Functions run in order after each successful call, before the HTTP response is written. */
  after?: readonly JsonRpcResponseFunc[];
  /** Turns errors into JSON-RPC error objects; default {@link defaultJsonRpcErrorEncoder}. */
  errorEncoder?: JsonRpcErrorEncoder;
  /** Told of every error; default: nothing. */
  errorHandler?: JsonRpcErrorHandler;
  /** Run once per call (or once per HTTP request that held no readable call) after the response is written. */
  finalizer?: JsonRpcServerFinalizerFunc | readonly JsonRpcServerFinalizerFunc[];
  /** The largest request body accepted, in bytes (default 1 MiB); larger → HTTP 413 with an Invalid Request envelope. */
  bodyLimit?: number;
  /**
   * The header carrying the caller's remaining time budget in integer milliseconds, which becomes
   * each call's deadline (default `x-request-timeout`; `false` ignores deadlines from callers).
   */
  timeoutHeader?: string | false;
  /** The longest deadline a caller may ask for, in ms; longer ones are cut to it. */
  maxTimeout?: number;
  /** The most calls one batch may hold (default 100); a larger batch gets one -32600 error. */
  maxBatchSize?: number;
  /** How many calls of one batch run at the same time (default 16). */
  batchConcurrency?: number;
  /**
   * Answer notifications (calls without an `id` member) with `"id": null`, as go-kit's server does.
   * Default `false`: notifications run and get no answer, as the JSON-RPC 2.0 specification says.
   */
  answerNotifications?: boolean;
  /**
   * Which `content-type`s are accepted: `"json"` (default) takes `application/json`,
   * `application/*+json`, `application/json-rpc`, `application/jsonrequest` and a request without a
   * content type; `"any"` skips the check, like go-kit's server.
   */
  contentTypes?: "json" | "any";
}

/** A `(req, res)` listener for `node:http`, also usable as an express route handler (it never calls `next`). */
export type JsonRpcHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  next?: (err?: unknown) => void,
) => void;

const CONTENT_TYPE = "application/json; charset=utf-8";
const DEFAULT_BODY_LIMIT = 1 << 20;
const DEFAULT_MAX_BATCH_SIZE = 100;
const DEFAULT_BATCH_CONCURRENCY = 16;
const TIMEOUT_PATTERN = /^\d{1,10}$/;
const EMPTY_BODY: Buffer = Buffer.alloc(0);
const MAX_NAME_IN_MESSAGE = 100;
const UNKNOWN_CALL: CallInfo = Object.freeze({ transport: "jsonrpc", method: "unknown" });

/**
 * Makes an entry of the method table of {@link createJsonRpcHandler}: `decode` turns the call's
 * `params` into the endpoint's request, the endpoint runs, `encode` turns its response into the
 * call's `result` (go-kit's `EndpointCodec`). A ServiceError INVALID_ARGUMENT thrown by `decode` is
 * answered -32602 (invalid params), unless it is a JsonRpcError `decode` constructed itself.
 *
 * @example
 * ```ts
 * const sumMethod = jsonRpcMethod(sum, (_ctx, params) => decodeSum(params), (_ctx, res) => ({ v: res.v }));
 * ```
 */
export function jsonRpcMethod<Req, Res>(
  endpoint: Endpoint<Req, Res>,
  decode: JsonRpcDecodeParamsFunc<Req>,
  encode: JsonRpcEncodeResultFunc<Res>,
  options: JsonRpcMethodOptions = {},
): JsonRpcMethod {
  return Object.freeze({
    endpoint: endpoint as unknown as Endpoint<unknown, unknown>,
    decode: decode as JsonRpcDecodeParamsFunc<unknown>,
    encode: encode as JsonRpcEncodeResultFunc<unknown>,
    before: options.before ?? [],
    after: options.after ?? [],
  });
}

/**
 * The default error encoder. A {@link JsonRpcError} constructed in this process (by a method, or by
 * this server for a parse error, an invalid request, an unknown method or invalid params) is sent
 * with its own `rpcCode`, message and `data`; so is one the client received (`remote`) whose
 * `rpcCode` is an application's code. Any other ServiceError is sent with `codeToJsonRpcCode[code]`
 * (INTERNAL → -32603, every other code into -32001..-32016), its message, and
 * `data: { code: "<CODE_NAME>", details? }`; that includes a remote JsonRpcError whose `rpcCode` is in
 * the reserved range -32768..-32000, since that code described a downstream server's exchange (a
 * downstream's "method not found" is not this server's). Values that are not ServiceErrors reach it
 * as INTERNAL "internal error": their own message is never sent.
 *
 * @example
 * ```ts
 * defaultJsonRpcErrorEncoder(ctx, new ServiceError(Code.NOT_FOUND, "no user 42"));
 * // { code: -32005, message: "no user 42", data: { code: "NOT_FOUND" } }
 * // A downstream's -32601 "Method mul was not found.", as the client threw it:
 * // { code: -32012, message: "Method mul was not found.", data: { code: "UNIMPLEMENTED" } }
 * ```
 */
export function defaultJsonRpcErrorEncoder(_ctx: Context, error: ServiceError): JsonRpcErrorObject {
  if (error instanceof JsonRpcError && !(error.remote && isReservedJsonRpcCode(error.rpcCode))) {
    return error.data === undefined
      ? { code: error.rpcCode, message: error.message }
      : { code: error.rpcCode, message: error.message, data: error.data };
  }
  return { code: codeToJsonRpcCode[error.code], message: error.message, data: errorData(error) };
}

class HttpRequestView implements JsonRpcHttpRequest {
  constructor(
    readonly raw: IncomingMessage,
    readonly body: Uint8Array,
  ) {}

  get method(): string {
    return this.raw.method ?? "POST";
  }

  get url(): string {
    return this.raw.url ?? "/";
  }

  get path(): string {
    const url = this.url;
    const q = url.indexOf("?");
    return q < 0 ? url : url.slice(0, q);
  }

  get headers(): IncomingHttpHeaders {
    return this.raw.headers;
  }
}

/** Cancels a call's context when its client disconnects before the response is finished. */
const disconnect: CancelSource<ServerResponse> = {
  isCancelled: (res) => res.destroyed && !res.writableFinished,
  subscribe(res, cancel) {
    const onClose = (): void => {
      if (!res.writableFinished) cancel(new ServiceError(Code.CANCELLED, "client disconnected"));
    };
    res.once("close", onClose);
    return () => res.off("close", onClose);
  },
};

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined || header === "") return true;
  const semi = header.indexOf(";");
  const type = (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase();
  return (
    type === "application/json" ||
    type === "application/json-rpc" ||
    type === "application/jsonrequest" ||
    (type.startsWith("application/") && type.endsWith("+json"))
  );
}

function invalidRequest(message: string): JsonRpcError {
  return new JsonRpcError(
    JsonRpcErrorCode.INVALID_REQUEST,
    Code.INVALID_ARGUMENT,
    `invalid request: ${message}`,
  );
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** The message of -32601, go-kit's wording; very long names are cut. */
function methodNotFound(name: string): JsonRpcError {
  const shown = name.length > MAX_NAME_IN_MESSAGE ? `${name.slice(0, MAX_NAME_IN_MESSAGE)}…` : name;
  return new JsonRpcError(
    JsonRpcErrorCode.METHOD_NOT_FOUND,
    Code.UNIMPLEMENTED,
    `Method ${shown} was not found.`,
  );
}

/**
 * A decoder's INVALID_ARGUMENT becomes -32602 (invalid params), keeping its message and details; one
 * the decoder got from a downstream call through the client too (the decoder decided these params
 * are invalid). A JsonRpcError the decoder constructed itself is left as it is.
 */
function asInvalidParams(thrown: unknown): unknown {
  if (!(thrown instanceof ServiceError) || (thrown instanceof JsonRpcError && !thrown.remote)) return thrown;
  const error = ServiceError.from(thrown);
  if (error.code !== Code.INVALID_ARGUMENT) return error;
  return new JsonRpcError(JsonRpcErrorCode.INVALID_PARAMS, Code.INVALID_ARGUMENT, error.message, {
    cause: error,
    details: error.details,
    data: errorData(error),
  });
}

function idJson(id: JsonRpcId | undefined): string {
  return id === undefined || id === null ? "null" : JSON.stringify(id);
}

function isValidErrorObject(value: unknown): value is JsonRpcErrorObject {
  return (
    typeof value === "object" &&
    value !== null &&
    Number.isInteger((value as { code?: unknown }).code) &&
    typeof (value as { message?: unknown }).message === "string"
  );
}

/** A call read from the body, or why it could not be. */
type ReadEntry =
  | { readonly call: JsonRpcCall; readonly error?: undefined }
  | { readonly call?: undefined; readonly error: JsonRpcError; readonly id: JsonRpcId };

/** Validates one request object (JSON-RPC 2.0 §4), tolerating a missing or empty `jsonrpc` as go-kit's client sends. */
function readEntry(entry: unknown): ReadEntry {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    return { error: invalidRequest(`expected a request object, got ${kindOf(entry)}`), id: null };
  }
  const fields = entry as Record<string, unknown>;
  let id: JsonRpcId | undefined;
  if (Object.hasOwn(fields, "id")) {
    const raw = fields.id;
    if (raw === null || typeof raw === "string" || (typeof raw === "number" && Number.isFinite(raw))) {
      id = raw;
    } else {
      return { error: invalidRequest('"id" must be a string, a number or null'), id: null };
    }
  }
  const answerId = id ?? null;
  if (Object.hasOwn(fields, "jsonrpc") && fields.jsonrpc !== "2.0" && fields.jsonrpc !== "") {
    return { error: invalidRequest('"jsonrpc" must be "2.0"'), id: answerId };
  }
  const method = fields.method;
  if (typeof method !== "string") {
    return { error: invalidRequest('"method" must be a string'), id: answerId };
  }
  const params = fields.params;
  if (params !== undefined && params !== null && typeof params !== "object") {
    return { error: invalidRequest('"params" must be an object or an array'), id: answerId };
  }
  return { call: { method, params, id } };
}

/** The result of serving one call: what to answer (if anything) and what the finalizers learn. */
interface Outcome {
  ctx: Context;
  readonly call: JsonRpcCall | undefined;
  readonly info: CallInfo;
  error: ServiceError | undefined;
  /** The response object's JSON, or `undefined` when the call gets no answer (a notification). */
  json: string | undefined;
  /** The call's own root context, for a call outside a batch. */
  readonly handle: CancelableContext | undefined;
}

/** What the handler knows about one HTTP request once it arrived. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly request: HttpRequestView;
  readonly metadata: Metadata;
  readonly deadline: number | undefined;
}

/**
 * Serves JSON-RPC 2.0 over HTTP, go-kit style (`jsonrpc.NewServer` with an `EndpointCodecMap`):
 * each call's `method` picks an entry of `methods` (made with {@link jsonRpcMethod}), whose decoder
 * turns `params` into the endpoint's request and whose encoder turns the endpoint's response into
 * `result`. The result is a `(req, res)` listener for `node:http` and an express handler; it
 * answers POST to any path.
 *
 * Every JSON-RPC answer, errors included, is HTTP 200 with `application/json; charset=utf-8`;
 * batches are answered in request order; notifications get no answer (204 when nothing is left to
 * say). Each call's context carries `CallInfo { transport: "jsonrpc", method }`, the request
 * headers as metadata, the caller's deadline, and is cancelled when the client disconnects.
 *
 * @example
 * ```ts
 * const handler = createJsonRpcHandler({
 *   sum: jsonRpcMethod(sum, decodeSumParams, (_ctx, res) => res),
 *   concat: jsonRpcMethod(concat, decodeConcatParams, (_ctx, res) => res),
 * });
 * http.createServer(handler).listen(8080); // or: app.post("/rpc", handler)
 * ```
 */
export function createJsonRpcHandler(
  methods: Readonly<Record<string, JsonRpcMethod>>,
  options: JsonRpcServerOptions = {},
): JsonRpcHandler {
  const table = new Map<string, { readonly method: JsonRpcMethod; readonly info: CallInfo }>();
  for (const name of Object.keys(methods)) {
    const method = methods[name];
    if (method === undefined) continue;
    if (typeof method.endpoint !== "function" || typeof method.decode !== "function") {
      throw new TypeError(`createJsonRpcHandler: methods.${name} is not a jsonRpcMethod(...)`);
    }
    table.set(name, { method, info: Object.freeze({ transport: "jsonrpc", method: name }) });
  }
  const before = options.before ?? [];
  const after = options.after ?? [];
  const errorEncoder = options.errorEncoder ?? defaultJsonRpcErrorEncoder;
  const errorHandler = options.errorHandler;
  const finalizers =
    options.finalizer === undefined
      ? []
      : Array.isArray(options.finalizer)
        ? options.finalizer
        : [options.finalizer as JsonRpcServerFinalizerFunc];
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  if (!(bodyLimit >= 0))
    throw new RangeError(`createJsonRpcHandler: bodyLimit must be ≥ 0, got ${bodyLimit}`);
  const maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
  if (!(maxBatchSize >= 1)) {
    throw new RangeError(`createJsonRpcHandler: maxBatchSize must be ≥ 1, got ${maxBatchSize}`);
  }
  const batchConcurrency = options.batchConcurrency ?? DEFAULT_BATCH_CONCURRENCY;
  if (!(batchConcurrency >= 1)) {
    throw new RangeError(`createJsonRpcHandler: batchConcurrency must be ≥ 1, got ${batchConcurrency}`);
  }
  const answerNotifications = options.answerNotifications === true;
  const checkContentType = options.contentTypes !== "any";
  const timeoutHeader =
    options.timeoutHeader === false
      ? undefined
      : (options.timeoutHeader ?? "x-request-timeout").toLowerCase();
  const maxTimeout = options.maxTimeout;

  /** The caller's time budget in ms, `undefined` without one, or the error for a malformed header. */
  function requestTimeout(req: IncomingMessage): number | TransportError | undefined {
    if (timeoutHeader === undefined) return undefined;
    const raw = req.headers[timeoutHeader];
    if (raw === undefined) return undefined;
    if (typeof raw !== "string" || !TIMEOUT_PATTERN.test(raw)) {
      return new TransportError(
        400,
        Code.INVALID_ARGUMENT,
        `invalid ${timeoutHeader} header: expected a whole number of milliseconds`,
      );
    }
    const ms = Number(raw);
    return maxTimeout !== undefined && ms > maxTimeout ? maxTimeout : ms;
  }

  function tell(ctx: Context, error: ServiceError): void {
    if (errorHandler === undefined) return;
    try {
      errorHandler(ctx, error);
    } catch {
      // A throwing errorHandler must not cost the client its answer.
    }
  }

  /** The response object for an error; a failing or invalid errorEncoder falls back to -32603. */
  function errorJson(ctx: Context, error: ServiceError, id: JsonRpcId | undefined): string {
    let object: JsonRpcErrorObject;
    try {
      const encoded = errorEncoder(ctx, error);
      if (!isValidErrorObject(encoded))
        throw new TypeError("errorEncoder returned no { code, message } object");
      object = encoded;
    } catch (failure) {
      object = defaultJsonRpcErrorEncoder(ctx, ServiceError.from(failure));
    }
    let text: string;
    try {
      text = JSON.stringify(
        object.data === undefined
          ? { code: object.code, message: object.message }
          : { code: object.code, message: object.message, data: object.data },
      );
    } catch {
      // `data` that cannot be serialised (a BigInt, a cycle) is dropped; the code and message still go.
      text = JSON.stringify({ code: object.code, message: object.message });
    }
    return `{"jsonrpc":"2.0","error":${text},"id":${idJson(id)}}`;
  }

  /** Serves one call (a whole request, or one batch entry when `base` is the batch's context). */
  async function serveEntry(exchange: Exchange, entry: unknown, base: Context | undefined): Promise<Outcome> {
    const read = readEntry(entry);
    const call = read.call;
    const found = call === undefined ? undefined : table.get(call.method);
    const info = found?.info ?? UNKNOWN_CALL;
    let handle: CancelableContext | undefined;
    let ctx: Context;
    if (base === undefined) {
      handle = createCancelableContext({
        callInfo: info,
        metadata: exchange.metadata,
        deadline: exchange.deadline,
        cancelSource: disconnect,
        cancelTarget: exchange.res,
      });
      ctx = handle.context;
    } else {
      ctx = base.with(callInfoKey, info);
    }
    const outcome: Outcome = { ctx, call, info, error: undefined, json: undefined, handle };
    if (read.error !== undefined) {
      // An invalid request is always answered: nothing says it was meant as a notification.
      outcome.error = read.error;
      tell(ctx, read.error);
      outcome.json = errorJson(ctx, read.error, read.id);
      return outcome;
    }
    const request = call as JsonRpcCall;
    const answered = request.id !== undefined || answerNotifications;
    try {
      if (found === undefined) throw methodNotFound(request.method);
      const method = found.method;
      for (const fn of before) ctx = fn(ctx, exchange.request, request) ?? ctx;
      for (const fn of method.before) ctx = fn(ctx, exchange.request, request) ?? ctx;
      let decoded: unknown;
      try {
        decoded = method.decode(ctx, request.params);
        if (isPromise(decoded)) decoded = await decoded;
      } catch (err) {
        throw asInvalidParams(err);
      }
      const response = await method.endpoint(ctx, decoded);
      let result = method.encode(ctx, response);
      if (isPromise(result)) result = await result;
      for (const fn of after) ctx = fn(ctx, exchange.res) ?? ctx;
      for (const fn of method.after) ctx = fn(ctx, exchange.res) ?? ctx;
      if (answered) {
        // `undefined` (or a function) has no JSON form; the `result` member is required, so it is null.
        const text = JSON.stringify(result) ?? "null";
        outcome.json = `{"jsonrpc":"2.0","result":${text},"id":${idJson(request.id)}}`;
      }
    } catch (err) {
      const error = ServiceError.from(err);
      outcome.error = error;
      tell(ctx, error);
      if (answered) outcome.json = errorJson(ctx, error, request.id);
    }
    outcome.ctx = ctx;
    return outcome;
  }

  /** Writes the HTTP response; returns [status, bytes]. 499 and nothing written when the client left. */
  function write(
    res: ServerResponse,
    status: number,
    body: string | undefined,
    error?: ServiceError,
  ): [number, number] {
    if (res.destroyed) return [499, 0];
    if (res.headersSent) {
      if (!res.writableEnded) res.destroy();
      return [res.statusCode, 0];
    }
    if (body === undefined) {
      res.writeHead(204);
      res.end();
      return [204, 0];
    }
    const length = Buffer.byteLength(body);
    const headers: string[] = ["content-type", CONTENT_TYPE, "content-length", String(length)];
    if (error instanceof TransportError) {
      for (const [key, value] of error.metadata) headers.push(key, value);
    }
    res.writeHead(status, headers);
    res.end(body);
    return [status, length];
  }

  function finalize(exchange: Exchange, outcome: Outcome, status: number, bytes: number): void {
    outcome.handle?.release();
    if (finalizers.length === 0) return;
    const info: JsonRpcServerFinalizerInfo = {
      request: exchange.request,
      call: outcome.call,
      method: outcome.info.method,
      status,
      bytesWritten: bytes,
      error: outcome.error,
    };
    for (const fn of finalizers) {
      try {
        fn(outcome.ctx, info);
      } catch {
        // A throwing finalizer must not skip the others or crash the process.
      }
    }
  }

  /** Answers an HTTP request that holds no call that can be served: bad HTTP request, parse error, bad batch. */
  function failRequest(exchange: Exchange, error: ServiceError): void {
    const handle = createCancelableContext({
      callInfo: UNKNOWN_CALL,
      metadata: exchange.metadata,
      deadline: exchange.deadline,
      cancelSource: disconnect,
      cancelTarget: exchange.res,
    });
    const outcome: Outcome = {
      ctx: handle.context,
      call: undefined,
      info: UNKNOWN_CALL,
      error,
      json: undefined,
      handle,
    };
    tell(outcome.ctx, error);
    let result: [number, number];
    if (error instanceof TransportError && error.status === 499) {
      // The client left while sending the body: there is no one to answer.
      if (!exchange.res.writableEnded) exchange.res.destroy();
      result = [499, 0];
    } else {
      const status = error instanceof TransportError ? error.status : 200;
      result = write(exchange.res, status, errorJson(outcome.ctx, error, null), error);
    }
    finalize(exchange, outcome, result[0], result[1]);
  }

  async function serveBatch(exchange: Exchange, batch: readonly unknown[]): Promise<void> {
    if (batch.length === 0) {
      failRequest(exchange, invalidRequest("empty batch"));
      return;
    }
    if (batch.length > maxBatchSize) {
      failRequest(
        exchange,
        invalidRequest(`a batch of ${batch.length} requests exceeds the limit of ${maxBatchSize}`),
      );
      return;
    }
    // One root context for the whole batch: its calls share the deadline and one disconnect
    // listener; each call's context adds its own CallInfo.
    const root = createCancelableContext({
      callInfo: UNKNOWN_CALL,
      metadata: exchange.metadata,
      deadline: exchange.deadline,
      cancelSource: disconnect,
      cancelTarget: exchange.res,
    });
    try {
      const outcomes: Outcome[] = new Array(batch.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < batch.length) {
          const i = next++;
          outcomes[i] = await serveEntry(exchange, batch[i], root.context);
        }
      };
      const workers: Promise<void>[] = [];
      for (let k = Math.min(batchConcurrency, batch.length); k > 0; k--) workers.push(worker());
      await Promise.all(workers);
      let body: string | undefined;
      for (const outcome of outcomes) {
        if (outcome.json === undefined) continue;
        body = body === undefined ? `[${outcome.json}` : `${body},${outcome.json}`;
      }
      const [status, bytes] = write(exchange.res, 200, body === undefined ? undefined : `${body}]`);
      for (const outcome of outcomes) finalize(exchange, outcome, status, bytes);
    } finally {
      root.release();
    }
  }

  async function serve(exchange: Exchange, parsed: { value: unknown } | undefined): Promise<void> {
    // Nothing escapes: the handler never leaves a rejected promise behind.
    try {
      let value: unknown;
      if (parsed !== undefined) {
        value = parsed.value;
      } else {
        try {
          value = parseBody(exchange.request.body);
        } catch (err) {
          failRequest(exchange, ServiceError.from(err));
          return;
        }
      }
      if (Array.isArray(value)) {
        await serveBatch(exchange, value);
        return;
      }
      const outcome = await serveEntry(exchange, value, undefined);
      const [status, bytes] = write(exchange.res, 200, outcome.json, outcome.error);
      finalize(exchange, outcome, status, bytes);
    } catch (failure) {
      lastResort(exchange.res, failure);
    }
  }

  function exchangeOf(
    req: IncomingMessage,
    res: ServerResponse,
    body: Uint8Array,
    deadline: number | undefined,
  ): Exchange {
    return {
      req,
      res,
      request: new HttpRequestView(req, body),
      metadata: metadataFromNodeHeaders(req.headers, req.rawHeaders),
      deadline,
    };
  }

  return function jsonRpcHandler(req: IncomingMessage, res: ServerResponse): void {
    // Answered before the body is read: Node then reads what is left to reuse the connection, so a body
    // not declared within the limit must not keep it (as a 413 does not).
    const refuse = (error: ServiceError): void => {
      if (!req.readableEnded && !declaredWithin(req, bodyLimit) && !res.headersSent) {
        res.setHeader("connection", "close");
      }
      failRequest(exchangeOf(req, res, EMPTY_BODY, undefined), error);
    };
    try {
      if (req.method !== "POST") {
        const method = String(req.method).slice(0, MAX_NAME_IN_MESSAGE);
        const error = new TransportError(
          405,
          Code.UNIMPLEMENTED,
          `method ${method} is not allowed: use POST`,
          {
            metadata: { allow: "POST" },
          },
        );
        refuse(error);
        return;
      }
      const type = req.headers["content-type"];
      if (checkContentType && !isJsonContentType(type)) {
        const error = new TransportError(
          415,
          Code.INVALID_ARGUMENT,
          `unsupported content type "${String(type).slice(0, MAX_NAME_IN_MESSAGE)}": expected application/json`,
        );
        refuse(error);
        return;
      }
      const timeout = requestTimeout(req);
      if (typeof timeout === "object") {
        refuse(timeout);
        return;
      }
      const deadline = timeout === undefined ? undefined : Date.now() + timeout;
      if (req.readableEnded) {
        // A framework read the body before us (e.g. express.json()): use what it left.
        const prior = (req as { body?: unknown }).body;
        if (prior instanceof Uint8Array) void serve(exchangeOf(req, res, prior, deadline), undefined);
        else if (typeof prior === "string")
          void serve(exchangeOf(req, res, Buffer.from(prior), deadline), undefined);
        else if (prior !== undefined)
          void serve(exchangeOf(req, res, EMPTY_BODY, deadline), { value: prior });
        else void serve(exchangeOf(req, res, EMPTY_BODY, deadline), undefined);
        return;
      }
      readBody(req, bodyLimit, (error, body) => {
        try {
          const exchange = exchangeOf(req, res, body, deadline);
          if (error !== undefined) failRequest(exchange, error);
          else void serve(exchange, undefined);
        } catch (failure) {
          lastResort(res, failure);
        }
      });
    } catch (failure) {
      lastResort(res, failure);
    }
  };
}

/** Answers when even error handling failed; never throws. */
function lastResort(res: ServerResponse, failure: unknown): void {
  try {
    if (!res.headersSent && !res.destroyed) {
      const error = ServiceError.from(failure);
      const body = `{"jsonrpc":"2.0","error":${JSON.stringify({ code: JsonRpcErrorCode.INTERNAL_ERROR, message: error.message })},"id":null}`;
      res.writeHead(200, ["content-type", CONTENT_TYPE, "content-length", String(Buffer.byteLength(body))]);
      res.end(body);
    } else if (!res.writableEnded) {
      res.destroy();
    }
  } catch {
    res.destroy();
  }
}
