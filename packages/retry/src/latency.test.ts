import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LatencyWindow, selectKth } from "./latency.js";

describe("selectKth", () => {
  it("finds the k-th smallest like sorting does, with duplicates too (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 5 }), fc.double({ min: 0, max: 1e4, noNaN: true })), {
          minLength: 1,
          maxLength: 300,
        }),
        fc.nat(),
        (values, seed) => {
          const k = seed % values.length;
          const sorted = [...values].sort((a, b) => a - b);
          expect(selectKth(Float64Array.from(values), values.length, k)).toBe(sorted[k]);
        },
      ),
    );
  });

  it("stays fast when every value is equal", () => {
    const a = new Float64Array(100_000).fill(7);
    expect(selectKth(a, a.length, 95_000)).toBe(7);
  });
});

describe("LatencyWindow", () => {
  it("returns the fallback until minSamples, then the nearest-rank percentile", () => {
    const w = new LatencyWindow(100, 90, 3, 42);
    expect(w.delay()).toBe(42);
    w.record(10);
    w.record(30);
    expect(w.delay()).toBe(42);
    w.record(20);
    expect(w.delay()).toBe(30); // ceil(0.9 × 3) = 3rd smallest
    for (let i = 0; i < 7; i++) w.record(1);
    expect(w.count).toBe(10);
    expect(w.delay()).toBe(20); // 9th of [1×7, 10, 20, 30]
  });

  it("keeps only the most recent sampleSize latencies", () => {
    const w = new LatencyWindow(4, 100, 1, 0);
    for (const ms of [500, 400, 1, 2, 3, 4]) w.record(ms);
    expect(w.count).toBe(4);
    expect(w.delay()).toBe(4);
  });

  it("matches the percentile of the recent samples within the refresh tolerance (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1_000 }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 200 }),
        (samples, percentile, size) => {
          const w = new LatencyWindow(size, percentile, 1, -1);
          for (const s of samples) {
            w.record(s);
            w.delay(); // computed at most every count/64 new samples
          }
          // A fresh window over the same recent samples computes it exactly.
          const recent = samples.slice(-size);
          const exact = new LatencyWindow(size, percentile, 1, -1);
          for (const s of recent) exact.record(s);
          const sorted = [...recent].sort((a, b) => a - b);
          const rank = Math.min(recent.length, Math.max(1, Math.ceil((percentile / 100) * recent.length)));
          expect(exact.delay()).toBe(sorted[rank - 1]);
          if (recent.length <= 64) expect(w.delay()).toBe(sorted[rank - 1]);
        },
      ),
    );
  });
});
