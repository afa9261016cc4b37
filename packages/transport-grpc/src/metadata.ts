import { Metadata as GrpcMetadata, type MetadataValue as GrpcValue } from "@grpc/grpc-js";
import { Code, type Metadata, ServiceError } from "@svckit/endpoint";

function text(value: GrpcValue): string {
  return typeof value === "string" ? value : value.toString("base64");
}

/**
 * A read-only svckit {@link Metadata} over grpc-js metadata, without copying it. Binary (`-bin`) values
 * read as their base64 text, as on the wire.
 */
export class GrpcMetadataView implements Metadata {
  constructor(
    /** The grpc-js metadata it reads. */
    readonly raw: GrpcMetadata,
  ) {}

  #values(key: string): GrpcValue[] {
    try {
      return this.raw.get(key.toLowerCase());
    } catch {
      return []; // a key grpc-js finds invalid is simply absent
    }
  }

  get(key: string): string | undefined {
    const v = this.#values(key)[0];
    return v === undefined ? undefined : text(v);
  }

  getAll(key: string): string[] {
    return this.#values(key).map(text);
  }

  has(key: string): boolean {
    return this.#values(key).length > 0;
  }

  keys(): IterableIterator<string> {
    return Object.keys(this.raw.getMap())[Symbol.iterator]();
  }

  get size(): number {
    return Object.keys(this.raw.getMap()).length;
  }

  *[Symbol.iterator](): IterableIterator<[string, string]> {
    for (const key of this.keys()) for (const v of this.raw.get(key)) yield [key, text(v)];
  }

  toRecord(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = Object.create(null);
    for (const key of this.keys()) {
      const all = this.getAll(key);
      out[key] = all.length === 1 ? (all[0] as string) : all;
    }
    return out;
  }
}

const VALID_KEY = /^[0-9a-z_.-]+$/;

/**
 * Copies svckit metadata into new grpc-js metadata. Keys that gRPC reserves (`grpc-*` and the HTTP/2
 * ones) or that are not valid gRPC keys are skipped rather than failing the call; `-bin` values are
 * base64-decoded. A header node:http2 allows once (`retry-after`, `authorization`, ...) keeps its first
 * value.
 */
export function toGrpcMetadata(metadata: Metadata, into: GrpcMetadata = new GrpcMetadata()): GrpcMetadata {
  if (metadata.size === 0) return into;
  for (const [key, value] of metadata) {
    if (!VALID_KEY.test(key) || isReserved(key)) continue;
    // node:http2 refuses a second value of these (the call would fail, or, for trailers sent after the
    // messages, the process would crash): the first value is kept.
    if (SINGLE_VALUE_HEADERS.has(key) && into.get(key).length > 0) continue;
    if (key.endsWith("-bin")) into.add(key, Buffer.from(value, "base64"));
    else if (isPrintable(value)) into.add(key, value);
  }
  return into;
}

/**
 * The outgoing metadata of a client call as grpc-js metadata ({@link toGrpcMetadata}); a header node:http2
 * allows once given more than one value (two `authorization` tokens, say) fails the call with
 * INVALID_ARGUMENT naming the key, rather than sending one of them silently.
 */
export function outgoingGrpcMetadata(metadata: Metadata): GrpcMetadata {
  if (metadata.size === 0) return new GrpcMetadata();
  for (const key of metadata.keys()) {
    if (!SINGLE_VALUE_HEADERS.has(key)) continue;
    const count = metadata.getAll(key).length;
    if (count > 1) {
      throw new ServiceError(
        Code.INVALID_ARGUMENT,
        `outgoing metadata "${key}" has ${count} values: HTTP/2 allows one`,
      );
    }
  }
  return toGrpcMetadata(metadata);
}

/**
 * The header names node:http2 allows only once in a header block: for a second value it throws
 * `ERR_HTTP2_HEADER_SINGLE_VALUE` (Node's `kSingleValueHeaders` in lib/internal/http2/util.js, the same
 * 34 names on Node 20 and 22, pseudo-headers left out). Most are not comma-separated lists in HTTP
 * (`retry-after`, `authorization`, `date`, ...), so values are not joined: the first one is kept.
 */
const SINGLE_VALUE_HEADERS: ReadonlySet<string> = new Set([
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

/** HTTP/1's connection-specific headers, which node:http2 refuses (RFC 9113 §8.2.2). */
const CONNECTION_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/**
 * Makes grpc-js metadata that an `after` function filled safe to send as HTTP/2 headers or trailers,
 * in place: a header node:http2 allows once keeps its first value, a connection-specific header is
 * dropped. grpc-js sends a streaming call's trailers from a `wantTrailers` listener, where node:http2's
 * throw would be an uncaught exception.
 */
export function http2SafeMetadata(metadata: GrpcMetadata): GrpcMetadata {
  const map = metadata.getMap();
  for (const key in map) {
    if (CONNECTION_HEADERS.has(key)) metadata.remove(key);
    else if (SINGLE_VALUE_HEADERS.has(key)) {
      const all = metadata.get(key);
      if (all.length > 1) metadata.set(key, all[0] as GrpcValue);
    }
  }
  return metadata;
}

/**
 * `grpc-*`, the headers gRPC itself sets, and HTTP/1's connection-specific headers, which HTTP/2
 * forbids (RFC 9113 §8.2.2: node:http2 throws on them, so one in a status's trailers would fail the
 * call): an error a svckit HTTP client returned carries its upstream's response headers, `upgrade`
 * included (Apache sends `Upgrade: h2,h2c` on HTTP/1.1 answers).
 */
function isReserved(key: string): boolean {
  return (
    key.startsWith("grpc-") ||
    key === "content-type" ||
    key === "te" ||
    key === "user-agent" ||
    key === "connection" ||
    key === "host" ||
    key === "content-length" ||
    CONNECTION_HEADERS.has(key)
  );
}

function isPrintable(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}
