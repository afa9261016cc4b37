import { parseJson } from "@svckit/codec-json";
import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Runs `fn` and returns the ServiceError it throws; fails on anything else. */
function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

function expectInvalid(input: string | Uint8Array, message: string): ServiceError {
  const err = thrown(() => parseJson(input));
  expect(err.code).toBe(Code.INVALID_ARGUMENT);
  expect(err.message).toBe(message);
  return err;
}

describe("parseJson: valid input", () => {
  it("parses text like JSON.parse", () => {
    expect(parseJson('{"a":1,"b":[true,null,"x"]}')).toEqual({ a: 1, b: [true, null, "x"] });
    expect(parseJson(" 42 ")).toBe(42);
    expect(parseJson('"\\u00e9\\ud83d\\ude00"')).toBe("é😀");
  });

  it("parses UTF-8 bytes, including a Node.js Buffer and a view into a larger buffer", () => {
    expect(parseJson(utf8('{"s":"日本 ✓"}'))).toEqual({ s: "日本 ✓" });
    expect(parseJson(Buffer.from("[1,2]"))).toEqual([1, 2]);
    const whole = utf8('xx{"a":1}yy');
    expect(parseJson(whole.subarray(2, 9))).toEqual({ a: 1 });
  });

  it("ignores one leading byte order mark, in bytes and in text", () => {
    expect(parseJson(Uint8Array.of(0xef, 0xbb, 0xbf, ...utf8('{"a":1}')))).toEqual({ a: 1 });
    expect(parseJson('\uFEFF{"a":1}')).toEqual({ a: 1 });
    expectInvalid("\uFEFF\uFEFF1", "malformed JSON: unexpected character U+FEFF at line 1, column 1");
    expectInvalid(
      Uint8Array.of(0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, 0x31),
      "malformed JSON: unexpected character U+FEFF at line 1, column 1",
    );
  });

  it("keeps JSON.parse's number semantics for huge numbers (no error, validate if it matters)", () => {
    expect(parseJson("1e400")).toBe(Number.POSITIVE_INFINITY);
    expect(parseJson("-1e400")).toBe(Number.NEGATIVE_INFINITY);
    expect(parseJson("9".repeat(400))).toBe(Number.POSITIVE_INFINITY);
    expect(parseJson("123456789012345678901234567890")).toBe(1.2345678901234568e29);
    expect(parseJson("1e-400")).toBe(0);
  });

  it("parses input nested 10,000 levels deep without crashing", () => {
    const depth = 10_000;
    let value = parseJson(`${"[".repeat(depth)}${"]".repeat(depth)}`);
    for (let i = 1; i < depth; i++) {
      expect(Array.isArray(value)).toBe(true);
      value = (value as unknown[])[0];
    }
    expect(value).toEqual([]);
    const objects = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
    expect(typeof parseJson(objects)).toBe("object");
  });

  it("does not pollute Object.prototype through __proto__ keys", () => {
    const value = parseJson('{"__proto__":{"x":1},"a":{"__proto__":{"y":2}}}') as Record<string, unknown>;
    expect(Object.hasOwn(value, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(({} as Record<string, unknown>).y).toBeUndefined();
    expect("x" in Object.prototype).toBe(false);
    expect(parseJson(utf8('{"constructor":{"prototype":{"z":1}}}'))).toEqual({
      constructor: { prototype: { z: 1 } },
    });
    expect(({} as Record<string, unknown>).z).toBeUndefined();
  });
});

describe("parseJson: empty input", () => {
  it.each([
    ["an empty string", ""],
    ["whitespace only", " \t\r\n  "],
    ["a byte order mark only", "\uFEFF"],
  ])("rejects %s", (_, input) => {
    expectInvalid(input, "empty body: expected a JSON value");
  });

  it.each([
    ["no bytes", new Uint8Array(0)],
    ["whitespace bytes", utf8("\n\n  ")],
    ["a byte order mark only", Uint8Array.of(0xef, 0xbb, 0xbf)],
  ])("rejects %s", (_, input) => {
    expectInvalid(input, "empty body: expected a JSON value");
  });
});

describe("parseJson: malformed JSON", () => {
  it.each([
    ["truncated object", '{"a":', "malformed JSON: unexpected end of input at line 1, column 6"],
    ["truncated literal", "tru", "malformed JSON: unexpected end of input at line 1, column 4"],
    [
      "trailing garbage",
      '{"a":1} x',
      "malformed JSON: unexpected non-whitespace character after JSON at line 1, column 9",
    ],
    [
      "a second value",
      "[1,2]]",
      "malformed JSON: unexpected non-whitespace character after JSON at line 1, column 6",
    ],
    ["a trailing comma in an array", "[1,]", "malformed JSON: unexpected character ']' at line 1, column 4"],
    [
      "a trailing comma in an object",
      '{"a":1,}',
      "malformed JSON: expected double-quoted property name at line 1, column 8",
    ],
    ["an unquoted key", "{a:1}", "malformed JSON: expected property name or '}' at line 1, column 2"],
    ["a bare word", "hello", "malformed JSON: unexpected character 'h' at line 1, column 1"],
    ["single quotes", "{'a':1}", "malformed JSON: expected property name or '}' at line 1, column 2"],
    ["an unterminated string", '"abc', "malformed JSON: unterminated string at line 1, column 5"],
    [
      "a raw control character in a string",
      '"a\u0001"',
      "malformed JSON: bad control character in string literal at line 1, column 3",
    ],
    ["a bad escape", '"\\x"', "malformed JSON: bad escaped character at line 1, column 3"],
    ["a leading zero", "01", "malformed JSON: unexpected number at line 1, column 2"],
    ["a lone minus", "-", "malformed JSON: no number after minus sign at line 1, column 2"],
    ["NaN", "NaN", "malformed JSON: unexpected character 'N' at line 1, column 1"],
    ["a NUL character", "\u0000", "malformed JSON: unexpected character U+0000 at line 1, column 1"],
    ["an emoji", "[😀]", "malformed JSON: unexpected character U+1F600 at line 1, column 2"],
  ])("rejects %s", (_, input, message) => {
    const err = expectInvalid(input, message);
    expect(err.cause).toBeInstanceOf(SyntaxError);
    expectInvalid(utf8(input), message);
  });

  it("counts lines and columns across \\n, \\r\\n and \\r line breaks", () => {
    expectInvalid(
      '{\n  "a": 1,\n  b: 2\n}',
      "malformed JSON: expected double-quoted property name at line 3, column 3",
    );
    expectInvalid(
      '{\r\n"a":1,\r\n  b:2}',
      "malformed JSON: expected double-quoted property name at line 3, column 3",
    );
    expectInvalid("[1,\r2,\r\r x]", "malformed JSON: unexpected character 'x' at line 4, column 2");
  });

  it("locates errors after a byte order mark relative to the text after it", () => {
    expectInvalid("\uFEFF[1,]", "malformed JSON: unexpected character ']' at line 1, column 4");
  });

  it("rejects unbalanced input nested 10,000 levels deep", () => {
    expectInvalid("[".repeat(10_000), "malformed JSON: unexpected end of input at line 1, column 10001");
    expectInvalid(
      `${"[".repeat(10_000)}}`,
      "malformed JSON: unexpected character '}' at line 1, column 10001",
    );
  });

  it("never echoes more than one character of the input", () => {
    const secret = "s3cr3t-token-".repeat(10_000);
    for (const input of [secret, `{"a":"${secret}"} ${secret}`, `[${secret}]`, `"${secret}`]) {
      const err = thrown(() => parseJson(input));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message.length).toBeLessThan(120);
      expect(err.message).not.toContain("s3c");
    }
  });
});

describe("parseJson: invalid UTF-8", () => {
  it.each([
    ["a stray 0xFF byte", [0x7b, 0xff, 0x7d], 1],
    ["a lone continuation byte", [0x5b, 0x31, 0x2c, 0x80, 0x5d], 3],
    ["a sequence cut short at the end", [0x22, 0xe2, 0x82], 1],
    ["an overlong encoding of '/'", [0x22, 0xc0, 0xaf, 0x22], 1],
    ["an encoded surrogate", [0x22, 0xed, 0xa0, 0x80, 0x22], 1],
    ["a code point above U+10FFFF", [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22], 1],
  ])("rejects %s", (_, bytes, offset) => {
    const err = expectInvalid(
      Uint8Array.from(bytes),
      `body is not valid UTF-8: bad byte sequence at byte offset ${offset}`,
    );
    expect(err.cause).toBeInstanceOf(TypeError);
  });
});
