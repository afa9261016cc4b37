import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeader,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import {
  background,
  type CallInfo,
  type CancelSource,
  Code,
  type Context,
  codeToHttpStatus,
  createCancelableContext,
  type Endpoint,
  MAX_TIMER_MS,
  metadataFromNodeHeaders,
  ServiceError,
} from "@svckit/endpoint";
import { closesConnection, declaredWithin, readBody } from "./body.js";
import { HttpError, hasTransportHeaders } from "./http-error.js";

/** The request as decoders and `before` functions see it: a thin, lazy view of `IncomingMessage`. */
export interface HttpRequest {
  /** The underlying Node request. */
  readonly raw: IncomingMessage;
  /** The request method, upper-case. */
  readonly method: string;
  /**
   * The request target as sent: path and query (an absolute-form target, `http://host/sum`, as a
   * proxy-style client sends it, keeps its scheme and authority here).
   */
  readonly url: string;
  /**
   * The path part of `url`, without the query (and without the scheme and authority of an absolute-form
   * http(s) target; a target with another scheme, `foo://host/x`, is left as it is, and the router
   * answers it 400).
   */
  readonly path: string;
  /** The parsed query string. */
  readonly query: URLSearchParams;
  /** Route parameters set by the svckit router or by express (`req.params`). */
  readonly params: Readonly<Record<string, string>>;
  /** The request headers, keys lower-case. */
  readonly headers: IncomingHttpHeaders;
  /** The request body, read in full up to the body limit (empty when there is none). */
  readonly body: Uint8Array;
  /**
   * A body some framework parsed before svckit saw the request (e.g. `express.json()` or
   * `express.urlencoded()` ran first); `undefined` otherwise. What it is depends on the parser that
   * made it: svckit's JSON decoder uses it instead of `body` only when the request's content type is
   * JSON, and answers 415 otherwise.
   */
  readonly parsedBody: unknown;
}

/** Turns an HTTP request into the endpoint's request. Throw a ServiceError (INVALID_ARGUMENT) on bad input. */
export type DecodeRequestFunc<Req> = (ctx: Context, request: HttpRequest) => Req | Promise<Req>;

/** What an encoder returns: the response status, content type, extra headers and body. */
export interface HttpResponseInit {
  /** The status; 200 by default, 204 when there is no body. */
  status?: number;
  /** The `content-type` header (a `content-type` in `headers` replaces it). */
  contentType?: string;
  /**
   * More response headers; a name with several values is sent as that many header lines. A
   * `content-type` here replaces `contentType`; `content-length` and `transfer-encoding` are dropped,
   * since the server frames the body itself.
   */
  headers?: OutgoingHttpHeaders;
  /** The body. */
  body?: string | Uint8Array;
}

/** Turns the endpoint's response into an HTTP response. */
export type EncodeResponseFunc<Res> = (
  ctx: Context,
  response: Res,
) => HttpResponseInit | Promise<HttpResponseInit>;

/** Runs before decoding, may derive a new context from the request (go-kit's `ServerBefore`). */
export type ServerRequestFunc = (ctx: Context, request: HttpRequest) => Context | undefined;

/** Runs after the endpoint succeeded, before the response is written; may set headers (go-kit's `ServerAfter`). */
export type ServerResponseFunc = (ctx: Context, response: ServerResponse) => Context | undefined;

/** Writes an error response. The default writes the status for the error and a JSON body. */
export type ErrorEncoder = (ctx: Context, error: ServiceError, response: ServerResponse) => void;

/** Is told of every error a handler answers (for logging); must not throw. */
export type ErrorHandler = (ctx: Context, error: ServiceError) => void;

/** What a finalizer learns about a finished call. */
export interface ServerFinalizerInfo {
  /** The request (its body may be empty if reading it failed). */
  readonly request: HttpRequest;
  /** The status sent, or 499 when the client went away before an answer. */
  readonly status: number;
  /** The bytes of body written. */
  readonly bytesWritten: number;
  /** The error the call ended with, if any. */
  readonly error: ServiceError | undefined;
}

