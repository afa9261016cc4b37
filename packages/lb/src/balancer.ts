import type { EndpointEntry, Instance } from "@svckit/sd";

/**
 * Where a balancer gets its entries: an `Endpointer` from `@svckit/sd`, an outlier detector, or
 * anything with an `endpoints()` method. `endpoints()` should return the same array object until the
 * set changes (an endpointer does); balancers rebuild their per-instance state only when it changes.
 */
export interface EndpointSource<Req = unknown, Res = unknown> {
  /** The entries to pick from now. */
  endpoints(): readonly EndpointEntry<Req, Res>[];
  /** Why entries may be missing (an endpointer's discovery or factory error), if known. */
  readonly error?: Error | undefined;
}

/**
 * How a call ended, for the balancers and outlier detection:
 * - `"success"`: the instance answered, including with a client error such as `NOT_FOUND` or
 *   `INVALID_ARGUMENT` (the instance is healthy, the request was not);
 * - `"failure"`: a server failure (by default `UNAVAILABLE`, `INTERNAL`, `UNKNOWN`, `DEADLINE_EXCEEDED`
 *   and anything that is not a `ServiceError`);
 * - `"cancelled"`: the caller gave up (`CANCELLED`); says nothing about the instance.
 */
export type CallOutcome = "success" | "failure" | "cancelled";

/** A call in flight on a picked entry, from {@link Balancer.start}. Call `end` exactly once. */
export interface CallRecord {
  /** The call is over. */
  end(outcome: CallOutcome): void;
}

/**
 * Picks one entry of an {@link EndpointSource} per call. Load-aware balancers also implement `start`
 * so the caller can tell them when calls start and end; {@link balancerEndpoint} does.
 *
 * @example
 * ```ts
 * const balancer = roundRobin(endpointer);
 * const entry = balancer.pick(); // undefined when there are no endpoints
 * ```
 */
export interface Balancer<Req = unknown, Res = unknown> {
  /** What the balancer picks from; {@link balancerEndpoint} reads its `error` for the UNAVAILABLE message. */
  readonly source?: EndpointSource<Req, Res>;
  /**
   * Picks an entry, or `undefined` when the source has none. Entries whose address is in `avoid` are
   * skipped as long as another entry is available (a retry asking for a different instance).
   */
  pick(avoid?: ReadonlySet<string>): EndpointEntry<Req, Res> | undefined;
  /** A call on `entry` (just returned by `pick`) starts; end the returned record when it is over. */
  start?(entry: EndpointEntry<Req, Res>): CallRecord;
}

/** A source of random numbers in [0, 1), like `Math.random`. Inject a seeded one for tests. */
export type Rng = () => number;

/** A monotonic clock in milliseconds, like `performance.now`. Inject a fake one for tests. */
export type Clock = () => number;

/** The default clock: `performance.now()`. */
export const defaultClock: Clock = () => performance.now();

/** The avoid set to honour for `entries`: `undefined` when empty or when it would leave nothing to pick. */
export function effectiveAvoid(
  entries: readonly { readonly instance: Instance }[],
  avoid: ReadonlySet<string> | undefined,
): ReadonlySet<string> | undefined {
  if (avoid === undefined || avoid.size === 0) return undefined;
  for (const entry of entries) {
    if (!avoid.has(entry.instance.address)) return avoid;
  }
  return undefined;
}

/** A random index in [0, n) from `rng`, safe against an rng that returns 1. */
export function randomIndex(rng: Rng, n: number): number {
  return Math.min(Math.max(Math.floor(rng() * n), 0), n - 1);
}

/** How many random draws {@link randomAllowedIndex} tries before it lists the allowed entries. */
const DRAWS = 8;

/**
 * A uniformly random index in [0, entries.length) whose entry's address is not in `skip` and that is
 * not in `taken`, or -1 when there is none. It draws at random and redraws a rejected index (O(1)
 * expected while `skip` and `taken` cover a small part of the entries); after {@link DRAWS} rejections
 * it lists the allowed indices and draws among them, O(n) but only when most entries are excluded (so
 * `skip` is about as large as the set). Each allowed index has the same chance either way.
 */
export function randomAllowedIndex(
  rng: Rng,
  entries: readonly { readonly instance: Instance }[],
  skip: ReadonlySet<string> | undefined,
  taken?: readonly number[],
): number {
  const n = entries.length;
  for (let d = 0; d < DRAWS; d++) {
    const i = randomIndex(rng, n);
    if (taken?.includes(i)) continue;
    if (skip?.has((entries[i] as { readonly instance: Instance }).instance.address)) continue;
    return i;
  }
  const allowed: number[] = [];
  for (let i = 0; i < n; i++) {
    if (taken?.includes(i)) continue;
    if (skip?.has((entries[i] as { readonly instance: Instance }).instance.address)) continue;
    allowed.push(i);
  }
  return allowed.length === 0 ? -1 : (allowed[randomIndex(rng, allowed.length)] as number);
}

/**
 * Per-instance state of a balancer, kept aligned with the source's entries and rebuilt only when the
 * entries array changes. An address that stays keeps its state (its outstanding calls); one that
 * goes away loses it, so calls still running on it end on a state nobody reads any more.
 */
export class StateTable<Req, Res, S> {
  #entries: readonly EndpointEntry<Req, Res>[] | undefined = undefined;
  #byAddress = new Map<string, S>();
  states: S[] = [];
  readonly #make: (entry: EndpointEntry<Req, Res>) => S;

  constructor(make: (entry: EndpointEntry<Req, Res>) => S) {
    this.#make = make;
  }

  /** Follows `entries`; returns whether they changed since the last call. */
  sync(entries: readonly EndpointEntry<Req, Res>[]): boolean {
    if (entries === this.#entries) return false;
    const byAddress = new Map<string, S>();
    const states: S[] = [];
    for (const entry of entries) {
      const address = entry.instance.address;
      const state = this.#byAddress.get(address) ?? byAddress.get(address) ?? this.#make(entry);
      byAddress.set(address, state);
      states.push(state);
    }
    this.#entries = entries;
    this.#byAddress = byAddress;
    this.states = states;
    return true;
  }

  get(address: string): S | undefined {
    return this.#byAddress.get(address);
  }
}

/** A record for calls on entries the balancer no longer knows. */
export const nopRecord: CallRecord = Object.freeze({ end(): void {} });

export function checkFunction(value: unknown, where: string): void {
  if (typeof value !== "function") throw new TypeError(`${where} must be a function, got ${typeof value}`);
}

export function checkPositive(value: number, where: string): void {
  if (!(typeof value === "number" && value > 0 && Number.isFinite(value))) {
    throw new RangeError(`${where} must be a finite number > 0, got ${String(value)}`);
  }
}
