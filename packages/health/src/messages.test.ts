import { Code, ServiceError } from "@svckit/endpoint";
import { healthCheckRequest, healthCheckResponse, type ServingStatus } from "@svckit/health";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replaceAll(" ", ""), "hex"));

function decodeError(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    return err as ServiceError;
  }
  throw new Error("decoded without an error");
}

describe("healthCheckRequest", () => {
  // Bytes as protoc / protobufjs write them for `string service = 1`.
  it.each([
    ["", ""],
    ["pb.Add", "0a 06 70622e416464"],
    ["é", "0a 02 c3a9"],
    ["x".repeat(200), `0a c801 ${"78".repeat(200)}`],
  ])("encodes %j as %s and back", (service, expected) => {
    const encoded = healthCheckRequest.encode({ service });
    expect(hex(encoded)).toBe(expected.replaceAll(" ", ""));
    expect(healthCheckRequest.decode(encoded)).toEqual({ service });
  });

  it("round-trips any string of well-formed UTF-16", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), (service) => {
        expect(healthCheckRequest.decode(healthCheckRequest.encode({ service }))).toEqual({ service });
      }),
    );
  });

  it("skips unknown fields of every wire type and keeps the last service", () => {
    const message = bytes(
      "10 96 01" + // field 2 varint 150
        "19 0102030405060708" + // field 3 fixed64
        "0a 01 61" + // service "a"
        "22 02 ffff" + // field 4 bytes
        "2d 01020304" + // field 5 fixed32
        "0a 01 62", // service "b"
    );
    expect(healthCheckRequest.decode(message)).toEqual({ service: "b" });
  });

  it.each([
    ["0a", "truncated varint at byte 1"],
    ["0a 05 6162", "length past the end at byte 1"],
    ["08 01", "service (field 1) has wire type 0, expected 2 at byte 0"],
    ["0a 02 c328", "service is not valid UTF-8 at byte 0"],
    ["00", "invalid field number 0 at byte 0"],
    ["13 00", "unsupported wire type 3 at byte 0"],
    ["16", "unsupported wire type 6 at byte 0"],
    ["19 0102", "truncated fixed-size field at byte 0"],
    ["2d 01", "truncated fixed-size field at byte 0"],
    ["10 ffffffffffffffffffff01", "varint longer than 10 bytes at byte 1"],
    ["80", "truncated varint at byte 0"],
  ])("rejects %s: %s", (input, reason) => {
    expect(decodeError(() => healthCheckRequest.decode(bytes(input))).message).toBe(
      `invalid HealthCheckRequest: ${reason}`,
    );
  });

  it("never throws anything but INVALID_ARGUMENT on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (input) => {
        try {
          const { service } = healthCheckRequest.decode(input);
          expect(typeof service).toBe("string");
        } catch (err) {
          expect(err).toBeInstanceOf(ServiceError);
          expect((err as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
        }
      }),
    );
  });
});

describe("healthCheckResponse", () => {
  it.each([
    ["UNKNOWN", ""],
    ["SERVING", "0801"],
    ["NOT_SERVING", "0802"],
    ["SERVICE_UNKNOWN", "0803"],
  ] as const)("encodes %s as %j and back", (status, expected) => {
    const encoded = healthCheckResponse.encode({ status });
    expect(hex(encoded)).toBe(expected);
    expect(healthCheckResponse.decode(encoded)).toEqual({ status });
  });

  it("decodes an unknown status number as UNKNOWN and skips unknown fields", () => {
    expect(healthCheckResponse.decode(bytes("08 07"))).toEqual({ status: "UNKNOWN" });
    expect(healthCheckResponse.decode(bytes("12 01 61 08 02"))).toEqual({ status: "NOT_SERVING" });
    // A negative int32 enum value is a 10-byte varint.
    expect(healthCheckResponse.decode(bytes("08 ffffffffffffffffff01"))).toEqual({ status: "UNKNOWN" });
  });

  it("rejects a status that is not a varint", () => {
    expect(decodeError(() => healthCheckResponse.decode(bytes("0a 00"))).message).toBe(
      "invalid HealthCheckResponse: status (field 1) has wire type 2, expected 0 at byte 0",
    );
  });

  it("refuses to encode a status that does not exist", () => {
    for (const status of ["OK", "constructor", "toString"]) {
      expect(decodeError(() => healthCheckResponse.encode({ status: status as ServingStatus })).message).toBe(
        `invalid serving status ${JSON.stringify(status)}`,
      );
    }
  });
});
