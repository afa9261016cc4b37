import {
  type CallOptions,
  type ChannelCredentials,
  Client,
  type ClientOptions,
  Metadata as GrpcMetadata,
  type ServiceError as GrpcServiceError,
  credentials as grpcCredentials,
  type StatusObject,
} from "@grpc/grpc-js";
import { Code, type Context, type Endpoint, ServiceError } from "@svckit/endpoint";
import { toGrpcMetadata } from "./metadata.js";
import type { GrpcMethod, GrpcService } from "./method.js";
import { fromGrpcStatus } from "./status.js";

/** Turns the endpoint's request into a request message. */
export type EncodeGrpcRequestFunc<Req, Msg> = (ctx: Context, request: Req) => Msg | Promise<Msg>;

/** Turns a response message into the endpoint's response. */
export type DecodeGrpcResponseFunc<Msg, Res> = (ctx: Context, message: Msg) => Res | Promise<Res>;

/** Runs before the call with its outgoing metadata; may derive a context (go-kit's `ClientBefore`). */
export type GrpcClientRequestFunc = (ctx: Context, metadata: GrpcMetadata) => Context | undefined;

/** Runs once the call ended well, with the response headers and trailers (go-kit's `ClientAfter`). */
export type GrpcClientResponseFunc = (
  ctx: Context,
  header: GrpcMetadata,
  trailer: GrpcMetadata,
) => Context | undefined;

/** What a client finalizer learns about a finished call. */
export interface GrpcClientFinalizerInfo {
  /** The method path. */
  readonly method: string;
  /** The status code the call ended with. */
  readonly code: Code;
  /** The error, if any. */
  readonly error: ServiceError | undefined;
}

/** Always runs once a client call is over. Must not throw. */
export type GrpcClientFinalizerFunc = (ctx: Context, info: GrpcClientFinalizerInfo) => void;

/** Options of {@link createGrpcClient}. */
export interface GrpcClientOptions {
  /** Functions run in order before the call. */
  before?: readonly GrpcClientRequestFunc[];
  /** Functions run in order after a successful call. */
  after?: readonly GrpcClientResponseFunc[];
  /** Run once per call when it is over. */
  finalizer?: GrpcClientFinalizerFunc | readonly GrpcClientFinalizerFunc[];
  /** Credentials when `target` is an address (default: insecure). */
  credentials?: ChannelCredentials;
  /** grpc-js channel options when `target` is an address. */
  channelOptions?: ClientOptions;
}

const passThrough = (value: Buffer): Buffer => value;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The grpc-js client and the hooks of a client endpoint, resolved once at setup. */
function clientSetup(
  target: string | Client,
  options: GrpcClientOptions,
): {
  client: Client;
  before: readonly GrpcClientRequestFunc[];
  after: readonly GrpcClientResponseFunc[];
  finalizers: readonly GrpcClientFinalizerFunc[];
} {
  return {
    client:
      typeof target === "string"
        ? new Client(target, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions)
        : target,
    before: options.before ?? [],
    after: options.after ?? [],
    finalizers:
      options.finalizer === undefined
        ? []
        : Array.isArray(options.finalizer)
          ? options.finalizer
          : [options.finalizer as GrpcClientFinalizerFunc],
  };
}

/** Encodes the request (`encode`, then the method's codec) and runs `before` on the outgoing metadata. */
async function startRequest<Req, Msg>(
  ctx: Context,
  request: Req,
  method: GrpcMethod<Msg, unknown>,
  encode: EncodeGrpcRequestFunc<Req, Msg>,
  before: readonly GrpcClientRequestFunc[],
): Promise<{ ctx: Context; bytes: Buffer; metadata: GrpcMetadata }> {
  ctx.throwIfAborted();
  const message = await encode(ctx, request);
  let bytes: Buffer;
  try {
    bytes = asBuffer(method.requestType.encode(message));
  } catch (err) {
    throw new ServiceError(Code.INVALID_ARGUMENT, `request message for ${method.path} could not be encoded`, {
      cause: err,
    });
  }
  const metadata = toGrpcMetadata(ctx.outgoingMetadata);
  for (const fn of before) ctx = fn(ctx, metadata) ?? ctx;
  return { ctx, bytes, metadata };
}

/** A reply's bytes as a message; bytes that do not decode are the server's fault (INTERNAL). */
function decodeReply<Out>(method: GrpcMethod<unknown, Out>, reply: Buffer): Out {
  try {
    return method.responseType.decode(reply);
  } catch (err) {
    throw new ServiceError(Code.INTERNAL, `invalid response message from ${method.path}`, { cause: err });
  }
}

