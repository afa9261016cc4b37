// The balancers over hundreds and thousands of instances: the paths that replace O(n) scans per pick
// (weighted's EEVDF schedule above 16 instances, leastRequests' tree and `choices`, p2c's running mean,
// rejection sampling under `avoid`), checked for the same distributions and for set changes during use.
import { leastRequests, p2c, random, weighted } from "@svckit/lb";
import { createEndpointer, createInstanceCache, type EndpointEntry } from "@svckit/sd";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cluster, fakeClock, seeded, sequence, worstLag } from "./test-helpers.js";

type Entry = EndpointEntry<string, string>;
type Picker = { pick(avoid?: ReadonlySet<string>): Entry | undefined };

const address = (entry: Entry | undefined): string => {
  if (entry === undefined) throw new Error("pick() returned nothing");
  return entry.instance.address;
};

/** Instances `${prefix}0`, `${prefix}1`, ... with the given weights. */
function instances(weights: readonly number[], prefix = "i"): { address: string; weight: number }[] {
  return weights.map((weight, i) => ({ address: `${prefix}${i}`, weight }));
}

function countPicks(balancer: Picker, n: number, avoid?: ReadonlySet<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const a = address(balancer.pick(avoid));
    counts.set(a, (counts.get(a) ?? 0) + 1);
  }
  return counts;
}

/**
 * Pearson's chi-square statistic of `counts` against equal shares over `keys`, checked against
 * dof + 5·sqrt(2·dof) (the normal approximation's 5 sigma); the seeded rngs make each run the same.
 */
function expectEven(counts: Map<string, number>, keys: readonly string[], total: number): void {
  const expected = total / keys.length;
  let chi = 0;
  for (const key of keys) chi += ((counts.get(key) ?? 0) - expected) ** 2 / expected;
  const dof = keys.length - 1;
  expect(chi).toBeLessThan(dof + 5 * Math.sqrt(2 * dof));
  for (const key of counts.keys()) expect(keys).toContain(key);
}

/** Runs `picks` picks and returns the largest |count - picks so far × share| seen, and the repeats. */
function followShares(
  balancer: Picker,
  weights: ReadonlyMap<string, number>,
  picks: number,
): { lag: number; repeats: string[] } {
  const total = [...weights.values()].reduce((a, b) => a + b, 0);
  const counts = new Map<string, number>();
  const repeats: string[] = [];
  let previous: string | undefined;
  let lag = 0;
  for (let k = 1; k <= picks; k++) {
    const a = address(balancer.pick());
    expect(weights.has(a)).toBe(true);
    if (a === previous) repeats.push(a);
    previous = a;
    counts.set(a, (counts.get(a) ?? 0) + 1);
    for (const [key, w] of weights) lag = Math.max(lag, Math.abs((counts.get(key) ?? 0) - (k * w) / total));
  }
  return { lag, repeats };
}

