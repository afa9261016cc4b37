import type { EndpointEntry, Instance } from "@svckit/sd";
import {
  type CallOutcome,
  type Clock,
  checkFunction,
  checkPositive,
  defaultClock,
  type EndpointSource,
} from "./balancer.js";

/** Options of {@link createOutlierDetector} (and `outlierDetection` of {@link createBalancedEndpoint}). */
export interface OutlierDetectionOptions {
  /** Server failures in a row that eject an instance; default 5 (Envoy's `consecutive_5xx`). */
  consecutiveFailures?: number;
  /** How long the first ejection lasts, in ms; default 30 000. The n-th lasts `base × 2^(n-1)`. */
  baseEjectionTime?: number;
  /** The longest an ejection lasts, in ms; default 300 000. */
  maxEjectionTime?: number;
  /**
   * The most instances ejected at once, as a percentage of the set (rounded down); default 100.
   * With 10 and a set of 5, no instance is ever ejected.
   */
  maxEjectionPercent?: number;
  /**
   * Whether the last instance still admitted may be ejected too; default false: with one instance
   * left, calls keep going to it (its failures reach the caller) rather than failing at once with
   * `UNAVAILABLE`.
   */
  ejectLast?: boolean;
  /**
   * Told when an instance is ejected, with the ejection's length in ms (e.g. to log it or count it).
   * What it throws is ignored: the ejection stands and the call that caused it ends as it would have.
   */
  onEject?: (instance: Instance, duration: number) => void;
  /**
   * Told when an ejected instance is admitted again. What it throws is ignored: the instance is back
   * and the call that noticed goes on.
   */
  onReadmit?: (instance: Instance) => void;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: Clock;
}

/**
 * A view of an {@link EndpointSource} without the instances that failed too often (passive health
 * checking), made by {@link createOutlierDetector}. Put it between an endpointer and a balancer and
 * report each call's outcome to it.
 */
export interface OutlierDetector<Req = unknown, Res = unknown> extends EndpointSource<Req, Res> {
  /** The source's entries that are not ejected now (the same array object until that changes). */
  endpoints(): readonly EndpointEntry<Req, Res>[];
  /** The source's error. */
  readonly error: Error | undefined;
  /** Reports how a call on `entry` ended. */
  record(entry: EndpointEntry<Req, Res>, outcome: CallOutcome): void;
  /** The instances ejected now. */
  ejected(): readonly Instance[];
}

class Host {
  consecutive = 0;
  ejections = 0;
  ejected = false;
  until = 0;
  readmittedAt: number | undefined = undefined;

  constructor(public instance: Instance) {}
}

class Detector<Req, Res> implements OutlierDetector<Req, Res> {
  readonly #source: EndpointSource<Req, Res>;
  readonly #threshold: number;
  readonly #base: number;
  readonly #max: number;
  readonly #maxPercent: number;
  readonly #ejectLast: boolean;
  readonly #onEject: OutlierDetectionOptions["onEject"];
  readonly #onReadmit: OutlierDetectionOptions["onReadmit"];
  readonly #now: Clock;
  #all: readonly EndpointEntry<Req, Res>[] | undefined = undefined;
  #admitted: readonly EndpointEntry<Req, Res>[] = [];
  #hosts = new Map<string, Host>();
  #ejectedCount = 0;
  #nextReadmit = Number.POSITIVE_INFINITY;

