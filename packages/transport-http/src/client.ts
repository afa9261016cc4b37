import {
  type CancelableContext,
  Code,
  type Context,
  codeFromString,
  codeToHttpStatus,
  type Endpoint,
  type ErrorDetail,
  httpStatusToCode,
  MAX_TIMER_MS,
  ServiceError,
  type ServiceErrorOptions,
} from "@svckit/endpoint";
import { HttpError } from "./http-error.js";

/** What a request encoder returns: an optional path and query relative to the client's URL, headers and body. */
export interface HttpClientRequest {
  /**
   * A path appended to the client's base URL (e.g. `/users/42`). Refused with INVALID_ARGUMENT, nothing
   * sent: a `.` or `..` segment (also as `%2e`), and a `\`, tab, CR or LF, which a URL parser turns
   * into a separator or removes; percent-encode such characters in a segment (`encodeURIComponent`).
   */
  path?: string;
  /** Query parameters added to the URL. */
  query?: Record<string, string> | URLSearchParams;
  /** Request headers. */
  headers?: Record<string, string>;
  /** The request body. */
  body?: string | Uint8Array;
}

/** Turns the endpoint's request into an HTTP request. */
export type EncodeRequestFunc<Req> = (
  ctx: Context,
  request: Req,
) => HttpClientRequest | Promise<HttpClientRequest>;

/** Turns a successful (2xx) HTTP response into the endpoint's response. */
export type DecodeResponseFunc<Res> = (ctx: Context, response: Response) => Res | Promise<Res>;

/** Runs before the request is sent; may set headers and derive a context (go-kit's `ClientBefore`). */
export type ClientRequestFunc = (ctx: Context, headers: Headers) => Context | undefined;

/** Runs when a response arrived, before decoding; may derive a context (go-kit's `ClientAfter`). */
export type ClientResponseFunc = (ctx: Context, response: Response) => Context | undefined;

/** What a client finalizer learns about a finished call. */
export interface ClientFinalizerInfo {
  /** The URL called. */
  readonly url: string;
  /** The HTTP status, or 0 when no response arrived. */
  readonly status: number;
  /** The error the call ended with, if any. */
  readonly error: ServiceError | undefined;
}

/** Always runs once a client call is over (go-kit's `ClientFinalizer`). Must not throw. */
export type ClientFinalizerFunc = (ctx: Context, info: ClientFinalizerInfo) => void;

/** Options of {@link createHttpClient}. */
export interface HttpClientOptions {
  /** Functions run in order before the request is sent. */
  before?: readonly ClientRequestFunc[];
  /** Functions run in order once a response arrived. */
  after?: readonly ClientResponseFunc[];
  /** Run once per call when it is over. */
  finalizer?: ClientFinalizerFunc | readonly ClientFinalizerFunc[];
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /**
   * The header that carries the remaining deadline in ms (default `x-request-timeout`; `false` to not
   * send it). A budget longer than `MAX_TIMER_MS` (about 24.8 days) is sent as that.
   */
  timeoutHeader?: string | false;
  /**
   * The fetch implementation (default: the global `fetch`). It is called with `redirect: "manual"`:
   * a 3xx answer is an error (INTERNAL, its `location` only in the error's metadata), never followed.
   */
  fetch?: typeof fetch;
}

const ERROR_SNIPPET = 200;

const ignore = (): void => undefined;

/**
 * A `.` or `..` path segment, also percent-encoded (`%2e`, `.%2E`, ...): a URL removes it, so
 * `/users/${encodeURIComponent(id)}` with the id `..` would call `/` instead of a user.
 */
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i;

/**
 * What a WHATWG URL parser does not keep as it is in an http(s) path: `\` is a separator like `/`, and
 * tab, CR and LF are removed (so `/a/..\\admin` and `/a/.\t./admin` hold a `..` segment once parsed).
 */
const URL_REWRITTEN = /[\\\t\r\n]/;

function countSlashes(path: string): number {
  let n = 0;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 47) n++;
  return n;
}

/** A request path as an error message shows it: its first 200 characters, quoted. */
function shownPath(path: string): string {
  return JSON.stringify(path.slice(0, 200));
}