/** Tells the finalizers how a call ended. */
function finished(
  finalizers: readonly GrpcClientFinalizerFunc[],
  path: string,
  ctx: Context,
  error: ServiceError | undefined,
): void {
  if (finalizers.length === 0) return;
  const info: GrpcClientFinalizerInfo = { method: path, code: error?.code ?? Code.OK, error };
  for (const fn of finalizers) fn(ctx, info);
}

/**
 * Makes an endpoint that calls one unary gRPC method, go-kit style: `encode` turns the request into the
 * request message, the method's codec serializes it, and the response message goes through `decode`.
 * The context's outgoing metadata are sent, its deadline becomes the call's deadline and its abort
 * signal cancels the call. A failed call rejects with a {@link ServiceError} carrying the status code,
 * message, trailers and `grpc-status-details-bin` details.
 *
 * `target` is a grpc-js `Client` to share (one per backend; close it yourself) or an address, for
 * which the endpoint makes and keeps its own client.
 *
 * @example
 * ```ts
 * const sum = createGrpcClient("127.0.0.1:8082", root.service("pb.Add"), "Sum",
 *   (_ctx, req: { a: number; b: number }) => ({ a: BigInt(req.a), b: BigInt(req.b) }),
 *   (_ctx, reply: { v: bigint; err: string }) => ({ v: Number(reply.v) }));
 * await sum(createContext({ timeout: 1_000 }), { a: 1, b: 2 }); // { v: 3 }
 * ```
 */
