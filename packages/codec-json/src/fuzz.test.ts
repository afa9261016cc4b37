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
  /^(empty body: expected a JSON value|body is not valid UTF-8: bad byte sequence at byte offset \d+|malformed JSON: [^\n]{1,80} at line \d+, column \d+)$/;

/** The outcome of one decode: the value, or the ServiceError (anything else fails the property). */
function outcome(fn: () => unknown): { value: unknown } | { error: ServiceError } {
  try {
    return { value: fn() };
  } catch (error) {
    if (!(error instanceof ServiceError)) throw error;
    return { error };
  }
}

function expectOnlyInvalidArgument(fn: () => unknown): void {
  const result = outcome(fn);
  if ("error" in result) {
    expect(result.error.code).toBe(Code.INVALID_ARGUMENT);
    expect(result.error.message).toMatch(knownMessage);
  }
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
        else expectOnlyInvalidArgument(() => parseJson(text));
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
        expectOnlyInvalidArgument(() => parseJson(input));
        expectOnlyInvalidArgument(() => decode(input));
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

  it("anything at all encodes to JSON text or throws INTERNAL", () => {
    fc.assert(
      fc.property(
        fc.anything({ withBigInt: true, withMap: true, withSet: true, withTypedArray: true }),
        (value) => {
          const result = outcome(() => encodeJson(value));
          if ("error" in result) {
            expect(result.error.code).toBe(Code.INTERNAL);
            expect(result.error.message).toBe("response could not be encoded as JSON");
          } else {
            expect(typeof result.value).toBe("string");
            parseJson(result.value as string);
          }
        },
      ),
      { numRuns },
    );
  });
});
