import type { EndpointEntry } from "@svckit/sd";
import {
  type Balancer,
  type CallRecord,
  checkFunction,
  type EndpointSource,
  effectiveAvoid,
  nopRecord,
  type Rng,
  randomAllowedIndex,
  StateTable,
} from "./balancer.js";
import { MinTree } from "./min-tree.js";

/** Options of {@link leastRequests}. */
export interface LeastRequestsOptions {
  /**
   * How many instances to compare per pick. Default: all of them, so the pick is an instance with the
   * fewest calls in flight (exact). A number k ≥ 2 compares k different instances drawn at random and
   * takes the least loaded of those (Envoy's `LEAST_REQUEST` with `choice_count`; 2 is its default):
   * no tree to keep up (O(1) per call's start and end), loads nearly as even in practice (the power of
   * two choices), though the least loaded instance of a large set is then found only by chance.
   */
  choices?: number;
  /**
   * How to choose among instances with equally few calls in flight; default `"random"`.
   * `"roundRobin"` needs the exact pick (no `choices`).
   */
  tieBreak?: "random" | "roundRobin";
  /** Random numbers in [0, 1) for ties and for drawing `choices`; default `Math.random`. */
  rng?: Rng;
}

class Load implements CallRecord {
  outstanding = 0;
  /** The leaf of this instance in the owner's tree; -1 when it has none (gone from the set, sampling). */
  leaf = -1;

  constructor(readonly owner: LeastRequests<unknown, unknown>) {}

  end(): void {
    this.outstanding--;
    if (this.leaf >= 0) this.owner.tree.set(this.leaf, this.outstanding);
  }
}

const emptyTree = new MinTree([]);

class LeastRequests<Req, Res> implements Balancer<Req, Res> {
  readonly source: EndpointSource<Req, Res>;
  /** Calls in flight per entry of the current set, in entry order (exact mode only). */
  tree: MinTree = emptyTree;
  readonly #table = new StateTable<Req, Res, Load>(() => new Load(this as LeastRequests<unknown, unknown>));
  readonly #rng: Rng;
  readonly #roundRobin: boolean;
  readonly #choices: number;
  /** Where the next in-turn search starts. */
  #cursor = 0;
  /** Scratch for the indices drawn in one sampling pick. */
  readonly #drawn: number[] = [];

