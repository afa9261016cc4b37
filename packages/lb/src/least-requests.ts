import type { EndpointEntry } from "@svckit/sd";
import {
  type Balancer,
  type CallRecord,
  checkFunction,
  type EndpointSource,
  effectiveAvoid,
  nopRecord,
  type Rng,
  StateTable,
} from "./balancer.js";

/** Options of {@link leastRequests}. */
export interface LeastRequestsOptions {
  /** How to choose among instances with equally few calls in flight; default `"random"`. */
  tieBreak?: "random" | "roundRobin";
  /** Random numbers in [0, 1) for `tieBreak: "random"`; default `Math.random`. */
  rng?: Rng;
}

class Load implements CallRecord {
  outstanding = 0;

  end(): void {
    this.outstanding--;
  }
}

/**
 * A balancer that sends each call to the instance with the fewest calls in flight (counted by
 * {@link balancerEndpoint} through `start`), choosing among ties at random or in turn. It reacts to
 * slow instances within one call and needs no clock; it looks at every entry per pick (fine for tens
 * of instances; prefer {@link p2c} for hundreds). Weights are ignored.
 *
 * @example
 * ```ts
 * const call = balancerEndpoint(leastRequests(endpointer, { tieBreak: "roundRobin" }));
 * ```
 */
export function leastRequests<Req, Res>(
  source: EndpointSource<Req, Res>,
  options?: LeastRequestsOptions,
): Balancer<Req, Res> {
  const rng = options?.rng ?? Math.random;
  checkFunction(rng, "leastRequests: rng");
  const tieBreak = options?.tieBreak ?? "random";
  if (tieBreak !== "random" && tieBreak !== "roundRobin") {
    throw new TypeError(
      `leastRequests: tieBreak must be "random" or "roundRobin", got ${JSON.stringify(tieBreak)}`,
    );
  }
  const table = new StateTable<Req, Res, Load>(() => new Load());
  let cursor = 0;
  return {
    source,
    pick(avoid?: ReadonlySet<string>): EndpointEntry<Req, Res> | undefined {
      const entries = source.endpoints();
      const n = entries.length;
      if (n === 0) return undefined;
      table.sync(entries);
      const states = table.states;
      const skip = effectiveAvoid(entries, avoid);
      let chosen = -1;
      let least = Number.POSITIVE_INFINITY;
      if (tieBreak === "roundRobin") {
        // The first of the least loaded, looking from just after the previous pick.
        for (let k = 0; k < n; k++) {
          const i = (cursor + k) % n;
          if (skip?.has((entries[i] as EndpointEntry<Req, Res>).instance.address)) continue;
          const load = (states[i] as Load).outstanding;
          if (load < least) {
            least = load;
            chosen = i;
          }
        }
        cursor = chosen + 1;
      } else {
        // One of the least loaded, each with the same chance (reservoir sampling over the ties).
        let ties = 0;
        for (let i = 0; i < n; i++) {
          if (skip?.has((entries[i] as EndpointEntry<Req, Res>).instance.address)) continue;
          const load = (states[i] as Load).outstanding;
          if (load < least) {
            least = load;
            chosen = i;
            ties = 1;
          } else if (load === least) {
            ties++;
            if (rng() * ties < 1) chosen = i;
          }
        }
      }
      return entries[chosen];
    },
    start(entry: EndpointEntry<Req, Res>): CallRecord {
      table.sync(source.endpoints());
      const load = table.get(entry.instance.address);
      if (load === undefined) return nopRecord;
      load.outstanding++;
      return load;
    },
  };
}
