import {
  type CallOptions,
  type ChannelCredentials,
  Client,
  type ClientDuplexStream,
  type ClientOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  Metadata as GrpcMetadata,
  type ServiceError as GrpcServiceError,
  credentials as grpcCredentials,
  type StatusObject,
} from "@grpc/grpc-js";
import { Code, type Context, type Endpoint, MAX_TIMER_MS, onAbort, ServiceError } from "@svckit/endpoint";
import { outgoingGrpcMetadata } from "./metadata.js";
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

/**
 * The endpoint a client creator returns, with `close()`: for an address `target` it closes the grpc-js
 * `Client` the endpoint made (calls after it fail with UNAVAILABLE); for a `Client` you passed it does
 * nothing (that client is yours to close). Hand it to service discovery as the factory's `close`.
 *
 * @example
 * ```ts
 * const factory: Factory = (instance) => {
 *   const endpoint = createGrpcClient(instance.address, root.service("pb.Add"), "Sum", encode, decode);
 *   return { endpoint, close: endpoint.close };
 * };
 * ```
 */
export type GrpcClientEndpoint<Req, Res> = Endpoint<Req, Res> & {
  /** Closes the grpc-js `Client` made for an address target (once; later calls do nothing). */
  readonly close: () => void;
};

const passThrough = (value: Buffer): Buffer => value;

