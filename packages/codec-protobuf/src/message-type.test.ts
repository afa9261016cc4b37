import { fileURLToPath } from "node:url";
import { loadProtoSync, type MessageType } from "@svckit/codec-protobuf";
import { Code, ServiceError } from "@svckit/endpoint";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";

const files = ["addsvc.proto", "rich.proto", "legacy.proto"].map((f) =>
  fileURLToPath(new URL(`./testdata/${f}`, import.meta.url)),
);
const root = loadProtoSync(files);
// protobufjs on its own, as an independent reference for the bytes on the wire.
const reference = protobuf.loadSync(files);
// protobufjs types util.Long as a bare constructor; the `long` package it loads has these statics.
const Long = protobuf.util.Long as unknown as {
  fromString(text: string, unsigned?: boolean): protobuf.Long;
  ZERO: protobuf.Long;
};

function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replaceAll(" ", ""), "hex"));
}

type Sum = { a: bigint; b: bigint };
const SumRequest = root.messageType<Sum>("pb.SumRequest");
const SumReply = root.messageType<{ v: bigint; err: string }>("pb.SumReply");
const ConcatRequest = root.messageType<{ a: string; b: string }>("pb.ConcatRequest");
const Scalars = root.messageType("rich.v1.Scalars");
const Repeated = root.messageType("rich.v1.Repeated");
const Choice = root.messageType("rich.v1.Choice");
const Maps = root.messageType("rich.v1.Maps");
const Item = root.messageType("rich.v1.Item");
const Tree = root.messageType("rich.v1.Tree");

describe("addsvc (go-kit's pb.Add messages)", () => {
  it("encodes the bytes go-kit's Go client sends and decodes them back to bigints", () => {
    const bytes = SumRequest.encode({ a: 1n, b: 2n });
    expect(hex(bytes)).toBe("08011002");
    expect(SumRequest.decode(bytes)).toEqual({ a: 1n, b: 2n });
    expect(hex(ConcatRequest.encode({ a: "ab", b: "c" }))).toBe("0a026162120163");
  });

  it("fills proto3 defaults for fields that were not sent, and leaves them out when encoding", () => {
    expect(SumRequest.decode(new Uint8Array(0))).toEqual({ a: 0n, b: 0n });
    expect(SumReply.decode(fromHex("1203626164"))).toEqual({ v: 0n, err: "bad" });
    expect(SumReply.encode({ v: 0n, err: "" })).toHaveLength(0);
    // An explicit zero on the wire (legal, if unusual) is a zero too.
    expect(SumRequest.decode(fromHex("0800 1000"))).toEqual({ a: 0n, b: 0n });
  });

  it("returns plain objects with exactly the schema's fields as own properties", () => {
    const decoded = SumRequest.decode(SumRequest.encode({ a: 5n, b: 6n }));
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.keys(decoded)).toEqual(["a", "b"]);
    expect(decoded).toStrictEqual({ a: 5n, b: 6n });
  });

  it("ignores unknown fields on the wire and unknown properties in objects", () => {
    // field 3 (varint 7) and field 9 (string "x") are not in SumRequest
    expect(SumRequest.decode(fromHex("0801 1807 4a0178 1002"))).toEqual({ a: 1n, b: 2n });
    const extra = { a: 1n, b: 2n, c: "not in the schema" } as Sum;
    expect(hex(SumRequest.encode(extra))).toBe("08011002");
  });

  it("gives a Buffer in Node.js, which is a Uint8Array", () => {
    const bytes = SumRequest.encode({ a: 1n, b: 1n });
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(Buffer.isBuffer(bytes)).toBe(true);
  });

  it("has bound methods that can be passed around as plain functions", () => {
    const { encode, decode, create, toJSON, fromJSON, typeName } = SumRequest;
    expect(typeName).toBe("pb.SumRequest");
    expect(decode(encode({ a: 3n, b: 4n }))).toEqual({ a: 3n, b: 4n });
    expect(create({ a: 1n })).toEqual({ a: 1n, b: 0n });
    expect(fromJSON(toJSON({ a: 3n, b: 4n }))).toEqual({ a: 3n, b: 4n });
    expect(Object.isFrozen(SumRequest)).toBe(true);
  });

  it("decodes Uint8Arrays that are not Buffers, and views into larger buffers", () => {
    const backing = new Uint8Array([0xff, 0xff, 0x08, 0x01, 0x10, 0x02, 0xff]);
    expect(SumRequest.decode(backing.subarray(2, 6))).toEqual({ a: 1n, b: 2n });
    expect(SumRequest.decode(new Uint8Array([0x08, 0x7f]))).toEqual({ a: 127n, b: 0n });
  });
});

