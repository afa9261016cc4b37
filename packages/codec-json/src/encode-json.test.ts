import { createJsonEncoder, encodeJson, parseJson } from "@svckit/codec-json";
import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, expectTypeOf, it } from "vitest";

function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

function expectEncodeFailure(fn: () => unknown): ServiceError {
  const err = thrown(fn);
  expect(err.code).toBe(Code.INTERNAL);
  expect(err.message).toBe("response could not be encoded as JSON");
  expect(err.details).toEqual([]);
  return err;
}

describe("encodeJson", () => {
  it("writes what JSON.stringify writes", () => {
    const value = { v: 3, s: "é\u2028", list: [1, null, true], nested: { d: new Date(0) }, skip: undefined };
    expect(encodeJson(value)).toBe(JSON.stringify(value));
    expect(encodeJson("x")).toBe('"x"');
    expect(encodeJson(null)).toBe("null");
    expect(encodeJson([undefined, () => 1])).toBe("[null,null]");
    expect(encodeJson(Number.NaN)).toBe("null");
  });

  it('encodes a top-level undefined, function or symbol as "null"', () => {
    expect(encodeJson(undefined)).toBe("null");
    expect(encodeJson(() => 1)).toBe("null");
    expect(encodeJson(Symbol("s"))).toBe("null");
    expect(encodeJson({ toJSON: () => undefined })).toBe("null");
  });

  it("throws INTERNAL with the cause for a BigInt", () => {
    const err = expectEncodeFailure(() => encodeJson({ n: 1n }));
    expect(err.cause).toBeInstanceOf(TypeError);
  });

  it("throws INTERNAL for a cycle", () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(expectEncodeFailure(() => encodeJson(a)).cause).toBeInstanceOf(TypeError);
  });

  it("throws INTERNAL for a toJSON or getter that throws, even one throwing a ServiceError", () => {
    const boom = new Error("boom");
    const fromToJson = expectEncodeFailure(() =>
      encodeJson({
        toJSON() {
          throw boom;
        },
      }),
    );
    expect(fromToJson.cause).toBe(boom);
    const err = expectEncodeFailure(() =>
      encodeJson({
        get x(): never {
          throw boom;
        },
      }),
    );
    expect(err.cause).toBe(boom);
    const inner = new ServiceError(Code.NOT_FOUND, "nope");
    expect(
      expectEncodeFailure(() =>
        encodeJson({
          toJSON() {
            throw inner;
          },
        }),
      ).cause,
    ).toBe(inner);
  });

  it("throws INTERNAL, not a crash, for nesting too deep for the stack", () => {
    const root: unknown[] = [];
    let cur = root;
    for (let i = 0; i < 200_000; i++) {
      const next: unknown[] = [];
      cur.push(next);
      cur = next;
    }
    expect(expectEncodeFailure(() => encodeJson(root)).cause).toBeInstanceOf(RangeError);
  });

  it("round-trips through parseJson", () => {
    const value = { a: [1, 2.5, -3e-7], b: { c: '\u0000\ud83d\ude00"\\' }, d: null, e: false };
    expect(parseJson(encodeJson(value))).toEqual(value);
  });
});

describe("createJsonEncoder", () => {
  it("without options is encodeJson itself", () => {
    const encode = createJsonEncoder<{ v: number }>();
    expect(encode).toBe(encodeJson);
    expect(encode({ v: 3 })).toBe('{"v":3}');
    expectTypeOf(encode).toEqualTypeOf<(value: { v: number }) => string>();
  });

  it("indents with space", () => {
    const encode = createJsonEncoder({ space: 2 });
    expect(encode({ a: [1] })).toBe('{\n  "a": [\n    1\n  ]\n}');
    expect(encode(undefined)).toBe("null");
  });

  it("applies a replacer function, with the same error and undefined rules", () => {
    const encode = createJsonEncoder({
      replacer: (key, value) =>
        key === "password" ? undefined : typeof value === "bigint" ? value.toString() : value,
    });
    expect(encode({ user: "ann", password: "x", n: 12n })).toBe('{"user":"ann","n":"12"}');
    expect(encode.name).toBe("encodeJsonWithReplacer");
    const dropAll = createJsonEncoder({ replacer: () => undefined });
    expect(dropAll({ a: 1 })).toBe("null");
    const failing = createJsonEncoder({
      replacer: () => {
        throw new Error("replacer bug");
      },
    });
    expectEncodeFailure(() => failing({ a: 1 }));
  });

  it("keeps only the listed properties, copying the list at setup", () => {
    const keys = ["id", "items"];
    const encode = createJsonEncoder({ replacer: keys, space: 0 });
    keys.push("secret");
    expect(encode({ id: 1, secret: "s", items: [{ id: 2, other: 3 }] })).toBe('{"id":1,"items":[{"id":2}]}');
    expectEncodeFailure(() => encode({ id: 1n }));
    expect(encode(undefined)).toBe("null");
  });
});
