// Span attribute names, as the OpenTelemetry semantic conventions spell them (stable HTTP semconv, RPC
// semconv). Kept as plain constants so the package needs no @opentelemetry/semantic-conventions.

/** HTTP request method, e.g. `"POST"` (`"_OTHER"` for a method the conventions do not know). */
export const ATTR_HTTP_REQUEST_METHOD = "http.request.method";
/** The method as received, when `http.request.method` is `"_OTHER"`. */
export const ATTR_HTTP_REQUEST_METHOD_ORIGINAL = "http.request.method_original";
/** The matched route template, e.g. `"/users/:id"`. */
export const ATTR_HTTP_ROUTE = "http.route";
/** The HTTP response status, e.g. `404`. */
export const ATTR_HTTP_RESPONSE_STATUS_CODE = "http.response.status_code";
/** The URL template of a client request, e.g. `"/users/:id"`. */
export const ATTR_URL_TEMPLATE = "url.template";
/** The full URL of a client request (credentials redacted). */
export const ATTR_URL_FULL = "url.full";
/** The URL scheme, e.g. `"https"`. */
export const ATTR_URL_SCHEME = "url.scheme";
/** The peer's host name or address. */
export const ATTR_SERVER_ADDRESS = "server.address";
/** The peer's port. */
export const ATTR_SERVER_PORT = "server.port";
/** The caller's `User-Agent`. */
export const ATTR_USER_AGENT_ORIGINAL = "user_agent.original";
/** The RPC system: `"grpc"`, or the svckit transport's name. */
export const ATTR_RPC_SYSTEM = "rpc.system";
/** The full RPC service name, e.g. `"pb.Add"`. */
export const ATTR_RPC_SERVICE = "rpc.service";
/** The RPC method name, e.g. `"Sum"`. */
export const ATTR_RPC_METHOD = "rpc.method";
/** The numeric gRPC status code. */
export const ATTR_RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code";
/** What kind of error ended the call: the svckit code name, e.g. `"UNAVAILABLE"`. */
export const ATTR_ERROR_TYPE = "error.type";
/** The svckit code name a failed call ended with, e.g. `"NOT_FOUND"` (set on every failure). */
export const ATTR_SVCKIT_CODE = "svckit.code";
