import { createInstanceCache, createStaticInstancer, InstanceCache, type InstancerState } from "@svckit/sd";
import { describe, expect, it, vi } from "vitest";

const addresses = (state: InstancerState): string[] => state.instances.map((i) => i.address);

function record(cache: { subscribe(l: (s: InstancerState) => void): () => void }): InstancerState[] {
  const seen: InstancerState[] = [];
  cache.subscribe((state) => seen.push(state));
  return seen;
}

describe("InstanceCache", () => {
  it("starts empty without an error", () => {
    const cache = createInstanceCache();
    expect(cache.current()).toEqual({ instances: [] });
    expect(cache.current().error).toBeUndefined();
  });

  it("starts with the given instances", () => {
    const cache = new InstanceCache(["a:1", { address: "b:2", weight: 2 }]);
    expect(cache.current().instances).toEqual([{ address: "a:1" }, { address: "b:2", weight: 2 }]);
  });

  it("tells a new listener the current state at once, then each change", () => {
    const cache = createInstanceCache(["a:1"]);
    const seen = record(cache);
    expect(seen.map(addresses)).toEqual([["a:1"]]);
    expect(cache.update(["a:1", "b:2"])).toBe(true);
    expect(seen.map(addresses)).toEqual([["a:1"], ["a:1", "b:2"]]);
    expect(seen[1]).toBe(cache.current());
  });

  it("keeps the last good set on a failure and reports the error", () => {
    const cache = createInstanceCache(["a:1", "b:2"]);
    const seen = record(cache);
    const before = cache.current().instances;
    const error = new Error("consul: connection refused");
    expect(cache.fail(error)).toBe(true);
    expect(cache.current().instances).toBe(before);
    expect(cache.current().error).toBe(error);
    expect(seen).toHaveLength(2);
    expect(addresses(seen[1] as InstancerState)).toEqual(["a:1", "b:2"]);
    expect(seen[1]?.error?.message).toBe("consul: connection refused");
  });

  it("does not flap to empty on repeated failures", () => {
    const cache = createInstanceCache(["a:1"]);
    for (let i = 0; i < 5; i++) cache.fail(new Error(`attempt ${i} failed`));
    expect(addresses(cache.current())).toEqual(["a:1"]);
    expect(cache.current().error?.message).toBe("attempt 4 failed");
  });

  it("does not notify again for a failure with the same message", () => {
    const cache = createInstanceCache(["a:1"]);
    const seen = record(cache);
    expect(cache.fail(new Error("down"))).toBe(true);
    expect(cache.fail(new Error("down"))).toBe(false);
    expect(seen).toHaveLength(2);
  });

  it("clears the error on the next successful update, even with the same set", () => {
    const cache = createInstanceCache(["a:1"]);
    const seen = record(cache);
    cache.fail(new Error("down"));
    expect(cache.update(["a:1"])).toBe(true);
    expect(cache.current().error).toBeUndefined();
    expect(addresses(cache.current())).toEqual(["a:1"]);
    expect(seen).toHaveLength(3);
  });

  it("update(instances, error) sets the set and the error as one change", () => {
    const cache = createInstanceCache(["a:1"]);
    const seen = record(cache);
    const error = new Error("watch lost");
    expect(cache.update(["a:1", "b:2"], error)).toBe(true);
    expect(cache.current().error).toBe(error);
    expect(addresses(cache.current())).toEqual(["a:1", "b:2"]);
    expect(seen).toHaveLength(2);
    expect(seen[1]).toBe(cache.current());
    expect(Object.isFrozen(cache.current())).toBe(true);
  });

  it("update(instances, error) notifies nobody for the same set (any order) and the same error message", () => {
    const cache = createInstanceCache(["a:1", "b:2"]);
    const seen = record(cache);
    cache.fail(new Error("watch on /s/ cancelled"));
    const state = cache.current();
    // A listing that succeeded while the watch stays down: the state is what it was.
    expect(cache.update(["b:2", "a:1"], new Error("watch on /s/ cancelled"))).toBe(false);
    expect(cache.current()).toBe(state);
    expect(seen.map((s) => s.error?.message)).toEqual([undefined, "watch on /s/ cancelled"]);
  });

  it("update(instances, error) notifies for a new error message, or a new set, keeping the other part", () => {
    const cache = createInstanceCache(["a:1"]);
    const seen = record(cache);
    expect(cache.update(["a:1"], new Error("one"))).toBe(true);
    const instances = cache.current().instances;
    expect(cache.update(["a:1"], new Error("two"))).toBe(true);
    expect(cache.current().instances).toBe(instances);
    expect(cache.update(["a:1", "c:3"], new Error("two"))).toBe(true);
    expect(cache.update(["a:1", "c:3"], "three")).toBe(true);
    expect(cache.current().error).toBeInstanceOf(Error);
    expect(cache.current().error?.cause).toBe("three");
    expect(cache.update(["a:1", "c:3"])).toBe(true);
    expect(cache.update([], undefined)).toBe(true);
    expect(seen.map((s) => [addresses(s).join(), s.error?.message])).toEqual([
      ["a:1", undefined],
      ["a:1", "one"],
      ["a:1", "two"],
      ["a:1,c:3", "two"],
      ["a:1,c:3", "three"],
      ["a:1,c:3", undefined],
      ["", undefined],
    ]);
  });

  it("update(instances, error) with an invalid instance throws and keeps the state", () => {
    const cache = createInstanceCache(["a:1"]);
    const state = cache.current();
    expect(() => cache.update([""], new Error("down"))).toThrow(TypeError);
    expect(cache.current()).toBe(state);
  });

  it("wraps a non-Error failure in an Error", () => {
    const cache = createInstanceCache();
    cache.fail("timeout");
    expect(cache.current().error).toBeInstanceOf(Error);
    expect(cache.current().error?.message).toBe("timeout");
    expect(cache.current().error?.cause).toBe("timeout");
  });

  it("treats an empty update as a real answer (everything deregistered)", () => {
    const cache = createInstanceCache(["a:1"]);
    expect(cache.update([])).toBe(true);
    expect(cache.current()).toEqual({ instances: [] });
  });

  it("does not notify for the same set in another order (a rotated DNS answer)", () => {
    const cache = createInstanceCache(["a:1", "b:2", "c:3"]);
    const seen = record(cache);
    const state = cache.current();
    expect(cache.update(["c:3", "a:1", "b:2"])).toBe(false);
    expect(cache.current()).toBe(state);
    expect(seen).toHaveLength(1);
  });

  it("notifies when only a weight or metadata changes", () => {
    const cache = createInstanceCache([{ address: "a:1", weight: 1, metadata: { zone: "x" } }]);
    const seen = record(cache);
    expect(cache.update([{ address: "a:1", weight: 2, metadata: { zone: "x" } }])).toBe(true);
    expect(cache.update([{ address: "a:1", weight: 2, metadata: { zone: "y" } }])).toBe(true);
    expect(cache.update([{ address: "a:1", weight: 2, metadata: { zone: "y", extra: "1" } }])).toBe(true);
    expect(cache.update([{ address: "a:1", weight: 2 }])).toBe(true);
    expect(cache.update([{ address: "a:1", weight: 2 }])).toBe(false);
    expect(seen).toHaveLength(5);
  });

  it("freezes and copies instances, and keeps the first of repeated addresses", () => {
    const metadata = { zone: "x" };
    const cache = createInstanceCache([{ address: "a:1", metadata }, { address: "a:1", weight: 9 }, "b:2"]);
    metadata.zone = "changed";
    const instances = cache.current().instances;
    expect(instances).toEqual([{ address: "a:1", metadata: { zone: "x" } }, { address: "b:2" }]);
    expect(Object.isFrozen(instances)).toBe(true);
    expect(Object.isFrozen(instances[0])).toBe(true);
    expect(Object.isFrozen(instances[0]?.metadata)).toBe(true);
  });

  it.each([
    [
      "an empty address",
      [""],
      TypeError,
      'InstanceCache.update: an instance address must be a non-empty string, got ""',
    ],
    [
      "a non-string address",
      [{ address: 42 }],
      TypeError,
      "InstanceCache.update: an instance address must be a non-empty string, got 42",
    ],
    [
      "null",
      [null],
      TypeError,
      "InstanceCache.update: an instance must be an address string or { address }, got null",
    ],
    [
      "a negative weight",
      [{ address: "a:1", weight: -1 }],
      RangeError,
      "InstanceCache.update: weight of instance a:1 must be a finite number >= 0, got -1",
    ],
    [
      "an infinite weight",
      [{ address: "a:1", weight: Number.POSITIVE_INFINITY }],
      RangeError,
      "InstanceCache.update: weight of instance a:1 must be a finite number >= 0, got Infinity",
    ],
    [
      "a NaN weight",
      [{ address: "a:1", weight: Number.NaN }],
      RangeError,
      "InstanceCache.update: weight of instance a:1 must be a finite number >= 0, got NaN",
    ],
    [
      "non-object metadata",
      [{ address: "a:1", metadata: "zone=x" }],
      TypeError,
      "InstanceCache.update: metadata of instance a:1 must be an object of strings",
    ],
  ])("rejects %s and keeps the state", (_name, input, type, message) => {
    const cache = createInstanceCache(["ok:1"]);
    const state = cache.current();
    // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid input
    const bad = input as any;
    expect(() => cache.update(bad)).toThrow(type);
    expect(() => cache.update(bad)).toThrow(message);
    expect(cache.current()).toBe(state);
  });

  it("accepts a weight of 0", () => {
    const cache = createInstanceCache([{ address: "a:1", weight: 0 }]);
    expect(cache.current().instances[0]?.weight).toBe(0);
  });

  it("stops notifying an unsubscribed listener", () => {
    const cache = createInstanceCache();
    const listener = vi.fn();
    const stop = cache.subscribe(listener);
    stop();
    stop();
    cache.update(["a:1"]);
    expect(listener).toHaveBeenCalledTimes(1);
  });

  it("runs every listener when one throws, then rethrows its error to the updater", () => {
    const cache = createInstanceCache();
    const boom = new Error("listener bug");
    let armed = false;
    cache.subscribe(() => {
      if (armed) throw boom;
    });
    const other = vi.fn();
    cache.subscribe(other);
    armed = true;
    expect(() => cache.update(["a:1"])).toThrow(boom);
    expect(other).toHaveBeenCalledTimes(2);
    expect(addresses(cache.current())).toEqual(["a:1"]);
  });

  it("throws an AggregateError when several listeners throw", () => {
    const cache = createInstanceCache();
    let armed = false;
    cache.subscribe(() => {
      if (armed) throw new Error("one");
    });
    cache.subscribe(() => {
      if (armed) throw new Error("two");
    });
    armed = true;
    let caught: unknown;
    try {
      cache.update(["a:1"]);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(AggregateError);
    expect((caught as AggregateError).message).toBe("2 listeners threw");
    expect((caught as AggregateError).errors.map((e: Error) => e.message)).toEqual(["one", "two"]);
  });

  it("does not register a listener that throws on the first call", () => {
    const cache = createInstanceCache();
    const listener = vi.fn(() => {
      throw new Error("bad listener");
    });
    expect(() => cache.subscribe(listener)).toThrow("bad listener");
    cache.update(["a:1"]);
    expect(listener).toHaveBeenCalledTimes(1);
  });

  it("delivers the latest state to everyone when a listener updates during a notification", () => {
    const cache = createInstanceCache();
    const first: string[][] = [];
    const second: string[][] = [];
    cache.subscribe((state) => {
      first.push(addresses(state));
      if (addresses(state).join() === "a:1") cache.update(["b:2"]);
    });
    cache.subscribe((state) => second.push(addresses(state)));
    cache.update(["a:1"]);
    expect(first).toEqual([[], ["a:1"], ["b:2"]]);
    // The second listener skips the intermediate state and sees the newest one.
    expect(second).toEqual([[], ["b:2"]]);
    expect(addresses(cache.current())).toEqual(["b:2"]);
  });

  it("does not call a listener removed during a notification", () => {
    const cache = createInstanceCache();
    const later = vi.fn();
    let stopLater: () => void = () => undefined;
    cache.subscribe((state) => {
      if (state.instances.length > 0) stopLater();
    });
    stopLater = cache.subscribe(later);
    cache.update(["a:1"]);
    expect(later).toHaveBeenCalledTimes(1);
  });

  it("closes once: calls onClose, drops listeners and ignores later updates", () => {
    const onClose = vi.fn();
    const cache = createInstanceCache(["a:1"], { onClose });
    const listener = vi.fn();
    cache.subscribe(listener);
    cache.close();
    cache.close();
    expect(onClose).toHaveBeenCalledTimes(1);
    expect(cache.closed).toBe(true);
    expect(cache.update(["b:2"])).toBe(false);
    expect(cache.fail(new Error("x"))).toBe(false);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(addresses(cache.current())).toEqual(["a:1"]);
    const late = vi.fn();
    const stop = cache.subscribe(late);
    expect(late).toHaveBeenCalledExactlyOnceWith(cache.current());
    stop();
  });

  it("ignores invalid input after close too: update neither throws nor reports", () => {
    const onError = vi.fn();
    const plain = createInstanceCache(["a:1"]);
    const reporting = createInstanceCache(["a:1"], { onError });
    for (const cache of [plain, reporting]) {
      cache.close();
      const state = cache.current();
      expect(cache.update([""])).toBe(false);
      // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid input
      expect(cache.update([{ address: "b:2", weight: -1 }] as any, new Error("down"))).toBe(false);
      expect(cache.current()).toBe(state);
    }
    expect(onError).not.toHaveBeenCalled();
  });
});

/** A listener that takes the state `subscribe` hands it at once, then throws on every change. */
function throwingAfterFirst(message: string, asError = true): () => void {
  let calls = 0;
  return () => {
    if (calls++ === 0) return;
    throw asError ? new Error(message) : message;
  };
}

describe("InstanceCache: the onError option", () => {
  it("takes what update and fail would throw, and they never throw", () => {
    const errors: Error[] = [];
    const cache = new InstanceCache([], { onError: (error) => errors.push(error) });
    // An invalid instance: reported, the state stays as it was.
    expect(cache.update(["10.0.0.1:80"])).toBe(true);
    expect(cache.update([{ address: "" }])).toBe(false);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(TypeError);
    expect(cache.current().instances.map((i) => i.address)).toEqual(["10.0.0.1:80"]);
    // Listeners that throw: every listener ran, the change happened, the error is reported.
    const heard: number[] = [];
    cache.subscribe(throwingAfterFirst("listener one"));
    cache.subscribe((state) => heard.push(state.instances.length));
    heard.length = 0;
    expect(cache.update(["10.0.0.1:80", "10.0.0.2:80"])).toBe(true);
    expect(cache.fail(new Error("backend down"))).toBe(true);
    expect(heard).toEqual([2, 2]);
    expect(errors.slice(1).map((e) => e.message)).toEqual(["listener one", "listener one"]);
    expect(cache.current().error?.message).toBe("backend down");
  });

  it("ignores an onError that throws", () => {
    const cache = new InstanceCache([], {
      onError: () => {
        throw new Error("onError broke");
      },
    });
    expect(cache.update([{ address: "" }])).toBe(false);
    cache.subscribe(throwingAfterFirst("not an Error", false));
    expect(cache.update(["10.0.0.3:80"])).toBe(true);
  });

  it("without onError, update and fail still throw", () => {
    const cache = new InstanceCache();
    expect(() => cache.update([{ address: "" }])).toThrow(TypeError);
    cache.subscribe(throwingAfterFirst("listener"));
    expect(() => cache.fail(new Error("down"))).toThrow("listener");
  });
});

describe("createStaticInstancer", () => {
  it("serves a fixed set from addresses and instances, in order", () => {
    const instancer = createStaticInstancer([
      "a:1",
      { address: "http://b:2", weight: 3, metadata: { z: "1" } },
    ]);
    expect(instancer.current()).toEqual({
      instances: [{ address: "a:1" }, { address: "http://b:2", weight: 3, metadata: { z: "1" } }],
    });
    const listener = vi.fn();
    instancer.subscribe(listener);
    expect(listener).toHaveBeenCalledExactlyOnceWith(instancer.current());
    instancer.close();
  });

  it("exposes no way to change the set", () => {
    const instancer = createStaticInstancer(["a:1"]);
    expect(Object.keys(instancer).sort()).toEqual(["close", "current", "subscribe"]);
  });

  it("rejects invalid instances with its own name in the message", () => {
    expect(() => createStaticInstancer([""])).toThrow(
      new TypeError('createStaticInstancer: an instance address must be a non-empty string, got ""'),
    );
    expect(() => createStaticInstancer([{ address: "a:1", weight: -2 }])).toThrow(
      new RangeError("createStaticInstancer: weight of instance a:1 must be a finite number >= 0, got -2"),
    );
  });
});
