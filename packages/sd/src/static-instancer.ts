import { type InstanceInit, type Instancer, normalizeInstances } from "./instance.js";
import { InstanceCache } from "./instance-cache.js";

/**
 * Creates an {@link Instancer} over a fixed list of instances or addresses, like go-kit's
 * `sd.FixedInstancer`: for tests, for local development, and for services whose peers are
 * configured rather than discovered. Its state never changes and never has an error.
 *
 * Throws a TypeError for an address that is not a non-empty string and a RangeError for a weight
 * that is not a finite number ≥ 0. A repeated address keeps its first entry.
 *
 * @example
 * ```ts
 * const instancer = createStaticInstancer(["127.0.0.1:8081", { address: "127.0.0.1:8082", weight: 3 }]);
 * instancer.current().instances.map((i) => i.address); // ["127.0.0.1:8081", "127.0.0.1:8082"]
 * ```
 */
export function createStaticInstancer(instances: Iterable<InstanceInit>): Instancer {
  const cache = new InstanceCache(normalizeInstances(instances, "createStaticInstancer"));
  return {
    current: () => cache.current(),
    subscribe: (listener) => cache.subscribe(listener),
    close: () => cache.close(),
  };
}
