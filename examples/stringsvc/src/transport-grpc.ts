import { fileURLToPath } from "node:url";
import { Client, credentials, type Server } from "@grpc/grpc-js";
import { loadProtoSync, type ProtoRoot, type ServiceDescriptor } from "@svckit/codec-protobuf";
import type { Context } from "@svckit/endpoint";
import {
  bindService,
  createGrpcClient,
  createGrpcHandler,
  type GrpcClientOptions,
  type GrpcServerOptions,
} from "@svckit/transport-grpc";
import type { CountResponse, StringEndpoints, StringRequest, UppercaseResponse } from "./endpoints.js";
import { markTransport } from "./middleware.js";

/**
 * The path of `stringsvc.proto`. It sits in `proto/` beside `src/` and `dist/`, so the same relative
 * URL finds it from the sources (tests) and from the built `dist/*.js`.
 */
export const STRINGSVC_PROTO_PATH = fileURLToPath(new URL("../proto/stringsvc.proto", import.meta.url));

/** The fully qualified name of the gRPC service. */
export const STRING_SERVICE = "stringsvc.v1.StringService";

/** `stringsvc.v1.UppercaseRequest` and `stringsvc.v1.CountRequest` as JS objects. */
export interface StringMessage {
  s: string;
}

/** `stringsvc.v1.UppercaseReply` as a JS object. */
export interface UppercaseReply {
  v: string;
}

/** `stringsvc.v1.CountReply` as a JS object: `int64` is a `bigint`. */
export interface CountReply {
  v: bigint;
}

let root: ProtoRoot | undefined;

/** `stringsvc.proto`, loaded (synchronously) on first use and kept. */
export function stringsvcProto(): ProtoRoot {
  root ??= loadProtoSync(STRINGSVC_PROTO_PATH);
  return root;
}

function stringService(): ServiceDescriptor {
  return stringsvcProto().service(STRING_SERVICE);
}

// The codecs between the endpoints' types and the messages; a missing `s` decodes as "", as over HTTP.
const toRequest = (_ctx: Context, message: StringMessage): StringRequest => ({ s: message.s });
const toMessage = (_ctx: Context, request: StringRequest): StringMessage => ({ s: request.s });
const toUppercaseReply = (_ctx: Context, response: UppercaseResponse): UppercaseReply => ({ v: response.v });
const fromUppercaseReply = (_ctx: Context, reply: UppercaseReply): UppercaseResponse => ({ v: reply.v });
const toCountReply = (_ctx: Context, response: CountResponse): CountReply => ({ v: BigInt(response.v) });
const fromCountReply = (_ctx: Context, reply: CountReply): CountResponse => ({ v: Number(reply.v) });

/**
 * Serves the endpoints as `stringsvc.v1.StringService` on a grpc-js `Server`: `Uppercase` and `Count`.
 * Errors are gRPC statuses with the `ServiceError`'s code and message; `options` go to every method
 * (a `before` hook marking calls as `"gRPC"` for {@link transportKey} runs first).
 *
 * @example
 * ```ts
 * const server = new Server();
 * bindStringsvc(server, makeEndpoints(createStringService()));
 * server.bindAsync("127.0.0.1:8082", ServerCredentials.createInsecure(), () => {});
 * ```
 */
export function bindStringsvc(
  server: Server,
  endpoints: StringEndpoints,
  options: GrpcServerOptions = {},
): void {
  bindService(
    server,
    stringService(),
    {
      Uppercase: createGrpcHandler(endpoints.uppercase, toRequest, toUppercaseReply),
      Count: createGrpcHandler(endpoints.count, toRequest, toCountReply),
    },
    { ...options, before: [markTransport("gRPC"), ...(options.before ?? [])] },
  );
}

/** The endpoints of a remote stringsvc over gRPC, and `close` for their channel. */
export interface StringsvcGrpcClient extends StringEndpoints {
  /** Closes the channel; calls made afterwards fail. */
  close(): void;
}

/**
 * Client endpoints for a stringsvc gRPC server at `address` (e.g. `127.0.0.1:8082`), sharing one
 * channel. The context's deadline becomes the call's deadline and its signal cancels the call; an error
 * status comes back as a `ServiceError` with the same code and message.
 *
 * @example
 * ```ts
 * const svc = createStringsvcGrpcClient("127.0.0.1:8082");
 * await svc.uppercase(createContext({ timeout: 1_000 }), { s: "hello" }); // { v: "HELLO" }
 * svc.close();
 * ```
 */
export function createStringsvcGrpcClient(
  address: string,
  options: GrpcClientOptions = {},
): StringsvcGrpcClient {
  const client = new Client(
    address,
    options.credentials ?? credentials.createInsecure(),
    options.channelOptions,
  );
  const service = stringService();
  return {
    uppercase: createGrpcClient(client, service, "Uppercase", toMessage, fromUppercaseReply, options),
    count: createGrpcClient(client, service, "Count", toMessage, fromCountReply, options),
    close: () => client.close(),
  };
}
