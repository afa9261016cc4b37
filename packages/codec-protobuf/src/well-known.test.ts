import { fileURLToPath } from "node:url";
import { loadProtoSync, parseProto } from "@svckit/codec-protobuf";
import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

// The well-known types come with protobufjs: no google/protobuf/*.proto files are shipped here.
const root = loadProtoSync(fileURLToPath(new URL("./testdata/rich.proto", import.meta.url)));
const WellKnown = root.messageType("rich.v1.WellKnown");
const Item = root.messageType("rich.v1.Item");

function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

describe("well-known types", () => {
  it("are available in every root, imported or not", () => {
    const bare = parseProto('syntax = "proto3"; package p; message M { string s = 1; }');
    for (const name of [
      "google.protobuf.Timestamp",
      "google.protobuf.Duration",
      "google.protobuf.Struct",
      "google.protobuf.Value",
      "google.protobuf.ListValue",
      "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value",
      "google.protobuf.Int32Value",
      "google.protobuf.UInt32Value",
      "google.protobuf.DoubleValue",
      "google.protobuf.FloatValue",
      "google.protobuf.BoolValue",
      "google.protobuf.StringValue",
      "google.protobuf.BytesValue",
      "google.protobuf.Empty",
      "google.protobuf.Any",
      "google.protobuf.FieldMask",
    ]) {
      expect(bare.messageType(name).typeName).toBe(name);
      expect(root.messageType(name).typeName).toBe(name);
    }
    expect(bare.enumValues("google.protobuf.NullValue")).toEqual({ NULL_VALUE: 0 });
  });

  it("decode with the same conventions as other messages: unset means null", () => {
    const empty = WellKnown.decode(new Uint8Array(0));
    expect(Object.values(empty).every((v) => v === null)).toBe(true);
  });

  it("round-trip Timestamp and Duration with 64-bit seconds", () => {
    const value = {
      at: { seconds: 253402300799n, nanos: 999999999 },
      took: { seconds: -315576000000n, nanos: -999999999 },
    };
    expect(WellKnown.decode(WellKnown.encode(value))).toMatchObject(value);
    expect(WellKnown.toJSON(value)).toEqual({
      at: "9999-12-31T23:59:59.999999999Z",
      took: "-315576000000.999999999s",
    });
    expect(WellKnown.fromJSON({ at: "1970-01-01T00:00:01.5Z", took: "1.5s" })).toMatchObject({
      at: { seconds: 1n, nanos: 500000000 },
      took: { seconds: 1n, nanos: 500000000 },
    });
  });

  it("round-trip Struct, Value and ListValue, whose kind is a oneof", () => {
    const meta = {
      fields: {
        n: { numberValue: 1.5 },
        s: { stringValue: "x" },
        b: { boolValue: true },
        z: { nullValue: 0 },
        l: { listValue: { values: [{ numberValue: 1 }, { structValue: { fields: {} } }] } },
      },
    };
    const decoded = WellKnown.decode(WellKnown.encode({ meta }));
    expect(decoded.meta).toEqual({
      fields: {
        n: { kind: "numberValue", numberValue: 1.5 },
        s: { kind: "stringValue", stringValue: "x" },
        b: { kind: "boolValue", boolValue: true },
        z: { kind: "nullValue", nullValue: 0 },
        l: {
          kind: "listValue",
          listValue: {
            values: [
              { kind: "numberValue", numberValue: 1 },
              { kind: "structValue", structValue: { fields: {} } },
            ],
          },
        },
      },
    });
    expect(WellKnown.toJSON({ meta })).toEqual({ meta: { n: 1.5, s: "x", b: true, z: null, l: [1, {}] } });
    const json = { meta: { a: [1, "two", { three: null }] }, value: "v", list: [true] };
    expect(WellKnown.toJSON(WellKnown.fromJSON(json))).toEqual(json);
  });

  it("round-trip every wrapper, 64-bit ones at their limits", () => {
    const value = {
      big: { value: -(2n ** 63n) },
      ubig: { value: 2n ** 64n - 1n },
      name: { value: "" },
      flag: { value: false },
      data: { value: Uint8Array.of(1, 2) },
      ratio: { value: 0.5 },
      small: { value: -1 },
      usmall: { value: 2 ** 32 - 1 },
      fratio: { value: 0.25 },
    };
    const decoded = WellKnown.decode(WellKnown.encode(value));
    expect(decoded).toMatchObject(value);
    // A wrapper set to its default is still set: that is the point of wrappers.
    expect(decoded.name).toEqual({ value: "" });
    expect(WellKnown.toJSON(value)).toEqual({
      big: "-9223372036854775808",
      ubig: "18446744073709551615",
      name: "",
      flag: false,
      data: "AQI=",
      ratio: 0.5,
      small: -1,
      usmall: 4294967295,
      fratio: 0.25,
    });
  });

  it("round-trip Empty, and Any holding another message", () => {
    const item = Item.create({ name: "packed", quantity: 2n ** 60n });
    const extra = { typeUrl: "type.googleapis.com/rich.v1.Item", value: Item.encode(item) };
    const decoded = WellKnown.decode(WellKnown.encode({ nothing: {}, extra }));
    expect(decoded.nothing).toEqual({});
    expect(decoded.extra).toEqual({ typeUrl: extra.typeUrl, value: new Uint8Array(extra.value) });
    const any = decoded.extra as { typeUrl: string; value: Uint8Array };
    const inner = root.messageType(any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1));
    expect(inner.decode(any.value)).toEqual(item);
    expect(WellKnown.toJSON({ nothing: {}, extra })).toEqual({
      nothing: {},
      extra: { "@type": "type.googleapis.com/rich.v1.Item", name: "packed", quantity: "1152921504606846976" },
    });
    expect(WellKnown.fromJSON(WellKnown.toJSON({ extra })).extra).toEqual({
      typeUrl: extra.typeUrl,
      value: new Uint8Array(extra.value),
    });
  });

  it("name Any's type_url field typeUrl, like every other field", () => {
    const Any = root.messageType("google.protobuf.Any");
    expect(Any.create()).toEqual({ typeUrl: "", value: new Uint8Array(0) });
    expect(Any.decode(Any.encode({ typeUrl: "x/y" }))).toEqual({ typeUrl: "x/y", value: new Uint8Array(0) });
  });

  it("round-trip FieldMask", () => {
    const FieldMask = root.messageType("google.protobuf.FieldMask");
    const mask = { paths: ["user.display_name", "photo"] };
    expect(FieldMask.decode(FieldMask.encode(mask))).toEqual(mask);
    expect(FieldMask.toJSON(mask)).toBe("user.displayName,photo");
  });

  it("report values that have no JSON form as INVALID_ARGUMENT", () => {
    const tooLate = { at: { seconds: 253402300800n, nanos: 0 } };
    const err = thrown(() => WellKnown.toJSON(tooLate));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe(
      "rich.v1.WellKnown message has no JSON form: google.protobuf.Timestamp out of range",
    );
  });
});
