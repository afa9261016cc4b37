import { closeSync, openSync, writeSync } from "node:fs";
import type { LogFields, Logger, LogLevel } from "./logger.js";
import { createRedactor, type RedactOptions, type Redactor } from "./redact.js";

/**
 * Where a {@link createJsonLogger} writes: a writable stream (`process.stdout`, a file or socket
 * stream, ...), a file descriptor (written with `fs.writeSync`), or a file path (opened for appending).
 */
export type JsonDestination = NodeJS.WritableStream | number | string;

/** Options of {@link createJsonLogger}. */
export interface JsonLoggerOptions {
  /** The least severe level written (default `"info"`). */
  level?: LogLevel;
  /**
   * Where lines go (default `process.stdout`). A stream is written with its `write`; a file descriptor
   * with `fs.writeSync`; a path is opened for appending (and closed by `close()`).
   */
  destination?: JsonDestination;
  /** Fields written on every line after `message` (e.g. `{ service: "addsvc" }`); a line's own fields win. */
  base?: LogFields;
  /**
   * The `timestamp` field: `"iso"` (default) an ISO 8601 string in UTC, `"epoch"` milliseconds since
   * the epoch as a number, `false` none.
   */
  timestamp?: "iso" | "epoch" | false;
  /**
   * What to redact in every line, as `createRedactor` does (default: the default keys and credentials
   * inside strings); `false` writes fields as they are.
   */
  redact?: RedactOptions | false;
  /**
   * How much may wait in memory while the destination is not accepting more (a stream's `write` returned
   * `false` and it has not emitted `drain`, or a file descriptor answered `EAGAIN`), counted in
   * characters of JSON text (bytes for ASCII). Lines that do not fit are dropped and counted
   * (default 16 MiB).
   */
  maxBufferBytes?: number;
  /**
   * Told the first time writing fails (a stream error, a failed `write`); the logger then drops every
   * later line. Default: a process warning (`process.emitWarning`, code `SVCKIT_LOG_WRITE_FAILED`).
   */
  onError?: (error: Error) => void;
}

/** The logger {@link createJsonLogger} makes: a {@link Logger} with a buffer to flush and close. */
export interface JsonLogger extends Logger {
  /** The least severe level written. */
  readonly level: LogLevel;
  /** Lines dropped so far, because the buffer was full, writing failed, or the logger was closed. */
  readonly dropped: number;
  /** Whether lines at `level` are written. */
  isLevelEnabled(level: LogLevel): boolean;
  /**
   * A logger that adds `fields` to each line (after the base fields, before the line's own), sharing
   * this logger's level, buffer and destination.
   */
  child(fields: LogFields): JsonLogger;
  /**
   * Hands every buffered line to the destination now. Resolves once all lines logged before the call
   * have been passed to the stream's `write` (or written to the file descriptor), or dropped. It does
   * not wait for a stream to write its own buffer out; `close()` does.
   */
  flush(): Promise<void>;
  /**
   * Flushes, waits until the stream has finished every write the logger made, then stops: later lines
   * are dropped, the `exit` hook and the stream's listeners are removed, and a file opened from a path
   * is closed. A stream or file descriptor you passed is left open. Children share it: closing one
   * closes them all.
   */
  close(): Promise<void>;
  /** `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The severity of a level, 0 for anything that is not one. */
function rankOf(level: unknown): number {
  switch (level) {
    case "debug":
      return 10;
    case "info":
      return 20;
    case "warn":
      return 30;
    case "error":
      return 40;
    default:
      return 0;
  }
}
const OPENINGS: Readonly<Record<LogLevel, string>> = {
  debug: '{"level":"debug"',
  info: '{"level":"info"',
  warn: '{"level":"warn"',
  error: '{"level":"error"',
};
const DEFAULT_MAX_BUFFER = 16 * 1024 * 1024;
/** A batch this long (in characters) is written at once instead of at the end of the event-loop turn. */
const BATCH_LENGTH = 64 * 1024;
/** Nesting deeper than this is written as "[Depth limit]" (the redactor's own limit is usually lower). */
const MAX_DEPTH = 32;
/** How long to wait before writing again to a file descriptor that answered EAGAIN. */
const RETRY_MS = 10;
/**
 * At exit, how long a file descriptor may go on answering EAGAIN without taking a byte before the
 * logger gives up on it (retrying RETRY_MS apart). A pipe whose reader is slow to start (a log shipper,
 * `node app | tee`) fills up in an instant once Node has made stdout non-blocking.
 */
const EXIT_PATIENCE_MS = 2_000;

// ---------------------------------------------------------------------------------------------------
// Serialization: JSON text for one line, written by hand for the common values and never throwing.

/** Control characters, quote, backslash, and surrogates (a lone one must become `\udXXX`). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters to escape is the point
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** JSON string literal of `s`. Strings needing no escape (most) skip JSON.stringify. */
function quote(s: string): string {
  return s.length > 64 || NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** Quoted keys with their separators (`,"key":`); keys repeat from line to line. Bounded. */
const keyParts = new Map<string, string>();
const MAX_KEY_PARTS = 4096;

function keyPart(key: string): string {
  let part = keyParts.get(key);
  if (part === undefined) {
    part = `,${quote(key)}:`;
    if (keyParts.size < MAX_KEY_PARTS) keyParts.set(key, part);
  }
  return part;
}

const CIRCULAR = '"[Circular]"';
const UNREADABLE = '"[Unreadable]"';
const DEPTH_LIMIT = '"[Depth limit]"';

/**
 * The objects being serialized, outermost first: a repeat is a cycle, and its length is the depth.
 * Shared by all loggers; every push is popped in a `finally`, so it is empty between lines.
 */
const ancestors: object[] = [];

/** Two-digit fractions "00".."99", for {@link numberJson}. */
const TWO_DIGITS: readonly string[] = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, "0"));

