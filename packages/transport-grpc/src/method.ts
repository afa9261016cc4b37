/**
 * Encodes and decodes one message type. `@svckit/codec-protobuf`'s message types fit; so does any codec
 * with these two functions (protobuf-es, ts-proto, a hand-written one).
 */
export interface GrpcMessageCodec<T> {
  /** Message → bytes. */
  encode(message: T): Uint8Array;
  /** Bytes → message; throws (ideally a ServiceError INVALID_ARGUMENT) on bytes that are not one. */
  decode(bytes: Uint8Array): T;
}

/**
 * What the transport needs to know of a gRPC method. `@svckit/codec-protobuf`'s `MethodDescriptor`
 * fits as it is.
 */
export interface GrpcMethod<I = unknown, O = unknown> {
  /** The method name, e.g. `"Sum"`. */
  readonly name: string;
  /** The HTTP/2 path, e.g. `"/pb.Add/Sum"`. */
  readonly path: string;
  /** The request message codec. */
  readonly requestType: GrpcMessageCodec<I>;
  /** The response message codec. */
  readonly responseType: GrpcMessageCodec<O>;
  /** Whether the client sends a stream of messages. */
  readonly requestStream: boolean;
  /** Whether the server sends a stream of messages. */
  readonly responseStream: boolean;
}

/** A gRPC service: its full name and its methods by name. `@svckit/codec-protobuf`'s `ServiceDescriptor` fits. */
export interface GrpcService {
  /** The fully qualified service name, e.g. `"pb.Add"`. */
  readonly name: string;
  /** The methods, keyed by method name. */
  readonly methods: Readonly<Record<string, GrpcMethod<unknown, unknown>>>;
}
