import {
  Code,
  type CodeName,
  codeFromString,
  ServiceError,
  type ServiceErrorOptions,
} from "@svckit/endpoint";

/**
 * The error codes the JSON-RPC 2.0 specification reserves, by name.
 *
 * @example
 * ```ts
 * new JsonRpcError(JsonRpcErrorCode.INVALID_PARAMS, Code.INVALID_ARGUMENT, "b must be a number");
 * ```
 */
export const JsonRpcErrorCode = {
  /** Invalid JSON was received. */
  PARSE_ERROR: -32700,
  /** The JSON sent is not a valid Request object. */
  INVALID_REQUEST: -32600,
  /** The method does not exist. */
  METHOD_NOT_FOUND: -32601,
  /** Invalid method parameters. */
  INVALID_PARAMS: -32602,
  /** Internal JSON-RPC error. */
  INTERNAL_ERROR: -32603,
} as const;

/** The `error` member of a JSON-RPC response. */
export interface JsonRpcErrorObject {
  /** An integer: one of {@link JsonRpcErrorCode}, or in the server-error range -32000..-32099, or the application's own. */
  readonly code: number;
  /** A short description of the error. */
  readonly message: string;
  /** More about the error; svckit sends `{ code: "<CODE_NAME>", details? }`. */
  readonly data?: unknown;
}

/** Options of {@link JsonRpcError}: a ServiceError's options plus the `data` member to send. */
export interface JsonRpcErrorOptions extends ServiceErrorOptions {
  /** The JSON-RPC error's `data` member; not sent when `undefined`. */
  data?: unknown;
}

/** The errors {@link createRemoteJsonRpcError} made: those the client decoded from an answer. */
const remoteErrors = new WeakSet<JsonRpcError>();

/**
 * A {@link ServiceError} that also carries a JSON-RPC error code (`rpcCode`) and `data`. The client
 * throws one for every JSON-RPC error it receives, so callers see both the canonical code and the
 * wire code ({@link JsonRpcError.remote} is then `true`). One constructed in this process and thrown
 * by a method is sent as it is: its `rpcCode` and `data` rather than the code its `Code` maps to.
 * One the client received and a method lets through is sent by the default error encoder with its
 * `rpcCode` only when that is an application code; a code of the reserved range -32768..-32000
 * described the downstream call, not this one, so its canonical `code` is sent instead.
 *
 * @example
 * ```ts
 * throw new JsonRpcError(-32050, Code.UNAVAILABLE, "upstream is down", { data: { retryAfter: 2 } });
 * ```
 */
export class JsonRpcError extends ServiceError {
  /** The JSON-RPC error code. */
  readonly rpcCode: number;
  /** The JSON-RPC error's `data` member, if any. */
  readonly data: unknown;

  /**
   * @param rpcCode - the JSON-RPC error code (an integer).
   * @param code - the canonical code (what svckit middleware and other transports see).
   * @param message - what clients are told.
   * @param options - cause, details, metadata and the `data` member.
   */
  constructor(rpcCode: number, code: Code, message: string, options?: JsonRpcErrorOptions) {
    super(code, message, options);
    this.rpcCode = rpcCode;
    this.data = options?.data;
  }

  /**
   * `true` when this package's client made this error from a JSON-RPC error object a server sent:
   * `rpcCode` and `data` are that server's, describing its exchange with this process. `false` for
   * one constructed in this process (by a method, or by this package's server for the protocol
   * errors it answers). Read-only: only the client sets it.
   *
   * @example
   * ```ts
   * const errorEncoder: JsonRpcErrorEncoder = (ctx, error) =>
   *   error instanceof JsonRpcError && error.remote
   *     ? { code: -32099, message: `downstream: ${error.message}` }
   *     : defaultJsonRpcErrorEncoder(ctx, error);
   * ```
   */
  get remote(): boolean {
    return remoteErrors.has(this);
  }
}

/**
 * A {@link JsonRpcError} decoded from a server's answer: its {@link JsonRpcError.remote} is `true`.
 * Internal: only the client makes these.
 */
