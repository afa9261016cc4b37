import {
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  constants as h2,
  type IncomingHttpHeaders,
  type SecureServerOptions,
  type ServerHttp2Session,
  type ServerHttp2Stream,
  type ServerOptions,
} from "node:http2";
import type { AddressInfo } from "node:net";
import type { ServerCredentials, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import { Code, clearLongTimeout, type LongTimeout, ServiceError, setLongTimeout } from "@svckit/endpoint";
import { type CallSettings, GrpcCall, type Handler, sendTrailersOnly, type UnaryCallback } from "./call.js";
import {
  isGrpcContentType,
  type MessageEncoding,
  parseGrpcTimeout,
  percentEncode,
  Status,
} from "./protocol.js";

/** Options of {@link createGrpcServer}. */
export interface GrpcH2ServerOptions {
  /**
   * The largest request message accepted, in bytes, before and after decompression (default 4 MiB,
   * as grpc-js; `Infinity` for no limit). A larger one ends the call with RESOURCE_EXHAUSTED.
   */
  maxReceiveMessageLength?: number;
  /** The largest response message sent, in bytes (default: no limit). A larger one ends the call with RESOURCE_EXHAUSTED. */
  maxSendMessageLength?: number;
  /**
   * Compress response messages with this encoding when the client's `grpc-accept-encoding` lists it
   * (default `"identity"`: never). Requests are decompressed whatever this says (identity, gzip, deflate).
   */
  compression?: MessageEncoding;
  /** With `compression`, messages shorter than this many bytes are sent uncompressed (default 1024). */
  compressionThreshold?: number;
  /**
   * How often each connection is pinged (HTTP/2 PING), in ms (default 2 h, gRPC's default; `Infinity`:
   * never). A connection whose ping is not answered within `keepaliveTimeoutMs` is closed and its
   * calls are cancelled.
   */
  keepaliveTimeMs?: number;
  /** How long to wait for a keepalive ping's answer, in ms (default 20 000; `Infinity`: for ever). */
  keepaliveTimeoutMs?: number;
  /** The most calls a client may have open on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; default: Node's). */
  maxConcurrentStreams?: number;
  /**
   * TLS: `node:http2` `createSecureServer` options (`key`, `cert`, `ca`, `requestCert`, ...). With
   * them every `bindAsync` serves TLS whatever credentials object it gets; without them, passing
   * secure grpc-js credentials fails the bind (they carry their keys in grpc-js internals).
   */
  tls?: SecureServerOptions;
  /** More `node:http2` server options (e.g. `maxSessionMemory`, `settings`), applied last. */
  http2?: ServerOptions;
}

/** What `bindAsync` calls back with: grpc-js's callback. */
export type BindCallback = (error: Error | null, port: number) => void;

/**
 * The grpc-js `Server` subset this engine serves: handlers are added with `addService` (what
 * `@svckit/transport-grpc`'s `bindService` and `@svckit/health`'s `addHealthService` call) or
 * `register`, and the lifecycle is `bindAsync` / `tryShutdown` / `forceShutdown` (what `@svckit/app`'s
 * `grpcServer` calls).
 */
export interface GrpcH2Server {
  /** Adds a service's methods (grpc-js semantics: methods without an implementation answer UNIMPLEMENTED). */
  addService(service: ServiceDefinition, implementation: UntypedServiceImplementation): void;
  /** Removes a service's methods. */
  removeService(service: ServiceDefinition): void;
  /**
   * Registers one method handler by path (`type`: `"unary"`, `"clientStream"`, `"serverStream"` or
   * `"bidi"`); false if the path already has one.
   */
  register(
    path: string,
    handler: (...args: never[]) => void,
    serialize: (value: never) => Uint8Array,
    deserialize: (bytes: Buffer) => unknown,
    type: string,
  ): boolean;
  /** Removes one method handler; false if there was none. */
  unregister(path: string): boolean;
  /**
   * Listens on `address` (`host:port`, `[ipv6]:port`, `dns:host:port` or `unix:/path`; port 0 picks
   * a free port) and calls back with the port bound. `credentials` are accepted for grpc-js
   * compatibility; TLS comes from the `tls` option.
   */
  bindAsync(address: string, credentials: ServerCredentials | undefined, callback: BindCallback): void;
  /**
   * Graceful shutdown: stops listening, sends GOAWAY on every connection so no new call starts, lets the
   * calls in flight finish, and calls back once every connection closed.
   */
  tryShutdown(callback: (error?: Error) => void): void;
  /** Closes every connection now: calls in flight are cancelled (their handlers see `cancelled`). */
  forceShutdown(): void;
  /** No-op, for code written for grpc-js < 1.10 (serving starts with `bindAsync`). */
  start(): void;
}

const DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024;
const DEFAULT_KEEPALIVE_TIME = 2 * 60 * 60 * 1000;
const DEFAULT_KEEPALIVE_TIMEOUT = 20_000;
const DEFAULT_COMPRESSION_THRESHOLD = 1024;
const ignore = (): void => undefined;

function invalid(message: string): ServiceError {
  return new ServiceError(Code.INVALID_ARGUMENT, `createGrpcServer: ${message}`);
}

function limit(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw invalid(`${name} must be a number >= 0 (or Infinity), got ${String(value)}`);
  }
  return value;
}