describe("64-bit integers", () => {
  const int64Limits = [
    0n,
    1n,
    -1n,
    127n,
    128n,
    2n ** 31n,
    -(2n ** 31n) - 1n,
    2n ** 32n,
    2n ** 53n - 1n,
    2n ** 53n,
    2n ** 53n + 1n,
    -(2n ** 53n) + 1n,
    -(2n ** 53n),
    -(2n ** 53n) - 1n,
    2n ** 62n + 12345n,
    2n ** 63n - 1n,
    -(2n ** 63n),
  ];
  const uint64Limits = [0n, 1n, 2n ** 32n - 1n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 2n, 2n ** 64n - 1n];
  const signed = ["fInt64", "fSint64", "fSfixed64"] as const;
  const unsigned = ["fUint64", "fFixed64"] as const;
  const rawScalars = reference.lookupType("rich.v1.Scalars");

  it.each(int64Limits)(
    "int64, sint64 and sfixed64 keep %s exactly, and agree with protobufjs on the wire",
    (v) => {
      for (const field of signed) {
        const bytes = Scalars.encode({ [field]: v });
        expect(Scalars.decode(bytes)[field]).toBe(v);
        const viaLong = rawScalars.encode({ [field]: Long.fromString(v.toString(), false) }).finish();
        expect(hex(bytes)).toBe(hex(viaLong));
        const back = rawScalars.decode(bytes) as unknown as Record<string, protobuf.Long>;
        expect((back[field] ?? Long.ZERO).toString()).toBe(v.toString());
      }
    },
  );

  it.each(uint64Limits)("uint64 and fixed64 keep %s exactly, and agree with protobufjs on the wire", (v) => {
    for (const field of unsigned) {
      const bytes = Scalars.encode({ [field]: v });
      expect(Scalars.decode(bytes)[field]).toBe(v);
      const viaLong = rawScalars.encode({ [field]: Long.fromString(v.toString(), true) }).finish();
      expect(hex(bytes)).toBe(hex(viaLong));
    }
  });

  it("int64 uses ten bytes for negatives, sint64 zig-zags", () => {
    expect(hex(Scalars.encode({ fInt64: -1n }))).toBe("20ffffffffffffffffff01");
    expect(hex(Scalars.encode({ fSint64: -1n }))).toBe("4001");
    expect(hex(Scalars.encode({ fUint64: 2n ** 64n - 1n }))).toBe("30ffffffffffffffffff01");
    expect(hex(Scalars.encode({ fFixed64: 2n ** 64n - 1n }))).toBe("51ffffffffffffffff");
  });

  it("accepts integer numbers and decimal strings on encode, with the same bytes as bigints", () => {
    for (const [input, expected] of [
      [42, 42n],
      [-42, -42n],
      [Number.MAX_SAFE_INTEGER, 2n ** 53n - 1n],
      [2 ** 60, 2n ** 60n], // an integer number beyond 2^53 is taken at its exact value
      [-(2 ** 63), -(2n ** 63n)],
      ["9223372036854775807", 2n ** 63n - 1n],
      ["-9223372036854775808", -(2n ** 63n)],
      ["0012", 12n],
    ] as const) {
      const bytes = Scalars.encode({ fInt64: input });
      expect(bytes).toEqual(Scalars.encode({ fInt64: expected }));
      expect(Scalars.decode(bytes).fInt64).toBe(expected);
    }
    expect(Scalars.decode(Scalars.encode({ fUint64: "18446744073709551615" })).fUint64).toBe(2n ** 64n - 1n);
    expect(Scalars.decode(Scalars.encode({ fUint64: 2 ** 63 })).fUint64).toBe(2n ** 63n);
  });

  it("rejects values out of range instead of wrapping them", () => {
    const cases: [string, unknown, string][] = [
      ["fInt64", 2n ** 63n, "fInt64: out of range for int64"],
      ["fInt64", -(2n ** 63n) - 1n, "fInt64: out of range for int64"],
      ["fInt64", 2 ** 63, "fInt64: out of range for int64"],
      ["fInt64", "9223372036854775808", "fInt64: out of range for int64"],
      ["fSint64", 2n ** 64n, "fSint64: out of range for sint64"],
      ["fSfixed64", -(2n ** 63n) - 1n, "fSfixed64: out of range for sfixed64"],
      ["fUint64", -1n, "fUint64: out of range for uint64"],
      ["fUint64", -1, "fUint64: out of range for uint64"],
      ["fUint64", 2n ** 64n, "fUint64: out of range for uint64"],
      ["fFixed64", "18446744073709551616", "fFixed64: out of range for fixed64"],
      ["fFixed64", "-1", "fFixed64: out of range for fixed64"],
    ];
    for (const [field, value, message] of cases) {
      const err = thrown(() => Scalars.encode({ [field]: value }));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(`invalid rich.v1.Scalars message: ${message}`);
    }
  });

  it("rejects what is not an integer, saying what it got", () => {
    const cases: [unknown, string][] = [
      [1.5, "expected int64, got a number that is not an integer"],
      [Number.NaN, "expected int64, got a number that is not an integer"],
      [Number.POSITIVE_INFINITY, "expected int64, got a number that is not an integer"],
      ["1.5", "expected int64, got a string that is not a decimal integer"],
      ["0x10", "expected int64, got a string that is not a decimal integer"],
      ["", "expected int64, got a string that is not a decimal integer"],
      [" 1", "expected int64, got a string that is not a decimal integer"],
      [true, "expected int64 (a bigint, an integer number or a decimal string), got a boolean"],
      [
        { low: 1, high: 0 },
        "expected int64 (a bigint, an integer number or a decimal string), got an object",
      ],
    ];
    for (const [value, reason] of cases) {
      expect(thrown(() => Scalars.encode({ fInt64: value })).message).toBe(
        `invalid rich.v1.Scalars message: fInt64: ${reason}`,
      );
    }
  });

  it("keeps full precision in repeated (packed and unpacked) fields and maps", () => {
    const values = [0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n];
    const decoded = Repeated.decode(
      Repeated.encode({
        rInt64: values,
        rSint64: values,
        rSfixed64: values,
        rUnpacked: values,
        rUint64: [2n ** 64n - 1n, 1n],
        rFixed64: [2n ** 64n - 1n, 0n],
      }),
    );
    expect(decoded.rInt64).toEqual(values);
    expect(decoded.rSint64).toEqual(values);
    expect(decoded.rSfixed64).toEqual(values);
    expect(decoded.rUnpacked).toEqual(values);
    expect(decoded.rUint64).toEqual([2n ** 64n - 1n, 1n]);
    expect(decoded.rFixed64).toEqual([2n ** 64n - 1n, 0n]);
  });
});

