import {
  type CallInfo,
  Code,
  type CodeName,
  type Context,
  callInfoKey,
  codeNames,
  type Endpoint,
  type GenericMiddleware,
  type Metadata,
  type Middleware,
  ServiceError,
} from "@svckit/endpoint";
import { type MaybePreparing, type PreparedLine, prepareLine } from "./json-logger.js";
import type { LogFields, Logger, LogLevel } from "./logger.js";
import { createRedactor, type RedactOptions } from "./redact.js";
import { traceIdFromMetadata, traceIdOf } from "./trace.js";

/** Which side of a call a middleware wraps: a served endpoint or a client endpoint. */
export type CallKind = "server" | "client";

/** A level to log a code at, or `"off"` to log no line for it. */
export type CodeLevel = LogLevel | "off";

/**
 * The level each code is logged at by default. Server faults (the callee broke) are `error`, client
 * faults (the caller asked for something wrong or not allowed) are `warn`, success and a caller that
 * cancelled are `info`. The same table serves client endpoints, where a remote server fault is an
 * `error` of the dependency.
 */
export const defaultCodeLevels: Readonly<Record<CodeName, LogLevel>> = Object.freeze({
  OK: "info",
  CANCELLED: "info",
  UNKNOWN: "error",
  INVALID_ARGUMENT: "warn",
  DEADLINE_EXCEEDED: "error",
  NOT_FOUND: "warn",
  ALREADY_EXISTS: "warn",
  PERMISSION_DENIED: "warn",
  RESOURCE_EXHAUSTED: "warn",
  FAILED_PRECONDITION: "warn",
  ABORTED: "warn",
  OUT_OF_RANGE: "warn",
  UNIMPLEMENTED: "error",
  INTERNAL: "error",
  UNAVAILABLE: "error",
  DATA_LOSS: "error",
  UNAUTHENTICATED: "warn",
});

/**
 * Adds fields of your own to a call's line. Gets the response on success and the error (as a
 * {@link ServiceError}) on failure. Its fields are redacted like the rest; they never replace the
 * middleware's own. If it throws, the line is written without them.
 */
export type LogFieldsHook<Req, Res> = (
  ctx: Context,
  request: Req,
  response: Res | undefined,
  error: ServiceError | undefined,
) => LogFields | undefined;

/** Options of {@link logging}. */
export interface LoggingOptions<Req = unknown, Res = unknown> {
  /** Where lines go. */
  logger: Logger;
  /** The endpoint's name, as written in your code (e.g. `"sum"`). */
  name: string;
  /** `"server"` (default) for served endpoints, `"client"` for client endpoints. */
  kind?: CallKind;
  /**
   * The transport. On a server endpoint it defaults to the transport's `CallInfo`; on a client
   * endpoint only this option tells it (the context there is the caller's).
   */
  transport?: string;
  /** The method (`"POST"`, `"/pb.Add/Sum"`); defaults like `transport`. */
  method?: string;
  /** The route template (`"/users/:id"`); defaults like `transport`. */
  route?: string;
  /**
   * Metadata keys to log under `metadata` (e.g. `["user-agent", "x-request-id"]`): the incoming
   * metadata on a server endpoint, the outgoing metadata on a client endpoint. Redacted like the rest.
   */
  metadata?: readonly string[];
  /** Adds fields of your own to each line. */
  fields?: LogFieldsHook<Req, Res>;
  /** Levels per code name that replace {@link defaultCodeLevels}; `"off"` writes no line. */
  levels?: Partial<Record<CodeName, CodeLevel>>;
  /** What to redact in each line (default: {@link defaultRedactKeys} and credentials in strings). */
  redact?: RedactOptions;
}

const LEVELS: ReadonlySet<string> = new Set(["debug", "info", "warn", "error", "off"]);

/** Whether `redactor` leaves every value of `fields` as it is. */
function untouched(redactor: (value: unknown) => unknown, fields: LogFields): boolean {
  const out = redactor(fields) as LogFields;
  for (const key of Object.keys(fields)) if (out[key] !== fields[key]) return false;
  return true;
}
const MAX_METADATA_KEYS = 32;

/** The fields a prepared line of a successful call ends with, and sample values to check redaction. */
const TAIL_KEYS: readonly string[] = ["durationMs", "traceId"];
const TAIL_SAMPLE: LogFields = { durationMs: 1, traceId: "0af7651916cd43dd8448eb211c80319c" };

