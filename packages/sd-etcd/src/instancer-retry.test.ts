// The instancer's retries when etcd keeps cancelling its watch, on a stand-in for etcd3's client (only
// what the instancer uses of `watch()` and `getAll()`), so each watch's fate can be scripted on cue.
import { EventEmitter } from "node:events";
import { createEndpointer, type InstancerState } from "@svckit/sd";
import { createEtcdInstancer } from "@svckit/sd-etcd";
import type { Etcd3 } from "etcd3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

type Fate = "cancel" | "connect" | "silent";

/**
 * A client whose every watch is cancelled by "etcd" 5 ms after it was made (as etcd does when the
 * watch is refused), unless `fates` says "connect": then it emits 'connected' after 5 ms and stays.
 */
function fakeEtcd(fates: Fate[] = []) {
  const state = {
    watchedAt: [] as number[],
    watchers: [] as EventEmitter[],
    lists: 0,
    kvs: [{ key: Buffer.from("/s/a"), value: Buffer.from("10.0.0.1:8080") }],
  };
  const client = {
    watch: () => ({
      prefix: () => ({
        watcher: () => {
          const watcher = Object.assign(new EventEmitter(), { cancel: async () => undefined });
          state.watchedAt.push(Date.now());
          state.watchers.push(watcher);
          const fate = fates.shift() ?? "cancel";
          // "silent": etcd3 queued the watch behind one etcd refused and never sends it.
          if (fate !== "silent")
            setTimeout(() => {
              if (fate === "connect") watcher.emit("connected", {});
              else watcher.emit("error", new Error("Watcher canceled: etcdserver: permission denied"));
            }, 5);
          return watcher;
        },
      }),
    }),
    getAll: () => ({
      prefix: () => ({
        options: () => ({
          exec: async () => {
            state.lists++;
            return { kvs: state.kvs };
          },
        }),
      }),
    }),
  };
  return { state, client: client as unknown as Etcd3 };
}

/** The gaps between watches, from the start times. */
const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - (times[i] as number));

/**
 * The documented retry delay (README: 250 ms doubling to 5 s, half jitter: between half the ceiling and
 * the ceiling) with Math.random() fixed at 0.5, i.e. 3/4 of the ceiling.
 */