describe("32-bit and other scalars", () => {
  it("round-trips every scalar type at its limits", () => {
    const value = {
      fDouble: -1.5e300,
      fFloat: 0.5,
      fInt32: -(2 ** 31),
      fInt64: 1n,
      fUint32: 2 ** 32 - 1,
      fUint64: 2n,
      fSint32: -(2 ** 31),
      fSint64: -3n,
      fFixed32: 2 ** 32 - 1,
      fFixed64: 4n,
      fSfixed32: -(2 ** 31),
      fSfixed64: -5n,
      fBool: true,
      fString: "héllo, 世界 🚀",
      fBytes: Uint8Array.of(0, 1, 254, 255),
    };
    expect(Scalars.decode(Scalars.encode(value))).toEqual(value);
  });

  it("keeps NaN, infinities and negative zero in doubles and floats; floats are rounded to 32 bits", () => {
    for (const v of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 5e-324]) {
      expect(Object.is(Scalars.decode(Scalars.encode({ fDouble: v })).fDouble, v)).toBe(true);
    }
    expect(Object.is(Scalars.decode(Scalars.encode({ fFloat: -0 })).fFloat, -0)).toBe(true);
    expect(Scalars.decode(Scalars.encode({ fFloat: 0.1 })).fFloat).toBe(Math.fround(0.1));
  });

  it("rejects 32-bit integers out of range or not integers, and other wrong types", () => {
    const cases: [string, unknown, string][] = [
      ["fInt32", 2 ** 31, "out of range for int32"],
      ["fInt32", 1.5, "expected int32, got a number that is not an integer"],
      ["fInt32", 1n, "expected int32 (a number), got a bigint"],
      ["fUint32", -1, "out of range for uint32"],
      ["fUint32", 2 ** 32, "out of range for uint32"],
      ["fSint32", "1", "expected sint32 (a number), got a string"],
      ["fFixed32", -1, "out of range for fixed32"],
      ["fSfixed32", 2 ** 31, "out of range for sfixed32"],
      ["fDouble", "1.5", "expected double (a number), got a string"],
      ["fFloat", 1n, "expected float (a number), got a bigint"],
      ["fBool", 1, "expected bool (a boolean), got a number"],
      ["fString", 5, "expected string, got a number"],
      ["fBytes", "AAE=", "expected bytes (a Uint8Array), got a string"],
      ["fBytes", [1, 2], "expected bytes (a Uint8Array), got an array"],
    ];
    for (const [field, value, reason] of cases) {
      const err = thrown(() => Scalars.encode({ [field]: value }));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(`invalid rich.v1.Scalars message: ${field}: ${reason}`);
    }
  });

  it("treats null and undefined as not set", () => {
    expect(Scalars.encode({ fString: null, fInt64: undefined, fBytes: null })).toHaveLength(0);
  });

  it("decodes bytes as views into the input, without copying", () => {
    const input = Scalars.encode({ fBytes: Uint8Array.of(1, 2, 3) });
    const out = Scalars.decode(input).fBytes as Uint8Array;
    expect(out).toBeInstanceOf(Uint8Array);
    expect([...out]).toEqual([1, 2, 3]);
    expect(out.buffer).toBe(input.buffer);
    expect(Buffer.isBuffer(input)).toBe(true);
    expect(Buffer.isBuffer(out)).toBe(false); // a plain Uint8Array whether the input is a Buffer or not
    const unset = Scalars.decode(new Uint8Array(0)).fBytes;
    expect(unset).toBeInstanceOf(Uint8Array);
    expect(unset).toHaveLength(0);
  });
});