function validate(options: LoggingOptions<never, never>): void {
  if (typeof options !== "object" || options === null) throw new TypeError("logging: options are required");
  if (typeof options.logger?.log !== "function") {
    throw new TypeError("logging: options.logger must have a log(level, message, fields) method");
  }
  if (typeof options.name !== "string" || options.name === "") {
    throw new TypeError("logging: options.name must be a non-empty string");
  }
  if (options.kind !== undefined && options.kind !== "server" && options.kind !== "client") {
    throw new TypeError(`logging: options.kind must be "server" or "client", got ${String(options.kind)}`);
  }
  for (const key of ["transport", "method", "route"] as const) {
    if (options[key] !== undefined && typeof options[key] !== "string") {
      throw new TypeError(`logging: options.${key} must be a string`);
    }
  }
  if (options.metadata !== undefined) {
    if (!Array.isArray(options.metadata) || options.metadata.some((k) => typeof k !== "string" || k === "")) {
      throw new TypeError("logging: options.metadata must be an array of non-empty strings");
    }
    if (options.metadata.length > MAX_METADATA_KEYS) {
      throw new RangeError(`logging: options.metadata may name at most ${MAX_METADATA_KEYS} keys`);
    }
  }
  if (options.fields !== undefined && typeof options.fields !== "function") {
    throw new TypeError("logging: options.fields must be a function");
  }
  for (const [name, level] of Object.entries(options.levels ?? {})) {
    if (!Object.hasOwn(Code, name))
      throw new TypeError(`logging: options.levels has an unknown code "${name}"`);
    if (!LEVELS.has(level as string)) {
      throw new TypeError(
        `logging: options.levels.${name} must be "debug", "info", "warn", "error" or "off", got ${String(level)}`,
      );
    }
  }
}

/**
 * Logs one structured line per call: `endpoint`, `kind`, `transport`, `method`, `route`, `code`
 * (the code name), `durationMs` (rounded to µs), `traceId` (from {@link traceIdKey} or a valid
 * incoming `traceparent`, on clients also an outgoing one), the chosen `metadata`, your `fields`, and on failure `error` (the message) and
 * `cause` (what was thrown originally, with its stack). The message reads `served sum: OK` or
 * `called users.get: UNAVAILABLE`. The level depends on the code ({@link defaultCodeLevels}).
 *
 * Every line is redacted, and logging never fails a call: a logger or hook that throws (or rejects)
 * is ignored. A thrown value that is not a ServiceError is logged as `ServiceError.from` sees it
 * (INTERNAL) and rethrown unchanged.
 *
 * @example
 * ```ts
 * const logged = logging({ logger, name: "sum", metadata: ["user-agent"] })(sum);
 * // info "served sum: OK" { endpoint: "sum", kind: "server", transport: "http", method: "POST",
 * //   route: "/sum", code: "OK", durationMs: 0.412, metadata: { "user-agent": "curl/8.5.0" } }
 * ```
 */