export function createGrpcClient<Req, Res, Msg, Out>(
  target: string | Client,
  service: GrpcService,
  methodName: string,
  encode: EncodeGrpcRequestFunc<Req, Msg>,
  decode: DecodeGrpcResponseFunc<Out, Res>,
  options: GrpcClientOptions = {},
): Endpoint<Req, Res> {
  const method = service.methods[methodName] as GrpcMethod<Msg, Out> | undefined;
  if (method === undefined) {
    throw new Error(`createGrpcClient: ${service.name} has no method ${methodName}`);
  }
  if (method.requestStream || method.responseStream) {
    throw new Error(
      `createGrpcClient: ${method.path} is a streaming method; use createGrpcStreamClient for server streaming`,
    );
  }
  const { client, before, after, finalizers } = clientSetup(target, options);
  const path = method.path;

  function call(
    ctx: Context,
    bytes: Buffer,
    metadata: GrpcMetadata,
  ): Promise<{ reply: Buffer; header: GrpcMetadata; trailer: GrpcMetadata }> {
    return new Promise((resolve, reject) => {
      const callOptions: CallOptions = {};
      if (ctx.deadline !== undefined) callOptions.deadline = ctx.deadline;
      let header = new GrpcMetadata();
      let reply: Buffer | undefined;
      let failure: ServiceError | undefined;
      // Listening on a per-call child's signal keeps the abort listeners off the caller's signal, where a
      // long-lived context (e.g. `background`) would collect one per concurrent call; `release` afterwards
      // drops the child's timer and parent link without aborting anything.
      const child = ctx.withCancel();
      const signal = child.context.signal;
      const onAbort = (): void => grpcCall.cancel();
      const grpcCall = client.makeUnaryRequest(
        path,
        passThrough,
        passThrough,
        bytes,
        metadata,
        callOptions,
        (err: GrpcServiceError | null, value?: Buffer) => {
          if (err) failure = ctx.abortReason ?? fromGrpcStatus(err);
          else reply = value;
        },
      );
      grpcCall.on("metadata", (md: GrpcMetadata) => {
        header = md;
      });
      grpcCall.on("status", (status: StatusObject) => {
        signal.removeEventListener("abort", onAbort);
        child.release();
        if (failure !== undefined) reject(failure);
        else if (reply === undefined) reject(fromGrpcStatus(status));
        else resolve({ reply, header, trailer: status.metadata });
      });
      if (signal.aborted) grpcCall.cancel();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  return async function grpcClient(ctx: Context, request: Req): Promise<Res> {
    let error: ServiceError | undefined;
    try {
      const started = await startRequest(ctx, request, method, encode, before);
      ctx = started.ctx;
      const { reply, header, trailer } = await call(ctx, started.bytes, started.metadata);
      for (const fn of after) ctx = fn(ctx, header, trailer) ?? ctx;
      return await decode(ctx, decodeReply(method, reply));
    } catch (err) {
      error = ServiceError.from(err);
      throw error;
    } finally {
      finished(finalizers, path, ctx, error);
    }
  };
}

/** Options of {@link createGrpcStreamClient}: those of {@link createGrpcClient}. */
export type GrpcStreamClientOptions = GrpcClientOptions;

/**
 * Makes an endpoint that calls one server-streaming gRPC method: it encodes the request and resolves
 * with an `AsyncIterable` of the decoded responses. The call starts when the caller starts reading and
 * yields each response as it arrives (the call is paused while the caller does not read). The iterable throws a {@link ServiceError} when the
 * call fails (also for a failure before the first response, such as UNIMPLEMENTED); stopping early
 * (`break`) cancels the call. The context's deadline is the call's, its abort signal cancels the call,
 * and `after` and the finalizers run when the stream is over.
 *
 * @example
 * ```ts
 * const count = createGrpcStreamClient(address, root.service("counter.Counter"), "Count",
 *   (_ctx, n: number) => ({ start: 0n, count: n, payloadSize: 0 }),
 *   (_ctx, tick: { n: bigint }) => Number(tick.n));
 * for await (const n of await count(createContext({ timeout: 5_000 }), 3)) console.log(n); // 0, 1, 2
 * ```
 */
export function createGrpcStreamClient<Req, Res, Msg, Out>(
  target: string | Client,
  service: GrpcService,
  methodName: string,
  encode: EncodeGrpcRequestFunc<Req, Msg>,
  decode: DecodeGrpcResponseFunc<Out, Res>,
  options: GrpcStreamClientOptions = {},
): Endpoint<Req, AsyncIterable<Res>> {
  const found = service.methods[methodName] as GrpcMethod<Msg, Out> | undefined;
  if (found === undefined) {
    throw new Error(`createGrpcStreamClient: ${service.name} has no method ${methodName}`);
  }
  const method: GrpcMethod<Msg, Out> = found;
  if (method.requestStream || !method.responseStream) {
    throw new Error(
      `createGrpcStreamClient: ${method.path} is not a server-streaming method (unary: use createGrpcClient)`,
    );
  }
  const { client, before, after, finalizers } = clientSetup(target, options);
  const path = method.path;

  async function* responses(
    ctx: Context,
    bytes: Buffer,
    metadata: GrpcMetadata,
  ): AsyncGenerator<Res, void, undefined> {
    const callOptions: CallOptions = {};
    if (ctx.deadline !== undefined) callOptions.deadline = ctx.deadline;
    const grpcCall = client.makeServerStreamRequest(
      path,
      passThrough,
      passThrough,
      bytes,
      metadata,
      callOptions,
    );
    let header = new GrpcMetadata();
    let status: StatusObject | undefined;
    const ended = new Promise<StatusObject>((resolve) => {
      grpcCall.on("status", (s: StatusObject) => {
        status = s;
        resolve(s);
      });
    });
    grpcCall.on("metadata", (md: GrpcMetadata) => {
      header = md;
    });
    // As the unary client: a per-call child's signal, so a long-lived context collects no listeners.
    const child = ctx.withCancel();
    const signal = child.context.signal;
    const onAbort = (): void => grpcCall.cancel();
    if (signal.aborted) grpcCall.cancel();
    else signal.addEventListener("abort", onAbort, { once: true });
    let error: ServiceError | undefined;
    let complete = false;
    try {
      try {
        for await (const reply of grpcCall as AsyncIterable<Buffer>) {
          yield await decode(ctx, decodeReply(method, reply));
        }
      } catch (err) {
        if (err instanceof ServiceError) throw err;
        throw ctx.abortReason ?? fromGrpcStatus(status ?? (err as GrpcServiceError));
      }
      const final = await ended;
      if (final.code !== Code.OK) throw ctx.abortReason ?? fromGrpcStatus(final);
      for (const fn of after) ctx = fn(ctx, header, final.metadata) ?? ctx;
      complete = true;
    } catch (err) {
      error = ServiceError.from(err);
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      child.release();
      if (!complete && error === undefined) {
        // The caller stopped reading: the call is not needed any more.
        grpcCall.cancel();
        error = new ServiceError(Code.CANCELLED, "the caller stopped reading the stream");
      }
      finished(finalizers, path, ctx, error);
    }
  }

  return async function grpcStreamClient(ctx: Context, request: Req): Promise<AsyncIterable<Res>> {
    try {
      const started = await startRequest(ctx, request, method, encode, before);
      return responses(started.ctx, started.bytes, started.metadata);
    } catch (err) {
      const error = ServiceError.from(err);
      finished(finalizers, path, ctx, error);
      throw error;
    }
  };
}
