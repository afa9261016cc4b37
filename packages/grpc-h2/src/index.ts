/**
 * svckit gRPC server engine on node:http2: the gRPC over HTTP/2 protocol without grpc-js on the server path.
 *
 * @packageDocumentation
 */

export {};