function doNothing(): void {}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The grpc-js client and the hooks of a client endpoint, resolved once at setup. */
function clientSetup(
  target: string | Client,
  options: GrpcClientOptions,
): {
  client: Client;
  close: () => void;
  before: readonly GrpcClientRequestFunc[];
  after: readonly GrpcClientResponseFunc[];
  finalizers: readonly GrpcClientFinalizerFunc[];
} {
  // A client made here is the endpoint's own: its close() closes it. A shared one is the caller's.
  const client =
    typeof target === "string"
      ? new Client(target, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions)
      : target;
  return {
    client,
    close: typeof target === "string" ? () => client.close() : doNothing,
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

/**
 * The method `creator` was asked for: `methodName` of `service`, checked to stream its request and its
 * response as `[requestStream, responseStream]` says; else an Error naming the creator, the method and
 * `misfit` (what is wrong with it and what to use instead).
 */
function methodOf<Msg, Out>(
  creator: string,
  service: GrpcService,
  methodName: string,
  [requestStream, responseStream]: readonly [boolean, boolean],
  misfit: string,
): GrpcMethod<Msg, Out> {
  const method = service.methods[methodName] as GrpcMethod<Msg, Out> | undefined;
  if (method === undefined) throw new Error(`${creator}: ${service.name} has no method ${methodName}`);
  if (method.requestStream !== requestStream || method.responseStream !== responseStream) {
    throw new Error(`${creator}: ${method.path} ${misfit}`);
  }
  return method;
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
  const bytes = encodeRequestMessage(method, await encode(ctx, request));
  const metadata = outgoingGrpcMetadata(ctx.outgoingMetadata);
  for (const fn of before) ctx = fn(ctx, metadata) ?? ctx;
  return { ctx, bytes, metadata };
}

/** A request message as bytes; one that does not fit its schema is INVALID_ARGUMENT. */
function encodeRequestMessage<Msg>(method: GrpcMethod<Msg, unknown>, message: Msg): Buffer {
  try {
    return asBuffer(method.requestType.encode(message));
  } catch (err) {
    throw new ServiceError(Code.INVALID_ARGUMENT, `request message for ${method.path} could not be encoded`, {
      cause: err,
    });
  }
}

/** The outgoing metadata of a call whose requests are streamed: `before` runs on them, nothing is encoded yet. */
function startStream(
  ctx: Context,
  before: readonly GrpcClientRequestFunc[],
): { ctx: Context; metadata: GrpcMetadata } {
  ctx.throwIfAborted();
  const metadata = outgoingGrpcMetadata(ctx.outgoingMetadata);
  for (const fn of before) ctx = fn(ctx, metadata) ?? ctx;
  return { ctx, metadata };
}

/**
 * The farthest deadline sent to the server: a grpc-js server truncates `grpc-timeout` to a 32-bit
 * millisecond count (`(value * unit) | 0`), so a longer one arrives as a deadline passed already (or a
 * garbage one), and grpc-js's client rounds a timeout of 10^8 ms or more up to whole seconds.
 */
const MAX_SENT_TIMEOUT_MS = MAX_TIMER_MS - 1_000;

/**
 * A call's deadline from its context's. A deadline more than {@link MAX_SENT_TIMEOUT_MS} (about 24.8
 * days) away is not sent: the call still ends at it, as the context's signal cancels it then.
 */
function callOptionsOf(ctx: Context): CallOptions {
  const callOptions: CallOptions = {};
  const deadline = ctx.deadline;
  if (deadline !== undefined && deadline - Date.now() <= MAX_SENT_TIMEOUT_MS) callOptions.deadline = deadline;
  return callOptions;
}

/**
 * What a grpc-js `make*Request` threw instead of starting the call: it throws "Channel has been shut
 * down" once its `Client` (or channel) is closed.
 */
function notStarted(path: string, err: unknown): ServiceError {
  return new ServiceError(Code.UNAVAILABLE, `channel closed: ${path} could not be started`, { cause: err });
}

/** What a call with one reply ended with. */
interface Reply {
  readonly reply: Buffer;
  readonly header: GrpcMetadata;
  readonly trailer: GrpcMetadata;
}

/**
 * Runs a call that has one reply (unary, client streaming): `start` makes it with the deadline and the
 * callback; `started` (client streaming) gets it and a `fail` that cancels it with that error instead.
 */
function awaitReply<C extends ClientUnaryCall | ClientWritableStream<Buffer>>(
  ctx: Context,
  path: string,
  start: (options: CallOptions, callback: (err: GrpcServiceError | null, value?: Buffer) => void) => C,
  started?: (call: C, fail: (error: unknown) => void) => void,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let header = new GrpcMetadata();
    let reply: Buffer | undefined;
    let failure: ServiceError | undefined;
    let grpcCall: C;
    try {
      grpcCall = start(callOptionsOf(ctx), (err, value) => {
        if (err) failure ??= ctx.abortReason ?? fromGrpcStatus(err);
        else reply = value;
      });
    } catch (err) {
      reject(notStarted(path, err));
      return;
    }
    grpcCall.on("metadata", (md: GrpcMetadata) => {
      header = md;
    });
    // onAbort watches a child of ctx: a long-lived context (e.g. `background`) shared by many
    // concurrent calls collects no listeners on its signal.
    const stopWatching = onAbort(ctx, () => grpcCall.cancel());
    grpcCall.on("status", (status: StatusObject) => {
      stopWatching();
      if (failure !== undefined) reject(failure);
      else if (reply === undefined) reject(fromGrpcStatus(status));
      else resolve({ reply, header, trailer: status.metadata });
    });
    started?.(grpcCall, (error) => {
      failure ??= ServiceError.from(error);
      grpcCall.cancel();
    });
  });
}

/**
 * Writes each of `requests`, encoded, to a client-streaming or bidi call, waiting for `drain` when the
 * server reads slowly, and half-closes the call at the end. Stops (ending the requests' iteration) once
 * the call is over. What the requests or `encode` throw goes to `fail`.
 */
function pumpRequests<Req, Msg>(
  ctx: Context,
  requests: AsyncIterable<Req> | Iterable<Req>,
  method: GrpcMethod<Msg, unknown>,
  encode: EncodeGrpcRequestFunc<Req, Msg>,
  call: ClientWritableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>,
  fail: (error: unknown) => void,
): void {
  let over = false;
  const iterator = toAsync(requests)[Symbol.asyncIterator]();
  call.on("status", () => {
    over = true;
    // Ends the iteration now, not when the next request comes: a source that waits (a queue, an
    // `events.on` iterator) settles its pending `next()` and runs its `finally`.
    stopIterating(iterator);
  });
  const pump = async (): Promise<void> => {
    for (;;) {
      const next = await iterator.next();
      if (next.done === true || over) return;
      const request = next.value;
      const bytes = encodeRequestMessage(method, await encode(ctx, request));
      if (over) return;
      if (!call.write(bytes)) {
        await new Promise<void>((resolve) => {
          const go = (): void => {
            call.off("drain", go);
            call.off("status", go);
            resolve();
          };
          call.on("drain", go);
          call.on("status", go);
        });
      }
    }
  };
  pump().then(
    () => {
      if (!over) call.end();
    },
    (error: unknown) => {
      stopIterating(iterator);
      fail(error);
    },
  );
}

