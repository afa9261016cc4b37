import { MAX_TIMER_MS } from "@svckit/endpoint";
import { backoffDelay } from "@svckit/retry";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

describe("backoffDelay", () => {
  it("is uniform in [0, cap]: random × min(max, initial × multiplier^(attempt-1))", () => {
    expect(backoffDelay(1, { initial: 100 }, () => 0.5)).toBe(50);
    expect(backoffDelay(3, { initial: 50 }, () => 0.5)).toBe(100);
    expect(backoffDelay(4, { initial: 10, multiplier: 3 }, () => 0.5)).toBe(135);
    expect(backoffDelay(2, { initial: 10, multiplier: 1 }, () => 0.5)).toBe(5);
    expect(backoffDelay(20, { max: 1_000 }, () => 0.999)).toBe(999);
    expect(backoffDelay(1, undefined, () => 0)).toBe(0);
  });

  it("never exceeds MAX_TIMER_MS, the longest wait setTimeout keeps, whatever initial and max say", () => {
    expect(backoffDelay(1, { initial: 1e12, max: 1e12 }, () => 0.5)).toBe(MAX_TIMER_MS / 2);
    expect(backoffDelay(1, { initial: 3e9, max: 3e9 }, () => 1)).toBe(MAX_TIMER_MS);
    expect(backoffDelay(40, { initial: 1_000, max: 1e15 }, () => 0.999)).toBe(MAX_TIMER_MS * 0.999);
    expect(backoffDelay(1, { initial: MAX_TIMER_MS - 1, max: 1e15 }, () => 0.5)).toBe((MAX_TIMER_MS - 1) / 2);
  });

  it("uses the defaults (100 ms, doubling, at most 10 s) and Math.random", () => {
    expect(backoffDelay(1, {}, () => 0.5)).toBe(50);
    expect(backoffDelay(2, undefined, () => 0.5)).toBe(100);
    expect(backoffDelay(50, undefined, () => 0.5)).toBe(5_000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(1);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(100);
    }
  });

  it("stays within [0, cap] for any attempt, options and random value (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.double({ min: 1, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        (attempt, initial, max, multiplier, r) => {
          // 0 × Infinity is NaN: a zero initial or max means no wait at all.
          const cap = initial === 0 || max === 0 ? 0 : Math.min(max, initial * multiplier ** (attempt - 1));
          const d = backoffDelay(attempt, { initial, max, multiplier }, () => r);
          expect(Number.isFinite(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(cap);
          expect(d).toBeCloseTo(r * cap, 6);
        },
      ),
    );
  });

  it("never decreases its cap as attempts grow (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.double({ min: 0, max: 1e4, noNaN: true }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        (attempt, initial, multiplier) => {
          const options = { initial, multiplier, max: 1e6 };
          expect(backoffDelay(attempt + 1, options, () => 1 - 2 ** -53)).toBeGreaterThanOrEqual(
            backoffDelay(attempt, options, () => 1 - 2 ** -53),
          );
        },
      ),
    );
  });

  it("does not overflow to NaN or Infinity for huge attempts", () => {
    expect(backoffDelay(1_000_000, { initial: 1, max: 500 }, () => 0.5)).toBe(250);
    expect(backoffDelay(1_000_000, { initial: 0 }, () => 0.5)).toBe(0);
    expect(backoffDelay(5, { initial: 100, max: 0 }, () => 0.5)).toBe(0);
  });

  it("clamps a random source that leaves [0, 1)", () => {
    expect(backoffDelay(1, { initial: 100 }, () => -1)).toBe(0);
    expect(backoffDelay(1, { initial: 100 }, () => 1)).toBe(100);
    expect(backoffDelay(1, { initial: 100 }, () => 7)).toBe(100);
    expect(backoffDelay(1, { initial: 100 }, () => Number.NaN)).toBe(0);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])("rejects attempt %s", (attempt) => {
    expect(() => backoffDelay(attempt)).toThrow(
      new RangeError(`backoffDelay: attempt must be an integer ≥ 1, got ${attempt}`),
    );
  });

  it.each([
    [{ initial: -1 }, "backoffDelay: backoff.initial must be a finite number ≥ 0, got -1"],
    [{ initial: Number.NaN }, "backoffDelay: backoff.initial must be a finite number ≥ 0, got NaN"],
    [{ max: -0.5 }, "backoffDelay: backoff.max must be a finite number ≥ 0, got -0.5"],
    [{ multiplier: 0.9 }, "backoffDelay: backoff.multiplier must be a finite number ≥ 1, got 0.9"],
    [
      { multiplier: Number.POSITIVE_INFINITY },
      "backoffDelay: backoff.multiplier must be a finite number ≥ 1, got Infinity",
    ],
  ])("rejects options %j", (options, message) => {
    expect(() => backoffDelay(1, options)).toThrow(new RangeError(message));
  });

  it("rejects options that are not an object", () => {
    expect(() => backoffDelay(1, null as unknown as undefined)).toThrow(
      new TypeError("backoffDelay: backoff must be an object, got null"),
    );
  });
});