/**
 * A finite number as JSON: the same text as `String(n)`. Numbers with at most three decimals below
 * 2^31 (durations in milliseconds, as the logging middleware writes them) are put together from their
 * integer parts: V8's shortest-round-trip formatting of a fraction costs several times more, and such a
 * number's shortest round-trip form is exactly its integer part, a dot and its 1–3 decimals.
 */
export function numberJson(n: number): string {
  if (!Number.isFinite(n)) return "null";
  const k = Math.round(n * 1000);
  if (k <= 0 || k >= 0x80000000 || k / 1000 !== n || k % 1000 === 0) return `${n}`;
  const whole = (k / 1000) | 0;
  const milli = k - whole * 1000;
  if (milli % 100 === 0) return `${whole}.${milli / 100}`;
  if (milli % 10 === 0) return `${whole}.${TWO_DIGITS[milli / 10]}`;
  return `${whole}.${milli < 100 ? (milli < 10 ? "00" : "0") : ""}${milli}`;
}

/**
 * JSON text of `value` as JSON.stringify writes it, except: a bigint is a string of its digits,
 * an Error is `{ name, message, code?, stack?, ...own fields, cause? }`, a Map is an object and a
 * Set an array, binary data is `"[N bytes]"`, a cycle `"[Circular]"`, a value that throws when read
 * (getter, toJSON, proxy) `"[Unreadable]"`, nesting deeper than 32 `"[Depth limit]"`. `undefined`,
 * functions and symbols give `undefined` (the key is left out, or `null` in an array).
 */
function valueJson(value: unknown, key: string): string | undefined {
  switch (typeof value) {
    case "string":
      return quote(value);
    case "number":
      return numberJson(value);
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      return `"${value}"`;
    case "object":
      return value === null ? "null" : objectJson(value, key);
    default:
      return undefined;
  }
}

function objectJson(value: object, key: string): string | undefined {
  if (ancestors.includes(value)) return CIRCULAR;
  if (ancestors.length >= MAX_DEPTH) return DEPTH_LIMIT;
  ancestors.push(value);
  try {
    if (Array.isArray(value)) return arrayJson(value);
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `"[${value.byteLength} bytes]"`;
    if (value instanceof Error) return errorJson(value);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") return valueJson(toJSON.call(value, key), key);
    if (value instanceof Map) return entriesJson(value);
    if (value instanceof Set) return arrayJson([...value]);
    return propertiesJson(value);
  } catch {
    return UNREADABLE;
  } finally {
    ancestors.pop();
  }
}