/** Calls `iterator.return()` if it has one, ignoring what it throws or rejects with. */
function stopIterating(iterator: AsyncIterator<unknown>): void {
  try {
    iterator.return?.().catch(ignoreRejection);
  } catch {
    // A broken `return` changes nothing: the call is over.
  }
}

function ignoreRejection(): void {}

/** What a response stream needs of its client endpoint. */
interface StreamPlan<Res, Out> {
  readonly method: GrpcMethod<unknown, Out>;
  readonly decode: DecodeGrpcResponseFunc<Out, Res>;
  readonly after: readonly GrpcClientResponseFunc[];
  readonly finalizers: readonly GrpcClientFinalizerFunc[];
}

/**
 * Runs a call with one reply (unary, client streaming): `call` starts it and returns the context
 * `before` left and the reply; then `after` runs, the reply is decoded and the finalizers are told.
 */
async function replyCall<Res, Out>(
  ctx: Context,
  plan: StreamPlan<Res, Out>,
  call: (ctx: Context) => Promise<[Context, Reply]>,
): Promise<Res> {
  let error: ServiceError | undefined;
  try {
    let reply: Reply;
    [ctx, reply] = await call(ctx);
    for (const fn of plan.after) ctx = fn(ctx, reply.header, reply.trailer) ?? ctx;
    return await plan.decode(ctx, decodeReply(plan.method, reply.reply));
  } catch (err) {
    error = ServiceError.from(err);
    throw error;
  } finally {
    finished(plan.finalizers, plan.method.path, ctx, error);
  }
}

/**
 * The decoded responses of a server-streaming or bidi call that `start` makes when reading begins;
 * `started` (bidi) gets the call and a `fail` that cancels it with that error instead. Runs `after` and
 * the finalizers when the stream is over; a caller that stops reading cancels the call.
 */
async function* streamResponses<
  Res,
  Out,
  C extends ClientReadableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>,
>(
  ctx: Context,
  plan: StreamPlan<Res, Out>,
  start: (options: CallOptions) => C,
  started?: (call: C, fail: (error: unknown) => void) => void,
): AsyncGenerator<Res, void, undefined> {
  let grpcCall: C;
  try {
    grpcCall = start(callOptionsOf(ctx));
  } catch (err) {
    // The call never started: nothing to cancel or watch, the finalizers hear it once.
    const error = notStarted(plan.method.path, err);
    finished(plan.finalizers, plan.method.path, ctx, error);
    throw error;
  }
  let header = new GrpcMetadata();
  let status: StatusObject | undefined;
  let failure: ServiceError | undefined;
  const ended = new Promise<StatusObject>((resolve) => {
    grpcCall.on("status", (s: StatusObject) => {
      status = s;
      resolve(s);
    });
  });
  grpcCall.on("metadata", (md: GrpcMetadata) => {
    header = md;
  });
  // onAbort watches a child of ctx: a long-lived context (e.g. `background`) shared by many
  // concurrent calls collects no listeners on its signal.
  const stopWatching = onAbort(ctx, () => grpcCall.cancel());
  let error: ServiceError | undefined;
  let complete = false;
  try {
    // Inside the try: were `started` to throw, the call is still cancelled, unwatched and finalized.
    started?.(grpcCall, (error) => {
      failure ??= ServiceError.from(error);
      grpcCall.cancel();
    });
    try {
      for await (const reply of grpcCall as AsyncIterable<Buffer>) {
        let value: Res;
        try {
          value = await plan.decode(ctx, decodeReply(plan.method, reply));
        } catch (err) {
          // What `decode` threw is this side's failure (INTERNAL unless a ServiceError), not the call's.
          throw ServiceError.from(err);
        }
        yield value;
      }
    } catch (err) {
      if (err instanceof ServiceError) throw err;
      throw failure ?? ctx.abortReason ?? fromGrpcStatus(status ?? (err as GrpcServiceError));
    }
    const final = await ended;
    if (final.code !== Code.OK) throw failure ?? ctx.abortReason ?? fromGrpcStatus(final);
    for (const fn of plan.after) ctx = fn(ctx, header, final.metadata) ?? ctx;
    complete = true;
  } catch (err) {
    error = ServiceError.from(err);
    throw error;
  } finally {
    stopWatching();
    if (!complete) {
      // The caller stopped reading, or something failed on this side: the call is not needed any
      // more (cancelling a call that has ended already does nothing).
      grpcCall.cancel();
      error ??= new ServiceError(Code.CANCELLED, "the caller stopped reading the stream");
    }
    finished(plan.finalizers, plan.method.path, ctx, error);
  }
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
): GrpcClientEndpoint<Req, Res> {
  const method = methodOf<Msg, Out>(
    "createGrpcClient",
    service,
    methodName,
    [false, false],
    "is a streaming method; use createGrpcStreamClient, createGrpcClientStreamClient or createGrpcBidiClient",
  );
  const { client, close, before, after, finalizers } = clientSetup(target, options);
  const path = method.path;

  const plan: StreamPlan<Res, Out> = { method, decode, after, finalizers };

  return Object.assign(
    function grpcClient(ctx: Context, request: Req): Promise<Res> {
      return replyCall(ctx, plan, async (at) => {
        const started = await startRequest(at, request, method, encode, before);
        const reply = await awaitReply(started.ctx, path, (callOptions, callback) =>
          client.makeUnaryRequest(
            path,
            passThrough,
            passThrough,
            started.bytes,
            started.metadata,
            callOptions,
            callback,
          ),
        );
        return [started.ctx, reply];
      });
    },
    { close },
  );
}

