import { parseProto } from "@svckit/codec-protobuf";
import { Code, ServiceError } from "@svckit/endpoint";
import protobuf from "protobufjs";
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

const source = `syntax = "proto3"; package names;
  message Odd {
    string address_line_1 = 1;
    string foo_2_bar = 2;
    string foo__bar = 3;
    string _leading = 4;
    string renamed = 5 [json_name = "customName"];
    oneof the__choice { string pick_1 = 6; int64 pick__two = 7; }
    map<string, string> by_key_1 = 8;
    repeated int64 many_2_values = 9;
  }
  message Obj {
    string name = 1;
    string constructor = 2;
    string to_string = 3;
    string value_of = 4;
    string has_own_property = 5;
    string is_prototype_of = 6;
  }
  message Obj64 { string name = 1; int64 n = 2; string constructor = 3; }
  message Outer { Obj inner = 1; repeated Obj list = 2; }
  message Keys { map<string, int32> counts = 1; Keys child = 2; }
  message Rep { repeated string tags = 1; }
  message RepHolder { Rep one = 1; repeated Rep list = 2; map<string, Rep> byKey = 3; }
  message RepHolder64 { int64 n = 1; Rep one = 2; repeated Rep list = 3; map<string, Rep> byKey = 4; }
  message Ctor { repeated int32 constructor = 1; }
  message CtorText { repeated string constructor = 1; }`;
const root = parseProto(source);
const Odd = root.messageType("names.Odd");
const Obj = root.messageType("names.Obj");
const Obj64 = root.messageType("names.Obj64");
const Outer = root.messageType("names.Outer");
const Keys = root.messageType("names.Keys");
const Rep = root.messageType("names.Rep");
const RepHolder = root.messageType("names.RepHolder");
const RepHolder64 = root.messageType("names.RepHolder64");
const Ctor = root.messageType("names.Ctor");
const CtorText = root.messageType("names.CtorText");

// The names protoc's ToJsonName gives: each "_" dropped, the next character upper-cased.
const odd = {
  addressLine1: "a",
  foo2Bar: "b",
  fooBar: "c",
  Leading: "d",
  renamed: "e",
  pick1: "p",
  byKey1: { k: "v" },
  many2Values: [1n, 2n],
};

describe("field names follow the proto3 JSON mapping (protoc's ToJsonName)", () => {
  it("encodes every odd name form under its ToJsonName, byte for byte as protobufjs writes the fields", () => {
    const reference = protobuf.parse(source, { keepCase: true }).root.lookupType("names.Odd");
    const expected = reference
      .encode({
        address_line_1: "a",
        foo_2_bar: "b",
        foo__bar: "c",
        _leading: "d",
        renamed: "e",
        pick_1: "p",
        by_key_1: { k: "v" },
        many_2_values: [1, 2],
      })
      .finish();
    expect(Buffer.from(Odd.encode(odd)).toString("hex")).toBe(Buffer.from(expected).toString("hex"));
  });

  it("decodes to the same names (the oneof discriminator too), so the object form round-trips", () => {
    expect(Odd.decode(Odd.encode(odd))).toEqual({ ...odd, theChoice: "pick1" });
    expect(Odd.create({ pickTwo: 5n })).toMatchObject({ theChoice: "pickTwo", pickTwo: 5n });
  });

  it("agrees with toJSON / fromJSON, where only an explicit json_name differs", () => {
    expect(Odd.toJSON(odd)).toEqual({
      addressLine1: "a",
      foo2Bar: "b",
      fooBar: "c",
      Leading: "d",
      customName: "e",
      pick1: "p",
      byKey1: { k: "v" },
      many2Values: ["1", "2"],
    });
    expect(Odd.fromJSON(Odd.toJSON(odd))).toEqual(Odd.decode(Odd.encode(odd)));
    expect(Odd.fromJSON({ address_line_1: "proto name" })).toMatchObject({ addressLine1: "proto name" });
  });

  it("checks the oneof under the new names", () => {
    expect(thrown(() => Odd.encode({ pick1: "x", pickTwo: 1n })).message).toBe(
      "invalid names.Odd message: theChoice: more than one member of the oneof is set (pick1, pickTwo)",
    );
  });

  it("ignores protobufjs' old spellings (unknown properties are ignored)", () => {
    expect(Odd.create({ addressLine_1: "lost", foo_2Bar: "lost" } as never)).toMatchObject({
      addressLine1: "",
      foo2Bar: "",
    });
  });

  it("refuses a schema where two fields get the same JS name", () => {
    const clash = parseProto(
      `syntax = "proto2"; package c; message M { optional string a_b = 1; optional string a__b = 2; }`,
    );
    expect(() => clash.messageType("c.M")).toThrow(
      'field a_b and field a__b of c.M have the same JS name "aB" (rename one)',
    );
  });

  it("refuses it at every lookup, also through a type that uses it, and leaves other types working", () => {
    const clash = parseProto(`syntax = "proto3"; package c;
      message M { string a_b = 1; string a__b = 2; }
      message Uses { M m = 1; string name = 2; }
      message Fine { string name = 1; }`);
    const error = 'field a_b and field a__b of c.M have the same JS name "aB" (rename one)';
    for (const name of ["c.Uses", "c.Uses", "c.M", "c.M", "c.Uses"]) {
      expect(() => clash.messageType(name)).toThrow(error);
    }
    expect(clash.messageType("c.Fine").create({ name: "x" })).toEqual({ name: "x" });
  });
});