  constructor(source: EndpointSource<Req, Res>, options: OutlierDetectionOptions | undefined) {
    this.#source = source;
    this.#threshold = options?.consecutiveFailures ?? 5;
    if (!(Number.isInteger(this.#threshold) && this.#threshold >= 1)) {
      throw new RangeError(
        `outlier detection: consecutiveFailures must be an integer >= 1, got ${String(this.#threshold)}`,
      );
    }
    this.#base = options?.baseEjectionTime ?? 30_000;
    checkPositive(this.#base, "outlier detection: baseEjectionTime");
    this.#max = options?.maxEjectionTime ?? Math.max(300_000, this.#base);
    checkPositive(this.#max, "outlier detection: maxEjectionTime");
    if (this.#max < this.#base) {
      throw new RangeError(
        `outlier detection: maxEjectionTime (${this.#max}) must not be less than baseEjectionTime (${this.#base})`,
      );
    }
    this.#maxPercent = options?.maxEjectionPercent ?? 100;
    if (!(this.#maxPercent >= 0 && this.#maxPercent <= 100)) {
      throw new RangeError(
        `outlier detection: maxEjectionPercent must be between 0 and 100, got ${String(this.#maxPercent)}`,
      );
    }
    this.#ejectLast = options?.ejectLast ?? false;
    this.#onEject = options?.onEject;
    this.#onReadmit = options?.onReadmit;
    this.#now = options?.now ?? defaultClock;
    checkFunction(this.#now, "outlier detection: now");
  }

  get error(): Error | undefined {
    return this.#source.error;
  }

  endpoints(): readonly EndpointEntry<Req, Res>[] {
    this.#refresh();
    return this.#admitted;
  }

  ejected(): readonly Instance[] {
    this.#refresh();
    const out: Instance[] = [];
    for (const host of this.#hosts.values()) if (host.ejected) out.push(host.instance);
    return out;
  }

  record(entry: EndpointEntry<Req, Res>, outcome: CallOutcome): void {
    this.#refresh();
    const host = this.#hosts.get(entry.instance.address);
    // Calls that were in flight when their instance was ejected (or removed) say nothing new.
    if (host === undefined || host.ejected || outcome === "cancelled") return;
    if (outcome === "success") {
      host.consecutive = 0;
      return;
    }
    host.consecutive++;
    if (host.consecutive >= this.#threshold && this.#mayEject()) this.#eject(host);
  }

  #mayEject(): boolean {
    const total = this.#hosts.size;
    if (this.#ejectedCount + 1 > Math.floor((total * this.#maxPercent) / 100)) return false;
    return this.#ejectLast || total - this.#ejectedCount > 1;
  }

  #eject(host: Host): void {
    const now = this.#now();
    if (host.readmittedAt !== undefined) {
      // Each base ejection time spent admitted since the last ejection earns one step back.
      host.ejections = Math.max(0, host.ejections - Math.floor((now - host.readmittedAt) / this.#base));
    }
    host.ejections++;
    const duration = Math.min(this.#base * 2 ** (host.ejections - 1), this.#max);
    host.ejected = true;
    host.until = now + duration;
    host.consecutive = 0;
    this.#rebuild();
    const onEject = this.#onEject;
    if (onEject !== undefined) {
      try {
        onEject(host.instance, duration);
      } catch {
        // An observer must not change the outcome of the call that ejected the instance.
      }
    }
  }

  /** Follows the source and readmits instances whose ejection is over. */
  #refresh(): void {
    const all = this.#source.endpoints();
    let dirty = false;
    let readmitted: Instance[] | undefined;
    if (all !== this.#all) {
      const hosts = new Map<string, Host>();
      for (const entry of all) {
        const address = entry.instance.address;
        const host = this.#hosts.get(address) ?? hosts.get(address) ?? new Host(entry.instance);
        host.instance = entry.instance;
        hosts.set(address, host);
      }
      this.#all = all;
      this.#hosts = hosts;
      dirty = true;
      readmitted = this.#keepLimits();
    }
    if (this.#nextReadmit !== Number.POSITIVE_INFINITY) {
      const now = this.#now();
      if (now >= this.#nextReadmit) {
        for (const host of this.#hosts.values()) {
          if (!host.ejected || host.until > now) continue;
          host.ejected = false;
          host.readmittedAt = host.until;
          host.consecutive = 0;
          readmitted ??= [];
          readmitted.push(host.instance);
        }
        dirty = true;
      }
    }
    if (dirty) this.#rebuild();
    const onReadmit = this.#onReadmit;
    if (readmitted !== undefined && onReadmit !== undefined) {
      for (const instance of readmitted) {
        try {
          onReadmit(instance);
        } catch {
          // An observer must not fail the pick that readmitted the instance, nor skip the others.
        }
      }
    }
  }

  /**
   * After the set of instances changed (discovery dropped some): readmits the ejected instances whose
   * ejection ends soonest until the limits hold again — at most `maxEjectionPercent` ejected, and one
   * admitted unless `ejectLast` — so that losing the healthy instances never leaves nothing to call
   * (as Envoy's panic mode keeps traffic flowing). Returns what it readmitted.
   */
  #keepLimits(): Instance[] | undefined {
    const total = this.#hosts.size;
    const ejected: Host[] = [];
    for (const host of this.#hosts.values()) if (host.ejected) ejected.push(host);
    const allowed = Math.min(
      Math.floor((total * this.#maxPercent) / 100),
      this.#ejectLast ? total : total - 1,
    );
    if (ejected.length <= allowed) return undefined;
    ejected.sort((a, b) => a.until - b.until);
    const now = this.#now();
    const readmitted: Instance[] = [];
    for (const host of ejected.slice(0, ejected.length - Math.max(0, allowed))) {
      host.ejected = false;
      host.readmittedAt = now;
      host.consecutive = 0;
      readmitted.push(host.instance);
    }
    return readmitted;
  }

  /** Recomputes the admitted entries, the ejected count and the next readmission time. */
  #rebuild(): void {
    const all = this.#all ?? [];
    let ejected = 0;
    let next = Number.POSITIVE_INFINITY;
    for (const host of this.#hosts.values()) {
      if (!host.ejected) continue;
      ejected++;
      if (host.until < next) next = host.until;
    }
    this.#ejectedCount = ejected;
    this.#nextReadmit = next;
    this.#admitted =
      ejected === 0
        ? all
        : Object.freeze(all.filter((entry) => !(this.#hosts.get(entry.instance.address)?.ejected ?? false)));
  }
}

/**
 * Wraps an {@link EndpointSource} (usually an endpointer) so that instances failing
 * `consecutiveFailures` calls in a row are left out for a while: passive health checking, as Envoy's
 * outlier detection. Only server failures count (see {@link CallOutcome}); an answer with a client
 * error resets the count, a cancelled call is ignored. The n-th ejection of an instance lasts
 * `baseEjectionTime × 2^(n-1)`, at most `maxEjectionTime`; n steps back by one for each
 * `baseEjectionTime` the instance then stays admitted. Readmission happens on the next look at the
 * entries after the ejection ends (no timers). By default the last admitted instance is never ejected.
 *
 * {@link createBalancedEndpoint} sets this up for you; use it directly with {@link balancerEndpoint}.
 *
 * @example
 * ```ts
 * const healthy = createOutlierDetector(endpointer, { consecutiveFailures: 3, baseEjectionTime: 10_000 });
 * const call = balancerEndpoint(roundRobin(healthy), { outlierDetector: healthy });
 * ```
 */
export function createOutlierDetector<Req, Res>(
  source: EndpointSource<Req, Res>,
  options?: OutlierDetectionOptions,
): OutlierDetector<Req, Res> {
  return new Detector(source, options);
}
