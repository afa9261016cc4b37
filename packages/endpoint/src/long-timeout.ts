/**
 * The longest delay Node's `setTimeout` and `setInterval` keep: 2^31 - 1 ms (24.8 days). A longer one fires
 * after 1 ms (with a TimeoutOverflowWarning), so durations past it must be refused or waited for in steps
 * ({@link setLongTimeout} does the latter).
 *
 * @example
 * ```ts
 * if (ms > MAX_TIMER_MS) throw new RangeError(`interval must be at most ${MAX_TIMER_MS} ms, got ${ms}`);
 * ```
 */
export const MAX_TIMER_MS = 0x7fffffff;

/**
 * A timer made by {@link setLongTimeout}. Clear it with {@link clearLongTimeout}, not `clearTimeout`
 * (which would miss the later steps of a wait past {@link MAX_TIMER_MS}; the type refuses it).
 * `unref`, `ref` and `hasRef` are those of Node's `Timeout` (and Bun's); they are absent where timers are
 * plain numbers (browsers, Deno), so portable code calls `timer.unref?.()`.
 */
export interface LongTimeout {
  /** Lets the process exit while this timer is pending; returns the timer. */
  unref?(): LongTimeout;
  /** Keeps the process running while this timer is pending (the default); returns the timer. */
  ref?(): LongTimeout;
  /** Whether the timer keeps the process running. */
  hasRef?(): boolean;
}

type Timer = ReturnType<typeof setTimeout>;

/** Node's `Timeout` methods, absent where timers are numbers. */
interface Refable {
  unref?(): unknown;
  ref?(): unknown;
}

/** A wait longer than MAX_TIMER_MS: one native timer at a time, each of at most MAX_TIMER_MS. */
class SteppedTimeout implements LongTimeout {
  readonly #callback: (arg: unknown) => void;
  readonly #arg: unknown;
  /** The ms still to wait once the current step fires (`Infinity` never runs out). */
  #left: number;
  #timer: Timer | undefined = undefined;
  #refed = true;

  constructor(callback: (arg: unknown) => void, arg: unknown, ms: number) {
    this.#callback = callback;
    this.#arg = arg;
    this.#left = ms;
    this.#step();
  }

  #step(): void {
    const step = Math.min(this.#left, MAX_TIMER_MS);
    this.#left -= step;
    const timer = setTimeout(SteppedTimeout.#fire, step, this);
    if (!this.#refed) (timer as Refable).unref?.();
    this.#timer = timer;
  }

  static #fire(this: void, self: SteppedTimeout): void {
    self.#timer = undefined;
    if (self.#left > 0) self.#step();
    else self.#callback(self.#arg);
  }

  clear(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  unref(): LongTimeout {
    this.#refed = false;
    (this.#timer as Refable | undefined)?.unref?.();
    return this;
  }

  ref(): LongTimeout {
    this.#refed = true;
    (this.#timer as Refable | undefined)?.ref?.();
    return this;
  }

  hasRef(): boolean {
    return this.#refed;
  }
}

/**
 * `setTimeout` without its 24.8-day limit: calls `callback(arg)` once, `ms` milliseconds from now, however
 * far that is. Up to {@link MAX_TIMER_MS} it *is* `setTimeout(callback, ms, arg)` (no extra allocation,
 * so it suits per-call timers); past it, the wait is made in steps of at most `MAX_TIMER_MS`, one native
 * timer at a time, and ends exactly `ms` after the call (never 1 ms later, as a plain `setTimeout` would).
 *
 * - `ms` ≤ 0 (or `-Infinity`): as `setTimeout(callback, 0)`, on a coming turn of the event loop.
 * - `ms` = `Infinity`: never fires. Like any pending timer it keeps the process running unless unref'd
 *   (it wakes every 24.8 days to wait on).
 * - `ms` = `NaN`: throws `RangeError` (`setTimeout` would fire after 1 ms).
 *
 * Time is the timer's own clock, as for `setTimeout` (monotonic in Node): a step of the wall clock neither
 * shortens nor lengthens the wait. A wait for a wall-clock deadline (epoch ms, like `ctx.deadline`) should
 * look at `Date.now()` when it fires and wait again for what is left, as `Context` does: the clock may have
 * been set back, and a timer may fire a millisecond before `Date.now()` reaches the deadline.
 *
 * Clear it with {@link clearLongTimeout}; `unref()` / `ref()` work as on Node's `Timeout`, whichever step
 * the wait is in.
 *
 * @throws RangeError when `ms` is `NaN` or not a number.
 *
 * @example
 * ```ts
 * const timer = setLongTimeout(expire, 30 * 24 * 3_600_000, session); // 30 days: expire(session)
 * timer.unref?.(); // Node: don't keep the process running for it
 * // ...
 * clearLongTimeout(timer);
 * ```
 */
export function setLongTimeout(callback: () => void, ms: number): LongTimeout;
/** The same, calling `callback(arg)`: a shared function with an argument instead of a closure per timer. */
export function setLongTimeout<T>(callback: (arg: T) => void, ms: number, arg: T): LongTimeout;
export function setLongTimeout<T>(callback: (arg: T) => void, ms: number, arg?: T): LongTimeout {
  if (typeof ms !== "number" || Number.isNaN(ms)) {
    throw new RangeError(`setLongTimeout: ms must be a number, got ${String(ms)}`);
  }
  if (ms <= MAX_TIMER_MS) {
    // The native timer itself. No argument passed when there is none: Node then allocates no argument list.
    const timer = arg === undefined ? setTimeout(callback as () => void, ms) : setTimeout(callback, ms, arg);
    return timer as unknown as LongTimeout;
  }
  if (typeof callback !== "function") {
    throw new TypeError(`setLongTimeout: callback must be a function, got ${typeof callback}`);
  }
  return new SteppedTimeout(callback as (arg: unknown) => void, arg, ms);
}

/**
 * Cancels a {@link setLongTimeout} timer, whichever step it is in; does nothing for `undefined` or a timer
 * that fired or was cleared already.
 *
 * @example
 * ```ts
 * clearLongTimeout(timer);
 * ```
 */
export function clearLongTimeout(timeout: LongTimeout | undefined): void {
  if (timeout instanceof SteppedTimeout) timeout.clear();
  else if (timeout !== undefined) clearTimeout(timeout as unknown as Timer);
}
