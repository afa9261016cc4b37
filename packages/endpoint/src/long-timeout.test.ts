import { clearLongTimeout, type LongTimeout, MAX_TIMER_MS, setLongTimeout } from "@svckit/endpoint";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const T0 = Date.UTC(2030, 0, 1);

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});

afterEach(() => {
  // In this order: restoring a spy on the fake setTimeout after useRealTimers would put the fake one back.
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** Advances the fake clock by `ms`. */
function advance(ms: number): void {
  vi.advanceTimersByTime(ms);
}

describe("setLongTimeout", () => {
  it("fires a delay below MAX_TIMER_MS exactly when setTimeout would, with its argument", () => {
    const fn = vi.fn();
    setLongTimeout(fn, 1_000, "arg");
    advance(999);
    expect(fn).not.toHaveBeenCalled();
    advance(1);
    expect(fn.mock.calls).toEqual([["arg"]]);
    advance(10 * MAX_TIMER_MS);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("calls a callback given no argument with none", () => {
    const fn = vi.fn();
    setLongTimeout(fn, 5);
    advance(5);
    expect(fn.mock.calls).toEqual([[]]);
  });

  it("is the native timer up to MAX_TIMER_MS: one setTimeout call, the same handle", () => {
    const timers = vi.spyOn(globalThis, "setTimeout");
    const fn = vi.fn();
    const timer = setLongTimeout(fn, MAX_TIMER_MS, 1);
    expect(timers).toHaveBeenCalledTimes(1);
    expect(timers.mock.calls[0]?.[1]).toBe(MAX_TIMER_MS);
    expect(timer).toBe(timers.mock.results[0]?.value);
    advance(MAX_TIMER_MS - 1);
    expect(fn).not.toHaveBeenCalled();
    advance(1);
    expect(fn.mock.calls).toEqual([[1]]);
  });

  it("waits a delay far above MAX_TIMER_MS in full, one native timer at a time, and fires exactly then", () => {
    // setTimeout itself (and the fake clock, which copies it) would fire this after 1 ms.
    const naive = vi.fn();
    setTimeout(naive, 3 * MAX_TIMER_MS);
    advance(1);
    expect(naive).toHaveBeenCalledTimes(1);

    const ms = 3.5 * MAX_TIMER_MS + 7;
    const fn = vi.fn();
    setLongTimeout(fn, ms, "late");
    for (let waited = 0; waited < ms - 1; waited += 1e9) {
      advance(Math.min(1e9, ms - 1 - waited));
      expect(vi.getTimerCount()).toBe(1);
    }
    expect(fn).not.toHaveBeenCalled();
    advance(1);
    expect(fn.mock.calls).toEqual([["late"]]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("fires just past MAX_TIMER_MS and at a whole number of steps without a step too many", () => {
    const past = vi.fn();
    const twice = vi.fn();
    setLongTimeout(past, MAX_TIMER_MS + 1);
    setLongTimeout(twice, 2 * MAX_TIMER_MS);
    advance(MAX_TIMER_MS);
    expect(past).not.toHaveBeenCalled();
    advance(1);
    expect(past).toHaveBeenCalledTimes(1);
    advance(MAX_TIMER_MS - 2);
    expect(twice).not.toHaveBeenCalled();
    advance(1);
    expect(twice).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("measures time on the timer clock: a wall-clock step neither shortens nor lengthens the wait", () => {
    const back = vi.fn();
    const ahead = vi.fn();
    setLongTimeout(back, 2 * MAX_TIMER_MS);
    setLongTimeout(ahead, 1_000);
    advance(500);
    vi.setSystemTime(T0 - 86_400_000); // the wall clock is set back a day
    advance(499);
    expect(ahead).not.toHaveBeenCalled();
    advance(1);
    expect(ahead).toHaveBeenCalledTimes(1);
    vi.setSystemTime(Date.now() + 30 * 86_400_000); // and forward 30 days
    advance(2 * MAX_TIMER_MS - 1_001);
    expect(back).not.toHaveBeenCalled();
    advance(1);
    expect(back).toHaveBeenCalledTimes(1);
  });

  describe("clearLongTimeout", () => {
    it("cancels a short timer", () => {
      const fn = vi.fn();
      const timer = setLongTimeout(fn, 100);
      clearLongTimeout(timer);
      advance(200);
      expect(fn).not.toHaveBeenCalled();
      expect(vi.getTimerCount()).toBe(0);
    });

    it("cancels a long wait before its first step", () => {
      const fn = vi.fn();
      const timer = setLongTimeout(fn, 3 * MAX_TIMER_MS);
      advance(1_000);
      clearLongTimeout(timer);
      expect(vi.getTimerCount()).toBe(0);
      advance(4 * MAX_TIMER_MS);
      expect(fn).not.toHaveBeenCalled();
    });

    it("cancels a long wait after a step", () => {
      const fn = vi.fn();
      const timer = setLongTimeout(fn, 3 * MAX_TIMER_MS);
      advance(MAX_TIMER_MS + 5); // the first step fired and the second is pending
      expect(vi.getTimerCount()).toBe(1);
      clearLongTimeout(timer);
      expect(vi.getTimerCount()).toBe(0);
      advance(4 * MAX_TIMER_MS);
      expect(fn).not.toHaveBeenCalled();
    });

    it("does nothing for undefined, or a timer that fired or was cleared", () => {
      const fn = vi.fn();
      const short = setLongTimeout(fn, 1);
      const long = setLongTimeout(fn, MAX_TIMER_MS + 1);
      advance(MAX_TIMER_MS + 1);
      expect(fn).toHaveBeenCalledTimes(2);
      clearLongTimeout(short);
      clearLongTimeout(long);
      clearLongTimeout(long);
      clearLongTimeout(undefined);
      expect(fn).toHaveBeenCalledTimes(2);
    });
  });

  describe("unusual delays", () => {
    it.each([0, -1, -1_000, Number.NEGATIVE_INFINITY])(
      "%d fires as setTimeout(fn, 0): soon, never synchronously",
      (ms) => {
        const fn = vi.fn();
        setLongTimeout(fn, ms, ms);
        expect(fn).not.toHaveBeenCalled();
        advance(1);
        expect(fn.mock.calls).toEqual([[ms]]);
      },
    );

    it("Infinity never fires, keeps one pending timer, and is cleared like any other", () => {
      const fn = vi.fn();
      const timer = setLongTimeout(fn, Number.POSITIVE_INFINITY);
      advance(10 * MAX_TIMER_MS);
      expect(fn).not.toHaveBeenCalled();
      expect(vi.getTimerCount()).toBe(1);
      clearLongTimeout(timer);
      expect(vi.getTimerCount()).toBe(0);
    });

    it("NaN (or a value that is not a number) throws a RangeError and arms nothing", () => {
      const fn = vi.fn();
      expect(() => setLongTimeout(fn, Number.NaN)).toThrow(
        new RangeError("setLongTimeout: ms must be a number, got NaN"),
      );
      expect(() => setLongTimeout(fn, "soon" as unknown as number)).toThrow(RangeError);
      // setTimeout would convert these and fire: refused as well.
      for (const value of [null, undefined, "5", true, [], 5n]) {
        expect(() => setLongTimeout(fn, value as unknown as number)).toThrow(RangeError);
      }
      expect(vi.getTimerCount()).toBe(0);
    });

    it("a long wait with a callback that is not a function throws a TypeError", () => {
      expect(() => setLongTimeout(42 as unknown as () => void, 2 * MAX_TIMER_MS)).toThrow(
        new TypeError("setLongTimeout: callback must be a function, got number"),
      );
      expect(vi.getTimerCount()).toBe(0);
    });
  });

  describe("unref / ref", () => {
    /** The native timers setTimeout returned, most recent last. */
    function nativeTimers(spy: { mock: { results: { value: unknown }[] } }): { hasRef(): boolean }[] {
      return spy.mock.results.map((r) => r.value as { hasRef(): boolean });
    }

    it("a short timer is Node's Timeout: unref, ref and hasRef are its own", () => {
      const timer = setLongTimeout(() => undefined, 10);
      expect(timer.unref?.()).toBe(timer);
      expect(timer.hasRef?.()).toBe(false);
      expect(timer.ref?.()).toBe(timer);
      expect(timer.hasRef?.()).toBe(true);
    });

    it("unref on a long wait holds for the step pending and every later one; ref undoes it", () => {
      const spy = vi.spyOn(globalThis, "setTimeout");
      const timer: LongTimeout = setLongTimeout(() => undefined, 4 * MAX_TIMER_MS);
      expect(timer.hasRef?.()).toBe(true);
      expect(timer.unref?.()).toBe(timer);
      expect(timer.hasRef?.()).toBe(false);
      expect(nativeTimers(spy).at(-1)?.hasRef()).toBe(false);
      advance(MAX_TIMER_MS);
      expect(spy).toHaveBeenCalledTimes(2);
      expect(nativeTimers(spy).at(-1)?.hasRef()).toBe(false);
      expect(timer.ref?.()).toBe(timer);
      expect(nativeTimers(spy).at(-1)?.hasRef()).toBe(true);
      advance(MAX_TIMER_MS);
      expect(nativeTimers(spy).at(-1)?.hasRef()).toBe(true);
      clearLongTimeout(timer);
    });
  });

  it("works on real timers too", async () => {
    vi.useRealTimers();
    const fired = await new Promise<string>((resolve) => {
      setLongTimeout(resolve, 5, "fired");
    });
    expect(fired).toBe("fired");
  });
});