export function createRemoteJsonRpcError(
  rpcCode: number,
  code: Code,
  message: string,
  options?: JsonRpcErrorOptions,
): JsonRpcError {
  const error = new JsonRpcError(rpcCode, code, message, options);
  remoteErrors.add(error);
  return error;
}

/**
 * Whether `rpcCode` is in the range JSON-RPC 2.0 reserves, -32768..-32000: its pre-defined codes
 * ({@link JsonRpcErrorCode}) and the implementation-defined server errors (-32000..-32099, where
 * svckit puts {@link codeToJsonRpcCode}). Every other integer is an application's own code.
 */
export function isReservedJsonRpcCode(rpcCode: number): boolean {
  return rpcCode >= -32768 && rpcCode <= -32000;
}

/**
 * Code → JSON-RPC error code used by the default error encoder for errors raised by methods.
 * `INTERNAL` is the specification's -32603; every other code `c` is `-32000 - c`, inside the
 * server-error range -32000..-32099 (`UNAVAILABLE` → -32014, `RESOURCE_EXHAUSTED` → -32008).
 * Typed `Record<Code, number>` so a missing code fails to compile.
 *
 * An `INVALID_ARGUMENT` thrown by a method's params decoder is answered -32602 (invalid params)
 * instead; the same code thrown by the endpoint (a service's own error) keeps -32003.
 *
 * @example
 * ```ts
 * codeToJsonRpcCode[Code.NOT_FOUND]; // -32005
 * ```
 */
export const codeToJsonRpcCode: Readonly<Record<Code, number>> = {
  0: -32000,
  1: -32001,
  2: -32002,
  3: -32003,
  4: -32004,
  5: -32005,
  6: -32006,
  7: -32007,
  8: -32008,
  9: -32009,
  10: -32010,
  11: -32011,
  12: -32012,
  13: JsonRpcErrorCode.INTERNAL_ERROR,
  14: -32014,
  15: -32015,
  16: -32016,
};

/**
 * JSON-RPC error code → Code, for error objects without svckit's `data.code`: -32601 → UNIMPLEMENTED,
 * -32602 → INVALID_ARGUMENT, -32603, -32700 and -32600 → INTERNAL (the latter two mean the client sent
 * something the server could not read: a bug on the calling side), -32001..-32016 → the code
 * {@link codeToJsonRpcCode} maps there, anything else → UNKNOWN.
 *
 * @example
 * ```ts
 * jsonRpcCodeToCode(-32014); // Code.UNAVAILABLE
 * jsonRpcCodeToCode(-32601); // Code.UNIMPLEMENTED
 * ```
 */
export function jsonRpcCodeToCode(rpcCode: number): Code {
  switch (rpcCode) {
    case JsonRpcErrorCode.METHOD_NOT_FOUND:
      return Code.UNIMPLEMENTED;
    case JsonRpcErrorCode.INVALID_PARAMS:
      return Code.INVALID_ARGUMENT;
    case JsonRpcErrorCode.PARSE_ERROR:
    case JsonRpcErrorCode.INVALID_REQUEST:
    case JsonRpcErrorCode.INTERNAL_ERROR:
      return Code.INTERNAL;
  }
  const code = -32000 - rpcCode;
  return Number.isInteger(code) && code >= 1 && code <= 16 ? (code as Code) : Code.UNKNOWN;
}

/** The code named by svckit's `data: { code: "<CODE_NAME>" }`, if `data` holds one (OK does not count). */
export function codeFromData(data: unknown): Code | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const name = (data as { code?: unknown }).code;
  if (typeof name !== "string") return undefined;
  const code = codeFromString(name);
  return code === Code.OK ? undefined : code;
}

/** svckit's `data` member for a ServiceError: its code name and, when it has any, its details. */
export function errorData(error: ServiceError): { code: CodeName; details?: unknown } {
  return error.details.length > 0
    ? { code: error.codeName, details: error.details }
    : { code: error.codeName };
}
