import { background } from "@svckit/endpoint";
import { balancerEndpoint, p2c } from "@svckit/lb";
import type { EndpointEntry } from "@svckit/sd";
import { describe, expect, it } from "vitest";
import { cluster, fakeClock, seeded, sequence, tally } from "./test-helpers.js";

type Entry = EndpointEntry<string, string>;
const address = (entry: Entry | undefined): string | undefined => entry?.instance.address;

/** Runs one call on `entry` through the balancer's start/end, taking `ms` on the fake clock. */
function observe(
  balancer: ReturnType<typeof p2c<string, string>>,
  clock: ReturnType<typeof fakeClock>,
  entry: Entry,
  ms: number,
  outcome: "success" | "failure" | "cancelled" = "success",
): void {
  const call = balancer.start?.(entry);
  clock.advance(ms);
  call?.end(outcome);
}

describe("p2c", () => {
  it("prefers the fast instance when latencies differ (fake clock)", async () => {
    const clock = fakeClock();
    const c = cluster(["fast", "slow", "medium"]);
    const latency: Record<string, number> = { fast: 5, slow: 200, medium: 40 };
    for (const name of Object.keys(latency)) {
      c.behave(name, () => {
        clock.advance(latency[name] as number);
        return name;
      });
    }
    const call = balancerEndpoint(p2c(c.endpointer, { now: clock.now, rng: seeded(11) }));
    for (let i = 0; i < 600; i++) await call(background, "x");
    const counts = tally(c.calls);
    expect(counts.fast).toBeGreaterThan(counts.medium ?? 0);
    expect(counts.medium).toBeGreaterThan(counts.slow ?? 0);
    // With random pairs the fastest wins every pair it is in (2/3 of them) plus what decay gives back.
    expect((counts.fast ?? 0) / 600).toBeGreaterThan(0.6);
    expect((counts.slow ?? 0) / 600).toBeLessThan(0.1);
  });

  it("compares both instances of a pair of two, always taking the faster", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(1) });
    const [a, b] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, a as Entry, 50);
    observe(balancer, clock, b as Entry, 10);
    expect(tally(Array.from({ length: 20 }, () => address(balancer.pick())))).toEqual({ b: 20 });
  });

  it("prefers the instance with fewer calls in flight when latencies are equal", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(2) });
    const [a, b] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, a as Entry, 10);
    observe(balancer, clock, b as Entry, 10);
    clock.advance(0);
    balancer.start?.(a as Entry);
    expect(address(balancer.pick())).toBe("b");
    balancer.start?.(b as Entry);
    balancer.start?.(b as Entry);
    expect(address(balancer.pick())).toBe("a");
  });

  it("weighs load against latency: cost = latency × (in flight + 1)", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(2), decayTime: 1e12 });
    const [a, b] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, a as Entry, 10);
    observe(balancer, clock, b as Entry, 25);
    balancer.start?.(a as Entry); // a: 10 × 2 = 20 < 25
    expect(address(balancer.pick())).toBe("a");
    balancer.start?.(a as Entry); // a: 10 × 3 = 30 > 25
    expect(address(balancer.pick())).toBe("b");
  });

  it("counts a slower observation in full at once (peak) and eases down on faster ones", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(4), decayTime: 100 });
    const [a, b] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, b as Entry, 20);
    observe(balancer, clock, a as Entry, 10);
    expect(address(balancer.pick())).toBe("a");
    observe(balancer, clock, a as Entry, 100); // one slow answer: a jumps to 100
    observe(balancer, clock, b as Entry, 20);
    expect(address(balancer.pick())).toBe("b");
    // Fast answers pull a's estimate down gradually: each weighs 1 - e^(-elapsed / decayTime).
    observe(balancer, clock, a as Entry, 10);
    observe(balancer, clock, b as Entry, 20);
    expect(address(balancer.pick())).toBe("b");
    for (let i = 0; i < 10; i++) {
      observe(balancer, clock, a as Entry, 10);
      observe(balancer, clock, b as Entry, 20);
    }
    expect(address(balancer.pick())).toBe("a");
  });

  it("lets an idle slow instance's estimate decay so it is tried again", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["fast", "slow"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(5), decayTime: 1_000 });
    const [fast, slow] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, slow as Entry, 100);
    observe(balancer, clock, fast as Entry, 10);
    expect(address(balancer.pick())).toBe("fast");
    clock.advance(3_000); // slow idle: 100 × e^-3 ≈ 5 < fast's fresh 10 after the next call
    observe(balancer, clock, fast as Entry, 10);
    expect(address(balancer.pick())).toBe("slow");
  });

  describe("calls in flight on an instance whose estimate decayed to ~0 (regression)", () => {
    /**
     * a answered once in 10 ms, then sat idle for 10 minutes while b kept answering in 20 ms; then a
     * hangs. Runs `picks` picks as the balanced endpoint would (start each call; b answers at once, a
     * never), moving the clock by `step` ms per pick. Returns how many went to a.
     */
    function hungAfterIdle(picks: number, step: number): number {
      const clock = fakeClock();
      const { endpointer } = cluster(["a", "b"]);
      const balancer = p2c(endpointer, { now: clock.now, rng: seeded(21) }); // default decayTime 10 s
      const [a, b] = endpointer.endpoints() as Entry[];
      observe(balancer, clock, a as Entry, 10);
      for (let minute = 0; minute < 10; minute++) {
        clock.advance(60_000 - 20);
        observe(balancer, clock, b as Entry, 20);
      }
      let toA = 0;
      for (let i = 0; i < picks; i++) {
        const entry = balancer.pick() as Entry;
        const call = balancer.start?.(entry);
        if (entry === a) toA++;
        else call?.end("success");
        clock.advance(step);
      }
      return toA;
    }

    it("gives a hung instance one call at a time, not every call that draws it (frozen clock)", () => {
      expect(hungAfterIdle(1_000, 0)).toBe(1);
    });

    it("keeps it at one while the clock moves and the call still hangs", () => {
      expect(hungAfterIdle(1_000, 1)).toBe(1);
    });

    it("spreads a burst over instances that are all idle by calls in flight", () => {
      const clock = fakeClock();
      const { endpointer } = cluster(["a", "b"]);
      const balancer = p2c(endpointer, { now: clock.now, rng: seeded(22) });
      const [a, b] = endpointer.endpoints() as Entry[];
      observe(balancer, clock, a as Entry, 10);
      observe(balancer, clock, b as Entry, 20);
      clock.advance(600_000);
      const inFlight = { a: 0, b: 0 };
      for (let i = 0; i < 10; i++) {
        const entry = balancer.pick() as Entry;
        balancer.start?.(entry);
        inFlight[address(entry) as "a" | "b"]++;
        // The one with fewer calls in flight is taken (either on a tie).
        expect(Math.abs(inFlight.a - inFlight.b)).toBeLessThanOrEqual(1);
      }
      expect(inFlight).toEqual({ a: 5, b: 5 });
    });
  });

  it("counts a call in flight as at least as slow as it has been running", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(2), decayTime: 1e12 });
    const [a, b] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, a as Entry, 10);
    observe(balancer, clock, b as Entry, 10);
    balancer.start?.(a as Entry); // hangs
    clock.advance(990);
    balancer.start?.(b as Entry);
    balancer.start?.(b as Entry);
    clock.advance(10);
    // a: max(10, 1000) × 2 = 2000; b: max(10, 10) × 3 = 30.
    expect(address(balancer.pick())).toBe("b");
  });

  it("counts a call only once if end() is called twice", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(2), decayTime: 1e12 });
    const [a, b] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, a as Entry, 10);
    observe(balancer, clock, b as Entry, 25);
    balancer.start?.(a as Entry); // a: 10 × 2 = 20 < 25
    const other = balancer.start?.(a as Entry);
    other?.end("success");
    other?.end("success"); // must not take the first call out of flight too
    expect(address(balancer.pick())).toBe("a");
    balancer.start?.(a as Entry); // a: 10 × 3 = 30 > 25
    expect(address(balancer.pick())).toBe("b");
  });

  it("counts a failed call as at least failurePenalty", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(6), failurePenalty: 500 });
    const [a, b] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, b as Entry, 50);
    observe(balancer, clock, a as Entry, 1, "failure"); // failed fast: counts as 500
    expect(address(balancer.pick())).toBe("b");
  });

  it("learns nothing about latency from a cancelled call, but counts it out of flight", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(6), decayTime: 1e12 });
    const [a, b] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, a as Entry, 10);
    observe(balancer, clock, b as Entry, 20);
    observe(balancer, clock, a as Entry, 5_000, "cancelled");
    expect(address(balancer.pick())).toBe("a");
  });

  it("assumes the mean of the measured instances for a new one, unless initialLatency is set", () => {
    const clock = fakeClock();
    const { cache, endpointer } = cluster(["a", "b"]);
    // A pair is (floor(r1 × n), floor(r2 × (n - 1)), the second shifted past the first): with n = 3,
    // (0.5, 0.99) draws (b, c) and (0, 0.99) draws (a, c).
    const balancer = p2c(endpointer, { now: clock.now, rng: sequence(0.5, 0.99, 0, 0.99), decayTime: 1e12 });
    const withInitial = p2c(endpointer, {
      now: clock.now,
      rng: sequence(0.5, 0.99),
      decayTime: 1e12,
      initialLatency: 100,
    });
    const [a, b] = endpointer.endpoints() as Entry[];
    for (const x of [balancer, withInitial]) {
      observe(x, clock, a as Entry, 10);
      observe(x, clock, b as Entry, 30);
    }
    cache.update(["a", "b", "c"]); // c is new: assumed (10 + 30) / 2 = 20
    expect(address(balancer.pick())).toBe("c"); // b 30 vs c 20
    expect(address(balancer.pick())).toBe("a"); // a 10 vs c 20
    expect(address(withInitial.pick())).toBe("b"); // b 30 vs c 100
  });

  it("returns the only entry, or undefined without entries", () => {
    const clock = fakeClock();
    expect(p2c(cluster([]).endpointer, { now: clock.now }).pick()).toBeUndefined();
    const { endpointer } = cluster(["a"]);
    const balancer = p2c(endpointer, { now: clock.now });
    expect(address(balancer.pick())).toBe("a");
    expect(address(balancer.pick(new Set(["a"])))).toBe("a");
  });

  it("draws the pair among the instances not avoided", () => {
    const clock = fakeClock();
    const { endpointer } = cluster(["a", "b", "c"]);
    const balancer = p2c(endpointer, { now: clock.now, rng: seeded(8) });
    const [a] = endpointer.endpoints() as Entry[];
    observe(balancer, clock, a as Entry, 1); // a is the fastest, but avoided
    const counts = tally(Array.from({ length: 300 }, () => address(balancer.pick(new Set(["a"])))));
    expect(counts.a).toBeUndefined();
    expect(Object.keys(counts).sort()).toEqual(["b", "c"]);
    expect(address(balancer.pick(new Set(["a", "b"])))).toBe("c");
  });

  it("spreads calls over unmeasured instances at random", () => {
    const { endpointer } = cluster(["a", "b", "c", "d"]);
    const balancer = p2c(endpointer, { now: () => 0, rng: seeded(12) });
    const counts = tally(Array.from({ length: 4_000 }, () => address(balancer.pick())));
    for (const n of Object.values(counts)) expect(Math.abs(n / 4_000 - 0.25)).toBeLessThan(0.03);
  });

  it("gives a no-op record for an entry it does not know", () => {
    const balancer = p2c(cluster(["a"]).endpointer);
    const stranger = cluster(["z"]).endpointer.endpoints()[0] as Entry;
    expect(() => balancer.start?.(stranger).end("success")).not.toThrow();
  });

  it.each([
    [{ decayTime: 0 }, RangeError, "p2c: decayTime must be a finite number > 0, got 0"],
    [
      { decayTime: Number.POSITIVE_INFINITY },
      RangeError,
      "p2c: decayTime must be a finite number > 0, got Infinity",
    ],
    [{ initialLatency: -1 }, RangeError, "p2c: initialLatency must be a finite number >= 0, got -1"],
    [{ failurePenalty: Number.NaN }, RangeError, "p2c: failurePenalty must be a finite number >= 0, got NaN"],
    [{ now: 1 }, TypeError, "p2c: now must be a function, got number"],
    [{ rng: "x" }, TypeError, "p2c: rng must be a function, got string"],
  ])("rejects %o", (options, type, message) => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid options
    expect(() => p2c(cluster([]).endpointer, options as any)).toThrow(new type(message));
  });
});
