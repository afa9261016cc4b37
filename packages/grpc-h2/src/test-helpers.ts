// Shared by the tests of this package only: excluded from the build (see tsconfig.json), never exported.
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http2";
import { fileURLToPath } from "node:url";
import { Client, credentials, Server, ServerCredentials } from "@grpc/grpc-js";
import {
  SumReply,
  SumRequest,
  type UnaryOptions,
  type UnaryResult,
  unary,
} from "../../transport-grpc/src/test-helpers.js";
import { createGrpcServer } from "./index.js";

// The protos, their message types and the small async helpers are transport-grpc's test helpers: one
// copy for both packages (this engine is tested with the same messages and the same bindService).
export {
  aborted,
  type Collected,
  ConcatReply,
  ConcatRequest,
  CountRequest,
  collect,
  count,
  deferred,
  protos,
  rawBytes,
  SumReply,
  SumRequest,
  sleep,
  Tick,
  type UnaryOptions,
  type UnaryResult,
  unary,
} from "../../transport-grpc/src/test-helpers.js";

/** The absolute path of a file in this package's `src/testdata` (the TLS key and certificate). */
export function testdata(name: string): string {
  return fileURLToPath(new URL(`./testdata/${name}`, import.meta.url));
}

/** The grpc-js `Server` surface both engines offer (what bindService, health and app call). */
export type ServerLike = Pick<Server, "addService" | "bindAsync" | "tryShutdown" | "forceShutdown">;

/** Limits both engines take, in their own option names. */
export interface EngineOptions {
  maxReceiveMessageLength?: number;
  maxSendMessageLength?: number;
}

/** A server factory the conformance tests run against. */
export interface Engine {
  readonly name: "grpc-js" | "grpc-h2";
  create(options?: EngineOptions): ServerLike;
}

/** The two engines: grpc-js's own `Server` (the reference) and this package's. */
export const engines: readonly Engine[] = [
  {
    name: "grpc-js",
    create: (options = {}) =>
      new Server({
        ...(options.maxReceiveMessageLength === undefined
          ? {}
          : { "grpc.max_receive_message_length": options.maxReceiveMessageLength }),
        ...(options.maxSendMessageLength === undefined
          ? {}
          : { "grpc.max_send_message_length": options.maxSendMessageLength }),
      }),
  },
  {
    name: "grpc-h2",
    create: (options = {}) => createGrpcServer(options),
  },
];

const servers = new Set<ServerLike>();
const clients = new Set<Client>();

/** Binds `server` on 127.0.0.1 port 0; {@link closeAll} force-shuts it down. Returns `127.0.0.1:<port>`. */
export async function listen(server: ServerLike): Promise<{ address: string; port: number }> {
  servers.add(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) => {
      if (err === null) resolve(bound);
      else reject(err);
    });
  });
  return { address: `127.0.0.1:${port}`, port };
}

/** Creates a server of `engine`, lets `setup` add services, binds it. */
export async function startServer(
  engine: Engine,
  setup: (server: Server) => void,
  options?: EngineOptions,
): Promise<{ server: ServerLike; address: string; port: number }> {
  const server = engine.create(options);
  setup(server as Server);
  return { server, ...(await listen(server)) };
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

/** Calls `/pb.Add/Sum`. */
export function callSum(
  client: Client,
  request: SumRequest,
  options?: UnaryOptions,
): Promise<UnaryResult<SumReply>> {
  return unary(client, "/pb.Add/Sum", SumRequest, SumReply, request, options);
}

/** What a raw HTTP/2 request got back. */
export interface RawResponse {
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders | undefined;
  readonly data: Buffer;
  /** The RST_STREAM code the stream closed with (0: NO_ERROR or a clean end). */
  readonly rstCode: number;
  /** `grpc-status` from the trailers or a trailers-only response, as a number. */
  readonly grpcStatus: number | undefined;
  /** `grpc-message` as sent (still percent-encoded). */
  readonly grpcMessage: string | undefined;
}

/** Options of {@link rawCall}. */
export interface RawCallOptions {
  /** Headers replacing or adding to the defaults (POST, content-type application/grpc, te trailers). */
  headers?: OutgoingHttpHeaders;
  /** Body chunks, each written separately (default: none). */
  chunks?: readonly Uint8Array[];
  /** Whether to end the request after the chunks (default true). */
  end?: boolean;
}

const sessions = new Set<ClientHttp2Session>();

/** A raw HTTP/2 connection to `port`; {@link closeRawSessions} closes it. */
export function rawSession(port: number): ClientHttp2Session {
  const session = connect(`http://127.0.0.1:${port}`);
  session.on("error", () => undefined);
  sessions.add(session);
  return session;
}

/** Closes every raw session. */
export function closeRawSessions(): void {
  for (const session of sessions) session.destroy();
  sessions.clear();
}

/**
 * A raw gRPC POST on `session` to `path` (with `headers` on top), its stream errors ignored; left open
 * for the test to write, read, end or reset.
 */
export function openRaw(
  session: ClientHttp2Session,
  path: string,
  headers: OutgoingHttpHeaders = {},
): ClientHttp2Stream {
  const req = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    ...headers,
  });
  req.on("error", () => undefined);
  return req;
}

/** One raw request on `session` to `path`; resolves when the stream closed. */
export function rawCall(
  session: ClientHttp2Session,
  path: string,
  options: RawCallOptions = {},
): Promise<RawResponse> {
  return new Promise((resolve) => {
    const req = openRaw(session, path, { te: "trailers", ...options.headers });
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const data: Buffer[] = [];
    req.on("response", (h) => {
      headers = h;
    });
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.on("data", (chunk: Buffer) => data.push(chunk));
    req.on("close", () => {
      const status = trailers?.["grpc-status"] ?? headers["grpc-status"];
      const message = trailers?.["grpc-message"] ?? headers["grpc-message"];
      resolve({
        headers,
        trailers,
        data: Buffer.concat(data),
        rstCode: req.rstCode ?? 0,
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: message === undefined ? undefined : String(message),
      });
    });
    const chunks = options.chunks ?? [];
    const write = (i: number): void => {
      if (i === chunks.length) {
        if (options.end !== false) req.end();
        return;
      }
      req.write(chunks[i], () => write(i + 1));
    };
    write(0);
  });
}

/** A length-prefixed message. */
export function framed(message: Uint8Array, flag = 0): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flag;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}
