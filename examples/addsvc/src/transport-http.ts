import { codeToHttpStatus } from "@svckit/endpoint";
import {
  createHttpClient,
  createHttpHandler,
  createRouter,
  type EncodeResponseFunc,
  type ErrorEncoder,
  encodeJsonRequest,
  encodeJsonResponse,
  type HttpClientOptions,
  HttpError,
  type HttpServerOptions,
  JSON_CONTENT_TYPE,
  jsonRequestDecoder,
  jsonResponseDecoder,
  type Router,
} from "@svckit/transport-http";
import type { AddEndpoints, ConcatResponse, SumResponse } from "./endpoints.js";
import {
  concatRequestFromJson,
  concatRequestToJson,
  concatResponseFromJson,
  concatResponseToJson,
  sumRequestFromJson,
  sumRequestToJson,
  sumResponseFromJson,
  sumResponseToJson,
} from "./json.js";

/**
 * go-kit addsvc's error body, `{"error":"<message>"}`, with the status of the error's code (an
 * `HttpError`'s own: 404, 405, 413, 415) and `content-type: application/json; charset=utf-8` (go-kit
 * sends none). The service's errors are `INVALID_ARGUMENT`, so 400 as in go-kit; a rate limit is 429
 * and an open breaker 503 (go-kit: 500). The error's metadata become headers (`allow`, `retry-after`).
 *
 * @example
 * ```ts
 * createRouter({ errorEncoder: addsvcErrorEncoder }).post("/sum", createHttpHandler(sum, decode, encode, {
 *   errorEncoder: addsvcErrorEncoder,
 * }));
 * ```
 */
export const addsvcErrorEncoder: ErrorEncoder = function addsvcErrorEncoder(_ctx, error, res) {
  const status = error instanceof HttpError ? error.status : codeToHttpStatus[error.code];
  const body = JSON.stringify({ error: error.message });
  const headers: (string | number)[] = [
    "content-type",
    JSON_CONTENT_TYPE,
    "content-length",
    Buffer.byteLength(body),
  ];
  for (const [key, value] of error.metadata) {
    if (key === "content-length" || key === "content-type" || key === "transfer-encoding") continue;
    headers.push(key, value);
  }
  res.writeHead(status, headers as string[]);
  res.end(body);
};

// Any content type is read as JSON, as go-kit does (so `curl -d` works); the body must still be JSON.
const parseBody = jsonRequestDecoder({ contentTypes: "any" });
const encodeSum: EncodeResponseFunc<SumResponse> = (ctx, response) =>
  encodeJsonResponse(ctx, sumResponseToJson(response));
const encodeConcat: EncodeResponseFunc<ConcatResponse> = (ctx, response) =>
  encodeJsonResponse(ctx, concatResponseToJson(response));

/**
 * Routes `POST /sum` and `POST /concat` to the endpoints, as go-kit's addsvc HTTP transport does:
 * JSON bodies `{"a":1,"b":2}` (field names in any case, missing = zero), answers `{"v":3}`, errors
 * `{"error":"..."}` with the statuses of {@link addsvcErrorEncoder}. Other paths answer 404, other
 * methods 405 with `Allow: POST`. `options` go to both handlers (`errorEncoder` defaults to
 * {@link addsvcErrorEncoder}).
 *
 * @example
 * ```ts
 * http.createServer(createAddsvcRouter(endpoints).handle).listen(8081, "127.0.0.1");
 * ```
 */
export function createAddsvcRouter(endpoints: AddEndpoints, options: HttpServerOptions = {}): Router {
  const handlerOptions: HttpServerOptions = { errorEncoder: addsvcErrorEncoder, ...options };
  return createRouter({ errorEncoder: handlerOptions.errorEncoder ?? addsvcErrorEncoder })
    .post(
      "/sum",
      createHttpHandler(
        endpoints.sum,
        async (ctx, request) => sumRequestFromJson(await parseBody(ctx, request)),
        encodeSum,
        handlerOptions,
      ),
    )
    .post(
      "/concat",
      createHttpHandler(
        endpoints.concat,
        async (ctx, request) => concatRequestFromJson(await parseBody(ctx, request)),
        encodeConcat,
        handlerOptions,
      ),
    );
}

/**
 * `http://host:port` from an address as go-kit's clients take it: `127.0.0.1:8081` gets `http://`,
 * a URL (`http://gateway/addsvc`) is kept, trailing slashes dropped.
 */
export function httpBaseUrl(instance: string): string {
  const url = instance.startsWith("http") ? instance : `http://${instance}`;
  return url.replace(/\/+$/, "");
}

/**
 * Client endpoints for an addsvc HTTP server (svckit's or go-kit's) at `instance`: `127.0.0.1:8081`
 * or a base URL. They return the same {@link AddEndpoints} as the server's; an error answer becomes a
 * `ServiceError` with its `error` text as the message and the code of its status (400
 * `INVALID_ARGUMENT`, 429 `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`). `options` are
 * `@svckit/transport-http`'s client options.
 *
 * @example
 * ```ts
 * const svc = createAddsvcHttpClient("127.0.0.1:8081");
 * await svc.sum(createContext({ timeout: 1_000 }), { a: 1n, b: 2n }); // { v: 3n }
 * ```
 */
export function createAddsvcHttpClient(instance: string, options: HttpClientOptions = {}): AddEndpoints {
  const base = httpBaseUrl(instance);
  const decodeJson = jsonResponseDecoder();
  return {
    sum: createHttpClient(
      `${base}/sum`,
      "POST",
      (ctx, request) => encodeJsonRequest(ctx, sumRequestToJson(request)),
      async (ctx, response) => sumResponseFromJson(await decodeJson(ctx, response)),
      options,
    ),
    concat: createHttpClient(
      `${base}/concat`,
      "POST",
      (ctx, request) => encodeJsonRequest(ctx, concatRequestToJson(request)),
      async (ctx, response) => concatResponseFromJson(await decodeJson(ctx, response)),
      options,
    ),
  };
}
