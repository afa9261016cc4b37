// The pieces of gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md) that are pure functions of header
// values: content-type, grpc-timeout, percent-encoding of grpc-message, the encodings on offer.

/** The gRPC status codes this engine sends itself (same numbers as `Code` in `@svckit/endpoint`). */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** What a call's status is made of: grpc-js's `PartialStatusObject`, the shape handlers pass. */
export interface StatusLike {
  code?: number | undefined;
  details?: string | undefined;
  message?: string | undefined;
  metadata?: { toHttp2Headers(): Record<string, unknown> } | null | undefined;
}

/**
 * Whether `value` is a gRPC content-type: `application/grpc`, optionally followed by `+subtype`
 * (`+proto`, `+json`, ...) or parameters (`;charset=...`). `application/grpc-web` is not.
 */
export function isGrpcContentType(value: string | undefined): boolean {
  if (value === undefined || !value.startsWith("application/grpc")) return false;
  if (value.length === 16) return true;
  const next = value.charCodeAt(16);
  return next === 0x2b /* + */ || next === 0x3b /* ; */;
}

const UNIT_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/**
 * Parses a `grpc-timeout` value (`TimeoutValue TimeoutUnit`: 1 to 8 ASCII digits, then one of
 * `H M S m u n`) into milliseconds; `undefined` when the value does not follow that grammar.
 * Sub-millisecond remainders are kept (a deadline of `500u` is 0.5 ms away).
 *
 * @example
 * ```ts
 * parseGrpcTimeout("1500m"); // 1500
 * parseGrpcTimeout("2S");    // 2000
 * parseGrpcTimeout("1.5S");  // undefined
 * ```
 */
export function parseGrpcTimeout(value: string): number | undefined {
  const length = value.length;
  if (length < 2 || length > 9) return undefined;
  const unit = UNIT_MS[value.charAt(length - 1)];
  if (unit === undefined) return undefined;
  let amount = 0;
  for (let i = 0; i < length - 1; i++) {
    const digit = value.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    amount = amount * 10 + digit;
  }
  return amount * unit;
}

/**
 * Percent-encodes a status message for the `grpc-message` trailer: bytes outside printable ASCII
 * (0x20-0x7E) and `%` itself become `%XX` of their UTF-8 encoding; everything else stays as it is.
 *
 * @example
 * ```ts
 * percentEncode("100% sure"); // "100%25 sure"
 * percentEncode("café");      // "caf%C3%A9"
 * ```
 */
export function percentEncode(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += `%${byte < 0x10 ? "0" : ""}${byte.toString(16).toUpperCase()}`;
  }
  return out;
}

/**
 * The header names node:http2 allows only once in a header block: it throws
 * `ERR_HTTP2_HEADER_SINGLE_VALUE` when sending a second value, and keeps only the first one it receives
 * in the headers object (Node's `kSingleValueHeaders`, the same 34 names on Node 20 and 22,
 * pseudo-headers left out).
 */
export const SINGLE_VALUE_HEADERS: ReadonlySet<string> = new Set([
  "access-control-allow-credentials",
  "access-control-max-age",
  "access-control-request-method",
  "age",
  "authorization",
  "content-encoding",
  "content-language",
  "content-length",
  "content-location",
  "content-md5",
  "content-range",
  "content-type",
  "date",
  "dnt",
  "etag",
  "expires",
  "from",
  "host",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "proxy-authorization",
  "range",
  "referer",
  "retry-after",
  "tk",
  "upgrade-insecure-requests",
  "user-agent",
  "x-content-type-options",
]);

/** HTTP/1's connection-specific headers, which node:http2 refuses to send (RFC 9113 §8.2.2). */
export const CONNECTION_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/** The message encodings this engine decodes (and may encode), in preference order. */
export const SUPPORTED_ENCODINGS = ["identity", "gzip", "deflate"] as const;

/** One of {@link SUPPORTED_ENCODINGS}. */
export type MessageEncoding = (typeof SUPPORTED_ENCODINGS)[number];

/** The `grpc-accept-encoding` value this engine sends. */
export const ACCEPT_ENCODING = SUPPORTED_ENCODINGS.join(",");

/** Whether a `grpc-accept-encoding` list (comma-separated, maybe with spaces) names `encoding`. */
export function acceptsEncoding(list: string | undefined, encoding: string): boolean {
  if (list === undefined) return false;
  for (const item of list.split(",")) if (item.trim() === encoding) return true;
  return false;
}