/**
 * Options of {@link createGrpcStreamClient}, {@link createGrpcClientStreamClient} and
 * {@link createGrpcBidiClient}: those of {@link createGrpcClient}.
 */
export type GrpcStreamClientOptions = GrpcClientOptions;

/**
 * Makes an endpoint that calls one server-streaming gRPC method: it encodes the request and resolves
 * with an `AsyncIterable` of the decoded responses. The call starts when the caller starts reading and
 * yields each response as it arrives (the call is paused while the caller does not read). The iterable
 * throws a {@link ServiceError} when the call fails (also for a failure before the first response, such
 * as UNIMPLEMENTED); stopping early
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
): GrpcClientEndpoint<Req, AsyncIterable<Res>> {
  const method = methodOf<Msg, Out>(
    "createGrpcStreamClient",
    service,
    methodName,
    [false, true],
    "is not a server-streaming method (unary: use createGrpcClient)",
  );
  const { client, close, before, after, finalizers } = clientSetup(target, options);
  const path = method.path;

  const plan: StreamPlan<Res, Out> = { method, decode, after, finalizers };

  return Object.assign(
    async function grpcStreamClient(ctx: Context, request: Req): Promise<AsyncIterable<Res>> {
      try {
        const started = await startRequest(ctx, request, method, encode, before);
        return streamResponses(started.ctx, plan, (callOptions) =>
          client.makeServerStreamRequest(
            path,
            passThrough,
            passThrough,
            started.bytes,
            started.metadata,
            callOptions,
          ),
        );
      } catch (err) {
        const error = ServiceError.from(err);
        finished(finalizers, path, ctx, error);
        throw error;
      }
    },
    { close },
  );
}

/**
 * Makes an endpoint that calls one client-streaming gRPC method: it takes an `AsyncIterable` of
 * requests, encodes and sends each as it comes (waiting while the server reads slowly), half-closes the
 * call when the iterable ends, and resolves with the decoded reply. When the iterable (or `encode`)
 * throws, the call is cancelled and the endpoint rejects with that error; when the call ends first
 * (the server answered or failed, or the context was cancelled), the iteration is stopped. Options as
 * {@link createGrpcClient}.
 *
 * @example
 * ```ts
 * const total = createGrpcClientStreamClient(address, root.service("counter.Counter"), "Total",
 *   (_ctx, n: number) => ({ n: BigInt(n), payload: new Uint8Array() }),
 *   (_ctx, reply: { start: bigint }) => Number(reply.start));
 * await total(createContext({ timeout: 5_000 }), [1, 2, 3]); // 6 (an array is an iterable too)
 * ```
 */
