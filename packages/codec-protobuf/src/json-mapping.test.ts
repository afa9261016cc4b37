import { parseProto } from "@svckit/codec-protobuf";
import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

const root = parseProto(`syntax = "proto2"; package g;
  message R { required string id = 1; required int64 n = 2; optional string note = 3; }
  message W { optional R r = 1; repeated R list = 2; map<string, R> byKey = 3; }
  message B { optional bytes data = 1; repeated bytes more = 2; optional W w = 3; }`);
const R = root.messageType("g.R");
const W = root.messageType("g.W");
const B = root.messageType("g.B");

const json3 = parseProto(`syntax = "proto3"; package a;
  import "google/protobuf/any.proto";
  import "google/protobuf/wrappers.proto";
  message Item { string name = 1; double d = 2; }
  message Holder { google.protobuf.Any any = 1; repeated google.protobuf.Any list = 2; }
  message F {
    double v = 1; float f = 2; optional double o = 3; repeated double r = 4;
    google.protobuf.DoubleValue w = 5; map<int64, Item> m = 6; repeated google.protobuf.FloatValue rw = 7;
    Item item = 8;
  }`);
const Holder = json3.messageType("a.Holder");
const F = json3.messageType("a.F");

const ext = parseProto(`syntax = "proto2"; package e;
  import "google/protobuf/any.proto";
  message Base { optional string id = 1; extensions 100 to 200; }
  message Req { required string id = 1; optional double d = 2; }
  extend Base {
    optional google.protobuf.Any any = 100;
    optional Req r = 101;
    optional bytes b = 102;
    repeated Req list = 103;
  }`);
const Base = ext.messageType("e.Base");

describe("fromJSON checks proto2 required fields", () => {
  it("reports the first missing required field with its path, at any depth", () => {
    for (const [type, json, path] of [
      [R, {}, "id"],
      [R, { id: "x" }, "n"],
      [R, { id: "x", n: null }, "n"],
      [W, { r: {} }, "r.id"],
      [W, { list: [{ id: "a", n: 1 }, { id: "b" }] }, "list[1].n"],
      [W, { byKey: { k: { n: "1" } } }, 'byKey["k"].id'],
    ] as const) {
      const err = thrown(() => type.fromJSON(json));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(`invalid ${type.typeName} JSON: missing required field ${path}`);
    }
  });

  it("accepts them under the JSON or the .proto name", () => {
    expect(W.fromJSON({ r: { id: "x", n: "5" } })).toMatchObject({ r: { id: "x", n: 5n } });
    expect(R.fromJSON({ id: "x", n: 0 })).toEqual({ id: "x", n: 0n });
  });
});

describe("fromJSON of bytes", () => {
  it("names the field holding bad base64", () => {
    for (const [json, path] of [
      [{ data: "!!" }, "data"],
      [{ data: "QQ=A" }, "data"],
      [{ data: "Q" }, "data"],
      [{ data: "QQ=" }, "data"],
      [{ more: ["QQ==", "a+b_"] }, "more[1]"],
    ] as const) {
      const err = thrown(() => B.fromJSON(json));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(
        `invalid g.B JSON: ${path}: not valid base64 (standard or URL-safe alphabet, padding optional)`,
      );
    }
  });

  it("reads standard and URL-safe base64, padded or not", () => {
    for (const data of ["+/8=", "+/8", "-_8=", "-_8"]) {
      expect(B.fromJSON({ data }).data).toEqual(Uint8Array.of(0xfb, 0xff));
    }
  });
});

