// One gRPC call on one HTTP/2 stream: reading the request message (or, for client streaming and bidi,
// feeding the stream of them to the handler with backpressure), running the grpc-js-style handler, and
// answering with response headers, length-prefixed messages and the status trailers (or a
// trailers-only response for an error before any message).
import { EventEmitter } from "node:events";
import {
  constants as h2,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { Duplex, Writable } from "node:stream";
import { type PeerCertificate, TLSSocket } from "node:tls";
import type { Metadata } from "@grpc/grpc-js";
import { clearLongTimeout, type LongTimeout, setLongTimeout } from "@svckit/endpoint";
import { compress, decompress } from "./compression.js";
import { type FrameError, FrameReader, frame, kMessage, type MessageSink } from "./framing.js";
import { IncomingMetadata } from "./metadata.js";
import {
  ACCEPT_ENCODING,
  acceptsEncoding,
  CONNECTION_HEADERS,
  type MessageEncoding,
  percentEncode,
  SINGLE_VALUE_HEADERS,
  Status,
  type StatusLike,
} from "./protocol.js";

/** A registered method, as grpc-js's `Server.register` takes it. */
export interface Handler {
  readonly path: string;
  readonly type: "unary" | "serverStream" | "clientStream" | "bidi";
  /**
   * The grpc-js-style handler: `(call, callback)` for unary and client streaming, `(call)` for server
   * streaming and bidi.
   */
  readonly func: (call: never, callback: never) => void;
  /** Response value → message bytes. */
  readonly serialize: (value: never) => Uint8Array;
  /** Request message bytes → the value handed to the handler as `call.request`. */
  readonly deserialize: (bytes: Buffer) => unknown;
}

/** The server-wide settings every call reads, resolved once from the server's options. */
export interface CallSettings {
  readonly maxReceiveMessageLength: number;
  readonly maxSendMessageLength: number;
  /** The encoding responses are compressed with when the client accepts it (`identity`: never). */
  readonly compression: MessageEncoding;
  /** Messages shorter than this are sent uncompressed even when compressing. */
  readonly compressionThreshold: number;
}

/** grpc-js's `sendUnaryData`. */
export type UnaryCallback = (
  error: StatusLike | null | undefined,
  value?: unknown,
  trailer?: Metadata,
  flags?: number,
) => void;

/** The TLS peer, as grpc-js's `getAuthContext()` reports it. */
export interface AuthContext {
  /** `"ssl"` on a TLS connection with an authorized client certificate. */
  transportSecurityType?: string;
  /** The client certificate. */
  sslPeerCertificate?: PeerCertificate | undefined;
}

/** What `getMetricsRecorder()` returns: ORCA per-call metrics are not reported by this engine, so it records nothing. */
export interface MetricsRecorder {
  recordRequestCostMetric(name: string, value: number): void;
  recordUtilizationMetric(name: string, value: number): void;
  recordNamedMetric(name: string, value: number): void;
  recordCPUUtilizationMetric(value: number): void;
  recordMemoryUtilizationMetric(value: number): void;
  recordApplicationUtilizationMetric(value: number): void;
  recordQpsMetric(value: number): void;
  recordEpsMetric(value: number): void;
  serialize(): Buffer;
}

const noop = (): void => undefined;
const NO_METRICS: MetricsRecorder = Object.freeze({
  recordRequestCostMetric: noop,
  recordUtilizationMetric: noop,
  recordNamedMetric: noop,
  recordCPUUtilizationMetric: noop,
  recordMemoryUtilizationMetric: noop,
  recordApplicationUtilizationMetric: noop,
  recordQpsMetric: noop,
  recordEpsMetric: noop,
  serialize: () => Buffer.alloc(0),
});

const CONTENT_TYPE = "application/grpc+proto";
const RESPONSE_HEADERS: OutgoingHttpHeaders = Object.freeze({ ":status": 200, "content-type": CONTENT_TYPE });
const COMPRESSED_HEADERS: Readonly<Record<string, OutgoingHttpHeaders>> = Object.freeze({
  gzip: Object.freeze({ ":status": 200, "content-type": CONTENT_TYPE, "grpc-encoding": "gzip" }),
  deflate: Object.freeze({ ":status": 200, "content-type": CONTENT_TYPE, "grpc-encoding": "deflate" }),
});
const OK_TRAILERS: OutgoingHttpHeaders = Object.freeze({ "grpc-status": "0" });
const RESPOND_OPTIONS = Object.freeze({ waitForTrailers: true, sendDate: false });
const END_OPTIONS = Object.freeze({ endStream: true, sendDate: false });
/** Response header names a handler's metadata may not replace. */
const RESERVED = new Set(["content-type", "grpc-status", "grpc-message", "grpc-encoding", "te"]);

const kCall = Symbol("svckit.grpc-h2.call");
// The protocol side of a call is reached through these symbols, so the grpc-js surface a handler sees
// has no extra methods a handler could call by mistake (`end`, `write`, ...).
const kData = Symbol("data");
const kEnd = Symbol("end");
const kClosed = Symbol("closed");
const kDeadline = Symbol("deadline");
const kTrailers = Symbol("trailers");
const kWatch = Symbol("watch");
const kWrite = Symbol("write");
const kSendStatus = Symbol("sendStatus");
const kResume = Symbol("resume");
const kDestroyed = Symbol("destroyed");
const kInbox = Symbol("inbox");
const kFull = Symbol("full");
const kPaused = Symbol("paused");
const kInflating = Symbol("inflating");
const kDraining = Symbol("draining");
type CallStream = ServerHttp2Stream & { [kCall]?: GrpcCall };

// Shared listeners (no closure per call): the call is found on the stream.
function onData(this: CallStream, chunk: Buffer): void {
  this[kCall]?.[kData](chunk);
}
function onEnd(this: CallStream): void {
  this[kCall]?.[kEnd]();
}
function onClose(this: CallStream): void {
  this[kCall]?.[kClosed]();
}
function onWantTrailers(this: CallStream): void {
  sendTrailers(this, this[kCall]?.[kTrailers] ?? OK_TRAILERS);
}
/**
 * Sends a call's trailers from a `wantTrailers` listener, where a throw would be uncaught (the process
 * would exit): should node:http2 refuse them anyway, the status goes without the metadata.
 */
function sendTrailers(stream: ServerHttp2Stream, trailers: OutgoingHttpHeaders): void {
  try {
    stream.sendTrailers(trailers);
  } catch {
    const bare: OutgoingHttpHeaders = { "grpc-status": trailers["grpc-status"] };
    if (trailers["grpc-message"] !== undefined) bare["grpc-message"] = trailers["grpc-message"];
    try {
      stream.sendTrailers(bare);
    } catch {
      stream.close(h2.NGHTTP2_INTERNAL_ERROR);
    }
  }
}
/**
 * `wantTrailers` of a call that reads a request stream: the status, then RST_STREAM(NO_ERROR) so a
 * client still sending stops (PROTOCOL-HTTP2). The reset waits a turn: sent from this listener, it
 * would go out before the trailers and drop them.
 */
function onWantTrailersThenClose(this: CallStream): void {
  sendTrailers(this, this[kCall]?.[kTrailers] ?? OK_TRAILERS);
  setImmediate(closeOpenStream, this);
}
function closeOpenStream(stream: ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close(h2.NGHTTP2_NO_ERROR);
}
function onDeadline(call: GrpcCall): void {
  call[kDeadline]();
}

/**
 * Adds a handler's metadata to outgoing headers or trailers: the protocol's own keys are not replaced,
 * connection-specific headers are dropped and a header node:http2 allows once keeps its first value
 * (node:http2 would throw on either, from a `wantTrailers` listener where the throw is uncaught).
 */
function copyMetadata(into: OutgoingHttpHeaders, metadata: StatusLike["metadata"]): OutgoingHttpHeaders {
  if (metadata === null || metadata === undefined) return into;
  const extra = metadata.toHttp2Headers();
  for (const key in extra) {
    if (RESERVED.has(key) || key in into || CONNECTION_HEADERS.has(key)) continue;
    const value = extra[key] as string | string[];
    // node:http2 throws on a second value of these: the first one is kept (most are not lists in HTTP).
    into[key] = Array.isArray(value) && SINGLE_VALUE_HEADERS.has(key) ? (value[0] as string) : value;
  }
  return into;
}

/** A handler's error (grpc-js's `ServerErrorResponse | ServerStatusResponse`) as code, details and trailers. */
function toStatus(
  error: StatusLike,
  trailer: Metadata | undefined,
): [number, string, StatusLike["metadata"]] {
  // A handler may destroy or fail its call with anything, a string included.
  if (typeof error !== "object" || error === null) return [Status.UNKNOWN, "Unknown Error", trailer ?? null];
  let code: number = Status.UNKNOWN;
  let details = "message" in error && typeof error.message === "string" ? error.message : "Unknown Error";
  if (typeof error.code === "number" && Number.isInteger(error.code) && error.code >= 0) {
    code = error.code;
    if (typeof error.details === "string") details = error.details;
  }
  return [code, details, trailer ?? error.metadata ?? null];
}

/** A request message waiting for the one before it to be decompressed. */
interface Pending {
  readonly compressed: boolean;
  readonly bytes: Buffer;
}

function destroySurface(surface: ServerDuplexCall): void {
  if (!surface.destroyed) surface.destroy();
}

/**
 * The call a unary handler receives (grpc-js's `ServerUnaryCall`), and the protocol state of every call.
 * A server-streaming handler receives a {@link ServerStreamCall} in front of it, a client-streaming or
 * bidi handler a {@link ServerDuplexCall}.
 */
export class GrpcCall extends EventEmitter implements MessageSink {
  /** The decoded request message (grpc-js's `call.request`), set before the handler runs. */
  request: unknown = undefined;
  /** The status trailers once the response ends with a message; read by the shared `wantTrailers` listener. */
  [kTrailers]: OutgoingHttpHeaders | undefined = undefined;
  readonly #stream: CallStream;
  readonly #headers: IncomingHttpHeaders;
  /** The request headers as received, `[name, value, ...]` (the metadata's repeated single-value headers). */
  readonly #rawHeaders: readonly string[] | undefined;
  readonly #handler: Handler;
  readonly #settings: CallSettings;
  readonly #deadline: number;
  #metadata: Metadata | undefined = undefined;
  #timer: LongTimeout | undefined = undefined;
  #reader: FrameReader | undefined = undefined;
  #message: Buffer | undefined = undefined;
  #compressedMessage = false;
  #requestEnded = false;
  /** The handler has been called. */
  #started = false;
  /** The status went out, or the call was given up (cancelled): nothing more is sent. */
  #done = false;
  #cancelled = false;
  /** The handler was told the call is cancelled (`'cancelled'` emitted, streams destroyed): once. */
  #told = false;
  #headersSent = false;
  #watching = false;
  /** The response encoding when the client accepts the configured one. */
  #encoding: "gzip" | "deflate" | undefined = undefined;
  /** The streaming front, for server-streaming, client-streaming and bidi methods. */
  #surface: ServerStreamCall | ServerDuplexCall | undefined = undefined;
  /** The request stream, for client-streaming and bidi methods (the same object as `#surface`). */
  #reading: ServerDuplexCall | undefined = undefined;

  constructor(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    handler: Handler,
    settings: CallSettings,
    timeoutMs: number | undefined,
    rawHeaders?: readonly string[],
  ) {
    super();
    this.#stream = stream;
    this.#headers = headers;
    this.#rawHeaders = rawHeaders;
    this.#handler = handler;
    this.#settings = settings;
    this.#deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
    const call = stream as CallStream;
    call[kCall] = this;
    stream.on("data", onData);
    stream.on("end", onEnd);
    if (timeoutMs !== undefined) {
      // A call with a deadline has a timer anyway; watching its stream lets a cancelled call drop the
      // timer (and what it holds) at once instead of at the deadline.
      this.#timer = setLongTimeout(onDeadline, timeoutMs, this);
      this.#timer.unref?.();
      this[kWatch]();
    }
    if (settings.compression !== "identity") {
      const accept = headers["grpc-accept-encoding"];
      if (typeof accept === "string" && acceptsEncoding(accept, settings.compression)) {
        this.#encoding = settings.compression;
      }
    }
    // As grpc-js, a handler of a request stream starts with the headers, before any message.
    if (handler.type === "clientStream" || handler.type === "bidi") this.#open();
  }

  // ---- grpc-js ServerSurfaceCall ----

  /** The request metadata (grpc-js `Metadata`). */
  get metadata(): Metadata {
    this.#metadata ??= new IncomingMetadata(this.#headers, this.#rawHeaders);
    return this.#metadata;
  }

  /** Whether the client cancelled the call, its deadline passed or its connection went away before it ended. */
  get cancelled(): boolean {
    if (this.#cancelled) return true;
    if (!this.#done && this.#started && (this.#stream.destroyed || this.#stream.closed)) {
      this.#cancelled = true;
    }
    return this.#cancelled;
  }

  set cancelled(value: boolean) {
    this.#cancelled = value;
  }

  /** The deadline in epoch ms (`Infinity` without `grpc-timeout`), as grpc-js returns it. */
  getDeadline(): number {
    return this.#deadline;
  }

  /** `address:port` of the client. */
  getPeer(): string {
    const socket = this.#stream.session?.socket;
    const address = socket?.remoteAddress;
    if (address === undefined) return "unknown";
    return socket?.remotePort === undefined ? address : `${address}:${socket.remotePort}`;
  }

  /** The method path, e.g. `/pb.Add/Sum`. */
  getPath(): string {
    return this.#handler.path;
  }

  /** The `:authority` the client called. */
  getHost(): string {
    return String(this.#headers[":authority"] ?? this.#headers.host ?? "");
  }

  /** TLS details when the connection is TLS with an authorized client certificate; `{}` otherwise. */
  getAuthContext(): AuthContext {
    const socket = this.#stream.session?.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const certificate = socket.getPeerCertificate();
    return { transportSecurityType: "ssl", sslPeerCertificate: certificate.raw ? certificate : undefined };
  }

  /** A recorder that records nothing (this engine reports no ORCA metrics). */
  getMetricsRecorder(): MetricsRecorder {
    return NO_METRICS;
  }

  /** Sends the response headers with `metadata` now (once; later calls do nothing). */
  sendMetadata(metadata: Metadata): void {
    if (this.#done || this.#headersSent) return;
    if (this.#stream.closed || this.#stream.destroyed) {
      this[kClosed]();
      return;
    }
    this.#respondHeaders(metadata);
  }

  // Cancellation is watched only once someone listens for it: a unary call nobody watches adds no
  // listener to its stream.
  override on(event: string | symbol, listener: (...args: never[]) => void): this {
    if (event === "cancelled") this[kWatch]();
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  override addListener(event: string | symbol, listener: (...args: never[]) => void): this {
    return this.on(event, listener);
  }

  override prependListener(event: string | symbol, listener: (...args: never[]) => void): this {
    if (event === "cancelled") this[kWatch]();
    return super.prependListener(event, listener as (...args: unknown[]) => void);
  }

  // ---- protocol ----

  /** Starts telling `'cancelled'` listeners when the stream closes before the call ended. */
  [kWatch](): void {
    if (this.#watching) return;
    this.#watching = true;
    const stream = this.#stream;
    if (stream.closed || stream.destroyed) process.nextTick(onClose.bind(stream as CallStream));
    else stream.on("close", onClose);
  }

  /** The stream closed. */
  [kClosed](): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    if (this.#started) this.#cancel();
  }

  /** The `grpc-timeout` deadline passed: DEADLINE_EXCEEDED, and the handler is told. */
  [kDeadline](): void {
    this.#timer = undefined;
    if (this.#done) return;
    const left = this.#deadline - Date.now();
    if (left > 0) {
      // The deadline is wall-clock time: the clock was set back, or the timer fired a hair early.
      this.#timer = setLongTimeout(onDeadline, left, this);
      this.#timer.unref?.();
      return;
    }
    this[kSendStatus](Status.DEADLINE_EXCEEDED, "Deadline exceeded", null);
    if (this.#started) this.#cancel();
  }

  /**
   * The engine ended a server stream itself (a message it could not serialize, send or compress): as
   * grpc-js does, the handler sees the call cancelled, so it stops producing instead of writing on
   * into a call that is over.
   */
  #endedHere(): void {
    if (this.#started && !this.#told) this.#cancel();
  }

  #cancel(): void {
    // Not `#cancelled`: reading `cancelled` sets that without telling anyone.
    if (this.#told) return;
    this.#told = true;
    this.#cancelled = true;
    if (this.#reading !== undefined) this.#stopReading();
    const surface = this.#surface;
    if (surface === undefined) {
      this.emit("cancelled", "cancelled");
    } else {
      surface.cancelled = true;
      surface.emit("cancelled", "cancelled");
      surface.destroy();
    }
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearLongTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** A DATA chunk of the request. */
  [kData](chunk: Buffer): void {
    if (this.#done) return;
    const settings = this.#settings;
    // The usual unary request: one chunk that is exactly one uncompressed or compressed message.
    if (this.#reader === undefined && this.#message === undefined && chunk.length >= 5) {
      const flag = chunk[0] as number;
      const length = chunk.readUInt32BE(1);
      if (flag <= 1 && length === chunk.length - 5 && length <= settings.maxReceiveMessageLength) {
        this[kMessage](flag === 1, chunk.subarray(5));
        return;
      }
    }
    this.#reader ??= new FrameReader(settings.maxReceiveMessageLength);
    const error = this.#reader.write(chunk, this);
    if (error !== undefined) this.#fail(error);
  }

  /** One request message. */
  [kMessage](compressed: boolean, message: Buffer): void {
    if (this.#done) return;
    if (this.#reading !== undefined) {
      this.#receive(this.#reading, compressed, message);
      return;
    }
    if (this.#message !== undefined) {
      this[kSendStatus](
        Status.INTERNAL,
        `received a second request message for ${this.#kind()} method ${this.#handler.path}`,
        null,
      );
      return;
    }
    this.#message = message;
    this.#compressedMessage = compressed;
  }

  /** The client ended the request. */
  [kEnd](): void {
    this.#requestEnded = true;
    if (this.#done) return;
    if (this.#reading !== undefined) {
      this.#endReading(this.#reading);
      return;
    }
    const message = this.#message;
    if (this.#reader !== undefined && !this.#reader.atBoundary) {
      this[kSendStatus](
        Status.INTERNAL,
        "the request ended inside a message (truncated length-prefixed message)",
        null,
      );
      return;
    }
    if (message === undefined) {
      this[kSendStatus](
        Status.INTERNAL,
        `received no request message for ${this.#kind()} method ${this.#handler.path}`,
        null,
      );
      return;
    }
    if (!this.#compressedMessage) {
      this.#deliver(message);
      return;
    }
    const encoding = this.#headers["grpc-encoding"];
    if (encoding === undefined || encoding === "identity") {
      this[kSendStatus](
        Status.INTERNAL,
        "a message has the compressed flag set but the request has no grpc-encoding",
        null,
      );
      return;
    }
    if (encoding !== "gzip" && encoding !== "deflate") {
      this.#trailersOnly(
        Status.UNIMPLEMENTED,
        `Received message compressed with unsupported encoding "${String(encoding)}"`,
        null,
        true,
      );
      return;
    }
    decompress(encoding, message, this.#settings.maxReceiveMessageLength, (error, bytes) => {
      if (error !== undefined) this.#fail(error);
      else this.#deliver(bytes);
    });
  }

  // ---- request streams (client streaming and bidi) ----
  //
  // Messages are decoded in order and pushed into the handler's Readable. When it holds its
  // high-water mark of messages, or while a compressed message is being inflated, the HTTP/2 stream is
  // paused: Node stops consuming its DATA, so no WINDOW_UPDATE goes out and HTTP/2 flow control stops
  // the client. The handler reading again (`_read`) resumes it.

  /** Calls a client-streaming or bidi handler with its {@link ServerDuplexCall}. */
  #open(): void {
    const surface = new ServerDuplexCall(this);
    this.#surface = surface;
    this.#reading = surface;
    this.#started = true;
    this[kWatch]();
    // A client's RST_STREAM(NO_ERROR) on a paused stream closes it at once but emits 'close' only once
    // its buffered DATA was read, which a paused call never does: 'aborted' comes at once.
    this.#stream.on("aborted", onClose);
    try {
      if (this.#handler.type === "clientStream") {
        (this.#handler.func as (call: ServerDuplexCall, callback: UnaryCallback) => void)(
          surface,
          (error, value, trailer) => this.#reply(error, value, trailer),
        );
      } else {
        (this.#handler.func as (call: ServerDuplexCall) => void)(surface);
      }
    } catch {
      this.#abort(Status.UNKNOWN, "Unknown error");
    }
  }

  /**
   * One message of a request stream: decoded and pushed now, or kept as bytes (a view of its DATA chunk)
   * behind one being inflated or while the Readable is full. One DATA chunk can hold thousands of small
   * messages: past the high-water mark they wait undecoded, so memory stays bounded by the chunk.
   */
  #receive(surface: ServerDuplexCall, compressed: boolean, bytes: Buffer): void {
    const inbox = surface[kInbox];
    if (inbox !== undefined) {
      inbox.push({ compressed, bytes });
      return;
    }
    if (surface[kFull]) {
      surface[kInbox] = [{ compressed, bytes }];
      return;
    }
    if (!compressed) {
      this.#push(surface, bytes);
      return;
    }
    surface[kInbox] = [];
    this.#pause();
    this.#inflate(surface, bytes);
  }

  /** Decompresses one request message, then pushes it and the messages queued behind it. */
  #inflate(surface: ServerDuplexCall, bytes: Buffer): void {
    const encoding = this.#headers["grpc-encoding"];
    if (encoding === undefined || encoding === "identity") {
      this.#abort(
        Status.INTERNAL,
        "a message has the compressed flag set but the request has no grpc-encoding",
      );
      return;
    }
    if (encoding !== "gzip" && encoding !== "deflate") {
      const details = `Received message compressed with unsupported encoding "${String(encoding)}"`;
      if (this.#headersSent) this[kSendStatus](Status.UNIMPLEMENTED, details, null);
      else this.#trailersOnly(Status.UNIMPLEMENTED, details, null, true);
      this.#endedHere();
      return;
    }
    surface[kInflating] = true;
    decompress(encoding, bytes, this.#settings.maxReceiveMessageLength, (error, out) => {
      surface[kInflating] = false;
      if (this.#done) return;
      if (error !== undefined) {
        this.#abort(error.code, error.details);
        return;
      }
      this.#push(surface, out);
      this.#drainInbox(surface);
    });
  }

  /**
   * Pushes the queued messages until the Readable is full or the next one is compressed (inflated
   * first); once the queue is empty, ends the request stream if the client did, else lets the HTTP/2
   * stream flow again.
   */
  #drainInbox(surface: ServerDuplexCall): void {
    const inbox = surface[kInbox];
    if (inbox === undefined || surface[kInflating] || surface[kDraining]) return;
    surface[kDraining] = true;
    let taken = 0;
    try {
      while (!this.#done && !surface[kFull] && taken < inbox.length) {
        const next = inbox[taken++] as Pending;
        if (next.compressed) {
          inbox.splice(0, taken);
          taken = 0;
          this.#inflate(surface, next.bytes);
          return;
        }
        this.#push(surface, next.bytes);
      }
    } finally {
      if (taken > 0) inbox.splice(0, taken);
      surface[kDraining] = false;
    }
    if (this.#done || surface[kFull] || inbox.length > 0 || surface[kInflating]) return;
    surface[kInbox] = undefined;
    if (this.#requestEnded) surface.push(null);
    else this.#resumeStream(surface);
  }

  /** Decodes one request message into the handler's Readable; pauses the HTTP/2 stream once it is full. */
  #push(surface: ServerDuplexCall, bytes: Buffer): void {
    let request: unknown;
    try {
      request = this.#handler.deserialize(bytes);
    } catch {
      this.#abort(Status.INTERNAL, "Error deserializing request");
      return;
    }
    if (!surface.push(request)) {
      surface[kFull] = true;
      this.#pause();
    }
  }

  /** The client half-closed: the Readable ends after the messages before it. */
  #endReading(surface: ServerDuplexCall): void {
    // Node also ends the request of a stream cut off by a lost connection (already closed here, before
    // its 'close'): that is a cancellation, not a complete request stream.
    if (this.#stream.closed || this.#stream.destroyed) {
      this[kClosed]();
      return;
    }
    if (this.#reader !== undefined && !this.#reader.atBoundary) {
      this.#abort(Status.INTERNAL, "the request ended inside a message (truncated length-prefixed message)");
      return;
    }
    if (surface[kInbox] === undefined) surface.push(null);
  }

  #pause(): void {
    const surface = this.#reading as ServerDuplexCall;
    if (surface[kPaused]) return;
    surface[kPaused] = true;
    this.#stream.pause();
  }

  /** Lets the HTTP/2 stream flow again, unless the handler's Readable is full or a message is being inflated. */
  #resumeStream(surface: ServerDuplexCall): void {
    if (!surface[kPaused] || surface[kFull] || surface[kInbox] !== undefined || this.#done) return;
    surface[kPaused] = false;
    this.#stream.resume();
  }

  /** The handler wants more messages (its Readable's `_read`). */
  [kResume](): void {
    const surface = this.#reading;
    if (surface === undefined) return;
    surface[kFull] = false;
    if (surface[kInbox] !== undefined) this.#drainInbox(surface);
    else this.#resumeStream(surface);
  }

  /** The engine ends a call that reads a request stream (bad bytes, the handler threw): the handler is told, as grpc-js does. */
  #abort(code: number, details: string): void {
    this[kSendStatus](code, details, null);
    this.#endedHere();
  }

  /** The status goes out in trailers: after them, RST_STREAM(NO_ERROR) if the client is still sending. */
  #finishReading(stream: CallStream): void {
    stream.on("wantTrailers", onWantTrailersThenClose);
    this.#stopReading();
  }

  /**
   * The call is over: queued messages are dropped, a paused HTTP/2 stream flows again (what the client
   * still sends until the reset is read and dropped) and, after the handler's current turn, its
   * Readable is destroyed so a loop reading it ends.
   */
  #stopReading(): void {
    const surface = this.#reading as ServerDuplexCall;
    surface[kInbox] = undefined;
    if (surface[kPaused]) {
      surface[kPaused] = false;
      this.#stream.resume();
    }
    if (!surface.destroyed) process.nextTick(destroySurface, surface);
  }

  /**
   * The handler destroyed its call: unless the call ended, the status from the error; without one,
   * CANCELLED for bidi (nothing more can be written) and nothing for client streaming (the callback
   * still answers).
   */
  [kDestroyed](error: Error | null): void {
    if (this.#done) return;
    if (error === null) {
      if (this.#handler.type === "bidi")
        this[kSendStatus](Status.CANCELLED, "Call destroyed by the server", null);
      return;
    }
    const [code, details, metadata] = toStatus(error as StatusLike, undefined);
    this[kSendStatus](code, details, metadata);
  }

  #kind(): string {
    return this.#handler.type === "unary" ? "unary" : "server-streaming";
  }

  #fail(error: FrameError): void {
    if (this.#reading === undefined) this[kSendStatus](error.code, error.details, null);
    else this.#abort(error.code, error.details);
  }

  #deliver(bytes: Buffer): void {
    if (this.#done) return;
    const handler = this.#handler;
    let request: unknown;
    try {
      request = handler.deserialize(bytes);
    } catch {
      this[kSendStatus](Status.INTERNAL, "Error deserializing request", null);
      return;
    }
    this.#started = true;
    try {
      if (handler.type === "unary") {
        this.request = request;
        (handler.func as (call: GrpcCall, callback: UnaryCallback) => void)(this, (error, value, trailer) =>
          this.#reply(error, value, trailer),
        );
      } else {
        const surface = new ServerStreamCall(this, request);
        this.#surface = surface;
        this[kWatch]();
        (handler.func as (call: ServerStreamCall) => void)(surface);
      }
    } catch {
      this[kSendStatus](Status.UNKNOWN, "Unknown error", null);
    }
  }

  /** The unary callback. */
  #reply(error: StatusLike | null | undefined, value: unknown, trailer: Metadata | undefined): void {
    if (this.#done) return;
    if (error !== null && error !== undefined) {
      const [code, details, metadata] = toStatus(error, trailer);
      this[kSendStatus](code, details, metadata);
      return;
    }
    const bytes = this.#serialize(value);
    if (bytes === undefined) return;
    const encoding = this.#encoding;
    if (encoding !== undefined && bytes.length >= this.#settings.compressionThreshold) {
      compress(encoding, bytes, (err, out) => {
        if (err !== null) this[kSendStatus](Status.INTERNAL, "Error compressing response", null);
        else this.#sendLast(frame(out, true), trailer);
      });
      return;
    }
    this.#sendLast(frame(bytes, false), trailer);
  }

  /** Serializes a response value and checks its size; on failure the status is sent and `undefined` returned. */
  #serialize(value: unknown): Uint8Array | undefined {
    let bytes: Uint8Array;
    try {
      bytes = (this.#handler.serialize as (value: unknown) => Uint8Array)(value);
    } catch {
      this[kSendStatus](Status.INTERNAL, "Error serializing response", null);
      return undefined;
    }
    const max = this.#settings.maxSendMessageLength;
    if (bytes.length > max) {
      this[kSendStatus](
        Status.RESOURCE_EXHAUSTED,
        `Sent message larger than max (${bytes.length} vs. ${max})`,
        null,
      );
      return undefined;
    }
    return bytes;
  }

  /** Headers (if not sent yet), the one message and the OK trailers, in one go. */
  #sendLast(framed: Buffer, trailer: Metadata | undefined): void {
    if (this.#done) return;
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) {
      this[kClosed]();
      return;
    }
    this.#done = true;
    this.#clearTimer();
    if (!this.#headersSent) this.#respondHeaders(undefined);
    if (trailer !== undefined) this[kTrailers] = copyMetadata({ "grpc-status": "0" }, trailer);
    if (this.#reading === undefined) stream.on("wantTrailers", onWantTrailers);
    else this.#finishReading(stream);
    stream.end(framed);
  }

  #respondHeaders(metadata: Metadata | undefined): void {
    this.#headersSent = true;
    const encoding = this.#encoding;
    const base =
      encoding === undefined ? RESPONSE_HEADERS : (COMPRESSED_HEADERS[encoding] as OutgoingHttpHeaders);
    const headers = metadata === undefined ? base : copyMetadata({ ...base }, metadata);
    this.#stream.respond(headers, RESPOND_OPTIONS);
  }

  /** Sends one message of a server stream; `callback` once the stream can take more. */
  [kWrite](value: unknown, callback: (error?: Error | null) => void): void {
    if (this.#done) {
      callback();
      return;
    }
    const bytes = this.#serialize(value);
    if (bytes === undefined) {
      this.#endedHere();
      callback();
      return;
    }
    if (this.#stream.closed || this.#stream.destroyed) {
      this[kClosed]();
      callback();
      return;
    }
    if (!this.#headersSent) this.#respondHeaders(undefined);
    const encoding = this.#encoding;
    if (encoding !== undefined && bytes.length >= this.#settings.compressionThreshold) {
      compress(encoding, bytes, (err, out) => {
        if (err !== null) {
          this[kSendStatus](Status.INTERNAL, "Error compressing response", null);
          this.#endedHere();
          callback();
        } else this.#writeFrame(frame(out, true), callback);
      });
      return;
    }
    this.#writeFrame(frame(bytes, false), callback);
  }

  #writeFrame(framed: Buffer, callback: () => void): void {
    const stream = this.#stream;
    if (this.#done || stream.destroyed || stream.closed) {
      callback();
      return;
    }
    // Backpressure: the next message is taken once HTTP/2 flow control and the socket drained this one.
    if (stream.write(framed)) callback();
    else stream.once("drain", callback);
  }

  /**
   * Ends the call with a status: in the trailers after the messages sent, or as a trailers-only
   * response when nothing was sent yet. Does nothing once the call ended.
   */
  [kSendStatus](code: number, details: string, metadata: StatusLike["metadata"]): void {
    if (this.#done) return;
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) {
      // The client is gone (a reset may close a stream before its 'close'): the call is cancelled.
      this[kClosed]();
      return;
    }
    if (!this.#headersSent) {
      this.#trailersOnly(code, details, metadata, false);
      return;
    }
    this.#done = true;
    this.#clearTimer();
    const trailers: OutgoingHttpHeaders = { "grpc-status": String(code) };
    if (details !== "") trailers["grpc-message"] = percentEncode(details);
    this[kTrailers] = copyMetadata(trailers, metadata);
    if (this.#reading === undefined) stream.on("wantTrailers", onWantTrailers);
    else this.#finishReading(stream);
    stream.end();
  }

  #trailersOnly(
    code: number,
    details: string,
    metadata: StatusLike["metadata"],
    acceptEncoding: boolean,
  ): void {
    this.#done = true;
    this.#headersSent = true;
    this.#clearTimer();
    const stream = this.#stream;
    if (this.#reading !== undefined) this.#stopReading();
    if (!stream.destroyed && !stream.closed) {
      sendTrailersOnly(stream, code, details, metadata, acceptEncoding);
      // Early server closure (PROTOCOL-HTTP2): the status went out before the client's END_STREAM.
      if (!this.#requestEnded) stream.close(h2.NGHTTP2_NO_ERROR);
    }
  }
}

/** A trailers-only response: HTTP 200 with the status in the one HEADERS frame, ending the stream. */
export function sendTrailersOnly(
  stream: ServerHttp2Stream,
  code: number,
  details: string,
  metadata?: StatusLike["metadata"],
  acceptEncoding = false,
): void {
  const headers: OutgoingHttpHeaders = {
    ":status": 200,
    "content-type": CONTENT_TYPE,
    "grpc-status": String(code),
  };
  if (details !== "") headers["grpc-message"] = percentEncode(details);
  if (acceptEncoding) headers["grpc-accept-encoding"] = ACCEPT_ENCODING;
  if (metadata === null || metadata === undefined) {
    stream.respond(headers, END_OPTIONS);
    return;
  }
  try {
    stream.respond(copyMetadata({ ...headers }, metadata), END_OPTIONS);
  } catch {
    // node:http2 refused the metadata (a name it does not allow, say): the status still goes, without it.
    try {
      stream.respond(headers, END_OPTIONS);
    } catch {
      stream.close(h2.NGHTTP2_INTERNAL_ERROR);
    }
  }
}

/**
 * The call a server-streaming handler receives (grpc-js's `ServerWritableStream`): an object-mode
 * `Writable` of response values with the same surface as {@link GrpcCall}. `write` returns false
 * once HTTP/2 flow control holds messages back ('drain' follows), `end(trailer?)` ends with OK,
 * `emit('error', status)` ends with that status.
 */
export class ServerStreamCall extends Writable {
  /** Set when the client cancels, the deadline passes or the connection goes away. */
  cancelled = false;
  readonly #call: GrpcCall;
  #trailer: Metadata | undefined = undefined;
  #status: [number, string, StatusLike["metadata"]] | undefined = undefined;

  constructor(
    call: GrpcCall,
    /** The decoded request message. */
    readonly request: unknown,
  ) {
    super({ objectMode: true });
    this.#call = call;
    this.on("error", (error: StatusLike) => {
      this.#status = toStatus(error, undefined);
      this.end();
    });
  }

  /** The request metadata. */
  get metadata(): Metadata {
    return this.#call.metadata;
  }

  getDeadline(): number {
    return this.#call.getDeadline();
  }

  getPeer(): string {
    return this.#call.getPeer();
  }

  getPath(): string {
    return this.#call.getPath();
  }

  getHost(): string {
    return this.#call.getHost();
  }

  getAuthContext(): AuthContext {
    return this.#call.getAuthContext();
  }

  getMetricsRecorder(): MetricsRecorder {
    return this.#call.getMetricsRecorder();
  }

  /** Sends the response headers with `metadata` now (before the first message; once). */
  sendMetadata(metadata: Metadata): void {
    this.#call.sendMetadata(metadata);
  }

  override _write(value: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#call[kWrite](value, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback(null);
    const status = this.#status;
    if (status === undefined) this.#call[kSendStatus](Status.OK, "", this.#trailer ?? null);
    else this.#call[kSendStatus](status[0], status[1], status[2] ?? this.#trailer ?? null);
  }

  /** Ends the stream with OK and `trailer` (grpc-js's `end(metadata?)`). */
  // biome-ignore lint/suspicious/noExplicitAny: grpc-js's own signature; a callback or a Metadata may come
  override end(metadata?: any, ...rest: any[]): this {
    if (metadata !== undefined && metadata !== null && typeof metadata === "object") {
      this.#trailer = metadata as Metadata;
      return super.end();
    }
    return super.end(metadata, ...rest);
  }
}

/**
 * The call a client-streaming or bidi handler receives (grpc-js's `ServerReadableStream` and
 * `ServerDuplexStream`; as in grpc-js, both are this one object-mode `Duplex`), with the same surface as
 * {@link GrpcCall}.
 *
 * Its Readable side gives the decoded request messages in order and ends when the client half-closes.
 * It holds at most its high-water mark (16) of decoded messages: past that the engine stops reading the
 * HTTP/2 stream (what is left of the DATA frame at hand waits undecoded) until the handler reads, so a client that sends faster than the handler reads is held back by
 * HTTP/2 flow control instead of filling the server's memory. When the call is cancelled (client
 * cancel, deadline, lost connection, or a request the engine refuses) `cancelled` becomes true,
 * `'cancelled'` is emitted and the stream is destroyed, so a `for await` loop over it ends.
 *
 * Its Writable side (bidi) sends response values: `write` returns false once HTTP/2 flow control holds
 * messages back ('drain' follows), `end(trailer?)` ends the call with OK, `emit('error', status)` ends
 * it with that status, `destroy(error)` with the error's status (CANCELLED without one). A client-
 * streaming handler answers with its `callback(error, value, trailer)` instead. Whatever is written or
 * answered after the call ended is dropped.
 */
export class ServerDuplexCall extends Duplex {
  /** Set when the client cancels, the deadline passes, the connection goes away or the engine ends the call. */
  cancelled = false;
  /** Messages waiting behind one being decompressed (engine state). */
  [kInbox]: Pending[] | undefined = undefined;
  /** The Readable reached its high-water mark (engine state). */
  [kFull] = false;
  /** The HTTP/2 stream is paused (engine state). */
  [kPaused] = false;
  /** A request message is being decompressed (engine state). */
  [kInflating] = false;
  /** The engine is pushing queued messages (engine state). */
  [kDraining] = false;
  readonly #call: GrpcCall;
  #trailer: Metadata | undefined = undefined;
  #status: [number, string, StatusLike["metadata"]] | undefined = undefined;

  constructor(call: GrpcCall) {
    super({ objectMode: true });
    this.#call = call;
    this.on("error", (error: StatusLike) => {
      this.#status = toStatus(error, undefined);
      this.end();
    });
  }

  /** The request metadata. */
  get metadata(): Metadata {
    return this.#call.metadata;
  }

  getDeadline(): number {
    return this.#call.getDeadline();
  }

  getPeer(): string {
    return this.#call.getPeer();
  }

  getPath(): string {
    return this.#call.getPath();
  }

  getHost(): string {
    return this.#call.getHost();
  }

  getAuthContext(): AuthContext {
    return this.#call.getAuthContext();
  }

  getMetricsRecorder(): MetricsRecorder {
    return this.#call.getMetricsRecorder();
  }

  /** Sends the response headers with `metadata` now (before the first message; once). */
  sendMetadata(metadata: Metadata): void {
    this.#call.sendMetadata(metadata);
  }

  override _read(): void {
    this.#call[kResume]();
  }

  /**
   * `for await (const request of call)`: unlike a plain Readable's, leaving the loop (at the end of the
   * requests, `break` or a throw) does not destroy the call, so a bidi handler can still write and
   * `end()` after it. (On grpc-js such a loop destroys the call and a later `end()` sends nothing.)
   */
  override [Symbol.asyncIterator](): NodeJS.AsyncIterator<unknown> {
    return this.iterator({ destroyOnReturn: false });
  }

  /**
   * Sends one response value. After `end()` or once the call is over the value is dropped (no
   * write-after-end error that would destroy the call before its status went out).
   */
  // biome-ignore lint/suspicious/noExplicitAny: Writable's own overloaded signature
  override write(value: unknown, ...rest: any[]): boolean {
    if (this.writableEnded || this.destroyed) {
      const callback = rest.find((arg) => typeof arg === "function") as (() => void) | undefined;
      if (callback !== undefined) process.nextTick(callback);
      return false;
    }
    return super.write(value, ...rest);
  }

  override _write(value: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#call[kWrite](value, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback(null);
    const status = this.#status;
    if (status === undefined) this.#call[kSendStatus](Status.OK, "", this.#trailer ?? null);
    else this.#call[kSendStatus](status[0], status[1], status[2] ?? this.#trailer ?? null);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#call[kDestroyed](error);
    callback(error);
  }

  /** Ends the call with OK and `trailer` (grpc-js's `end(metadata?)`). */
  // biome-ignore lint/suspicious/noExplicitAny: grpc-js's own signature; a callback or a Metadata may come
  override end(metadata?: any, ...rest: any[]): this {
    if (metadata !== undefined && metadata !== null && typeof metadata === "object") {
      this.#trailer = metadata as Metadata;
      return super.end();
    }
    return super.end(metadata, ...rest);
  }
}