/**
 * Sets `url`'s path to `base`'s followed by the encoder's `path`, refusing a path a URL would not keep
 * under `base` as it is: one with a dot segment or a character the URL parser rewrites, and (checked
 * on what the parser made of it) one whose segments are not those written under `base`'s path.
 */
function appendPath(url: URL, base: URL, path: string): void {
  if (URL_REWRITTEN.test(path)) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `request path ${shownPath(path)} has a "\\", tab or line break, which a URL turns into a "/" or removes; percent-encode it`,
    );
  }
  if (DOT_SEGMENT.test(path)) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `request path ${shownPath(path)} has a "." or ".." segment, which a URL resolves away`,
    );
  }
  const prefix = base.pathname.replace(/\/$/, "");
  const joined = `${prefix}/${path.replace(/^\//, "")}`;
  url.pathname = joined;
  const parsed = url.pathname;
  if (!parsed.startsWith(`${prefix}/`) || countSlashes(parsed) !== countSlashes(joined)) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `request path ${shownPath(path)} does not stay a path under ${JSON.stringify(prefix || "/")} once parsed as a URL`,
    );
  }
}

/**
 * The 4xx statuses an upstream's error keeps (as an {@link HttpError}) when its code maps to another
 * status: they say something about the resource or the request's content, which a gateway's caller sent
 * too, so the gateway answers them as they are (a 413 stays 413, not RESOURCE_EXHAUSTED's 429). Any
 * other 4xx describes the hop between the gateway and the upstream (405 and its `Allow` name the
 * upstream's methods; 408, 411, 414, 417, 421, 426 and 431 the gateway's own request), and the error's
 * code gives the status instead (405 is UNIMPLEMENTED's 501).
 */
const END_TO_END_STATUSES: ReadonlySet<number> = new Set([
  409, 410, 412, 413, 415, 416, 422, 423, 424, 428, 451,
]);

/**
 * An upstream's error: an {@link HttpError} keeping the status when it is one of
 * {@link END_TO_END_STATUSES} the code would not give back, so a gateway throwing it on answers what the
 * upstream did; a plain {@link ServiceError} otherwise.
 */
function upstreamError(
  status: number,
  code: Code,
  message: string,
  options: ServiceErrorOptions,
): ServiceError {
  if (END_TO_END_STATUSES.has(status) && codeToHttpStatus[code] !== status) {
    return new HttpError(status, code, message, options);
  }
  const metadata = options.metadata;
  if (status === 405 && metadata instanceof Headers && metadata.has("allow")) {
    // The upstream's methods: a gateway throwing this on answers 501, where an Allow would mislead.
    return new ServiceError(code, message, {
      ...options,
      metadata: [...metadata].filter(([name]) => name !== "allow"),
    });
  }
  return new ServiceError(code, message, options);
}

/** The most of an error answer's body the client reads (the rest is not read, and the connection closed). */
const ERROR_BODY_LIMIT = 64 * 1024;

/** The default `bodyLimit` of {@link jsonResponseDecoder}: 16 MiB. */
export const DEFAULT_RESPONSE_LIMIT = 16 * 1024 * 1024;

/**
 * Reads a response body, at most `limit` bytes after any decompression fetch did: `undefined` when the
 * body is longer (what was not read is cancelled). A body that declares its length within the limit and
 * is not compressed is read in one go.
 */
export async function readResponse(response: Response, limit: number): Promise<Uint8Array | undefined> {
  const declared = response.headers.get("content-length");
  const encoded = response.headers.get("content-encoding");
  if (declared !== null && (encoded === null || encoded === "identity")) {
    if (Number(declared) > limit) {
      await response.body?.cancel().catch(ignore);
      return undefined;
    }
    return new Uint8Array(await response.arrayBuffer());
  }
  const body = response.body;
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(ignore);
      return undefined;
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
}

/**
 * Reads an error response: svckit's `{code, message, details}` body, else a code from the status. A
 * status of {@link END_TO_END_STATUSES} the code does not map back to gives an {@link HttpError} with
 * that status; a 3xx (never followed) is INTERNAL, its `location` only in the error's metadata.
 */
