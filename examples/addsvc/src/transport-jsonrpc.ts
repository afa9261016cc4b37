import {
  createJsonRpcClient,
  createJsonRpcHandler,
  type JsonRpcClientOptions,
  type JsonRpcHandler,
  type JsonRpcServerOptions,
  jsonRpcMethod,
} from "@svckit/transport-jsonrpc";
import type { AddEndpoints } from "./endpoints.js";
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
import { httpBaseUrl } from "./transport-http.js";

/**
 * Serves the endpoints as the JSON-RPC 2.0 methods `sum` and `concat`, on POST to any path, as
 * go-kit's addsvc does: `{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}` →
 * `{"jsonrpc":"2.0","result":{"v":3},"id":1}`. Compatible with go-kit's client, which sends
 * `"jsonrpc":""` and `{"A":..,"B":..}`: params match case-insensitively, a missing id is answered with
 * `"id":null`, any content type is read as JSON. Where go-kit drops the service's errors (answering
 * `{"v":0}`), they are error objects here: code -32003 and the exact message; bad params are -32602.
 * `options` are `@svckit/transport-jsonrpc`'s server options, over these defaults.
 *
 * @example
 * ```ts
 * http.createServer(createAddsvcJsonRpcHandler(endpoints)).listen(8084, "127.0.0.1");
 * ```
 */
export function createAddsvcJsonRpcHandler(
  endpoints: AddEndpoints,
  options: JsonRpcServerOptions = {},
): JsonRpcHandler {
  return createJsonRpcHandler(
    {
      sum: jsonRpcMethod(
        endpoints.sum,
        (_ctx, params) => sumRequestFromJson(params, "params"),
        (_ctx, response) => sumResponseToJson(response),
      ),
      concat: jsonRpcMethod(
        endpoints.concat,
        (_ctx, params) => concatRequestFromJson(params, "params"),
        (_ctx, response) => concatResponseToJson(response),
      ),
    },
    { answerNotifications: true, contentTypes: "any", ...options },
  );
}

/**
 * Client endpoints for an addsvc JSON-RPC server (svckit's or go-kit's) at `instance`
 * (`127.0.0.1:8084`, posted to at `/`, or a URL, posted to as is). A JSON-RPC error becomes a `ServiceError` with the
 * server's message: svckit's service errors are `INVALID_ARGUMENT`, a rate limit
 * `RESOURCE_EXHAUSTED`, an open breaker `UNAVAILABLE`. `options` are `@svckit/transport-jsonrpc`'s
 * client options.
 *
 * @example
 * ```ts
 * const svc = createAddsvcJsonRpcClient("127.0.0.1:8084");
 * await svc.concat(createContext({ timeout: 1_000 }), { a: "ab", b: "cd" }); // { v: "abcd" }
 * ```
 */
export function createAddsvcJsonRpcClient(
  instance: string,
  options: JsonRpcClientOptions = {},
): AddEndpoints {
  // go-kit's client posts to the URL as given; a bare host:port is posted to at "/".
  const url = instance.startsWith("http") ? instance : `${httpBaseUrl(instance)}/`;
  return {
    sum: createJsonRpcClient(
      url,
      "sum",
      (_ctx, request) => sumRequestToJson(request),
      (_ctx, result) => sumResponseFromJson(result),
      options,
    ),
    concat: createJsonRpcClient(
      url,
      "concat",
      (_ctx, request) => concatRequestToJson(request),
      (_ctx, result) => concatResponseFromJson(result),
      options,
    ),
  };
}
