// Shared by the tests of this package (and, by relative path, of the middleware packages that test
// over real gRPC): excluded from the build (see tsconfig.json), never exported.
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import {
  Client,
  type ClientReadableStream,
  credentials,
  type ServiceError as GrpcServiceError,
  Metadata,
  Server,
  ServerCredentials,
  type ServerOptions,
  type StatusObject,
} from "@grpc/grpc-js";
import { loadProtoSync, type ProtoRoot } from "@svckit/codec-protobuf";
import type { Endpoint } from "@svckit/endpoint";
import {
  bindService,
  createGrpcClient,
  createGrpcHandler,
  type GrpcMessageCodec,
  type GrpcService,
} from "@svckit/transport-grpc";

/** The absolute path of a file in `src/testdata`. */
export function testdata(name: string): string {
  return fileURLToPath(new URL(`./testdata/${name}`, import.meta.url));
}

/** go-kit addsvc's `pb.Add` and the streaming `counter.Counter`, loaded once. */
export const protos: ProtoRoot = loadProtoSync([testdata("addsvc.proto"), testdata("counter.proto")]);

export interface SumRequest {
  a: bigint;
  b: bigint;
}
export interface SumReply {
  v: bigint;
  err: string;
}
export interface ConcatRequest {
  a: string;
  b: string;
}
export interface ConcatReply {
  v: string;
  err: string;
}
export interface CountRequest {
  start: bigint;
  count: number;
  payloadSize: number;
}
export interface Tick {
  n: bigint;
  payload: Uint8Array;
}

export const SumRequest = protos.messageType<SumRequest>("pb.SumRequest");
export const SumReply = protos.messageType<SumReply>("pb.SumReply");
export const ConcatRequest = protos.messageType<ConcatRequest>("pb.ConcatRequest");
export const ConcatReply = protos.messageType<ConcatReply>("pb.ConcatReply");
export const CountRequest = protos.messageType<CountRequest>("counter.CountRequest");
export const Tick = protos.messageType<Tick>("counter.Tick");

/** A hand-written codec any structural GrpcMessageCodec may be: JSON text as bytes. */
export function jsonCodec<T>(): GrpcMessageCodec<T> {
  return {
    encode: (message) => Buffer.from(JSON.stringify(message)),
    decode: (bytes) => JSON.parse(Buffer.from(bytes).toString("utf8")) as T,
  };
}

/** pb.Add with Sum only, its messages as JSON text: no proto needed by a test that just wants a gRPC hop. */
export const jsonAdd: GrpcService = {
  name: "pb.Add",
  methods: {
    Sum: {
      name: "Sum",
      path: "/pb.Add/Sum",
      requestType: jsonCodec(),
      responseType: jsonCodec(),
      requestStream: false,
      responseStream: false,
    },
  },
};

/**
 * Serves `endpoint` as `/pb.Add/Sum` of {@link jsonAdd} (messages are the request and response as
 * they are) on a grpc-js server, and returns a svckit client endpoint that calls it over a real
 * connection. {@link closeAll} closes both.
 */
export async function jsonSumOverGrpc<Req, Res>(endpoint: Endpoint<Req, Res>): Promise<Endpoint<Req, Res>> {
  const { address } = await startServer((server) =>
    bindService(server, jsonAdd, {
      Sum: createGrpcHandler(
        endpoint,
        (_ctx, message: Req) => message,
        (_ctx, response: Res) => response,
      ),
    }),
  );
  return createGrpcClient(
    grpcClient(address),
    jsonAdd,
    "Sum",
    (_ctx, request: Req) => request,
    (_ctx, reply: Res) => reply,
  );
}

/** A running grpc-js server on 127.0.0.1 and its address. */
export interface TestServer {
  readonly server: Server;
  readonly port: number;
  /** `127.0.0.1:<port>` */
  readonly address: string;
}

const servers = new Set<Server>();
const clients = new Set<Client>();

/**
 * Starts a grpc-js `Server` on 127.0.0.1, port 0, after `setup` added its services.
 * {@link closeAll} force-shuts it down.
 */
export async function startServer(
  setup: (server: Server) => void,
  options?: ServerOptions,
): Promise<TestServer> {
  const server = new Server(options);
  setup(server);
  servers.add(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) => {
      if (err === null) resolve(bound);
      else reject(err);
    });
  });
  return { server, port, address: `127.0.0.1:${port}` };
}

