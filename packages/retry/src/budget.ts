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
  /**
   * The window, in ms (> 0): a recorded request counts for at most `ttl` (at least 0.9 × ttl), a spent
   * retry for at least `ttl` (at most 1.1 × ttl), so no `ttl` window holds more retries than the bound.
   * Default 10 000.
   */
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
/** Slots kept: a spent retry counts one slot longer than a request (until its slot's end + ttl). */
const RING = SLOTS + 1;
/** The price of one retry in budget units; a request earns `round(retryRatio × UNIT)`. Integers stay exact. */
const UNIT = 1_000_000;

/**
 * Creates a retry budget like Finagle's `RetryBudget` (and close to gRPC's retry throttling): within
 * any `ttl` window, retries ≤ `retryRatio` × requests + `minRetriesPerSecond` × ttl in seconds.
 * Exactly: a retry is allowed only if, with it, the retries of the last `ttl` ms are at most
 * `retryRatio` × the requests of the last `ttl` ms plus that reserve. So under a sustained outage,
 * retries add at most `retryRatio` to the load instead of multiplying it by the number of attempts.
 * Requests and spent retries expire in steps of ttl/10 counted from the budget's creation (a request
 * within ttl of being recorded, a retry once ttl has passed since the end of its step), so the budget
 * refills by itself once the failures stop.
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
 * Sliding-window sums (slots of ttl / SLOTS) of what requests earned and what retries spent, plus a
 * fixed reserve from `minRetriesPerSecond`. A retry is allowed when the balance reaches one UNIT.
 * What a request earned leaves when its slot's start is ttl old, so it never counts longer than ttl;
 * what a retry spent leaves only when its slot's end is ttl old, so it counts at least ttl. Hence, at
 * each allowed retry, the retries of the last ttl (all still counted) are at most the reserve plus
 * the requests of the last ttl (a superset of those counted) × the ratio.
 */
class WindowedBudget implements TokenRetryBudget {
  /** Per slot: units earned by requests and units spent by retries. Slot `#current` is the newest. */
  readonly #earned = new Float64Array(RING);
  readonly #spent = new Float64Array(RING);
  readonly #ttl: number;
  readonly #reserve: number;
  readonly #deposit: number;
  /** The ring index of the newest slot. */
  #current = 0;
  /**
   * The newest slot's number: slots are numbered from `#origin` on, slot k covering
   * [origin + (k − base) × ttl / SLOTS, origin + (k − base + 1) × ttl / SLOTS). Whole numbers computed
   * afresh from the clock each time, not a start time moved on by ttl / SLOTS per step, which would
   * gather rounding errors (ttl / SLOTS is rarely exact) and let an entry count a step too long.
   */
  #slot = 0;
  /** When slot `#base` started: the budget's creation, or where the clock last went back. */
  #origin: number;
  #base = 0;
  #totalEarned = 0;
  #totalSpent = 0;

  constructor(ttl: number, reserve: number, deposit: number) {
    this.#ttl = ttl;
    this.#reserve = reserve;
    this.#deposit = deposit;
    this.#origin = Date.now();
  }

  recordRequest(): void {
    if (this.#deposit === 0) return;
    this.#advance();
    const earned = this.#earned;
    earned[this.#current] = (earned[this.#current] as number) + this.#deposit;
    this.#totalEarned += this.#deposit;
  }

  tryRetry(): boolean {
    this.#advance();
    if (this.#available() < UNIT) return false;
    const spent = this.#spent;
    spent[this.#current] = (spent[this.#current] as number) + UNIT;
    this.#totalSpent += UNIT;
    return true;
  }

  balance(): number {
    this.#advance();
    return Math.max(0, Math.floor(this.#available() / UNIT));
  }

  #available(): number {
    return this.#reserve + this.#totalEarned - this.#totalSpent;
  }

  /**
   * Moves the window on to now. With `now` in the current slot, a slot k steps back (0 = current)
   * keeps its requests while k < SLOTS (its start is less than ttl ago) and its retries while
   * k ≤ SLOTS (its end is less than ttl ago).
   */
  #advance(): void {
    const now = Date.now();
    // Multiplied before dividing, so that a time a whole number of slots from the origin gives that
    // number exactly (elapsed × SLOTS is exact for whole ms; × (SLOTS / ttl) would round first).
    const slot = this.#base + Math.floor(((now - this.#origin) * SLOTS) / this.#ttl);
    const steps = slot - this.#slot;
    if (steps <= 0) {
      if (steps < 0) {
        // A clock that went back: the current slot restarts there (entries keep counting).
        this.#origin = now;
        this.#base = this.#slot;
      }
      return;
    }
    this.#slot = slot;
    const earned = this.#earned;
    const spent = this.#spent;
    if (steps >= RING) {
      earned.fill(0);
      spent.fill(0);
      this.#totalEarned = 0;
      this.#totalSpent = 0;
      return;
    }
    for (let i = 0; i < steps; i++) {
      // The slot that becomes current is RING steps old: its retries leave (its requests already did).
      const current = (this.#current + 1) % RING;
      this.#current = current;
      this.#totalSpent -= spent[current] as number;
      spent[current] = 0;
      // The slot that becomes SLOTS steps old: its requests leave.
      const old = (current + 1) % RING;
      this.#totalEarned -= earned[old] as number;
      earned[old] = 0;
    }
  }
}