export function logging(options: LoggingOptions): GenericMiddleware;
/** The same, with a `fields` hook typed for one request and response type. */
export function logging<Req, Res>(options: LoggingOptions<Req, Res>): Middleware<Req, Res>;
export function logging<Req, Res>(options: LoggingOptions<Req, Res>): Middleware<Req, Res> {
  validate(options as LoggingOptions<never, never>);
  const { logger, name, fields: hook } = options;
  const kind: CallKind = options.kind ?? "server";
  const server = kind === "server";
  const redactor = createRedactor(options.redact);
  // A line's own fields (the endpoint name, kind, transport, method, route template, code, duration,
  // trace id) are values svckit produced, not what a caller sent: a line holding nothing else is
  // redacted only if the redaction would change them — checked once for the fixed names and values,
  // and once per call description (transports reuse one CallInfo per method and route).
  const fixedSafe = untouched(redactor, { endpoint: name, kind, code: "OK", ...TAIL_SAMPLE });
  const safeInfos = new WeakMap<object, boolean>();
  function infoSafe(line: LogFields, info: object | undefined): boolean {
    if (!fixedSafe) return false;
    const key = info ?? options;
    let safe = safeInfos.get(key);
    if (safe === undefined) {
      const described: LogFields = {};
      for (const field of ["transport", "method", "route"]) {
        if (line[field] !== undefined) described[field] = line[field];
      }
      safe = untouched(redactor, described);
      safeInfos.set(key, safe);
    }
    return safe;
  }
  const metadataKeys = options.metadata?.map((k) => k.toLowerCase());
  const levels: Record<string, CodeLevel> = { ...defaultCodeLevels, ...options.levels };
  /** Messages per code, built once each. */
  const messages: (string | undefined)[] = [];
  const verb = server ? "served" : "called";

  function messageFor(code: Code): string {
    let message = messages[code];
    if (message === undefined) {
      message = `${verb} ${name}: ${codeNames[code]}`;
      messages[code] = message;
    }
    return message;
  }

  function enabled(level: LogLevel): boolean {
    const check = logger.isLevelEnabled;
    return typeof check !== "function" || check.call(logger, level) !== false;
  }

  function pickMetadata(
    md: Metadata,
    keys: readonly string[],
  ): Record<string, string | string[]> | undefined {
    let out: Record<string, string | string[]> | undefined;
    for (const key of keys) {
      if (!md.has(key)) continue;
      const all = md.getAll(key);
      out ??= Object.create(null) as Record<string, string | string[]>;
      out[key] = all.length === 1 ? (all[0] as string) : all;
    }
    return out;
  }

  /** The fields every line about a call described by `info` starts with. */
  function describe(info: CallInfo | undefined, code: CodeName): LogFields {
    const line: LogFields = { endpoint: name, kind };
    const transport = options.transport ?? info?.transport;
    if (transport !== undefined) line.transport = transport;
    const method = options.method ?? info?.method;
    if (method !== undefined) line.method = method;
    const route = options.route ?? info?.route;
    if (route !== undefined) line.route = route;
    line.code = code;
    return line;
  }

  // Lines of successful calls differ only in duration and trace id: with svckit's JSON logger their
  // leading part is serialized once per call description (see prepareLine) instead of on every call.
  const preparer = (logger as MaybePreparing)[prepareLine];
  const prepared = new WeakMap<object, PreparedLine | null>();
  function preparedOk(info: CallInfo | undefined, level: LogLevel): PreparedLine | undefined {
    if (preparer === undefined) return undefined;
    const key = info ?? options;
    let line = prepared.get(key);
    if (line === undefined) {
      const fixed = describe(info, "OK");
      line = infoSafe(fixed, info)
        ? (preparer.call(logger, level, messageFor(Code.OK), fixed, TAIL_KEYS, TAIL_SAMPLE) ?? null)
        : null;
      prepared.set(key, line);
    }
    return line ?? undefined;
  }

  function emit(
    ctx: Context,
    request: Req,
    response: Res | undefined,
    failed: boolean,
    thrown: unknown,
    start: number,
  ): void {
    try {
      const error = failed ? ServiceError.from(thrown) : undefined;
      const code = error === undefined ? Code.OK : error.code;
      const level = levels[codeNames[code]] ?? "info";
      if (level === "off" || !enabled(level)) return;
      const durationMs = Math.round((performance.now() - start) * 1000) / 1000;

      const info = server ? ctx.value(callInfoKey) : undefined;
      // A client call's trace context may only be in what it sends.
      const traceId = traceIdOf(ctx) ?? (server ? undefined : traceIdFromMetadata(ctx.outgoingMetadata));
      const md =
        metadataKeys === undefined
          ? undefined
          : pickMetadata(server ? ctx.metadata : ctx.outgoingMetadata, metadataKeys);
      if (error === undefined && md === undefined && hook === undefined) {
        const prepared = preparedOk(info, level);
        if (prepared !== undefined) {
          prepared([durationMs, traceId]);
          return;
        }
      }
      const line = describe(info, codeNames[code]);
      line.durationMs = durationMs;
      if (traceId !== undefined) line.traceId = traceId;
      let redact = !infoSafe(line, info);
      if (md !== undefined) {
        line.metadata = md;
        redact = true;
      }
      if (error !== undefined) {
        line.error = error.message;
        if (error.cause !== undefined) line.cause = error.cause;
        redact = true;
      }
      if (hook !== undefined) {
        addHookFields(line, hook, ctx, request, response, error);
        redact = true;
      }

      const out = redact ? (redactor(line) as LogFields) : line;
      const result: unknown = logger.log(level, messageFor(code), out);
      if (isThenable(result)) result.then(undefined, ignore);
    } catch {
      // Logging must never fail the call.
    }
  }

  return function loggingMiddleware(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    // A `.then` continuation instead of an async function (as the metrics middleware): one promise
    // fewer per call, with the same result, error and timing.
    return function loggingEndpoint(ctx: Context, request: Req): Promise<Res> {
      const start = performance.now();
      let pending: Promise<Res>;
      try {
        pending = next(ctx, request);
      } catch (err) {
        // As an async function would: a synchronous throw becomes a rejection.
        emit(ctx, request, undefined, true, err, start);
        return Promise.reject(err);
      }
      return Promise.resolve(pending).then(
        (response) => {
          emit(ctx, request, response, false, undefined, start);
          return response;
        },
        (err: unknown) => {
          emit(ctx, request, undefined, true, err, start);
          throw err;
        },
      );
    };
  };
}

function addHookFields<Req, Res>(
  line: LogFields,
  hook: LogFieldsHook<Req, Res>,
  ctx: Context,
  request: Req,
  response: Res | undefined,
  error: ServiceError | undefined,
): void {
  let extra: LogFields | undefined;
  let keys: string[];
  try {
    extra = hook(ctx, request, response, error);
    if (typeof extra !== "object" || extra === null) return;
    keys = Object.keys(extra);
  } catch {
    return;
  }
  for (const key of keys) {
    if (key === "__proto__" || Object.hasOwn(line, key)) continue;
    try {
      line[key] = extra[key];
    } catch {
      line[key] = "[Unreadable]";
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

function ignore(): void {}