describe("enums", () => {
  it("are numbers both ways, including negative values and values the schema does not know", () => {
    expect(Item.decode(Item.encode({ status: 2 })).status).toBe(2);
    expect(Item.decode(Item.encode({ status: -1 })).status).toBe(-1);
    expect(Item.decode(Item.encode({ status: 99 })).status).toBe(99); // proto3 enums are open
    expect(Item.decode(new Uint8Array(0)).status).toBe(0);
  });

  it("are looked up by name with enumValues", () => {
    const Status = root.enumValues("rich.v1.Status");
    expect(Status).toEqual({
      STATUS_UNSPECIFIED: 0,
      STATUS_ACTIVE: 1,
      STATUS_SUSPENDED: 2,
      STATUS_NEGATIVE: -1,
    });
    expect(Item.decode(Item.encode({ status: Status.STATUS_ACTIVE })).status).toBe(1);
  });

  it("reject names and non-integers on encode", () => {
    expect(thrown(() => Item.encode({ status: "STATUS_ACTIVE" })).message).toBe(
      "invalid rich.v1.Item message: status: expected a rich.v1.Status value (a number), got a string",
    );
    expect(thrown(() => Item.encode({ status: 1.5 })).message).toBe(
      "invalid rich.v1.Item message: status: expected a rich.v1.Status value, got a number that is not an integer",
    );
    expect(thrown(() => Item.encode({ status: 2 ** 31 })).message).toBe(
      "invalid rich.v1.Item message: status: out of range for an enum (int32)",
    );
  });
});