describe("fromJSON / toJSON of Any", () => {
  it("rejects an Any with members but no @type; {} stays the empty Any", () => {
    const err = thrown(() => Holder.fromJSON({ any: { name: "x" } }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe(
      'invalid a.Holder JSON: any: an Any with members needs "@type" naming its message type ({} is the empty Any)',
    );
    expect(Holder.fromJSON({ any: {} }).any).toEqual({ typeUrl: "", value: new Uint8Array(0) });
  });

  it("requires a '/' and a fully qualified name that resolves exactly", () => {
    for (const [url, reason] of [
      [
        "type.googleapis.com/Item",
        'type URL "type.googleapis.com/Item": "Item" is not a message type of this schema (the name must be fully qualified, e.g. "pkg.Message")',
      ],
      [
        "type.googleapis.com/a.Nope",
        'type URL "type.googleapis.com/a.Nope": "a.Nope" is not a message type of this schema (the name must be fully qualified, e.g. "pkg.Message")',
      ],
      [
        "a.Item",
        'type URL "a.Item" has no "/" (expected "<prefix>/<fully qualified message name>", e.g. "type.googleapis.com/google.protobuf.Duration")',
      ],
      ["", '"@type" is empty (it names the message type the Any holds)'],
    ] as const) {
      expect(thrown(() => Holder.fromJSON({ list: [{ "@type": url, name: "x" }] })).message).toBe(
        `invalid a.Holder JSON: list[0]: ${reason}`,
      );
      if (url !== "") {
        const any = { typeUrl: url, value: new Uint8Array(0) };
        expect(thrown(() => Holder.toJSON({ any })).message).toBe(
          `a.Holder message has no JSON form: any: ${reason}`,
        );
      }
    }
  });

  it("toJSON refuses an Any with a value but an empty type URL; the empty Any stays {}", () => {
    const value = json3.messageType("a.Item").encode({ name: "x" });
    for (const [message, path] of [
      [{ any: { typeUrl: "", value } }, "any"],
      [
        {
          list: [
            { typeUrl: "", value: new Uint8Array(0) },
            { typeUrl: "", value },
          ],
        },
        "list[1]",
      ],
    ] as const) {
      const err = thrown(() => Holder.toJSON(message));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(
        `a.Holder message has no JSON form: ${path}: an Any with a value but no type URL has no JSON form (nothing names the value's message type)`,
      );
    }
    expect(Holder.toJSON({ any: { typeUrl: "", value: new Uint8Array(0) } })).toEqual({ any: {} });
  });

  it("keeps a good type URL as it is", () => {
    const json = { any: { "@type": "example.com/x/a.Item", name: "x" } };
    expect(Holder.fromJSON(json).any).toMatchObject({ typeUrl: "example.com/x/a.Item" });
    expect(Holder.toJSON(Holder.fromJSON(json))).toEqual(json);
  });
});

describe("float and double -0 in JSON", () => {
  const all = {
    v: -0,
    f: -0,
    o: -0,
    r: [-0],
    w: { value: -0 },
    m: { "5": { name: "", d: -0 } },
    rw: [{ value: -0 }],
    item: { name: "", d: -0 },
  };

  it("toJSON writes -0 as the JSON number -0 (0 stays a default and is left out)", () => {
    const json = F.toJSON(all) as Record<string, unknown>;
    expect(json).toEqual({
      v: -0,
      f: -0,
      o: -0,
      r: [-0],
      w: -0,
      m: { "5": { d: -0 } },
      rw: [-0],
      item: { d: -0 },
    });
    expect(Object.is(json.v, -0) && Object.is(json.f, -0)).toBe(true);
    expect(Object.is((json.item as { d: number }).d, -0)).toBe(true);
    expect(F.toJSON({ v: 0, f: 0, item: { d: 0 } })).toEqual({ item: {} });
  });

  it("fromJSON reads -0 and '-0' as -0", () => {
    for (const zero of [-0, "-0", "-0.0", "-0e3"]) {
      const m = F.fromJSON({
        v: zero,
        f: zero,
        o: zero,
        r: [zero],
        w: zero,
        m: { "05": { d: zero } },
        rw: [zero],
        item: { d: zero },
      });
      expect(m).toEqual(all);
      expect(Object.is((m as { v: number }).v, -0)).toBe(true);
      expect(Object.is((m as { w: { value: number } }).w.value, -0)).toBe(true);
      expect(Object.is((m as { item: { d: number } }).item.d, -0)).toBe(true);
    }
    expect(Object.is((F.fromJSON({ v: 0 }) as { v: number }).v, 0)).toBe(true);
  });

  it("survives a round trip through JSON, binary and an Any", () => {
    expect(F.fromJSON(F.toJSON(all))).toEqual(all);
    const json = { any: { "@type": "type.googleapis.com/a.Item", name: "x", d: -0 } };
    const holder = Holder.fromJSON(json) as { any: { value: Uint8Array } };
    expect(holder.any.value).not.toBeInstanceOf(Buffer);
    expect(Object.is((json3.messageType("a.Item").decode(holder.any.value) as { d: number }).d, -0)).toBe(
      true,
    );
    const back = Holder.toJSON(holder) as { any: { d: number } };
    expect(back).toEqual(json);
    expect(Object.is(back.any.d, -0)).toBe(true);
  });

  it("survives an Any that holds an Any", () => {
    const json = {
      any: {
        "@type": "type.googleapis.com/google.protobuf.Any",
        value: { "@type": "type.googleapis.com/a.Item", name: "x", d: -0 },
      },
    };
    const holder = Holder.fromJSON(json) as { any: { value: Uint8Array } };
    const inner = json3.messageType("google.protobuf.Any").decode(holder.any.value) as { value: Uint8Array };
    expect(Object.is((json3.messageType("a.Item").decode(inner.value) as { d: number }).d, -0)).toBe(true);
    const back = Holder.toJSON(holder) as { any: { value: { d: number } } };
    expect(back).toEqual(json);
    expect(Object.is(back.any.value.d, -0)).toBe(true);
  });
});

describe('JSON of extension fields (keys "[pkg.name]")', () => {
  it("fromJSON checks them as it checks other fields", () => {
    const base64 = "not valid base64 (standard or URL-safe alphabet, padding optional)";
    for (const [json, reason] of [
      [
        { "[e.any]": { id: "x" } },
        '[e.any]: an Any with members needs "@type" naming its message type ({} is the empty Any)',
      ],
      [
        { "[e.any]": { "@type": "type.googleapis.com/Req", id: "x" } },
        '[e.any]: type URL "type.googleapis.com/Req": "Req" is not a message type of this schema (the name must be fully qualified, e.g. "pkg.Message")',
      ],
      [{ "[e.r]": {} }, "missing required field [e.r].id"],
      [{ "[e.list]": [{ id: "a" }, {}] }, "missing required field [e.list][1].id"],
      [{ "[e.b]": "!!" }, `[e.b]: ${base64}`],
    ] as const) {
      const err = thrown(() => Base.fromJSON(json));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(`invalid e.Base JSON: ${reason}`);
    }
  });

  it("reads and writes them, -0 included", () => {
    const json = {
      id: "x",
      "[e.any]": { "@type": "type.googleapis.com/e.Req", id: "in" },
      "[e.r]": { id: "r", d: -0 },
      "[e.b]": "QQ==",
      "[e.list]": [{ id: "l" }],
    };
    const message = Base.fromJSON(json) as Record<string, { d?: number }>;
    expect(message[".e.b"]).toEqual(Uint8Array.of(0x41));
    expect(Object.is(message[".e.r"]?.d, -0)).toBe(true);
    const back = Base.toJSON(message) as Record<string, { d?: number }>;
    expect(back).toEqual(json);
    expect(Object.is(back["[e.r]"]?.d, -0)).toBe(true);
  });
});
