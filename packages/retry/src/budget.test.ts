import { createRetryBudget, type RetryBudgetOptions, unlimitedRetryBudget } from "@svckit/retry";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const T0 = Date.UTC(2030, 0, 1);

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Spends retries until the budget refuses; returns how many it allowed. */
function drain(budget: { tryRetry(): boolean }): number {
  let n = 0;
  while (budget.tryRetry()) n++;
  return n;
}

describe("createRetryBudget", () => {
  it("starts with the reserve: minRetriesPerSecond × ttl (Finagle's defaults: 10/s over 10 s)", () => {
    expect(createRetryBudget().balance()).toBe(100);
    expect(createRetryBudget({ minRetriesPerSecond: 2, ttl: 5_000 }).balance()).toBe(10);
    expect(drain(createRetryBudget({ minRetriesPerSecond: 3, ttl: 1_000 }))).toBe(3);
  });

  it("earns retryRatio of a retry per recorded request", () => {
    const budget = createRetryBudget({ retryRatio: 0.1, minRetriesPerSecond: 0 });
    expect(budget.tryRetry()).toBe(false);
    for (let i = 0; i < 95; i++) budget.recordRequest();
    expect(budget.balance()).toBe(9);
    expect(drain(budget)).toBe(9);
    for (let i = 0; i < 5; i++) budget.recordRequest();
    expect(drain(budget)).toBe(1); // 100 × 0.1 = 10 in all
  });

  it("uses a ratio of 0.2 by default", () => {
    const budget = createRetryBudget({ minRetriesPerSecond: 0 });
    for (let i = 0; i < 50; i++) budget.recordRequest();
    expect(drain(budget)).toBe(10);
  });

  it("allows ratios above 1 (more retries than requests)", () => {
    const budget = createRetryBudget({ retryRatio: 2.5, minRetriesPerSecond: 0 });
    for (let i = 0; i < 4; i++) budget.recordRequest();
    expect(drain(budget)).toBe(10);
  });

  it("never allows a retry with ratio 0 and no reserve", () => {
    const budget = createRetryBudget({ retryRatio: 0, minRetriesPerSecond: 0 });
    for (let i = 0; i < 1_000; i++) budget.recordRequest();
    expect(budget.tryRetry()).toBe(false);
    expect(budget.balance()).toBe(0);
  });

  it("forgets requests after ttl", () => {
    const budget = createRetryBudget({ retryRatio: 0.5, minRetriesPerSecond: 0, ttl: 1_000 });
    for (let i = 0; i < 20; i++) budget.recordRequest();
    vi.advanceTimersByTime(899); // within 0.9 × ttl entries always count
    expect(budget.balance()).toBe(10);
    vi.advanceTimersByTime(101);
    expect(budget.balance()).toBe(0);
    expect(budget.tryRetry()).toBe(false);
  });

  it("expires in steps of ttl/10, oldest first", () => {
    const budget = createRetryBudget({ retryRatio: 1, minRetriesPerSecond: 0, ttl: 1_000 });
    budget.recordRequest(); // slot [0, 100)
    vi.advanceTimersByTime(500);
    budget.recordRequest(); // slot [500, 600)
    vi.advanceTimersByTime(499);
    expect(budget.balance()).toBe(2);
    vi.advanceTimersByTime(1); // t = 1000: the first slot is gone
    expect(budget.balance()).toBe(1);
    vi.advanceTimersByTime(500); // t = 1500: the second too
    expect(budget.balance()).toBe(0);
  });

  it("refills once spent retries expire, ttl after the end of their step (recovery after an outage)", () => {
    const budget = createRetryBudget({ minRetriesPerSecond: 1, ttl: 2_000, retryRatio: 0 });
    expect(drain(budget)).toBe(2); // step [0, 200): they count until 2200
    vi.advanceTimersByTime(1_000);
    expect(budget.tryRetry()).toBe(false);
    vi.advanceTimersByTime(1_199);
    expect(budget.balance()).toBe(0);
    vi.advanceTimersByTime(1);
    expect(budget.balance()).toBe(2);
    expect(drain(budget)).toBe(2);
  });

  it("never allows more retries within a ttl window than the bound, even across a step boundary", () => {
    // The reviewer's sequence: 10 retries at t = 999 ms and 10 more at t = 10 000 ms would be 20 within
    // 9 001 ms when retries expired at their step's start + ttl; the bound is 1/s × 10 s = 10.
    const budget = createRetryBudget({ ttl: 10_000, minRetriesPerSecond: 1, retryRatio: 0 });
    vi.advanceTimersByTime(999);
    expect(drain(budget)).toBe(10);
    vi.advanceTimersByTime(10_000 - 999);
    expect(budget.tryRetry()).toBe(false);
    vi.advanceTimersByTime(999); // t = 10 999: the retries of t = 999 are within the last ttl still
    expect(budget.tryRetry()).toBe(false);
    vi.advanceTimersByTime(1); // t = 11 000: the end of their step [0, 1000) is ttl ago
    expect(drain(budget)).toBe(10);
  });

  describe("with a ttl whose tenth is not a whole number of ms (regression: steps drifted)", () => {
    it("stops counting a request once it is ttl old (ttl 7, used every ms)", () => {
      const budget = createRetryBudget({ retryRatio: 1, minRetriesPerSecond: 0, ttl: 7 });
      budget.recordRequest(); // t = 0, step [0, 0.7)
      vi.advanceTimersByTime(3);
      budget.recordRequest(); // t = 3, step [2.8, 3.5): counts until 9.8
      const balances: number[] = [];
      for (let t = 4; t <= 10; t++) {
        vi.advanceTimersByTime(1);
        balances.push(budget.balance());
      }
      // t = 4..6: both; t = 7: the first is ttl old; t = 8, 9: the second is younger than 0.9 × ttl;
      // t = 10: ttl old.
      expect(balances).toEqual([2, 2, 2, 1, 1, 1, 0]);
      expect(budget.tryRetry()).toBe(false);
    });

    it.each([[[3]], [[6]], [[1, 2, 3, 4, 5, 6]]])(
      "refuses a retry whose only credit is a request exactly ttl old (ttl 7, used at %j ms)",
      (uses) => {
        const budget = createRetryBudget({ retryRatio: 1, minRetriesPerSecond: 0, ttl: 7 });
        budget.recordRequest(); // t = 0
        for (const t of uses) {
          vi.setSystemTime(T0 + t);
          expect(budget.balance()).toBe(1);
        }
        vi.setSystemTime(T0 + 7);
        expect(budget.tryRetry()).toBe(false);
        expect(budget.balance()).toBe(0);
      },
    );

    it("counts a spent retry until ttl after the end of its step (ttl 7)", () => {
      const budget = createRetryBudget({ retryRatio: 0, minRetriesPerSecond: 2_000, ttl: 7 }); // 14
      vi.advanceTimersByTime(3);
      expect(drain(budget)).toBe(14); // t = 3, step [2.8, 3.5): they count until 10.5
      const allowed: boolean[] = [];
      for (let t = 4; t <= 11; t++) {
        vi.advanceTimersByTime(1);
        allowed.push(budget.balance() > 0);
      }
      expect(allowed).toEqual([false, false, false, false, false, false, false, true]);
      expect(drain(budget)).toBe(14);
    });

    it.each([3, 7, 13, 0.5])(
      "ttl %d: a request counts while younger than 0.9 × ttl and not once ttl old, a retry while younger than ttl and not once 1.1 × ttl old (property)",
      (ttl) => {
        // Times are whole eighths of a ms (often whole ms), so ages are exact and land on ttl and on step
        // boundaries.
        const eighths = Math.ceil(ttl * 8 * 1.2);
        const op = fc.oneof(
          fc.record({ kind: fc.constant("request" as const), count: fc.integer({ min: 1, max: 5 }) }),
          fc.record({ kind: fc.constant("retry" as const), count: fc.integer({ min: 1, max: 5 }) }),
          fc.record({
            kind: fc.constant("wait" as const),
            count: fc.oneof(
              fc.integer({ min: 1, max: eighths }),
              fc.integer({ min: 1, max: Math.ceil(eighths / 8) }).map((ms) => ms * 8), // whole ms, as Date.now
            ),
          }),
        );
        fc.assert(
          fc.property(
            fc.integer({ min: 1, max: 10 }).map((tenths) => tenths / 10),
            fc.constantFrom(0, 1_000, 3_000),
            fc.array(op, { maxLength: 120 }),
            (retryRatio, minRetriesPerSecond, ops) => {
              let now = T0;
              const clock = vi.spyOn(Date, "now").mockImplementation(() => now);
              try {
                const budget = createRetryBudget({ retryRatio, minRetriesPerSecond, ttl });
                const reserve = Math.floor(minRetriesPerSecond * (ttl / 1_000) * 1_000_000);
                const deposit = Math.round(retryRatio * 1_000_000);
                const requests: number[] = [];
                const retries: number[] = [];
                const younger = (times: number[], age: number) => times.filter((t) => now - t < age).length;
                /** The least and most units the documented windows allow now. */
                const bounds = (): [number, number] => [
                  reserve + deposit * younger(requests, 0.9 * ttl) - 1_000_000 * younger(retries, 1.1 * ttl),
                  reserve + deposit * younger(requests, ttl) - 1_000_000 * younger(retries, ttl),
                ];
                const whole = (units: number) => Math.max(0, Math.floor(units / 1_000_000));
                for (const { kind, count } of ops) {
                  if (kind === "wait") {
                    now += count / 8;
                    const [least, most] = bounds();
                    const balance = budget.balance();
                    expect(balance).toBeGreaterThanOrEqual(whole(least));
                    expect(balance).toBeLessThanOrEqual(whole(most));
                    continue;
                  }
                  for (let i = 0; i < count; i++) {
                    if (kind === "request") {
                      budget.recordRequest();
                      requests.push(now);
                      continue;
                    }
                    const [least, most] = bounds();
                    const allowed = budget.tryRetry();
                    if (least >= 1_000_000) expect(allowed).toBe(true);
                    if (most < 1_000_000) expect(allowed).toBe(false);
                    if (allowed) retries.push(now);
                  }
                }
              } finally {
                clock.mockRestore();
              }
            },
          ),
          { numRuns: 300 },
        );
      },
    );
  });

  it("copes with a long idle time and a clock that goes back", () => {
    const budget = createRetryBudget({ retryRatio: 1, minRetriesPerSecond: 0, ttl: 1_000 });
    budget.recordRequest();
    vi.setSystemTime(T0 + 1_000_000);
    expect(budget.balance()).toBe(0);
    budget.recordRequest();
    vi.setSystemTime(T0 + 500_000); // back in time
    expect(budget.balance()).toBe(1);
    budget.recordRequest();
    expect(budget.balance()).toBe(2);
    vi.setSystemTime(T0 + 500_000 + 1_000);
    expect(budget.balance()).toBe(0);
  });

  it("keeps the retries of the ttl before each retry within ratio × the requests of that ttl + the reserve (property)", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("request" as const), count: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ kind: fc.constant("retry" as const), count: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ kind: fc.constant("wait" as const), count: fc.integer({ min: 1, max: 700 }) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 }).map((tenths) => tenths / 10),
        fc.integer({ min: 0, max: 3 }),
        fc.array(op, { maxLength: 80 }),
        (retryRatio, minRetriesPerSecond, ops) => {
          vi.setSystemTime(T0);
          const ttl = 1_000;
          const budget = createRetryBudget({ retryRatio, minRetriesPerSecond, ttl });
          const requests: number[] = [];
          const granted: number[] = [];
          for (const { kind, count } of ops) {
            if (kind === "wait") {
              vi.setSystemTime(Date.now() + count); // the budget reads only Date.now()
              continue;
            }
            for (let i = 0; i < count; i++) {
              const now = Date.now();
              if (kind === "request") {
                budget.recordRequest();
                requests.push(now);
              } else if (budget.tryRetry()) granted.push(now);
            }
          }
          const reserve = minRetriesPerSecond * (ttl / 1_000);
          // Every ttl window (g - ttl, g] that ends with a retry: so any ttl window holds at most that many.
          for (const g of granted) {
            const inWindow = granted.filter((t) => t <= g && t > g - ttl).length;
            const earned = requests.filter((t) => t <= g && t > g - ttl).length * retryRatio;
            expect(inWindow).toBeLessThanOrEqual(reserve + earned + 1e-9);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it.each([
    [{ ttl: 0 }, "createRetryBudget: ttl must be a finite number of ms > 0, got 0"],
    [
      { ttl: Number.POSITIVE_INFINITY },
      "createRetryBudget: ttl must be a finite number of ms > 0, got Infinity",
    ],
    [{ ttl: "10s" }, 'createRetryBudget: ttl must be a finite number of ms > 0, got "10s"'],
    [
      { minRetriesPerSecond: -1 },
      "createRetryBudget: minRetriesPerSecond must be a finite number ≥ 0, got -1",
    ],
    [
      { minRetriesPerSecond: Number.NaN },
      "createRetryBudget: minRetriesPerSecond must be a finite number ≥ 0, got NaN",
    ],
    [{ retryRatio: -0.1 }, "createRetryBudget: retryRatio must be a finite number ≥ 0, got -0.1"],
    [
      { retryRatio: Number.POSITIVE_INFINITY },
      "createRetryBudget: retryRatio must be a finite number ≥ 0, got Infinity",
    ],
  ])("rejects %j", (options, message) => {
    expect(() => createRetryBudget(options as unknown as RetryBudgetOptions)).toThrow(
      new RangeError(message),
    );
  });
});

describe("unlimitedRetryBudget", () => {
  it("allows every retry", () => {
    unlimitedRetryBudget.recordRequest();
    for (let i = 0; i < 1_000; i++) expect(unlimitedRetryBudget.tryRetry()).toBe(true);
    expect(Object.isFrozen(unlimitedRetryBudget)).toBe(true);
  });
});
