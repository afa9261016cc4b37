import type { EndpointEntry } from "@svckit/sd";
import { type Balancer, type EndpointSource, effectiveAvoid } from "./balancer.js";

/**
 * A balancer that takes the entries in turn, like go-kit's `lb.NewRoundRobin`: a, b, c, a, b, c...
 * It starts with the first entry; when the set changes it carries on from the same position.
 * Weights are ignored (see {@link weighted}).
 *
 * @example
 * ```ts
 * const balancer = roundRobin(endpointer);
 * const call = balancerEndpoint(balancer, { service: "users" });
 * ```
 */
export function roundRobin<Req, Res>(source: EndpointSource<Req, Res>): Balancer<Req, Res> {
  let next = 0;
  return {
    source,
    pick(avoid?: ReadonlySet<string>): EndpointEntry<Req, Res> | undefined {
      const entries = source.endpoints();
      const n = entries.length;
      if (n === 0) return undefined;
      const skip = effectiveAvoid(entries, avoid);
      for (let k = 0; k < n; k++) {
        const i = (next + k) % n;
        const entry = entries[i] as EndpointEntry<Req, Res>;
        if (skip?.has(entry.instance.address)) continue;
        next = i + 1;
        return entry;
      }
      return undefined; // unreachable: effectiveAvoid leaves at least one entry
    },
  };
}
