import { describe } from "./options.js";

/**
 * What limits retries (and hedged attempts) so that they cannot multiply the load on a backend
 * that is already failing. A structural, two-method interface: {@link createRetryBudget} is the
 * in-house implementation, {@link unlimitedRetryBudget} the no-op, and anything else with these two
 * methods (a load balancer's own budget, a distributed one) fits.
 *
 * The protocol: call `recordRequest()` once per original request (never for a retry), and
 * `tryRetry()` right before each retry or hedge; it returns `false` when the retry must not happen.
 * A `true` answer spends one retry.
 *
 * @example
 * ```ts
 * const budget: RetryBudget = createRetryBudget({ retryRatio: 0.1 });
 * budget.recordRequest();
 * if (budget.tryRetry()) {
 *   // retry
 * }
 * ```
 */
export interface RetryBudget {
  /** Records one original request; each one earns `retryRatio` of a retry. */
  recordRequest(): void;
  /** Spends one retry if the budget allows it and says whether it did. */
  tryRetry(): boolean;
}

/** Options of {@link createRetryBudget}; the defaults are Finagle's. */
export interface RetryBudgetOptions {
  /** How long a recorded request or a spent retry counts, in ms (> 0). Default 10 000. */
  ttl?: number;
  /**
   * Retries allowed per second even without requests (≥ 0), so a service with little traffic can
   * still retry. Default 10.
   */
  minRetriesPerSecond?: number;
  /**
   * Retries allowed per recorded request within `ttl` (≥ 0): 0.2 lets retries add at most 20 % to the
   * load (Finagle's `percentCanRetry`, gRPC's `tokenRatio`). Default 0.2.
   */
  retryRatio?: number;
}

/** A {@link RetryBudget} made by {@link createRetryBudget}, which can also tell its balance. */
export interface TokenRetryBudget extends RetryBudget {
  /** How many retries the budget would allow right now (whole retries, ≥ 0). */
  balance(): number;
}

/** A budget that allows every retry: the default when no budget is given. */
export const unlimitedRetryBudget: RetryBudget = Object.freeze({
  recordRequest(): void {},
  tryRetry(): boolean {
    return true;
  },
});

/** The window is split in this many slots, so entries expire in steps of ttl / SLOTS. */
const SLOTS = 10;
/** The price of one retry in budget units; a request earns `round(retryRatio × UNIT)`. Integers stay exact. */
const UNIT = 1_000_000;

/**
 * Creates a retry budget like Finagle's `RetryBudget` (and close to gRPC's retry throttling): within
 * any `ttl` window, retries ≤ `retryRatio` × requests + `minRetriesPerSecond` × ttl in seconds. So under
 * a sustained outage, retries add at most `retryRatio` to the load instead of multiplying it by the
 * number of attempts. Both requests and spent retries count for `ttl` and then expire (in steps of
 * ttl/10), so the budget refills by itself once the failures stop.
 *
 * Share one budget between all the endpoints that call the same backend (retry, hedge and a
 * load balancer can all draw from it). Uses `Date.now()`; costs O(1) per call, no timers.
 *
 * @throws RangeError when an option is out of range.
 *
 * @example
 * ```ts
 * const budget = createRetryBudget({ retryRatio: 0.1, minRetriesPerSecond: 5 });
 * const client = retry({ maxAttempts: 3, budget })(backend);
 * const other = hedge({ delay: 50, budget })(backend2);
 * ```
 */
export function createRetryBudget(options: RetryBudgetOptions = {}): TokenRetryBudget {
  const ttl = options.ttl ?? 10_000;
  const minRetriesPerSecond = options.minRetriesPerSecond ?? 10;
  const retryRatio = options.retryRatio ?? 0.2;
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) {
    throw new RangeError(`createRetryBudget: ttl must be a finite number of ms > 0, got ${describe(ttl)}`);
  }
  if (
    typeof minRetriesPerSecond !== "number" ||
    !Number.isFinite(minRetriesPerSecond) ||
    minRetriesPerSecond < 0
  ) {
    throw new RangeError(
      `createRetryBudget: minRetriesPerSecond must be a finite number ≥ 0, got ${describe(minRetriesPerSecond)}`,
    );
  }
  if (typeof retryRatio !== "number" || !Number.isFinite(retryRatio) || retryRatio < 0) {
    throw new RangeError(
      `createRetryBudget: retryRatio must be a finite number ≥ 0, got ${describe(retryRatio)}`,
    );
  }
  return new WindowedBudget(
    ttl,
    Math.floor(minRetriesPerSecond * (ttl / 1000) * UNIT),
    Math.round(retryRatio * UNIT),
  );
}

/**
 * A sliding-window sum (slots of ttl / SLOTS) of what requests earned minus what retries spent,
 * plus a fixed reserve from `minRetriesPerSecond`. A retry is allowed when the sum reaches one UNIT.
 */
class WindowedBudget implements TokenRetryBudget {
  readonly #slots = new Float64Array(SLOTS);
  readonly #slotMs: number;
  readonly #reserve: number;
  readonly #deposit: number;
  #current = 0;
  #currentStart: number;
  #total = 0;

  constructor(ttl: number, reserve: number, deposit: number) {
    this.#slotMs = ttl / SLOTS;
    this.#reserve = reserve;
    this.#deposit = deposit;
    this.#currentStart = Date.now();
  }

  recordRequest(): void {
    if (this.#deposit === 0) return;
    this.#advance();
    this.#add(this.#deposit);
  }

  tryRetry(): boolean {
    this.#advance();
    if (this.#reserve + this.#total < UNIT) return false;
    this.#add(-UNIT);
    return true;
  }

  balance(): number {
    this.#advance();
    return Math.max(0, Math.floor((this.#reserve + this.#total) / UNIT));
  }

  #add(units: number): void {
    const slots = this.#slots;
    slots[this.#current] = (slots[this.#current] as number) + units;
    this.#total += units;
  }

  /** Expires the slots that fell out of the window. */
  #advance(): void {
    const now = Date.now();
    const elapsed = now - this.#currentStart;
    if (elapsed < this.#slotMs) {
      // A clock that went back: restart the current slot there (entries keep counting).
      if (elapsed < 0) this.#currentStart = now;
      return;
    }
    const steps = Math.floor(elapsed / this.#slotMs);
    const slots = this.#slots;
    if (steps >= SLOTS) {
      slots.fill(0);
      this.#total = 0;
      this.#currentStart = now;
      return;
    }
    for (let i = 0; i < steps; i++) {
      this.#current = (this.#current + 1) % SLOTS;
      this.#total -= slots[this.#current] as number;
      slots[this.#current] = 0;
    }
    this.#currentStart += steps * this.#slotMs;
  }
}