describe("encode reads own properties only", () => {
  it("sees a field named like an Object.prototype member only when the object has it", () => {
    expect(Obj.create()).toEqual({
      name: "",
      constructor: "",
      toString: "",
      valueOf: "",
      hasOwnProperty: "",
      isPrototypeOf: "",
    });
    expect(Obj.decode(Obj.encode({ name: "n" }))).toMatchObject({ name: "n", constructor: "" });
    const all = {
      name: "n",
      constructor: "c",
      toString: "s",
      valueOf: "v",
      hasOwnProperty: "h",
      isPrototypeOf: "i",
    };
    expect(Obj.decode(Obj.encode(all))).toEqual(all);
    expect(Obj.toJSON(all)).toEqual(all);
    expect(Obj.fromJSON(all)).toEqual(all);
    expect(Obj64.create({ n: 5 })).toEqual({ name: "", n: 5n, constructor: "" });
    expect(Outer.create({ inner: { name: "x" }, list: [{}] })).toMatchObject({
      inner: { name: "x", constructor: "" },
      list: [{ name: "", toString: "" }],
    });
  });

  it("leaves getters and prototype values of a class instance out, checked or not, at every level", () => {
    class Getter {
      get name(): unknown {
        return 42; // not a string: never read, so no error either
      }
    }
    class Own {
      name = "own";
    }
    expect(Obj.create(new Getter() as never)).toMatchObject({ name: "" });
    expect(Obj64.create(new Getter() as never)).toMatchObject({ name: "" });
    expect(Obj.create(new Own() as never)).toMatchObject({ name: "own" });
    expect(Outer.create({ inner: new Getter(), list: [new Own(), new Getter()] } as never)).toMatchObject({
      inner: { name: "" },
      list: [{ name: "own" }, { name: "" }],
    });
    const inherits = Object.create({ name: "from the prototype" }) as Record<string, unknown>;
    expect(Obj.create(inherits)).toMatchObject({ name: "" });
    expect(Obj.toJSON(inherits)).toEqual({});
    // An own property that is a getter is read.
    const ownGetter = Object.defineProperty({}, "name", { get: () => "g", enumerable: true });
    expect(Obj.create(ownGetter)).toMatchObject({ name: "g" });
    // Null-prototype objects are plain objects.
    expect(Obj.create(Object.assign(Object.create(null), { constructor: "c" }))).toMatchObject({
      constructor: "c",
    });
  });
});

