/**
 * The 17 canonical status codes of gRPC (and google.rpc.Code), with the same numeric values.
 * Every svckit error carries one; transports map it to their wire format with the tables below.
 *
 * @example
 * ```ts
 * throw new ServiceError(Code.NOT_FOUND, "no user 42");
 * ```
 */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** A canonical status code: one of the values of {@link Code}. */
export type Code = (typeof Code)[keyof typeof Code];

/** The canonical name of a status code, e.g. `"INVALID_ARGUMENT"`. */
export type CodeName = keyof typeof Code;

/**
 * Code → canonical name. Typed `Record<Code, CodeName>` so a missing code fails to compile.
 *
 * @example
 * ```ts
 * codeNames[Code.NOT_FOUND]; // "NOT_FOUND"
 * ```
 */
export const codeNames: Readonly<Record<Code, CodeName>> = {
  0: "OK",
  1: "CANCELLED",
  2: "UNKNOWN",
  3: "INVALID_ARGUMENT",
  4: "DEADLINE_EXCEEDED",
  5: "NOT_FOUND",
  6: "ALREADY_EXISTS",
  7: "PERMISSION_DENIED",
  8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION",
  10: "ABORTED",
  11: "OUT_OF_RANGE",
  12: "UNIMPLEMENTED",
  13: "INTERNAL",
  14: "UNAVAILABLE",
  15: "DATA_LOSS",
  16: "UNAUTHENTICATED",
};

/**
 * Returns the canonical name of a code, e.g. `codeToString(Code.UNAVAILABLE) === "UNAVAILABLE"`.
 * A number outside the table gives `"UNKNOWN"`.
 */
export function codeToString(code: number): CodeName {
  return isCode(code) ? codeNames[code] : "UNKNOWN";
}

/**
 * Parses a canonical code name (case-insensitive, e.g. `"not_found"` or `"NOT_FOUND"`).
 * Returns `undefined` for anything else.
 *
 * @example
 * ```ts
 * codeFromString("INVALID_ARGUMENT"); // Code.INVALID_ARGUMENT
 * codeFromString("nope"); // undefined
 * ```
 */
export function codeFromString(name: string): Code | undefined {
  // ASCII only: `toUpperCase` maps e.g. "ı" to "I" and "ſ" to "S", which must not parse as a name.
  if (!/^[A-Za-z_]+$/.test(name)) return undefined;
  const upper = name.toUpperCase();
  return Object.hasOwn(Code, upper) ? Code[upper as CodeName] : undefined;
}

/** Tells whether `value` is one of the 17 canonical code numbers. */
export function isCode(value: unknown): value is Code {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 16;
}

/**
 * Code → HTTP status, as google.rpc.Code documents it (and grpc-gateway uses).
 * Typed `Record<Code, number>` so a missing code fails to compile.
 *
 * @example
 * ```ts
 * codeToHttpStatus[Code.RESOURCE_EXHAUSTED]; // 429
 * ```
 */
export const codeToHttpStatus: Readonly<Record<Code, number>> = {
  0: 200,
  1: 499,
  2: 500,
  3: 400,
  4: 504,
  5: 404,
  6: 409,
  7: 403,
  8: 429,
  9: 400,
  10: 409,
  11: 400,
  12: 501,
  13: 500,
  14: 503,
  15: 500,
  16: 401,
};

/** The HTTP statuses that {@link httpStatusToCodeTable} maps to a specific code. */
export type MappedHttpStatus =
  | 400
  | 401
  | 403
  | 404
  | 405
  | 408
  | 409
  | 412
  | 413
  | 415
  | 416
  | 422
  | 429
  | 499
  | 500
  | 501
  | 502
  | 503
  | 504;

/**
 * HTTP status → code, for responses that do not carry a code of their own (a non-svckit server).
 * Typed `Record<MappedHttpStatus, Code>` so a missing entry fails to compile.
 * Where two codes share a status (409: ABORTED and ALREADY_EXISTS; 400: three codes) the most
 * common meaning in HTTP APIs wins.
 */
export const httpStatusToCodeTable: Readonly<Record<MappedHttpStatus, Code>> = {
  400: Code.INVALID_ARGUMENT,
  401: Code.UNAUTHENTICATED,
  403: Code.PERMISSION_DENIED,
  404: Code.NOT_FOUND,
  405: Code.UNIMPLEMENTED,
  408: Code.DEADLINE_EXCEEDED,
  409: Code.ALREADY_EXISTS,
  412: Code.FAILED_PRECONDITION,
  413: Code.RESOURCE_EXHAUSTED,
  415: Code.INVALID_ARGUMENT,
  416: Code.OUT_OF_RANGE,
  422: Code.INVALID_ARGUMENT,
  429: Code.RESOURCE_EXHAUSTED,
  499: Code.CANCELLED,
  500: Code.INTERNAL,
  501: Code.UNIMPLEMENTED,
  502: Code.UNAVAILABLE,
  503: Code.UNAVAILABLE,
  504: Code.DEADLINE_EXCEEDED,
};

/**
 * Maps any HTTP status to a code: 2xx → OK, a status in {@link httpStatusToCodeTable} → its code,
 * any other status → UNKNOWN.
 *
 * @example
 * ```ts
 * httpStatusToCode(503); // Code.UNAVAILABLE
 * httpStatusToCode(418); // Code.UNKNOWN
 * ```
 */
export function httpStatusToCode(status: number): Code {
  if (status >= 200 && status < 300) return Code.OK;
  return Object.hasOwn(httpStatusToCodeTable, status)
    ? httpStatusToCodeTable[status as MappedHttpStatus]
    : Code.UNKNOWN;
}