describe("oneofs and optional fields", () => {
  it("set the oneof's property to the name of the member that is set; other members are absent", () => {
    const decoded = Choice.decode(Choice.encode({ number: 2n ** 60n }));
    expect(decoded).toStrictEqual({ single: null, kind: "number", other: undefined, number: 2n ** 60n });
    expect("text" in decoded).toBe(false);
  });

  it("leave the oneof undefined when no member is set", () => {
    expect(Choice.decode(new Uint8Array(0))).toStrictEqual({
      single: null,
      kind: undefined,
      other: undefined,
    });
  });

  it("keep a member that is set to its default value", () => {
    expect(Choice.decode(Choice.encode({ text: "" }))).toMatchObject({ kind: "text", text: "" });
    expect(Choice.decode(Choice.encode({ number: 0n }))).toMatchObject({ kind: "number", number: 0n });
    expect(Choice.decode(Choice.encode({ flag: false }))).toMatchObject({ other: "flag", flag: false });
    expect(Choice.decode(Choice.encode({ item: {} }))).toMatchObject({
      kind: "item",
      item: { name: "", quantity: 0n, status: 0, tags: [] },
    });
  });

  it("round-trip every kind of member", () => {
    for (const member of [
      { text: "t" },
      { number: -(2n ** 63n) },
      { item: { name: "i", quantity: 3n, status: 1, tags: [] } },
      { blob: Uint8Array.of(7) },
      { state: 2 },
    ]) {
      const decoded = Choice.decode(Choice.encode(member));
      expect(decoded).toMatchObject(member);
      expect(decoded.kind).toBe(Object.keys(member)[0]);
    }
  });

  it("reject two members set at once, and ignore the oneof property itself on encode", () => {
    expect(thrown(() => Choice.encode({ text: "a", number: 1n })).message).toBe(
      "invalid rich.v1.Choice message: kind: more than one member of the oneof is set (text, number)",
    );
    expect(Choice.decode(Choice.encode({ kind: "text", number: 5n }))).toMatchObject({
      kind: "number",
      number: 5n,
    });
    expect(Choice.encode({ kind: "text" })).toHaveLength(0);
  });

  it("take the last member on the wire, as protobuf does", () => {
    const text = Choice.encode({ text: "first" });
    const number = Choice.encode({ number: 9n });
    const both = new Uint8Array([...text, ...number]);
    const decoded = Choice.decode(both);
    expect(decoded).toMatchObject({ kind: "number", number: 9n });
    expect("text" in decoded).toBe(false);
  });

  it("leave proto3 optional fields out when not set, and keep them when set to zero", () => {
    const unset = Choice.decode(new Uint8Array(0));
    expect("maybe" in unset || "maybeBig" in unset || "maybeText" in unset).toBe(false);
    const zeros = Choice.decode(Choice.encode({ maybe: 0, maybeBig: 0n, maybeText: "" }));
    expect(zeros).toMatchObject({ maybe: 0, maybeBig: 0n, maybeText: "" });
    expect(Choice.decode(Choice.encode({ maybeBig: 2n ** 64n - 1n })).maybeBig).toBe(2n ** 64n - 1n);
  });
});

