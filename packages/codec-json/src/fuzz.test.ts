import { createJsonDecoder, encodeJson, parseJson } from "@svckit/codec-json";
import { Code, ServiceError } from "@svckit/endpoint";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";

// Property tests: whatever arrives on the wire, decoding ends in a value or an INVALID_ARGUMENT
// ServiceError with one of the documented messages, never another error type. Runs are bounded so
// the whole file stays well under a few seconds.

const numRuns = 2000;
const located = /^malformed JSON: [^\n]{1,80} at line \d+, column \d+$/;
const knownMessage =
  /^(empty body: expected a JSON value|body is not valid UTF-8: bad byte sequence at byte offset \d+|malformed JSON: [^\n]{1,80} at line \d+, column \d+|JSON nested too deeply \(more than \d+ levels\) at line \d+, column \d+)$/;

/** The outcome of one decode: the value, or the ServiceError (anything else fails the property). */
function outcome(fn: () => unknown): { value: unknown } | { error: ServiceError } {
  try {
    return { value: fn() };
  } catch (error) {
    if (!(error instanceof ServiceError)) throw error;
    return { error };
  }
}

function expectOnlyInvalidArgument(fn: () => unknown): ServiceError | undefined {
  const result = outcome(fn);
  if (!("error" in result)) return undefined;
  expect(result.error.code).toBe(Code.INVALID_ARGUMENT);
  expect(result.error.message).toMatch(knownMessage);
  return result.error;
}

/** The UTF-16 offset that a 1-based line and column name in `text` (\n, \r\n and \r end lines). */
function offsetOf(text: string, line: number, column: number): number {
  let lineStart = 0;
  for (let l = 1; l < line; l++) {
    const lf = text.indexOf("\n", lineStart);
    const cr = text.indexOf("\r", lineStart);
    const end = cr >= 0 && (lf < 0 || cr < lf) ? cr : lf;
    expect(end, `line ${line} exists`).toBeGreaterThanOrEqual(0);
    lineStart = end + (text.startsWith("\r\n", end) ? 2 : 1);
  }
  const offset = lineStart + column - 1;
  const lineEnd = text.slice(lineStart).search(/[\r\n]|$/) + lineStart;
  expect(offset, "column lies within its line").toBeLessThanOrEqual(lineEnd);
  return offset;
}

/**
 * Checks that a "malformed JSON" message points into `text` (the text JSON.parse saw: without a
 * leading BOM it retried without), and that the character it names is the one there.
 */
function expectLocatedIn(text: string, message: string): void {
  const found = /^malformed JSON: (.+) at line (\d+), column (\d+)$/.exec(message);
  if (found === null) return;
  const parsed = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const offset = offsetOf(parsed, Number(found[2]), Number(found[3]));
  expect(offset).toBeLessThanOrEqual(parsed.length);
  const reason = found[1] ?? "";
  if (reason === "unexpected end of input") expect(offset).toBe(parsed.length);
  const named = /^unexpected character (?:'(.)'|U\+([0-9A-F]{4,6}))$/.exec(reason);
  if (named !== null) {
    const code = named[1] !== undefined ? named[1].charCodeAt(0) : Number.parseInt(named[2] ?? "", 16);
    expect(parsed.codePointAt(offset)).toBe(code);
  }
}

const lossy = new TextDecoder();
const fatal = new TextDecoder("utf-8", { fatal: true });

/** Checks a "not valid UTF-8" offset: the bytes before it decode cleanly, and a U+FFFD replaces what is there. */
function expectUtf8OffsetIn(bytes: Uint8Array, message: string): void {
  const found = /at byte offset (\d+)$/.exec(message);
  if (found === null) return;
  const offset = Number(found[1]);
  expect(offset).toBeLessThan(bytes.length);
  const before = fatal.decode(bytes.subarray(0, offset));
  expect(lossy.decode(bytes).charAt(before.length)).toBe("\uFFFD");
  expect(() => fatal.decode(bytes.subarray(0, offset + 4))).toThrow(TypeError);
}

/** JSON texts with a few characters inserted or removed somewhere: mostly almost-valid input. */
const mutatedJson = fc
  .tuple(fc.jsonValue(), fc.boolean(), fc.nat(), fc.nat(3), fc.string({ unit: "binary-ascii", maxLength: 3 }))
  .map(([value, pretty, at, remove, insert]) => {
    const text = JSON.stringify(value, null, pretty ? 1 : undefined);
    const i = at % (text.length + 1);
    return text.slice(0, i) + insert + text.slice(i + remove);
  });