function arrayJson(array: readonly unknown[]): string {
  let out = "[";
  for (let i = 0; i < array.length; i++) {
    if (i > 0) out += ",";
    out += valueJson(array[i], `${i}`) ?? "null";
  }
  return `${out}]`;
}

/**
 * `,"key":value` for each own enumerable property of `object` not in `skip`, leaving out the ones
 * JSON leaves out (undefined, functions, symbols); "" if there are none.
 */
function membersJson(object: object, skip: ReadonlySet<string> | undefined): string {
  const record = object as Record<string, unknown>;
  let out = "";
  for (const key of Object.keys(object)) {
    if (skip?.has(key)) continue;
    out += memberJson(record, key);
  }
  return out;
}

/** `,"key":value` for one property, "" when it is left out; a property that throws is "[Unreadable]". */
function memberJson(record: Record<string, unknown>, key: string): string {
  let value: unknown;
  try {
    value = record[key];
  } catch {
    return keyPart(key) + UNREADABLE;
  }
  const json = typeof value === "string" ? quote(value) : valueJson(value, key);
  return json === undefined ? "" : keyPart(key) + json;
}

function propertiesJson(object: object): string {
  const members = membersJson(object, undefined);
  return members === "" ? "{}" : `{${members.slice(1)}}`;
}

function entriesJson(map: Map<unknown, unknown>): string {
  let out = "";
  for (const [key, value] of map) {
    const name = String(key);
    const json = valueJson(value, name);
    if (json !== undefined) out += `,${quote(name)}:${json}`;
  }
  return out === "" ? "{}" : `{${out.slice(1)}}`;
}

const ERROR_KEYS: ReadonlySet<string> = new Set(["name", "message", "code", "stack", "cause"]);

/** The shape `createRedactor` gives errors, so a line reads the same with and without redaction. */
function errorJson(error: Error): string {
  const record = error as unknown as Record<string, unknown>;
  const members =
    memberJson(record, "name") +
    memberJson(record, "message") +
    memberJson(record, "code") +
    memberJson(record, "stack") +
    membersJson(error, ERROR_KEYS) +
    memberJson(record, "cause");
  return members === "" ? "{}" : `{${members.slice(1)}}`;
}

/** Milliseconds "000".."999", for {@link isoTime}. */
const THREE_DIGITS: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));

let isoSecond = Number.NaN;
/** `"YYYY-MM-DDTHH:MM:SS."` of `isoSecond`, or "" when that year needs the six-digit form. */
let isoPrefix = "";

/**
 * `new Date(ms).toISOString()`, with the date and time up to the second formatted once per second:
 * `toISOString` costs about a microsecond, more than the rest of a log line. Exported for tests only;
 * the package entry does not export it.
 *
 * @internal
 */
export function isoTime(ms: number): string {
  const t = Math.trunc(ms); // as a Date does with a fraction of a millisecond
  const second = Math.floor(t / 1000);
  if (second !== isoSecond) {
    const full = new Date(second * 1000).toISOString(); // throws for NaN or out of range, caching nothing
    // Years outside 0000–9999 are written "+YYYYYY"/"-YYYYYY": no fixed-width prefix to reuse.
    isoPrefix = full.length === 24 ? full.slice(0, 20) : "";
    isoSecond = second;
  }
  return isoPrefix === "" ? new Date(t).toISOString() : `${isoPrefix}${THREE_DIGITS[t - second * 1000]}Z`;
}

let isoMs = Number.NaN;
let isoField = "";

/** `,"timestamp":"<ISO>"`, formatted once per millisecond. */
function isoTimestamp(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoField = `,"timestamp":"${isoTime(now)}"`;
  }
  return isoField;
}

function epochTimestamp(): string {
  return `,"timestamp":${Date.now()}`;
}

function noTimestamp(): string {
  return "";
}

// ---------------------------------------------------------------------------------------------------
// The sink: one buffer per destination, written once per event-loop turn.

type ExitFlushable = { flushSync(): void };

/**
 * Set once the process `exit` event has flushed the sinks: a line logged after that (by a later `exit`
 * listener) is written at once, since no event-loop turn is left to write it in.
 */
let exiting = false;

/** Sinks that write what they hold synchronously when the process exits. Weak, so an unclosed logger can be collected. */
const exitSinks = new Set<WeakRef<ExitFlushable>>();
const collected = new FinalizationRegistry<WeakRef<ExitFlushable>>((ref) => removeExitSink(ref));

