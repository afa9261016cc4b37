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

/** `{"s": "..."}`; a missing `s` is an empty string, as Go's zero value. */
const stringRequest = z.object({ s: z.string().default("") });

/** Routes `POST /uppercase` and `POST /count` to the endpoints. */
export function createStringsvcRouter(endpoints: StringEndpoints, options?: HttpServerOptions): Router {
  const decode = jsonRequestDecoder<StringRequest>({ schema: stringRequest });
  return createRouter()
    .post("/uppercase", createHttpHandler(endpoints.uppercase, decode, encodeJsonResponse, options))
    .post("/count", createHttpHandler(endpoints.count, decode, encodeJsonResponse, options));
}

/** Client endpoints for a stringsvc at `baseUrl` (e.g. `http://127.0.0.1:8080`). */
export function createStringsvcClient(baseUrl: string): StringEndpoints {
  return {
    uppercase: createHttpClient<StringRequest, UppercaseResponse>(
      new URL("/uppercase", baseUrl),
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder<UppercaseResponse>(),
    ),
    count: createHttpClient<StringRequest, CountResponse>(
      new URL("/count", baseUrl),
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder<CountResponse>(),
    ),
  };
}
