import { Code, ServiceError } from "@svckit/endpoint";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AddServiceError,
  createAddService,
  ERR_INT_OVERFLOW,
  ERR_MAX_SIZE_EXCEEDED,
  ERR_TWO_ZEROES,
  INT_MAX,
  INT_MIN,
  MAX_LEN,
  utf8Length,
} from "./service.js";

const svc = createAddService();

/** The error a call rejects with (fails the test when it resolves). */
async function failure(call: Promise<unknown>): Promise<ServiceError> {
  const outcome = await call.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!("error" in outcome)) throw new Error(`expected an error, got ${String(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(AddServiceError);
  return outcome.error as ServiceError;
}

describe("go-kit's error messages", () => {
  it("are the exact strings go-kit's clients print", () => {
    expect(ERR_TWO_ZEROES).toBe("can't sum two zeroes");
    expect(ERR_INT_OVERFLOW).toBe("integer overflow");
    expect(ERR_MAX_SIZE_EXCEEDED).toBe("result exceeds maximum size");
  });

  it("AddServiceError is a ServiceError INVALID_ARGUMENT (HTTP 400) with the message as is", () => {
    const err = new AddServiceError(ERR_TWO_ZEROES);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe("can't sum two zeroes");
    expect(err.toJSON()).toEqual({ code: "INVALID_ARGUMENT", message: "can't sum two zeroes" });
  });
});

describe("sum", () => {
  it("1 + 2 = 3", async () => {
    expect(await svc.sum(1n, 2n)).toBe(3n);
  });

  it("0 + 0 fails with can't sum two zeroes", async () => {
    const err = await failure(svc.sum(0n, 0n));
    expect(err.message).toBe("can't sum two zeroes");
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
  });

  it("one zero is fine: 0 + 5 and 5 + 0", async () => {
    expect(await svc.sum(0n, 5n)).toBe(5n);
    expect(await svc.sum(5n, 0n)).toBe(5n);
  });

  it("negative results are valid (go-kit's metrics crash on them; svckit just answers)", async () => {
    expect(await svc.sum(-5n, -7n)).toBe(-12n);
    expect(await svc.sum(3n, -10n)).toBe(-7n);
    expect(await svc.sum(-1n, 0n)).toBe(-1n);
  });

  it("a result of exactly 2^31 - 1 or -2^31 is fine", async () => {
    expect(INT_MAX).toBe(2147483647n);
    expect(INT_MIN).toBe(-2147483648n);
    expect(await svc.sum(2147483646n, 1n)).toBe(2147483647n);
    expect(await svc.sum(-2147483647n, -1n)).toBe(-2147483648n);
  });

  it("one past either end fails with integer overflow", async () => {
    expect((await failure(svc.sum(2147483647n, 1n))).message).toBe("integer overflow");
    expect((await failure(svc.sum(1n, 2147483647n))).message).toBe("integer overflow");
    expect((await failure(svc.sum(-2147483648n, -1n))).message).toBe("integer overflow");
    expect((await failure(svc.sum(-1n, -2147483648n))).message).toBe("integer overflow");
  });

  it("with b = 0, go-kit's check lets any a through, even beyond 32 bits", async () => {
    expect(await svc.sum(2n ** 40n, 0n)).toBe(2n ** 40n);
    expect(await svc.sum(-(2n ** 62n), 0n)).toBe(-(2n ** 62n));
  });

  it("the check is go-kit's formula, not a range check on the result: a < INT_MIN with b > 0 passes", async () => {
    // b > 0 and a <= INT_MAX - b: no overflow by go-kit's rule, although the result is below -2^31.
    expect(await svc.sum(-(2n ** 40n), 1n)).toBe(-(2n ** 40n) + 1n);
    expect(await svc.sum(2n ** 40n, -1n)).toBe(2n ** 40n - 1n);
  });

  it("is exact over the whole int64 range (gRPC carries int64)", async () => {
    const max = 2n ** 63n - 1n;
    const min = -(2n ** 63n);
    expect(await svc.sum(max, 0n)).toBe(max);
    expect(await svc.sum(min, 0n)).toBe(min);
    expect((await failure(svc.sum(max, 1n))).message).toBe("integer overflow");
    expect((await failure(svc.sum(min, -1n))).message).toBe("integer overflow");
    expect(await svc.sum(min, 1n)).toBe(min + 1n);
  });

  it("matches go-kit's rule for any int64 pair", async () => {
    const int64 = fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n);
    const near = fc.bigInt(-(2n ** 32n), 2n ** 32n);
    await fc.assert(
      fc.asyncProperty(fc.oneof(int64, near), fc.oneof(int64, near), async (a, b) => {
        const outcome = await svc.sum(a, b).then(
          (v) => ({ v }),
          (e: ServiceError) => ({ error: e.message }),
        );
        if (a === 0n && b === 0n) expect(outcome).toEqual({ error: "can't sum two zeroes" });
        else if ((b > 0n && a > INT_MAX - b) || (b < 0n && a < INT_MIN - b)) {
          expect(outcome).toEqual({ error: "integer overflow" });
        } else {
          expect(outcome).toEqual({ v: a + b });
          // go-kit's rule also keeps every result inside int64: no wrap-around can happen.
          expect(a + b >= -(2n ** 63n) && a + b < 2n ** 63n).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("concat", () => {
  it('"ab" + "cd" = "abcd"', async () => {
    expect(await svc.concat("ab", "cd")).toBe("abcd");
  });

  it("a result of exactly 10 bytes is fine, 11 fails with result exceeds maximum size", async () => {
    expect(MAX_LEN).toBe(10);
    expect(await svc.concat("abcde", "fghij")).toBe("abcdefghij");
    expect(await svc.concat("", "abcdefghij")).toBe("abcdefghij");
    expect((await failure(svc.concat("abcdef", "ghijk"))).message).toBe("result exceeds maximum size");
    expect((await failure(svc.concat("abcdefghijk", ""))).message).toBe("result exceeds maximum size");
  });

  it("counts UTF-8 bytes, as Go's len(a) + len(b), not characters", async () => {
    // "é" is 2 bytes, "€" 3, "😀" 4 (and 2 UTF-16 units).
    expect(await svc.concat("éé", "€€")).toBe("éé€€"); // 4 + 6 = 10
    expect((await failure(svc.concat("ééé", "€€"))).message).toBe("result exceeds maximum size"); // 12
    expect(await svc.concat("😀", "😀ab")).toBe("😀😀ab"); // 4 + 6 = 10
    expect((await failure(svc.concat("😀😀", "abc"))).message).toBe("result exceeds maximum size"); // 11
  });

  it("empty strings concatenate to the empty string", async () => {
    expect(await svc.concat("", "")).toBe("");
  });

  it("utf8Length counts a lone surrogate as the 3 bytes of U+FFFD", () => {
    expect(utf8Length("abc")).toBe(3);
    expect(utf8Length("é€😀")).toBe(9);
    expect(utf8Length("\ud800")).toBe(3);
  });

  it("matches the byte rule for any strings", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: "grapheme", maxLength: 8 }),
        fc.string({ maxLength: 8 }),
        async (a, b) => {
          const bytes = Buffer.byteLength(a) + Buffer.byteLength(b);
          const outcome = await svc.concat(a, b).then(
            (v) => ({ v }),
            (e: ServiceError) => ({ error: e.message }),
          );
          expect(outcome).toEqual(bytes > 10 ? { error: "result exceeds maximum size" } : { v: a + b });
        },
      ),
      { numRuns: 300 },
    );
  });
});