/** A plain grpc-js client (insecure) to `address`; {@link closeAll} closes it. */
export function grpcClient(address: string, options?: ConstructorParameters<typeof Client>[2]): Client {
  const client = new Client(address, credentials.createInsecure(), options);
  clients.add(client);
  return client;
}

/** Closes every client and force-shuts down every server the helpers made. */
export function closeAll(): void {
  for (const client of clients) client.close();
  clients.clear();
  for (const server of servers) server.forceShutdown();
  servers.clear();
}

/** What a plain grpc-js unary call ended with. */
export interface UnaryResult<T> {
  readonly error: GrpcServiceError | null;
  readonly value: T | undefined;
  readonly header: Metadata | undefined;
  readonly status: StatusObject;
}

/** Options of {@link unary}. */
export interface UnaryOptions {
  metadata?: Metadata;
  deadline?: number;
  /** Called with the call once started (to cancel it). */
  onCall?: (call: { cancel(): void }) => void;
}

/**
 * Calls a unary method with a plain grpc-js client, serializing with `requestCodec` and deserializing
 * with `responseCodec`, and resolves once the status arrived (never rejects).
 */
export function unary<I, O>(
  client: Client,
  path: string,
  requestCodec: GrpcMessageCodec<I>,
  responseCodec: GrpcMessageCodec<O>,
  request: I,
  options: UnaryOptions = {},
): Promise<UnaryResult<O>> {
  return new Promise((resolve) => {
    let error: GrpcServiceError | null = null;
    let value: O | undefined;
    let header: Metadata | undefined;
    const call = client.makeUnaryRequest<I, O>(
      path,
      (message) => Buffer.from(requestCodec.encode(message)),
      (bytes) => responseCodec.decode(bytes),
      request,
      options.metadata ?? new Metadata(),
      options.deadline === undefined ? {} : { deadline: options.deadline },
      (err, reply) => {
        error = err;
        value = reply;
      },
    );
    call.on("metadata", (md: Metadata) => {
      header = md;
    });
    call.on("status", (status: StatusObject) => resolve({ error, value, header, status }));
    options.onCall?.(call);
  });
}

/** Identity serializers: for sending and receiving raw bytes with a plain grpc-js client. */
export const rawBytes: GrpcMessageCodec<Buffer> = {
  encode: (bytes) => bytes,
  decode: (bytes) => Buffer.from(bytes),
};

/** A port on 127.0.0.1 nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once `signal` aborts (at once if it already has). */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise<void>((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve function, for handing values out of callbacks. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Starts `/counter.Counter/Count` with a plain grpc-js client. */
export function count(
  client: Client,
  request: Partial<CountRequest>,
  options: { metadata?: Metadata; deadline?: number } = {},
): ClientReadableStream<Tick> {
  return client.makeServerStreamRequest(
    "/counter.Counter/Count",
    (m: Partial<CountRequest>) =>
      Buffer.from(CountRequest.encode({ start: 0n, count: 0, payloadSize: 0, ...m })),
    (b: Buffer) => Tick.decode(b),
    request,
    options.metadata ?? new Metadata(),
    options.deadline === undefined ? {} : { deadline: options.deadline },
  );
}

/** What a server stream ended with. */
export interface Collected {
  readonly items: Tick[];
  readonly status: StatusObject;
  readonly error: GrpcServiceError | undefined;
  readonly header: Metadata | undefined;
}

/** Reads a stream to its end: every item, the status, the error and the response header. */
export function collect(
  stream: ClientReadableStream<Tick>,
  onItem?: (tick: Tick) => void,
): Promise<Collected> {
  const items: Tick[] = [];
  let error: GrpcServiceError | undefined;
  let header: Metadata | undefined;
  stream.on("data", (tick: Tick) => {
    items.push(tick);
    onItem?.(tick);
  });
  stream.on("error", (err: GrpcServiceError) => {
    error = err;
  });
  stream.on("metadata", (md: Metadata) => {
    header = md;
  });
  return new Promise((resolve) => {
    // The status can come before the last items are read; wait for both.
    let ended = false;
    let last: StatusObject | undefined;
    const done = (): void => {
      if (last !== undefined && (ended || error !== undefined))
        resolve({ items, status: last, error, header });
    };
    stream.on("end", () => {
      ended = true;
      done();
    });
    stream.on("status", (s: StatusObject) => {
      last = s;
      setImmediate(done);
    });
  });
}
