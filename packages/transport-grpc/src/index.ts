/**
 * The svckit gRPC transport on `@grpc/grpc-js`. {@link createGrpcHandler} makes a method server from an
 * endpoint, a decoder and an encoder (go-kit's `grpc.NewServer`), {@link bindService} registers a
 * service's handlers on a grpc-js `Server` (or another engine with its `addService`, such as
 * `@svckit/grpc-h2`) with the method descriptors' own codecs (no @grpc/proto-loader), and
 * {@link createGrpcClient} turns a remote unary method into an `Endpoint` ({@link createGrpcStreamClient},
 * {@link createGrpcClientStreamClient} and {@link createGrpcBidiClient} streaming ones).
 * Metadata, deadlines, cancellation and `ServiceError` codes (with `grpc-status-details-bin`) travel
 * both ways.
 *
 * @packageDocumentation
 */

export type {
  DecodeGrpcResponseFunc,
  EncodeGrpcRequestFunc,
  GrpcClientEndpoint,
  GrpcClientFinalizerFunc,
  GrpcClientFinalizerInfo,
  GrpcClientOptions,
  GrpcClientRequestFunc,
  GrpcClientResponseFunc,
  GrpcStreamClientOptions,
} from "./client.js";
export {
  createGrpcBidiClient,
  createGrpcClient,
  createGrpcClientStreamClient,
  createGrpcStreamClient,
} from "./client.js";
export { GrpcMetadataView, toGrpcMetadata } from "./metadata.js";
export type { GrpcMessageCodec, GrpcMethod, GrpcService } from "./method.js";
export type {
  DecodeGrpcRequestFunc,
  EncodeGrpcResponseFunc,
  GrpcHandler,
  GrpcServerFinalizerFunc,
  GrpcServerFinalizerInfo,
  GrpcServerOptions,
  GrpcServerRequestFunc,
  GrpcServerResponseFunc,
  GrpcServiceRegistrar,
} from "./server.js";
export { bindService, createGrpcHandler } from "./server.js";
export {
  decodeStatusDetails,
  encodeStatusDetails,
  fromGrpcStatus,
  STATUS_DETAILS_KEY,
  toGrpcStatus,
} from "./status.js";