/**
 * What the process `exit` listener runs: writes every exit-capable sink's buffer synchronously.
 * Exported for tests only; the package entry does not export it.
 *
 * @internal
 */
export function flushAllOnExit(): void {
  for (const ref of exitSinks) {
    try {
      ref.deref()?.flushSync();
    } catch {
      // Best effort: the process is exiting.
    }
  }
}

/**
 * The process `exit` listener: from then on lines are written as they are logged.
 * Exported for tests only; the package entry does not export it.
 *
 * @internal
 */
export function onProcessExit(): void {
  exiting = true;
  flushAllOnExit();
}

function addExitSink(sink: ExitFlushable): WeakRef<ExitFlushable> {
  const ref = new WeakRef(sink);
  if (exitSinks.size === 0) process.on("exit", onProcessExit);
  exitSinks.add(ref);
  collected.register(sink, ref, ref);
  return ref;
}

function removeExitSink(ref: WeakRef<ExitFlushable>): void {
  if (!exitSinks.delete(ref)) return;
  collected.unregister(ref);
  if (exitSinks.size === 0) process.off("exit", onProcessExit);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The number of line ends in `bytes`. */
function countLines(bytes: Buffer): number {
  let count = 0;
  for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) count++;
  return count;
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function warnWriteFailed(error: Error): void {
  process.emitWarning(`@svckit/log: writing log lines failed, later lines are dropped: ${error.message}`, {
    code: "SVCKIT_LOG_WRITE_FAILED",
  });
}

/** Buffers lines and writes them in batches to one stream or file descriptor. */
class Sink implements ExitFlushable {
  dropped = 0;
  /** A line telling how many lines were dropped; set by the logger that owns the sink. */
  droppedLine: (count: number) => string = () => "";
  private pending = "";
  private pendingLines = 0;
  private scheduled = false;
  /** Waiting for `drain` (stream) or for the retry after EAGAIN (file descriptor). */
  private blocked = false;
  private failed = false;
  private closed = false;
  private unreportedDrops = 0;
  /** Stream writes whose callback has not run yet. */
  private inFlight = 0;
  /** File descriptor bytes not written yet after EAGAIN. */
  private stalled: Buffer | undefined;
  private flushWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private exitRef: WeakRef<ExitFlushable> | undefined;
  private closing: Promise<void> | undefined;
  private readonly batchLength: number;

  constructor(
    private readonly stream: NodeJS.WritableStream | undefined,
    private readonly fd: number | undefined,
    private readonly ownsFd: boolean,
    private readonly maxBuffer: number,
    private readonly onError: (error: Error) => void,
  ) {
    this.batchLength = Math.min(BATCH_LENGTH, maxBuffer);
    if (stream !== undefined) stream.on("error", this.onStreamError);
    // Only writes that can finish during the exit event are worth attempting there: a file descriptor,
    // and process.stdout/stderr (synchronous for files and terminals; a pipe takes what fits at once).
    if (fd !== undefined || stream === process.stdout || stream === process.stderr) {
      this.exitRef = addExitSink(this);
    }
  }

  push(line: string): void {
    if (this.failed || this.closed) {
      this.dropped++;
      return;
    }
    const length = this.pending.length + line.length;
    if (this.blocked && length > this.maxBuffer) {
      this.dropped++;
      this.unreportedDrops++;
      return;
    }
    this.pending += line;
    this.pendingLines++;
    if (exiting) this.flushSync();
    else if (length >= this.batchLength) this.flushNow();
    else if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      setImmediate(this.onImmediate);
    }
  }

  flush(): Promise<void> {
    this.flushNow();
    if (this.settled()) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  /** Writes what is buffered synchronously, if that is possible; for the process `exit` event. */
  flushSync(): void {
    if (this.failed) return;
    if (this.fd !== undefined) {
      const pending = this.takePending();
      const chunks: Buffer[] = [];
      if (this.stalled !== undefined) chunks.push(this.stalled);
      if (pending !== undefined) chunks.push(Buffer.from(pending));
      this.stalled = undefined;
      for (let i = 0; i < chunks.length; i++) {
        const failure = this.writeFdSync(chunks[i] as Buffer);
        if (failure !== undefined) {
          // What did not go is lost: counted as dropped and reported (a half-written line included,
          // since later lines would only follow a broken one).
          this.stalled = Buffer.concat([failure.rest, ...chunks.slice(i + 1)]);
          this.fail(failure.error);
          return;
        }
      }
    } else if (this.stream !== undefined) {
      const chunk = this.takePending();
      if (chunk !== undefined) this.stream.write(chunk);
    }
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.inFlight > 0 && !this.failed) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    if (this.exitRef !== undefined) removeExitSink(this.exitRef);
    this.exitRef = undefined;
    if (this.stream !== undefined) {
      this.stream.removeListener("drain", this.onDrain);
      this.stream.removeListener("error", this.onStreamError);
    }
    if (this.ownsFd && this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch (error) {
        this.fail(error);
      }
    }
  }

  private readonly onImmediate = (): void => {
    this.scheduled = false;
    this.flushNow();
  };

  private readonly onDrain = (): void => {
    this.blocked = false;
    this.flushNow();
  };

  private readonly onStreamError = (error: unknown): void => {
    this.fail(error);
  };

  private readonly onWritten = (error?: Error | null): void => {
    this.inFlight--;
    if (error) this.fail(error);
    if (this.inFlight === 0) this.resolve(this.idleWaiters);
  };

  private readonly retry = (): void => {
    this.blocked = false;
    const stalled = this.stalled;
    this.stalled = undefined;
    if (stalled !== undefined) this.writeFd(stalled);
    this.flushNow();
  };

  /** The buffered lines, with a note of lines dropped since the last batch; undefined if none. */
  private takePending(): string | undefined {
    if (this.pending.length === 0) return undefined;
    let chunk = this.pending;
    this.pending = "";
    this.pendingLines = 0;
    if (this.unreportedDrops > 0) {
      chunk += this.droppedLine(this.unreportedDrops);
      this.unreportedDrops = 0;
    }
    return chunk;
  }

  private flushNow(): void {
    if (this.blocked || this.failed) return;
    const chunk = this.takePending();
    if (chunk !== undefined) {
      if (this.fd !== undefined) this.writeFdText(chunk);
      else this.writeStream(chunk);
    }
    if (this.settled()) this.resolve(this.flushWaiters);
  }

  private settled(): boolean {
    return this.failed || (this.pending.length === 0 && this.stalled === undefined);
  }

  private writeStream(chunk: string): void {
    const stream = this.stream as NodeJS.WritableStream;
    this.inFlight++;
    let accepted: boolean;
    try {
      accepted = stream.write(chunk, this.onWritten);
    } catch (error) {
      this.inFlight--;
      this.fail(error);
      return;
    }
    if (!accepted && !this.failed) {
      this.blocked = true;
      stream.once("drain", this.onDrain);
    }
  }

  /**
   * Writes a batch to the file descriptor as a string, so no Buffer is made for it (a batch is past
   * Buffer's pool size, so `Buffer.from` would allocate one outside the heap per batch). A write that
   * stops short goes on from the first byte not written.
   */
  private writeFdText(chunk: string): void {
    let written: number;
    try {
      written = writeSync(this.fd as number, chunk);
    } catch (error) {
      this.stall(Buffer.from(chunk), error);
      return;
    }
    if (written < Buffer.byteLength(chunk)) this.writeFd(Buffer.from(chunk), written);
  }

  private writeFd(bytes: Buffer, from = 0): void {
    let offset = from;
    while (offset < bytes.length) {
      try {
        offset += writeSync(this.fd as number, bytes, offset, bytes.length - offset);
      } catch (error) {
        this.stall(bytes.subarray(offset), error);
        return;
      }
    }
  }

  /** Keeps the bytes a failed write left; retries them later after EAGAIN, else fails the sink. */
  private stall(rest: Buffer, error: unknown): void {
    this.stalled = rest;
    if ((error as NodeJS.ErrnoException).code === "EAGAIN") {
      this.blocked = true;
      setTimeout(this.retry, RETRY_MS);
    } else this.fail(error);
  }

  /**
   * Writes all of `bytes`, sleeping between EAGAIN retries (at exit only) for as long as the descriptor
   * takes something within EXIT_PATIENCE_MS; what did not go and why, if it gave up.
   */
  private writeFdSync(bytes: Buffer): { rest: Buffer; error: unknown } | undefined {
    let offset = 0;
    let waited = 0;
    while (offset < bytes.length) {
      try {
        const written = writeSync(this.fd as number, bytes, offset, bytes.length - offset);
        offset += written;
        if (written > 0) waited = 0;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EAGAIN" || waited >= EXIT_PATIENCE_MS) {
          return { rest: bytes.subarray(offset), error };
        }
        sleepSync(RETRY_MS);
        waited += RETRY_MS;
      }
    }
    return undefined;
  }

  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    // Lines not handed over are dropped; a line half written to a file descriptor counts too.
    this.dropped += this.pendingLines;
    if (this.stalled !== undefined) this.dropped += countLines(this.stalled);
    this.pending = "";
    this.pendingLines = 0;
    this.stalled = undefined;
    try {
      this.onError(toError(error));
    } catch {
      // The error handler must not break logging either.
    }
    this.resolve(this.flushWaiters);
    this.resolve(this.idleWaiters);
  }

  private resolve(waiters: (() => void)[]): void {
    if (waiters.length === 0) return;
    const all = waiters.splice(0);
    for (const resolve of all) resolve();
  }
}

