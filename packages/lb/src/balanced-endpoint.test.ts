import {
  background,
  Code,
  type Context,
  chain,
  createCancelableContext,
  createContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  avoidFailedInstances,
  type Balancer,
  balancerEndpoint,
  createBalancedEndpoint,
  createOutlierDetector,
  defaultFailureCodes,
  failedInstancesKey,
  leastRequests,
  random,
  roundRobin,
  weighted,
  withFailedInstances,
} from "@svckit/lb";
import { retry } from "@svckit/retry";
import { createEndpointer, createStaticInstancer, type EndpointEntry, type Endpointer } from "@svckit/sd";
import { describe, expect, it, vi } from "vitest";
import { type Cluster, cluster, deferred, fakeClock, seeded, sequence, tally } from "./test-helpers.js";

type Source = Endpointer<string, string>;

const unavailable = (message: string) => expect.objectContaining({ code: Code.UNAVAILABLE, message });

async function settle<T>(promise: Promise<T>): Promise<T | unknown> {
  try {
    return await promise;
  } catch (error) {
    return error;
  }
}

describe("balancerEndpoint", () => {
  it("picks per call and answers with the picked endpoint's result", async () => {
    const c = cluster(["a", "b", "c"]);
    const call = balancerEndpoint(roundRobin(c.endpointer));
    expect(call.name).toBe("balanced");
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await call(background, "x"));
    expect(results).toEqual(["a", "b", "c", "a"]);
  });

  describe("with nothing to pick", () => {
    it("fails with UNAVAILABLE: no endpoints available", async () => {
      const call = balancerEndpoint(roundRobin(cluster([]).endpointer));
      const error = await settle(call(background, "x"));
      expect(error).toBeInstanceOf(ServiceError);
      expect(error).toEqual(unavailable("no endpoints available"));
      expect((error as ServiceError).cause).toBeUndefined();
    });

    it("names the service when given", async () => {
      const call = balancerEndpoint(roundRobin(cluster([]).endpointer), { service: "users" });
      await expect(call(background, "x")).rejects.toEqual(
        unavailable('no endpoints available for service "users"'),
      );
    });

    it("says discovery failed, keeping the discovery error as the cause only", async () => {
      const c = cluster([]);
      const discovery = new Error("consul: connect ECONNREFUSED 10.1.2.3:8500");
      c.cache.fail(discovery);
      const call = balancerEndpoint(roundRobin(c.endpointer), { service: "users" });
      const error = (await settle(call(background, "x"))) as ServiceError;
      expect(error).toEqual(
        unavailable('no endpoints available for service "users": service discovery reported an error'),
      );
      expect(error.cause).toBe(discovery);
      expect(error.message).not.toContain("10.1.2.3");
    });

    it("reports a factory error the same way", async () => {
      const endpointer = createEndpointer(createStaticInstancer(["bad"]), () => {
        throw new Error("invalid URL");
      });
      const error = (await settle(balancerEndpoint(random(endpointer))(background, "x"))) as ServiceError;
      expect(error).toEqual(unavailable("no endpoints available: service discovery reported an error"));
      expect((error.cause as Error).message).toBe("invalid URL");
    });

    it("says when every instance is ejected", async () => {
      const c = cluster(["a", "b"]);
      const detector = createOutlierDetector(c.endpointer, { consecutiveFailures: 1, ejectLast: true });
      c.behave("a", () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "down")));
      c.behave("b", () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "down")));
      const call = balancerEndpoint(roundRobin(detector), { service: "users", outlierDetector: detector });
      await expect(call(background, "x")).rejects.toThrow("down");
      await expect(call(background, "x")).rejects.toThrow("down");
      await expect(call(background, "x")).rejects.toEqual(
        unavailable(
          'no endpoints available for service "users": all 2 instances are ejected after consecutive failures',
        ),
      );
      const one = cluster(["a"]);
      const d1 = createOutlierDetector(one.endpointer, { consecutiveFailures: 1, ejectLast: true });
      one.behave("a", () => Promise.reject(new Error("boom")));
      const call1 = balancerEndpoint(roundRobin(d1), { outlierDetector: d1 });
      await expect(call1(background, "x")).rejects.toThrow("boom");
      await expect(call1(background, "x")).rejects.toEqual(
        unavailable("no endpoints available: all 1 instance is ejected after consecutive failures"),
      );
    });
  });

  it("passes the endpoint's errors through unchanged", async () => {
    const c = cluster(["a"]);
    const notFound = new ServiceError(Code.NOT_FOUND, "no user 42");
    c.behave("a", () => Promise.reject(notFound));
    await expect(balancerEndpoint(roundRobin(c.endpointer))(background, "x")).rejects.toBe(notFound);
  });

  it("treats an endpoint that throws synchronously like one that rejects", async () => {
    const boom = new Error("sync boom");
    const entry: EndpointEntry<string, string> = {
      instance: { address: "a" },
      endpoint: () => {
        throw boom;
      },
    };
    const source = { endpoints: () => [entry] };
    const record = vi.fn();
    const call = balancerEndpoint(roundRobin(source), { outlierDetector: { record } });
    await expect(call(background, "x")).rejects.toBe(boom);
    expect(record).toHaveBeenCalledExactlyOnceWith(entry, "failure");
  });

  describe("outcomes", () => {
    it.each([
      [new ServiceError(Code.UNAVAILABLE), "failure"],
      [new ServiceError(Code.INTERNAL), "failure"],
      [new ServiceError(Code.UNKNOWN), "failure"],
      [new ServiceError(Code.DEADLINE_EXCEEDED), "failure"],
      [new Error("not a ServiceError"), "failure"],
      // The caller (background) did not cancel: the instance's call was aborted on its side.
      [new ServiceError(Code.CANCELLED), "failure"],
      [new DOMException("aborted", "AbortError"), "failure"],
      [new ServiceError(Code.INVALID_ARGUMENT), "success"],
      [new ServiceError(Code.NOT_FOUND), "success"],
      [new ServiceError(Code.RESOURCE_EXHAUSTED), "success"],
      [new ServiceError(Code.PERMISSION_DENIED), "success"],
    ])("reports %s as %s to the balancer and the detector", async (error, outcome) => {
      const c = cluster(["a"]);
      c.behave("a", () => Promise.reject(error));
      const end = vi.fn();
      const balancer: Balancer<string, string> = {
        pick: () => c.endpointer.endpoints()[0],
        start: () => ({ end }),
      };
      const record = vi.fn();
      await expect(balancerEndpoint(balancer, { outlierDetector: { record } })(background, "x")).rejects.toBe(
        error,
      );
      expect(end).toHaveBeenCalledExactlyOnceWith(outcome);
      expect(record).toHaveBeenCalledExactlyOnceWith(c.endpointer.endpoints()[0], outcome);
    });

    it("reports a CANCELLED as cancelled when the caller gave up during the call", async () => {
      const c = cluster(["a"]);
      const handle = createCancelableContext();
      c.behave("a", () => {
        handle.cancel(); // the caller gives up while the call is in flight
        return Promise.reject(new DOMException("aborted", "AbortError"));
      });
      const end = vi.fn();
      const record = vi.fn();
      const balancer: Balancer<string, string> = {
        pick: () => c.endpointer.endpoints()[0],
        start: () => ({ end }),
      };
      await expect(
        balancerEndpoint(balancer, { outlierDetector: { record } })(handle.context, "x"),
      ).rejects.toBeInstanceOf(DOMException);
      expect(end).toHaveBeenCalledExactlyOnceWith("cancelled");
      expect(record).toHaveBeenCalledExactlyOnceWith(c.endpointer.endpoints()[0], "cancelled");
    });

    describe("a context already done when the call arrives", () => {
      it.each([
        ["past its deadline", () => createContext({ deadline: Date.now() - 1 }), Code.DEADLINE_EXCEEDED],
        [
          "cancelled",
          () => {
            const handle = createCancelableContext();
            handle.cancel();
            return handle.context;
          },
          Code.CANCELLED,
        ],
      ])("(%s) fails with its abort reason without a pick", async (_, make, code) => {
        const c = cluster(["a"]);
        const pick = vi.fn(() => c.endpointer.endpoints()[0]);
        const start = vi.fn(() => ({ end: vi.fn() }));
        const record = vi.fn();
        const ctx = make();
        const error = await settle(
          balancerEndpoint({ pick, start }, { outlierDetector: { record } })(ctx, "x"),
        );
        expect(error).toBe(ctx.abortReason);
        expect((error as ServiceError).code).toBe(code);
        expect(pick).not.toHaveBeenCalled();
        expect(start).not.toHaveBeenCalled();
        expect(record).not.toHaveBeenCalled();
        expect(c.calls).toEqual([]);
      });

      it("ejects no healthy instance however many such calls come (regression)", async () => {
        const c = cluster(["a", "b"]);
        for (const x of ["a", "b"])
          c.behave(x, (ctx) => {
            ctx.throwIfAborted();
            return x;
          });
        const onEject = vi.fn();
        const call = createBalancedEndpoint(c.endpointer, {
          balancer: "roundRobin",
          outlierDetection: { onEject },
        });
        for (let i = 0; i < 10; i++) {
          const error = await settle(call(createContext({ deadline: Date.now() - 1 }), "x"));
          expect((error as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
        }
        expect(onEject).not.toHaveBeenCalled();
        expect(c.calls).toEqual([]);
        expect([await call(background, "x"), await call(background, "x")]).toEqual(["a", "b"]);
      });

      it("does not touch the context's failed set", async () => {
        const c = cluster(["a", "b"]);
        c.behave("a", (ctx) => {
          ctx.throwIfAborted(); // as a transport client does
          return "a";
        });
        const ctx = withFailedInstances(createContext({ deadline: Date.now() - 1 }));
        await settle(balancerEndpoint(roundRobin(c.endpointer))(ctx, "x"));
        expect(ctx.value(failedInstancesKey)).toEqual(new Set());
      });

      it("still charges an instance when a context ends during its call (a per-attempt timeout)", async () => {
        const c = cluster(["a"]);
        const record = vi.fn();
        const handle = createCancelableContext();
        c.behave("a", () => {
          handle.cancel(new ServiceError(Code.DEADLINE_EXCEEDED, "attempt timed out"));
          return Promise.reject(handle.context.abortReason);
        });
        const call = balancerEndpoint(roundRobin(c.endpointer), { outlierDetector: { record } });
        const error = await settle(call(handle.context, "x"));
        expect((error as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
        expect(record).toHaveBeenCalledExactlyOnceWith(c.endpointer.endpoints()[0], "failure");
      });
    });

    it("reports success on an answer", async () => {
      const c = cluster(["a"]);
      const end = vi.fn();
      const record = vi.fn();
      const balancer: Balancer<string, string> = {
        pick: () => c.endpointer.endpoints()[0],
        start: () => ({ end }),
      };
      await balancerEndpoint(balancer, { outlierDetector: { record } })(background, "x");
      expect(end).toHaveBeenCalledExactlyOnceWith("success");
      expect(record).toHaveBeenCalledExactlyOnceWith(c.endpointer.endpoints()[0], "success");
    });

    it("takes its own failure codes", async () => {
      const c = cluster(["a"]);
      const record = vi.fn();
      const call = balancerEndpoint(roundRobin(c.endpointer), {
        outlierDetector: { record },
        failureCodes: [Code.RESOURCE_EXHAUSTED],
      });
      c.behave("a", () => Promise.reject(new ServiceError(Code.RESOURCE_EXHAUSTED)));
      await settle(call(background, "x"));
      c.behave("a", () => Promise.reject(new ServiceError(Code.UNAVAILABLE)));
      await settle(call(background, "x"));
      expect(record.mock.calls.map(([, o]) => o)).toEqual(["failure", "success"]);
    });

    it("exports the default failure codes", () => {
      expect([...defaultFailureCodes].sort()).toEqual(
        [Code.UNAVAILABLE, Code.INTERNAL, Code.UNKNOWN, Code.DEADLINE_EXCEEDED].sort(),
      );
      expect(Object.isFrozen(defaultFailureCodes)).toBe(true);
    });
  });

  it("tracks calls in flight for leastRequests", async () => {
    const c = cluster(["a", "b"]);
    const slow = deferred<string>();
    c.behave("a", () => slow.promise);
    const call = balancerEndpoint(leastRequests(c.endpointer, { tieBreak: "roundRobin" }));
    const first = call(background, "x"); // a, stays in flight
    expect(await call(background, "x")).toBe("b");
    expect(await call(background, "x")).toBe("b");
    slow.resolve("a");
    expect(await first).toBe("a");
    expect(tally(await Promise.all([call(background, "x"), call(background, "x")]))).toEqual({ a: 1, b: 1 });
  });

  describe("avoiding failed instances", () => {
    const alwaysFirst = () => 0; // random() then always picks the first candidate

    it("avoids the instance that just failed for the next call with the same context", async () => {
      const c = cluster(["a", "b", "c"]);
      c.behave("a", () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "a down")));
      const call = balancerEndpoint(random(c.endpointer, { rng: alwaysFirst }));
      const ctx = createContext({ timeout: 10_000 });
      await expect(call(ctx, "x")).rejects.toThrow("a down");
      expect(await call(ctx, "x")).toBe("b");
      // Another context is not affected...
      await expect(call(createContext({}), "x")).rejects.toThrow("a down");
      // ...and once a call with the context succeeded, it picks as usual again.
      await expect(call(ctx, "x")).rejects.toThrow("a down");
    });

    it.each([
      ["roundRobin", (s: Source) => roundRobin(s), "c"],
      ["random", (s: Source) => random(s, { rng: alwaysFirst }), "a"],
      ["leastRequests", (s: Source) => leastRequests(s, { rng: alwaysFirst }), "a"],
      ["weighted", (s: Source) => weighted(s), "c"],
    ])(
      "with %s, avoids every instance that failed a call with the same context (regression)",
      async (_, make, other) => {
        const c = cluster([{ address: "a", weight: 2 }, "b", "c"]);
        for (const x of ["a", "b"])
          c.behave(x, () => Promise.reject(new ServiceError(Code.UNAVAILABLE, `${x} down`)));
        const call = balancerEndpoint(make(c.endpointer));
        const ctx = createContext({});
        await expect(call(ctx, "x")).rejects.toThrow("a down");
        await expect(call(ctx, "x")).rejects.toThrow("b down");
        await settle(call(createContext({}), "x")); // another caller moves the balancer on in between
        // Both a and b are still avoided (not just b, the latest), so the third attempt reaches c.
        expect(await call(ctx, "x")).toBe("c");
        expect(c.calls).toEqual(["a", "b", other, "c"]);
      },
    );

    describe("once every instance has failed (regression: avoidance then stopped)", () => {
      /** A runner that calls `call` `n` times with `ctx` and returns which instance each call reached. */
      function attempts(c: Cluster, call: Endpoint<string, string>) {
        return async (ctx: Context, n: number): Promise<string[]> => {
          const from = c.calls.length;
          for (let i = 0; i < n; i++) await settle(call(ctx, "x"));
          return c.calls.slice(from);
        };
      }
      const down = (c: Cluster, xs: string[]) => {
        for (const x of xs)
          c.behave(x, () => Promise.reject(new ServiceError(Code.UNAVAILABLE, `${x} down`)));
      };

      it("still avoids the instance that just failed with the same context", async () => {
        const c = cluster(["a", "b"]);
        down(c, ["a", "b"]);
        // The rng asks for the first instance, then always for the last: the third attempt, with a and b
        // both failed, used to go back to b, which had just failed.
        const call = balancerEndpoint(random(c.endpointer, { rng: sequence(0, 0.99) }));
        const run = attempts(c, call);
        expect(await run(createContext({}), 4)).toEqual(["a", "b", "a", "b"]);
      });

      it("starts the same context's set over from the latest failure, so attempts go round the others", async () => {
        const c = cluster(["a", "b", "c"]);
        down(c, ["a", "b", "c"]);
        const call = balancerEndpoint(random(c.endpointer, { rng: () => 0.99 })); // the last allowed one
        const run = attempts(c, call);
        // c, b, a; then the set starts over from a: c, b (a and c avoided); then from b: c, a; ...
        expect(await run(createContext({}), 7)).toEqual(["c", "b", "a", "c", "b", "c", "a"]);
      });

      it("still avoids the latest failure with a failedInstancesKey set, which keeps every failed address", async () => {
        const c = cluster(["a", "b"]);
        down(c, ["a", "b"]);
        const call = balancerEndpoint(random(c.endpointer, { rng: sequence(0, 0.99) }));
        const logical = withFailedInstances(createContext({}));
        const run = attempts(c, call);
        expect(await run(logical, 4)).toEqual(["a", "b", "a", "b"]);
        expect([...(logical.value(failedInstancesKey) ?? [])]).toEqual(["a", "b"]);
      });

      it("still avoids the latest failure when the set shrinks to the failed instances", async () => {
        const c = cluster(["a", "b", "c"]);
        down(c, ["a", "b"]);
        const call = balancerEndpoint(random(c.endpointer, { rng: sequence(0, 0.5, 0.99) }));
        const ctx = createContext({});
        const run = attempts(c, call);
        expect(await run(ctx, 2)).toEqual(["a", "b"]);
        c.cache.update(["a", "b"]); // c leaves: a and b, both failed, are all there is
        expect(await run(ctx, 1)).toEqual(["a"]);
      });
    });

    it("does not avoid an instance after a client error", async () => {
      const c = cluster(["a", "b"]);
      c.behave("a", () => Promise.reject(new ServiceError(Code.INVALID_ARGUMENT, "bad request")));
      const call = balancerEndpoint(random(c.endpointer, { rng: alwaysFirst }));
      const ctx = createContext({});
      await expect(call(ctx, "x")).rejects.toThrow("bad request");
      await expect(call(ctx, "x")).rejects.toThrow("bad request");
    });

    it("avoids every instance in the failedInstancesKey set, across derived contexts", async () => {
      const c = cluster(["a", "b", "c"]);
      for (const x of ["a", "b", "c"])
        c.behave(x, () => Promise.reject(new ServiceError(Code.UNAVAILABLE, `${x} down`)));
      const call = balancerEndpoint(random(c.endpointer, { rng: alwaysFirst }));
      const logical = withFailedInstances(createContext({ timeout: 10_000 }));
      const failures: string[] = [];
      for (let attempt = 0; attempt < 4; attempt++) {
        const { context, release } = logical.withTimeout(1_000); // a per-attempt child, as a retry layer makes
        try {
          await call(context, "x");
        } catch (error) {
          failures.push((error as Error).message);
        } finally {
          release();
        }
      }
      // Each attempt reaches a new instance; once all failed, the balancer picks as usual.
      expect(failures).toEqual(["a down", "b down", "c down", "a down"]);
      expect([...(logical.value(failedInstancesKey) ?? [])].sort()).toEqual(["a", "b", "c"]);
    });

    it("uses a key shared across package copies", () => {
      expect(failedInstancesKey.id).toBe(Symbol.for("svckit:lb.failedInstances"));
      expect(failedInstancesKey.defaultValue).toBeUndefined();
      const ctx = withFailedInstances(background);
      expect(ctx.value(failedInstancesKey)).toEqual(new Set());
      expect(withFailedInstances(background).value(failedInstancesKey)).not.toBe(
        ctx.value(failedInstancesKey),
      );
    });

    it("lets a retry loop reach a healthy instance with round robin", async () => {
      const c = cluster(["a", "b", "c"]);
      c.behave("b", () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "b down")));
      const call = balancerEndpoint(roundRobin(c.endpointer));
      const retried = async (attempts: number) => {
        const ctx = withFailedInstances(background);
        for (let i = 1; ; i++) {
          try {
            return await call(ctx, "x");
          } catch (error) {
            if (i === attempts) throw error;
          }
        }
      };
      const answers = [];
      for (let i = 0; i < 6; i++) answers.push(await retried(2));
      expect(answers.every((a) => a === "a" || a === "c")).toBe(true);
    });
  });

  it("rejects a balancer without pick", () => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid balancer
    expect(() => balancerEndpoint({} as any)).toThrow(
      new TypeError("balancerEndpoint: balancer must have a pick() method"),
    );
  });
});

