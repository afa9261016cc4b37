import type { EndpointEntry } from "@svckit/sd";
import {
  type Balancer,
  type CallOutcome,
  type CallRecord,
  type Clock,
  checkFunction,
  checkPositive,
  defaultClock,
  type EndpointSource,
  effectiveAvoid,
  nopRecord,
  type Rng,
  randomAllowedIndex,
  randomIndex,
  StateTable,
} from "./balancer.js";

/** Options of {@link p2c}. */
export interface P2cOptions {
  /**
   * How fast latency knowledge fades, in ms (default 10 000): the weight of an old observation falls
   * to 1/e after this long, and an idle instance's estimate decays toward 0 at the same rate so it is
   * tried again (its calls in flight still count; see {@link p2c}).
   */
  decayTime?: number;
  /**
   * The latency (ms) assumed for an instance that has no observation yet. Default: the mean estimate
   * of the instances that have one (0 when none has), so a new instance starts as an average one. The
   * mean is kept up to date as estimates change (not recomputed per pick), so it costs O(1).
   */
  initialLatency?: number;
  /**
   * The least latency (ms) a failed call counts as (default 1 000), so an instance that fails fast does
   * not look fast and attract more calls.
   */
  failurePenalty?: number;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: Clock;
  /** Random numbers in [0, 1); default `Math.random`. */
  rng?: Rng;
}

class Node {
  outstanding = 0;
  /** The calls in flight, oldest first: a doubly linked list, so a call ends in O(1) in any order. */
  oldest: P2cCall | undefined = undefined;
  newest: P2cCall | undefined = undefined;
  /** Peak-EWMA latency estimate (ms) as of `updatedAt`; meaningful once `measured`. */
  estimate = 0;
  updatedAt = 0;
  measured = false;
  /** Whether the node belongs to the current set, so its estimate counts in the running mean. */
  attached = false;
}

/**
 * Once the clock is this many decay times past the running sum's reference time, the sum is rebased
 * (O(1)), so its terms, which grow as e^((updatedAt - reference) / decayTime), stay far from overflow.
 */
const REBASE_AFTER = 32;

/**
 * Latency estimates below this (ms, so 1 µs: far below any remote call's) carry no information about
 * an instance; mostly estimates that decayed to ~0 while their instance was idle.
 */
const NEGLIGIBLE_LATENCY = 0.001;

/**
 * The cost of an instance that has calls in flight but no latency to speak of (Finagle's penalty): above
 * any real cost, so such an instance comes after every other; the calls in flight are added to it, so
 * among such instances the one with fewer comes first.
 */
const BUSY_UNKNOWN_COST = 2 ** 48;

class P2cCall implements CallRecord {
  prev: P2cCall | undefined = undefined;
  next: P2cCall | undefined = undefined;
  ended = false;

  constructor(
    readonly node: Node,
    readonly startedAt: number,
    readonly balancer: P2c<unknown, unknown>,
  ) {
    const newest = node.newest;
    if (newest === undefined) node.oldest = this;
    else {
      newest.next = this;
      this.prev = newest;
    }
    node.newest = this;
    node.outstanding++;
  }

  end(outcome: CallOutcome): void {
    if (this.ended) return; // a second end() must not count the call twice
    this.ended = true;
    const { node, prev, next } = this;
    if (prev === undefined) node.oldest = next;
    else prev.next = next;
    if (next === undefined) node.newest = prev;
    else next.prev = prev;
    this.prev = undefined;
    this.next = undefined;
    node.outstanding--;
    this.balancer.observe(node, this.startedAt, outcome);
  }
}

class P2c<Req, Res> implements Balancer<Req, Res> {
  readonly source: EndpointSource<Req, Res>;
  readonly #table = new StateTable<Req, Res, Node>(() => new Node());
  readonly #decayTime: number;
  readonly #initialLatency: number | undefined;
  readonly #failurePenalty: number;
  readonly #now: Clock;
  readonly #rng: Rng;
  // The mean estimate of the measured instances, kept incrementally so that a pick that meets an
  // unmeasured instance stays O(1). Each measured node of the current set contributes
  // estimate × e^((updatedAt - #reference) / decayTime) to #weightedSum; at time t the decayed estimates
  // add up to #weightedSum × e^(-(t - #reference) / decayTime). A node's term changes when it observes a
  // call (O(1)); the set changing recomputes the sum (O(n), like the state table's own rebuild).
  #weightedSum = 0;
  #measuredCount = 0;
  #reference = 0;