// ---------------------------------------------------------------------------------------------------
// The logger.

const LEVEL_NAMES = '"debug", "info", "warn" or "error"';

function isStream(value: unknown): value is NodeJS.WritableStream {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { write?: unknown }).write === "function" &&
    typeof (value as { on?: unknown }).on === "function"
  );
}

/** `String(value)`, or "[Unreadable]" when that throws. */
function stringOf(value: unknown): string {
  try {
    return String(value);
  } catch {
    return "[Unreadable]";
  }
}

function isPlainFields(value: unknown): value is LogFields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function validate(options: JsonLoggerOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("createJsonLogger: options must be an object");
  }
  const { level, destination, base, timestamp, maxBufferBytes, onError, redact } = options;
  if (level !== undefined && rankOf(level) === 0) {
    throw new TypeError(`createJsonLogger: options.level must be ${LEVEL_NAMES}, got ${String(level)}`);
  }
  if (
    destination !== undefined &&
    !isStream(destination) &&
    !(typeof destination === "number" && Number.isInteger(destination) && destination >= 0) &&
    !(typeof destination === "string" && destination !== "")
  ) {
    throw new TypeError(
      "createJsonLogger: options.destination must be a writable stream, a file descriptor or a file path",
    );
  }
  if (base !== undefined && !isPlainFields(base)) {
    throw new TypeError("createJsonLogger: options.base must be an object of fields");
  }
  if (timestamp !== undefined && timestamp !== "iso" && timestamp !== "epoch" && timestamp !== false) {
    throw new TypeError(
      `createJsonLogger: options.timestamp must be "iso", "epoch" or false, got ${String(timestamp)}`,
    );
  }
  if (maxBufferBytes !== undefined && !(Number.isFinite(maxBufferBytes) && maxBufferBytes >= 1)) {
    throw new RangeError(
      `createJsonLogger: options.maxBufferBytes must be a finite number ≥ 1, got ${String(maxBufferBytes)}`,
    );
  }
  if (onError !== undefined && typeof onError !== "function") {
    throw new TypeError("createJsonLogger: options.onError must be a function");
  }
  if (redact !== undefined && redact !== false && (typeof redact !== "object" || redact === null)) {
    throw new TypeError("createJsonLogger: options.redact must be redaction options or false");
  }
}

