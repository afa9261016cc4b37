import { fileURLToPath } from "node:url";
import { loadProtoSync } from "@svckit/codec-protobuf";
import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

const root = loadProtoSync(
  ["addsvc.proto", "rich.proto"].map((f) => fileURLToPath(new URL(`./testdata/${f}`, import.meta.url))),
);
const SumRequest = root.messageType<{ a: bigint; b: bigint }>("pb.SumRequest");
const Scalars = root.messageType("rich.v1.Scalars");
const Item = root.messageType("rich.v1.Item");
const Choice = root.messageType("rich.v1.Choice");
const Maps = root.messageType("rich.v1.Maps");

function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

describe("toJSON (the proto3 JSON mapping)", () => {
  it("writes 64-bit integers as strings and leaves out default values", () => {
    expect(SumRequest.toJSON({ a: 1n, b: -(2n ** 63n) })).toEqual({ a: "1", b: "-9223372036854775808" });
    expect(SumRequest.toJSON({ a: 0n, b: 0n })).toEqual({});
  });

  it("writes enums by name (numbers the schema does not know stay numbers), bytes as base64", () => {
    expect(Item.toJSON({ status: 1 })).toEqual({ status: "STATUS_ACTIVE" });
    expect(Item.toJSON({ status: 99 })).toEqual({ status: 99 });
    expect(
      Scalars.toJSON({ fBytes: Uint8Array.of(1, 2), fDouble: Number.NaN, fUint64: 2n ** 64n - 1n }),
    ).toEqual({
      fDouble: "NaN",
      fUint64: "18446744073709551615",
      fBytes: "AQI=",
    });
  });

  it("writes the oneof member that is set and optional fields that are set, even to zero", () => {
    expect(Choice.toJSON({ number: 5n, maybe: 0 })).toEqual({ number: "5", maybe: 0 });
  });

  it("writes maps with string keys", () => {
    expect(Maps.toJSON({ byId: { "-1": "x" }, flags: { true: 1 } })).toEqual({
      byId: { "-1": "x" },
      flags: { true: "STATUS_ACTIVE" },
    });
  });

  it("checks the message first, like encode", () => {
    const err = thrown(() => Item.toJSON({ quantity: "x" }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe(
      "invalid rich.v1.Item message: quantity: expected int64, got a string that is not a decimal integer",
    );
  });
});

describe("fromJSON", () => {
  it("reads what toJSON writes, back to the same message", () => {
    const item = Item.create({
      name: "x",
      quantity: 2n ** 63n - 1n,
      status: 2,
      tags: [{ key: "k", weight: 2n ** 64n - 1n }],
    });
    expect(Item.fromJSON(Item.toJSON(item))).toEqual(item);
  });

  it("accepts 64-bit integers as numbers or strings, enums by name or number, and proto field names", () => {
    expect(Item.fromJSON({ quantity: 5, status: "STATUS_SUSPENDED" })).toMatchObject({
      quantity: 5n,
      status: 2,
    });
    expect(Item.fromJSON({ quantity: "-9223372036854775808", status: 1 })).toMatchObject({
      quantity: -(2n ** 63n),
      status: 1,
    });
    expect(Scalars.fromJSON({ f_int64: "7", fBytes: "AQI=", fFloat: "-Infinity" })).toMatchObject({
      fInt64: 7n,
      fBytes: Uint8Array.of(1, 2),
      fFloat: Number.NEGATIVE_INFINITY,
    });
  });

  it("rejects what is not this message's JSON with INVALID_ARGUMENT and a reason", () => {
    const cases: [unknown, string][] = [
      [{ nope: 1 }, 'invalid rich.v1.Item JSON: unknown field: "nope"'],
      ["x", 'invalid rich.v1.Item JSON: expected object: "x"'],
      [null, "invalid rich.v1.Item JSON: expected object: null"],
      [{ quantity: "1.5" }, 'invalid rich.v1.Item JSON: quantity: not an integer: "1.5"'],
      [
        { quantity: 1e30 },
        "invalid rich.v1.Item JSON: a number in a 64-bit integer field is out of range or not an integer",
      ],
      [{ status: "NOPE" }, 'invalid rich.v1.Item JSON: status: unknown enum value: "NOPE"'],
    ];
    for (const [json, message] of cases) {
      const err = thrown(() => Item.fromJSON(json));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(message);
    }
    expect(thrown(() => Choice.fromJSON({ text: "a", number: "5" })).message).toBe(
      "invalid rich.v1.Choice JSON: multiple values for oneof kind",
    );
  });
});