export function createGrpcClientStreamClient<Req, Res, Msg, Out>(
  target: string | Client,
  service: GrpcService,
  methodName: string,
  encode: EncodeGrpcRequestFunc<Req, Msg>,
  decode: DecodeGrpcResponseFunc<Out, Res>,
  options: GrpcStreamClientOptions = {},
): GrpcClientEndpoint<AsyncIterable<Req> | Iterable<Req>, Res> {
  const method = methodOf<Msg, Out>(
    "createGrpcClientStreamClient",
    service,
    methodName,
    [true, false],
    "is not a client-streaming method",
  );
  const { client, close, before, after, finalizers } = clientSetup(target, options);
  const path = method.path;
  const plan: StreamPlan<Res, Out> = { method, decode, after, finalizers };
  return Object.assign(
    function grpcClientStream(ctx: Context, requests: AsyncIterable<Req> | Iterable<Req>): Promise<Res> {
      return replyCall(ctx, plan, async (at) => {
        const opened = startStream(at, before);
        const reply = await awaitReply(
          opened.ctx,
          path,
          (callOptions, callback) =>
            client.makeClientStreamRequest(
              path,
              passThrough,
              passThrough,
              opened.metadata,
              callOptions,
              callback,
            ),
          (call, fail) => pumpRequests(opened.ctx, requests, method, encode, call, fail),
        );
        return [opened.ctx, reply];
      });
    },
    { close },
  );
}

/**
 * Makes an endpoint that calls one bidi-streaming gRPC method: it takes an `AsyncIterable` of requests
 * and resolves with an `AsyncIterable` of the decoded responses. The call starts when the caller starts
 * reading the responses; requests are sent as they come, concurrently, and the call is half-closed when
 * the requests end. A request iterable (or `encode`) that throws cancels the call and the responses
 * throw that error; stopping reading the responses (`break`) cancels the call. Options as
 * {@link createGrpcClient}; `after` and the finalizers run when the response stream is over.
 *
 * @example
 * ```ts
 * const echo = createGrpcBidiClient(address, root.service("counter.Counter"), "Echo",
 *   (_ctx, n: number) => ({ n: BigInt(n), payload: new Uint8Array() }),
 *   (_ctx, tick: { n: bigint }) => Number(tick.n));
 * for await (const n of await echo(createContext(), [1, 2, 3])) console.log(n);
 * ```
 */
export function createGrpcBidiClient<Req, Res, Msg, Out>(
  target: string | Client,
  service: GrpcService,
  methodName: string,
  encode: EncodeGrpcRequestFunc<Req, Msg>,
  decode: DecodeGrpcResponseFunc<Out, Res>,
  options: GrpcStreamClientOptions = {},
): GrpcClientEndpoint<AsyncIterable<Req> | Iterable<Req>, AsyncIterable<Res>> {
  const method = methodOf<Msg, Out>(
    "createGrpcBidiClient",
    service,
    methodName,
    [true, true],
    "is not a bidi-streaming method",
  );
  const { client, close, before, after, finalizers } = clientSetup(target, options);
  const path = method.path;
  const plan: StreamPlan<Res, Out> = { method, decode, after, finalizers };
  return Object.assign(
    async function grpcBidi(
      ctx: Context,
      requests: AsyncIterable<Req> | Iterable<Req>,
    ): Promise<AsyncIterable<Res>> {
      try {
        const opened = startStream(ctx, before);
        return streamResponses(
          opened.ctx,
          plan,
          (callOptions) =>
            client.makeBidiStreamRequest(path, passThrough, passThrough, opened.metadata, callOptions),
          (call, fail) => pumpRequests(opened.ctx, requests, method, encode, call, fail),
        );
      } catch (err) {
        const error = ServiceError.from(err);
        finished(finalizers, path, ctx, error);
        throw error;
      }
    },
    { close },
  );
}

/** An iterable as an async one (an array of requests is fine too). */
function toAsync<T>(items: AsyncIterable<T> | Iterable<T>): AsyncIterable<T> {
  if (Symbol.asyncIterator in items) return items;
  return (async function* sync() {
    yield* items;
  })();
}
