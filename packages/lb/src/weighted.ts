import type { EndpointEntry } from "@svckit/sd";
import { type Balancer, type EndpointSource, effectiveAvoid, StateTable } from "./balancer.js";

interface WeightState {
  current: number;
}

/**
 * A balancer that spreads calls in proportion to `instance.weight` (default 1) with nginx's smooth
 * weighted round robin: weights 5, 1, 1 give a, a, b, a, c, a, a - the heavy instance's turns are
 * spread out rather than bunched. An instance with weight 0 gets no calls while another instance has a
 * positive weight; if every candidate weighs 0 they are taken in turn. The sequence restarts when the
 * set (or a weight) changes.
 *
 * @example
 * ```ts
 * const instancer = createStaticInstancer([{ address: "a:1", weight: 5 }, { address: "b:2", weight: 1 }]);
 * const balancer = weighted(createEndpointer(instancer, factory));
 * ```
 */
export function weighted<Req, Res>(source: EndpointSource<Req, Res>): Balancer<Req, Res> {
  const table = new StateTable<Req, Res, WeightState>(() => ({ current: 0 }));
  let turn = 0;
  return {
    source,
    pick(avoid?: ReadonlySet<string>): EndpointEntry<Req, Res> | undefined {
      const entries = source.endpoints();
      const n = entries.length;
      if (n === 0) return undefined;
      if (table.sync(entries)) for (const state of table.states) state.current = 0;
      const states = table.states;
      const skip = effectiveAvoid(entries, avoid);
      let total = 0;
      let best = -1;
      let bestCurrent = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < n; i++) {
        const entry = entries[i] as EndpointEntry<Req, Res>;
        if (skip?.has(entry.instance.address)) continue;
        const weight = entry.instance.weight ?? 1;
        if (!(weight > 0)) continue;
        const state = states[i] as WeightState;
        state.current += weight;
        total += weight;
        if (state.current > bestCurrent) {
          bestCurrent = state.current;
          best = i;
        }
      }
      if (best >= 0) {
        (states[best] as WeightState).current -= total;
        return entries[best];
      }
      // Every candidate weighs 0: take them in turn.
      for (let k = 0; k < n; k++) {
        const i = (turn + k) % n;
        const entry = entries[i] as EndpointEntry<Req, Res>;
        if (skip?.has(entry.instance.address)) continue;
        turn = i + 1;
        return entry;
      }
      return undefined; // unreachable: effectiveAvoid leaves at least one entry
    },
  };
}
