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

  it("takes the percentile as the decimal written: p99.9 of [1..999, 60000] is 999, p55 of [1..100] is 55", () => {
    const p999 = new LatencyWindow(1_000, 99.9, 1, -1);
    for (let ms = 1; ms <= 999; ms++) p999.record(ms);
    p999.record(60_000);
    expect(p999.delay()).toBe(999); // (99.9 / 100) × 1000 is 999.0000000000001 in floating point
    const p55 = new LatencyWindow(100, 55, 1, -1);
    for (let ms = 100; ms >= 1; ms--) p55.record(ms);
    expect(p55.delay()).toBe(55); // (55 / 100) × 100 is 55.00000000000001
    const p100 = new LatencyWindow(10, 100, 1, -1);
    for (const ms of [3, 9, 1]) p100.record(ms);
    expect(p100.delay()).toBe(9);
  });

  it("finds the nearest rank of every percentile with one decimal exactly, for every count up to 100", () => {
    const wrong: string[] = [];
    for (let count = 1; count <= 100; count++) {
      for (let tenths = 1; tenths <= 1_000; tenths++) {
        // Oracle in integers: the smallest rank r with r / count ≥ tenths / 1000.
        let rank = 1;
        while (rank * 1_000 < tenths * count) rank++;
        const w = new LatencyWindow(count, tenths / 10, 1, -1);
        for (let i = 1; i <= count; i++) w.record(i); // sample i is the i-th smallest
        if (w.delay() !== rank) wrong.push(`p${tenths / 10} of ${count}: ${w.delay()}, not ${rank}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("finds the nearest rank of any percentile with up to 3 decimals exactly (property, integer oracle)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }), // the percentile in thousandths: 1 = 0.001, 100000 = 100
        fc.integer({ min: 1, max: 2_000 }),
        (thousandths, count) => {
          // Oracle in integers: the smallest rank r with r / count ≥ thousandths / 100000.
          let rank = 1;
          while (rank * 100_000 < thousandths * count) rank++;
          const w = new LatencyWindow(count, thousandths / 1_000, 1, -1);
          for (let i = count; i >= 1; i--) w.record(i); // sample i is the i-th smallest
          expect(w.delay()).toBe(rank);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("matches the percentile of the recent samples within the refresh tolerance (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1_000 }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 100_000 }).map((thousandths) => thousandths / 1_000),
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
          // Nearest rank in integers (percentile has 3 decimals): the smallest r with r / n ≥ percentile / 100.
          const thousandths = Math.round(percentile * 1_000);
          let rank = 1;
          while (rank * 100_000 < thousandths * recent.length) rank++;
          expect(exact.delay()).toBe(sorted[rank - 1]);
          if (recent.length <= 64) expect(w.delay()).toBe(sorted[rank - 1]);
        },
      ),
    );
  });
});
