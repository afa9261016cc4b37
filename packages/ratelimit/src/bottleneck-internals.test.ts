import Bottleneck from "bottleneck";
import { describe, expect, it, vi } from "vitest";
import {
  type ConnectionInternals,
  connectionOf,
  detachLimiter,
  fixRedis7ScriptErrors,
  settingsKey,
  storeOf,
} from "./bottleneck-internals.js";

type Callback = (error: unknown, replies: unknown) => void;

/** A fake IORedisConnection whose scripts answer with `error` (or "OK"). */
function fakeConnection(error?: Error): Bottleneck.IORedisConnection & { calls: unknown[][] } {
  const calls: unknown[][] = [];
  return {
    calls,
    __scriptFn__(_name: string) {
      return (...args: unknown[]) => {
        calls.push(args);
        (args.at(-1) as Callback)(error ?? null, error === undefined ? "OK" : undefined);
      };
    },
  } as unknown as Bottleneck.IORedisConnection & { calls: unknown[][] };
}

function runScript(connection: Bottleneck.IORedisConnection): Promise<unknown> {
  const fn = (
    connection as unknown as { __scriptFn__(name: string): (...a: unknown[]) => void }
  ).__scriptFn__("register");
  return new Promise((resolve, reject) =>
    fn(1, "key", "arg", (e: unknown, r: unknown) => (e ? reject(e) : resolve(r))),
  );
}

describe("fixRedis7ScriptErrors", () => {
  it.each([
    ["ERR SETTINGS_KEY_NOT_FOUND", "SETTINGS_KEY_NOT_FOUND"],
    ["ERR UNKNOWN_CLIENT", "UNKNOWN_CLIENT"],
    ["SETTINGS_KEY_NOT_FOUND", "SETTINGS_KEY_NOT_FOUND"],
    ["ERR OVERWEIGHT:2:1", "ERR OVERWEIGHT:2:1"],
    ["ERR SETTINGS_KEY_NOT_FOUND extra", "ERR SETTINGS_KEY_NOT_FOUND extra"],
  ])("turns %j into %j, the message Bottleneck recovers from", async (from, to) => {
    const connection = fakeConnection(new Error(from));
    fixRedis7ScriptErrors(connection);
    const err = await runScript(connection).catch((e: unknown) => e);
    expect((err as Error).message).toBe(to);
  });

  it("passes replies and arguments through, and patches only once", async () => {
    const connection = fakeConnection();
    fixRedis7ScriptErrors(connection);
    const patched = (connection as unknown as { __scriptFn__: unknown }).__scriptFn__;
    fixRedis7ScriptErrors(connection);
    expect((connection as unknown as { __scriptFn__: unknown }).__scriptFn__).toBe(patched);
    await expect(runScript(connection)).resolves.toBe("OK");
    expect(connection.calls[0]?.slice(0, 3)).toEqual([1, "key", "arg"]);
  });

  it("leaves a connection without __scriptFn__ alone", () => {
    const odd = {} as Bottleneck.IORedisConnection;
    fixRedis7ScriptErrors(odd);
    expect(odd).toEqual({});
  });
});

describe("shape checks", () => {
  it("find the datastore of a real Bottleneck limiter", async () => {
    const limiter = new Bottleneck({ maxConcurrent: 1 });
    const store = storeOf(limiter);
    expect(typeof store.__register__).toBe("function");
    await limiter.disconnect();
  });

  it("refuse objects without the expected internals, naming what is missing", () => {
    expect(() => storeOf({} as Bottleneck)).toThrow(
      "@svckit/ratelimit: this bottleneck version is not supported (no datastore __register__/__free__); use bottleneck 2.19",
    );
    expect(() => connectionOf({} as Bottleneck.IORedisConnection)).toThrow(
      "(no IORedisConnection client/subscriber/limiters)",
    );
  });

  it("name the settings hash as Bottleneck does", () => {
    expect(settingsKey("svckit:api:k")).toBe("b_svckit:api:k_settings");
  });
});

describe("detachLimiter", () => {
  function fakes(subscriberStatus: string, unsubscribe: () => Promise<unknown>) {
    let resolveReady: () => void = () => {};
    const ready = new Promise<void>((resolve) => {
      resolveReady = resolve;
    });
    const heartbeat = setInterval(() => {}, 60_000);
    const limiter = {
      _store: { heartbeat },
      channel: () => "b_x",
      channel_client: () => "b_x_c1",
      ready: () => ready,
    } as unknown as Bottleneck;
    const connection = {
      limiters: { b_x: limiter, b_x_c1: limiter, b_other: {} },
      subscriber: { status: subscriberStatus, unsubscribe: vi.fn(unsubscribe) },
      terminated: false,
    } as unknown as ConnectionInternals;
    return { limiter, connection, resolveReady, heartbeat };
  }

  it("stops the heartbeat and unsubscribes the limiter's channels, ignoring failures", async () => {
    const clear = vi.spyOn(globalThis, "clearInterval");
    const { limiter, connection, heartbeat } = fakes("ready", () => Promise.reject(new Error("gone")));
    detachLimiter(limiter, connection);
    expect(clear).toHaveBeenCalledWith(heartbeat);
    expect(Object.keys(connection.limiters)).toEqual(["b_other"]);
    expect(connection.subscriber.unsubscribe).toHaveBeenCalledTimes(2);
    await new Promise((r) => setTimeout(r, 0)); // a rejected unsubscribe must not be unhandled
    clear.mockRestore();
  });

  it("does not unsubscribe through a connection that is down, and detaches again once started", async () => {
    const { limiter, connection, resolveReady } = fakes("reconnecting", () => Promise.resolve());
    detachLimiter(limiter, connection);
    expect(connection.subscriber.unsubscribe).not.toHaveBeenCalled();
    // Its start-up finishes later and subscribes it: that is undone too.
    (connection.limiters as Record<string, unknown>).b_x = limiter;
    (connection.subscriber as { status: string }).status = "ready";
    resolveReady();
    await new Promise((r) => setTimeout(r, 0));
    expect(Object.keys(connection.limiters)).toEqual(["b_other"]);
    expect(connection.subscriber.unsubscribe).toHaveBeenCalledWith("b_x");
  });
});