/** Always runs once a call is over, whatever happened (go-kit's `ServerFinalizer`). Must not throw. */
export type ServerFinalizerFunc = (ctx: Context, info: ServerFinalizerInfo) => void;

/** Options of {@link createHttpHandler}. */
export interface HttpServerOptions {
  /** Functions run in order before decoding; each may return a derived context. */
  before?: readonly ServerRequestFunc[];
  /** Functions run in order after the endpoint, before the response is written. */
  after?: readonly ServerResponseFunc[];
  /** Writes error responses; default {@link defaultErrorEncoder}. */
  errorEncoder?: ErrorEncoder;
  /** Told of every error; default: nothing. */
  errorHandler?: ErrorHandler;
  /** Run once per call after the response is written. */
  finalizer?: ServerFinalizerFunc | readonly ServerFinalizerFunc[];
  /** The largest request body accepted, in bytes (default 1 MiB); larger → 413. */
  bodyLimit?: number;
  /**
   * The header carrying the caller's remaining time budget in integer milliseconds (any run of
   * digits), which becomes the context's deadline (default `x-request-timeout`; `false` ignores
   * deadlines from callers). Anything but digits is answered 400.
   */
  timeoutHeader?: string | false;
  /**
   * The longest deadline a caller may ask for, in ms; longer ones are cut to it. Default and upper
   * bound: `MAX_TIMER_MS` (2^31 − 1 ms, about 24.8 days).
   */
  maxTimeout?: number;
}

/** A `(req, res)` listener for `node:http`, also usable as an express route handler. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;

/** The default content type of svckit JSON bodies. */
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

const DEFAULT_BODY_LIMIT = 1 << 20;
const EMPTY_BODY: Buffer = Buffer.alloc(0);
const EMPTY_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
/** A timeout header's value: any run of digits (Node's header size limit bounds its length); larger than the limit is cut to it. */
const TIMEOUT_PATTERN = /^\d+$/;
/** The start of an absolute-form target this server accepts: an http or https URL (any case). */
const ABSOLUTE_FORM = /^https?:\/\//i;

/**
 * The origin form (path and query) of a request target. An absolute-form http(s) target
 * (`http://host:80/sum?x`, which RFC 9112 §3.2.2 says a server must accept) loses its scheme and
 * authority (`/sum?x`; `/` when it has no path); any other target (`*`, `foo://host/x`) is returned as
 * it is. Internal: the router uses it too, and answers 400 to a target with another scheme.
 */
export function originForm(target: string): string {
  if (target.charCodeAt(0) === 47 /* "/" */) return target;
  const scheme = ABSOLUTE_FORM.exec(target);
  if (scheme === null) return target;
  let i = scheme[0].length;
  while (i < target.length) {
    const c = target.charCodeAt(i);
    if (c === 47 /* "/" */ || c === 63 /* "?" */ || c === 35 /* "#" */) break;
    i++;
  }
  const rest = target.slice(i);
  return rest.charCodeAt(0) === 47 ? rest : `/${rest}`;
}

class Request implements HttpRequest {
  #query: URLSearchParams | undefined;

  constructor(
    readonly raw: IncomingMessage,
    readonly body: Uint8Array,
    readonly parsedBody: unknown,
  ) {}

  get method(): string {
    return this.raw.method ?? "GET";
  }

  get url(): string {
    return this.raw.url ?? "/";
  }

  get headers(): IncomingHttpHeaders {
    return this.raw.headers;
  }

  get path(): string {
    const url = originForm(this.url);
    const q = url.indexOf("?");
    return q < 0 ? url : url.slice(0, q);
  }

  get query(): URLSearchParams {
    if (this.#query === undefined) {
      const url = originForm(this.url);
      const q = url.indexOf("?");
      this.#query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
    }
    return this.#query;
  }

  get params(): Readonly<Record<string, string>> {
    const params = (this.raw as { params?: unknown }).params;
    return typeof params === "object" && params !== null ? (params as Record<string, string>) : EMPTY_PARAMS;
  }
}