describe("messages, repeated fields and maps", () => {
  it("give null for a message field that is not set, and a full message for one that is", () => {
    expect(Choice.decode(new Uint8Array(0)).single).toBeNull();
    expect(Choice.decode(Choice.encode({ single: {} })).single).toEqual({
      name: "",
      quantity: 0n,
      status: 0,
      tags: [],
    });
  });

  it("round-trip nested and repeated messages", () => {
    const item = {
      name: "widget",
      quantity: 2n ** 60n,
      status: 1,
      tags: [
        { key: "a", weight: 2n ** 64n - 1n },
        { key: "b", weight: 0n },
      ],
    };
    expect(Item.decode(Item.encode(item))).toEqual(item);
    const all = Repeated.decode(Repeated.encode({ rItem: [item, {}] }));
    expect(all.rItem).toEqual([item, { name: "", quantity: 0n, status: 0, tags: [] }]);
  });

  it("round-trip repeated fields of every type, empty by default", () => {
    const value = {
      rDouble: [1.5, -0, Number.NaN],
      rFloat: [0.5],
      rInt32: [-1, 0, 2 ** 31 - 1],
      rInt64: [1n, -1n],
      rUint32: [2 ** 32 - 1],
      rUint64: [2n ** 64n - 1n],
      rSint32: [-(2 ** 31)],
      rSint64: [-(2n ** 63n)],
      rFixed32: [7],
      rFixed64: [8n],
      rSfixed32: [-9],
      rSfixed64: [-10n],
      rBool: [true, false, true],
      rString: ["", "x"],
      rBytes: [new Uint8Array(0), Uint8Array.of(1)],
      rStatus: [0, 1, 99, -1],
      rItem: [],
      rUnpacked: [3n],
    };
    expect(Repeated.decode(Repeated.encode(value))).toEqual(value);
    const empty = Repeated.decode(new Uint8Array(0));
    for (const list of Object.values(empty)) expect(list).toEqual([]);
  });

  it("accept packed and unpacked encodings of the same repeated field", () => {
    const packed = fromHex("2203 01 02 03"); // field 4 (rInt64), length-delimited
    const unpacked = fromHex("2001 2002 2003"); // field 4, three varints
    expect(Repeated.decode(packed).rInt64).toEqual([1n, 2n, 3n]);
    expect(Repeated.decode(unpacked).rInt64).toEqual([1n, 2n, 3n]);
    expect(hex(Repeated.encode({ rInt64: [1n, 2n, 3n] }))).toBe("2203010203");
    expect(hex(Repeated.encode({ rUnpacked: [1n, 2n] }))).toBe("900101900102");
  });

  it("reject repeated fields that are not arrays or hold nulls", () => {
    expect(thrown(() => Repeated.encode({ rInt32: 5 })).message).toBe(
      "invalid rich.v1.Repeated message: rInt32: expected an array, got a number",
    );
    expect(thrown(() => Repeated.encode({ rString: ["a", null] })).message).toBe(
      "invalid rich.v1.Repeated message: rString[1]: expected a value, got null",
    );
    expect(thrown(() => Repeated.encode({ rItem: [{}, { tags: [{ weight: -1n }] }] })).message).toBe(
      "invalid rich.v1.Repeated message: rItem[1].tags[0].weight: out of range for uint64",
    );
  });

  it("round-trip maps with every key type; integer keys are decimal strings", () => {
    const value = {
      byName: { a: 2n ** 63n - 1n, "": 0n, __proto__x: 1n },
      byId: { "-9223372036854775808": "min", "9223372036854775807": "max", "0": "zero" },
      items: { "18446744073709551615": { name: "max", quantity: 1n, status: 0, tags: [] } },
      flags: { true: 1, false: 2 },
      blobs: { "-2147483648": Uint8Array.of(1), "2147483647": new Uint8Array(0) },
      signed: { "-1": -(2n ** 63n) },
      ratios: { "4294967295": 0.25 },
      namedItems: {},
    };
    expect(Maps.decode(Maps.encode(value))).toEqual(value);
    expect(Maps.decode(new Uint8Array(0))).toEqual({
      byName: {},
      byId: {},
      items: {},
      flags: {},
      blobs: {},
      signed: {},
      ratios: {},
      namedItems: {},
    });
  });

  it("keep a '__proto__' map key as an ordinary key, polluting nothing", () => {
    const map = JSON.parse('{"__proto__": 5}') as Record<string, bigint>;
    const decoded = Maps.decode(Maps.encode({ byName: map }));
    expect(Object.keys(decoded.byName as object)).toEqual(["__proto__"]);
    expect(Object.hasOwn(decoded.byName as object, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("fill in a map entry's missing key or value with the default", () => {
    // byName entry with only a key; byId entry with only a value; blobs entry with nothing
    const bytes = fromHex("0a03 0a0161  1203 120178  2a00");
    expect(Maps.decode(bytes)).toMatchObject({
      byName: { a: 0n },
      byId: { "0": "x" },
      blobs: { "0": new Uint8Array(0) },
    });
  });

  it("reject map keys that do not fit the key type, and values of the wrong type", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ byId: { x: "a" } }, 'byId["x"]: key is not a decimal int64'],
      [{ byId: { "01": "a" } }, 'byId["01"]: key is not a decimal int64'],
      [
        { byId: { "9223372036854775808": "a" } },
        'byId["9223372036854775808"]: key is out of range for int64',
      ],
      [{ items: { "-1": {} } }, 'items["-1"]: key is out of range for uint64'],
      [{ flags: { yes: 1 } }, 'flags["yes"]: key is not "true" or "false"'],
      [{ blobs: { "2147483648": new Uint8Array(0) } }, 'blobs["2147483648"]: key is out of range for int32'],
      [{ ratios: { "-1": 1 } }, 'ratios["-1"]: key is out of range for fixed32'],
      [{ byName: { a: "x" } }, 'byName["a"]: expected int64, got a string that is not a decimal integer'],
      [{ byName: { a: null } }, 'byName["a"]: expected a value, got null'],
      [{ byName: new Map([["a", 1n]]) }, "byName: expected an object (a map), got a Map"],
      [{ namedItems: { k: { tags: 1 } } }, 'namedItems["k"].tags: expected an array, got a number'],
    ];
    for (const [value, reason] of cases) {
      expect(thrown(() => Maps.encode(value)).message).toBe(`invalid rich.v1.Maps message: ${reason}`);
    }
  });

  it("handle recursive messages, and reject cycles and nesting deeper than 100", () => {
    const tree = {
      label: "root",
      children: [{ label: "a", children: [], parentHint: null }],
      parentHint: null,
    };
    expect(Tree.decode(Tree.encode(tree))).toEqual(tree);

    const deep = (n: number): Record<string, unknown> => {
      const top: Record<string, unknown> = {};
      let at = top;
      for (let i = 0; i < n; i++) {
        const next: Record<string, unknown> = {};
        at.parentHint = next;
        at = next;
      }
      return top;
    };
    expect(Tree.decode(Tree.encode(deep(100)))).toBeTruthy();
    expect(thrown(() => Tree.encode(deep(101))).message).toMatch(
      /^invalid rich\.v1\.Tree message: parentHint\.parentHint.*: messages are nested more than 100 deep \(is there a cycle\?\)$/,
    );
    const cycle: Record<string, unknown> = { label: "loop" };
    cycle.children = [cycle];
    const err = thrown(() => Tree.encode(cycle));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message.length).toBeLessThan(300);
  });

  it("reject a message field that is not an object", () => {
    expect(thrown(() => Choice.encode({ single: "x" })).message).toBe(
      "invalid rich.v1.Choice message: single: expected a rich.v1.Item message (an object), got a string",
    );
    for (const top of [null, undefined, 5, "x", [], Uint8Array.of(1)]) {
      const err = thrown(() => (SumRequest as unknown as MessageType<unknown>).encode(top));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toMatch(
        /^invalid pb\.SumRequest message: expected a pb\.SumRequest message \(an object\), got /,
      );
    }
  });
});

