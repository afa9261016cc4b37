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