/**
 * Writes one line of a prepared shape: `values[i]` is the value of the prepared tail key `i`
 * (`undefined` leaves the field out). Never throws.
 */
export type PreparedLine = (values: readonly unknown[]) => void;

/**
 * Internal, not exported from the package: the key of a {@link JsonLogger}'s method that serializes a
 * line's level, message and leading fields once, for a caller that writes many lines differing only
 * in a few trailing fields (the logging middleware: the same endpoint, route and code on every call;
 * only the duration and trace id change). Saves building and serializing the whole field object per
 * line. The method returns `undefined` when a line of that shape cannot be prepared (a field name the
 * logger writes itself or that clashes with a base field, or redaction that would change a tail
 * field): the caller then logs the usual way.
 */
export const prepareLine: unique symbol = Symbol("svckit.log.prepareLine");

/** The signature of the {@link prepareLine} method. */
export type PrepareLine = (
  level: LogLevel,
  message: string,
  fixed: LogFields,
  tailKeys: readonly string[],
  tailSample: LogFields,
) => PreparedLine | undefined;

/** A logger that may offer {@link prepareLine}. */
export type MaybePreparing = { [prepareLine]?: PrepareLine };

/** What a logger and its children share, besides the sink. */
interface Shared {
  sink: Sink;
  minRank: number;
  level: LogLevel;
  redactor: Redactor | undefined;
  timestamp: () => string;
  /** Keys a line's fields may not use: the ones the logger writes itself. */
  reserved: ReadonlySet<string>;
}

