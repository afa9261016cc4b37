import type {
  Metadata as GrpcMetadata,
  Server,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  sendUnaryData,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { Metadata as GrpcMetadataClass } from "@grpc/grpc-js";
import {
  type CallInfo,
  type CancelSource,
  Code,
  type Context,
  createCancelableContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import { GrpcMetadataView, http2SafeMetadata } from "./metadata.js";
import type { GrpcMethod, GrpcService } from "./method.js";
import { toGrpcStatus, wellFormed } from "./status.js";

/** Turns a decoded request message into the endpoint's request. */
export type DecodeGrpcRequestFunc<Msg, Req> = (ctx: Context, message: Msg) => Req | Promise<Req>;

/** Turns the endpoint's response into a response message. */
export type EncodeGrpcResponseFunc<Res, Msg> = (ctx: Context, response: Res) => Msg | Promise<Msg>;

/** Runs before decoding with the incoming metadata; may derive a context (go-kit's `ServerBefore`). */
export type GrpcServerRequestFunc = (ctx: Context, metadata: GrpcMetadata) => Context | undefined;

/**
 * Runs after the endpoint succeeded; may add response headers and trailers (go-kit's `ServerAfter`).
 * Headers are sent only if some function added one. For a server-streaming method it runs once the
 * endpoint has returned its stream, before the first item is sent (headers must precede messages).
 */
export type GrpcServerResponseFunc = (
  ctx: Context,
  header: GrpcMetadata,
  trailer: GrpcMetadata,
) => Context | undefined;

/** What a server finalizer learns about a finished call. */
export interface GrpcServerFinalizerInfo {
  /** The method path, e.g. `/pb.Add/Sum`. */
  readonly method: string;
  /** The status code sent (OK on success). */
  readonly code: Code;
  /** The error the call ended with, if any. */
  readonly error: ServiceError | undefined;
}

/** Always runs once a call is over (go-kit's `ServerFinalizer`). Must not throw. */
export type GrpcServerFinalizerFunc = (ctx: Context, info: GrpcServerFinalizerInfo) => void;

/** Options of {@link createGrpcHandler} (also accepted by {@link bindService} as defaults for every method). */
export interface GrpcServerOptions {
  /** Functions run in order before decoding. */
  before?: readonly GrpcServerRequestFunc[];
  /** Functions run in order after the endpoint. */
  after?: readonly GrpcServerResponseFunc[];
  /** Told of every error; default: nothing. */
  errorHandler?: (ctx: Context, error: ServiceError) => void;
  /** Run once per call when it is over. */
  finalizer?: GrpcServerFinalizerFunc | readonly GrpcServerFinalizerFunc[];
}

/**
 * What {@link bindService} registers a service on: anything with grpc-js's `Server.addService`. A grpc-js
 * `Server` fits as it is, and so does another engine that takes grpc-js service definitions, such as
 * `@svckit/grpc-h2`'s `createGrpcServer()`, without a cast.
 *
 * @example
 * ```ts
 * const servers: GrpcServiceRegistrar[] = [new Server(), createGrpcServer()];
 * for (const server of servers) bindService(server, root.service("pb.Add"), { Sum: sum });
 * ```
 */
export interface GrpcServiceRegistrar {
  /** grpc-js's `Server.addService`: the service's method definitions and their handlers. */
  addService(service: ServiceDefinition, implementation: UntypedServiceImplementation): void;
}

/**
 * One method's server: an endpoint with its decoder and encoder (go-kit's `grpc.NewServer`).
 * Bind handlers to a grpc-js `Server` (or another {@link GrpcServiceRegistrar}) with {@link bindService}.
 */
export interface GrpcHandler<Msg = never, Out = unknown> {
  /** The endpoint served; it returns an `AsyncIterable` of responses for server-streaming methods. */
  readonly endpoint: Endpoint<never, unknown>;
  /** Request message → endpoint request. */
  readonly decode: DecodeGrpcRequestFunc<Msg, unknown>;
  /** Endpoint response (one stream item for streaming methods) → response message. */
  readonly encode: EncodeGrpcResponseFunc<never, Out>;
  /** The handler's own options. */
  readonly options: GrpcServerOptions;
}

/**
 * Makes a gRPC method server from an endpoint, a decoder and an encoder. For a server-streaming
 * method the endpoint returns an `AsyncIterable` and `encode` is applied to each item.
 *
 * @example
 * ```ts
 * const sum = createGrpcHandler(
 *   sumEndpoint,
 *   (_ctx, msg: { a: bigint; b: bigint }) => ({ a: Number(msg.a), b: Number(msg.b) }),
 *   (_ctx, res: { v: number }) => ({ v: BigInt(res.v), err: "" }),
 * );
 * bindService(server, root.service("pb.Add"), { Sum: sum });
 * ```
 */
export function createGrpcHandler<Req, Res, Msg, Out>(
  endpoint: Endpoint<Req, Res> | Endpoint<Req, AsyncIterable<Res>>,
  decode: DecodeGrpcRequestFunc<Msg, Req>,
  encode: EncodeGrpcResponseFunc<Res, Out>,
  options?: GrpcServerOptions,
): GrpcHandler<Msg, Out>;
/**
 * The same for a client-streaming or bidi method: the endpoint takes an `AsyncIterable` of requests
 * (each request message passed through `decode` as it arrives) and returns one response (client
 * streaming) or an `AsyncIterable` of them (bidi). The iterable throws INVALID_ARGUMENT for a malformed
 * message, and CANCELLED or DEADLINE_EXCEEDED when the call ends that way while it waits.
 *
 * @example
 * ```ts
 * const total: Endpoint<AsyncIterable<number>, number> = async (_ctx, values) => {
 *   let sum = 0;
 *   for await (const v of values) sum += v;
 *   return sum;
 * };
 * const handler = createGrpcHandler(total, (_ctx, msg: { v: bigint }) => Number(msg.v), (_ctx, sum: number) => ({ v: BigInt(sum) }));
 * ```
 */
export function createGrpcHandler<Req, Res, Msg, Out>(
  endpoint: Endpoint<AsyncIterable<Req>, Res> | Endpoint<AsyncIterable<Req>, AsyncIterable<Res>>,
  decode: DecodeGrpcRequestFunc<Msg, Req>,
  encode: EncodeGrpcResponseFunc<Res, Out>,
  options?: GrpcServerOptions,
): GrpcHandler<Msg, Out>;
export function createGrpcHandler<Req, Res, Msg, Out>(
  endpoint: Endpoint<Req, Res> | Endpoint<Req, AsyncIterable<Res>> | Endpoint<AsyncIterable<Req>, Res>,
  decode: DecodeGrpcRequestFunc<Msg, Req>,
  encode: EncodeGrpcResponseFunc<Res, Out>,
  options: GrpcServerOptions = {},
): GrpcHandler<Msg, Out> {
  return {
    endpoint: endpoint as Endpoint<never, unknown>,
    decode: decode as DecodeGrpcRequestFunc<Msg, unknown>,
    encode: encode as EncodeGrpcResponseFunc<never, Out>,
    options,
  };
}

type AnyCall =
  | ServerUnaryCall<Buffer, Buffer>
  | ServerWritableStream<Buffer, Buffer>
  | ServerReadableStream<Buffer, Buffer>
  | ServerDuplexStream<Buffer, Buffer>;

/** A call answered with one response: unary and client streaming. */
type OneReplyCall = ServerUnaryCall<Buffer, Buffer> | ServerReadableStream<Buffer, Buffer>;

/** A call whose responses go out as a stream: server streaming and bidi. */
type WritingCall = ServerWritableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>;

/**
 * How close to its deadline a cancelled call counts as having run out of time: grpc-js reports its own
 * deadline timer, and a client that gave up at its deadline (whose RST_STREAM can arrive a moment before
 * the server's deadline, which is computed from the rounded `grpc-timeout`), as a plain cancellation.
 */
const DEADLINE_SLACK_MS = 10;

function cancelReason(call: AnyCall): ServiceError {
  const deadline = finiteDeadline(call.getDeadline());
  return deadline !== undefined && Date.now() >= deadline - DEADLINE_SLACK_MS
    ? new ServiceError(Code.DEADLINE_EXCEEDED, "deadline exceeded")
    : new ServiceError(Code.CANCELLED, "call cancelled by the client");
}

/** Cancels a call's context when the client cancels, the deadline passes or the connection drops. */
const callCancelled: CancelSource<AnyCall> = {
  isCancelled: (call) => call.cancelled,
  subscribe(call, cancel) {
    const onCancel = (): void => cancel(cancelReason(call));
    // Every grpc-js call type is an EventEmitter that emits "cancelled"; their typed `once` overloads
    // do not unify, so the call is viewed as the EventEmitter it is.
    const emitter = call as unknown as NodeJS.EventEmitter;
    emitter.once("cancelled", onCancel);
    return () => emitter.off("cancelled", onCancel);
  },
};

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

function finiteDeadline(deadline: Date | number): number | undefined {
  const at = typeof deadline === "number" ? deadline : deadline.getTime();
  return Number.isFinite(at) ? at : undefined;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const passThrough = (value: Buffer): Buffer => value;

function list<T>(value: T | readonly T[] | undefined): readonly T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value as T];
}

/** Resolved per method at bind time, so a call does no option lookups. */
interface Plan {
  readonly method: GrpcMethod<unknown, unknown>;
  readonly endpoint: Endpoint<unknown, unknown>;
  readonly decode: DecodeGrpcRequestFunc<unknown, unknown>;
  readonly encode: EncodeGrpcResponseFunc<unknown, unknown>;
  readonly before: readonly GrpcServerRequestFunc[];
  readonly after: readonly GrpcServerResponseFunc[];
  readonly errorHandler: ((ctx: Context, error: ServiceError) => void) | undefined;
  readonly finalizers: readonly GrpcServerFinalizerFunc[];
  /** Put in every call's context under `callInfoKey`. */
  readonly callInfo: CallInfo;
}

function decodeMessage(plan: Plan, bytes: Buffer): unknown {
  try {
    return plan.method.requestType.decode(bytes);
  } catch (err) {
    if (err instanceof ServiceError && err.code === Code.INVALID_ARGUMENT) throw err;
    throw new ServiceError(Code.INVALID_ARGUMENT, `invalid request message for ${plan.method.path}`, {
      cause: err,
    });
  }
}

function encodeMessage(plan: Plan, message: unknown): Buffer {
  try {
    return asBuffer(plan.method.responseType.encode(message));
  } catch (err) {
    // The server built a response that does not fit its own schema: a server fault.
    throw new ServiceError(Code.INTERNAL, "response message could not be encoded", { cause: err });
  }
}

function startCall(plan: Plan, call: AnyCall): ReturnType<typeof createCancelableContext> {
  return createCancelableContext({
    callInfo: plan.callInfo,
    metadata: new GrpcMetadataView(call.metadata),
    deadline: finiteDeadline(call.getDeadline()),
    cancelSource: callCancelled,
    cancelTarget: call,
  });
}

/** Runs `before`, decodes the request; returns the context to use and the endpoint's request. */
async function prepare(
  plan: Plan,
  ctx: Context,
  call: ServerWritableStream<Buffer, Buffer>,
): Promise<[Context, unknown]> {
  for (const fn of plan.before) ctx = fn(ctx, call.metadata) ?? ctx;
  let request = plan.decode(ctx, decodeMessage(plan, call.request));
  if (isPromise(request)) request = await request;
  return [ctx, request];
}

function responseMetadata(plan: Plan, ctx: Context, call: AnyCall): [Context, GrpcMetadata | undefined] {
  if (plan.after.length === 0) return [ctx, undefined];
  const header = new GrpcMetadataClass();
  const trailer = new GrpcMetadataClass();
  for (const fn of plan.after) ctx = fn(ctx, header, trailer) ?? ctx;
  if (Object.keys(header.getMap()).length > 0) call.sendMetadata(http2SafeMetadata(header));
  return [ctx, http2SafeMetadata(trailer)];
}

function fail(plan: Plan, ctx: Context, err: unknown): ServiceError {
  const error = ServiceError.from(err);
  try {
    plan.errorHandler?.(ctx, error);
  } catch {
    // A throwing errorHandler must not keep the call from being answered and finalized.
  }
  return error;
}

function finish(plan: Plan, ctx: Context, error: ServiceError | undefined): void {
  if (plan.finalizers.length === 0) return;
  const info: GrpcServerFinalizerInfo = { method: plan.method.path, code: error?.code ?? Code.OK, error };
  for (const fn of plan.finalizers) fn(ctx, info);
}

/**
 * The unary handler. It stays synchronous as long as `before`, `decode`, `endpoint` and `encode` do:
 * a call costs the endpoint's promise and one `then`, no async frames and no tuples, so the per-call
 * work is what the endpoint itself does (see bench/RESULTS.md, gRPC).
 */
function unaryHandler(plan: Plan) {
  return function unary(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    const handle = startCall(plan, call);
    let ctx = handle.context;
    let request: unknown;
    try {
      for (const fn of plan.before) ctx = fn(ctx, call.metadata) ?? ctx;
      request = plan.decode(ctx, decodeMessage(plan, call.request));
    } catch (err) {
      unaryFailed(plan, handle, ctx, callback, err);
      return;
    }
    if (isPromise(request)) {
      const at = ctx;
      request.then(
        (value) => unaryInvoke(plan, handle, at, call, callback, value),
        (err: unknown) => unaryFailed(plan, handle, at, callback, err),
      );
    } else {
      unaryInvoke(plan, handle, ctx, call, callback, request);
    }
  };
}

type CallHandle = ReturnType<typeof createCancelableContext>;

function unaryInvoke(
  plan: Plan,
  handle: CallHandle,
  ctx: Context,
  call: ServerUnaryCall<Buffer, Buffer>,
  callback: sendUnaryData<Buffer>,
  request: unknown,
): void {
  let pending: unknown;
  try {
    pending = plan.endpoint(ctx, request);
  } catch (err) {
    // A plain-JS endpoint that throws instead of rejecting.
    unaryFailed(plan, handle, ctx, callback, err);
    return;
  }
  if (isPromise(pending)) {
    pending.then(
      (response) => unaryRespond(plan, handle, ctx, call, callback, response),
      (err: unknown) => unaryFailed(plan, handle, ctx, callback, err),
    );
  } else {
    unaryRespond(plan, handle, ctx, call, callback, pending);
  }
}

function unaryRespond(
  plan: Plan,
  handle: CallHandle,
  ctx: Context,
  call: OneReplyCall,
  callback: sendUnaryData<Buffer>,
  response: unknown,
): void {
  let message: unknown;
  try {
    message = plan.encode(ctx, response);
  } catch (err) {
    unaryFailed(plan, handle, ctx, callback, err);
    return;
  }
  if (isPromise(message)) {
    message.then(
      (value) => unarySend(plan, handle, ctx, call, callback, value),
      (err: unknown) => unaryFailed(plan, handle, ctx, callback, err),
    );
  } else {
    unarySend(plan, handle, ctx, call, callback, message);
  }
}

function unarySend(
  plan: Plan,
  handle: CallHandle,
  ctx: Context,
  call: OneReplyCall,
  callback: sendUnaryData<Buffer>,
  message: unknown,
): void {
  // The answer came after the deadline passed or the client cancelled (the endpoint did not watch its
  // context): the client has DEADLINE_EXCEEDED or CANCELLED, not this answer, and the hooks hear that.
  // (The context watches the call: a cancelled call makes its abortReason defined.)
  const over = ctx.abortReason;
  if (over !== undefined) {
    unaryFailed(plan, handle, ctx, callback, over);
    return;
  }
  let bytes: Buffer;
  let trailer: GrpcMetadata | undefined;
  try {
    bytes = encodeMessage(plan, message);
    if (plan.after.length > 0) [ctx, trailer] = responseMetadata(plan, ctx, call);
  } catch (err) {
    unaryFailed(plan, handle, ctx, callback, err);
    return;
  }
  callback(null, bytes, trailer);
  handle.release();
  unaryFinish(plan, ctx, undefined);
}

function unaryFailed(
  plan: Plan,
  handle: CallHandle,
  ctx: Context,
  callback: sendUnaryData<Buffer>,
  err: unknown,
): void {
  const error = fail(plan, ctx, err);
  try {
    callback(toGrpcStatus(error));
  } catch {
    // The engine refused the trailers (a header HTTP/2 does not allow): the status still goes, bare.
    try {
      callback({ code: error.code, details: wellFormed(error.message) });
    } catch {
      // Refused again: nothing more can be sent; the call is still released and finalized.
    }
  }
  handle.release();
  unaryFinish(plan, ctx, error);
}

function unaryFinish(plan: Plan, ctx: Context, error: ServiceError | undefined): void {
  try {
    finish(plan, ctx, error);
  } catch {
    // Only a throwing finalizer gets here; the call was already answered.
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof (value as { [Symbol.asyncIterator]?: unknown } | null)?.[Symbol.asyncIterator] === "function";
}

function waitDrain(call: WritingCall, ctx: Context): Promise<void> {
  return new Promise((resolve, reject) => {
    const signal = ctx.signal;
    const done = (): void => {
      call.off("drain", onDrain);
      signal.removeEventListener("abort", onAbort);
    };
    const onDrain = (): void => {
      done();
      resolve();
    };
    const onAbort = (): void => {
      done();
      reject(signal.reason);
    };
    if (signal.aborted) return reject(signal.reason);
    call.on("drain", onDrain);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The request messages of a client-streaming or bidi call, each decoded (bad bytes: INVALID_ARGUMENT)
 * and passed through the handler's decoder, as the endpoint's request. Iterable once. A stream cut off
 * by a cancellation or by the deadline throws CANCELLED (DEADLINE_EXCEEDED) instead of just ending.
 * A grpc-js client that cancels ends its side of the stream first and resets it a moment later, so
 * the server sees a complete stream and then the cancellation, which aborts `ctx.signal`.
 */
async function* requestStream(
  plan: Plan,
  ctx: Context,
  call: ServerReadableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
): AsyncGenerator<unknown, void, undefined> {
  try {
    // Not destroyed when the loop ends: for bidi the same stream still has the responses to send.
    for await (const bytes of call.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      ctx.throwIfAborted();
      let request = plan.decode(ctx, decodeMessage(plan, bytes));
      if (isPromise(request)) request = await request;
      yield request;
    }
  } catch (err) {
    // grpc-js destroys the stream when the call is cancelled or runs out of time: say which.
    if (call.cancelled) throw cancelReason(call);
    ctx.throwIfAborted();
    throw err;
  }
  if (call.cancelled) throw cancelReason(call);
  ctx.throwIfAborted();
}

/** Runs `before` for a call that streams its requests; returns the context and the request stream. */
function prepareStream(
  plan: Plan,
  ctx: Context,
  call: ServerReadableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
): [Context, AsyncIterable<unknown>] {
  for (const fn of plan.before) ctx = fn(ctx, call.metadata) ?? ctx;
  return [ctx, requestStream(plan, ctx, call)];
}

/**
 * Writes the endpoint's response stream, encoding each item, waiting for `drain` when the client
 * reads slowly; runs `after` first (headers must precede messages), ends with its trailer.
 */
async function sendStream(plan: Plan, ctx: Context, call: WritingCall, stream: unknown): Promise<Context> {
  if (!isAsyncIterable(stream)) {
    throw new ServiceError(Code.INTERNAL, "a server-streaming endpoint must return an AsyncIterable");
  }
  // Response headers go out with the first message, so `after` runs once the endpoint has returned
  // its stream, before the first item; the trailer it fills is sent when the stream ends well.
  let trailer: GrpcMetadata | undefined;
  [ctx, trailer] = responseMetadata(plan, ctx, call);
  for await (const item of stream) {
    ctx.throwIfAborted();
    let message = plan.encode(ctx, item);
    if (isPromise(message)) message = await message;
    if (!call.write(encodeMessage(plan, message))) await waitDrain(call, ctx);
  }
  // A stream that stopped because its deadline passed (or the call was cancelled) was cut short:
  // the caller gets DEADLINE_EXCEEDED (CANCELLED), not OK, whichever timer fired first.
  ctx.throwIfAborted();
  call.end(trailer);
  return ctx;
}

/** Ends a streaming call that failed: the status to the client unless it is gone, then the hooks. */
function streamFailed(plan: Plan, ctx: Context, call: AnyCall, err: unknown): ServiceError {
  const error = fail(plan, ctx, err);
  if (!call.cancelled) {
    // After the first message grpc-js sends the trailers later, from a `wantTrailers` listener, where a
    // throw is uncaught: toGrpcStatus leaves nothing node:http2 or grpc-js would refuse.
    try {
      call.emit("error", toGrpcStatus(error));
    } catch {
      // As unaryFailed: the trailers were refused, the status still goes without them.
      try {
        call.emit("error", { code: error.code, details: wellFormed(error.message) });
      } catch {
        // Refused again: nothing more can be sent.
      }
    }
  }
  return error;
}

/** Swallows what a finalizer threw after a streaming call was answered (as the unary path does). */
function ignoreFailure(failure: unknown): void {
  void failure;
}

/**
 * Server streaming and bidi: `requestOf` gives the endpoint's request (the decoded message, or the
 * stream of them), and the endpoint's AsyncIterable is sent item by item.
 */
function writingHandler<C extends WritingCall>(
  plan: Plan,
  requestOf: (plan: Plan, ctx: Context, call: C) => [Context, unknown] | Promise<[Context, unknown]>,
) {
  async function serve(call: C): Promise<void> {
    const handle = startCall(plan, call);
    let ctx = handle.context;
    let error: ServiceError | undefined;
    try {
      let request: unknown;
      [ctx, request] = await requestOf(plan, ctx, call);
      ctx = await sendStream(plan, ctx, call, await plan.endpoint(ctx, request));
    } catch (err) {
      error = streamFailed(plan, ctx, call, err);
    }
    handle.release();
    finish(plan, ctx, error);
  }
  return function streamingResponse(call: C): void {
    serve(call).catch(ignoreFailure);
  };
}

/**
 * Client streaming: the endpoint gets an AsyncIterable of requests and returns one response, which is
 * sent (and the call finished) as a unary call's.
 */
function clientStreamHandler(plan: Plan) {
  async function serve(
    call: ServerReadableStream<Buffer, Buffer>,
    callback: sendUnaryData<Buffer>,
  ): Promise<void> {
    const handle = startCall(plan, call);
    let ctx = handle.context;
    let response: unknown;
    try {
      let requests: AsyncIterable<unknown>;
      [ctx, requests] = prepareStream(plan, ctx, call);
      response = await plan.endpoint(ctx, requests);
    } catch (err) {
      unaryFailed(plan, handle, ctx, callback, err);
      return;
    }
    unaryRespond(plan, handle, ctx, call, callback, response);
  }
  return function clientStream(
    call: ServerReadableStream<Buffer, Buffer>,
    callback: sendUnaryData<Buffer>,
  ): void {
    serve(call, callback).catch(ignoreFailure);
  };
}

function handlerFor(plan: Plan, method: GrpcMethod<unknown, unknown>) {
  if (!method.responseStream) return method.requestStream ? clientStreamHandler(plan) : unaryHandler(plan);
  return method.requestStream
    ? writingHandler<ServerDuplexStream<Buffer, Buffer>>(plan, prepareStream)
    : writingHandler<ServerWritableStream<Buffer, Buffer>>(plan, prepare);
}

/**
 * Registers handlers for the methods of `service` on a grpc-js `Server`, or on any
 * {@link GrpcServiceRegistrar} (another engine with grpc-js's `addService`, e.g. `@svckit/grpc-h2`'s
 * `createGrpcServer()`), without @grpc/proto-loader: messages are decoded and encoded by the method
 * descriptors' own codecs (so a malformed request is INVALID_ARGUMENT, not grpc-js's INTERNAL). Methods
 * without a handler answer UNIMPLEMENTED, as do unknown methods. `options` are defaults that each
 * handler's own options extend (hooks run the service-wide ones first).
 *
 * @example
 * ```ts
 * const server = new Server(); // or createGrpcServer() from @svckit/grpc-h2
 * bindService(server, root.service("pb.Add"), { Sum: sumHandler, Concat: concatHandler });
 * server.bindAsync("127.0.0.1:8082", ServerCredentials.createInsecure(), () => {});
 * ```
 */
export function bindService(
  server: GrpcServiceRegistrar,
  service: GrpcService,
  handlers: Readonly<Record<string, GrpcHandler<never, unknown>>>,
  options?: GrpcServerOptions,
): void;
/**
 * The same, on a grpc-js `Server` (which the signature above already takes). This signature is kept
 * last so that `Parameters<typeof bindService>[0]` is still grpc-js's `Server`, as it was before
 * `bindService` took any {@link GrpcServiceRegistrar}.
 */
export function bindService(
  server: Server,
  service: GrpcService,
  handlers: Readonly<Record<string, GrpcHandler<never, unknown>>>,
  options?: GrpcServerOptions,
): void;
export function bindService(
  server: GrpcServiceRegistrar,
  service: GrpcService,
  handlers: Readonly<Record<string, GrpcHandler<never, unknown>>>,
  options: GrpcServerOptions = {},
): void {
  const definition: Record<string, ServiceDefinition[string]> = {};
  const implementation: UntypedServiceImplementation = {};
  for (const name of Object.keys(handlers)) {
    const method = service.methods[name] as GrpcMethod<unknown, unknown> | undefined;
    if (method === undefined) {
      throw new Error(
        `bindService: ${service.name} has no method ${name} (it has: ${Object.keys(service.methods).join(", ")})`,
      );
    }
    const handler = handlers[name] as GrpcHandler<never, unknown>;
    const own = handler.options;
    const plan: Plan = {
      method,
      endpoint: handler.endpoint as Endpoint<unknown, unknown>,
      decode: handler.decode as DecodeGrpcRequestFunc<unknown, unknown>,
      encode: handler.encode as unknown as EncodeGrpcResponseFunc<unknown, unknown>,
      before: [...(options.before ?? []), ...(own.before ?? [])],
      after: [...(options.after ?? []), ...(own.after ?? [])],
      errorHandler: own.errorHandler ?? options.errorHandler,
      finalizers: [...list(options.finalizer), ...list(own.finalizer)],
      callInfo: Object.freeze({ transport: "grpc", method: method.path }),
    };
    definition[name] = {
      path: method.path,
      requestStream: method.requestStream,
      responseStream: method.responseStream,
      requestSerialize: passThrough,
      requestDeserialize: passThrough,
      responseSerialize: passThrough,
      responseDeserialize: passThrough,
      originalName: name,
    };
    implementation[name] = handlerFor(plan, method);
  }
  server.addService(definition, implementation);
}
