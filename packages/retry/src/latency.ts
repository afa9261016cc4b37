/**
 * The most recent `size` latencies and a percentile of them, for hedging delays. Recording is O(1)
 * and allocates nothing; the percentile is recomputed (an O(n) selection on a preallocated copy) only
 * once at least 1/64 of the samples are new, so its cost per call stays constant.
 * Internal: not exported from the package.
 */
export class LatencyWindow {
  readonly #samples: Float64Array;
  readonly #scratch: Float64Array;
  /** The percentile in millionths of a percent (an integer in [0, 1e8]). */
  readonly #microPercentile: number;
  readonly #minSamples: number;
  readonly #fallback: number;
  #count = 0;
  #next = 0;
  /** Samples recorded since the percentile was last computed. */
  #fresh = 0;
  #cached: number | undefined = undefined;

  /**
   * @param size - how many recent samples to keep (≥ 1).
   * @param percentile - in (0, 100]; taken to a millionth of a percent, so the decimal the caller
   *   wrote (99.9, not the double just above it) decides the rank.
   * @param minSamples - below this many samples, {@link LatencyWindow.delay} returns `fallback`.
   * @param fallback - the delay without enough samples.
   */
  constructor(size: number, percentile: number, minSamples: number, fallback: number) {
    this.#samples = new Float64Array(size);
    this.#scratch = new Float64Array(size);
    // 99.9 is stored as 99.900000000000006: rank arithmetic on that double would round up one rank
    // too many (ceil(0.999 × 1000) = 1000). In integer millionths the rank is exact.
    this.#microPercentile = Math.round(percentile * 1e6);
    this.#minSamples = minSamples;
    this.#fallback = fallback;
  }

  /** How many samples are held. */
  get count(): number {
    return this.#count;
  }

  /** Records one latency in ms. */
  record(ms: number): void {
    const samples = this.#samples;
    samples[this.#next] = ms;
    this.#next = this.#next + 1 === samples.length ? 0 : this.#next + 1;
    if (this.#count < samples.length) this.#count++;
    this.#fresh++;
  }

  /** The percentile of the held samples, or the fallback with fewer than `minSamples`. */
  delay(): number {
    const count = this.#count;
    if (count < this.#minSamples || count === 0) return this.#fallback;
    if (this.#cached === undefined || this.#fresh * 64 >= count) {
      this.#cached = this.#compute(count);
      this.#fresh = 0;
    }
    return this.#cached;
  }

  #compute(count: number): number {
    const scratch = this.#scratch;
    scratch.set(count === this.#samples.length ? this.#samples : this.#samples.subarray(0, count));
    const rank = nearestRank(this.#microPercentile, count);
    return selectKth(scratch, count, rank - 1);
  }
}

/**
 * The nearest rank (1-based) of a percentile among `count` samples: the smallest rank with at least
 * `percentile` % of the samples at or below it, i.e. ceil(percentile × count / 100), at least 1.
 * Computed in integers, exactly: `microPercentile` (the percentile in millionths of a percent, ≤ 1e8)
 * × `count` (≤ 1e6) stays below 2^53.
 */
export function nearestRank(microPercentile: number, count: number): number {
  const scaled = microPercentile * count; // an integer < 2^53: exact
  const whole = 100_000_000; // 100 % in millionths of a percent
  const remainder = scaled % whole;
  const rank = (scaled - remainder) / whole + (remainder === 0 ? 0 : 1);
  return Math.min(count, Math.max(1, rank));
}

/**
 * Rearranges `a[0..n)` so that `a[k]` is the k-th smallest (0-based) and returns it (Hoare's FIND;
 * many equal values do not make it quadratic).
 */
export function selectKth(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1] as number;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k] as number;
}