describe("create", () => {
  it("fills in defaults and normalises 64-bit values to bigints", () => {
    expect(SumRequest.create()).toEqual({ a: 0n, b: 0n });
    expect(SumRequest.create({ a: 5 as unknown as bigint })).toEqual({ a: 5n, b: 0n });
    expect(Item.create({ tags: [{ key: "k" }] })).toEqual({
      name: "",
      quantity: 0n,
      status: 0,
      tags: [{ key: "k", weight: 0n }],
    });
  });

  it("checks its input like encode", () => {
    expect(thrown(() => SumRequest.create({ a: "x" as unknown as bigint })).message).toBe(
      "invalid pb.SumRequest message: a: expected int64, got a string that is not a decimal integer",
    );
  });
});

describe("proto2", () => {
  const Record = root.messageType("legacy.Record");

  it("supports required fields, groups and optional fields (absent when not set)", () => {
    const value = {
      id: "r",
      count: 5n,
      level: 1,
      blob: Uint8Array.of(9),
      plain: [1, 2],
      extra: { note: "n" },
    };
    expect(Record.decode(Record.encode(value))).toEqual(value);
    expect(Record.decode(Record.encode({ id: "x" }))).toStrictEqual({ plain: [], extra: null, id: "x" });
  });

  it("rejects a missing required field both ways", () => {
    expect(thrown(() => Record.encode({})).message).toBe(
      "invalid legacy.Record message: id: required field is missing",
    );
    expect(thrown(() => Record.decode(new Uint8Array(0))).message).toBe(
      "invalid legacy.Record message: missing required field id",
    );
  });
});

describe("strings that are not valid Unicode", () => {
  const Concat = root.messageType<{ a: string; b: string }>("pb.ConcatRequest");

  it("a lone surrogate is refused on encode with INVALID_ARGUMENT naming the field", () => {
    let caught: unknown;
    try {
      Concat.encode({ a: "\ud800", b: "" });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ServiceError);
    expect((caught as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect((caught as ServiceError).message).toContain("a: string is not valid Unicode");
  });

  it("well-formed non-ASCII strings still round-trip", () => {
    const msg = { a: "héllo 😀", b: "日本" };
    expect(Concat.decode(Concat.encode(msg))).toEqual(msg);
  });
});
