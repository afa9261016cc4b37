import { fileURLToPath } from "node:url";
import { Client, credentials } from "@grpc/grpc-js";
import { loadProtoSync, type ProtoRoot, type ServiceDescriptor } from "@svckit/codec-protobuf";
import { Code, type Context, type Endpoint, ServiceError } from "@svckit/endpoint";
import {
  bindService,
  createGrpcClient,
  createGrpcHandler,
  type GrpcClientOptions,
  type GrpcServerOptions,
  type GrpcServiceRegistrar,
} from "@svckit/transport-grpc";
import type { AddEndpoints, ConcatRequest, ConcatResponse, SumRequest, SumResponse } from "./endpoints.js";
import { AddServiceError } from "./service.js";

/**
 * The path of `addsvc.proto`, in `proto/` beside `src/` and `dist/`: the same relative URL finds it
 * from the sources (tests) and from the built files.
 */
export const ADDSVC_PROTO_PATH = fileURLToPath(new URL("../proto/addsvc.proto", import.meta.url));

/** The fully qualified name of the gRPC service, as in go-kit: `pb.Add`. */
export const ADD_SERVICE = "pb.Add";

/** `pb.SumRequest` as a JS object: `int64` is a `bigint`. */
export interface SumRequestMessage {
  a: bigint;
  b: bigint;
}

/** `pb.SumReply`: the sum, or the service's error message in `err` (empty on success). */
export interface SumReplyMessage {
  v: bigint;
  err: string;
}

/** `pb.ConcatRequest`. */
export interface ConcatRequestMessage {
  a: string;
  b: string;
}

/** `pb.ConcatReply`: the concatenation, or the service's error message in `err`. */
export interface ConcatReplyMessage {
  v: string;
  err: string;
}

let root: ProtoRoot | undefined;

/** `addsvc.proto`, loaded on first use and kept. */
export function addsvcProto(): ProtoRoot {
  root ??= loadProtoSync(ADDSVC_PROTO_PATH);
  return root;
}

function addService(): ServiceDescriptor {
  return addsvcProto().service(ADD_SERVICE);
}

/**
 * An endpoint whose service errors ({@link AddServiceError}) become a reply with `err` set and status
 * OK, as go-kit's gRPC transport sends them; every other error (rate limit, breaker, internal) stays
 * an error and is answered as a gRPC status.
 */
function replyingServiceErrors<Req, Res, Reply>(
  endpoint: Endpoint<Req, Res>,
  toReply: (response: Res) => Reply,
  failed: (message: string) => Reply,
): Endpoint<Req, Reply> {
  return async function withErrorsInReply(ctx: Context, request: Req): Promise<Reply> {
    try {
      return toReply(await endpoint(ctx, request));
    } catch (err) {
      if (err instanceof AddServiceError) return failed(err.message);
      throw err;
    }
  };
}

const asSumRequest = (_ctx: Context, message: SumRequestMessage): SumRequest => ({
  a: message.a,
  b: message.b,
});
const asConcatRequest = (_ctx: Context, message: ConcatRequestMessage): ConcatRequest => ({
  a: message.a,
  b: message.b,
});
const asIs = <T>(_ctx: Context, message: T): T => message;

/**
 * Serves the endpoints as `pb.Add` on a grpc-js `Server` (or another engine with its `addService`, such
 * as `@svckit/grpc-h2`'s): `Sum` and `Concat`. As in go-kit, the
 * service's errors travel in the reply's `err` field with status OK (`Sum(0, 0)` →
 * `{v: 0, err: "can't sum two zeroes"}`); a rate limit is `RESOURCE_EXHAUSTED`, an open breaker
 * `UNAVAILABLE` (go-kit: `UNKNOWN`). `options` go to both methods.
 *
 * @example
 * ```ts
 * const server = new Server();
 * bindAddsvc(server, endpoints);
 * server.bindAsync("127.0.0.1:8082", ServerCredentials.createInsecure(), () => {});
 * ```
 */
export function bindAddsvc(
  server: GrpcServiceRegistrar,
  endpoints: AddEndpoints,
  options: GrpcServerOptions = {},
): void {
  const sum = replyingServiceErrors(
    endpoints.sum,
    (response: SumResponse): SumReplyMessage => ({ v: response.v, err: "" }),
    (err): SumReplyMessage => ({ v: 0n, err }),
  );
  const concat = replyingServiceErrors(
    endpoints.concat,
    (response: ConcatResponse): ConcatReplyMessage => ({ v: response.v, err: "" }),
    (err): ConcatReplyMessage => ({ v: "", err }),
  );
  bindService(
    server,
    addService(),
    {
      Sum: createGrpcHandler(sum, asSumRequest, asIs<SumReplyMessage>),
      Concat: createGrpcHandler(concat, asConcatRequest, asIs<ConcatReplyMessage>),
    },
    options,
  );
}

/** A reply's `err` as the client's error: go-kit's `str2err`, with the service errors' code. */
function replyError(err: string): ServiceError {
  return new ServiceError(Code.INVALID_ARGUMENT, err);
}

/** The endpoints of a remote addsvc over gRPC, and `close` for their channel. */
export interface AddsvcGrpcClient extends AddEndpoints {
  /** Closes the channel; calls made afterwards fail. */
  close(): void;
}

/**
 * Client endpoints for a `pb.Add` server (svckit's or go-kit's) at `address`, sharing one channel. A
 * reply with a non-empty `err` becomes a `ServiceError` `INVALID_ARGUMENT` with that message, as over
 * HTTP and JSON-RPC; an error status keeps its code (`RESOURCE_EXHAUSTED`, `UNAVAILABLE`, ...).
 *
 * @example
 * ```ts
 * const svc = createAddsvcGrpcClient("127.0.0.1:8082");
 * await svc.sum(createContext({ timeout: 1_000 }), { a: 1n, b: 2n }); // { v: 3n }
 * svc.close();
 * ```
 */
export function createAddsvcGrpcClient(address: string, options: GrpcClientOptions = {}): AddsvcGrpcClient {
  const client = new Client(
    address,
    options.credentials ?? credentials.createInsecure(),
    options.channelOptions,
  );
  const service = addService();
  return {
    sum: createGrpcClient(
      client,
      service,
      "Sum",
      (_ctx, request: SumRequest): SumRequestMessage => ({ a: request.a, b: request.b }),
      (_ctx, reply: SumReplyMessage): SumResponse => {
        if (reply.err !== "") throw replyError(reply.err);
        return { v: reply.v };
      },
      options,
    ),
    concat: createGrpcClient(
      client,
      service,
      "Concat",
      (_ctx, request: ConcatRequest): ConcatRequestMessage => ({ a: request.a, b: request.b }),
      (_ctx, reply: ConcatReplyMessage): ConcatResponse => {
        if (reply.err !== "") throw replyError(reply.err);
        return { v: reply.v };
      },
      options,
    ),
    close: () => client.close(),
  };
}
