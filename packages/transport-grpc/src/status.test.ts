import { Metadata } from "@grpc/grpc-js";
import { Code, type ErrorDetail, ServiceError } from "@svckit/endpoint";
import {
  decodeStatusDetails,
  encodeStatusDetails,
  fromGrpcStatus,
  STATUS_DETAILS_KEY,
  toGrpcStatus,
} from "@svckit/transport-grpc";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const RUNS = Math.min(Number(process.env.FUZZ_RUNS ?? 500), 1000);

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const ascii = (text: string): number[] => [...Buffer.from(text)];

describe("encodeStatusDetails", () => {
  it("writes google.rpc.Status in protobuf wire format", () => {
    expect(encodeStatusDetails(Code.INVALID_ARGUMENT, "a", [])).toEqual(bytes(0x08, 3, 0x12, 1, 0x61));
  });

  it("leaves out a zero code and an empty message, as proto3 does", () => {
    expect(encodeStatusDetails(Code.OK, "", [])).toEqual(new Uint8Array(0));
  });

  it("writes each byte detail as a google.protobuf.Any with a type.googleapis.com/ type URL", () => {
    const type = "type.googleapis.com/x.Y";
    const any = [0x0a, type.length, ...ascii(type), 0x12, 2, 7, 9];
    expect(encodeStatusDetails(Code.NOT_FOUND, "", [{ type: "x.Y", value: bytes(7, 9) }])).toEqual(
      bytes(0x08, 5, 0x1a, any.length, ...any),
    );
  });

  it("keeps a type that already is a URL, and skips details whose value is not bytes", () => {
    const details: ErrorDetail[] = [
      { type: "example.com/a.B", value: bytes(1) },
      { type: "json.Only", value: { field: "x" } },
      { type: "text.Only", value: "bytes as a string" },
    ];
    expect(decodeStatusDetails(encodeStatusDetails(Code.ABORTED, "m", details))).toEqual({
      code: Code.ABORTED,
      message: "m",
      details: [{ type: "example.com/a.B", value: bytes(1) }],
    });
  });

  it("encodes multi-byte lengths (a detail over 127 bytes) and UTF-8 messages", () => {
    const big = Uint8Array.from({ length: 70_000 }, (_, i) => i % 251);
    const decoded = decodeStatusDetails(
      encodeStatusDetails(Code.DATA_LOSS, "grüße 😀", [{ type: "big.One", value: big }]),
    );
    expect(decoded).toEqual({
      code: Code.DATA_LOSS,
      message: "grüße 😀",
      details: [{ type: "big.One", value: big }],
    });
  });
});