describe("weighted above 16 instances (EEVDF)", () => {
  const mixed = Array.from({ length: 1_000 }, (_, i) => 1 + (i % 5)); // 1..5, sum 3 000

  it("gives each of 1,000 instances exactly its weight every sum(weights) picks, never twice in a row", () => {
    const { endpointer } = cluster(instances(mixed));
    const balancer = weighted(endpointer);
    let previous: string | undefined;
    for (let round = 0; round < 3; round++) {
      const counts = new Map<string, number>();
      for (let k = 0; k < 3_000; k++) {
        const a = address(balancer.pick());
        expect(a).not.toBe(previous);
        previous = a;
        counts.set(a, (counts.get(a) ?? 0) + 1);
      }
      expect(counts.size).toBe(1_000);
      for (let i = 0; i < 1_000; i++) expect(counts.get(`i${i}`)).toBe(mixed[i]);
    }
  });

  it("keeps every instance within one pick of its share at all times, fractional weights too", () => {
    const weights = Array.from({ length: 300 }, (_, i) => 0.25 + ((i * 7) % 13) / 4);
    const { endpointer } = cluster(instances(weights));
    const shares = new Map(weights.map((w, i) => [`i${i}`, w]));
    const { lag } = followShares(weighted(endpointer), shares, 2_000);
    expect(lag).toBeLessThan(1);
  });

  it("spreads a heavy instance among light ones: weight 99 among 100 of weight 1", () => {
    const weights = [...Array.from({ length: 100 }, () => 1), 99];
    const { endpointer } = cluster(instances(weights));
    const shares = new Map(weights.map((w, i) => [`i${i}`, w]));
    const { lag, repeats } = followShares(weighted(endpointer), shares, 3 * 199);
    expect(lag).toBeLessThan(1);
    expect(repeats).toEqual([]);
  });

  it("picks an instance twice in a row only when it outweighs every other, within one pick of its share (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 17, maxLength: 80 }),
        fc.option(fc.integer({ min: 1, max: 600 }), { nil: undefined }),
        (light, heavy) => {
          const weights = heavy === undefined ? light : [...light, heavy];
          const instancer = createInstanceCache(instances(weights));
          const endpointer = createEndpointer(instancer, () => ({ endpoint: async () => "" }));
          const shares = new Map(weights.map((w, i) => [`i${i}`, w]));
          const total = weights.reduce((a, b) => a + b, 0);
          const { lag, repeats } = followShares(weighted(endpointer), shares, Math.min(2 * total, 3_000));
          expect(lag).toBeLessThan(1);
          const heaviest = Math.max(...weights);
          const unique = weights.filter((w) => w === heaviest).length === 1;
          for (const a of repeats) {
            expect(unique).toBe(true);
            expect(shares.get(a)).toBe(heaviest);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("follows instances added, removed and reweighted during use", () => {
    const { cache, endpointer } = cluster(instances(mixed.slice(0, 200)));
    const balancer = weighted(endpointer);
    for (let i = 0; i < 250; i++) balancer.pick();
    // Drop every tenth, reweight every seventh, add 50 new ones.
    const next = instances(mixed.slice(0, 200))
      .filter((_, i) => i % 10 !== 0)
      .map((inst, i) => (i % 7 === 0 ? { ...inst, weight: 9 } : inst))
      .concat(
        instances(
          Array.from({ length: 50 }, () => 2),
          "new",
        ),
      );
    cache.update(next);
    const shares = new Map(next.map((inst) => [inst.address, inst.weight]));
    const { lag } = followShares(balancer, shares, 1_500);
    // Instances that stayed carry over a lead or lag of less than one pick; new ones start even.
    expect(lag).toBeLessThan(2);
    cache.update(next.slice(0, 20)); // down to 20: still above 16
    const few = new Map(next.slice(0, 20).map((inst) => [inst.address, inst.weight]));
    expect(followShares(balancer, few, 500).lag).toBeLessThan(2);
  });

  it("neither starves nor rushes anyone when the instances that were ahead leave", () => {
    // 100 of weight 1 and one of 99: after 150 picks, the 40 light ones picked last are dropped. What
    // they were ahead of their share is spread evenly over those left, not by weight: the heavy one
    // would otherwise owe most of it and wait for several picks.
    const weights = [...Array.from({ length: 100 }, () => 1), 99];
    const all = instances(weights);
    const { cache, endpointer } = cluster(all);
    const balancer = weighted(endpointer);
    const picked = Array.from({ length: 150 }, () => address(balancer.pick())).filter((a) => a !== "i100");
    const dropped = new Set(picked.slice(-40));
    const left = all.filter((inst) => !dropped.has(inst.address));
    cache.update(left);
    const shares = new Map(left.map((inst) => [inst.address, inst.weight]));
    expect(followShares(balancer, shares, 3 * 159).lag).toBeLessThan(2);
  });

  it("switches to smooth weighted round robin at 16 instances and back above", () => {
    const { cache, endpointer } = cluster(instances(mixed.slice(0, 40)));
    const balancer = weighted(endpointer);
    for (let i = 0; i < 33; i++) balancer.pick();
    cache.update([
      { address: "a", weight: 5 },
      { address: "b", weight: 1 },
      { address: "c", weight: 1 },
    ]);
    expect(Array.from({ length: 7 }, () => address(balancer.pick()))).toEqual([
      "a",
      "a",
      "b",
      "a",
      "c",
      "a",
      "a",
    ]);
    cache.update(instances(mixed.slice(0, 17)));
    const shares = new Map(mixed.slice(0, 17).map((w, i) => [`i${i}`, w]));
    // i0..i16 were there before: they come back with the places they left with (at most 2 picks off).
    expect(followShares(balancer, shares, 200).lag).toBeLessThan(2);
  });

  describe("across 16 ⇄ 17 instances (regression: crossing the limit restarted the sequence)", () => {
    const seventeen = instances(Array.from({ length: 17 }, () => 1));

    /** 1000 picks over i0..i16 while i16 leaves for `k` picks and comes back for `k`, starting present. */
    function flap(k: number): Record<string, number> {
      const { cache, endpointer } = cluster(seventeen);
      const balancer = weighted(endpointer);
      const counts: Record<string, number> = {};
      for (let i = 0; i < 1_000; i++) {
        if (i % k === 0) cache.update((i / k) % 2 === 0 ? seventeen : seventeen.slice(0, 16));
        const a = address(balancer.pick());
        counts[a] = (counts[a] ?? 0) + 1;
      }
      return counts;
    }

    const stayers = (counts: (i: number) => number): Record<string, number> =>
      Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`i${i}`, counts(i)]));

    it("an instance flapping every pick: the 16 that stay share the picks evenly", () => {
      // i16 is there for 500 picks and gets its 1/17 of them (it took up the place it left with each
      // time; starting even each time, it never came first), the others 500/17 + 500/16 ≈ 60.7 each.
      // It used to be {"i0":1000}, and then i16 got nothing.
      expect(flap(1)).toEqual({
        ...stayers((i) => ([6, 7, 8, 9, 10, 15].includes(i) ? 60 : 61)),
        i16: 30,
      });
    });

    it("an instance flapping every 10 picks: everyone gets their share", () => {
      // Shares: 500/17 + 500/16 ≈ 60.7 for each of i0..i15, 500/17 ≈ 29.4 for i16; it used to be 100
      // each for i0..i9 and nothing for the others.
      expect(flap(10)).toEqual({
        ...stayers((i) => (i < 10 ? 61 : 60)),
        i16: 30,
      });
    });

    it("keeps 16 instances of any weights within 2 picks of their shares while a 17th comes and goes (property)", () => {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 16, maxLength: 16 }),
          fc.array(fc.boolean(), { minLength: 600, maxLength: 600 }),
          (weights, present) => {
            const stay = instances(weights);
            const all = [...stay, { address: "flap", weight: 1 }];
            const { cache, endpointer } = cluster(all);
            const balancer = weighted(endpointer);
            const counts = new Map<string, number>();
            for (const p of present) {
              cache.update(p ? all : stay);
              const a = address(balancer.pick());
              counts.set(a, (counts.get(a) ?? 0) + 1);
            }
            // The 16 are always there, so they share what they got in proportion to weight.
            const got = 600 - (counts.get("flap") ?? 0);
            const total = weights.reduce((a, b) => a + b, 0);
            for (const inst of stay) {
              expect(Math.abs((counts.get(inst.address) ?? 0) - (got * inst.weight) / total)).toBeLessThan(2);
            }
          },
        ),
        { numRuns: 100 },
      );
    });

    it("keeps how far each instance is behind when the set shrinks to 16 or grows to 17", () => {
      const { cache, endpointer } = cluster(seventeen);
      const balancer = weighted(endpointer);
      const next = (n: number): string[] => Array.from({ length: n }, () => address(balancer.pick()));
      expect(next(8)).toEqual(["i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7"]);
      cache.update(seventeen.slice(0, 16)); // EEVDF → smooth: i8..i15 are still due first
      expect(next(8)).toEqual(["i8", "i9", "i10", "i11", "i12", "i13", "i14", "i15"]);
      expect(next(8)).toEqual(["i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7"]);
      // smooth → EEVDF: i8..i15 (one pick behind i0..i7) first, i16 back level with them, as it left
      cache.update(seventeen);
      const order = [8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 1, 2, 3, 4, 5, 6, 7];
      expect(next(17)).toEqual(order.map((i) => `i${i}`));
    });
  });

  describe("an instance there for one pick at a time (regression: it started even each time)", () => {
    /** `rounds` times: `x` (weight `w`) joins 20 instances of weight 1 for one pick, then leaves for one. */
    function visits(w: number, rounds: number): Map<string, number> {
      const twenty = instances(Array.from({ length: 20 }, () => 1));
      const { cache, endpointer } = cluster(twenty);
      const balancer = weighted(endpointer);
      const counts = new Map<string, number>();
      for (let r = 0; r < rounds; r++) {
        cache.update([...twenty, { address: "x", weight: w }]);
        for (const [k, v] of countPicks(balancer, 1)) counts.set(k, (counts.get(k) ?? 0) + v);
        cache.update(twenty);
        for (const [k, v] of countPicks(balancer, 1)) counts.set(k, (counts.get(k) ?? 0) + v);
      }
      return counts;
    }

    it("weighing as much as the others, it gets its share: it was never picked", () => {
      const counts = visits(1, 21_000); // x is there for 21,000 picks, 1/21 its share
      expect(counts.get("x")).toBe(1_000);
      for (let i = 0; i < 20; i++) expect(counts.get(`i${i}`)).toBe(2_050);
    });

    it("weighing more, it gets its share, not every pick it is there for (it got 4,446 of 5,000)", () => {
      const counts = visits(5, 5_000); // x is there for 5,000 picks, 5/25 its share
      expect(counts.get("x")).toBe(1_000);
      for (let i = 0; i < 20; i++) expect(counts.get(`i${i}`)).toBe(450);
    });
  });

  it("keeps its fairness when more instances come and go than the old memory of 16 departed places held (regression: heavy returners drifted ahead without bound)", () => {
    // 4 stayers and 36 flappers, each toggling with probability 0.2 per pick: the set keeps crossing
    // 16 ⇄ 17 and dozens of instances are away at once.
    let seed = 3;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const flapWeights = Array.from({ length: 36 }, (_, i) => (i % 4) + 1);
    let present = flapWeights.map(() => random() < 0.7);
    const steps: boolean[][] = [];
    for (let i = 0; i < 4_000; i++) {
      present = present.map((p) => (random() < 0.2 ? !p : p));
      steps.push(present);
    }
    expect(worstLag([1, 2, 3, 4], flapWeights, steps)).toBeLessThan(3);
  });

  it("keeps every instance within 2 picks of its share over its time in the set while several come and go, across 16 ⇄ 17 too (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 14, maxLength: 24 }),
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 3, maxLength: 3 }),
        fc.array(fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), { minLength: 300, maxLength: 300 }),
        (stayWeights, flapWeights, steps) => {
          expect(worstLag(stayWeights, flapWeights, steps)).toBeLessThan(2);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("passes over avoided instances, which give up the turns they miss instead of catching up in a burst", () => {
    const weights = [...Array.from({ length: 100 }, () => 1), 10]; // sum 110; "i100" weighs 10
    const { endpointer } = cluster(instances(weights));
    const balancer = weighted(endpointer);
    for (let i = 0; i < 37; i++) balancer.pick();
    const avoid = new Set(["i100", "i3"]);
    const during = countPicks(balancer, 220, avoid);
    expect(during.has("i100")).toBe(false);
    expect(during.has("i3")).toBe(false);
    expect(during.size).toBe(99);
    // The others shared the 220 picks about evenly (2 each, give or take one).
    for (const [, n] of during) expect(Math.abs(n - 220 / 99)).toBeLessThan(2);
    // Afterwards i100 gets its 10 of every 110 picks, spread out: no catch-up run.
    const shares = new Map(weights.map((w, i) => [`i${i}`, w]));
    const after = followShares(balancer, shares, 330);
    expect(after.lag).toBeLessThan(2);
    expect(after.repeats).toEqual([]);
  });

  it("gives weight 0 no calls while another candidate weighs more, and takes all-0 candidates in turn", () => {
    const weights = Array.from({ length: 40 }, (_, i) => (i < 3 ? 0 : 2));
    const { endpointer } = cluster(instances(weights));
    const balancer = weighted(endpointer);
    const counts = countPicks(balancer, 370);
    for (const zero of ["i0", "i1", "i2"]) expect(counts.has(zero)).toBe(false);
    const others = new Set(Array.from({ length: 37 }, (_, i) => `i${i + 3}`));
    expect(Array.from({ length: 4 }, () => address(balancer.pick(others)))).toEqual(["i0", "i1", "i2", "i0"]);
  });
});

