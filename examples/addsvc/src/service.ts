import { Code, ServiceError } from "@svckit/endpoint";

/**
 * The business logic of go-kit's addsvc, as plain async functions: no transport, no middleware.
 * Integers are `bigint`s, like Go's 64-bit `int` (and the proto's `int64`), so every value gRPC can
 * carry is summed exactly.
 */
export interface AddService {
  /** Sums `a` and `b`; two zeroes, and a result outside the 32-bit signed range, are errors. */
  sum(a: bigint, b: bigint): Promise<bigint>;
  /** Concatenates `a` and `b`; a result of more than 10 UTF-8 bytes is an error. */
  concat(a: string, b: string): Promise<string>;
}

/** The message of go-kit's `ErrTwoZeroes`. Clients print it: it must not change. */
export const ERR_TWO_ZEROES = "can't sum two zeroes";
/** The message of go-kit's `ErrIntOverflow`. */
export const ERR_INT_OVERFLOW = "integer overflow";
/** The message of go-kit's `ErrMaxSizeExceeded`. */
export const ERR_MAX_SIZE_EXCEEDED = "result exceeds maximum size";

/** The largest result `sum` gives: 2³¹ - 1, as go-kit's `intMax`. */
export const INT_MAX = 2n ** 31n - 1n;
/** The smallest result `sum` gives: -2³¹, as go-kit's `intMin`. */
export const INT_MIN = -(2n ** 31n);
/** The most UTF-8 bytes `concat` returns, as go-kit's `maxLen`. */
export const MAX_LEN = 10;

/**
 * An error the service itself returns for its input (go-kit's `ErrTwoZeroes`, `ErrIntOverflow`,
 * `ErrMaxSizeExceeded`): always `INVALID_ARGUMENT`, which HTTP answers 400 as go-kit does. gRPC sends
 * it in the reply's `err` field rather than as a status, so the transports tell it apart from the
 * errors of the middleware (rate limit, breaker) with `instanceof AddServiceError`.
 *
 * @example
 * ```ts
 * try {
 *   await svc.sum(0n, 0n);
 * } catch (err) {
 *   if (err instanceof AddServiceError) console.log(err.message); // "can't sum two zeroes"
 * }
 * ```
 */
export class AddServiceError extends ServiceError {
  /** @param message - one of {@link ERR_TWO_ZEROES}, {@link ERR_INT_OVERFLOW}, {@link ERR_MAX_SIZE_EXCEEDED}. */
  constructor(message: string) {
    super(Code.INVALID_ARGUMENT, message);
  }
}

/** The UTF-8 byte length of `s` (a lone surrogate counts 3 bytes, as the U+FFFD it is encoded as). */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/**
 * Creates the add service, with go-kit's exact rules: `sum` refuses two zeroes, and a result outside
 * the 32-bit signed range (`b > 0 && a > INT_MAX - b`, or `b < 0 && a < INT_MIN - b`; with `b` zero any
 * `a` is returned as is, as in go-kit); `concat` refuses a result longer than 10 UTF-8 bytes.
 *
 * @example
 * ```ts
 * const svc = createAddService();
 * await svc.sum(1n, 2n); // 3n
 * await svc.concat("ab", "cd"); // "abcd"
 * ```
 */
export function createAddService(): AddService {
  return {
    async sum(a, b) {
      if (a === 0n && b === 0n) throw new AddServiceError(ERR_TWO_ZEROES);
      if ((b > 0n && a > INT_MAX - b) || (b < 0n && a < INT_MIN - b)) {
        throw new AddServiceError(ERR_INT_OVERFLOW);
      }
      return a + b;
    },
    async concat(a, b) {
      if (utf8Length(a) + utf8Length(b) > MAX_LEN) throw new AddServiceError(ERR_MAX_SIZE_EXCEEDED);
      return a + b;
    },
  };
}
