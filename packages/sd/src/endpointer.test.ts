import { background, Code, ServiceError } from "@svckit/endpoint";
import {
  createEndpointer,
  createInstanceCache,
  createStaticInstancer,
  type EndpointerErrorInfo,
  type Factory,
  type Instance,
  type Instancer,
  type InstancerState,
} from "@svckit/sd";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";

/** A factory whose endpoints answer with their address, recording creations and closes. */
function trackingFactory() {
  const created: string[] = [];
  const closed: string[] = [];
  const factory: Factory<string, string> = (instance) => {
    created.push(instance.address);
    return {
      endpoint: async (_ctx, req) => `${instance.address}:${req}`,
      close: () => {
        closed.push(instance.address);
      },
    };
  };
  return { factory, created, closed };
}

const addressesOf = (entries: readonly { readonly instance: Instance }[]): string[] =>
  entries.map((e) => e.instance.address);

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("createEndpointer", () => {
  it("makes one endpoint per instance, in the instancer's order", async () => {
    const { factory, created } = trackingFactory();
    const endpointer = createEndpointer(createStaticInstancer(["a:1", "b:2"]), factory);
    expect(addressesOf(endpointer.endpoints())).toEqual(["a:1", "b:2"]);
    expect(created).toEqual(["a:1", "b:2"]);
    const [first] = endpointer.endpoints();
    expect(await first?.endpoint(background, "x")).toBe("a:1:x");
    expect(endpointer.error).toBeUndefined();
  });

  it("creates endpoints for new instances and closes those of removed ones, keeping the others", () => {
    const cache = createInstanceCache(["a:1", "b:2"]);
    const { factory, created, closed } = trackingFactory();
    const endpointer = createEndpointer(cache, factory);
    const [a] = endpointer.endpoints();
    cache.update(["a:1", "c:3"]);
    expect(addressesOf(endpointer.endpoints())).toEqual(["a:1", "c:3"]);
    expect(created).toEqual(["a:1", "b:2", "c:3"]);
    expect(closed).toEqual(["b:2"]);
    expect(endpointer.endpoints()[0]).toBe(a);
  });

  it("returns the same frozen array until the set changes", () => {
    const cache = createInstanceCache(["a:1"]);
    const endpointer = createEndpointer(cache, trackingFactory().factory);
    const entries = endpointer.endpoints();
    expect(Object.isFrozen(entries)).toBe(true);
    expect(endpointer.endpoints()).toBe(entries);
    cache.update(["b:2", "a:1"]);
    expect(endpointer.endpoints()).not.toBe(entries);
  });

  it("keeps the endpoint but refreshes the entry when only weight or metadata change", () => {
    const cache = createInstanceCache([{ address: "a:1", weight: 1 }]);
    const { factory, created, closed } = trackingFactory();
    const endpointer = createEndpointer(cache, factory);
    const before = endpointer.endpoints()[0];
    cache.update([{ address: "a:1", weight: 5 }]);
    const after = endpointer.endpoints()[0];
    expect(after).not.toBe(before);
    expect(after?.endpoint).toBe(before?.endpoint);
    expect(after?.instance.weight).toBe(5);
    expect(created).toEqual(["a:1"]);
    expect(closed).toEqual([]);
  });

  it("tells subscribers the entries at once and after each change", () => {
    const cache = createInstanceCache(["a:1"]);
    const endpointer = createEndpointer(cache, trackingFactory().factory);
    const seen: string[][] = [];
    const stop = endpointer.subscribe((entries) => seen.push(addressesOf(entries)));
    cache.update(["a:1", "b:2"]);
    cache.update(["b:2", "a:1"]); // same set: the cache does not even notify
    stop();
    cache.update([]);
    expect(seen).toEqual([["a:1"], ["a:1", "b:2"]]);
  });

  it("does not notify when a state change leaves the entries as they were", () => {
    const cache = createInstanceCache(["a:1"]);
    const endpointer = createEndpointer(cache, trackingFactory().factory);
    const listener = vi.fn();
    endpointer.subscribe(listener);
    cache.fail(new Error("down"));
    cache.update(["a:1"]);
    expect(listener).toHaveBeenCalledTimes(1);
  });

  describe("a factory that throws", () => {
    it("skips only that instance and reports the error", () => {
      const onError = vi.fn<(error: unknown, info: EndpointerErrorInfo) => void>();
      const boom = new Error("bad address");
      const factory: Factory<string, string> = (instance) => {
        if (instance.address === "bad") throw boom;
        return { endpoint: async () => instance.address };
      };
      const endpointer = createEndpointer(createStaticInstancer(["a:1", "bad", "c:3"]), factory, { onError });
      expect(addressesOf(endpointer.endpoints())).toEqual(["a:1", "c:3"]);
      expect(onError).toHaveBeenCalledExactlyOnceWith(boom, {
        during: "create",
        instance: { address: "bad" },
      });
      expect(endpointer.error).toBe(boom);
      void endpointer.close();
    });

    it("is tried again on the next change, and its error cleared once it works", () => {
      const cache = createInstanceCache(["a:1"]);
      let fail = true;
      const factory: Factory = (instance) => {
        if (fail) throw new Error(`cannot reach ${instance.address}`);
        return { endpoint: async () => instance.address };
      };
      const endpointer = createEndpointer(cache, factory);
      expect(endpointer.endpoints()).toEqual([]);
      expect(endpointer.error?.message).toBe("cannot reach a:1");
      fail = false;
      cache.update(["a:1", "b:2"]);
      expect(addressesOf(endpointer.endpoints())).toEqual(["a:1", "b:2"]);
      expect(endpointer.error).toBeUndefined();
    });

    it("forgets the error of an instance that went away", () => {
      const cache = createInstanceCache(["bad"]);
      const endpointer = createEndpointer(cache, (instance) => {
        if (instance.address === "bad") throw new Error("no");
        return { endpoint: async () => 1 };
      });
      expect(endpointer.error?.message).toBe("no");
      cache.update(["good"]);
      expect(endpointer.error).toBeUndefined();
    });

    it("wraps a thrown non-Error for the error property", () => {
      const endpointer = createEndpointer(createStaticInstancer(["a:1"]), () => {
        throw "nope";
      });
      expect(endpointer.error).toBeInstanceOf(Error);
      expect(endpointer.error?.message).toBe("nope");
      void endpointer.close();
    });

    it("treats a result without an endpoint function as an error and closes what it returned", () => {
      const close = vi.fn();
      const onError = vi.fn();
      const endpointer = createEndpointer(
        createStaticInstancer(["a:1"]),
        // biome-ignore lint/suspicious/noExplicitAny: a factory that breaks its contract
        (() => ({ endpoint: "not a function", close })) as any,
        { onError },
      );
      expect(endpointer.endpoints()).toEqual([]);
      expect(close).toHaveBeenCalledTimes(1);
      expect(endpointer.error).toEqual(
        new TypeError("factory returned no endpoint function for instance a:1"),
      );
      expect(onError).toHaveBeenCalledWith(endpointer.error, {
        during: "create",
        instance: { address: "a:1" },
      });
      void endpointer.close();
    });

    it("is not broken by an onError that throws", () => {
      const endpointer = createEndpointer(
        createStaticInstancer(["bad", "b:2"]),
        (instance) => {
          if (instance.address === "bad") throw new Error("no");
          return { endpoint: async () => 1 };
        },
        {
          onError: () => {
            throw new Error("handler bug");
          },
        },
      );
      expect(addressesOf(endpointer.endpoints())).toEqual(["b:2"]);
      void endpointer.close();
    });
  });

  describe("when the instancer reports an error", () => {
    it("keeps the last good endpoints by default, for as long as the error lasts", () => {
      vi.useFakeTimers();
      const cache = createInstanceCache(["a:1", "b:2"]);
      const { factory, closed } = trackingFactory();
      const endpointer = createEndpointer(cache, factory);
      const entries = endpointer.endpoints();
      cache.fail(new Error("etcd: unavailable"));
      vi.advanceTimersByTime(3_600_000);
      expect(endpointer.endpoints()).toBe(entries);
      expect(endpointer.error?.message).toBe("etcd: unavailable");
      expect(closed).toEqual([]);
      cache.update(["a:1", "b:2"]);
      expect(endpointer.error).toBeUndefined();
    });

    it("does not apply an empty set that comes with an error (a flapping instancer)", () => {
      const listeners = new Set<(s: InstancerState) => void>();
      let state: InstancerState = { instances: [{ address: "a:1" }] };
      const flappy: Instancer = {
        current: () => state,
        subscribe(listener) {
          listeners.add(listener);
          listener(state);
          return () => listeners.delete(listener);
        },
        close: () => listeners.clear(),
      };
      const set = (next: InstancerState) => {
        state = next;
        for (const l of listeners) l(state);
      };
      const { factory, closed } = trackingFactory();
      const endpointer = createEndpointer(flappy, factory);
      set({ instances: [], error: new Error("lookup failed") });
      expect(addressesOf(endpointer.endpoints())).toEqual(["a:1"]);
      expect(closed).toEqual([]);
      set({ instances: [{ address: "b:2" }], error: new Error("partial") });
      expect(addressesOf(endpointer.endpoints())).toEqual(["b:2"]);
      set({ instances: [] });
      expect(endpointer.endpoints()).toEqual([]);
      expect(closed).toEqual(["a:1", "b:2"]);
    });

    it("uses the last good set an instancer in error reports when subscribing", () => {
      const cache = createInstanceCache(["a:1"]);
      cache.fail(new Error("down"));
      const endpointer = createEndpointer(cache, trackingFactory().factory);
      expect(addressesOf(endpointer.endpoints())).toEqual(["a:1"]);
      expect(endpointer.error?.message).toBe("down");
    });

    it("drops every endpoint once the error outlives invalidateTimeout", () => {
      vi.useFakeTimers();
      const cache = createInstanceCache(["a:1", "b:2"]);
      const { factory, created, closed } = trackingFactory();
      const endpointer = createEndpointer(cache, factory, { invalidateTimeout: 1_000 });
      const seen: string[][] = [];
      endpointer.subscribe((entries) => seen.push(addressesOf(entries)));
      cache.fail(new Error("down"));
      vi.advanceTimersByTime(999);
      expect(endpointer.endpoints()).toHaveLength(2);
      cache.fail(new Error("still down")); // does not restart the clock
      vi.advanceTimersByTime(1);
      expect(endpointer.endpoints()).toEqual([]);
      expect(closed.sort()).toEqual(["a:1", "b:2"]);
      expect(seen).toEqual([["a:1", "b:2"], []]);
      // Further errors carrying the old set do not bring the endpoints back...
      cache.fail(new Error("down again"));
      expect(endpointer.endpoints()).toEqual([]);
      // ...a successful lookup does.
      cache.update(["a:1"]);
      expect(addressesOf(endpointer.endpoints())).toEqual(["a:1"]);
      expect(created).toEqual(["a:1", "b:2", "a:1"]);
      expect(endpointer.error).toBeUndefined();
    });

    it("keeps the endpoints when the instancer recovers before invalidateTimeout", () => {
      vi.useFakeTimers();
      const cache = createInstanceCache(["a:1"]);
      const { factory, closed } = trackingFactory();
      const endpointer = createEndpointer(cache, factory, { invalidateTimeout: 1_000 });
      cache.fail(new Error("down"));
      vi.advanceTimersByTime(500);
      cache.update(["a:1"]);
      vi.advanceTimersByTime(10_000);
      expect(addressesOf(endpointer.endpoints())).toEqual(["a:1"]);
      expect(closed).toEqual([]);
      // A new error starts a fresh timer.
      cache.fail(new Error("down"));
      vi.advanceTimersByTime(1_000);
      expect(endpointer.endpoints()).toEqual([]);
    });

    it("invalidates at once with invalidateTimeout 0", () => {
      const cache = createInstanceCache(["a:1"]);
      const { factory, closed } = trackingFactory();
      const endpointer = createEndpointer(cache, factory, { invalidateTimeout: 0 });
      cache.fail(new Error("down"));
      expect(endpointer.endpoints()).toEqual([]);
      expect(closed).toEqual(["a:1"]);
      expect(endpointer.error?.message).toBe("down");
    });

    it("reports a listener that throws on the timer-driven invalidation", () => {
      vi.useFakeTimers();
      const cache = createInstanceCache(["a:1"]);
      const onError = vi.fn();
      const endpointer = createEndpointer(cache, trackingFactory().factory, {
        invalidateTimeout: 10,
        onError,
      });
      const bug = new Error("listener bug");
      endpointer.subscribe((entries) => {
        if (entries.length === 0) throw bug;
      });
      cache.fail(new Error("down"));
      vi.advanceTimersByTime(10);
      expect(onError).toHaveBeenCalledExactlyOnceWith(bug, { during: "listener" });
    });
  });

  it.each([
    [-1, "createEndpointer: invalidateTimeout must be a number of ms >= 0, got -1"],
    [
      2 ** 31,
      "createEndpointer: invalidateTimeout must be at most 2147483647 ms (24.8 days) or Infinity, got 2147483648",
    ],
    [Number.NaN, "createEndpointer: invalidateTimeout must be a number of ms >= 0, got NaN"],
    ["5", "createEndpointer: invalidateTimeout must be a number of ms >= 0, got 5"],
  ])("rejects invalidateTimeout %s", (value, message) => {
    const instancer = createStaticInstancer([]);
    expect(() =>
      createEndpointer(instancer, () => ({ endpoint: async () => 1 }), {
        invalidateTimeout: value as unknown as number,
      }),
    ).toThrow(new RangeError(message));
  });

  it("rejects a factory that is not a function", () => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid factory
    expect(() => createEndpointer(createStaticInstancer([]), undefined as any)).toThrow(
      new TypeError("createEndpointer: factory must be a function"),
    );
  });

  it("treats invalidateTimeout Infinity like no timeout", () => {
    vi.useFakeTimers();
    const cache = createInstanceCache(["a:1"]);
    const endpointer = createEndpointer(cache, trackingFactory().factory, {
      invalidateTimeout: Number.POSITIVE_INFINITY,
    });
    cache.fail(new Error("down"));
    vi.advanceTimersByTime(2 ** 31);
    expect(endpointer.endpoints()).toHaveLength(1);
  });

  describe("close", () => {
    it("closes every endpoint once, empties the set, and stops following the instancer", async () => {
      const cache = createInstanceCache(["a:1", "b:2"]);
      const { factory, created, closed } = trackingFactory();
      const endpointer = createEndpointer(cache, factory);
      const listener = vi.fn();
      endpointer.subscribe(listener);
      const done = endpointer.close();
      expect(endpointer.close()).toBe(done);
      await done;
      expect(closed.sort()).toEqual(["a:1", "b:2"]);
      expect(endpointer.endpoints()).toEqual([]);
      cache.update(["c:3"]);
      expect(created).toEqual(["a:1", "b:2"]);
      expect(endpointer.endpoints()).toEqual([]);
      expect(listener).toHaveBeenCalledTimes(1);
      const late = vi.fn();
      endpointer.subscribe(late)();
      expect(late).toHaveBeenCalledExactlyOnceWith([]);
      // The instancer is the caller's: it stays open.
      expect(cache.closed).toBe(false);
    });

    it("waits for asynchronous closes, including those of instances removed earlier", async () => {
      const cache = createInstanceCache(["a:1", "b:2"]);
      const resolvers = new Map<string, () => void>();
      const endpointer = createEndpointer(cache, (instance) => ({
        endpoint: async () => 1,
        close: () =>
          new Promise<void>((resolve) => {
            resolvers.set(instance.address, resolve);
          }),
      }));
      cache.update(["b:2"]);
      let settled = false;
      const done = endpointer.close().then(() => {
        settled = true;
      });
      await Promise.resolve();
      resolvers.get("b:2")?.();
      await new Promise((r) => setTimeout(r, 0));
      expect(settled).toBe(false);
      resolvers.get("a:1")?.();
      await done;
      expect(settled).toBe(true);
    });

    it("reports closes that throw or reject, and still resolves", async () => {
      const onError = vi.fn();
      const endpointer = createEndpointer(
        createStaticInstancer(["sync:1", "async:2"]),
        (instance) => ({
          endpoint: async () => 1,
          close: instance.address.startsWith("sync")
            ? () => {
                throw new Error("sync close failed");
              }
            : () => Promise.reject(new Error("async close failed")),
        }),
        { onError },
      );
      await endpointer.close();
      expect(onError).toHaveBeenCalledTimes(2);
      expect(onError).toHaveBeenCalledWith(new Error("sync close failed"), {
        during: "close",
        instance: { address: "sync:1" },
      });
      expect(onError).toHaveBeenCalledWith(new Error("async close failed"), {
        during: "close",
        instance: { address: "async:2" },
      });
    });

    it("clears a pending invalidation timer", async () => {
      vi.useFakeTimers();
      const cache = createInstanceCache(["a:1"]);
      const endpointer = createEndpointer(cache, trackingFactory().factory, { invalidateTimeout: 1_000 });
      cache.fail(new Error("down"));
      expect(vi.getTimerCount()).toBe(1);
      await endpointer.close();
      expect(vi.getTimerCount()).toBe(0);
    });
  });

  describe("retrying a factory that failed (a static instancer never changes again)", () => {
    /** A factory that fails its first `failures` calls (throwing, or rejecting when async), recording when each was made. */
    function flakyFactory(failures: number, mode: "throw" | "reject") {
      const calls: number[] = [];
      const factory: Factory<string, string> = (instance) => {
        calls.push(Date.now());
        const n = calls.length;
        const error = new Error(`connect ${instance.address} failed (${n})`);
        const result = { endpoint: async () => instance.address };
        if (mode === "throw") {
          if (n <= failures) throw error;
          return result;
        }
        return n <= failures ? Promise.reject(error) : Promise.resolve(result);
      };
      return { factory, calls };
    }

    /** A factory whose calls stay running until the test settles them; counts calls running at once per address. */
    function manualFactory() {
      const calls: string[] = [];
      const closed: string[] = [];
      const running = new Map<string, number>();
      let mostAtOnce = 0;
      const pending = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
      const factory: Factory<string, string> = (instance) => {
        const address = instance.address;
        calls.push(address);
        running.set(address, (running.get(address) ?? 0) + 1);
        mostAtOnce = Math.max(mostAtOnce, running.get(address) ?? 0);
        return new Promise((resolve, reject) => {
          const done = () => running.set(address, (running.get(address) ?? 1) - 1);
          pending.set(address, {
            resolve: () => {
              done();
              resolve({
                endpoint: async () => address,
                close: () => {
                  closed.push(address);
                },
              });
            },
            reject: (error) => {
              done();
              reject(error);
            },
          });
        });
      };
      const settle = (address: string, error?: Error) => {
        const p = pending.get(address);
        if (p === undefined) throw new Error(`no call running for ${address}`);
        pending.delete(address);
        if (error === undefined) p.resolve();
        else p.reject(error);
      };
      return { factory, calls, closed, settle, mostAtOnce: () => mostAtOnce };
    }

    it.each(["throw", "reject"] as const)(
      "adds the endpoint after the backoff when the factory fails twice (%s), then works",
      async (mode) => {
        vi.useFakeTimers();
        vi.spyOn(Math, "random").mockReturnValue(0.5); // half jitter: waits of 75 ms, then 150 ms
        const onError = vi.fn();
        const { factory, calls } = flakyFactory(2, mode);
        const endpointer = createEndpointer(createStaticInstancer(["a:1"]), factory, { onError });
        const seen: string[][] = [];
        endpointer.subscribe((entries) => seen.push(addressesOf(entries)));
        await vi.advanceTimersByTimeAsync(74);
        expect(calls).toHaveLength(1);
        expect(endpointer.error?.message).toBe("connect a:1 failed (1)");
        await vi.advanceTimersByTimeAsync(1);
        expect(calls).toHaveLength(2);
        expect(endpointer.error?.message).toBe("connect a:1 failed (2)");
        await vi.advanceTimersByTimeAsync(149);
        expect(calls).toHaveLength(2);
        expect(endpointer.endpoints()).toEqual([]);
        await vi.advanceTimersByTimeAsync(1);
        const start = calls[0] ?? 0;
        expect(calls.map((t) => t - start)).toEqual([0, 75, 225]);
        expect(addressesOf(endpointer.endpoints())).toEqual(["a:1"]);
        expect(await endpointer.endpoints()[0]?.endpoint(background, "x")).toBe("a:1");
        expect(seen).toEqual([[], ["a:1"]]);
        expect(endpointer.error).toBeUndefined();
        expect(onError.mock.calls).toEqual([
          [new Error("connect a:1 failed (1)"), { during: "create", instance: { address: "a:1" } }],
          [new Error("connect a:1 failed (2)"), { during: "create", instance: { address: "a:1" } }],
        ]);
        expect(vi.getTimerCount()).toBe(0);
        await endpointer.close();
      },
    );

    it("stops retrying an instance that leaves the list during the backoff", async () => {
      vi.useFakeTimers();
      const cache = createInstanceCache(["a:1", "b:2"]);
      const calls: string[] = [];
      const endpointer = createEndpointer(cache, (instance) => {
        calls.push(instance.address);
        if (instance.address === "a:1") throw new Error("connection refused");
        return { endpoint: async () => instance.address };
      });
      expect(vi.getTimerCount()).toBe(1);
      cache.update(["b:2"]);
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(600_000);
      expect(calls).toEqual(["a:1", "b:2"]);
      expect(addressesOf(endpointer.endpoints())).toEqual(["b:2"]);
      expect(endpointer.error).toBeUndefined();
      await endpointer.close();
    });

    it("stops retrying on close() during the backoff and leaves no timer behind", async () => {
      vi.useFakeTimers();
      const { factory, calls } = flakyFactory(Number.POSITIVE_INFINITY, "throw");
      const endpointer = createEndpointer(createStaticInstancer(["a:1", "b:2"]), factory);
      expect(vi.getTimerCount()).toBe(2);
      await endpointer.close();
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(600_000);
      expect(calls).toHaveLength(2);
    });

    it("never runs two factory calls for an instance at once, whatever the instancer does meanwhile", async () => {
      vi.useFakeTimers();
      vi.spyOn(Math, "random").mockReturnValue(0); // first wait 50 ms
      const cache = createInstanceCache(["a:1"]);
      const { factory, calls, settle, mostAtOnce } = manualFactory();
      const endpointer = createEndpointer(cache, factory);
      const seen: string[][] = [];
      endpointer.subscribe((entries) => seen.push(addressesOf(entries)));
      settle("a:1", new Error("connection refused"));
      await vi.advanceTimersByTimeAsync(50); // the retry starts and stays running
      expect(calls).toEqual(["a:1", "a:1"]);
      cache.update(["a:1", "b:2"]);
      cache.update([{ address: "a:1", weight: 3 }, "b:2"]);
      cache.fail(new Error("watch lost"));
      cache.update([{ address: "a:1", weight: 3 }, "b:2"]);
      expect(calls).toEqual(["a:1", "a:1", "b:2"]);
      settle("b:2");
      await vi.advanceTimersByTimeAsync(0);
      expect(addressesOf(endpointer.endpoints())).toEqual(["b:2"]);
      settle("a:1");
      await vi.advanceTimersByTimeAsync(0);
      // In the instancer's order, with the weight it reports now.
      expect(endpointer.endpoints().map((e) => e.instance)).toEqual([
        { address: "a:1", weight: 3 },
        { address: "b:2" },
      ]);
      expect(seen).toEqual([[], ["b:2"], ["a:1", "b:2"]]);
      expect(endpointer.error).toBeUndefined();
      expect(mostAtOnce()).toBe(1);
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(600_000);
      expect(calls).toEqual(["a:1", "a:1", "b:2"]);
      await endpointer.close();
    });

    it("closes what a running call makes for an instance that left, and reuses a call for one that came back", async () => {
      const cache = createInstanceCache(["a:1", "b:2"]);
      const { factory, calls, closed, settle } = manualFactory();
      const endpointer = createEndpointer(cache, factory);
      const listener = vi.fn();
      endpointer.subscribe(listener);
      cache.update([]);
      cache.update(["b:2"]); // b:2 left and came back while its call was running: no second call
      settle("a:1");
      settle("b:2");
      await new Promise((r) => setTimeout(r, 0));
      expect(calls).toEqual(["a:1", "b:2"]);
      expect(closed).toEqual(["a:1"]);
      expect(addressesOf(endpointer.endpoints())).toEqual(["b:2"]);
      expect(listener).toHaveBeenCalledTimes(2);
      await endpointer.close();
      expect(closed).toEqual(["a:1", "b:2"]);
    });

    it("close() waits for a running factory call and closes what it made", async () => {
      const cache = createInstanceCache(["a:1"]);
      const { factory, closed, settle } = manualFactory();
      const endpointer = createEndpointer(cache, factory);
      let settled = false;
      const done = endpointer.close().then(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 0));
      expect(settled).toBe(false);
      settle("a:1");
      await done;
      expect(closed).toEqual(["a:1"]);
      expect(endpointer.endpoints()).toEqual([]);
    });

    it.each([
      ["defaults, least jitter", undefined, 0, [50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 15_000]],
      [
        "defaults, most jitter",
        undefined,
        0.9999999,
        [100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000],
      ],
      ["initial 100, max 1000", { initial: 100, max: 1_000 }, 0.9999999, [100, 200, 400, 800, 1_000, 1_000]],
      ["multiplier 3", { initial: 10, max: 100, multiplier: 3 }, 0, [5, 15, 45, 50, 50]],
    ])(
      "waits longer after each failure in a row, up to the cap (%s)",
      async (_name, factoryRetry, random, waits) => {
        vi.useFakeTimers();
        vi.spyOn(Math, "random").mockReturnValue(random);
        const { factory, calls } = flakyFactory(Number.POSITIVE_INFINITY, "reject");
        const endpointer = createEndpointer(createStaticInstancer(["a:1"]), factory, { factoryRetry });
        await vi.advanceTimersByTimeAsync(waits.reduce((a, b) => a + b, 0));
        expect(calls.slice(1).map((t, i) => t - (calls[i] ?? 0))).toEqual(waits);
        expect(vi.getTimerCount()).toBe(1);
        await endpointer.close();
        expect(vi.getTimerCount()).toBe(0);
      },
    );

    it("tries again at once on an instancer change, without restarting the backoff", async () => {
      vi.useFakeTimers();
      vi.spyOn(Math, "random").mockReturnValue(0);
      const cache = createInstanceCache(["a:1"]);
      const calls: string[] = [];
      const endpointer = createEndpointer(cache, (instance) => {
        calls.push(instance.address);
        if (instance.address === "a:1") throw new Error("down");
        return { endpoint: async () => instance.address };
      });
      await vi.advanceTimersByTimeAsync(10);
      cache.update(["a:1", "b:2"]);
      expect(calls).toEqual(["a:1", "a:1", "b:2"]);
      expect(vi.getTimerCount()).toBe(1);
      await vi.advanceTimersByTimeAsync(99); // the second failure waits 100 ms (random 0: half the 200 ms cap)
      expect(calls).toHaveLength(3);
      await vi.advanceTimersByTimeAsync(1);
      expect(calls).toEqual(["a:1", "a:1", "b:2", "a:1"]);
      await endpointer.close();
    });

    it("with factoryRetry false, tries again only on the instancer's next change", async () => {
      vi.useFakeTimers();
      const cache = createInstanceCache(["a:1"]);
      const { factory, calls } = flakyFactory(1, "throw");
      const endpointer = createEndpointer(cache, factory, { factoryRetry: false });
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(600_000);
      expect(calls).toHaveLength(1);
      cache.update(["a:1", "b:2"]);
      expect(addressesOf(endpointer.endpoints())).toEqual(["a:1", "b:2"]);
      await endpointer.close();
    });

    it("reports a listener that throws on the change a retry made", async () => {
      vi.useFakeTimers();
      const onError = vi.fn();
      const { factory } = flakyFactory(1, "throw");
      const endpointer = createEndpointer(createStaticInstancer(["a:1"]), factory, { onError });
      const bug = new Error("listener bug");
      endpointer.subscribe((entries) => {
        if (entries.length > 0) throw bug;
      });
      await vi.advanceTimersByTimeAsync(100);
      expect(addressesOf(endpointer.endpoints())).toEqual(["a:1"]);
      expect(onError).toHaveBeenLastCalledWith(bug, { during: "listener" });
      await endpointer.close();
    });

    it("does not keep the process alive with its retry timer", async () => {
      const setTimeoutSpy = vi.spyOn(globalThis, "setTimeout");
      const endpointer = createEndpointer(createStaticInstancer(["a:1"]), () => {
        throw new Error("down");
      });
      const timer = setTimeoutSpy.mock.results[0]?.value as { hasRef?: () => boolean } | undefined;
      expect(timer?.hasRef?.()).toBe(false);
      await endpointer.close();
    });

    it.each([
      [true, new TypeError("createEndpointer: factoryRetry must be an object or false, got true")],
      [
        { initial: 0 },
        new RangeError("createEndpointer: factoryRetry.initial must be a finite number of ms > 0, got 0"),
      ],
      [
        { initial: Number.POSITIVE_INFINITY },
        new RangeError(
          "createEndpointer: factoryRetry.initial must be a finite number of ms > 0, got Infinity",
        ),
      ],
      [{ max: -1 }, new RangeError("createEndpointer: factoryRetry.max must be a number of ms > 0, got -1")],
      [
        { multiplier: 0.5 },
        new RangeError("createEndpointer: factoryRetry.multiplier must be a finite number >= 1, got 0.5"),
      ],
    ])("rejects factoryRetry %o", (factoryRetry, error) => {
      expect(() =>
        createEndpointer(createStaticInstancer([]), () => ({ endpoint: async () => 1 }), {
          factoryRetry: factoryRetry as unknown as false,
        }),
      ).toThrow(error);
    });
  });

  it("ignores repeated addresses from a custom instancer", () => {
    const state: InstancerState = { instances: [{ address: "a:1" }, { address: "a:1", weight: 3 }] };
    const instancer: Instancer = {
      current: () => state,
      subscribe: (listener) => {
        listener(state);
        return () => undefined;
      },
      close: () => undefined,
    };
    const { factory, created } = trackingFactory();
    const endpointer = createEndpointer(instancer, factory);
    expect(endpointer.endpoints()).toHaveLength(1);
    expect(endpointer.endpoints()[0]?.instance).toEqual({ address: "a:1" });
    expect(created).toEqual(["a:1"]);
  });
});

