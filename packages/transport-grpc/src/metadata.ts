import { Metadata as GrpcMetadata, type MetadataValue as GrpcValue } from "@grpc/grpc-js";
import type { Metadata } from "@svckit/endpoint";

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
 * base64-decoded.
 */
export function toGrpcMetadata(metadata: Metadata, into: GrpcMetadata = new GrpcMetadata()): GrpcMetadata {
  if (metadata.size === 0) return into;
  for (const [key, value] of metadata) {
    if (!VALID_KEY.test(key) || isReserved(key)) continue;
    if (key.endsWith("-bin")) into.add(key, Buffer.from(value, "base64"));
    else if (isPrintable(value)) into.add(key, value);
  }
  return into;
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
    key === "transfer-encoding" ||
    key === "keep-alive" ||
    key === "upgrade" ||
    key === "proxy-connection" ||
    key === "http2-settings"
  );
}

function isPrintable(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}
