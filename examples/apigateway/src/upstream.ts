// The gateway's client side: one svckit HTTP client endpoint per instance that passes a request's
// bytes through unchanged and hands back the instance's answer as bytes.
import {
  Code,
  type Context,
  type ContextKey,
  createContextKey,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import { createHttpClient, type HttpClientOptions, HttpError } from "@svckit/transport-http";

/** A call as the gateway forwards it: the method's path on the instance and the caller's body, untouched. */
export interface ProxyRequest {
  /** The path on the instance, e.g. `/sum`. */
  readonly path: string;
  /** The caller's `content-type`, sent on as is (none when the caller sent none). */
  readonly contentType: string | undefined;
  /** The caller's body, byte for byte. */
  readonly body: Uint8Array;
}

/** A successful (2xx) answer of an instance, as the gateway hands it back. */
export interface ProxyResponse {
  /** The instance's status. */
  readonly status: number;
  /** The instance's `content-type`, if it sent one. */
  readonly contentType: string | undefined;
  /** The instance's body, byte for byte. */
  readonly body: Uint8Array;
}

/** One endpoint per instance, as an `@svckit/sd` factory makes it. */
export type ProxyEndpoint = Endpoint<ProxyRequest, ProxyResponse>;

function encodeProxyRequest(_ctx: Context, request: ProxyRequest) {
  return {
    path: request.path,
    ...(request.contentType === undefined ? {} : { headers: { "content-type": request.contentType } }),
    body: request.body,
  };
}

async function decodeProxyResponse(ctx: Context, response: Response): Promise<ProxyResponse> {
  let body: Uint8Array;
  try {
    body = new Uint8Array(await response.arrayBuffer());
  } catch (err) {
    // The instance died (or the connection broke) after its headers and before the end of its body:
    // the call did not get an answer, like a refused connection, so another instance may be tried.
    const aborted = ctx.abortReason;
    if (aborted !== undefined) throw aborted;
    throw new ServiceError(Code.UNAVAILABLE, "request failed: the answer was cut off", { cause: err });
  }
  return { status: response.status, contentType: response.headers.get("content-type") ?? undefined, body };
}

/** Where one call notes the status the instance answered with (the client's errors do not keep it). */
const statusKey: ContextKey<{ status: number } | undefined> = createContextKey<
  { status: number } | undefined
>(undefined, { description: "apigateway.upstreamStatus" });

/**
 * A client endpoint for the instance at `baseUrl` (`http://127.0.0.1:8081`): POSTs the request's
 * body to `baseUrl + request.path` with the caller's content type, the context's outgoing metadata
 * (the forwarded identity) and its remaining deadline (`x-request-timeout`), and resolves with the
 * instance's 2xx answer byte for byte. A 4xx or 5xx answer is an `HttpError` with the instance's status,
 * code and message (`{"error": ...}` and svckit's `{"code", "message"}` bodies are both read; its
 * response headers are the error's metadata); a connection that fails or breaks is `UNAVAILABLE`, so
 * a retry can try another instance. A redirect is not followed: it fails INTERNAL (the gateway answers 500).
 *
 * @example
 * ```ts
 * const sum = createProxyClient("http://127.0.0.1:8081");
 * const res = await sum(createContext({ timeout: 1_000 }), {
 *   path: "/sum", contentType: "application/json", body: Buffer.from('{"a":1,"b":2}'),
 * }); // { status: 200, contentType: "application/json; charset=utf-8", body: <{"v":3}> }
 * ```
 */
export function createProxyClient(baseUrl: string, options: HttpClientOptions = {}): ProxyEndpoint {
  const client = createHttpClient(baseUrl, "POST", encodeProxyRequest, decodeProxyResponse, {
    ...options,
    after: [
      (ctx, response) => {
        const note = ctx.value(statusKey);
        if (note !== undefined) note.status = response.status;
        return undefined;
      },
      ...(options.after ?? []),
    ],
  });
  return async function proxyClient(ctx: Context, request: ProxyRequest): Promise<ProxyResponse> {
    const note = { status: 0 };
    try {
      return await client(ctx.with(statusKey, note), request);
    } catch (err) {
      // The instance answered with an error: keep its status (415, 413, 429, ...), which the code
      // alone would turn into another one (INVALID_ARGUMENT is 400), so the caller sees what it said.
      // Not a redirect (3xx): the client does not follow it, and its Location is not passed on, so the
      // caller gets the client's INTERNAL error (500) rather than a redirect to nowhere.
      // Nor a 405: the gateway always POSTs, so the instance's methods are its configuration's
      // concern, not the caller's (and a 405 needs an Allow the client does not pass on): 501.
      if (
        note.status >= 400 &&
        note.status !== 405 &&
        err instanceof ServiceError &&
        !(err instanceof HttpError)
      ) {
        throw new HttpError(note.status, err.code, err.message, {
          details: err.details,
          metadata: err.metadata,
          cause: err.cause,
        });
      }
      throw err;
    }
  };
}