describe("leastRequests over large sets", () => {
  /** Starts `k` calls on entry `i`; returns their records. */
  function load(balancer: ReturnType<typeof leastRequests<string, string>>, entry: Entry, k: number) {
    return Array.from({ length: k }, () => balancer.start?.(entry));
  }

  it("picks one of the least loaded of 1,000, each with the same chance", () => {
    const { endpointer } = cluster(instances(Array.from({ length: 1_000 }, () => 1)));
    const balancer = leastRequests(endpointer, { rng: seeded(21) });
    const entries = endpointer.endpoints() as Entry[];
    // Every instance busy except every twentieth: 50 idle ones.
    entries.forEach((entry, i) => {
      if (i % 20 !== 0) load(balancer, entry, 1 + (i % 3));
    });
    const idle = entries.filter((_, i) => i % 20 === 0).map((e) => e.instance.address);
    expectEven(countPicks(balancer, 25_000), idle, 25_000);
  });

  it("takes the least loaded in turn with tieBreak roundRobin, looking on from the previous pick", () => {
    const { endpointer } = cluster(instances(Array.from({ length: 500 }, () => 1)));
    const balancer = leastRequests(endpointer, { tieBreak: "roundRobin" });
    const entries = endpointer.endpoints() as Entry[];
    entries.forEach((entry, i) => {
      if (i % 100 !== 7) load(balancer, entry, 1);
    });
    const picked = Array.from({ length: 7 }, () => address(balancer.pick()));
    expect(picked).toEqual(["i7", "i107", "i207", "i307", "i407", "i7", "i107"]);
    load(balancer, entries[207] as Entry, 1); // i207 is no longer among the least loaded
    expect(Array.from({ length: 4 }, () => address(balancer.pick()))).toEqual(["i307", "i407", "i7", "i107"]);
  });

  it("matches an exact scan through calls, set changes and avoid sets (property)", () => {
    // Few instances and many calls, so that every instance is often busy and stale counts would show.
    const pool = Array.from({ length: 12 }, (_, i) => `i${i}`);
    const op = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant("start" as const), at: fc.nat() }), weight: 3 },
      { arbitrary: fc.record({ kind: fc.constant("end" as const), at: fc.nat() }), weight: 3 },
      {
        arbitrary: fc.record({
          kind: fc.constant("set" as const),
          members: fc.subarray(pool, { minLength: 1 }),
        }),
        weight: 1,
      },
      {
        arbitrary: fc.record({
          kind: fc.constant("pick" as const),
          avoid: fc.subarray(pool, { maxLength: 4 }),
          call: fc.boolean(),
        }),
        weight: 4,
      },
    );
    fc.assert(
      fc.property(
        fc.constantFrom("random" as const, "roundRobin" as const),
        fc.array(op, { minLength: 1, maxLength: 150 }),
        (tieBreak, ops) => {
          const cache = createInstanceCache(pool.slice(0, 6));
          const endpointer = createEndpointer<string, string>(cache, () => ({ endpoint: async () => "" }));
          const balancer = leastRequests(endpointer, { tieBreak, rng: seeded(ops.length) });
          // What the balancer should know: calls in flight per address, forgotten when an address leaves.
          let inFlight = new Map<string, number>();
          const open: { address: string; end: () => void; gen: number }[] = [];
          const generation = new Map<string, number>();
          const current = () => endpointer.endpoints() as Entry[];
          const follow = () => {
            const next = new Map<string, number>();
            for (const e of current()) next.set(e.instance.address, inFlight.get(e.instance.address) ?? 0);
            for (const a of inFlight.keys()) {
              if (!next.has(a)) generation.set(a, (generation.get(a) ?? 0) + 1);
            }
            inFlight = next;
          };
          const start = (entry: Entry) => {
            const a = entry.instance.address;
            const record = balancer.start?.(entry);
            inFlight.set(a, (inFlight.get(a) ?? 0) + 1);
            open.push({ address: a, end: () => record?.end("success"), gen: generation.get(a) ?? 0 });
          };
          follow();
          for (const o of ops) {
            const entries = current();
            if (o.kind === "start") {
              start(entries[o.at % entries.length] as Entry);
            } else if (o.kind === "end" && open.length > 0) {
              const [call] = open.splice(o.at % open.length, 1);
              if (call === undefined) continue;
              call.end();
              if ((generation.get(call.address) ?? 0) === call.gen && inFlight.has(call.address)) {
                inFlight.set(call.address, (inFlight.get(call.address) ?? 0) - 1);
              }
            } else if (o.kind === "set") {
              cache.update(o.members);
              balancer.pick(); // the balancer follows the set on its next look
              follow();
            } else if (o.kind === "pick") {
              const avoid = new Set(o.avoid);
              const entry = balancer.pick(avoid);
              const picked = address(entry);
              const allowed = entries.filter((e) => !avoid.has(e.instance.address));
              const candidates = allowed.length > 0 ? allowed : entries;
              const least = Math.min(...candidates.map((e) => inFlight.get(e.instance.address) ?? 0));
              expect(candidates.map((e) => e.instance.address)).toContain(picked);
              expect(inFlight.get(picked)).toBe(least);
              if (o.call) start(entry as Entry);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("with choices: 2 picks the less loaded of two random instances (Envoy's way)", () => {
    const { endpointer } = cluster(instances(Array.from({ length: 1_000 }, () => 1)));
    const balancer = leastRequests(endpointer, { choices: 2, rng: seeded(5) });
    const entries = endpointer.endpoints() as Entry[];
    // Half the instances have 3 calls in flight, the other half none.
    entries.forEach((entry, i) => {
      if (i % 2 === 1) load(balancer, entry, 3);
    });
    const counts = countPicks(balancer, 40_000);
    let busy = 0;
    for (const [a, n] of counts) if (Number(a.slice(1)) % 2 === 1) busy += n;
    // A busy one is picked only when both draws are busy: (500 × 499) / (1 000 × 999) ≈ 0.2497.
    expect(Math.abs(busy / 40_000 - 0.2497)).toBeLessThan(0.01);
    const idle = entries.filter((_, i) => i % 2 === 0).map((e) => e.instance.address);
    const idleCounts = new Map([...counts].filter(([a]) => idle.includes(a)));
    expectEven(idleCounts, idle, 40_000 - busy);
  });

  it("with choices: 3 goes to a busy instance less often, and never to the most loaded of a few", () => {
    const { endpointer } = cluster(instances(Array.from({ length: 1_000 }, () => 1)));
    const balancer = leastRequests(endpointer, { choices: 3, rng: seeded(6) });
    (endpointer.endpoints() as Entry[]).forEach((entry, i) => {
      if (i % 2 === 1) load(balancer, entry, 1);
    });
    let busy = 0;
    for (const [a, n] of countPicks(balancer, 40_000)) if (Number(a.slice(1)) % 2 === 1) busy += n;
    expect(Math.abs(busy / 40_000 - (500 * 499 * 498) / (1_000 * 999 * 998))).toBeLessThan(0.01);

    const small = cluster(["a", "b", "c"]);
    const three = leastRequests(small.endpointer, { choices: 2, rng: seeded(7) });
    const [a, b] = small.endpointer.endpoints() as Entry[];
    load(three, a as Entry, 2);
    load(three, b as Entry, 1);
    const picked = countPicks(three, 3_000);
    expect(picked.has("a")).toBe(false); // both draws differ, so the most loaded never wins
    expect(picked.get("c")).toBeGreaterThan(picked.get("b") ?? 0);
    // With as many choices as instances, every one is compared: the least loaded every time.
    const all = leastRequests(small.endpointer, { choices: 3, rng: seeded(9) });
    load(all, a as Entry, 1);
    load(all, b as Entry, 1);
    expect([...countPicks(all, 10)]).toEqual([["c", 10]]);
  });

  it("with choices skips avoided instances and follows set changes", () => {
    const { cache, endpointer } = cluster(instances(Array.from({ length: 200 }, () => 1)));
    const balancer = leastRequests(endpointer, { choices: 2, rng: seeded(8) });
    const avoid = new Set(Array.from({ length: 150 }, (_, i) => `i${i}`));
    const allowed = Array.from({ length: 50 }, (_, i) => `i${i + 150}`);
    expectEven(countPicks(balancer, 10_000, avoid), allowed, 10_000);
    const entry = (endpointer.endpoints() as Entry[])[199] as Entry;
    const call = balancer.start?.(entry);
    cache.update(["i199", "x"]);
    expect([...countPicks(balancer, 20)]).toEqual([["x", 20]]); // i199 has a call in flight
    call?.end("success");
    expect(countPicks(balancer, 400).get("i199")).toBeGreaterThan(100);
  });

  it("rejects bad choices", () => {
    const { endpointer } = cluster([]);
    for (const choices of [1, 2.5, 0, Number.NaN]) {
      expect(() => leastRequests(endpointer, { choices })).toThrow(
        new RangeError(`leastRequests: choices must be an integer >= 2, got ${String(choices)}`),
      );
    }
    expect(() => leastRequests(endpointer, { choices: 2, tieBreak: "roundRobin" })).toThrow(
      new TypeError('leastRequests: tieBreak "roundRobin" needs the exact pick; leave out choices'),
    );
  });
});

/**
 * An rng that makes p2c draw the given pairs of indices over `n` entries: the first of a pair is
 * floor(r × n), the second floor(r × (n - 1)), shifted past the first.
 */
function pairs(n: number, ...drawn: [number, number][]): () => number {
  const values: number[] = [];
  for (const [a, b] of drawn) values.push((a + 0.5) / n, ((b < a ? b : b - 1) + 0.5) / (n - 1));
  return sequence(...values);
}

describe("p2c over large sets", () => {
  /** Runs one call on `entry` that takes `ms` on the fake clock. */
  function observe(
    balancer: ReturnType<typeof p2c<string, string>>,
    clock: ReturnType<typeof fakeClock>,
    entry: Entry,
    ms: number,
  ): void {
    const call = balancer.start?.(entry);
    clock.advance(ms);
    call?.end("success");
  }

  it("starts unmeasured instances of a partly measured set at the mean, kept as estimates change", () => {
    const n = 1_000;
    const clock = fakeClock();
    const { cache, endpointer } = cluster(instances(Array.from({ length: n }, () => 1)));
    const entries = endpointer.endpoints() as Entry[];
    const at = (i: number) => entries[i] as Entry;
    let draw = pairs(n, [900, 400], [900, 401], [900, 401]);
    const balancer = p2c(endpointer, { now: clock.now, rng: () => draw(), decayTime: 1e12 });
    // i0..i399 measured at 10, 40, 10, 40, ...; i400 at 24 and i401 at 26: the mean is 25.
    for (let i = 0; i < 400; i++) observe(balancer, clock, at(i), i % 2 === 0 ? 10 : 40);
    observe(balancer, clock, at(400), 24);
    observe(balancer, clock, at(401), 26);
    expect(address(balancer.pick())).toBe("i400"); // i900 at 25 vs 24
    expect(address(balancer.pick())).toBe("i900"); // i900 at 25 vs 26
    // A slower call on i0 raises its estimate (peak) from 10 to 500: the mean becomes 10 540 / 402 ≈ 26.2.
    observe(balancer, clock, at(0), 500);
    expect(address(balancer.pick())).toBe("i401"); // i900 at 26.2 vs 26
    // A new set: the mean is recomputed over the measured instances left, i400 (24) and i401 (26).
    cache.update(["i400", "i401", "u"]);
    draw = pairs(3, [2, 0], [2, 1]);
    expect(address(balancer.pick())).toBe("i400"); // u at 25 vs 24
    expect(address(balancer.pick())).toBe("u"); // u at 25 vs 26
  });

  it("decays the mean like the estimates, also across a rebase of the running sum", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b", "c", "d", "u"]);
    const [a, b, c, d] = endpointer.endpoints() as Entry[];
    const decayTime = 100;
    const balancer = p2c(endpointer, {
      now: clock.now,
      decayTime,
      rng: pairs(5, [4, 3], [4, 3], [4, 3], [4, 3]),
    });
    observe(balancer, clock, a as Entry, 30); // a: 30 at t = 30
    observe(balancer, clock, b as Entry, 50); // b: 50 at t = 80
    observe(balancer, clock, d as Entry, 36); // d: 36 at t = 116
    // At t = 116: a 30 e^-0.86 ≈ 12.7, b 50 e^-0.36 ≈ 34.9, d 36: mean ≈ 27.9.
    expect(address(balancer.pick())).toBe("u"); // u at 27.9 vs d at 36
    clock.advance(decayTime * Math.log(2)); // everything halves: u at 13.9 vs d at 18
    expect(address(balancer.pick())).toBe("u");
    // 1 000 decay times later (far past the rebase threshold of 32; without a rebase the sum's new terms,
    // estimate × e^((t - reference) / decayTime), would overflow) only fresh observations count.
    clock.advance(decayTime * 1_000);
    observe(balancer, clock, c as Entry, 30); // c: 30; a, b and d ≈ 0; the mean over four ≈ 7.5
    observe(balancer, clock, d as Entry, 8); // d: 8 (eased from its stale 36 with weight ≈ 1)
    // Mean: (30 e^-0.08 + 8) / 4 ≈ 8.9.
    expect(address(balancer.pick())).toBe("d"); // d at 8 vs u at 8.9
    observe(balancer, clock, d as Entry, 10); // d: 10 (peak); mean (30 e^-0.18 + 10) / 4 ≈ 8.8
    expect(address(balancer.pick())).toBe("u"); // u at 8.8 vs d at 10
  });

  it("leaves calls that end on an instance removed meanwhile out of the mean", () => {
    const clock = fakeClock();
    const { cache, endpointer } = cluster(["a", "b", "u"]);
    const [a, b] = endpointer.endpoints() as Entry[];
    let draw = () => 0;
    const balancer = p2c(endpointer, { now: clock.now, decayTime: 1e12, rng: () => draw() });
    observe(balancer, clock, a as Entry, 20);
    const late = balancer.start?.(b as Entry);
    cache.update(["a", "u"]);
    balancer.pick(); // the balancer sees b gone
    clock.advance(5_000);
    late?.end("success"); // 5 s, on an instance no longer in the set
    // u starts at the mean of a alone (20): a tie with a, so the first of the pair wins. Had b's 5 s
    // counted, the mean would be 2 510 and a would win.
    draw = pairs(2, [1, 0]);
    expect(address(balancer.pick())).toBe("u");
    cache.update(["a", "u", "b"]); // b is back, as a new, unmeasured instance
    draw = pairs(3, [2, 0]);
    expect(address(balancer.pick())).toBe("b");
  });

  it("spreads cold picks evenly over 1,000 unmeasured instances and skips avoided ones", () => {
    const { endpointer } = cluster(instances(Array.from({ length: 1_000 }, () => 1)));
    const balancer = p2c(endpointer, { now: () => 0, rng: seeded(13) });
    const all = (endpointer.endpoints() as Entry[]).map((e) => e.instance.address);
    expectEven(countPicks(balancer, 30_000), all, 30_000);
    const avoid = new Set(all.slice(0, 990));
    expectEven(countPicks(balancer, 3_000, avoid), all.slice(990), 3_000);
    expect(address(balancer.pick(new Set(all.slice(0, 999))))).toBe("i999");
  });
});

describe("random over large sets", () => {
  it("draws evenly among the instances not avoided", () => {
    const { endpointer } = cluster(instances(Array.from({ length: 1_000 }, () => 1)));
    const balancer = random(endpointer, { rng: seeded(17) });
    const all = (endpointer.endpoints() as Entry[]).map((e) => e.instance.address);
    const avoid = new Set(all.filter((_, i) => i % 4 === 0));
    const allowed = all.filter((_, i) => i % 4 !== 0);
    expectEven(countPicks(balancer, 30_000, avoid), allowed, 30_000);
    expect(address(balancer.pick(new Set(all.slice(1))))).toBe("i0");
  });
});
