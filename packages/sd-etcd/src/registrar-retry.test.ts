// The registrar's re-registration after a lost lease, on a stand-in for etcd3's client (only what
// the registrar uses of `lease()`), so etcd going away and coming back can be played on cue.
import { EventEmitter } from "node:events";
import { createEtcdRegistrar } from "@svckit/sd-etcd";
import type { Etcd3 } from "etcd3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

function fakeEtcd() {
  // `hold`, when set, delays every put until it resolves (a put in flight).
  const state = {
    up: true,
    puts: 0,
    leases: [] as EventEmitter[],
    hold: undefined as Promise<void> | undefined,
  };
  const client = {
    lease() {
      const lease = Object.assign(new EventEmitter(), {
        put: () => ({
          value: () => ({
            options: async () => {
              await state.hold;
              if (!state.up) throw new Error("14 UNAVAILABLE: No connection established");
              state.puts++;
            },
          }),
        }),
        revoke: async () => undefined,
      });
      state.leases.push(lease);
      return lease;
    },
  };
  return { state, client: client as unknown as Etcd3 };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("createEtcdRegistrar: a lost lease", () => {
  it("is registered again once etcd is back, even when register() was called and failed meanwhile", async () => {
    const { state, client } = fakeEtcd();
    const errors: string[] = [];
    const registrar = createEtcdRegistrar(client, {
      prefix: "/services/users/",
      id: "u1",
      instance: "10.0.0.7:8080",
      ttl: 1,
      onError: (e) => errors.push(e.message),
    });
    await registrar.register();
    expect(state.puts).toBe(1);
    state.up = false;
    state.leases[0]?.emit("lost", new Error("lease expired"));
    // Something calls register() while etcd is down: it fails, and used to cancel the retries.
    await expect(registrar.register()).rejects.toMatchObject({ code: 14 });
    state.up = true;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(registrar.registered).toBe(true);
    expect(state.puts).toBe(2);
    await registrar.deregister();
  });

  it("is not registered again after a deregister() that overlapped a register() (regression)", async () => {
    const { state, client } = fakeEtcd();
    const errors: string[] = [];
    const registrar = createEtcdRegistrar(client, {
      prefix: "/services/users/",
      id: "u1",
      instance: "10.0.0.7:8080",
      ttl: 1,
      onError: (e) => errors.push(e.message),
    });
    let release: () => void = () => undefined;
    state.hold = new Promise((resolve) => {
      release = resolve;
    });
    // deregister() is called while register()'s put is in flight.
    const registering = registrar.register();
    const deregistering = registrar.deregister();
    release();
    state.hold = undefined;
    await registering;
    await deregistering;
    expect(registrar.registered).toBe(false);
    expect(state.puts).toBe(1);
    // Then etcd goes away and a register() fails: that must not start background re-registration.
    state.up = false;
    await expect(registrar.register()).rejects.toMatchObject({ code: 14 });
    state.up = true;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(registrar.registered).toBe(false);
    expect(state.puts).toBe(1);
    expect(errors).toEqual([]);
  });
});