  constructor(source: EndpointSource<Req, Res>, options: P2cOptions | undefined) {
    this.source = source;
    this.#decayTime = options?.decayTime ?? 10_000;
    checkPositive(this.#decayTime, "p2c: decayTime");
    this.#initialLatency = options?.initialLatency;
    if (
      this.#initialLatency !== undefined &&
      !(this.#initialLatency >= 0 && Number.isFinite(this.#initialLatency))
    ) {
      throw new RangeError(
        `p2c: initialLatency must be a finite number >= 0, got ${String(this.#initialLatency)}`,
      );
    }
    this.#failurePenalty = options?.failurePenalty ?? 1_000;
    if (!(this.#failurePenalty >= 0 && Number.isFinite(this.#failurePenalty))) {
      throw new RangeError(
        `p2c: failurePenalty must be a finite number >= 0, got ${String(this.#failurePenalty)}`,
      );
    }
    this.#now = options?.now ?? defaultClock;
    checkFunction(this.#now, "p2c: now");
    this.#rng = options?.rng ?? Math.random;
    checkFunction(this.#rng, "p2c: rng");
  }

  pick(avoid?: ReadonlySet<string>): EndpointEntry<Req, Res> | undefined {
    const entries = this.source.endpoints();
    const n = entries.length;
    this.#sync(entries);
    if (n <= 1) return entries[0];
    const nodes = this.#table.states;
    const skip = effectiveAvoid(entries, avoid);
    let a: number;
    let b: number;
    if (skip === undefined) {
      a = randomIndex(this.#rng, n);
      b = randomIndex(this.#rng, n - 1);
      if (b >= a) b++;
    } else {
      // Two different entries outside `skip`, each pair equally likely (redrawing avoided ones).
      a = randomAllowedIndex(this.#rng, entries, skip);
      b = randomAllowedIndex(this.#rng, entries, skip, [a]);
      if (b < 0) return entries[a];
    }
    const now = this.#now();
    const na = nodes[a] as Node;
    const nb = nodes[b] as Node;
    const ca = this.#cost(na, now);
    const cb = this.#cost(nb, now);
    return entries[cb < ca || (cb === ca && nb.outstanding < na.outstanding) ? b : a];
  }

  start(entry: EndpointEntry<Req, Res>): CallRecord {
    this.#sync(this.source.endpoints());
    const node = this.#table.get(entry.instance.address);
    if (node === undefined) return nopRecord;
    return new P2cCall(node, this.#now(), this as P2c<unknown, unknown>);
  }

  /** Records the end of a call on `node` that started at `startedAt` (already off its in-flight list). */
  observe(node: Node, startedAt: number, outcome: CallOutcome): void {
    if (outcome === "cancelled") return;
    const now = this.#now();
    let latency = Math.max(0, now - startedAt);
    if (outcome === "failure" && latency < this.#failurePenalty) latency = this.#failurePenalty;
    if (node.attached) {
      if (now - this.#reference > REBASE_AFTER * this.#decayTime) {
        this.#weightedSum *= Math.exp(-(now - this.#reference) / this.#decayTime);
        this.#reference = now;
      }
      if (node.measured) this.#weightedSum -= this.#term(node);
      else this.#measuredCount++;
    }
    if (!node.measured || latency >= node.estimate) {
      // Peak: a slower observation counts in full at once.
      node.estimate = latency;
      node.measured = true;
    } else {
      const w = Math.exp(-Math.max(0, now - node.updatedAt) / this.#decayTime);
      node.estimate = node.estimate * w + latency * (1 - w);
    }
    node.updatedAt = now;
    if (node.attached) this.#weightedSum += this.#term(node);
  }

  /** Follows the source's entries; when they change, recomputes the running mean over the new set. */
  #sync(entries: readonly EndpointEntry<Req, Res>[]): void {
    const before = this.#table.states;
    if (!this.#table.sync(entries)) return;
    for (const node of before) node.attached = false;
    const nodes = this.#table.states;
    let reference = Number.NEGATIVE_INFINITY;
    for (const node of nodes) {
      if (node.measured && node.updatedAt > reference) reference = node.updatedAt;
    }
    this.#reference = reference === Number.NEGATIVE_INFINITY ? 0 : reference;
    this.#weightedSum = 0;
    this.#measuredCount = 0;
    for (const node of nodes) {
      if (node.attached) continue; // an address listed twice counts once
      node.attached = true;
      if (!node.measured) continue;
      this.#weightedSum += this.#term(node);
      this.#measuredCount++;
    }
  }

  /** A measured node's share of #weightedSum. */
  #term(node: Node): number {
    return node.estimate * Math.exp((node.updatedAt - this.#reference) / this.#decayTime);
  }

  /**
   * Latency × (calls in flight + 1), where the latency of an instance with calls in flight is at least
   * the age of its oldest one (that call will report no less). An instance with calls in flight whose
   * estimate is negligible (decayed to ~0 after an idle spell, or never above 0) would cost ~0 however
   * many calls pile up on it, so it costs BUSY_UNKNOWN_COST + calls in flight instead, until one of its
   * calls reports a latency.
   */
  #cost(node: Node, now: number): number {
    const latency = this.#latency(node, now);
    const outstanding = node.outstanding;
    const oldest = node.oldest;
    if (outstanding === 0 || oldest === undefined) return latency;
    if (latency < NEGLIGIBLE_LATENCY) return BUSY_UNKNOWN_COST + outstanding;
    return Math.max(latency, now - oldest.startedAt) * (outstanding + 1);
  }

  #latency(node: Node, now: number): number {
    if (node.measured) return node.estimate * Math.exp(-Math.max(0, now - node.updatedAt) / this.#decayTime);
    if (this.#initialLatency !== undefined) return this.#initialLatency;
    if (this.#measuredCount === 0) return 0;
    const decay = Math.exp(-Math.max(0, now - this.#reference) / this.#decayTime);
    // Rounding in the running sum must not make the mean negative.
    return Math.max(0, (this.#weightedSum * decay) / this.#measuredCount);
  }
}

/**
 * A "power of two choices" balancer with peak-EWMA latency (as in Finagle, Linkerd and Kratos): per
 * call it draws two different entries at random and takes the one with the lower cost, where
 * cost = latency × (calls in flight + 1). The latency is the estimate, which jumps up at once on a
 * slower observation and eases down on faster ones; a failed call counts as at least `failurePenalty`.
 * An idle instance's estimate decays toward 0, so it is tried again after a while. Calls in flight
 * always count, also on an instance whose estimate has decayed to ~0:
 *
 * - an instance with calls in flight whose estimate is negligible (under 1 µs: decayed to ~0 after an
 *   idle spell, or no latency seen yet and none assumed) comes after every instance with a real cost,
 *   and among such instances the one with fewer calls in flight comes first (Finagle's rule for an
 *   unknown but busy instance), until one of its calls ends and gives it an estimate. So an instance
 *   that hangs after an idle spell takes one call at a time, not every call that draws it;
 * - otherwise, while an instance has calls in flight, its latency is at least the age of the oldest one
 *   (which will report no less), so a hung call makes its instance costlier the longer it hangs.
 *
 * O(1) per pick, also while some instances have no estimate yet (the mean they start at is kept
 * incrementally), and O(1) per `start`/`end`; a change of the set costs O(n) once. So it suits large
 * sets; it needs {@link balancerEndpoint} (or your own `start`/`end` calls) to learn.
 *
 * @example
 * ```ts
 * const call = balancerEndpoint(p2c(endpointer, { decayTime: 5_000 }), { service: "users" });
 * ```
 */
export function p2c<Req, Res>(source: EndpointSource<Req, Res>, options?: P2cOptions): Balancer<Req, Res> {
  return new P2c(source, options);
}
