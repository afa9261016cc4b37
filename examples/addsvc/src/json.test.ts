import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";
import {
  concatRequestFromJson,
  concatRequestToJson,
  concatResponseFromJson,
  concatResponseToJson,
  sumRequestFromJson,
  sumRequestToJson,
  sumResponseFromJson,
  sumResponseToJson,
} from "./json.js";

/** The ServiceError `fn` throws. */
function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceError);
    return err as ServiceError;
  }
  throw new Error("expected a throw");
}

describe("sumRequestFromJson (Go's encoding/json into SumRequest{A, B int})", () => {
  it("reads lower-case fields, as curl users send them", () => {
    expect(sumRequestFromJson({ a: 1, b: 2 })).toEqual({ a: 1n, b: 2n });
  });

  it("reads capitalised fields, as go-kit's Go client sends them", () => {
    expect(sumRequestFromJson({ A: 1, B: 2 })).toEqual({ a: 1n, b: 2n });
    expect(sumRequestFromJson({ A: 1, b: 2 })).toEqual({ a: 1n, b: 2n });
  });

  it("the later of two keys that match the same field wins, as in Go", () => {
    expect(sumRequestFromJson(JSON.parse('{"a":1,"A":5}'))).toEqual({ a: 5n, b: 0n });
    expect(sumRequestFromJson(JSON.parse('{"A":1,"a":5}'))).toEqual({ a: 5n, b: 0n });
  });

  it("missing fields and null are zero values", () => {
    expect(sumRequestFromJson({ a: 7 })).toEqual({ a: 7n, b: 0n });
    expect(sumRequestFromJson({})).toEqual({ a: 0n, b: 0n });
    expect(sumRequestFromJson({ a: null, b: 3 })).toEqual({ a: 0n, b: 3n });
  });

  it("unknown fields are ignored", () => {
    expect(sumRequestFromJson({ a: 1, b: 2, c: "x", nested: { a: 9 } })).toEqual({ a: 1n, b: 2n });
  });

  it("negative numbers and -0 are integers", () => {
    expect(sumRequestFromJson({ a: -5, b: -0 })).toEqual({ a: -5n, b: 0n });
  });

  it("the largest exact JSON integers are taken", () => {
    expect(sumRequestFromJson({ a: 9007199254740991, b: -9007199254740991 })).toEqual({
      a: 9007199254740991n,
      b: -9007199254740991n,
    });
  });

  it.each([
    [{ a: "1" }, "invalid request: a: expected an integer, got a string"],
    [{ a: 1, b: 1.5 }, "invalid request: b: expected an integer, got 1.5"],
    [{ b: true }, "invalid request: b: expected an integer, got a boolean"],
    [{ a: [1] }, "invalid request: a: expected an integer, got an array"],
    [{ A: { v: 1 } }, "invalid request: a: expected an integer, got an object"],
    [
      { a: 2 ** 53 },
      "invalid request: a: 9007199254740992 is out of range: JSON integers must be between -9007199254740991 and 9007199254740991",
    ],
    [
      { b: -1e300 },
      "invalid request: b: -1e+300 is out of range: JSON integers must be between -9007199254740991 and 9007199254740991",
    ],
  ])("%j is INVALID_ARGUMENT %j", (body, message) => {
    const err = thrown(() => sumRequestFromJson(body));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe(message);
  });

  it.each([
    [null, "null"],
    [[1, 2], "an array"],
    ["1", "a string"],
    [42, "42"],
    [undefined, "none"],
  ])("a value that is not an object (%j) is INVALID_ARGUMENT", (value, what) => {
    const err = thrown(() => sumRequestFromJson(value));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe(`invalid request: expected a JSON object, got ${what}`);
  });

  it('says "invalid params" for JSON-RPC', () => {
    expect(thrown(() => sumRequestFromJson({ a: "x" }, "params")).message).toBe(
      "invalid params: a: expected an integer, got a string",
    );
    expect(thrown(() => sumRequestFromJson([1, 2], "params")).message).toBe(
      "invalid params: expected a JSON object, got an array",
    );
  });
});

describe("concatRequestFromJson (into ConcatRequest{A, B string})", () => {
  it("reads both cases, missing and null are empty strings, unknown fields are ignored", () => {
    expect(concatRequestFromJson({ a: "ab", b: "cd" })).toEqual({ a: "ab", b: "cd" });
    expect(concatRequestFromJson({ A: "ab", B: "cd" })).toEqual({ a: "ab", b: "cd" });
    expect(concatRequestFromJson({ a: "ab" })).toEqual({ a: "ab", b: "" });
    expect(concatRequestFromJson({ a: null, b: "x", z: 1 })).toEqual({ a: "", b: "x" });
  });

  it("turns lone surrogates into U+FFFD, as Go's decoder does, and keeps pairs", () => {
    expect(concatRequestFromJson(JSON.parse('{"a":"\\ud800x","b":"\\udc00"}'))).toEqual({
      a: "\ufffdx",
      b: "\ufffd",
    });
    expect(concatRequestFromJson({ a: "😀", b: "" })).toEqual({ a: "😀", b: "" });
  });

  it.each([
    [{ a: 1 }, "invalid request: a: expected a string, got 1"],
    [{ b: false }, "invalid request: b: expected a string, got a boolean"],
    [{ B: ["x"] }, "invalid request: b: expected a string, got an array"],
  ])("%j is INVALID_ARGUMENT %j", (body, message) => {
    const err = thrown(() => concatRequestFromJson(body));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe(message);
  });
});

describe("responses and client requests", () => {
  it("sumResponseToJson gives a number, concatResponseToJson the string", () => {
    expect(JSON.stringify(sumResponseToJson({ v: 3n }))).toBe('{"v":3}');
    expect(JSON.stringify(sumResponseToJson({ v: -12n }))).toBe('{"v":-12}');
    expect(JSON.stringify(concatResponseToJson({ v: "abcd" }))).toBe('{"v":"abcd"}');
  });

  it("sumRequestToJson sends numbers, and refuses integers JSON cannot carry exactly", () => {
    expect(sumRequestToJson({ a: 1n, b: -2n })).toEqual({ a: 1, b: -2 });
    const err = thrown(() => sumRequestToJson({ a: 2n ** 60n, b: 1n }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe(
      "a: 1152921504606846976 cannot be sent exactly as a JSON number (at most 2^53 - 1 in magnitude); use gRPC",
    );
    expect(concatRequestToJson({ a: "x", b: "y" })).toEqual({ a: "x", b: "y" });
  });

  it("sumResponseFromJson and concatResponseFromJson read {v}, and call anything else INTERNAL", () => {
    expect(sumResponseFromJson({ v: 3 })).toEqual({ v: 3n });
    expect(concatResponseFromJson({ v: "abcd" })).toEqual({ v: "abcd" });
    for (const bad of [{ v: "3" }, { v: 1.5 }, {}, null, 3]) {
      const err = thrown(() => sumResponseFromJson(bad));
      expect(err.code).toBe(Code.INTERNAL);
      expect(err.message).toBe('invalid response from server: expected {"v": <integer>}');
    }
    const err = thrown(() => concatResponseFromJson({ v: 1 }));
    expect(err.code).toBe(Code.INTERNAL);
    expect(err.message).toBe('invalid response from server: expected {"v": <string>}');
  });
});
