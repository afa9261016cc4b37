// The statistics the benchmark harness prints (bench/lib.mjs): what a noisy run's ratio can claim.
import { describe, expect, it } from "vitest";

type Interval = [number, number] | undefined;
interface BenchLib {
  median(xs: number[]): number | undefined;
  medianInterval(xs: number[], level?: number): Interval;
  fmtInterval(interval: Interval): string;
}
// A computed specifier: bench/ is plain JavaScript without declarations, so the module is typed here.
const libPath: string = "../bench/lib.mjs";
const lib = (await import(libPath)) as BenchLib;

/** A small deterministic generator (mulberry32), so the coverage check cannot flake. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("medianInterval", () => {
  const ranks = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

  it("takes the order statistics a Binomial(n, 1/2) gives for 95%", () => {
    // n = 6: P(B ≤ 0) = 1/64 ≤ 2.5% → 1st..6th; n = 16: P(B ≤ 3) = 1.06% → 4th..13th.
    expect(lib.medianInterval(ranks(6))).toEqual([1, 6]);
    expect(lib.medianInterval(ranks(8))).toEqual([1, 8]);
    expect(lib.medianInterval(ranks(10))).toEqual([2, 9]);
    expect(lib.medianInterval(ranks(16))).toEqual([4, 13]);
    expect(lib.medianInterval(ranks(20))).toEqual([6, 15]);
  });

  it("has none below 6 values, sorts its input and skips values that are not finite", () => {
    expect(lib.medianInterval(ranks(5))).toBeUndefined();
    expect(lib.medianInterval([])).toBeUndefined();
    expect(lib.medianInterval([9, 3, Number.NaN, 7, 1, 5, undefined as unknown as number, 11])).toEqual([
      1, 11,
    ]);
    expect(lib.medianInterval(ranks(16), 0.5)).toEqual([7, 10]);
  });

  it("covers the true median at least 95% of the time", () => {
    const next = random(42);
    for (const n of [6, 9, 12, 16, 25]) {
      let covered = 0;
      const trials = 4_000;
      for (let t = 0; t < trials; t++) {
        const interval = lib.medianInterval(Array.from({ length: n }, next));
        if (interval !== undefined && interval[0] <= 0.5 && 0.5 <= interval[1]) covered++;
      }
      expect(covered / trials, `n = ${n}`).toBeGreaterThanOrEqual(0.94);
    }
  });

  it("prints as a bracketed range, or not at all", () => {
    expect(lib.fmtInterval([0.9123, 1.0456])).toBe(" [0.91–1.05]");
    expect(lib.fmtInterval(undefined)).toBe("");
    expect(lib.median([3, 1, 2])).toBe(2);
  });
});