const documentedDelay = (attempt: number): number => Math.round(0.75 * Math.min(5_000, 250 * 2 ** attempt));

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
  vi.spyOn(Math, "random").mockReturnValue(0.5);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("createEtcdInstancer: a watch etcd keeps cancelling", () => {
  it("is made again with the documented backoff, not every 250 ms, and listeners hear one error, not a flap", async () => {
    const { state, client } = fakeEtcd();
    const instancer = createEtcdInstancer(client, { prefix: "/s/" });
    const seen: InstancerState[] = [];
    instancer.subscribe((s) => seen.push(s));
    // invalidateTimeout must run out while the error lasts: a flap to "healthy" used to restart it.
    const endpointer = createEndpointer(instancer, () => ({ endpoint: async () => "ok" }), {
      invalidateTimeout: 2_000,
    });
    await vi.advanceTimersByTimeAsync(10_000);

    // The first watch fails 5 ms after it starts; from then on the retries (a new watch and a listing)
    // follow each other by the delay of the attempt while the watch stays down: 188, 375, 750, 1500,
    // 3000, 3750 ms → watches at 0, 193, 568, 1318, 2818, 5818, 9568 ms. Seven in 10 s (about 52 if it
    // stayed at 188 ms).
    const expected = [0];
    for (let attempt = 0; ; attempt++) {
      const next = (expected.at(-1) as number) + (attempt === 0 ? 5 : 0) + documentedDelay(attempt);
      if (next > 10_000) break;
      expected.push(next);
    }
    expect(expected).toHaveLength(7);
    expect(state.watchedAt).toEqual(expected);
    expect(gaps(state.watchedAt)).toEqual([193, 375, 750, 1500, 3000, 3750]);

    // The first listing (healthy), then the cancelled watch; the listings after each new watch report
    // the same set with the same error, so nobody is told anything more.
    expect(state.lists).toBe(7);
    expect(seen.map((s) => [s.instances.map((i) => i.address), s.error?.message])).toEqual([
      [[], undefined],
      [["10.0.0.1:8080"], undefined],
      [
        ["10.0.0.1:8080"],
        "etcd instancer: watch on /s/ cancelled: Watcher canceled: etcdserver: permission denied",
      ],
    ]);
    expect(endpointer.endpoints()).toEqual([]);
    expect(endpointer.error?.message).toMatch(/^etcd instancer: watch on \/s\/ cancelled: /);
    instancer.close();
    await endpointer.close();
  });

  it("starts the backoff over once etcd accepts a watch ('connected'), and clears the error", async () => {
    const { state, client } = fakeEtcd(["cancel", "cancel", "cancel", "connect"]);
    const instancer = createEtcdInstancer(client, { prefix: "/s/" });
    await vi.advanceTimersByTimeAsync(5_000);
    // 0, +193, +375, +750: the fourth watch connects and stays.
    expect(gaps(state.watchedAt)).toEqual([193, 375, 750]);
    expect(instancer.current().error).toBeUndefined();
    expect(instancer.current().instances.map((i) => i.address)).toEqual(["10.0.0.1:8080"]);

    // Much later etcd cancels it: the next watch comes after the first delay again.
    state.watchers.at(-1)?.emit("error", new Error("Watcher canceled: etcdserver: permission denied"));
    const cancelledAt = Date.now();
    expect(instancer.current().error?.message).toMatch(/cancelled/);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(state.watchedAt[4]).toBe(cancelledAt + documentedDelay(0));
    instancer.close();
  });

  it("a listing that finds every instance gone while the watch is down empties an endpointer", async () => {
    const { state, client } = fakeEtcd(["connect"]);
    const instancer = createEtcdInstancer(client, { prefix: "/s/" });
    const endpointer = createEndpointer(instancer, (i) => ({ endpoint: async () => i.address }));
    await vi.advanceTimersByTimeAsync(10);
    expect(endpointer.endpoints().map((e) => e.instance.address)).toEqual(["10.0.0.1:8080"]);
    // etcd cancels the watch; meanwhile the instance deregisters; the retry's listing finds nothing.
    state.watchers[0]?.emit("error", new Error("Watcher canceled: etcdserver: permission denied"));
    state.kvs = [];
    await vi.advanceTimersByTimeAsync(400);
    expect(instancer.current().instances).toEqual([]);
    expect(instancer.current().error?.message).toMatch(/^etcd instancer: watch on \/s\/ cancelled: /);
    expect(endpointer.endpoints()).toEqual([]);
    await endpointer.close();
    instancer.close();
  });

  it("keeps the set current by listing on the backoff while a new watch never comes up", async () => {
    const { state, client } = fakeEtcd(["cancel", "silent"]);
    const instancer = createEtcdInstancer(client, { prefix: "/s/" });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(state.watchers).toHaveLength(2); // the refused one, then one that stays silent
    state.kvs = [
      { key: Buffer.from("/s/a"), value: Buffer.from("10.0.0.1:8080") },
      { key: Buffer.from("/s/b"), value: Buffer.from("10.0.0.2:8080") },
    ];
    await vi.advanceTimersByTimeAsync(10_000);
    expect(instancer.current().instances.map((i) => i.address)).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
    expect(instancer.current().error?.message).toMatch(/cancelled/);
    expect(state.watchers).toHaveLength(2); // no pile of queued watches
    const lists = state.lists;
    await vi.advanceTimersByTimeAsync(10_000);
    // Every 3750 ms (the capped delay): two or three listings in any 10 s.
    expect(state.lists - lists).toBeGreaterThanOrEqual(Math.floor(10_000 / documentedDelay(10)));
    expect(state.lists - lists).toBeLessThanOrEqual(Math.ceil(10_000 / documentedDelay(10)));
    instancer.close();
  });
});
