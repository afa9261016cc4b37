/**
 * Protobuf codecs for svckit, built on protobufjs and read from `.proto` files at run time: no
 * code generation and no `@grpc/proto-loader`. {@link loadProto}, {@link loadProtoSync} and
 * {@link parseProto} give a {@link ProtoRoot}; its {@link MessageType}s encode plain JS objects to
 * protobuf bytes and decode them back, and its {@link ServiceDescriptor}s list each method's gRPC
 * path, message types and streaming flags for a transport. 64-bit integers are `bigint`s with their
 * full range, enums are numbers, bytes are `Uint8Array`s and decoded messages have every field filled
 * in. Codecs are pure functions compiled once per message type; every bad input is a `ServiceError`
 * with `INVALID_ARGUMENT` and a message that says what was wrong.
 *
 * @packageDocumentation
 */

export type {
  LoadProtoOptions,
  MethodDescriptor,
  ProtoRoot,
  ServiceDescriptor,
} from "./load-proto.js";
export { loadProto, loadProtoSync, parseProto } from "./load-proto.js";
export type { MessageType } from "./message-type.js";