async function decodeError(ctx: Context, response: Response): Promise<ServiceError> {
  const status = response.status;
  if (status >= 300 && status < 400) {
    await response.body?.cancel().catch(ignore);
    // The location stays out of the message: it may be an internal URL with a token in its query, and a
    // gateway passes the message on (the metadata's `location` it drops). INTERNAL: the server answered
    // what the call cannot use, as with a 2xx body the decoder refuses, and retrying will not change it.
    const what = response.headers.has("location")
      ? "the server answered with a redirect, which the client does not follow"
      : "a 3xx answer carries no result";
    return new ServiceError(
      Code.INTERNAL,
      `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ""}: ${what}`,
      { metadata: response.headers },
    );
  }
  let text = "";
  try {
    // An error body past the limit is read no further: its status still says what happened.
    const bytes = await readResponse(response, ERROR_BODY_LIMIT);
    text = bytes === undefined ? "" : new TextDecoder().decode(bytes);
  } catch {
    // Cut off by the caller's deadline or cancel: that is the error. Otherwise the status says it.
    const aborted = ctx.abortReason;
    if (aborted !== undefined) return aborted;
  }
  const fallback = httpStatusToCode(response.status);
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === "object" && body !== null) {
      const { code, message, details } = body as { code?: unknown; message?: unknown; details?: unknown };
      const parsed = typeof code === "string" ? codeFromString(code) : undefined;
      if (parsed !== undefined && parsed !== Code.OK && typeof message === "string") {
        return upstreamError(status, parsed, message, {
          details: Array.isArray(details) ? (details as ErrorDetail[]) : undefined,
          metadata: response.headers,
        });
      }
      if (typeof (body as { error?: unknown }).error === "string") {
        return upstreamError(
          status,
          fallback === Code.OK ? Code.UNKNOWN : fallback,
          (body as { error: string }).error,
          { metadata: response.headers },
        );
      }
    }
  } catch {
    // Not JSON: fall through to the status.
  }
  const snippet = text.length > ERROR_SNIPPET ? `${text.slice(0, ERROR_SNIPPET)}…` : text;
  return upstreamError(
    status,
    fallback === Code.OK ? Code.UNKNOWN : fallback,
    `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}${snippet ? `: ${snippet}` : ""}`,
    { metadata: response.headers },
  );
}

/**
 * The error of a request (`phase` "request") or of reading its response body ("response") that failed
 * on the way: the context's own reason when it was cancelled or ran out of time; UNAVAILABLE for a
 * network failure (fetch's `TypeError` with the socket error as `cause`, a connection reset while the
 * body arrives); INTERNAL for a request fetch refused to make at all (a `TypeError` without a cause,
 * e.g. a GET with a body): that is a bug on this side, and retrying it cannot help.
 */
