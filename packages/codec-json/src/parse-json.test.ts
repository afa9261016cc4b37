import { checkJsonDepth, parseJson } from "@svckit/codec-json";
import { Code, ServiceError } from "@svckit/endpoint";
import { afterEach, describe, expect, it, vi } from "vitest";

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

  it("parses input nested 10,000 levels deep without crashing when maxDepth allows it", () => {
    const depth = 10_000;
    const noLimit = { maxDepth: Number.POSITIVE_INFINITY };
    let value = parseJson(`${"[".repeat(depth)}${"]".repeat(depth)}`, noLimit);
    for (let i = 1; i < depth; i++) {
      expect(Array.isArray(value)).toBe(true);
      value = (value as unknown[])[0];
    }
    expect(value).toEqual([]);
    const objects = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
    expect(typeof parseJson(objects, noLimit)).toBe("object");
    expect(typeof parseJson(objects, { maxDepth: depth })).toBe("object");
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

describe("parseJson: nesting depth (maxDepth, 1000 by default)", () => {
  const nested = (depth: number, open = "[", close = "]"): string =>
    `${open.repeat(depth)}${close.repeat(depth)}`;

  it("accepts 1000 levels and refuses 1001 by default, at the bracket that goes too deep", () => {
    expect(() => parseJson(nested(1000))).not.toThrow();
    expect(() => parseJson(utf8(nested(1000)))).not.toThrow();
    const message = "JSON nested too deeply (more than 1000 levels) at line 1, column 1001";
    expectInvalid(nested(1001), message);
    expectInvalid(utf8(nested(1001)), message);
    expectInvalid(`\uFEFF${nested(1001)}`, message);
    expectInvalid(`${'{"a":'.repeat(1001)}1${"}".repeat(1001)}`, message.replace("1001", "5001"));
  });

  it("refuses the 800 KB body nested 400,000 levels deep that a service could not encode again", () => {
    const depth = 400_000;
    const body = `{"meta": ${nested(depth)}}`;
    expect(body.length).toBeLessThan(1 << 20);
    const err = expectInvalid(
      utf8(body),
      "JSON nested too deeply (more than 1000 levels) at line 1, column 1009",
    );
    expect(err.cause).toBeUndefined();
  });

  it("counts lines and columns to the bracket, and ignores brackets inside strings", () => {
    const text = `{\n "s": "${"[{".repeat(3000)}\\"[",\n "a": ${nested(3, "[\n", "]")}\n}`;
    expect(parseJson(text, { maxDepth: 4 })).toHaveProperty("a");
    expect(() => parseJson(`{\n "s": "${"[".repeat(3000)}",\n "a": [\r\n[[[]]]]}`, { maxDepth: 4 })).toThrow(
      "JSON nested too deeply (more than 4 levels) at line 4, column 3",
    );
  });

  it("accepts a wide value with many brackets that is not deep (the check looks further than the count)", () => {
    const wide = JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ i, tags: [[i]] })));
    expect(parseJson(wide)).toHaveLength(3000);
    // The deep part comes after thousands of shallow siblings, inside the outer array (level 1).
    const late = `[${`{"a":[1]},`.repeat(3000)}${nested(1001)}]`;
    const err = expectInvalid(
      late,
      `JSON nested too deeply (more than 1000 levels) at line 1, column ${1 + 30_000 + 1000}`,
    );
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
  });

  it("takes maxDepth from the options: a positive integer or Infinity", () => {
    expect(parseJson("[[1]]", { maxDepth: 2 })).toEqual([[1]]);
    expect(() => parseJson("[[[1]]]", { maxDepth: 2 })).toThrow(
      "JSON nested too deeply (more than 2 levels) at line 1, column 3",
    );
    expect(parseJson("1", { maxDepth: 1 })).toBe(1);
    expect(parseJson(nested(20_000), { maxDepth: 50_000 })).toHaveLength(1);
    expect(() => parseJson(nested(60_000), { maxDepth: 50_000 })).toThrow(
      "JSON nested too deeply (more than 50000 levels) at line 1, column 50001",
    );
    for (const maxDepth of [0, -1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY]) {
      expect(() => parseJson("1", { maxDepth })).toThrow(
        new TypeError(`maxDepth must be a positive integer or Infinity, got ${maxDepth}`),
      );
    }
  });
});