/** Cancels a request's context when its client disconnects before the response is finished. */
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

/**
 * Headers an error's metadata never sets on an error answer, because they describe another message:
 * an error a client call returned carries that upstream response's headers as metadata, and a gateway
 * that throws it on must not answer its own JSON body with the upstream's `content-encoding: gzip`, hand
 * its caller the upstream's cookies, or make its error cacheable with the upstream's validators.
 * - the answer's own framing and the hop-by-hop headers of RFC 9110 §7.6.1;
 * - representation metadata (RFC 9110 §8): the answer's body is a new representation;
 * - validators, caching and the upstream's own response fields (RFC 9110 §8.8, §10.2, RFC 9111 §5);
 * - cookies (RFC 6265), and the policies a user agent applies to the origin that answered (CORS,
 *   CSP, framing, cross-origin isolation, permissions, referrer, reporting, HSTS, `clear-site-data`),
 *   and `refresh`, which redirects as `location` does: they belong to the upstream's host, and a gateway
 *   sets its own. Every `access-control-*` and `cross-origin-*` header is refused by its prefix.
 */
const NEVER_PASSED_HEADERS: ReadonlySet<string> = new Set([
  // framing, hop-by-hop
  "content-length",
  "content-type",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
  // representation metadata
  "content-encoding",
  "content-language",
  "content-location",
  "content-range",
  "content-disposition",
  "content-md5",
  "content-digest",
  "repr-digest",
  "digest",
  "accept-ranges",
  // validators, caching, the upstream's own response fields
  "etag",
  "last-modified",
  "cache-control",
  "expires",
  "age",
  "vary",
  "date",
  "server",
  "via",
  "location",
  "alt-svc",
  "refresh",
  // cookies and the policies of the upstream's host (also every access-control-* and cross-origin-*)
  "set-cookie",
  "set-cookie2",
  "clear-site-data",
  "strict-transport-security",
  "content-security-policy",
  "content-security-policy-report-only",
  "x-frame-options",
  "x-content-type-options",
  "x-xss-protection",
  "x-permitted-cross-domain-policies",
  "x-dns-prefetch-control",
  "permissions-policy",
  "feature-policy",
  "referrer-policy",
  "origin-agent-cluster",
  "timing-allow-origin",
  "report-to",
  "reporting-endpoints",
  "nel",
]);

/** Whether an error's metadata key may never become a header of an error answer (see {@link NEVER_PASSED_HEADERS}). */
function neverPassed(name: string): boolean {
  return (
    NEVER_PASSED_HEADERS.has(name) || name.startsWith("access-control-") || name.startsWith("cross-origin-")
  );
}

/** Options of {@link createJsonErrorEncoder}. */
export interface JsonErrorEncoderOptions {
  /**
   * Which of the error's metadata (lower-case names) become response headers. Default: all but those
   * that describe another message, which are never passed: framing and hop-by-hop headers
   * (`content-length`, `transfer-encoding`, `connection`, ...), representation metadata
   * (`content-encoding`, `content-range`, `content-language`, ...), validators and caching (`etag`,
   * `last-modified`, `cache-control`, `expires`, `vary`, ...), the upstream's `date`, `server`,
   * `location` and `refresh`, cookies (`set-cookie`, `clear-site-data`), and the upstream host's origin
   * policies (`access-control-*`, `cross-origin-*`, `content-security-policy*`, `x-frame-options`,
   * `strict-transport-security`, `permissions-policy`, `referrer-policy`, ...). A gateway passing on its
   * upstreams' errors may want an allow-list still, e.g.
   * `(name) => name === "www-authenticate" || name === "retry-after"`. Headers the transport itself put
   * on its own errors (the router's `Allow` on a 405) are always passed. A key with several values
   * becomes that many headers.
   */
  passHeader?: (name: string) => boolean;
}