  constructor(source: EndpointSource<Req, Res>, options: LeastRequestsOptions | undefined) {
    this.source = source;
    this.#rng = options?.rng ?? Math.random;
    checkFunction(this.#rng, "leastRequests: rng");
    const tieBreak = options?.tieBreak ?? "random";
    if (tieBreak !== "random" && tieBreak !== "roundRobin") {
      throw new TypeError(
        `leastRequests: tieBreak must be "random" or "roundRobin", got ${JSON.stringify(tieBreak)}`,
      );
    }
    this.#roundRobin = tieBreak === "roundRobin";
    const choices = options?.choices;
    if (choices !== undefined && !(Number.isInteger(choices) && choices >= 2)) {
      throw new RangeError(`leastRequests: choices must be an integer >= 2, got ${String(choices)}`);
    }
    if (choices !== undefined && this.#roundRobin) {
      throw new TypeError('leastRequests: tieBreak "roundRobin" needs the exact pick; leave out choices');
    }
    this.#choices = choices ?? 0;
  }

  pick(avoid?: ReadonlySet<string>): EndpointEntry<Req, Res> | undefined {
    const entries = this.source.endpoints();
    const n = entries.length;
    if (n === 0) return undefined;
    this.#sync(entries);
    const skip = effectiveAvoid(entries, avoid);
    if (this.#choices > 0) return entries[this.#sample(entries, skip)];
    return entries[this.#exact(n, skip)];
  }

  start(entry: EndpointEntry<Req, Res>): CallRecord {
    this.#sync(this.source.endpoints());
    const load = this.#table.get(entry.instance.address);
    if (load === undefined) return nopRecord;
    load.outstanding++;
    if (load.leaf >= 0) this.tree.set(load.leaf, load.outstanding);
    return load;
  }

  /**
   * An instance with the fewest calls in flight among those not in `skip`, from the tree: O(log n),
   * plus O(log n) per avoided instance, which is hidden (+Infinity) for the length of the pick.
   */
  #exact(n: number, skip: ReadonlySet<string> | undefined): number {
    const tree = this.tree;
    let hidden: Load[] | undefined;
    if (skip !== undefined) {
      for (const address of skip) {
        const load = this.#table.get(address);
        if (load === undefined || load.leaf < 0) continue;
        tree.set(load.leaf, Number.POSITIVE_INFINITY);
        if (hidden === undefined) hidden = [];
        hidden.push(load);
      }
    }
    let chosen: number;
    if (this.#roundRobin) {
      // The first of the least loaded, looking from just after the previous pick.
      chosen = tree.firstMinFrom(this.#cursor % n);
      if (chosen < 0) chosen = tree.firstMinFrom(0);
      this.#cursor = chosen + 1;
    } else {
      // One of the least loaded, each with the same chance.
      const ties = tree.minCount;
      chosen = tree.nthMin(Math.min(Math.max(Math.floor(this.#rng() * ties), 0), ties - 1));
    }
    if (hidden !== undefined) for (const load of hidden) tree.set(load.leaf, load.outstanding);
    return chosen;
  }

  /** The least loaded of `choices` different entries drawn at random (the first drawn on a tie): O(choices). */
  #sample(entries: readonly EndpointEntry<Req, Res>[], skip: ReadonlySet<string> | undefined): number {
    const states = this.#table.states;
    const drawn = this.#drawn;
    drawn.length = 0;
    let chosen = -1;
    let least = Number.POSITIVE_INFINITY;
    for (let c = 0; c < this.#choices; c++) {
      const i = randomAllowedIndex(this.#rng, entries, skip, drawn);
      if (i < 0) break; // fewer candidates than choices: all of them were compared
      drawn.push(i);
      const load = (states[i] as Load).outstanding;
      if (load < least) {
        least = load;
        chosen = i;
      }
    }
    return chosen;
  }

  /**
   * Follows the source's entries. An address that stays keeps its count; when the set changes the
   * tree is rebuilt over the new entries (O(n)) and loads of removed instances lose their leaf, so
   * their calls still running end without touching it.
   */
  #sync(entries: readonly EndpointEntry<Req, Res>[]): void {
    const before = this.#table.states;
    if (!this.#table.sync(entries)) return;
    for (const load of before) load.leaf = -1;
    if (this.#choices > 0) return;
    const states = this.#table.states;
    const values = new Float64Array(states.length);
    for (let i = 0; i < states.length; i++) {
      const load = states[i] as Load;
      if (load.leaf >= 0) {
        values[i] = Number.POSITIVE_INFINITY; // an address listed twice: its first entry stands for it
        continue;
      }
      load.leaf = i;
      values[i] = load.outstanding;
    }
    this.tree = new MinTree(values);
  }
}

/**
 * A balancer that sends each call to an instance with the fewest calls in flight (counted by
 * {@link balancerEndpoint} through `start`), choosing among ties at random or in turn. It reacts to
 * slow instances within one call and needs no clock. Weights are ignored.
 *
 * By default the pick is exact and costs O(log n): the calls in flight live in a tree that `start` and
 * `end` update in O(log n); a change of the set rebuilds it in O(n). With `choices: k` it compares k
 * random instances instead (Envoy's way, O(k) per pick and O(1) per `start`/`end`), and the
 * least-loaded instance of the whole set is no longer always found.
 *
 * @example
 * ```ts
 * const call = balancerEndpoint(leastRequests(endpointer, { tieBreak: "roundRobin" }));
 * const envoyLike = balancerEndpoint(leastRequests(endpointer, { choices: 2 }));
 * ```
 */
export function leastRequests<Req, Res>(
  source: EndpointSource<Req, Res>,
  options?: LeastRequestsOptions,
): Balancer<Req, Res> {
  return new LeastRequests(source, options);
}
