import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isGrpcContentType, parseGrpcTimeout, percentEncode } from "./index.js";
import { acceptsEncoding } from "./protocol.js";

describe("parseGrpcTimeout", () => {
  it.each([
    ["1H", 3_600_000],
    ["2M", 120_000],
    ["3S", 3_000],
    ["1500m", 1_500],
    ["2500u", 2.5],
    ["3000000n", 3],
    ["0m", 0],
    ["99999999H", 99_999_999 * 3_600_000],
    ["00000001S", 1_000],
  ])("reads %s as %d ms", (value, ms) => {
    expect(parseGrpcTimeout(value)).toBeCloseTo(ms, 9);
  });

  it.each([
    [""],
    ["S"],
    ["1"],
    ["123456789m"],
    ["1.5S"],
    ["-1S"],
    ["1 S"],
    ["1s"],
    ["1h"],
    ["1ms"],
    ["+1S"],
    ["1e3m"],
    ["١S"],
  ])("refuses %j", (value) => {
    expect(parseGrpcTimeout(value)).toBeUndefined();
  });

  it("reads every 1-8 digit value in every unit as value × unit", () => {
    const units = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 99_999_999 }),
        fc.constantFrom(...Object.keys(units)),
        (n, unit) => {
          expect(parseGrpcTimeout(`${n}${unit}`)).toBe(n * units[unit as keyof typeof units]);
        },
      ),
    );
  });
});

describe("percentEncode", () => {
  it.each([
    ["plain message", "plain message"],
    ["", ""],
    ["100%", "100%25"],
    ["café", "caf%C3%A9"],
    ["a\nb\tc", "a%0Ab%09c"],
    ["\u007f", "%7F"],
    ["emoji 😀", "emoji %F0%9F%98%80"],
  ])("encodes %j as %j", (input, output) => {
    expect(percentEncode(input)).toBe(output);
  });

  it("round-trips any string through decodeURIComponent and only emits printable ASCII", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (s) => {
        const encoded = percentEncode(s);
        expect(encoded).toMatch(/^[\x20-\x7e]*$/);
        expect(decodeURIComponent(encoded)).toBe(s);
      }),
    );
  });
});

describe("isGrpcContentType", () => {
  it.each([
    ["application/grpc", true],
    ["application/grpc+proto", true],
    ["application/grpc+json", true],
    ["application/grpc;charset=utf-8", true],
    ["application/grpc-web", false],
    ["application/grpc-web+proto", false],
    ["application/grpcx", false],
    ["application/json", false],
    ["", false],
    [undefined, false],
  ])("%j → %s", (value, expected) => {
    expect(isGrpcContentType(value)).toBe(expected);
  });
});

describe("acceptsEncoding", () => {
  it("finds an encoding in a comma-separated list with or without spaces", () => {
    expect(acceptsEncoding("identity,deflate,gzip", "gzip")).toBe(true);
    expect(acceptsEncoding("identity, gzip", "gzip")).toBe(true);
    expect(acceptsEncoding("identity", "gzip")).toBe(false);
    expect(acceptsEncoding("gzipx", "gzip")).toBe(false);
    expect(acceptsEncoding(undefined, "gzip")).toBe(false);
  });
});