describe("createBalancedEndpoint", () => {
  it.each(["roundRobin", "random", "weighted", "leastRequests", "p2c"] as const)(
    "builds a working %s endpoint over every instance",
    async (balancer) => {
      const c = cluster(["a", "b", "c"]);
      const call = createBalancedEndpoint(c.endpointer, { balancer, rng: seeded(3), now: fakeClock().now });
      for (let i = 0; i < 60; i++) await call(background, "x");
      expect(Object.keys(tally(c.calls)).sort()).toEqual(["a", "b", "c"]);
    },
  );

  it("uses p2c by default, with the given clock", async () => {
    const clock = fakeClock();
    const c = cluster(["fast", "slow"]);
    c.behave("fast", () => {
      clock.advance(1);
      return "fast";
    });
    c.behave("slow", () => {
      clock.advance(100);
      return "slow";
    });
    const call = createBalancedEndpoint(c.endpointer, { now: clock.now, rng: seeded(1) });
    for (let i = 0; i < 100; i++) await call(background, "x");
    expect(tally(c.calls).fast).toBeGreaterThan(90);
  });

  it("takes a function that makes the balancer over the (filtered) source", async () => {
    const c = cluster(["a", "b"]);
    const make = vi.fn((source) => roundRobin(source));
    const call = createBalancedEndpoint(c.endpointer, { balancer: make, outlierDetection: false });
    expect(make).toHaveBeenCalledExactlyOnceWith(c.endpointer);
    expect(await call(background, "x")).toBe("a");
    const filtered = vi.fn((source) => roundRobin(source));
    createBalancedEndpoint(c.endpointer, { balancer: filtered });
    expect(filtered.mock.calls[0]?.[0]).not.toBe(c.endpointer);
  });

  it("ejects a failing instance by default (5 failures in a row)", async () => {
    const clock = fakeClock();
    const c = cluster(["a", "b"]);
    c.behave("a", () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "a down")));
    const call = createBalancedEndpoint(c.endpointer, {
      balancer: "roundRobin",
      now: clock.now,
      service: "users",
    });
    for (let i = 0; i < 10; i++) await settle(call(background, "x"));
    expect(tally(c.calls)).toEqual({ a: 5, b: 5 });
    for (let i = 0; i < 10; i++) expect(await call(background, "x")).toBe("b");
    clock.advance(30_000);
    await settle(call(background, "x"));
    await settle(call(background, "x"));
    expect(c.calls.slice(-2).sort()).toEqual(["a", "b"]);
  });

  it("readmits on the default clock, which fake timers drive", async () => {
    vi.useFakeTimers();
    try {
      const c = cluster(["a", "b"]);
      c.behave("a", () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "a down")));
      const call = createBalancedEndpoint(c.endpointer, { balancer: "roundRobin" });
      for (let i = 0; i < 10; i++) await settle(call(background, "x"));
      expect(tally(c.calls)).toEqual({ a: 5, b: 5 });
      vi.advanceTimersByTime(29_999);
      for (let i = 0; i < 4; i++) expect(await call(background, "x")).toBe("b");
      vi.advanceTimersByTime(1);
      await settle(call(background, "x"));
      await settle(call(background, "x"));
      expect(c.calls.slice(-2).sort()).toEqual(["a", "b"]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("passes outlier options and the clock to the detector", async () => {
    const clock = fakeClock();
    const onEject = vi.fn();
    const c = cluster(["a", "b"]);
    c.behave("a", () => Promise.reject(new Error("boom")));
    const call = createBalancedEndpoint(c.endpointer, {
      balancer: "roundRobin",
      now: clock.now,
      outlierDetection: { consecutiveFailures: 1, baseEjectionTime: 50, onEject },
    });
    await settle(call(background, "x"));
    expect(onEject).toHaveBeenCalledExactlyOnceWith({ address: "a" }, 50);
    expect(await call(background, "x")).toBe("b");
    expect(await call(background, "x")).toBe("b");
    clock.advance(50);
    await settle(call(background, "x"));
    await settle(call(background, "x"));
    expect(c.calls.slice(-2).sort()).toEqual(["a", "b"]);
  });

  it("keeps call outcomes when onEject or onReadmit throws (regression)", async () => {
    const clock = fakeClock();
    const c = cluster(["a", "b"]);
    const down = new ServiceError(Code.UNAVAILABLE, "a down");
    c.behave("a", () => Promise.reject(down));
    const hook = () => {
      throw new Error("hook failed");
    };
    const call = createBalancedEndpoint(c.endpointer, {
      balancer: "roundRobin",
      now: clock.now,
      outlierDetection: { consecutiveFailures: 1, baseEjectionTime: 50, onEject: hook, onReadmit: hook },
    });
    // The ejecting call rejects with a's own error, not the hook's.
    await expect(call(background, "x")).rejects.toBe(down);
    expect(await call(background, "x")).toBe("b");
    clock.advance(50);
    // The call that readmits a still reaches an instance and gets its answer.
    c.behave("a", () => "a is back");
    const answers = [await call(background, "x"), await call(background, "x")];
    expect(answers.sort()).toEqual(["a is back", "b"]);
    expect(c.calls.slice(0, 2)).toEqual(["a", "b"]);
    expect(c.calls.slice(2).sort()).toEqual(["a", "b"]);
  });

  it("turns ejection off with outlierDetection: false", async () => {
    const c = cluster(["a", "b"]);
    c.behave("a", () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "a down")));
    const call = createBalancedEndpoint(c.endpointer, { balancer: "roundRobin", outlierDetection: false });
    for (let i = 0; i < 20; i++) await settle(call(background, "x"));
    expect(tally(c.calls)).toEqual({ a: 10, b: 10 });
  });

  it("fails with UNAVAILABLE naming the service when there are no instances", async () => {
    const call = createBalancedEndpoint(cluster([]).endpointer, { service: "billing" });
    await expect(call(background, "x")).rejects.toEqual(
      unavailable('no endpoints available for service "billing"'),
    );
  });

  it("passes failureCodes on", async () => {
    const c = cluster(["a", "b"]);
    c.behave("a", () => Promise.reject(new ServiceError(Code.RESOURCE_EXHAUSTED, "busy")));
    const call = createBalancedEndpoint(c.endpointer, {
      balancer: "roundRobin",
      failureCodes: [Code.RESOURCE_EXHAUSTED],
      outlierDetection: { consecutiveFailures: 1 },
    });
    await settle(call(background, "x"));
    for (let i = 0; i < 4; i++) expect(await call(background, "x")).toBe("b");
  });

  it.each([
    [
      { balancer: "fastest" },
      TypeError,
      'createBalancedEndpoint: unknown balancer "fastest"; expected one of roundRobin, random, weighted, leastRequests, p2c or a function',
    ],
    [{ rng: 1 }, TypeError, "createBalancedEndpoint: rng must be a function, got number"],
    [{ now: "x" }, TypeError, "createBalancedEndpoint: now must be a function, got string"],
    [
      { outlierDetection: { consecutiveFailures: 0 } },
      RangeError,
      "outlier detection: consecutiveFailures must be an integer >= 1, got 0",
    ],
  ])("rejects %o", (options, type, message) => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid options
    expect(() => createBalancedEndpoint(cluster([]).endpointer, options as any)).toThrow(new type(message));
  });

  it("rejects a source without endpoints()", () => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid source
    expect(() => createBalancedEndpoint({} as any)).toThrow(
      new TypeError("createBalancedEndpoint: source must have an endpoints() method"),
    );
  });
});