function duration(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value <= 0) {
    throw invalid(`${name} must be a number of ms > 0 (or Infinity), got ${String(value)}`);
  }
  return value;
}

function settingsOf(options: GrpcH2ServerOptions): CallSettings {
  const compression = options.compression ?? "identity";
  if (compression !== "identity" && compression !== "gzip" && compression !== "deflate") {
    throw invalid(`compression must be "identity", "gzip" or "deflate", got ${JSON.stringify(compression)}`);
  }
  return Object.freeze({
    maxReceiveMessageLength: limit(
      "maxReceiveMessageLength",
      options.maxReceiveMessageLength,
      DEFAULT_MAX_RECEIVE,
    ),
    maxSendMessageLength: limit(
      "maxSendMessageLength",
      options.maxSendMessageLength,
      Number.POSITIVE_INFINITY,
    ),
    compression,
    compressionThreshold: limit(
      "compressionThreshold",
      options.compressionThreshold,
      DEFAULT_COMPRESSION_THRESHOLD,
    ),
  });
}

/** Where `bindAsync` listens. */
type ListenTarget = { host: string; port: number } | { path: string };

/** Parses a grpc-js style address; `undefined` when it is not one. */
export function parseBindAddress(address: string): ListenTarget | undefined {
  if (address.startsWith("unix:")) {
    const path = address.slice(address.startsWith("unix://") ? 7 : 5);
    return path === "" ? undefined : { path };
  }
  const rest = address.startsWith("dns:") ? address.slice(address.startsWith("dns:///") ? 7 : 4) : address;
  let host: string;
  let port: string;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0 || rest.charAt(close + 1) !== ":") return undefined;
    host = rest.slice(1, close);
    port = rest.slice(close + 2);
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon < 0 || rest.indexOf(":") !== colon) return undefined;
    host = rest.slice(0, colon);
    port = rest.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65_535) return undefined;
  return { host: host === "" ? "0.0.0.0" : host, port: Number(port) };
}

function unimplemented(path: string, type: Handler["type"]): Handler {
  const status = { code: Status.UNIMPLEMENTED, details: `The server does not implement the method ${path}` };
  return {
    path,
    type,
    func: ((call: { emit(event: "error", status: unknown): void }, callback?: UnaryCallback) => {
      if (callback === undefined) call.emit("error", status);
      else callback(status);
    }) as Handler["func"],
    serialize: ((value: Uint8Array) => value) as Handler["serialize"],
    deserialize: (bytes) => bytes,
  };
}

/** Answers a request that is not gRPC with an HTTP error status (and the gRPC status a gRPC client would show). */
function rejectHttp(stream: ServerHttp2Stream, httpStatus: number, code: number, message: string): void {
  stream.respond(
    {
      ":status": httpStatus,
      "content-type": "application/grpc",
      "grpc-status": String(code),
      "grpc-message": percentEncode(message),
    },
    { endStream: true },
  );
  closeEarly(stream);
}

/** After a response that ended before the request did: RST_STREAM(NO_ERROR), so the client stops sending. */
function closeEarly(stream: ServerHttp2Stream): void {
  if (!stream.endAfterHeaders && !stream.closed) stream.close(h2.NGHTTP2_NO_ERROR);
}

class Server implements GrpcH2Server {
  readonly #settings: CallSettings;
  readonly #options: GrpcH2ServerOptions;
  readonly #keepaliveTime: number;
  readonly #keepaliveTimeout: number;
  readonly #handlers = new Map<string, Handler>();
  readonly #servers = new Set<Http2Server | Http2SecureServer>();
  readonly #sessions = new Set<ServerHttp2Session>();
  #shutdown = false;