describe("decodeStatusDetails", () => {
  it("skips unknown fields of every wire type, in Status and in Any", () => {
    const any = [0x18, 1, 0x0a, 3, ...ascii("a.B"), 0x25, 1, 2, 3, 4, 0x12, 1, 0xee];
    const status = [
      0x08,
      7,
      0x21,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      0x2a,
      2,
      0xaa,
      0xbb,
      0x12,
      2,
      ...ascii("hi"),
      0x1a,
      any.length,
      ...any,
      0x30,
      0x96,
      0x01,
    ];
    expect(decodeStatusDetails(Uint8Array.from(status))).toEqual({
      code: 7,
      message: "hi",
      details: [{ type: "a.B", value: bytes(0xee) }],
    });
  });

  it("returns an empty status for no bytes", () => {
    expect(decodeStatusDetails(new Uint8Array(0))).toEqual({ code: 0, message: "", details: [] });
  });

  it.each([
    ["a truncated varint", [0x08]],
    ["a varint cut in its continuation", [0x08, 0x80]],
    ["a varint longer than 10 bytes", [0x08, ...new Array(11).fill(0xff), 0x01]],
    ["a length past the end", [0x12, 5, 0x61]],
    ["a fixed64 past the end", [0x09, 1, 2]],
    ["a fixed32 past the end", [0x0d, 1]],
    ["a start-group wire type", [0x0b]],
    ["an end-group wire type", [0x0c]],
    ["wire types 6 and 7", [0x0e]],
    ["a message that is not UTF-8", [0x12, 1, 0xff]],
    ["a truncated Any", [0x1a, 2, 0x0a, 5]],
    ["an Any type URL that is not UTF-8", [0x1a, 3, 0x0a, 1, 0xc3]],
  ])("returns undefined for %s", (_name, garbage) => {
    expect(decodeStatusDetails(Uint8Array.from(garbage))).toBeUndefined();
  });

  it("round-trips any code, message and byte details (fuzz)", () => {
    const detail = fc.record({
      type: fc.oneof(
        fc.string({ unit: "binary" }).filter((t) => !t.includes("/")),
        fc.constantFrom("example.com/a.B", "https://types.example/x.y.Z"),
      ),
      value: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 16 }),
        fc.string({ unit: "binary", maxLength: 200 }),
        fc.array(detail, { maxLength: 4 }),
        (code, message, details) => {
          const decoded = decodeStatusDetails(encodeStatusDetails(code as Code, message, details));
          expect(decoded).toEqual({ code, message, details });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("never throws on arbitrary bytes: undefined or a well-formed status (fuzz)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => {
        const decoded = decodeStatusDetails(garbage);
        if (decoded === undefined) return;
        expect(Number.isInteger(decoded.code)).toBe(true);
        expect(typeof decoded.message).toBe("string");
        for (const d of decoded.details) {
          expect(typeof d.type).toBe("string");
          expect(d.value).toBeInstanceOf(Uint8Array);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("never throws on a valid status cut short or with a byte changed (fuzz)", () => {
    const valid = encodeStatusDetails(Code.UNAVAILABLE, "try again", [
      { type: "google.rpc.RetryInfo", value: bytes(0x0a, 2, 0x08, 1) },
    ]);
    fc.assert(
      fc.property(
        fc.nat({ max: valid.length }),
        fc.nat({ max: valid.length - 1 }),
        fc.integer({ min: 0, max: 255 }),
        (cut, at, value) => {
          const changed = Uint8Array.from(valid);
          changed[at] = value;
          for (const input of [valid.subarray(0, cut), changed]) {
            const decoded = decodeStatusDetails(input);
            expect(decoded === undefined || typeof decoded.message === "string").toBe(true);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("toGrpcStatus", () => {
  it("gives the code, the message as details, and the error's metadata as trailers", () => {
    const status = toGrpcStatus(
      new ServiceError(Code.NOT_FOUND, "no user 42", { metadata: { "x-a": "1", "grpc-status": "0" } }),
    );
    expect(status.code).toBe(Code.NOT_FOUND);
    expect(status.details).toBe("no user 42");
    expect(status.metadata?.getMap()).toEqual({ "x-a": "1" });
  });

  it("adds grpc-status-details-bin only when some detail is bytes", () => {
    const withBytes = toGrpcStatus(
      new ServiceError(Code.INVALID_ARGUMENT, "bad", { details: [{ type: "a.B", value: bytes(1, 2) }] }),
    );
    const raw = withBytes.metadata?.get(STATUS_DETAILS_KEY)[0];
    expect(raw).toBeInstanceOf(Buffer);
    expect(decodeStatusDetails(raw as Buffer)).toEqual({
      code: Code.INVALID_ARGUMENT,
      message: "bad",
      details: [{ type: "a.B", value: bytes(1, 2) }],
    });
    const jsonOnly = toGrpcStatus(
      new ServiceError(Code.INVALID_ARGUMENT, "bad", { details: [{ type: "a.B", value: { x: 1 } }] }),
    );
    expect(jsonOnly.metadata?.get(STATUS_DETAILS_KEY)).toEqual([]);
  });
});

describe("fromGrpcStatus", () => {
  it("makes a ServiceError with the code, message, trailers and details", () => {
    const trailers = new Metadata();
    trailers.set("x-why", "because");
    trailers.set(
      STATUS_DETAILS_KEY,
      Buffer.from(encodeStatusDetails(Code.ABORTED, "m", [{ type: "t.T", value: bytes(5) }])),
    );
    const err = fromGrpcStatus({ code: Code.ABORTED, details: "conflict", metadata: trailers });
    expect(err).toBeInstanceOf(ServiceError);
    expect([err.code, err.message]).toEqual([Code.ABORTED, "conflict"]);
    expect(err.metadata.get("x-why")).toBe("because");
    expect(err.details).toEqual([{ type: "t.T", value: bytes(5) }]);
  });

  it.each([
    ["OK", Code.OK],
    ["a number out of range", 17],
    ["a negative number", -1],
    ["a fraction", 2.5],
    ["no code", undefined],
  ])("maps %s to UNKNOWN", (_name, code) => {
    expect(fromGrpcStatus({ code, details: "x" }).code).toBe(Code.UNKNOWN);
  });

  it("copes with no details text, no trailers and garbage in grpc-status-details-bin", () => {
    const trailers = new Metadata();
    trailers.set(STATUS_DETAILS_KEY, Buffer.from([0xff]));
    const err = fromGrpcStatus({ code: Code.INTERNAL, metadata: trailers });
    expect(err.code).toBe(Code.INTERNAL);
    expect(err.message).toBe("");
    expect(err.details).toEqual([]);
    expect(fromGrpcStatus({ code: Code.INTERNAL }).metadata.size).toBe(0);
  });

  it("undoes toGrpcStatus", () => {
    const original = new ServiceError(Code.RESOURCE_EXHAUSTED, "quota", {
      details: [{ type: "google.rpc.QuotaFailure", value: bytes(0x0a, 0) }],
      metadata: { "retry-after": "3" },
    });
    const back = fromGrpcStatus(toGrpcStatus(original));
    expect([back.code, back.message, back.details]).toEqual([
      original.code,
      original.message,
      original.details,
    ]);
    expect(back.metadata.get("retry-after")).toBe("3");
  });
});
