/**
 * The svckit JSON-RPC 2.0 transport over HTTP, compatible with go-kit's `transport/http/jsonrpc`.
 * On the server, {@link createJsonRpcHandler} serves a table of methods, each an endpoint with a
 * params decoder and a result encoder made by {@link jsonRpcMethod} (go-kit's `EndpointCodecMap`),
 * as a `node:http` listener or an express handler, with batches and notifications. On the client,
 * {@link createJsonRpcClient} turns one remote method into an `Endpoint` over `fetch`. Errors travel
 * as `ServiceError`s both ways: a fixed table maps each `Code` to a JSON-RPC error code and back.
 *
 * @packageDocumentation
 */

export type {
  JsonRpcClientFinalizerFunc,
  JsonRpcClientFinalizerInfo,
  JsonRpcClientOptions,
  JsonRpcClientRequestFunc,
  JsonRpcClientResponseFunc,
  JsonRpcDecodeResultFunc,
  JsonRpcEncodeParamsFunc,
} from "./client.js";
export { createJsonRpcClient } from "./client.js";
export type { JsonRpcErrorObject, JsonRpcErrorOptions } from "./json-rpc-error.js";
export { codeToJsonRpcCode, JsonRpcError, JsonRpcErrorCode, jsonRpcCodeToCode } from "./json-rpc-error.js";
export type {
  JsonRpcCall,
  JsonRpcDecodeParamsFunc,
  JsonRpcEncodeResultFunc,
  JsonRpcErrorEncoder,
  JsonRpcErrorHandler,
  JsonRpcHandler,
  JsonRpcHttpRequest,
  JsonRpcId,
  JsonRpcMethod,
  JsonRpcMethodOptions,
  JsonRpcRequestFunc,
  JsonRpcResponseFunc,
  JsonRpcServerFinalizerFunc,
  JsonRpcServerFinalizerInfo,
  JsonRpcServerOptions,
} from "./server.js";
export { createJsonRpcHandler, defaultJsonRpcErrorEncoder, jsonRpcMethod } from "./server.js";