export function transportError(
  err: unknown,
  ctx: Context,
  phase: "request" | "response" = "request",
): ServiceError {
  const aborted = ctx.abortReason;
  if (aborted !== undefined) return aborted;
  if (err instanceof ServiceError) return err;
  const name = (err as { name?: unknown } | null)?.name;
  if (name === "AbortError" || name === "TimeoutError") return ServiceError.from(err);
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (phase === "request" && err instanceof TypeError && cause === undefined) {
    return new ServiceError(Code.INTERNAL, `request could not be made: ${err.message}`, { cause: err });
  }
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

/**
 * Makes an endpoint that calls a remote HTTP endpoint, go-kit style: `encode` turns the request into
 * an HTTP request, the response is decoded by `decode` when 2xx and turned back into a
 * {@link ServiceError} with the server's code otherwise (an {@link HttpError} keeping the status of one
 * of {@link END_TO_END_STATUSES} the code does not map back to). Redirects are not followed: a 3xx is an
 * INTERNAL error. The context's outgoing metadata become headers, its abort signal cancels the request
 * and its deadline is sent in the timeout header. Connection failures are UNAVAILABLE.
 *
 * @example
 * ```ts
 * const sum = createHttpClient<SumRequest, SumResponse>(
 *   "http://127.0.0.1:8080/sum", "POST", encodeJsonRequest, jsonResponseDecoder());
 * const { v } = await sum(createContext({ timeout: 1_000 }), { a: 1, b: 2 });
 * ```
 */
export function createHttpClient<Req, Res>(
  url: string | URL,
  method: string,
  encode: EncodeRequestFunc<Req>,
  decode: DecodeResponseFunc<Res>,
  options: HttpClientOptions = {},
): Endpoint<Req, Res> {
  const base = new URL(url);
  const before = options.before ?? [];
  const after = options.after ?? [];
  const finalizers =
    options.finalizer === undefined
      ? []
      : Array.isArray(options.finalizer)
        ? options.finalizer
        : [options.finalizer as ClientFinalizerFunc];
  const defaultHeaders = options.headers;
  const timeoutHeader =
    options.timeoutHeader === false ? undefined : (options.timeoutHeader ?? "x-request-timeout");
  const doFetch = options.fetch ?? globalThis.fetch;
  const upperMethod = method.toUpperCase();

  return async function httpClient(ctx: Context, request: Req): Promise<Res> {
    let status = 0;
    let error: ServiceError | undefined;
    let target = base.href;
    let call: CancelableContext | undefined;
    let response: Response | undefined;
    try {
      ctx.throwIfAborted();
      const encoded = await encode(ctx, request);
      let targetUrl = base;
      if (encoded.path !== undefined || encoded.query !== undefined) {
        targetUrl = new URL(base);
        if (encoded.path !== undefined) appendPath(targetUrl, base, encoded.path);
        if (encoded.query !== undefined) {
          const query =
            encoded.query instanceof URLSearchParams ? encoded.query : new URLSearchParams(encoded.query);
          for (const [k, v] of query) targetUrl.searchParams.append(k, v);
        }
      }
      target = targetUrl.href;
      const headers = new Headers(defaultHeaders);
      // A key of the call's metadata replaces the default header of that name (a signed token over a
      // static one) instead of joining it into one "a, b" value; its own repeats are all sent.
      for (const k of ctx.outgoingMetadata.keys()) headers.delete(k);
      for (const [k, v] of ctx.outgoingMetadata) headers.append(k, v);
      if (encoded.headers !== undefined)
        for (const k in encoded.headers) headers.set(k, encoded.headers[k] as string);
      const remaining = ctx.timeRemaining();
      // Capped so the value stays a plain run of digits a server accepts (`String(1e21)` is "1e+21").
      if (timeoutHeader !== undefined && remaining !== undefined)
        headers.set(timeoutHeader, String(remaining >= MAX_TIMER_MS ? MAX_TIMER_MS : Math.ceil(remaining)));
      for (const fn of before) ctx = fn(ctx, headers) ?? ctx;
      // fetch adds an abort listener to the signal it is given and drops it only when the request is
      // garbage-collected. Giving it a per-call child's signal keeps those listeners off the caller's
      // signal, where a long-lived context (e.g. `background`) would collect one per call; `release`
      // afterwards drops the child's timer and parent link without aborting anything.
      call = ctx.withCancel();
      try {
        response = await doFetch(target, {
          method: upperMethod,
          headers,
          body: encoded.body,
          signal: call.context.signal,
          // A redirect would silently change the call: a 303 turns a POST into a GET, a 307 to another
          // origin sends the body and headers there. A 3xx is an error instead (see decodeError).
          redirect: "manual",
        });
      } catch (err) {
        throw transportError(err, call.context);
      }
      status = response.status;
      for (const fn of after) ctx = fn(ctx, response) ?? ctx;
      if (status < 200 || status >= 300) throw await decodeError(ctx, response);
      return await decode(ctx, response);
    } catch (err) {
      error = ServiceError.from(err);
      // A body nobody will read (an `after` function or the decoder failed) would keep its connection
      // busy until garbage collection; give it back now.
      if (response !== undefined && !response.bodyUsed) response.body?.cancel().catch(ignore);
      throw error;
    } finally {
      call?.release();
      if (finalizers.length > 0) {
        const info: ClientFinalizerInfo = { url: target, status, error };
        for (const fn of finalizers) fn(ctx, info);
      }
    }
  };
}
