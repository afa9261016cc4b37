import {
  createHttpClient,
  createHttpHandler,
  createRouter,
  encodeJsonRequest,
  encodeJsonResponse,
  type HttpServerOptions,
  jsonRequestDecoder,
  jsonResponseDecoder,
  type Router,
} from "@svckit/transport-http";
import { z } from "zod";
import type { CountResponse, StringEndpoints, StringRequest, UppercaseResponse } from "./endpoints.js";
import { markTransport } from "./middleware.js";

/** `{"s": "..."}`; a missing `s` is an empty string, as Go's zero value. */
const stringRequest = z.object({ s: z.string().default("") });

/**
 * Routes `POST /uppercase` and `POST /count` to the endpoints. `options` go to both handlers (a `before`
 * hook marking calls as `"HTTP"` for `transportKey` runs first).
 */
export function createStringsvcRouter(endpoints: StringEndpoints, options: HttpServerOptions = {}): Router {
  const decode = jsonRequestDecoder<StringRequest>({ schema: stringRequest });
  const handlerOptions: HttpServerOptions = {
    ...options,
    before: [markTransport("HTTP"), ...(options.before ?? [])],
  };
  return createRouter()
    .post("/uppercase", createHttpHandler(endpoints.uppercase, decode, encodeJsonResponse, handlerOptions))
    .post("/count", createHttpHandler(endpoints.count, decode, encodeJsonResponse, handlerOptions));
}

/**
 * Client endpoints for a stringsvc at `baseUrl` (e.g. `http://127.0.0.1:8080`, or
 * `http://gateway/stringsvc` for one mounted under a path: it calls `<baseUrl>/uppercase`).
 */
export function createStringsvcClient(baseUrl: string): StringEndpoints {
  // Keeps a path in baseUrl, which `new URL("/uppercase", baseUrl)` would replace.
  const at = (method: string): URL => {
    const url = new URL(baseUrl);
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/${method}`;
    return url;
  };
  return {
    uppercase: createHttpClient<StringRequest, UppercaseResponse>(
      at("uppercase"),
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder<UppercaseResponse>(),
    ),
    count: createHttpClient<StringRequest, CountResponse>(
      at("count"),
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder<CountResponse>(),
    ),
  };
}