function makeLogger(shared: Shared, baseFields: LogFields, root: boolean): JsonLogger {
  const { sink, minRank, redactor, timestamp, reserved } = shared;
  const cleanBase = redactor === undefined ? baseFields : (redactor(baseFields) as LogFields);
  const baseKeys: ReadonlySet<string> = new Set(Object.keys(cleanBase).filter((k) => !reserved.has(k)));
  /** `,"k":v` for each base field, written once. */
  const basePart = membersJson(cleanBase, reserved);
  const skipTimestamp = reserved.has("timestamp");

  /** The JSON text after the message: base fields, then the line's own (which win on a clash). */
  function fieldsJson(fields: unknown): string {
    if (typeof fields !== "object" || fields === null) return basePart;
    const record = fields as Record<string, unknown>;
    let keys: string[];
    try {
      keys = Object.keys(record);
    } catch {
      return `${basePart},"fields":${UNREADABLE}`;
    }
    let out = "";
    let clashes: Set<string> | undefined;
    for (const key of keys) {
      if (key === "level" || key === "message" || (key === "timestamp" && skipTimestamp)) continue;
      const member = memberJson(record, key);
      if (member === "") continue;
      out += member;
      if (baseKeys.size !== 0 && baseKeys.has(key)) {
        clashes ??= new Set(reserved);
        clashes.add(key);
      }
    }
    return clashes === undefined ? basePart + out : membersJson(cleanBase, clashes) + out;
  }

  /** A line's JSON text after the timestamp, without the closing brace: message, base fields, fields. */
  function body(message: unknown, fields: unknown): string {
    const text = typeof message === "string" ? message : stringOf(message);
    const cleanMessage = redactor === undefined ? text : (redactor(text) as string);
    let cleanFields = fields;
    if (redactor !== undefined && typeof fields === "object" && fields !== null) {
      cleanFields = redactor(fields);
      if (typeof cleanFields !== "object") cleanFields = { fields: cleanFields };
    }
    return `,"message":${quote(cleanMessage)}${fieldsJson(cleanFields)}`;
  }

  function line(level: LogLevel, message: unknown, fields: unknown): string {
    return `${OPENINGS[level]}${timestamp()}${body(message, fields)}}\n`;
  }

  const prepare: PrepareLine = (level, message, fixed, tailKeys, tailSample) => {
    const keys = [...Object.keys(fixed), ...tailKeys];
    if (keys.some((key) => reserved.has(key) || baseKeys.has(key))) return undefined;
    if (redactor !== undefined) {
      const clean = redactor(tailSample) as LogFields;
      for (const key of tailKeys) if (clean[key] !== tailSample[key]) return undefined;
    }
    const opening = OPENINGS[level];
    const middle = body(message, fixed);
    const tailParts = tailKeys.map(keyPart);
    const count = tailKeys.length;
    return function writePrepared(values: readonly unknown[]): void {
      try {
        let tail = "";
        for (let i = 0; i < count; i++) {
          let value = values[i];
          if (value === undefined) continue;
          // The sample checked the keys; a string's content may still hold a credential to scrub.
          if (redactor !== undefined && typeof value === "string") value = redactor(value);
          const json = valueJson(value, tailKeys[i] as string);
          if (json !== undefined) tail += (tailParts[i] as string) + json;
        }
        sink.push(`${opening}${timestamp()}${middle}${tail}}\n`);
      } catch {
        // As log(): a line that cannot be written is lost, never thrown.
      }
    };
  };

  const logger: JsonLogger & { [prepareLine]: PrepareLine } = {
    [prepareLine]: prepare,
    level: shared.level,
    get dropped() {
      return sink.dropped;
    },
    log(level: LogLevel, message: string, fields: LogFields): void {
      try {
        if (rankOf(level) < minRank) return;
        sink.push(line(level, message, fields));
      } catch {
        // A log call never throws: a value that defeats even the safe serializer loses its line.
      }
    },
    isLevelEnabled(level: LogLevel): boolean {
      return rankOf(level) >= minRank;
    },
    child(fields: LogFields): JsonLogger {
      return makeLogger(shared, isPlainFields(fields) ? { ...baseFields, ...fields } : baseFields, false);
    },
    flush: () => sink.flush(),
    close: () => sink.close(),
    [Symbol.asyncDispose]: () => sink.close(),
  };
  if (root) {
    const note = quote("dropped log lines: the destination did not keep up");
    sink.droppedLine = (count) =>
      `{"level":"warn"${timestamp()},"message":${note}${basePart},"droppedLines":${count}}\n`;
  }
  return logger;
}