/**
 * An error encoder that writes an error as `status` (an {@link HttpError}'s own, else the code's from
 * `codeToHttpStatus`) with a JSON body `{"code":"NOT_FOUND","message":"...","details":[...]}`; the
 * error's metadata that `passHeader` accepts become response headers (e.g. `allow`, `retry-after`).
 * Headers that describe another message never do (see {@link JsonErrorEncoderOptions.passHeader}):
 * framing and hop-by-hop headers, `content-*` representation metadata, validators and caching headers,
 * `date`, `server`, `location`, `refresh`, cookies, and the upstream host's origin policies (CORS, CSP,
 * framing, cross-origin isolation, ...). A repeated key (two `www-authenticate` challenges) is sent as
 * that many headers.
 *
 * @example
 * ```ts
 * const errorEncoder = createJsonErrorEncoder({ passHeader: (name) => name === "retry-after" });
 * const handler = createHttpHandler(sum, jsonRequestDecoder(), encodeJsonResponse, { errorEncoder });
 * ```
 */
export function createJsonErrorEncoder(options: JsonErrorEncoderOptions = {}): ErrorEncoder {
  const passHeader = options.passHeader;
  return function jsonErrorEncoder(_ctx: Context, error: ServiceError, res: ServerResponse): void {
    const status = error instanceof HttpError ? error.status : codeToHttpStatus[error.code];
    let body: string;
    try {
      body = JSON.stringify(error.toJSON());
    } catch {
      body = JSON.stringify({ code: error.codeName, message: error.message });
    }
    const headers: OutgoingHttpHeader[] = [
      "content-type",
      JSON_CONTENT_TYPE,
      "content-length",
      Buffer.byteLength(body),
    ];
    const metadata = error.metadata;
    if (metadata.size > 0) {
      const filter = passHeader === undefined || hasTransportHeaders(error) ? undefined : passHeader;
      // One pair per name, its values as an array: once any header is set on the response (express's
      // x-powered-by, the server's own connection: close) Node applies each pair with setHeader, and of
      // two pairs with one name only the last would be sent.
      for (const key of metadata.keys()) {
        if (neverPassed(key) || (filter !== undefined && !filter(key))) continue;
        const values = metadata.getAll(key);
        if (values.length === 1) headers.push(key, values[0] as string);
        else if (values.length > 1) headers.push(key, values);
      }
    }
    res.writeHead(status, headers);
    res.end(body);
  };
}

/**
 * The error encoder every handler and router uses unless told otherwise: {@link createJsonErrorEncoder}
 * with its defaults — the JSON body `{"code","message","details"?}`, the code's status, and the
 * error's metadata as headers but for framing and hop-by-hop ones.
 */
export const defaultErrorEncoder: ErrorEncoder = createJsonErrorEncoder();

/**
 * Adds an encoder's headers to a `writeHead` list as one pair per name, the values of a repeated one
 * (an array, or `Set-Cookie` and `set-cookie` both given) as one array. Once any header was set on the
 * response (express's x-powered-by, an `after` function) Node applies each pair with `setHeader`, so of
 * two pairs with one name only the last would be sent; an array is sent as that many headers. The
 * framing headers are left out (`content-length`, `transfer-encoding`: the server frames the body) and
 * so is `content-type`, which {@link writeResponse} sends once; returns the encoder's `content-type`, if
 * it gave one (the last, if it gave several).
 */
function addHeaders(
  headers: OutgoingHttpHeader[],
  extra: OutgoingHttpHeaders,
): OutgoingHttpHeader | undefined {
  const start = headers.length;
  let contentType: OutgoingHttpHeader | undefined;
  for (const key in extra) {
    const value = extra[key];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    const name = key.toLowerCase();
    if (name === "content-type") {
      contentType = Array.isArray(value) ? value[value.length - 1] : value;
      continue;
    }
    if (name === "content-length" || name === "transfer-encoding") continue;
    let at = -1;
    for (let i = start; i < headers.length; i += 2) {
      if ((headers[i] as string).toLowerCase() === name) {
        at = i + 1;
        break;
      }
    }
    if (at < 0) {
      headers.push(key, value);
    } else {
      const prev = headers[at] as OutgoingHttpHeader;
      const merged: string[] = Array.isArray(prev) ? [...prev] : [String(prev)];
      if (Array.isArray(value)) merged.push(...value);
      else merged.push(String(value));
      headers[at] = merged;
    }
  }
  return contentType;
}

