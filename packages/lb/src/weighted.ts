import type { EndpointEntry } from "@svckit/sd";
import { type Balancer, type EndpointSource, effectiveAvoid, StateTable } from "./balancer.js";

/**
 * The largest set that `weighted` balances with smooth weighted round robin (O(n) per pick); larger
 * sets get earliest eligible virtual deadline first scheduling (O(log n) per pick).
 */
const SMOOTH_WEIGHTED_LIMIT = 16;

/**
 * The fewest instances that left whose places `weighted` remembers, so that one coming back takes up its
 * place again; it remembers as many as the set has entries when that is more.
 */
const DEPARTED_MIN = 1024;

/**
 * The most picks an instance that comes back may be ahead of or behind the others' mean. Its place is
 * measured against the mean now, which drifts while the set changes without it (leavers that never come
 * back take their places along): without a limit, one away for long could come back to a burst of
 * picks, or to none for a while. Linux's EEVDF clamps a sleeping task's lag likewise, to about two
 * slices. Churn among a fixed group of instances stays well within it.
 */
const RETURN_LIMIT = 2;

class WeightState {
  /** The instance's address (its key in the state table and among the departed). */
  readonly address: string;
  /** Whether the instance left the set (it is then among the departed, or forgotten). */
  away = false;
  /**
   * While away: how many picks it was behind its share (negative when ahead) when it left, over the
   * time it was in the set, with the balancer's `#offset` added (so not relative to the set of then).
   */
  owed = 0;
  /** Smooth weighted round robin's running value (with `weight`: the weight it was built up with). */
  current = 0;
  /** The entry's index in the current set. */
  index = 0;
  /** The pass of `sync` that last met this state (an address listed twice is scheduled once). */
  pass = -1;
  /**
   * The weight that `current` (smooth) or the schedule below (EEVDF) was made for; -1 when EEVDF left it
   * unscheduled (weight 0) or it has not been scheduled yet.
   */
  weight = -1;
  /** EEVDF: 1 / weight, the virtual time one pick is worth to this instance. */
  step = 0;
  /** EEVDF: the virtual time from which the next pick is due (eligible when ≤ the virtual now). */
  start = 0;
  /** EEVDF: start + step, by when the next pick is due. */
  deadline = 0;
  /** EEVDF: tie-break, lower first (the order in which instances were scheduled). */
  seq = 0;
  /** EEVDF: the heap key: `deadline` while eligible, `start` while pending. */
  key = 0;

  constructor(address: string) {
    this.address = address;
  }
}

function before(a: WeightState, b: WeightState): boolean {
  return a.key < b.key || (a.key === b.key && a.seq < b.seq);
}

/** A binary min-heap of states on (key, seq). */
class StateHeap {
  readonly items: WeightState[] = [];

