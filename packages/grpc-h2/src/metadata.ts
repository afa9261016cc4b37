import type { IncomingHttpHeaders } from "node:http2";
import { Metadata, type MetadataValue } from "@grpc/grpc-js";
import { SINGLE_VALUE_HEADERS } from "./protocol.js";

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
const kRaw = Symbol("rawHeaders");
const kRepr = Symbol("repr");

type Repr = Map<string, MetadataValue[]>;

interface Lazy {
  [kHeaders]: IncomingHttpHeaders | undefined;
  [kRaw]: readonly string[] | undefined;
  [kRepr]: Repr;
}

/**
 * Every value of the single-value headers in `raw` (`[name, value, ...]` as received), in order; read
 * in one pass, only once some single-value header is present.
 */
function singleValueHeaders(raw: readonly string[]): Map<string, string[]> {
  const all = new Map<string, string[]>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (!SINGLE_VALUE_HEADERS.has(name)) continue;
    const values = all.get(name);
    if (values === undefined) all.set(name, [raw[i + 1] as string]);
    else values.push(raw[i + 1] as string);
  }
  return all;
}

const NONE_REPEATED: Map<string, string[]> = new Map();

/** Whether the raw headers hold more fields than `headers` has names: some name came more than once. */
function hasRepeatedNames(headers: IncomingHttpHeaders, raw: readonly string[]): boolean {
  let names = 0;
  for (const _ in headers) names++;
  return raw.length / 2 > names;
}

function fill(repr: Repr, headers: IncomingHttpHeaders, raw: readonly string[] | undefined): void {
  let repeated: Map<string, string[]> | undefined;
  for (const key in headers) {
    if (key.charCodeAt(0) === 0x3a /* : */ || PROTOCOL_HEADERS.has(key) || !LEGAL_KEY.test(key)) continue;
    let value = headers[key];
    // node:http2 keeps only the first value of a single-value header (`authorization`, ...) in the
    // headers object: the raw headers have them all, so that a second `authorization` is seen.
    if (raw !== undefined && typeof value === "string" && SINGLE_VALUE_HEADERS.has(key)) {
      // Nothing to recover unless some name came more than once (fewer names than fields): counted once,
      // so that the common request (grpc-js sends user-agent, most send one authorization) scans nothing.
      if (repeated === undefined) {
        repeated = hasRepeatedNames(headers, raw) ? singleValueHeaders(raw) : NONE_REPEATED;
      }
      const values = repeated.get(key);
      if (values !== undefined && values.length > 1) value = values;
    }
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
 * printable ASCII) are dropped, as grpc-js drops them. A header node:http2 allows once (`authorization`,
 * `retry-after`, ...) that came more than once keeps every value, read from the raw headers (grpc-js's
 * own server sees only the first), so that, e.g., an auth check can refuse two `authorization` values.
 *
 * grpc-js `Metadata` keeps its entries in the protected `internalRepr` map; this subclass turns that
 * member into an accessor that fills the map on first access, so every `Metadata` method (and
 * `other.merge(this)`, which reads the member directly) sees the entries.
 */
export class IncomingMetadata extends Metadata {
  /**
   * @param headers The request headers as node:http2 reduced them.
   * @param rawHeaders The same as received (`[name, value, ...]`, the `'stream'` event's fourth
   *   argument): a single-value header such as `authorization` sent twice then has both values, where
   *   `headers` keeps the first.
   */
  constructor(headers: IncomingHttpHeaders, rawHeaders?: readonly string[]) {
    super();
    (this as unknown as Lazy)[kHeaders] = headers;
    (this as unknown as Lazy)[kRaw] = rawHeaders;
  }
}

Object.defineProperty(IncomingMetadata.prototype, "internalRepr", {
  configurable: true,
  get(this: Lazy): Repr {
    const headers = this[kHeaders];
    if (headers !== undefined) {
      this[kHeaders] = undefined;
      fill(this[kRepr], headers, this[kRaw]);
      this[kRaw] = undefined;
    }
    return this[kRepr];
  },
  // grpc-js's constructor assigns the (empty) map.
  set(this: Lazy, value: Repr): void {
    this[kRepr] = value;
  },
});