  constructor(options: GrpcH2ServerOptions) {
    this.#settings = settingsOf(options);
    this.#options = options;
    this.#keepaliveTime = duration("keepaliveTimeMs", options.keepaliveTimeMs, DEFAULT_KEEPALIVE_TIME);
    this.#keepaliveTimeout = duration(
      "keepaliveTimeoutMs",
      options.keepaliveTimeoutMs,
      DEFAULT_KEEPALIVE_TIMEOUT,
    );
    const streams = options.maxConcurrentStreams;
    if (streams !== undefined && !(Number.isInteger(streams) && streams >= 0 && streams <= 2 ** 32 - 1)) {
      throw invalid(`maxConcurrentStreams must be an integer from 0 to 2^32-1, got ${String(streams)}`);
    }
  }

  addService(service: ServiceDefinition, implementation: UntypedServiceImplementation): void {
    if (
      service === null ||
      typeof service !== "object" ||
      implementation === null ||
      typeof implementation !== "object"
    ) {
      throw new TypeError("addService() requires two objects as arguments");
    }
    const names = Object.keys(service);
    if (names.length === 0) throw new Error("Cannot add an empty service to a server");
    const added: Handler[] = [];
    for (const name of names) {
      const method = service[name];
      if (method === undefined) continue;
      const type: Handler["type"] = method.requestStream
        ? method.responseStream
          ? "bidi"
          : "clientStream"
        : method.responseStream
          ? "serverStream"
          : "unary";
      let fn = implementation[name];
      if (fn === undefined && typeof method.originalName === "string")
        fn = implementation[method.originalName];
      const handler: Handler =
        fn === undefined
          ? unimplemented(method.path, type)
          : {
              path: method.path,
              type,
              func: fn.bind(implementation) as Handler["func"],
              serialize: method.responseSerialize as Handler["serialize"],
              deserialize: method.requestDeserialize,
            };
      if (this.#handlers.has(handler.path) || added.some((h) => h.path === handler.path)) {
        throw new Error(`Method handler for ${handler.path} already provided.`);
      }
      added.push(handler);
    }
    for (const handler of added) this.#handlers.set(handler.path, handler);
  }

  removeService(service: ServiceDefinition): void {
    if (service === null || typeof service !== "object")
      throw new TypeError("removeService() requires object as argument");
    for (const name of Object.keys(service)) {
      const method = service[name];
      if (method !== undefined) this.#handlers.delete(method.path);
    }
  }

  register(
    path: string,
    handler: (...args: never[]) => void,
    serialize: (value: never) => Uint8Array,
    deserialize: (bytes: Buffer) => unknown,
    type: string,
  ): boolean {
    if (type !== "unary" && type !== "serverStream" && type !== "clientStream" && type !== "bidi") {
      throw new Error(
        `register: ${path} has an unknown method type ${JSON.stringify(type)} (expected unary, clientStream, serverStream or bidi)`,
      );
    }
    if (this.#handlers.has(path)) return false;
    this.#handlers.set(path, { path, type, func: handler as Handler["func"], serialize, deserialize });
    return true;
  }

  unregister(path: string): boolean {
    return this.#handlers.delete(path);
  }

  start(): void {}

  bindAsync(address: string, credentials: ServerCredentials | undefined, callback: BindCallback): void {
    if (typeof callback !== "function") throw new TypeError("bindAsync: callback must be a function");
    const fail = (message: string, cause?: unknown): void => {
      const error = new ServiceError(Code.UNAVAILABLE, `bindAsync ${address}: ${message}`, { cause });
      process.nextTick(callback, error, 0);
    };
    if (this.#shutdown) {
      fail("the server is shut down");
      return;
    }
    const target = typeof address === "string" ? parseBindAddress(address) : undefined;
    if (target === undefined) {
      fail("not an address (expected host:port, [ipv6]:port, dns:host:port or unix:/path)");
      return;
    }
    const tls = this.#options.tls;
    const secure = (credentials as { _isSecure?: () => boolean } | undefined)?._isSecure?.() === true;
    if (secure && tls === undefined) {
      fail(
        "secure grpc-js credentials cannot be read; pass the key and certificate as createGrpcServer({ tls })",
      );
      return;
    }
    const common: ServerOptions = {
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
      maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER,
      ...(this.#options.maxConcurrentStreams === undefined
        ? {}
        : { settings: { maxConcurrentStreams: this.#options.maxConcurrentStreams } }),
      ...this.#options.http2,
    };
    const server = tls === undefined ? createServer(common) : createSecureServer({ ...common, ...tls });
    server.on("stream", this.#onStream);
    server.on("session", this.#onSession);
    const onListenError = (error: Error): void => {
      server.off("listening", onListening);
      fail(error.message, error);
    };
    const onListening = (): void => {
      server.off("error", onListenError);
      server.on("error", ignore);
      if (this.#shutdown) {
        server.close();
        fail("the server was shut down while binding");
        return;
      }
      this.#servers.add(server);
      const bound = server.address();
      callback(null, typeof bound === "object" && bound !== null ? (bound as AddressInfo).port : 0);
    };
    server.once("error", onListenError);
    server.once("listening", onListening);
    if ("path" in target) server.listen(target.path);
    else server.listen(target.port, target.host);
  }

  tryShutdown(callback: (error?: Error) => void): void {
    this.#shutdown = true;
    let pending = 1;
    const done = (): void => {
      if (--pending === 0) callback();
    };
    for (const server of this.#servers) {
      pending++;
      server.close(() => done());
    }
    this.#servers.clear();
    for (const session of this.#sessions) {
      pending++;
      if (session.closed || session.destroyed) queueMicrotask(done);
      else session.close(done);
    }
    done();
  }

  forceShutdown(): void {
    this.#shutdown = true;
    for (const server of this.#servers) server.close();
    this.#servers.clear();
    for (const session of this.#sessions) session.destroy(undefined, h2.NGHTTP2_CANCEL);
    this.#sessions.clear();
  }

  readonly #onSession = (session: ServerHttp2Session): void => {
    this.#sessions.add(session);
    session.on("error", ignore);
    const stopKeepalive =
      this.#keepaliveTime === Number.POSITIVE_INFINITY
        ? undefined
        : keepalive(session, this.#keepaliveTime, this.#keepaliveTimeout);
    session.once("close", () => {
      this.#sessions.delete(session);
      stopKeepalive?.();
    });
    if (this.#shutdown) session.close();
  };

  readonly #onStream = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    _flags: number,
    rawHeaders: readonly string[],
  ): void => {
    stream.on("error", ignore);
    const method = headers[":method"];
    if (method !== "POST") {
      rejectHttp(stream, 405, Status.INTERNAL, `gRPC requires POST, got ${String(method)}`);
      return;
    }
    const contentType = headers["content-type"];
    if (!isGrpcContentType(contentType)) {
      rejectHttp(
        stream,
        415,
        Status.INVALID_ARGUMENT,
        `invalid gRPC request content-type ${JSON.stringify(contentType ?? "")}`,
      );
      return;
    }
    const path = headers[":path"] as string;
    const handler = this.#handlers.get(path);
    if (handler === undefined) {
      sendTrailersOnly(stream, Status.UNIMPLEMENTED, `The server does not implement the method ${path}`);
      closeEarly(stream);
      return;
    }
    const timeout = headers["grpc-timeout"];
    let timeoutMs: number | undefined;
    if (timeout !== undefined) {
      timeoutMs = parseGrpcTimeout(String(timeout));
      if (timeoutMs === undefined) {
        sendTrailersOnly(stream, Status.INTERNAL, `Invalid grpc-timeout value "${timeout}"`);
        closeEarly(stream);
        return;
      }
    }
    new GrpcCall(stream, headers, handler, this.#settings, timeoutMs, rawHeaders);
  };
}

/** Pings `session` every `time` ms; closes it when an answer takes longer than `timeout` ms. Returns the stop function. */
function keepalive(session: ServerHttp2Session, time: number, timeout: number): () => void {
  let next: LongTimeout | undefined;
  let waiting: LongTimeout | undefined;
  // Long timers: a time or timeout past 24.8 days (or an Infinity timeout: never) is kept, not cut to 24.8 days.
  const schedule = (): void => {
    next = setLongTimeout(ping, time);
    next.unref?.();
  };
  const ping = (): void => {
    next = undefined;
    if (session.closed || session.destroyed) return;
    waiting = setLongTimeout(() => session.destroy(undefined, h2.NGHTTP2_CANCEL), timeout);
    waiting.unref?.();
    try {
      session.ping((error) => {
        clearLongTimeout(waiting);
        waiting = undefined;
        if (error === null) schedule();
      });
    } catch {
      // Too many unanswered pings: the timeout above closes the session.
    }
  };
  schedule();
  return () => {
    clearLongTimeout(next);
    clearLongTimeout(waiting);
  };
}

/**
 * Creates a gRPC server on `node:http2` that stands in for a grpc-js `Server`: same `addService`,
 * `bindAsync`, `tryShutdown` and `forceShutdown`, and handlers receive call objects with grpc-js's
 * surface (`request`, `metadata`, `getDeadline()`, `cancelled` and the `'cancelled'` event,
 * `sendMetadata`, the unary callback, a Readable of requests and `write`/`end`/`emit('error')` on
 * streams). So
 * `@svckit/transport-grpc`'s `bindService`, `@svckit/health`'s `addHealthService` and `@svckit/app`'s
 * `grpcServer` take it unchanged. Unary, server-streaming, client-streaming and bidi methods; a
 * client-streaming or bidi handler reads its requests from a Readable that holds the HTTP/2 stream back
 * (flow control) while the handler does not read.
 *
 * @example
 * ```ts
 * const server = createGrpcServer(); // instead of new grpc.Server()
 * bindService(server, root.service("pb.Add"), { Sum: sumHandler });
 * server.bindAsync("127.0.0.1:8082", ServerCredentials.createInsecure(), (err, port) => {});
 * ```
 */
export function createGrpcServer(options: GrpcH2ServerOptions = {}): GrpcH2Server {
  return new Server(options);
}
