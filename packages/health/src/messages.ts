import { Code, ServiceError } from "@svckit/endpoint";

/** `grpc.health.v1.HealthCheckResponse.ServingStatus`, by name. */
export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

/** `grpc.health.v1.HealthCheckRequest`: `string service = 1`. */
export interface HealthCheckRequest {
  /** The service asked about; `""` is the server as a whole. */
  readonly service: string;
}

/** `grpc.health.v1.HealthCheckResponse`: `ServingStatus status = 1`. */
export interface HealthCheckResponse {
  /** The serving status. */
  readonly status: ServingStatus;
}

/** A message's encoder and decoder (fits `@svckit/transport-grpc`'s `GrpcMessageCodec`). */
export interface MessageCodec<T> {
  /** Message → protobuf bytes. */
  encode(message: T): Uint8Array;
  /** Protobuf bytes → message; throws a ServiceError INVALID_ARGUMENT on bytes that are not one. */
  decode(bytes: Uint8Array): T;
}

const STATUS_NUMBERS: Readonly<Record<ServingStatus, number>> = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
};
const STATUS_NAMES: readonly ServingStatus[] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function invalid(message: string, reason: string, at: number): ServiceError {
  return new ServiceError(Code.INVALID_ARGUMENT, `invalid ${message}: ${reason} at byte ${at}`);
}

/** A cursor over protobuf bytes that reads varints and skips fields, with bounds checks. */
class Reader {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly message: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.bytes.length;
  }

  /** A varint of at most 10 bytes, as a number (exact up to 2^53; larger ones only need to be skipped or rejected). */
  varint(): number {
    const start = this.pos;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.bytes.length) throw invalid(this.message, "truncated varint", start);
      const byte = this.bytes[this.pos++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw invalid(this.message, "varint longer than 10 bytes", start);
  }

  /** The bytes of a length-delimited field. */
  lengthDelimited(): Uint8Array {
    const start = this.pos;
    const length = this.varint();
    if (length > this.bytes.length - this.pos) throw invalid(this.message, "length past the end", start);
    const value = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  /** The next field's number and wire type. */
  tag(): [field: number, wireType: number] {
    const start = this.pos;
    const key = this.varint();
    const field = Math.floor(key / 8);
    if (field === 0 || field > 0x1fffffff)
      throw invalid(this.message, `invalid field number ${field}`, start);
    return [field, key % 8];
  }

  /** Skips a field of an unknown number (as proto3 requires); groups and bad wire types are rejected. */
  skip(wireType: number, at: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.fixed(8, at);
        return;
      case 2:
        this.lengthDelimited();
        return;
      case 5:
        this.fixed(4, at);
        return;
      default:
        throw invalid(this.message, `unsupported wire type ${wireType}`, at);
    }
  }

  fixed(size: number, at: number): void {
    if (this.bytes.length - this.pos < size) throw invalid(this.message, "truncated fixed-size field", at);
    this.pos += size;
  }
}

function varintBytes(value: number): number[] {
  const out: number[] = [];
  while (value > 0x7f) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

/**
 * Codec of `grpc.health.v1.HealthCheckRequest`. Decoding checks every byte: a `service` that is not
 * length-delimited or not valid UTF-8, a truncated field or a group is an INVALID_ARGUMENT error;
 * unknown fields are skipped; the last `service` wins (protobuf's rule).
 *
 * @example
 * ```ts
 * healthCheckRequest.encode({ service: "pb.Add" }); // 0a 06 70 62 2e 41 64 64
 * ```
 */
export const healthCheckRequest: MessageCodec<HealthCheckRequest> = {
  encode({ service }) {
    if (service === "") return new Uint8Array(0);
    const text = utf8.encode(service);
    const head = [0x0a, ...varintBytes(text.length)];
    const out = new Uint8Array(head.length + text.length);
    out.set(head);
    out.set(text, head.length);
    return out;
  },
  decode(bytes) {
    const reader = new Reader(bytes, "HealthCheckRequest");
    let service = "";
    while (!reader.done) {
      const at = reader.pos;
      const [field, wireType] = reader.tag();
      if (field !== 1) {
        reader.skip(wireType, at);
        continue;
      }
      if (wireType !== 2) {
        throw invalid("HealthCheckRequest", `service (field 1) has wire type ${wireType}, expected 2`, at);
      }
      const text = reader.lengthDelimited();
      try {
        service = strictUtf8.decode(text);
      } catch {
        throw invalid("HealthCheckRequest", "service is not valid UTF-8", at);
      }
    }
    return { service };
  },
};

/**
 * Codec of `grpc.health.v1.HealthCheckResponse`. An unknown status number decodes as `UNKNOWN`.
 *
 * @example
 * ```ts
 * healthCheckResponse.encode({ status: "SERVING" }); // 08 01
 * ```
 */
export const healthCheckResponse: MessageCodec<HealthCheckResponse> = {
  encode({ status }) {
    const n = Object.hasOwn(STATUS_NUMBERS, status) ? STATUS_NUMBERS[status] : undefined;
    if (n === undefined) {
      throw new ServiceError(Code.INVALID_ARGUMENT, `invalid serving status ${JSON.stringify(status)}`);
    }
    return n === 0 ? new Uint8Array(0) : Uint8Array.of(0x08, n);
  },
  decode(bytes) {
    const reader = new Reader(bytes, "HealthCheckResponse");
    let status = 0;
    while (!reader.done) {
      const at = reader.pos;
      const [field, wireType] = reader.tag();
      if (field !== 1) {
        reader.skip(wireType, at);
        continue;
      }
      if (wireType !== 0) {
        throw invalid("HealthCheckResponse", `status (field 1) has wire type ${wireType}, expected 0`, at);
      }
      status = reader.varint();
    }
    return { status: STATUS_NAMES[status] ?? "UNKNOWN" };
  },
};
