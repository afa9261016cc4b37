import {
  background,
  Code,
  type Context,
  createCancelableContext,
  createContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import { createRateLimiter, delayingLimiter, type RejectInfo } from "@svckit/ratelimit";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { gate, rejection, serviceRejection, T0 } from "./test-helpers.js";

/** An endpoint that records when (ms after T0) each request ran. */
function recorder(): { endpoint: Endpoint<number, number>; runs: [number, number][] } {
  const runs: [number, number][] = [];
  return {
    runs,
    endpoint: async (_ctx, n) => {
      runs.push([n, Date.now() - T0]);
      return n;
    },
  };
}

/** Whether `promise` has settled after pending microtasks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await vi.advanceTimersByTimeAsync(0);
  return done;
}

describe("delaying limiter", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("runs calls over the limit in later windows, in arrival order, `limit` per window", async () => {
    const { endpoint, runs } = recorder();
    const e = delayingLimiter({ limit: 2, interval: 1_000 })(endpoint);
    const calls = [1, 2, 3, 4, 5].map((n) => e(background, n));
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toEqual([
      [1, 0],
      [2, 0],
    ]);
    await vi.advanceTimersByTimeAsync(999);
    expect(runs).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs.slice(2)).toEqual([
      [3, 1_000],
      [4, 1_000],
    ]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs.slice(4)).toEqual([[5, 2_000]]);
    await expect(Promise.all(calls)).resolves.toEqual([1, 2, 3, 4, 5]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps arrival order when the timer runs late: a newcomer does not overtake waiting calls", async () => {
    const { endpoint, runs } = recorder();
    const e = delayingLimiter({ limit: 1, interval: 1_000 })(endpoint);
    const first = [e(background, 1), e(background, 2), e(background, 3)];
    await vi.advanceTimersByTimeAsync(0);
    // The clock passes the window's end but the timer has not fired yet.
    vi.setSystemTime(T0 + 1_000);
    const late = e(background, 4);
    await Promise.resolve();
    await Promise.resolve();
    expect(runs.map(([n]) => n)).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(runs.map(([n]) => n)).toEqual([1, 2, 3, 4]);
    await Promise.all([...first, late]);
  });

  it("hands a freed running slot to the next waiting call at once", async () => {
    const g = gate<number>();
    const e = delayingLimiter({ maxConcurrent: 2 })(g.endpoint);
    const calls = Promise.allSettled([1, 2, 3, 4].map((n) => e(background, n)));
    await vi.advanceTimersByTimeAsync(0);
    expect(g.started).toEqual([1, 2]);
    g.finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(g.started).toEqual([1, 2, 3]);
    g.fail(new Error("endpoint failed"));
    await vi.advanceTimersByTimeAsync(0);
    expect(g.started).toEqual([1, 2, 3, 4]);
    g.finish();
    g.finish();
    const results = await calls;
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
  });

  it("fails at once with DEADLINE_EXCEEDED when no slot can come before the deadline, using no slot", async () => {
    const seen: RejectInfo[] = [];
    const { endpoint, runs } = recorder();
    const e = delayingLimiter({
      name: "partner",
      limit: 1,
      interval: 1_000,
      onReject: (info) => seen.push(info),
    })(endpoint);
    await e(background, 1);
    vi.setSystemTime(T0 + 200);
    const err = await serviceRejection(e(createContext({ timeout: 500 }), 2));
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(err.message).toBe('rate limit "partner": no slot before the call\'s deadline (next in 0.8 s)');
    expect(Date.now()).toBe(T0 + 200); // no waiting happened
    expect(seen).toEqual([{ name: "partner", key: "", reason: "deadline" }]);
    // The refused call took no slot: the next window's slot goes to the next caller.
    const third = e(createContext({ timeout: 2_000 }), 3);
    await vi.advanceTimersByTimeAsync(800);
    await expect(third).resolves.toBe(3);
    expect(runs).toEqual([
      [1, 0],
      [3, 1_000],
    ]);
  });

  it("counts the calls waiting ahead when it judges the deadline", async () => {
    const e = delayingLimiter({ limit: 2, interval: 1_000 })(recorder().endpoint);
    const calls = [1, 2, 3, 4].map((n) => e(background, n)); // 3 and 4 run at 1000
    // The fifth and sixth waiting calls run at 2000: a deadline at 2000 is too early, 2001 is enough.
    const tooEarly = await serviceRejection(e(createContext({ deadline: T0 + 2_000 }), 5));
    expect(tooEarly.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(tooEarly.message).toContain("next in 2 s");
    const inTime = e(createContext({ deadline: T0 + 2_001 }), 6);
    const alsoInTime = e(createContext({ deadline: T0 + 2_001 }), 7);
    const third = await serviceRejection(e(createContext({ deadline: T0 + 2_999 }), 8));
    expect(third.message).toContain("next in 3 s");
    await vi.advanceTimersByTimeAsync(2_000);
    await expect(Promise.all([...calls, inTime, alsoInTime])).resolves.toEqual([1, 2, 3, 4, 6, 7]);
  });

  it("fails with the context's DEADLINE_EXCEEDED when the deadline passes while waiting, and drops the call", async () => {
    const seen: RejectInfo[] = [];
    const g = gate<number>();
    const e = delayingLimiter({ maxConcurrent: 1, onReject: (info) => seen.push(info) })(g.endpoint);
    const running = e(background, 1);
    const waiting = e(createContext({ timeout: 100 }), 2);
    const next = e(background, 3);
    await vi.advanceTimersByTimeAsync(99);
    expect(await settled(waiting)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const err = await serviceRejection(waiting);
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(err.message).toBe("deadline exceeded");
    expect(seen).toEqual([{ name: "ratelimit", key: "", reason: "deadline" }]);
    g.finish();
    await running;
    await vi.advanceTimersByTimeAsync(0);
    // The expired call never ran; its turn went to the call behind it.
    expect(g.started).toEqual([1, 3]);
    g.finish();
    await expect(next).resolves.toBe(3);
  });

  it("fails with CANCELLED at once when the caller cancels, and the call never runs nor takes a slot", async () => {
    const seen: RejectInfo[] = [];
    const { endpoint, runs } = recorder();
    const e = delayingLimiter({ limit: 1, interval: 1_000, onReject: (info) => seen.push(info) })(endpoint);
    await e(background, 1);
    const call = createCancelableContext();
    const cancelled = e(call.context, 2);
    const after = e(background, 3);
    await vi.advanceTimersByTimeAsync(10);
    call.cancel();
    const err = await serviceRejection(cancelled);
    expect(Date.now()).toBe(T0 + 10);
    expect(err.code).toBe(Code.CANCELLED);
    expect(seen).toEqual([{ name: "ratelimit", key: "", reason: "cancelled" }]);
    await vi.advanceTimersByTimeAsync(5_000);
    await expect(after).resolves.toBe(3);
    // Call 2 never ran; call 3 got the slot of the second window, and the third window is still free.
    expect(runs).toEqual([
      [1, 0],
      [3, 1_000],
    ]);
    await expect(e(background, 4)).resolves.toBe(4);
  });

  it("passes the caller's own cancel reason on", async () => {
    const e = delayingLimiter({ limit: 1, interval: 1_000 })(recorder().endpoint);
    await e(background, 1);
    const call = createCancelableContext();
    const waiting = e(call.context, 2);
    const reason = new ServiceError(Code.ABORTED, "user pressed stop");
    call.cancel(reason);
    expect(await rejection(waiting)).toBe(reason);
  });

  it("cancels through an AbortSignal given to the context", async () => {
    const e = delayingLimiter({ limit: 1, interval: 1_000 })(recorder().endpoint);
    await e(background, 1);
    const controller = new AbortController();
    const waiting = e(createContext({ signal: controller.signal }), 2);
    controller.abort();
    const err = await serviceRejection(waiting);
    expect(err.code).toBe(Code.CANCELLED);
  });

  it("refuses at once a call whose context is already over when it would have to wait", async () => {
    const e = delayingLimiter({ limit: 1, interval: 1_000 })(recorder().endpoint);
    const call = createCancelableContext();
    call.cancel();
    // A free slot is taken even so: the endpoint decides what to do with a cancelled context.
    await expect(e(call.context, 1)).resolves.toBe(1);
    const err = await serviceRejection(e(call.context, 2));
    expect(err.code).toBe(Code.CANCELLED);
  });

  it("refuses with RESOURCE_EXHAUSTED and a retry hint when maxQueue calls wait already", async () => {
    const seen: RejectInfo[] = [];
    const e = delayingLimiter({
      name: "q",
      limit: 1,
      interval: 1_000,
      maxQueue: 2,
      onReject: (info) => seen.push(info),
    })(recorder().endpoint);
    const calls = [e(background, 1), e(background, 2), e(background, 3)];
    const err = await serviceRejection(e(background, 4));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toBe('rate limit "q" exceeded: 2 calls are already waiting for a slot, retry in 3 s');
    expect(err.details[0]?.value).toEqual({ retryDelay: "3s" });
    expect(err.metadata.get("retry-after")).toBe("3");
    expect(seen).toEqual([{ name: "q", key: "", reason: "queue" }]);
    await vi.advanceTimersByTimeAsync(2_000);
    await expect(Promise.all(calls)).resolves.toEqual([1, 2, 3]);
  });

  it("queues per key: one key's waiting calls do not hold another key back", async () => {
    const { endpoint, runs } = recorder();
    const e = delayingLimiter({
      limit: 1,
      interval: 1_000,
      key: (ctx: Context) => ctx.metadata.get("x-user") ?? "",
    })(endpoint);
    const as = (user: string): Context => createContext({ metadata: { "x-user": user } });
    const calls = [e(as("ada"), 1), e(as("ada"), 2), e(as("bob"), 3)];
    await vi.advanceTimersByTimeAsync(1_000);
    await Promise.all(calls);
    expect(runs).toEqual([
      [1, 0],
      [3, 0],
      [2, 1_000],
    ]);
  });

  it("never forgets a key whose calls only wait (no maxConcurrent) while maxKeys are tracked", async () => {
    const { endpoint, runs } = recorder();
    const limiter = createRateLimiter({
      limit: 1,
      interval: 1_000,
      maxKeys: 1,
      mode: "delay",
      key: (ctx: Context) => ctx.metadata.get("x-user") ?? "",
    });
    const e = limiter.middleware(endpoint);
    const as = (user: string): Context => createContext({ metadata: { "x-user": user } });
    await e(as("ada"), 1);
    const waiting = e(as("ada"), 2);
    const refused = await serviceRejection(e(as("bob"), 3));
    expect(refused.message).toContain("all 1 tracked keys have calls in progress");
    await vi.advanceTimersByTimeAsync(1_000);
    await waiting;
    await expect(e(as("bob"), 4)).resolves.toBe(4); // ada is idle now: forgotten for bob
    expect(runs).toEqual([
      [1, 0],
      [2, 1_000],
      [4, 1_000],
    ]);
  });

  it("fails waiting calls with UNAVAILABLE on close and leaves no timer", async () => {
    const limiter = createRateLimiter({ name: "slow", limit: 1, interval: 1_000, mode: "delay" });
    const e = limiter.middleware(recorder().endpoint);
    await e(background, 1);
    const call = createCancelableContext({ timeout: 5_000 });
    const waiting = [e(background, 2), e(call.context, 3)];
    // The limiter's window timer, the context's deadline, and that of the waiting call's own child.
    expect(vi.getTimerCount()).toBe(3);
    await limiter.close();
    for (const w of waiting) {
      const err = await serviceRejection(w);
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(err.message).toBe('rate limiter "slow" is closed');
    }
    call.release();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("adds no listener to a waiting call's signal, and no longer follows the call once admitted", async () => {
    const e = delayingLimiter({ limit: 1, interval: 1_000 })(recorder().endpoint);
    await e(background, 1);
    const call = createCancelableContext();
    const signal = call.context.signal;
    const add = vi.spyOn(signal, "addEventListener");
    const waiting = e(call.context, 2);
    await vi.advanceTimersByTimeAsync(1_000);
    await expect(waiting).resolves.toBe(2);
    expect(add).not.toHaveBeenCalled();
    // Cancelling afterwards changes nothing.
    call.cancel();
  });

  it("waits out a window longer than setTimeout can arm (30 days) in steps, never with an oversized timer", async () => {
    const delays: number[] = [];
    const real = globalThis.setTimeout;
    const spy = vi.spyOn(globalThis, "setTimeout").mockImplementation(((
      fn: (...args: unknown[]) => void,
      ms?: number,
      ...args: unknown[]
    ) => {
      delays.push(ms ?? 0);
      return real(fn, ms, ...args);
    }) as typeof setTimeout);
    try {
      const month = 30 * 24 * 60 * 60 * 1000;
      const { endpoint, runs } = recorder();
      const e = delayingLimiter({ limit: 1, interval: month })(endpoint);
      await e(background, 1);
      const waiting = e(background, 2);
      await vi.advanceTimersByTimeAsync(month - 1_000);
      expect(await settled(waiting)).toBe(false);
      await vi.advanceTimersByTimeAsync(1_000);
      await expect(waiting).resolves.toBe(2);
      expect(runs).toEqual([
        [1, 0],
        [2, month],
      ]);
      expect(delays.length).toBeGreaterThan(0);
      expect(Math.max(...delays)).toBeLessThanOrEqual(0x7fffffff);
    } finally {
      spy.mockRestore();
    }
  });

  it("lets any number of calls wait with one context without a MaxListenersExceededWarning", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on("warning", onWarning);
    try {
      const e = delayingLimiter({ limit: 1, interval: 1_000, maxQueue: 30 })(recorder().endpoint);
      await e(background, 0);
      const shared = createCancelableContext();
      const waiting = Array.from({ length: 20 }, (_, i) => e(shared.context, i + 1).catch((x: unknown) => x));
      shared.cancel();
      const errors = await Promise.all(waiting);
      expect(errors.map((x) => (x as ServiceError).code)).toEqual(Array(20).fill(Code.CANCELLED));
      await vi.advanceTimersByTimeAsync(0);
      expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
