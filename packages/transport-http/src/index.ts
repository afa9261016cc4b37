/**
 * The svckit HTTP transport. On the server, {@link createHttpHandler} serves one endpoint with a
 * decoder and an encoder (go-kit's `NewServer`) as a `node:http` listener or an express route
 * handler, and {@link createRouter} dispatches method + path to handlers. On the client,
 * {@link createHttpClient} turns a remote HTTP endpoint into an `Endpoint` over `fetch`. JSON
 * helpers connect both to `@svckit/codec-json`. Errors travel as `ServiceError`s both ways.
 *
 * @packageDocumentation
 */

export type {
  ClientFinalizerFunc,
  ClientFinalizerInfo,
  ClientRequestFunc,
  ClientResponseFunc,
  DecodeResponseFunc,
  EncodeRequestFunc,
  HttpClientOptions,
  HttpClientRequest,
} from "./client.js";
export { createHttpClient } from "./client.js";
export { HttpError } from "./http-error.js";
export type { JsonRequestDecoderOptions, JsonResponseDecoderOptions } from "./json.js";
export { encodeJsonRequest, encodeJsonResponse, jsonRequestDecoder, jsonResponseDecoder } from "./json.js";
export type { Router, RouterOptions } from "./router.js";
export { createRouter } from "./router.js";
export type {
  DecodeRequestFunc,
  EncodeResponseFunc,
  ErrorEncoder,
  ErrorHandler,
  HttpHandler,
  HttpRequest,
  HttpResponseInit,
  HttpServerOptions,
  ServerFinalizerFunc,
  ServerFinalizerInfo,
  ServerRequestFunc,
  ServerResponseFunc,
} from "./server.js";
export {
  createHttpHandler,
  createJsonErrorEncoder,
  defaultErrorEncoder,
  JSON_CONTENT_TYPE,
  type JsonErrorEncoderOptions,
} from "./server.js";