/**
 * Writes an encoded response; returns the number of body bytes. The answer has one `content-type` (the
 * encoder's `headers` entry, else its `contentType`) and the server's own `content-length`: the framing
 * headers among the encoder's `headers` are dropped, so the answer is framed alike whether or not an
 * `after` function set headers first.
 */
function writeResponse(res: ServerResponse, out: HttpResponseInit): number {
  const body = out.body;
  const length =
    body === undefined ? 0 : typeof body === "string" ? Buffer.byteLength(body) : body.byteLength;
  const status = out.status ?? (body === undefined ? 204 : 200);
  const extra = out.headers;
  let headers: OutgoingHttpHeader[];
  if (extra === undefined) {
    headers = out.contentType === undefined ? [] : ["content-type", out.contentType];
    if (status !== 204 && status !== 304) headers.push("content-length", length);
  } else {
    const rest: OutgoingHttpHeader[] = [];
    const contentType = addHeaders(rest, extra) ?? out.contentType;
    headers = contentType === undefined ? [] : ["content-type", contentType];
    if (status !== 204 && status !== 304) headers.push("content-length", length);
    for (const item of rest) headers.push(item);
  }
  res.writeHead(status, headers);
  res.end(body);
  return length;
}

/**
 * Serves one endpoint over HTTP, go-kit style: `decode` turns the request into the endpoint's
 * request, the endpoint runs, `encode` turns its response into the HTTP response. The result is a
 * `(req, res)` listener for `node:http` (alone or behind {@link createRouter}) and an express route
 * handler.
 *
 * The context carries the request headers as metadata, the caller's deadline from the timeout header,
 * and is cancelled when the client disconnects. Every failure is answered: a ServiceError with its
 * status, anything else thrown with 500 and a generic message; the stack never reaches the client.
 *
 * @example
 * ```ts
 * const handler = createHttpHandler(sum, jsonRequestDecoder(), encodeJsonResponse);
 * http.createServer(handler).listen(8080); // or: app.post("/sum", handler)
 * ```
 */
