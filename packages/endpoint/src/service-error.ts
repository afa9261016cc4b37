import { Code, type CodeName, codeToString, isCode } from "./code.js";
import { createMetadata, emptyMetadata, type Metadata, type MetadataInit } from "./metadata.js";

/**
 * A typed detail attached to an error, like an entry of google.rpc.Status.details.
 * `type` names the detail (e.g. `"google.rpc.BadRequest"` or your own); `value` is a JSON value for
 * HTTP transports, or the encoded message bytes for binary transports.
 */
export interface ErrorDetail {
  /** The detail's type name. */
  readonly type: string;
  /** The detail's payload. */
  readonly value: unknown;
}

/** Options of {@link ServiceError}. */
export interface ServiceErrorOptions {
  /** The underlying error. Kept for logs; never sent to clients. */
  cause?: unknown;
  /** Typed details sent to clients with the code and message. */
  details?: readonly ErrorDetail[];
  /** Metadata sent with the error (HTTP headers / gRPC trailers). */
  metadata?: MetadataInit;
}

const defaultMessages: Readonly<Record<Code, string>> = {
  0: "ok",
  1: "operation was cancelled",
  2: "unknown error",
  3: "invalid argument",
  4: "deadline exceeded",
  5: "not found",
  6: "already exists",
  7: "permission denied",
  8: "resource exhausted",
  9: "failed precondition",
  10: "aborted",
  11: "out of range",
  12: "unimplemented",
  13: "internal error",
  14: "unavailable",
  15: "data loss",
  16: "unauthenticated",
};

/**
 * The one error type of svckit. It carries a canonical {@link Code}, a message meant for clients,
 * optional typed details and metadata, and an optional `cause` that stays on the server.
 * Transports turn it into an HTTP status and body or a gRPC status, and back again on clients, so
 * a code raised in a service reaches the caller unchanged.
 *
 * `instanceof ServiceError` also recognises errors made by another copy of this package (by `name`
 * and `code`), so two installed versions still agree.
 *
 * @example
 * ```ts
 * throw new ServiceError(Code.INVALID_ARGUMENT, "s must not be empty");
 * ```
 */
export class ServiceError extends Error {
  /** The canonical status code. */
  readonly code: Code;
  /** Typed details for clients. */
  readonly details: readonly ErrorDetail[];
  /** Metadata sent with the error. */
  readonly metadata: Metadata;

  /**
   * @param code - the canonical code.
   * @param message - what clients are told; defaults to a generic text for the code.
   * @param options - cause, details and metadata.
   */
  constructor(code: Code, message?: string, options?: ServiceErrorOptions) {
    // An error is never OK: a code of 0 (or none of the 17) would be answered as a success (HTTP 200).
    const known = isCode(code) && code !== Code.OK;
    super(
      message ?? (known ? defaultMessages[code] : undefined) ?? "unknown error",
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = known ? code : Code.UNKNOWN;
    this.details = options?.details ?? [];
    this.metadata = options?.metadata === undefined ? emptyMetadata : createMetadata(options.metadata);
  }

  /** The canonical name of {@link ServiceError.code}, e.g. `"NOT_FOUND"`. */
  get codeName(): CodeName {
    return codeToString(this.code);
  }

  /**
   * Turns any thrown value into a ServiceError:
   * a ServiceError is returned as it is; an `AbortError` becomes CANCELLED and a `TimeoutError`
   * DEADLINE_EXCEEDED; anything else becomes `fallback` (INTERNAL by default) with a generic
   * message, the original kept as `cause` so it is logged but never sent to clients.
   *
   * @example
   * ```ts
   * ServiceError.from(new Error("db password wrong")).message; // "internal error"
   * ```
   */
  static from(reason: unknown, fallback: Code = Code.INTERNAL): ServiceError {
    if (reason instanceof ServiceError) {
      // A real instance passes through. One recognised only by name and code (another copy of this
      // package, or an unrelated class that happens to be called ServiceError) may lack `details`,
      // `metadata`, `codeName` or `toJSON`, so it is rebuilt with its code and message and kept as cause.
      return Object.prototype.isPrototypeOf.call(ServiceError.prototype, reason)
        ? reason
        : fromLookalike(reason);
    }
    if (reason instanceof Error || isDomException(reason)) {
      const name = (reason as { name?: unknown }).name;
      if (name === "AbortError") return new ServiceError(Code.CANCELLED, undefined, { cause: reason });
      if (name === "TimeoutError")
        return new ServiceError(Code.DEADLINE_EXCEEDED, undefined, { cause: reason });
    }
    return new ServiceError(fallback, undefined, { cause: reason });
  }

  /**
   * Recognises instances of this class and of other copies of it (same `name`, a numeric `code`),
   * so errors from two installed versions of the package are both ServiceErrors.
   * Subclasses keep the ordinary prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== "object" || value === null) return false;
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (this !== ServiceError) return false;
    return (
      value instanceof Error && value.name === "ServiceError" && isCode((value as { code?: unknown }).code)
    );
  }

  /** The client-visible shape: code name, message and details (never the cause). */
  toJSON(): { code: CodeName; message: string; details?: readonly ErrorDetail[] } {
    return this.details.length > 0
      ? { code: this.codeName, message: this.message, details: this.details }
      : { code: this.codeName, message: this.message };
  }
}

Object.defineProperty(ServiceError.prototype, "name", {
  value: "ServiceError",
  writable: true,
  enumerable: false,
  configurable: true,
});

function isDomException(value: unknown): boolean {
  return typeof DOMException !== "undefined" && value instanceof DOMException;
}

function fromLookalike(reason: ServiceError): ServiceError {
  const { details, metadata } = reason as { details?: unknown; metadata?: unknown };
  const message = typeof reason.message === "string" ? reason.message : undefined;
  const options: ServiceErrorOptions = {
    cause: reason,
    details: Array.isArray(details) ? [...(details as ErrorDetail[])] : undefined,
  };
  if (isPairIterable(metadata)) {
    try {
      return new ServiceError(reason.code, message, { ...options, metadata });
    } catch {
      // Metadata that does not iterate as [key, value] pairs is dropped: `from` must not throw.
    }
  }
  return new ServiceError(reason.code, message, options);
}

function isPairIterable(value: unknown): value is Iterable<readonly [string, string]> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Partial<Iterable<unknown>>)[Symbol.iterator] === "function"
  );
}