describe("encode hands protobufjs only the fields it checked", () => {
  class Getter {
    get tags(): unknown {
      return ["ok", 5]; // protobufjs would write this (unchecked) if it saw the instance
    }
  }

  it("does not write repeated fields a class or an Object.create parent provides", () => {
    expect(Rep.encode(new Getter() as never)).toHaveLength(0);
    expect(Rep.create(new Getter() as never)).toEqual({ tags: [] });
    expect(Rep.encode(Object.create({ tags: ["\ud800"] }))).toHaveLength(0);
    class OwnTags {
      tags = ["own"];
    }
    expect(Rep.create(new OwnTags() as never)).toEqual({ tags: ["own"] });
  });

  it("does not write Object.prototype's members as repeated fields named like them", () => {
    expect(Ctor.encode({})).toHaveLength(0);
    expect(Ctor.create()).toEqual({ constructor: [] });
    expect(CtorText.create()).toEqual({ constructor: [] });
    expect(CtorText.create({ constructor: ["a"] } as never)).toEqual({ constructor: ["a"] });
    expect(Ctor.decode(Ctor.encode({ constructor: [1, 2] } as never))).toEqual({ constructor: [1, 2] });
  });

  it("rebuilds the messages around a nested one that had to be rebuilt, at every level", () => {
    for (const type of [RepHolder, RepHolder64]) {
      const list = [{ tags: ["a"] }, new Getter(), { tags: ["c"] }];
      const byKey = { j: { tags: ["b"] }, k: new Getter() };
      const input = { one: new Getter(), list, byKey };
      expect(type.create(input as never)).toMatchObject({
        one: { tags: [] },
        list: [{ tags: ["a"] }, { tags: [] }, { tags: ["c"] }],
        byKey: { j: { tags: ["b"] }, k: { tags: [] } },
      });
      expect(list[1]).toBeInstanceOf(Getter); // the caller's objects are left as they were
      expect(byKey.k).toBeInstanceOf(Getter);
    }
  });

  it("does not write a $unknowns property (raw bytes to protobufjs)", () => {
    const raw = [Uint8Array.of(0x0a, 0x01, 0xff)];
    expect(Rep.encode({ tags: ["a"], $unknowns: raw } as never)).toEqual(Rep.encode({ tags: ["a"] }));
    expect(RepHolder.encode({ one: { $unknowns: raw } } as never)).toEqual(RepHolder.encode({ one: {} }));
  });

  it("checks what a plain object inherits from a polluted Object.prototype like its own values", () => {
    // The documented limit: plain objects are not checked for own properties field by field (it
    // costs), so a field added to Object.prototype is read, but it is checked before it is written.
    const pollute = { tags: ["\ud800"], name: 5, n: "nope" };
    for (const [k, value] of Object.entries(pollute)) {
      Object.defineProperty(Object.prototype, k, { value, configurable: true, writable: true });
    }
    try {
      expect(thrown(() => Rep.encode({})).message).toBe(
        "invalid names.Rep message: tags[0]: string is not valid Unicode (a lone surrogate)",
      );
      expect(thrown(() => Obj.encode({})).message).toBe(
        "invalid names.Obj message: name: expected string, got a number",
      );
      expect(thrown(() => RepHolder64.encode({})).message).toMatch(
        /^invalid names\.RepHolder64 message: n: /,
      );
      // Objects that are not plain are checked field by field, so they inherit nothing.
      const bare = Object.create(null);
      expect(Rep.encode(bare)).toHaveLength(0);
      expect(Obj.encode(bare)).toHaveLength(0);
      expect(RepHolder64.encode(new (class {})() as never)).toHaveLength(0);
    } finally {
      for (const k of Object.keys(pollute)) delete (Object.prototype as Record<string, unknown>)[k];
    }
  });
});

describe("map keys", () => {
  it("refuses a string key with a lone surrogate, naming the key path", () => {
    for (const bad of ["\ud800", "a\udc00b", "x\ud83d"]) {
      const err = thrown(() => Keys.encode({ child: { counts: { ok: 1, [bad]: 2 } } }));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(
        `invalid names.Keys message: child.counts[${JSON.stringify(bad)}]: key is not valid Unicode (a lone surrogate)`,
      );
    }
    expect(Keys.decode(Keys.encode({ counts: { "😀": 1 } }))).toEqual({ counts: { "😀": 1 }, child: null });
  });
});
