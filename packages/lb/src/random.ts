import type { EndpointEntry } from "@svckit/sd";
import {
  type Balancer,
  checkFunction,
  type EndpointSource,
  effectiveAvoid,
  type Rng,
  randomAllowedIndex,
  randomIndex,
} from "./balancer.js";

/** Options of {@link random}. */
export interface RandomOptions {
  /** Random numbers in [0, 1); default `Math.random`. Inject a seeded one for reproducible tests. */
  rng?: Rng;
}

/**
 * A balancer that picks an entry uniformly at random, like go-kit's `lb.NewRandom`. Weights are
 * ignored (see {@link weighted}). O(1) per pick; with an avoid set, avoided entries are redrawn (O(1)
 * expected while they are a small part of the set).
 *
 * @example
 * ```ts
 * const balancer = random(endpointer);
 * ```
 */
export function random<Req, Res>(
  source: EndpointSource<Req, Res>,
  options?: RandomOptions,
): Balancer<Req, Res> {
  const rng = options?.rng ?? Math.random;
  checkFunction(rng, "random: rng");
  return {
    source,
    pick(avoid?: ReadonlySet<string>): EndpointEntry<Req, Res> | undefined {
      const entries = source.endpoints();
      const n = entries.length;
      if (n === 0) return undefined;
      const skip = effectiveAvoid(entries, avoid);
      if (skip === undefined) return entries[randomIndex(rng, n)];
      return entries[randomAllowedIndex(rng, entries, skip)];
    },
  };
}