describe("parseJson: input that is not a body", () => {
  it.each([
    [
      "an already-parsed object",
      { a: 1 },
      "an object (a body that a middleware already parsed? pass the raw body, or validate() the value instead)",
    ],
    [
      "an array",
      [1],
      "an array (a body that a middleware already parsed? pass the raw body, or validate() the value instead)",
    ],
    ["null", null, "null"],
    ["undefined", undefined, "undefined"],
    ["a number", 42, "a number"],
  ])("throws a TypeError for %s, not INVALID_ARGUMENT", (_, input, got) => {
    expect(() => parseJson(input as unknown as string)).toThrow(
      new TypeError(`parseJson expects the body as a string or a Uint8Array, got ${got}`),
    );
  });

  it("takes an ArrayBuffer, a DataView or another typed array as bytes, as TextDecoder does (regression: a TypeError)", () => {
    const bytes = new TextEncoder().encode('xx{"a":[1]}');
    const body = bytes.slice(2);
    expect(parseJson(body.buffer as unknown as Uint8Array)).toEqual({ a: [1] });
    expect(parseJson(new DataView(bytes.buffer, 2) as unknown as Uint8Array)).toEqual({ a: [1] });
    expect(parseJson(new Int8Array(bytes.buffer, 2) as unknown as Uint8Array)).toEqual({ a: [1] });
    expect(() => parseJson(new Int8Array(bytes.buffer, 0, 3) as unknown as Uint8Array)).toThrow(ServiceError);
  });

  it("accepts a Uint8Array from another realm", async () => {
    const { runInNewContext } = await import("node:vm");
    const foreign = runInNewContext("new Uint8Array([91, 49, 93])") as Uint8Array;
    expect(foreign instanceof Uint8Array).toBe(false);
    expect(parseJson(foreign)).toEqual([1]);
  });
});

describe("parseJson: bytes too many to decode into one string", () => {
  // Decoding more than ~512 MiB of UTF-8 fails in V8 because the string would be too long. Rather
  // than allocate that much, the decoder is made to fail the way Node.js fails then.
  function failDecode(error: Error): void {
    vi.spyOn(TextDecoder.prototype, "decode").mockImplementationOnce(() => {
      throw error;
    });
  }
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('is RESOURCE_EXHAUSTED "body too large to decode", not "not valid UTF-8"', () => {
    const tooLong = Object.assign(new Error("Cannot create a string longer than 0x1fffffe8 characters"), {
      code: "ERR_STRING_TOO_LONG",
    });
    failDecode(tooLong);
    const err = thrown(() => parseJson(utf8("[1]")));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toBe(
      "body too large to decode: 3 bytes of UTF-8 make a longer string than the JavaScript engine allows",
    );
    expect(err.cause).toBe(tooLong);
    failDecode(new RangeError("Invalid string length"));
    expect(thrown(() => parseJson(utf8("[1]"))).code).toBe(Code.RESOURCE_EXHAUSTED);
  });

  it("passes on a decoder failure it cannot explain", () => {
    const odd = new Error("odd");
    failDecode(odd);
    expect(() => parseJson(utf8("[1]"))).toThrow(odd);
  });
});

describe("checkJsonDepth: a value some framework parsed", () => {
  it("refuses a value nested deeper than maxDepth (default 1000) with INVALID_ARGUMENT, and passes the rest", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 1001; i++) deep = [deep];
    expect(() => checkJsonDepth(deep)).toThrow(
      new ServiceError(Code.INVALID_ARGUMENT, "JSON nested too deeply (more than 1000 levels)"),
    );
    expect(() => checkJsonDepth({ a: [[1]] }, 3)).not.toThrow();
    expect(() => checkJsonDepth({ a: [[1]] }, 2)).toThrow("more than 2 levels");
    expect(() => checkJsonDepth(deep, Number.POSITIVE_INFINITY)).not.toThrow();
    expect(() => checkJsonDepth("text", 1)).not.toThrow();
    expect(() => checkJsonDepth({}, 0)).toThrow(TypeError);
  });
});
