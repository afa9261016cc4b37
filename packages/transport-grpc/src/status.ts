import { Metadata as GrpcMetadata, type StatusObject } from "@grpc/grpc-js";
import { Code, type ErrorDetail, isCode, ServiceError } from "@svckit/endpoint";
import { GrpcMetadataView, toGrpcMetadata } from "./metadata.js";

/** The trailer that carries a binary google.rpc.Status with the error's details. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";
const TYPE_URL_PREFIX = "type.googleapis.com/";

// A few lines of protobuf wire format for google.rpc.Status { int32 code = 1; string message = 2;
// repeated google.protobuf.Any details = 3; } and Any { string type_url = 1; bytes value = 2; }, so the
// transport needs no .proto and no protobuf runtime on its error path.

function varint(out: number[], value: number): void {
  let v = value >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
}

function lengthDelimited(out: number[], field: number, bytes: Uint8Array): void {
  varint(out, (field << 3) | 2);
  varint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a google.rpc.Status. Only details whose `value` is bytes can be carried; others are skipped. */
export function encodeStatusDetails(
  code: Code,
  message: string,
  details: readonly ErrorDetail[],
): Uint8Array {
  const out: number[] = [];
  if (code !== 0) {
    varint(out, (1 << 3) | 0);
    varint(out, code);
  }
  if (message !== "") lengthDelimited(out, 2, utf8.encode(message));
  for (const detail of details) {
    if (!(detail.value instanceof Uint8Array)) continue;
    const any: number[] = [];
    const type = detail.type.includes("/") ? detail.type : `${TYPE_URL_PREFIX}${detail.type}`;
    lengthDelimited(any, 1, utf8.encode(type));
    lengthDelimited(any, 2, detail.value);
    lengthDelimited(out, 3, Uint8Array.from(any));
  }
  return Uint8Array.from(out);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length || shift > 63) throw new RangeError("truncated varint");
      const b = this.buf[this.pos++] as number;
      if (shift < 32) result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
  }

  bytes(): Uint8Array {
    const len = this.varint();
    if (this.pos + len > this.buf.length) throw new RangeError("length past end");
    const slice = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return slice;
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.pos += 4;
    else throw new RangeError(`unsupported wire type ${wireType}`);
    if (this.pos > this.buf.length) throw new RangeError("field past end");
  }
}

/** Decodes a google.rpc.Status; `undefined` when the bytes are not one. */
export function decodeStatusDetails(
  bytes: Uint8Array,
): { code: number; message: string; details: ErrorDetail[] } | undefined {
  try {
    const r = new Reader(bytes);
    let code = 0;
    let message = "";
    const details: ErrorDetail[] = [];
    while (r.pos < bytes.length) {
      const tag = r.varint();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === 1 && wire === 0) code = r.varint();
      else if (field === 2 && wire === 2) message = utf8Decoder.decode(r.bytes());
      else if (field === 3 && wire === 2) {
        const any = new Reader(r.bytes());
        let type = "";
        let value: Uint8Array = new Uint8Array(0);
        while (any.pos < any.buf.length) {
          const t = any.varint();
          if (t >>> 3 === 1 && (t & 7) === 2) type = utf8Decoder.decode(any.bytes());
          else if (t >>> 3 === 2 && (t & 7) === 2) value = Uint8Array.from(any.bytes());
          else any.skip(t & 7);
        }
        details.push({
          type: type.startsWith(TYPE_URL_PREFIX) ? type.slice(TYPE_URL_PREFIX.length) : type,
          value,
        });
      } else r.skip(wire);
    }
    return { code, message, details };
  } catch {
    return undefined;
  }
}

/**
 * A ServiceError as the status grpc-js sends: same code, the message as `details` (grpc-message; a lone
 * UTF-16 surrogate in it becomes U+FFFD, as grpc-js's `encodeURI` would throw on it),
 * the error's metadata as trailers, and its byte details in `grpc-status-details-bin`.
 */
export function toGrpcStatus(error: ServiceError): Partial<StatusObject> {
  const metadata = toGrpcMetadata(error.metadata);
  if (error.details.some((d) => d.value instanceof Uint8Array)) {
    metadata.set(
      STATUS_DETAILS_KEY,
      Buffer.from(encodeStatusDetails(error.code, error.message, error.details)),
    );
  }
  return { code: error.code, details: wellFormed(error.message), metadata };
}

const LONE_SURROGATE = /\p{Cs}/u;
const LONE_SURROGATES = /\p{Cs}/gu;

/**
 * `text` with each lone UTF-16 surrogate replaced by U+FFFD (what `String.prototype.toWellFormed` does,
 * which the ES2023 lib does not type). grpc-js runs a status message through `encodeURI`, which throws
 * a URIError on a lone surrogate, e.g. a message that cut an emoji in half with `slice`.
 */
export function wellFormed(text: string): string {
  return LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATES, "\uFFFD") : text;
}

/** A status grpc-js reported (an error of a call) as a ServiceError with the same code, message and details. */
export function fromGrpcStatus(status: {
  code?: number;
  details?: string;
  metadata?: GrpcMetadata;
}): ServiceError {
  const code = isCode(status.code) && status.code !== Code.OK ? status.code : Code.UNKNOWN;
  const trailers = status.metadata ?? new GrpcMetadata();
  let details: ErrorDetail[] | undefined;
  const raw = trailers.get(STATUS_DETAILS_KEY)[0];
  if (raw instanceof Uint8Array) details = decodeStatusDetails(raw)?.details;
  return new ServiceError(code, status.details ?? "", { details, metadata: new GrpcMetadataView(trailers) });
}
