import { MAX_TIMER_MS } from "@svckit/endpoint";
import { describe } from "./options.js";

/**
 * How long to wait between attempts: exponential growth with "full jitter" (AWS architecture blog,
 * "Exponential Backoff And Jitter"): the n-th wait is uniform in `[0, min(max, initial × multiplier^(n-1))]`,
 * and never longer than `MAX_TIMER_MS` (2^31 − 1 ms, 24.8 days: the longest `setTimeout` keeps). Full jitter spreads the retries of many clients that failed together, so they do not come back in
 * lock step and knock the recovering backend over again.
 */
export interface BackoffOptions {
  /** The cap of the first wait, in ms (≥ 0; above `MAX_TIMER_MS` it is `MAX_TIMER_MS`). Default 100. */
  initial?: number;
  /** The largest cap, in ms (≥ 0; above `MAX_TIMER_MS` it is `MAX_TIMER_MS`). Default 10 000. */
  max?: number;
  /** How much the cap grows per attempt (≥ 1). Default 2. */
  multiplier?: number;
}

/** Backoff options with every default filled in and checked. */
export interface ResolvedBackoff {
  readonly initial: number;
  readonly max: number;
  readonly multiplier: number;
}

/** The default backoff: 100 ms, doubling, capped at 10 s. */
export const defaultBackoff: ResolvedBackoff = Object.freeze({ initial: 100, max: 10_000, multiplier: 2 });

/** Fills in and checks backoff options; `who` names the caller in error messages. */
export function resolveBackoff(options: BackoffOptions | undefined, who: string): ResolvedBackoff {
  if (options === undefined) return defaultBackoff;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${who}: backoff must be an object, got ${describe(options)}`);
  }
  const initial = options.initial ?? defaultBackoff.initial;
  const max = options.max ?? defaultBackoff.max;
  const multiplier = options.multiplier ?? defaultBackoff.multiplier;
  if (!isFiniteAtLeast(initial, 0)) {
    throw new RangeError(`${who}: backoff.initial must be a finite number ≥ 0, got ${describe(initial)}`);
  }
  if (!isFiniteAtLeast(max, 0)) {
    throw new RangeError(`${who}: backoff.max must be a finite number ≥ 0, got ${describe(max)}`);
  }
  if (!isFiniteAtLeast(multiplier, 1)) {
    throw new RangeError(
      `${who}: backoff.multiplier must be a finite number ≥ 1, got ${describe(multiplier)}`,
    );
  }
  return { initial, max, multiplier };
}

/**
 * The upper bound of the wait after the `attempt`-th failed attempt. At most MAX_TIMER_MS: a longer
 * `setTimeout` would fire after 1 ms, so a huge `initial` or `max` would retry at once.
 */
export function backoffCap(attempt: number, backoff: ResolvedBackoff): number {
  if (backoff.initial === 0 || backoff.max === 0) return 0;
  // multiplier^(attempt-1) may overflow to Infinity; min() then gives max, never NaN (initial > 0).
  return Math.min(backoff.max, MAX_TIMER_MS, backoff.initial * backoff.multiplier ** (attempt - 1));
}

/** {@link backoffDelay} without the argument checks, for the retry loop. */
export function jitteredDelay(attempt: number, backoff: ResolvedBackoff, random: () => number): number {
  const cap = backoffCap(attempt, backoff);
  if (cap === 0) return 0;
  const r = random();
  // A random source outside [0, 1] (or NaN) must not produce a wait outside [0, cap].
  if (!(r > 0)) return 0;
  return r >= 1 ? cap : r * cap;
}

/**
 * The wait before the next attempt, after the `attempt`-th one failed (1 for the first retry):
 * uniform in `[0, min(max, initial × multiplier^(attempt-1), MAX_TIMER_MS)]` ("full jitter"). Pure apart from
 * `random`, which should return a number in `[0, 1)` like `Math.random` (values outside are clamped).
 *
 * @param attempt - the number of the attempt that failed, an integer ≥ 1.
 * @param options - the backoff; defaults 100 ms initial, 10 s max, multiplier 2.
 * @param random - the random source; `Math.random` by default.
 * @returns the wait in milliseconds (not rounded).
 * @throws RangeError when `attempt` is not an integer ≥ 1 or an option is out of range.
 *
 * @example
 * ```ts
 * backoffDelay(1); // somewhere in [0, 100]
 * backoffDelay(3, { initial: 50 }, () => 0.5); // 100: half of the cap 50 × 2²
 * backoffDelay(20, { max: 1_000 }, () => 0.999); // 999: the cap stops growing at max
 * ```
 */
export function backoffDelay(
  attempt: number,
  options?: BackoffOptions,
  random: () => number = Math.random,
): number {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`backoffDelay: attempt must be an integer ≥ 1, got ${describe(attempt)}`);
  }
  return jitteredDelay(attempt, resolveBackoff(options, "backoffDelay"), random);
}

function isFiniteAtLeast(value: unknown, min: number): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= min;
}