  /** Puts `items` in heap order (O(n)). */
  heapify(): void {
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  push(state: WeightState): void {
    const items = this.items;
    let i = items.length;
    items.push(state);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as WeightState;
      if (!before(state, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = state;
  }

  pop(): WeightState {
    const items = this.items;
    const top = items[0] as WeightState;
    const last = items.pop() as WeightState;
    if (items.length > 0) {
      items[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  /** Restores heap order after the key of the state at `i` grew. */
  siftDown(i: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[i] as WeightState;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && before(items[right] as WeightState, items[child] as WeightState)) child = right;
      const c = items[child] as WeightState;
      if (!before(c, item)) break;
      items[i] = c;
      i = child;
    }
    items[i] = item;
  }
}

class Weighted<Req, Res> implements Balancer<Req, Res> {
  readonly source: EndpointSource<Req, Res>;
  readonly #table = new StateTable<Req, Res, WeightState>((entry) => this.#state(entry.instance.address));
  /**
   * The instances that left, with their places, by address, the longest gone first (at most twice as
   * many as the set has entries, and at least DEPARTED_MIN).
   */
  readonly #departed = new Map<string, WeightState>();
  /** Next entry to look at when every candidate weighs 0. */
  #turn = 0;
  /** Whether the current set is scheduled by EEVDF (more than SMOOTH_WEIGHTED_LIMIT entries). */
  #fair = false;
  /** EEVDF: positive-weight states already due (start ≤ virtual now), by deadline. */
  readonly #eligible = new StateHeap();
  /** EEVDF: positive-weight states not due yet, by start. */
  readonly #pending = new StateHeap();
  /** EEVDF: the virtual time; each pick moves it on by 1 / (total weight). */
  #virtualNow = 0;
  /** EEVDF: the total weight of the set, and its inverse. */
  #total = 0;
  #tick = 0;
  /** EEVDF: states scheduled so far, for their tie-break order. */
  #scheduled = 0;
  #pass = 0;
  /** Whether the set has been followed once (so `#fair` tells how the previous set was scheduled). */
  #synced = false;
  /** Smooth: the total weight of the set (over its entries), which the running values are scaled by. */
  #smoothTotal = 0;
  /**
   * The mean place of the instances in the set, in picks behind their shares over the time each has been
   * in the set. The places the two schemes keep (`current`, `start`) are relative to it, so that they add
   * up to 0; it moves when the set changes.
   */
  #offset = 0;

  constructor(source: EndpointSource<Req, Res>) {
    this.source = source;
  }

  pick(avoid?: ReadonlySet<string>): EndpointEntry<Req, Res> | undefined {
    const entries = this.source.endpoints();
    const n = entries.length;
    if (n === 0) return undefined;
    this.#sync(entries);
    const skip = effectiveAvoid(entries, avoid);
    const i = this.#fair ? this.#pickFair(entries, skip) : this.#pickSmooth(entries, skip);
    return i >= 0 ? entries[i] : this.#pickInTurn(entries, skip);
  }

  /** Nginx's smooth weighted round robin over the entries not in `skip`: O(n). -1 if all weigh 0. */
  #pickSmooth(entries: readonly EndpointEntry<Req, Res>[], skip: ReadonlySet<string> | undefined): number {
    const states = this.#table.states;
    let total = 0;
    let best = -1;
    let bestCurrent = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < entries.length; i++) {
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
    if (best >= 0) (states[best] as WeightState).current -= total;
    return best;
  }

  /**
   * Earliest eligible virtual deadline first (Stoica and Abdel-Wahab's EEVDF): among the instances
   * whose turn has come (start ≤ virtual now), the one whose turn ends first; its next turn starts
   * where this one ends. O(log n) amortized: each pick moves about one state between the two heaps.
   * Avoided states due first are set aside for the pick and give up the turn they miss. -1 when no
   * candidate weighs more than 0.
   */
  #pickFair(entries: readonly EndpointEntry<Req, Res>[], skip: ReadonlySet<string> | undefined): number {
    const eligible = this.#eligible;
    const pending = this.#pending;
    const now = this.#virtualNow;
    while (pending.items.length > 0 && (pending.items[0] as WeightState).start <= now) {
      const due = pending.pop();
      due.key = due.deadline;
      eligible.push(due);
    }
    let aside: WeightState[] | undefined;
    let chosen: WeightState | undefined;
    for (;;) {
      if (eligible.items.length === 0) {
        // Nobody is due (rounding, or every due instance is avoided): take the next one to come due.
        if (pending.items.length === 0) break;
        const soonest = pending.pop();
        soonest.key = soonest.deadline;
        eligible.push(soonest);
      }
      const top = eligible.items[0] as WeightState;
      if (skip === undefined || !skip.has((entries[top.index] as EndpointEntry<Req, Res>).instance.address)) {
        chosen = top;
        break;
      }
      if (aside === undefined) aside = [];
      aside.push(eligible.pop());
    }
    const next = now + this.#tick;
    if (chosen !== undefined) {
      this.#virtualNow = next;
      chosen.start = chosen.deadline;
      chosen.deadline += chosen.step;
      if (chosen.start <= next) {
        chosen.key = chosen.deadline;
        eligible.siftDown(0);
      } else {
        eligible.pop();
        chosen.key = chosen.start;
        pending.push(chosen);
      }
    }
    if (aside !== undefined) {
      for (const state of aside) {
        this.#forfeit(state);
        this.#place(state);
      }
    }
    return chosen === undefined ? -1 : chosen.index;
  }

  /** Every candidate weighs 0: take them in turn. */
  #pickInTurn(
    entries: readonly EndpointEntry<Req, Res>[],
    skip: ReadonlySet<string> | undefined,
  ): EndpointEntry<Req, Res> | undefined {
    const n = entries.length;
    for (let k = 0; k < n; k++) {
      const i = (this.#turn + k) % n;
      const entry = entries[i] as EndpointEntry<Req, Res>;
      if (skip?.has(entry.instance.address)) continue;
      this.#turn = i + 1;
      return entry;
    }
    return undefined; // unreachable: effectiveAvoid leaves at least one entry
  }

  /**
   * Follows the source's entries, in O(n) when they change. An instance's place is how many picks it is
   * behind its share (negative when ahead) over the time it has been in the set, kept relative to the
   * mean over the set (`#offset`), so the places add up to 0. An instance that stays with the same weight
   * keeps its place, and one that comes back with the same weight takes up the place it left with (see
   * {@link #remember}); as leavers take their places along and returners bring theirs back, the mean
   * moves, which moves every other place by the same number of picks. New instances (and ones whose
   * weight changed, or that were forgotten) join at the mean, neither ahead nor behind. Up to SMOOTH_WEIGHTED_LIMIT entries the place is smooth weighted round
   * robin's `current` (total weight × picks behind), above it the EEVDF schedule, rebuilt (weight ×
   * (virtual now − start) picks behind). When the set crosses the limit, each place is carried over from
   * one form to the other, so that crossing it does not restart the sequence either.
   */
  #sync(entries: readonly EndpointEntry<Req, Res>[]): void {
    const wasFair = this.#fair;
    const wasSmooth = this.#synced && !wasFair;
    const previous = this.#table.states;
    if (!this.#table.sync(entries)) return;
    if (this.#synced) this.#remember(previous, wasFair, entries.length);
    this.#synced = true;
    const states = this.#table.states;
    const eligible = this.#eligible.items;
    const pending = this.#pending.items;
    eligible.length = 0;
    pending.length = 0;
    if (entries.length <= SMOOTH_WEIGHTED_LIMIT) {
      this.#fair = false;
      this.#syncSmooth(entries, wasSmooth, wasFair);
      return;
    }
    this.#fair = true;
    const pass = ++this.#pass;
    const scheduled: WeightState[] = [];
    let total = 0;
    const now = this.#virtualNow;
    const smoothTotal = this.#smoothTotal;
    let kept = 0;
    let keptLag = 0;
    let back = 0;
    let backLag = 0;
    for (let i = 0; i < entries.length; i++) {
      const state = states[i] as WeightState;
      if (state.pass === pass) continue; // an address listed twice: its first entry stands for it
      state.pass = pass;
      state.index = i;
      const weight = (entries[i] as EndpointEntry<Req, Res>).instance.weight ?? 1;
      if (!(weight > 0)) {
        state.away = false;
        state.weight = -1;
        continue;
      }
      total += weight;
      if (state.away) {
        if (state.weight === weight) {
          // Back with the same weight: it takes up the place it left with (EEVDF keeps a task's lag
          // while it sleeps), after the instances already here in the tie-break order.
          const behind = this.#placeBack(state);
          back++;
          backLag += behind;
          state.step = 1 / weight;
          state.start = now - behind / weight;
          state.seq = ++this.#scheduled;
        } else {
          state.away = false;
          state.weight = -1; // joins below
        }
      } else if (wasFair && state.weight === weight) {
        kept++;
        keptLag += weight * (now - state.start);
      } else if (wasSmooth && state.weight === weight) {
        // From smooth weighted round robin: `current` is the old total weight × picks behind, and the
        // same picks behind are weight × (now − start) here. The tie-break order follows the set's (as
        // smooth's does), ahead of the instances joining below.
        const behind = state.current / smoothTotal;
        kept++;
        keptLag += behind;
        state.step = 1 / weight;
        state.start = now - behind / weight;
        state.seq = ++this.#scheduled;
      } else {
        state.weight = -1; // joins below
      }
      scheduled.push(state);
    }
    // The instances that left took their leads and lags along, and those that came back brought theirs,
    // so the places no longer add up to zero: the mean moves, and every place but a new instance's is
    // measured from there, the same number of picks off each (in proportion to weight, EEVDF's own
    // rule, a heavy instance would pay nearly all of it at once).
    const shift = kept + back > 0 ? (keptLag + backLag) / (kept + back) : 0;
    this.#offset += shift;
    this.#total = total;
    this.#tick = total > 0 ? 1 / total : 0;
    for (const state of scheduled) {
      if (state.weight === -1) {
        const weight = (entries[state.index] as EndpointEntry<Req, Res>).instance.weight ?? 1;
        state.weight = weight;
        state.step = 1 / weight;
        state.start = now;
        state.seq = ++this.#scheduled;
      } else {
        state.away = false;
        if (shift !== 0) state.start += shift / state.weight;
      }
      state.deadline = state.start + state.step;
      if (state.start <= now) {
        state.key = state.deadline;
        eligible.push(state);
      } else {
        state.key = state.start;
        pending.push(state);
      }
    }
    this.#eligible.heapify();
    this.#pending.heapify();
  }

  /**
   * Smooth weighted round robin's part of {@link #sync}. Its running values add up to 0 over the
   * instances (each pick adds the total weight and takes it off the picked one), and an instance's value
   * is the total weight × how many picks it is behind its share. The instances that stay with the same
   * weight keep how many picks they are behind, so a change of the set does not send the sequence back
   * to its start (which, with a set that keeps changing, would give the first entries every pick). After
   * EEVDF scheduled the set (more than SMOOTH_WEIGHTED_LIMIT entries), the picks behind are EEVDF's,
   * weight × (virtual now − start). The leavers' places go and the returners' come back, so the places
   * no longer add up to 0: the mean moves, the rest is taken off the stayers and returners in equal parts
   * (the same number of picks each, as in the EEVDF path), and the values are scaled to the new total
   * weight. New instances, and ones whose weight changed, start at 0.
   */
  #syncSmooth(entries: readonly EndpointEntry<Req, Res>[], wasSmooth: boolean, wasFair: boolean): void {
    const states = this.#table.states;
    const pass = ++this.#pass;
    // The places kept are in units of `scale` × picks behind: smooth's own values as they are (integer
    // weights stay exact), EEVDF's picks behind as such.
    const scale = wasSmooth ? this.#smoothTotal : 1;
    const now = this.#virtualNow;
    const kept: WeightState[] = [];
    const back: WeightState[] = [];
    let sum = 0;
    let total = 0;
    for (let i = 0; i < entries.length; i++) {
      const state = states[i] as WeightState;
      let weight = (entries[i] as EndpointEntry<Req, Res>).instance.weight ?? 1;
      if (!(weight > 0)) weight = 0; // as a pick reads it (NaN and negative weights too)
      total += weight; // per listing, as a pick adds it up
      if (state.pass === pass) continue; // an address listed twice: one state, counted once
      state.pass = pass;
      if (state.away) {
        state.away = false;
        if (weight > 0 && state.weight === weight) {
          back.push(state);
        } else {
          state.weight = weight;
          state.current = 0;
        }
      } else if ((wasSmooth || wasFair) && weight > 0 && state.weight === weight) {
        if (wasFair) state.current = weight * (now - state.start);
        kept.push(state);
        sum += state.current;
      } else {
        state.weight = weight;
        state.current = 0;
      }
    }
    this.#smoothTotal = total;
    if (back.length === 0) {
      // As below, in a form that keeps integer weights' values exact.
      if (kept.length === 0) return;
      const shift = sum / kept.length;
      this.#offset += shift / scale;
      if (sum === 0 && total === scale) return;
      for (const state of kept) state.current = ((state.current - shift) * total) / scale;
      return;
    }
    // The ones that came back bring the places they left with: the mean moves by an equal part of
    // their places and the stayers', in picks, and every place is measured from there.
    let behind = sum / scale;
    for (const state of back) behind += this.#placeBack(state);
    const shift = behind / (kept.length + back.length);
    this.#offset += shift;
    for (const state of kept) state.current = (state.current / scale - shift) * total;
    for (const state of back) state.current = (state.owed - this.#offset) * total; // set by #placeBack
  }

  /**
   * How many picks `state`, back in the set, is behind the others' mean (negative when ahead): what it
   * was behind its share when it left, measured against the mean now, but at most RETURN_LIMIT picks
   * either way. Sets `owed` to match.
   */
  #placeBack(state: WeightState): number {
    const behind = Math.min(Math.max(state.owed - this.#offset, -RETURN_LIMIT), RETURN_LIMIT);
    state.owed = this.#offset + behind;
    return behind;
  }

  /** The state for an instance joining the set: the one it left with if remembered, else a new one. */
  #state(address: string): WeightState {
    const state = this.#departed.get(address);
    if (state === undefined) return new WeightState(address);
    this.#departed.delete(address);
    return state;
  }

  /**
   * Remembers the places of the instances of `previous` (the set before this change) that left, so that
   * one that comes back with the same weight takes its place up again instead of starting even (as
   * EEVDF keeps a task's lag while it sleeps). Starting even every time, an instance that keeps coming
   * and going lost every tie to the instances already there (one there for a pick at a time was never
   * picked), or, above 16 instances, took every pick while there if it weighed more than they did.
   * Keeps twice as many as the set has entries, at least DEPARTED_MIN, forgetting the longest gone first.
   */
  #remember(previous: readonly WeightState[], wasFair: boolean, size: number): void {
    const departed = this.#departed;
    for (const state of previous) {
      if (state.away || this.#table.get(state.address) === state) continue; // stayed, or seen already
      state.away = true;
      if (!(state.weight > 0)) continue; // weight 0: it had no place
      const behind = wasFair
        ? state.weight * (this.#virtualNow - state.start)
        : state.current / this.#smoothTotal;
      state.owed = behind + this.#offset;
      departed.delete(state.address);
      departed.set(state.address, state);
    }
    const limit = Math.max(2 * size, DEPARTED_MIN);
    for (const address of departed.keys()) {
      if (departed.size <= limit) break;
      departed.delete(address);
    }
  }

  /**
   * An avoided instance that was due gives up the turns it missed, as if it had left the set and joined
   * again (EEVDF's leave rule): its start moves up to now, and the virtual time moves on by the lag it
   * gave up over the others' weight, so leads and lags still add up to zero. Without this it would make
   * up for the missed turns in a burst once no longer avoided.
   */
  #forfeit(state: WeightState): void {
    const now = this.#virtualNow;
    if (!(state.start < now)) return;
    const lag = state.weight * (now - state.start);
    state.start = now;
    state.deadline = now + state.step;
    const others = this.#total - state.weight;
    if (others > 0) this.#virtualNow = now + lag / others;
  }

  /** Puts `state` in the heap it belongs to now. */
  #place(state: WeightState): void {
    if (state.start <= this.#virtualNow) {
      state.key = state.deadline;
      this.#eligible.push(state);
    } else {
      state.key = state.start;
      this.#pending.push(state);
    }
  }
}

/**
 * A balancer that spreads calls in proportion to `instance.weight` (default 1), interleaving each
 * instance's turns with the others' rather than bunching them:
 *
 * - up to 16 instances, with nginx's smooth weighted round robin (weights 5, 1, 1 give a, a, b, a, c,
 *   a, a), O(n) per pick;
 * - above 16, with earliest eligible virtual deadline first scheduling (EEVDF, as in Linux's CPU
 *   scheduler; Envoy's weighted round robin is plain earliest deadline first), O(log n) per pick
 *   (amortized): each pick goes, among the instances that have not had more than their share so far, to
 *   the one whose next turn is due first. While the set stays the same, every instance's count stays
 *   within one pick of its exact share (pickCount × weight / total weight), and an instance is picked
 *   twice in a row only if it weighs more than every other instance.
 *
 * Either way a change of the set (discovery, an ejection or readmission) costs O(n) once and does not
 * restart the sequence, also when the set crosses from 16 to 17 instances or back (each instance's place
 * carries over from one scheme to the other): instances that stay with the same weight keep their lead or
 * lag (how many picks they are ahead of or behind their share over the time they have been in the set),
 * less an equal part of what leavers took along and returners brought back. An instance that leaves and
 * comes back with the same weight takes up the lead or lag it left with (the places of as many departed
 * instances as twice the set's size, at least 1,024, are remembered; the longest gone are forgotten first), so one
 * that keeps coming and going gets its share of the picks made while it is there, neither starved nor
 * favoured. New instances, ones whose weight changed and forgotten ones start even. So a set that keeps changing does not hand the
 * first instances every pick. Every sum(weights) picks from the start give each instance exactly its
 * (integer) weight while the set stays the same. An instance with weight 0 gets no calls while another
 * candidate has a positive weight; if every candidate weighs 0 they are taken in turn. Avoided
 * instances (`pick(avoid)`) are passed over while another instance is available.
 *
 * @example
 * ```ts
 * const instancer = createStaticInstancer([{ address: "a:1", weight: 5 }, { address: "b:2", weight: 1 }]);
 * const balancer = weighted(createEndpointer(instancer, factory));
 * ```
 */
export function weighted<Req, Res>(source: EndpointSource<Req, Res>): Balancer<Req, Res> {
  return new Weighted(source);
}