export function createHttpHandler<Req, Res>(
  endpoint: Endpoint<Req, Res>,
  decode: DecodeRequestFunc<Req>,
  encode: EncodeResponseFunc<Res>,
  options: HttpServerOptions = {},
): HttpHandler {
  const before = options.before ?? [];
  const after = options.after ?? [];
  const errorEncoder = options.errorEncoder ?? defaultErrorEncoder;
  const errorHandler = options.errorHandler;
  const finalizers =
    options.finalizer === undefined
      ? []
      : Array.isArray(options.finalizer)
        ? options.finalizer
        : [options.finalizer as ServerFinalizerFunc];
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  if (!(bodyLimit >= 0)) throw new RangeError(`createHttpHandler: bodyLimit must be ≥ 0, got ${bodyLimit}`);
  const timeoutHeader =
    options.timeoutHeader === false
      ? undefined
      : (options.timeoutHeader ?? "x-request-timeout").toLowerCase();
  // The longest budget a caller gets; beyond MAX_TIMER_MS no server timer could hold it anyway.
  const maxTimeout =
    options.maxTimeout !== undefined && options.maxTimeout < MAX_TIMER_MS ? options.maxTimeout : MAX_TIMER_MS;

  // Most handlers serve one method on one route: keep the last CallInfo and reuse it while it fits.
  let lastCallInfo: CallInfo = { transport: "http", method: "", route: undefined };
  function callInfoFor(req: IncomingMessage): CallInfo {
    const method = req.method ?? "GET";
    const tag = (req as { route?: { path?: unknown } }).route;
    const route = tag !== undefined && typeof tag.path === "string" ? tag.path : undefined;
    if (lastCallInfo.method !== method || lastCallInfo.route !== route) {
      lastCallInfo = Object.freeze({ transport: "http", method, route });
    }
    return lastCallInfo;
  }

  /** The caller's time budget in ms, `undefined` without one, or the error for a malformed header. */
  function requestTimeout(req: IncomingMessage): number | HttpError | undefined {
    if (timeoutHeader === undefined) return undefined;
    const raw = req.headers[timeoutHeader];
    if (raw === undefined) return undefined;
    if (typeof raw !== "string" || !TIMEOUT_PATTERN.test(raw)) {
      return new HttpError(
        400,
        Code.INVALID_ARGUMENT,
        `invalid ${timeoutHeader} header: expected a whole number of milliseconds`,
      );
    }
    const ms = Number(raw);
    return Math.min(ms, maxTimeout);
  }

  /**
   * Everything after the body is in: decode, endpoint, encode, write, hooks. `failure` is an error
   * found before (bad timeout header, body too large); `deadline` was fixed when the request arrived.
   * It stays synchronous while `before`, `decode`, `endpoint`, `encode` and `after` return plain
   * values: a call costs the endpoint's promise and one `then`, no async frames. Nothing escapes: the
   * handler never throws and never leaves a rejected promise behind.
   */
  function serve(
    req: IncomingMessage,
    res: ServerResponse,
    body: Uint8Array,
    parsedBody: unknown,
    deadline: number | undefined,
    failure: HttpError | undefined,
  ): void {
    let call: CallHandle;
    try {
      call = createCancelableContext({
        callInfo: callInfoFor(req),
        metadata: metadataFromNodeHeaders(req.headers, req.rawHeaders),
        deadline,
        cancelSource: disconnect,
        cancelTarget: res,
      });
    } catch (err) {
      lastResort(res, err);
      return;
    }
    const ctx: Context = call.context;
    if (failure !== undefined) {
      failed(call, ctx, req, res, undefined, failure);
      return;
    }
    let request: Request | undefined;
    let decoded: Req | Promise<Req>;
    let at = ctx;
    try {
      request = new Request(req, body, parsedBody);
      for (const fn of before) at = fn(at, request) ?? at;
      decoded = decode(at, request);
    } catch (err) {
      failed(call, at, req, res, request, err);
      return;
    }
    if (isPromise(decoded)) {
      const c = at;
      const r = request;
      decoded.then(
        (value) => invoke(call, c, req, res, r, value),
        (err: unknown) => failed(call, c, req, res, r, err),
      );
    } else {
      invoke(call, at, req, res, request, decoded);
    }
  }

  function invoke(
    call: CallHandle,
    ctx: Context,
    req: IncomingMessage,
    res: ServerResponse,
    request: Request,
    decoded: Req,
  ): void {
    let pending: Promise<Res> | Res;
    try {
      pending = endpoint(ctx, decoded);
    } catch (err) {
      // A plain-JS endpoint that throws instead of rejecting.
      failed(call, ctx, req, res, request, err);
      return;
    }
    if (isPromise(pending)) {
      pending.then(
        (response) => respond(call, ctx, req, res, request, response),
        (err: unknown) => failed(call, ctx, req, res, request, err),
      );
    } else {
      respond(call, ctx, req, res, request, pending);
    }
  }

  function respond(
    call: CallHandle,
    ctx: Context,
    req: IncomingMessage,
    res: ServerResponse,
    request: Request,
    response: Res,
  ): void {
    let out: HttpResponseInit | Promise<HttpResponseInit>;
    try {
      out = encode(ctx, response);
    } catch (err) {
      failed(call, ctx, req, res, request, err);
      return;
    }
    if (isPromise(out)) {
      out.then(
        (value) => write(call, ctx, req, res, request, value),
        (err: unknown) => failed(call, ctx, req, res, request, err),
      );
    } else {
      write(call, ctx, req, res, request, out);
    }
  }

  function write(
    call: CallHandle,
    ctx: Context,
    req: IncomingMessage,
    res: ServerResponse,
    request: Request,
    out: HttpResponseInit,
  ): void {
    let bytes: number;
    try {
      for (const fn of after) ctx = fn(ctx, res) ?? ctx;
      if (res.destroyed) throw new ServiceError(Code.CANCELLED, "client disconnected");
      bytes = writeResponse(res, out);
    } catch (err) {
      failed(call, ctx, req, res, request, err);
      return;
    }
    end(call, ctx, req, res, request, res.statusCode, bytes, undefined);
  }

  function failed(
    call: CallHandle,
    ctx: Context,
    req: IncomingMessage,
    res: ServerResponse,
    request: Request | undefined,
    err: unknown,
  ): void {
    let status: number;
    let error: ServiceError;
    try {
      error = ServiceError.from(err);
      try {
        errorHandler?.(ctx, error);
      } catch {
        // A throwing errorHandler must not cost the client its answer or skip the finalizers.
      }
      if (res.destroyed || res.headersSent) {
        status = res.headersSent ? res.statusCode : 499;
        if (!res.writableEnded) res.destroy();
      } else {
        try {
          errorEncoder(ctx, error, res);
        } catch (encoderFailure) {
          if (!res.headersSent) {
            defaultErrorEncoder(ctx, ServiceError.from(encoderFailure), res);
          } else if (!res.writableEnded) {
            res.destroy();
          }
        }
        status = res.statusCode;
      }
    } catch (failure) {
      call.release();
      lastResort(res, failure);
      return;
    }
    end(call, ctx, req, res, request, status, 0, error);
  }

  function end(
    call: CallHandle,
    ctx: Context,
    req: IncomingMessage,
    res: ServerResponse,
    request: Request | undefined,
    status: number,
    bytesWritten: number,
    error: ServiceError | undefined,
  ): void {
    // The call is over: drop the deadline timer and the disconnect listener, if watching set them up.
    call.release();
    if (finalizers.length === 0) return;
    try {
      const info: ServerFinalizerInfo = {
        request: request ?? new Request(req, EMPTY_BODY, undefined),
        status,
        bytesWritten,
        error,
      };
      for (const fn of finalizers) {
        try {
          fn(ctx, info);
        } catch {
          // A throwing finalizer must not skip the others or crash the process.
        }
      }
    } catch (failure) {
      lastResort(res, failure);
    }
  }

  return function httpHandler(req: IncomingMessage, res: ServerResponse): void {
    const timeout = requestTimeout(req);
    const deadline = typeof timeout === "number" ? Date.now() + timeout : undefined;
    const failure = typeof timeout === "object" ? timeout : undefined;
    if (req.readableEnded || failure !== undefined) {
      // Answered without reading the body: Node reads what is left to reuse the connection, so a body
      // not declared within the limit must not keep it (as readBody's 413 does).
      if (failure !== undefined && !req.readableEnded && !declaredWithin(req, bodyLimit)) {
        res.setHeader("connection", "close");
      }
      // A framework consumed the body before us (e.g. express.json()); use what it left.
      const prior = failure === undefined ? (req as { body?: unknown }).body : undefined;
      if (prior instanceof Uint8Array) serve(req, res, prior, undefined, deadline, failure);
      else if (typeof prior === "string") serve(req, res, Buffer.from(prior), undefined, deadline, failure);
      else serve(req, res, EMPTY_BODY, prior, deadline, failure);
      return;
    }
    readBody(
      req,
      bodyLimit,
      (error, body) => {
        if (error !== undefined && closesConnection(error) && !res.headersSent)
          res.setHeader("connection", "close");
        serve(req, res, body, undefined, deadline, error);
      },
      res,
    );
  };
}

type CallHandle = ReturnType<typeof createCancelableContext>;

/** Answers when even error handling failed (e.g. an error encoder wrote an invalid header); never throws. */
function lastResort(res: ServerResponse, failure: unknown): void {
  try {
    if (!res.headersSent && !res.destroyed) defaultErrorEncoder(background, ServiceError.from(failure), res);
    else if (!res.writableEnded) res.destroy();
  } catch {
    res.destroy();
  }
}