describe("createEndpointer (property)", () => {
  type Op =
    | { kind: "update"; addresses: string[] }
    | { kind: "fail" }
    | { kind: "advance"; ms: number }
    | { kind: "weight"; address: string; weight: number };
  const pool = ["a:1", "b:2", "c:3", "d:4", "e:5"];
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("update" as const), addresses: fc.subarray(pool) }),
    fc.record({ kind: fc.constant("fail" as const) }),
    fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 200 }) }),
    fc.record({
      kind: fc.constant("weight" as const),
      address: fc.constantFrom(...pool),
      weight: fc.integer({ min: 0, max: 3 }),
    }),
  );

  it("never holds endpoints of removed instances and closes each created endpoint exactly once", () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 30 }),
        fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
        fc.subarray(pool, { maxLength: 2 }),
        (ops, invalidateTimeout, broken) => {
          vi.useFakeTimers();
          try {
            const cache = createInstanceCache();
            let serial = 0;
            const open = new Map<number, string>(); // endpoint id → address
            const closeCounts = new Map<number, number>();
            const created = new Set<number>();
            const endpointIds = new WeakMap<object, number>();
            const factory: Factory = (instance: Instance) => {
              if (broken.includes(instance.address) && serial % 2 === 0) {
                serial++;
                throw new Error(`factory failed for ${instance.address}`);
              }
              const id = serial++;
              created.add(id);
              open.set(id, instance.address);
              const endpoint = async () => id;
              endpointIds.set(endpoint, id);
              return {
                endpoint,
                close: () => {
                  closeCounts.set(id, (closeCounts.get(id) ?? 0) + 1);
                  open.delete(id);
                },
              };
            };
            const endpointer = createEndpointer(cache, factory, { invalidateTimeout });
            for (const o of ops) {
              if (o.kind === "update") cache.update(o.addresses);
              else if (o.kind === "fail") cache.fail(new Error(`failure ${serial}`));
              else if (o.kind === "advance") vi.advanceTimersByTime(o.ms);
              else {
                const current = cache.current().instances;
                if (current.some((i) => i.address === o.address)) {
                  cache.update(
                    current.map((i) => (i.address === o.address ? { ...i, weight: o.weight } : i)),
                  );
                }
              }
              const state = cache.current();
              const live = new Set(state.instances.map((i) => i.address));
              const entries = endpointer.endpoints();
              // Every entry is for a live instance, holds an open endpoint, and open endpoints are exactly the entries.
              for (const entry of entries) {
                expect(live.has(entry.instance.address)).toBe(true);
                const id = endpointIds.get(entry.endpoint);
                expect(id !== undefined && open.get(id) === entry.instance.address).toBe(true);
              }
              expect([...open.values()].sort()).toEqual(addressesOf(entries).sort());
              // Without an error, every live instance whose factory worked has an entry, with the current weight.
              if (state.error === undefined) {
                for (const instance of state.instances) {
                  const entry = entries.find((e) => e.instance.address === instance.address);
                  if (entry !== undefined) expect(entry.instance).toEqual(instance);
                  else expect(broken).toContain(instance.address);
                }
              }
            }
            void endpointer.close();
            void endpointer.close();
            expect(open.size).toBe(0);
            expect([...closeCounts.keys()].sort()).toEqual([...created].sort());
            for (const id of created) expect(closeCounts.get(id)).toBe(1);
            expect(endpointer.endpoints()).toEqual([]);
          } finally {
            vi.useRealTimers();
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("createEndpointer with factory calls that never settle", () => {
  /** A promise the test settles by hand. */
  function deferred<T>() {
    let resolve!: (value: T) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  }

  it("close() resolves after closeTimeout (default 5 s) though a factory call hangs, aborting its signal", async () => {
    vi.useFakeTimers();
    const onError = vi.fn();
    const signals = new Map<string, AbortSignal>();
    const closed: string[] = [];
    const hung = deferred<{ endpoint: () => Promise<string>; close: () => void }>();
    const endpointer = createEndpointer(
      createInstanceCache(["a:1", "b:2"]),
      (instance, signal) => {
        signals.set(instance.address, signal);
        if (instance.address === "a:1") return hung.promise;
        return {
          endpoint: async () => "b",
          close: () => {
            closed.push(instance.address);
          },
        };
      },
      { onError },
    );
    let settled = false;
    void endpointer.close().then(() => {
      settled = true;
    });
    expect(closed).toEqual(["b:2"]);
    await vi.advanceTimersByTimeAsync(4_999);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toBe(true);
    const reason: unknown = signals.get("a:1")?.reason;
    expect(reason).toBeInstanceOf(ServiceError);
    expect((reason as ServiceError).code).toBe(Code.CANCELLED);
    expect(signals.get("b:2")?.aborted).toBe(false);
    expect(onError.mock.calls).toEqual([
      [
        new ServiceError(
          Code.DEADLINE_EXCEEDED,
          "createEndpointer: close() gave up after 5000 ms with 1 factory call(s) and 0 endpoint close(s) still running; what they make is closed when they settle",
        ),
        { during: "close" },
      ],
    ]);
    expect(vi.getTimerCount()).toBe(0);
    // The result that arrives after close() resolved is still closed.
    hung.resolve({
      endpoint: async () => "a",
      close: () => {
        closed.push("a:1");
      },
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toEqual(["b:2", "a:1"]);
    expect(endpointer.endpoints()).toEqual([]);
    expect(onError).toHaveBeenCalledTimes(1);
  });

  it("close() honours a custom closeTimeout and does not report a factory that rejects after close()", async () => {
    vi.useFakeTimers();
    const onError = vi.fn();
    const hung = deferred<never>();
    const endpointer = createEndpointer(createStaticInstancer(["a:1"]), () => hung.promise, {
      onError,
      closeTimeout: 100,
    });
    let settled = false;
    void endpointer.close().then(() => {
      settled = true;
    });
    hung.reject(new Error("connect aborted"));
    await vi.advanceTimersByTimeAsync(0);
    expect(settled).toBe(true);
    expect(onError).not.toHaveBeenCalled();
    expect(endpointer.error).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("gives up a factory call after factoryTimeout (default 10 s), reports DEADLINE_EXCEEDED, retries, and closes the late result", async () => {
    vi.useFakeTimers();
    vi.spyOn(Math, "random").mockReturnValue(0); // first retry after 50 ms
    const onError = vi.fn();
    const signals: AbortSignal[] = [];
    const closed: string[] = [];
    const first = deferred<{ endpoint: () => Promise<string>; close: () => void }>();
    const endpointer = createEndpointer(
      createInstanceCache(["a:1"]),
      (_instance, signal) => {
        signals.push(signal);
        if (signals.length === 1) return first.promise;
        return Promise.resolve({
          endpoint: async () => "second",
          close: () => {
            closed.push("second");
          },
        });
      },
      { onError },
    );
    const seen: string[][] = [];
    endpointer.subscribe((entries) => seen.push(addressesOf(entries)));
    await vi.advanceTimersByTimeAsync(9_999);
    expect(signals).toHaveLength(1);
    expect(onError).not.toHaveBeenCalled();
    expect(endpointer.error).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    const timeout = new ServiceError(
      Code.DEADLINE_EXCEEDED,
      "factory for instance a:1 did not settle within 10000 ms",
    );
    expect(onError.mock.calls).toEqual([[timeout, { during: "create", instance: { address: "a:1" } }]]);
    expect(onError.mock.calls[0]?.[0]).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(endpointer.error).toEqual(timeout);
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[0]?.reason).toEqual(timeout);
    await vi.advanceTimersByTimeAsync(49);
    expect(signals).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(signals).toHaveLength(2);
    expect(signals[1]?.aborted).toBe(false);
    expect(await endpointer.endpoints()[0]?.endpoint(background, undefined)).toBe("second");
    expect(seen).toEqual([[], ["a:1"]]);
    expect(endpointer.error).toBeUndefined();
    // The first call's result arrives late: closed at once, the entries stay as they are.
    first.resolve({
      endpoint: async () => "first",
      close: () => {
        closed.push("first");
      },
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toEqual(["first"]);
    expect(seen).toEqual([[], ["a:1"]]);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
    await endpointer.close();
    expect(closed).toEqual(["first", "second"]);
  });

  it("retries a timed-out call of an instance that the instancer keeps listing (custom factoryTimeout)", async () => {
    vi.useFakeTimers();
    const cache = createInstanceCache(["a:1"]);
    const calls: string[] = [];
    const endpointer = createEndpointer(
      cache,
      (instance) => {
        calls.push(instance.address);
        return calls.length === 1 ? new Promise<never>(() => undefined) : { endpoint: async () => 1 };
      },
      { factoryTimeout: 1_000, factoryRetry: false },
    );
    cache.update(["a:1", "b:2"]); // the running call decides: no second call for a:1 yet
    expect(calls).toEqual(["a:1", "b:2"]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(endpointer.error?.message).toBe("factory for instance a:1 did not settle within 1000 ms");
    cache.update(["a:1", "b:2", "c:3"]);
    expect(calls).toEqual(["a:1", "b:2", "a:1", "c:3"]);
    expect(addressesOf(endpointer.endpoints())).toEqual(["a:1", "b:2", "c:3"]);
    expect(endpointer.error).toBeUndefined();
    // close() waits (within closeTimeout) for the given-up call too, to close what it may still make.
    const done = endpointer.close();
    await vi.advanceTimersByTimeAsync(5_000);
    await done;
  });

  it("with factoryTimeout Infinity sets no deadline timer", async () => {
    vi.useFakeTimers();
    const endpointer = createEndpointer(
      createStaticInstancer(["a:1"]),
      () => new Promise<never>(() => undefined),
      {
        factoryTimeout: Number.POSITIVE_INFINITY,
      },
    );
    expect(vi.getTimerCount()).toBe(0);
    const done = endpointer.close();
    await vi.advanceTimersByTimeAsync(5_000);
    await done;
  });

  it.each([
    [
      { factoryTimeout: 0 },
      "createEndpointer: factoryTimeout must be a number of ms > 0 and at most 2147483647, or Infinity, got 0",
    ],
    [
      { factoryTimeout: 2 ** 31 },
      "createEndpointer: factoryTimeout must be a number of ms > 0 and at most 2147483647, or Infinity, got 2147483648",
    ],
    [
      { closeTimeout: -1 },
      "createEndpointer: closeTimeout must be a number of ms >= 0 and at most 2147483647, or Infinity, got -1",
    ],
    [
      { closeTimeout: Number.NaN },
      "createEndpointer: closeTimeout must be a number of ms >= 0 and at most 2147483647, or Infinity, got NaN",
    ],
  ])("rejects %o", (options, message) => {
    expect(() =>
      createEndpointer(createStaticInstancer([]), () => ({ endpoint: async () => 1 }), options),
    ).toThrow(new RangeError(message));
  });
});
