import type { IncomingHttpHeaders } from "node:http2";
import { Metadata, type MetadataValue } from "@grpc/grpc-js";

/** Request headers that are the protocol's, not the application's (grpc-js leaves them out too). */
const PROTOCOL_HEADERS = new Set([
  "content-type",
  "te",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "accept-encoding",
]);

const LEGAL_KEY = /^[0-9a-z_.-]+$/;
const LEGAL_TEXT_VALUE = /^[ -~]*$/;

const kHeaders = Symbol("headers");
const kRepr = Symbol("repr");

type Repr = Map<string, MetadataValue[]>;

interface Lazy {
  [kHeaders]: IncomingHttpHeaders | undefined;
  [kRepr]: Repr;
}

function fill(repr: Repr, headers: IncomingHttpHeaders): void {
  for (const key in headers) {
    if (key.charCodeAt(0) === 0x3a /* : */ || PROTOCOL_HEADERS.has(key) || !LEGAL_KEY.test(key)) continue;
    const value = headers[key];
    if (value === undefined) continue;
    if (key.endsWith("-bin")) {
      const values: Buffer[] = [];
      const list = typeof value === "string" ? value.split(",") : value;
      for (const one of list) values.push(Buffer.from(one.trim(), "base64"));
      repr.set(key, values);
    } else if (typeof value === "string") {
      if (LEGAL_TEXT_VALUE.test(value)) repr.set(key, [value]);
    } else {
      const values = value.filter((one) => LEGAL_TEXT_VALUE.test(one));
      if (values.length > 0) repr.set(key, values);
    }
  }
}

/**
 * grpc-js `Metadata` over HTTP/2 request headers, read only when first used: a handler that never looks
 * at its metadata costs no header walk. It holds the same entries grpc-js's own server hands its handlers
 * (pseudo-headers and the protocol's own headers left out, `-bin` values base64-decoded, comma-joined
 * binary values split); entries gRPC does not allow (a key with other characters, a text value outside
 * printable ASCII) are dropped, as grpc-js drops them.
 *
 * grpc-js `Metadata` keeps its entries in the protected `internalRepr` map; this subclass turns that
 * member into an accessor that fills the map on first access, so every `Metadata` method (and
 * `other.merge(this)`, which reads the member directly) sees the entries.
 */
export class IncomingMetadata extends Metadata {
  constructor(headers: IncomingHttpHeaders) {
    super();
    (this as unknown as Lazy)[kHeaders] = headers;
  }
}

Object.defineProperty(IncomingMetadata.prototype, "internalRepr", {
  configurable: true,
  get(this: Lazy): Repr {
    const headers = this[kHeaders];
    if (headers !== undefined) {
      this[kHeaders] = undefined;
      fill(this[kRepr], headers);
    }
    return this[kRepr];
  },
  // grpc-js's constructor assigns the (empty) map.
  set(this: Lazy, value: Repr): void {
    this[kRepr] = value;
  },
});