describe("avoidFailedInstances + @svckit/retry", () => {
  async function run(avoid: boolean): Promise<{ result: unknown; tried: string[] }> {
    const tried: string[] = [];
    const endpointer = createEndpointer(createStaticInstancer(["a", "b", "c"]), (instance) => ({
      endpoint: async (_ctx: unknown, _req: unknown) => {
        tried.push(instance.address);
        if (instance.address !== "c") throw new ServiceError(Code.UNAVAILABLE, `${instance.address} is down`);
        return "ok";
      },
    }));
    // rng 0 always picks the first instance still allowed.
    const balanced = createBalancedEndpoint(endpointer, { balancer: "random", rng: () => 0, service: "s" });
    const retrying = retry({ maxAttempts: 3, perAttemptTimeout: 1_000, random: () => 0 });
    const endpoint = avoid ? chain(avoidFailedInstances(), retrying)(balanced) : retrying(balanced);
    const result = await endpoint(createContext({ timeout: 5_000 }), {}).catch((e: unknown) => e);
    await endpointer.close();
    return { result, tried };
  }

  it("sends each retry to an instance that has not failed this call, across per-attempt contexts", async () => {
    expect(await run(true)).toEqual({ result: "ok", tried: ["a", "b", "c"] });
  });

  it("without it, per-attempt child contexts may go back to the failed instance", async () => {
    const { result, tried } = await run(false);
    expect(tried).toEqual(["a", "a", "a"]);
    expect(result).toBeInstanceOf(ServiceError);
    expect((result as ServiceError).message).toBe("a is down");
  });
});