describe("fuzz: parseJson and createJsonDecoder", () => {
  it("arbitrary strings give JSON.parse's value or INVALID_ARGUMENT", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 64 }), (text) => {
        let expected: { value: unknown } | undefined;
        try {
          expected = { value: JSON.parse(text) };
        } catch {
          expected = undefined;
        }
        const result = outcome(() => parseJson(text));
        if (expected !== undefined) expect(result).toEqual(expected);
        else {
          const error = expectOnlyInvalidArgument(() => parseJson(text));
          if (error !== undefined) expectLocatedIn(text, error.message);
        }
      }),
      { numRuns },
    );
  });

  it("arbitrary bytes only ever throw INVALID_ARGUMENT", () => {
    const decode = createJsonDecoder();
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.string({ unit: "binary", maxLength: 32 }).map((s) => new TextEncoder().encode(s)),
    );
    fc.assert(
      fc.property(bytes, (input) => {
        const error = expectOnlyInvalidArgument(() => parseJson(input));
        expect(outcome(() => decode(input))).toEqual(outcome(() => parseJson(input)));
        if (error === undefined) return;
        expectUtf8OffsetIn(input, error.message);
        if (error.message.startsWith("malformed JSON")) expectLocatedIn(fatal.decode(input), error.message);
      }),
      { numRuns },
    );
  });

  it("almost-valid JSON is parsed or rejected with a line and column", () => {
    fc.assert(
      fc.property(mutatedJson, (text) => {
        const result = outcome(() => parseJson(text));
        if ("error" in result) {
          expect(result.error.code).toBe(Code.INVALID_ARGUMENT);
          if (result.error.message !== "empty body: expected a JSON value") {
            expect(result.error.message).toMatch(located);
            expectLocatedIn(text, result.error.message);
          }
        } else {
          expect(result.value).toEqual(JSON.parse(text.replace(/^\uFEFF/, "")));
        }
      }),
      { numRuns },
    );
  });

  it("a decoder with a schema only ever throws INVALID_ARGUMENT", () => {
    const decode = createJsonDecoder({ schema: z.object({ a: z.number(), b: z.array(z.string()) }) });
    const input = fc.oneof(
      mutatedJson,
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.record({ a: fc.jsonValue(), b: fc.jsonValue() }).map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(input, (text) => {
        const result = outcome(() => decode(text));
        if ("error" in result) {
          expect(result.error.code).toBe(Code.INVALID_ARGUMENT);
          expect(result.error.message).toMatch(/^(malformed JSON: |empty body: |invalid request: )/);
        }
      }),
      { numRuns },
    );
  });
});

/** JSON has no negative zero: `-0` is written as `0`. Maps -0 to 0 throughout a JSON value. */
function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      Object.defineProperty(out, key, {
        value: withoutNegativeZero(item),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

describe("fuzz: encodeJson", () => {
  it("every JSON value round-trips through encodeJson and parseJson, as text and as bytes", () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = encodeJson(value);
        const expected = withoutNegativeZero(value);
        expect(parseJson(text)).toEqual(expected);
        expect(parseJson(encoder.encode(text))).toEqual(expected);
      }),
      { numRuns },
    );
  });

  it('anything at all encodes to JSON.stringify\'s text ("null" for none) or throws INTERNAL', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything({ withBigInt: true, withMap: true, withSet: true, withTypedArray: true }),
          fc.constantFrom(undefined, () => 1, Symbol("s"), { toJSON: () => undefined }),
        ),
        (value) => {
          let expected: { value: string } | undefined;
          try {
            expected = { value: JSON.stringify(value) ?? "null" };
          } catch {
            expected = undefined;
          }
          const result = outcome(() => encodeJson(value));
          if (expected === undefined) {
            expect("error" in result).toBe(true);
            if ("error" in result) {
              expect(result.error.code).toBe(Code.INTERNAL);
              expect(result.error.message).toBe("response could not be encoded as JSON");
            }
          } else {
            expect(result).toEqual(expected);
            expect(() => parseJson(expected.value, { maxDepth: Number.POSITIVE_INFINITY })).not.toThrow();
          }
        },
      ),
      { numRuns },
    );
  });
});