/**
 * Makes a fast {@link Logger} that writes one JSON object per line: `level`, `timestamp`, `message`,
 * the `base` fields, then the line's fields (the field names the winston logger of
 * `@svckit/log/winston` writes, so log queries keep working when you switch). Lines are redacted like
 * the winston logger's, gathered in memory and written once per event-loop turn (or when 64 KiB have
 * gathered); while the destination does not keep up they wait, up to `maxBufferBytes`, then are dropped
 * and counted. Writing never throws into your code: the first failure goes to `onError`.
 *
 * Field values: strings, finite numbers, booleans and null as JSON; `NaN` and `±Infinity` as `null`;
 * a bigint as a string of its digits; an Error as `{ name, message, code?, stack?, ...fields, cause? }`;
 * Dates and other `toJSON` values as their JSON; a Map as an object, a Set as an array, binary data as
 * `"[N bytes]"`; cycles as `"[Circular]"`, values that throw when read as `"[Unreadable]"`;
 * `undefined`, functions and symbols are left out. A field named `level`, `message` or (when written)
 * `timestamp` is ignored.
 *
 * With a file descriptor or path destination, what is still buffered when the process exits
 * (`process.exit()`, an uncaught exception, an empty event loop) is written synchronously; with
 * `process.stdout`/`process.stderr` it is passed to their `write` then (synchronous for files and
 * terminals, not for a full pipe). A signal that kills the process loses it, and other streams get
 * nothing at exit: `await logger.close()` first.
 *
 * @example
 * ```ts
 * const logger = createJsonLogger({ base: { service: "addsvc" } });
 * const logged = logging({ logger, name: "sum" })(sum);
 * logger.log("info", "listening", { port: 8080 });
 * // {"level":"info","timestamp":"2025-01-01T00:00:00.000Z","message":"listening","service":"addsvc","port":8080}
 * ```
 */
export function createJsonLogger(options: JsonLoggerOptions = {}): JsonLogger {
  validate(options);
  const level = options.level ?? "info";
  const redactor = options.redact === false ? undefined : createRedactor(options.redact);
  const timestampOption = options.timestamp ?? "iso";
  const timestamp =
    timestampOption === "iso" ? isoTimestamp : timestampOption === "epoch" ? epochTimestamp : noTimestamp;
  const reserved: ReadonlySet<string> = new Set(
    timestampOption === false ? ["level", "message"] : ["level", "message", "timestamp"],
  );
  const destination = options.destination ?? process.stdout;
  const maxBuffer = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER;
  const onError = options.onError ?? warnWriteFailed;

  let sink: Sink;
  if (typeof destination === "number") sink = new Sink(undefined, destination, false, maxBuffer, onError);
  else if (typeof destination === "string") {
    sink = new Sink(undefined, openSync(destination, "a"), true, maxBuffer, onError);
  } else sink = new Sink(destination, undefined, false, maxBuffer, onError);

  const shared: Shared = {
    sink,
    minRank: rankOf(level),
    level,
    redactor,
    timestamp,
    reserved,
  };
  return makeLogger(shared, options.base ?? {}, true);
}
