/**
 * A gRPC server engine on `node:http2` that stands in for a grpc-js `Server`. {@link createGrpcServer}
 * returns an object with grpc-js's `addService` / `bindAsync` / `tryShutdown` / `forceShutdown`, so
 * `@svckit/transport-grpc`'s `bindService`, `@svckit/health`'s `addHealthService` and `@svckit/app`'s
 * `grpcServer` serve the same endpoints, codecs, metadata, deadlines, cancellation and error statuses
 * on it by changing one line (`createGrpcServer()` for `new grpc.Server()`). It speaks gRPC over HTTP/2
 * itself (length-prefixed messages, trailers and trailers-only responses, `grpc-timeout`, gzip/deflate,
 * message size limits, keepalive pings, GOAWAY on shutdown) with little per-call work: no
 * AbortController, no async generators, one write for a unary response. Unary, server-streaming,
 * client-streaming and bidi methods, with HTTP/2 flow control holding back a client that sends faster
 * than its handler reads.
 *
 * @packageDocumentation
 */

export type {
  AuthContext,
  GrpcCall,
  MetricsRecorder,
  ServerDuplexCall,
  ServerStreamCall,
  UnaryCallback,
} from "./call.js";
export type { MessageEncoding } from "./protocol.js";
export { isGrpcContentType, parseGrpcTimeout, percentEncode } from "./protocol.js";
export type { BindCallback, GrpcH2Server, GrpcH2ServerOptions } from "./server.js";
export { createGrpcServer } from "./server.js";
