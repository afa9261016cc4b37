import {
  background,
  Code,
  type Context,
  chain,
  createContext,
  type Endpoint,
  MAX_TIMER_MS,
  ServiceError,
} from "@svckit/endpoint";
import {
  createRetryBudget,
  type HedgeInfo,
  type HedgeOptions,
  hedge,
  type RetryBudget,
  retry,
} from "@svckit/retry";
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import { controlled, rejection, track } from "./test-helpers.js";

const T0 = Date.UTC(2030, 0, 1);
/** The real setImmediate, taken before the fake timers are installed. */
const realSetImmediate = setImmediate;

/**
 * Collects the process's unhandled rejections until `stop()`, which first lets a real turn of the event
 * loop pass so that Node has reported any rejection left unhandled by then.
 */
function watchUnhandled(): { readonly reasons: unknown[]; stop(): Promise<void> } {
  const reasons: unknown[] = [];
  const listener = (reason: unknown): void => {
    reasons.push(reason);
  };
  process.on("unhandledRejection", listener);
  return {
    reasons,
    async stop() {
      await new Promise<void>((resolve) => realSetImmediate(resolve));
      process.off("unhandledRejection", listener);
    },
  };
}

const unavailable = (message = "backend down"): ServiceError => new ServiceError(Code.UNAVAILABLE, message);

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("hedge: timing", () => {
  it("sends nothing more when the first attempt answers before the delay, and clears its timer", async () => {
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 50 })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(49);
    calls[0]?.resolve("first");
    await expect(p).resolves.toBe("first");
    expect(calls).toHaveLength(1);
    expect(calls[0]?.ctx.signal.aborted).toBe(false); // the winner is released, never aborted
  });

  it("starts a second attempt after the delay, with the same request, without cancelling the first", async () => {
    const onHedge = vi.fn<(info: HedgeInfo) => void>();
    const { endpoint, calls } = controlled();
    const p = track(hedge<string, string>({ delay: 50, onHedge })(endpoint)(background, "req"));
    await vi.advanceTimersByTimeAsync(49);
    expect(calls).toHaveLength(1);
    expect(onHedge).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.request).toBe("req");
    expect(calls[0]?.ctx.signal.aborted).toBe(false);
    expect(onHedge).toHaveBeenCalledWith({ attempt: 2, delay: 50, error: undefined });
    calls[1]?.resolve("second");
    await expect(p.promise).resolves.toBe("second");
  });

  it("takes the first success and aborts the loser's signal with CANCELLED", async () => {
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 50 })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(60);
    calls[1]?.resolve("second");
    await expect(p).resolves.toBe("second");
    const loser = calls[0]?.ctx as Context;
    expect(loser.signal.aborted).toBe(true);
    const reason = loser.signal.reason as ServiceError;
    expect(reason).toBeInstanceOf(ServiceError);
    expect(reason.code).toBe(Code.CANCELLED);
    expect(reason.message).toBe("hedged attempt cancelled: the call already finished");
    expect(calls[1]?.ctx.signal.aborted).toBe(false);
    calls[0]?.resolve("late"); // ignored
    calls[0]?.reject(unavailable()); // ignored too
  });

  it("the first attempt may still win after the hedge went out; the hedge is then cancelled", async () => {
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 50 })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(70);
    calls[0]?.resolve("first");
    await expect(p).resolves.toBe("first");
    expect(calls[1]?.ctx.signal.aborted).toBe(true);
    expect(calls[0]?.ctx.signal.aborted).toBe(false);
  });

  it("gives each attempt its own child context carrying the caller's deadline and values", async () => {
    const { endpoint, calls } = controlled();
    const ctx = createContext({ timeout: 1_000, metadata: { "x-id": "1" } });
    const p = hedge<string, string>({ delay: 10 })(endpoint)(ctx, "x");
    await vi.advanceTimersByTimeAsync(10);
    expect(calls).toHaveLength(2);
    expect(calls[0]?.ctx).not.toBe(ctx);
    expect(calls[1]?.ctx).not.toBe(calls[0]?.ctx);
    for (const call of calls) {
      expect(call.ctx.deadline).toBe(T0 + 1_000);
      expect(call.ctx.metadata.get("x-id")).toBe("1");
    }
    calls[0]?.resolve("ok");
    await p;
  });

  it("sends up to maxAttempts, one more per delay", async () => {
    const onHedge = vi.fn<(info: HedgeInfo) => void>();
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 30, maxAttempts: 3, onHedge })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(30);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(29);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(3);
    calls[2]?.resolve("third");
    await expect(p).resolves.toBe("third");
    expect(onHedge.mock.calls.map(([info]) => info.attempt)).toEqual([2, 3]);
    expect(calls[0]?.ctx.signal.aborted && calls[1]?.ctx.signal.aborted).toBe(true);
  });

  it("maxAttempts: 1 never hedges", async () => {
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 0, maxAttempts: 1 })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(1);
    calls[0]?.resolve("only");
    await expect(p).resolves.toBe("only");
  });

  it("delay 0 sends the hedge on the next turn of the event loop", async () => {
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 0 })(endpoint)(background, "x");
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(2);
    calls[0]?.resolve("a");
    await p;
  });

  it("does not keep the process alive: the hedge timer is unref'd", async () => {
    const unref = vi.fn();
    const realSetTimeout = globalThis.setTimeout;
    vi.spyOn(globalThis, "setTimeout").mockImplementation(((fn: () => void, ms: number) => {
      const timer = realSetTimeout(fn, ms);
      const original = timer.unref.bind(timer);
      timer.unref = () => {
        unref();
        return original();
      };
      return timer;
    }) as typeof setTimeout);
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 50 })(endpoint)(background, "x");
    expect(unref).toHaveBeenCalledTimes(1);
    calls[0]?.resolve("a");
    await p;
  });
});

describe("hedge: failures", () => {
  it("a retryable failure starts the next attempt at once", async () => {
    const onHedge = vi.fn<(info: HedgeInfo) => void>();
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 1_000, onHedge })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(10);
    const error = unavailable();
    calls[0]?.reject(error);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(2);
    expect(Date.now()).toBe(T0 + 10);
    expect(onHedge).toHaveBeenCalledWith({ attempt: 2, delay: 10, error });
    calls[1]?.resolve("second");
    await expect(p).resolves.toBe("second");
  });

  it("when every attempt fails, fails with the last failure", async () => {
    const { endpoint, calls } = controlled();
    const p = track(hedge<string, string>({ delay: 10, maxAttempts: 3 })(endpoint)(background, "x"));
    await vi.advanceTimersByTimeAsync(20);
    const last = unavailable("third");
    calls[1]?.reject(unavailable("second"));
    calls[0]?.reject(unavailable("first"));
    calls[2]?.reject(last);
    expect(await rejection(p.promise)).toBe(last);
  });

  it("waits for the attempts still running when a failure leaves no attempt to start", async () => {
    const { endpoint, calls } = controlled();
    const p = track(hedge<string, string>({ delay: 10 })(endpoint)(background, "x"));
    await vi.advanceTimersByTimeAsync(10);
    calls[1]?.reject(unavailable());
    await vi.advanceTimersByTimeAsync(100);
    expect(p.settled).toBe(false);
    calls[0]?.resolve("first");
    await expect(p.promise).resolves.toBe("first");
  });

  it("prefers the last failure that was not CANCELLED", async () => {
    const retryOn = (e: ServiceError): boolean => e.code === Code.UNAVAILABLE || e.code === Code.CANCELLED;
    const { endpoint, calls } = controlled();
    const p = track(hedge<string, string>({ delay: 10, retryOn })(endpoint)(background, "x"));
    await vi.advanceTimersByTimeAsync(10);
    const useful = unavailable("the real reason");
    calls[0]?.reject(useful);
    calls[1]?.reject(new ServiceError(Code.CANCELLED, "stream reset"));
    expect(await rejection(p.promise)).toBe(useful);

    const only = controlled();
    const q = track(hedge<string, string>({ delay: 10, retryOn })(only.endpoint)(background, "x"));
    await vi.advanceTimersByTimeAsync(10);
    const cancelled = new ServiceError(Code.CANCELLED, "second reset");
    only.calls[0]?.reject(new ServiceError(Code.CANCELLED, "first reset"));
    only.calls[1]?.reject(cancelled);
    expect(await rejection(q.promise)).toBe(cancelled);
  });

  it("a non-retryable failure ends the call at once and cancels the other attempts", async () => {
    const { endpoint, calls } = controlled();
    const p = track(hedge<string, string>({ delay: 10, maxAttempts: 3 })(endpoint)(background, "x"));
    await vi.advanceTimersByTimeAsync(10);
    const final = new ServiceError(Code.INVALID_ARGUMENT, "bad request");
    calls[1]?.reject(final);
    expect(await rejection(p.promise)).toBe(final);
    expect(calls).toHaveLength(2);
    expect((calls[0]?.ctx.signal.reason as ServiceError | undefined)?.code).toBe(Code.CANCELLED);
  });

  it("passes a thrown non-ServiceError through unchanged and does not hedge it", async () => {
    const bug = new RangeError("oops");
    const e = vi.fn(async () => {
      throw bug;
    });
    expect(await rejection(hedge({ delay: 10 })(e)(background, undefined))).toBe(bug);
    expect(e).toHaveBeenCalledTimes(1);
  });

  it("treats a synchronous throw from the endpoint as that attempt's failure", async () => {
    let calls = 0;
    const e = (() => {
      calls++;
      if (calls === 1) throw unavailable();
      return Promise.resolve("second");
    }) as Endpoint<string, string>;
    await expect(hedge({ delay: 10 })(e)(background, "x")).resolves.toBe("second");
    expect(calls).toBe(2);
  });

  it("retries RESOURCE_EXHAUSTED as a hedge only with retryResourceExhausted", async () => {
    const error = new ServiceError(Code.RESOURCE_EXHAUSTED, "slow down");
    const e = vi.fn(async () => {
      if (e.mock.calls.length === 1) throw error;
      return "ok";
    });
    expect(await rejection(hedge({ delay: 10 })(e)(background, undefined))).toBe(error);
    e.mockClear();
    await expect(hedge({ delay: 10, retryResourceExhausted: true })(e)(background, undefined)).resolves.toBe(
      "ok",
    );
  });
});

describe("hedge: budget", () => {
  it("records one request per call and asks the budget before each hedge", async () => {
    const budget = { recordRequest: vi.fn(), tryRetry: vi.fn(() => true) };
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 10, maxAttempts: 3, budget })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(20);
    expect(calls).toHaveLength(3);
    calls[0]?.resolve("a");
    await p;
    expect(budget.recordRequest).toHaveBeenCalledTimes(1);
    expect(budget.tryRetry).toHaveBeenCalledTimes(2);
  });

  it("sends no hedge that the budget refuses, and asks no more for that call", async () => {
    const budget: RetryBudget = { recordRequest: () => {}, tryRetry: vi.fn(() => false) };
    const onHedge = vi.fn();
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: 10, maxAttempts: 5, budget, onHedge })(endpoint)(
      background,
      "x",
    );
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(1);
    expect(onHedge).not.toHaveBeenCalled();
    expect(budget.tryRetry).toHaveBeenCalledTimes(1);
    calls[0]?.resolve("a");
    await expect(p).resolves.toBe("a");
  });

  it("fails with the attempt's error when the budget refuses the retry after a failure", async () => {
    const budget: RetryBudget = { recordRequest: () => {}, tryRetry: () => false };
    const error = unavailable();
    const { endpoint, calls } = controlled();
    const p = rejection(hedge<string, string>({ delay: 10, budget })(endpoint)(background, "x"));
    calls[0]?.reject(error);
    expect(await p).toBe(error);
    expect(calls).toHaveLength(1);
  });

  it("limits the extra load of hedging to the budget's ratio", async () => {
    const budget = createRetryBudget({ retryRatio: 0.05, minRetriesPerSecond: 0 });
    // Answers in 20 ms unless cancelled.
    const slow = vi.fn(
      (ctx: Context, _req: undefined) =>
        new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => resolve("ok"), 20);
          ctx.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(ctx.signal.reason);
          });
        }),
    );
    const client = hedge({ delay: 10, budget })(slow);
    for (let i = 0; i < 200; i++) {
      const p = client(background, undefined);
      await vi.advanceTimersByTimeAsync(20);
      await p;
    }
    expect(slow.mock.calls.length - 200).toBe(10);
  });
});

describe("hedge: percentile delay", () => {
  it("uses the fallback until minSamples successes, then the percentile of their latencies", async () => {
    const onHedge = vi.fn<(info: HedgeInfo) => void>();
    const { endpoint, calls } = controlled();
    const client = hedge<string, string>({
      delay: { percentile: 50, minSamples: 5, fallback: 1_000 },
      onHedge,
    })(endpoint);
    // Five calls answered in 10, 20, 30, 40 and 50 ms: no hedge, the fallback is 1 s.
    for (const latency of [50, 10, 40, 20, 30]) {
      const p = client(background, "x");
      await vi.advanceTimersByTimeAsync(latency);
      calls.at(-1)?.resolve("ok");
      await p;
    }
    expect(calls).toHaveLength(5);
    expect(onHedge).not.toHaveBeenCalled();
    // Now the median, 30 ms, is the delay.
    const p = client(background, "x");
    await vi.advanceTimersByTimeAsync(29);
    expect(calls).toHaveLength(6);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(7);
    expect(onHedge).toHaveBeenCalledWith({ attempt: 2, delay: 30, error: undefined });
    calls[6]?.resolve("hedge");
    await expect(p).resolves.toBe("hedge");
  });

  it("learns only from successes, and each wrapped endpoint has its own latencies", async () => {
    const fast = controlled();
    const other = controlled();
    const middleware = hedge({ delay: { percentile: 100, minSamples: 1, fallback: 500 } });
    const a = middleware(fast.endpoint);
    const b = middleware(other.endpoint);
    const failed = rejection(a(background, "x"));
    await vi.advanceTimersByTimeAsync(5);
    fast.calls[0]?.reject(new ServiceError(Code.NOT_FOUND));
    await failed;
    const first = a(background, "x");
    await vi.advanceTimersByTimeAsync(5);
    fast.calls[1]?.resolve("ok");
    await first;
    // a learned 5 ms (the failure did not count); b has seen nothing and still waits 500 ms.
    const pa = a(background, "x");
    const pb = b(background, "x");
    await vi.advanceTimersByTimeAsync(5);
    expect(fast.calls).toHaveLength(4);
    expect(other.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(495);
    expect(other.calls).toHaveLength(2);
    fast.calls[3]?.resolve("a");
    other.calls[0]?.resolve("b");
    await Promise.all([pa, pb]);
  });
});

describe("hedge: cancellation and deadlines", () => {
  it("fails at once with CANCELLED when the caller cancels, even if attempts ignore their signals", async () => {
    const { endpoint, calls } = controlled();
    const caller = background.withCancel();
    const p = track(hedge<string, string>({ delay: 10, maxAttempts: 3 })(endpoint)(caller.context, "x"));
    await vi.advanceTimersByTimeAsync(10);
    caller.cancel();
    const err = (await rejection(p.promise)) as ServiceError;
    expect(err.code).toBe(Code.CANCELLED);
    expect(err.message).toBe("context cancelled");
    expect(calls).toHaveLength(2);
    for (const call of calls) expect(call.ctx.signal.reason).toBe(err);
  });

  it("fails with the reason the caller cancels with", async () => {
    const e = vi.fn(
      (ctx: Context, _req: string) =>
        new Promise<string>((_resolve, reject) => {
          ctx.signal.addEventListener("abort", () => reject(unavailable("connection reset")));
        }),
    );
    const caller = background.withCancel();
    const p = rejection(hedge<string, string>({ delay: 10 })(e)(caller.context, "x"));
    const reason = new ServiceError(Code.ABORTED, "stop");
    caller.cancel(reason);
    expect(await p).toBe(reason);
    expect(Date.now()).toBe(T0);
    expect(e).toHaveBeenCalledTimes(1);
  });

  it("before any hedge, a cancel ignored by the one attempt ends the call at the hedge delay at the latest", async () => {
    const { endpoint, calls } = controlled();
    const caller = background.withCancel();
    const p = track(hedge<string, string>({ delay: 40 })(endpoint)(caller.context, "x"));
    await vi.advanceTimersByTimeAsync(10);
    caller.cancel();
    expect(calls[0]?.ctx.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(29);
    expect(p.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(((await rejection(p.promise)) as ServiceError).code).toBe(Code.CANCELLED);
    expect(calls).toHaveLength(1);
  });

  it("makes no AbortController when the first attempt answers before the delay", async () => {
    const controllers = vi.spyOn(globalThis, "AbortController");
    const e = vi.fn(async () => "fast");
    await expect(hedge({ delay: 10 })(e)(createContext({ timeout: 1_000 }), undefined)).resolves.toBe("fast");
    expect(controllers).not.toHaveBeenCalled();
  });

  it("schedules no hedge at or past the caller's deadline, and fails with DEADLINE_EXCEEDED at the deadline", async () => {
    const { endpoint, calls } = controlled();
    const p = rejection(
      hedge<string, string>({ delay: 100 })(endpoint)(createContext({ timeout: 100 }), "x"),
    );
    await vi.advanceTimersByTimeAsync(100);
    const err = (await p) as ServiceError;
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toHaveLength(1);
  });

  it("fails with the last real failure rather than the deadline when there is one", async () => {
    const { endpoint, calls } = controlled();
    const p = rejection(
      hedge<string, string>({ delay: 10, maxAttempts: 3 })(endpoint)(createContext({ timeout: 50 }), "x"),
    );
    await vi.advanceTimersByTimeAsync(15);
    const failure = unavailable("instance 1 down");
    calls[0]?.reject(failure);
    await vi.advanceTimersByTimeAsync(35);
    expect(calls).toHaveLength(3);
    expect(await p).toBe(failure);
  });

  it("starts no attempt when the caller is already cancelled", async () => {
    const e = vi.fn(async () => "never");
    const caller = background.withCancel();
    caller.cancel();
    expect(((await rejection(hedge({ delay: 10 })(e)(caller.context, undefined))) as ServiceError).code).toBe(
      Code.CANCELLED,
    );
    expect(e).not.toHaveBeenCalled();
  });

  it("leaves no timer on the caller's context once the call is over", async () => {
    const { endpoint, calls } = controlled();
    const ctx = createContext({ timeout: 10_000 });
    const p = hedge<string, string>({ delay: 10 })(endpoint)(ctx, "x");
    calls[0]?.resolve("ok");
    await p;
    // afterEach checks vi.getTimerCount() === 0: the deadline timer watching set up is gone too.
  });
});

describe("hedge: composition and setup", () => {
  it("composes with retry: retry re-runs the whole hedged call when every attempt failed", async () => {
    let n = 0;
    const e = vi.fn(async () => {
      n++;
      if (n <= 2) throw unavailable(`attempt ${n}`);
      return "ok";
    });
    const client = chain(retry({ random: () => 0 }), hedge({ delay: 10 }))(e);
    await expect(client(background, undefined)).resolves.toBe("ok");
    expect(e).toHaveBeenCalledTimes(3);
  });

  it("returns named functions and keeps the endpoint's types", async () => {
    const typed: Endpoint<{ a: number }, { v: number }> = async (_ctx, { a }) => ({ v: a + 1 });
    const middleware = hedge({ delay: 10 });
    expect(middleware.name).toBe("hedgeMiddleware");
    const wrapped = chain(hedge({ delay: 10 }))(typed);
    expectTypeOf(wrapped).toEqualTypeOf<Endpoint<{ a: number }, { v: number }>>();
    expect(middleware(typed).name).toBe("hedgeEndpoint");
    await expect(wrapped(background, { a: 1 })).resolves.toEqual({ v: 2 });
  });

  it.each([
    [{}, TypeError, "hedge: delay must be a number of ms or { percentile, fallback }, got undefined"],
    [{ delay: -1 }, RangeError, "hedge: delay must be a finite number of ms ≥ 0, got -1"],
    [{ delay: Number.NaN }, RangeError, "hedge: delay must be a finite number of ms ≥ 0, got NaN"],
    [{ delay: "10" }, TypeError, 'hedge: delay must be a number of ms or { percentile, fallback }, got "10"'],
    [{ delay: 10, maxAttempts: 0 }, RangeError, "hedge: maxAttempts must be an integer ≥ 1, got 0"],
    [
      { delay: { percentile: 0, fallback: 10 } },
      RangeError,
      "hedge: delay.percentile must be in (0, 100], got 0",
    ],
    [
      { delay: { percentile: 101, fallback: 10 } },
      RangeError,
      "hedge: delay.percentile must be in (0, 100], got 101",
    ],
    [
      { delay: { percentile: 99 } },
      RangeError,
      "hedge: delay.fallback must be a finite number of ms ≥ 0, got undefined",
    ],
    [
      { delay: { percentile: 99, fallback: 10, minSamples: 0 } },
      RangeError,
      "hedge: delay.minSamples must be an integer ≥ 1, got 0",
    ],
    [
      { delay: { percentile: 99, fallback: 10, sampleSize: 1.5 } },
      RangeError,
      "hedge: delay.sampleSize must be an integer in [1, 1000000], got 1.5",
    ],
    [
      { delay: { percentile: 99, fallback: 10, minSamples: 20, sampleSize: 10 } },
      RangeError,
      "hedge: delay.minSamples (20) must not exceed delay.sampleSize (10)",
    ],
    [{ delay: 10, retryOn: 1 }, TypeError, "hedge: retryOn must be a function, got number"],
    [{ delay: 10, onHedge: "x" }, TypeError, 'hedge: onHedge must be a function, got "x"'],
    [{ delay: 10, budget: {} }, TypeError, "hedge: budget must have recordRequest() and tryRetry() methods"],
  ])("rejects %j at setup", (options, type, message) => {
    expect(() => hedge(options as unknown as HedgeOptions)).toThrow(type);
    expect(() => hedge(options as unknown as HedgeOptions)).toThrow(message);
  });

  it("rejects options that are not an object", () => {
    expect(() => hedge(undefined as unknown as HedgeOptions)).toThrow(
      new TypeError("hedge: options must be an object, got undefined"),
    );
  });
});

describe("hedge: callbacks that throw", () => {
  it("a retryOn that throws after a failed attempt fails the call with what it threw, like retry, and cancels the attempts", async () => {
    const unhandled = watchUnhandled();
    try {
      const bug = new TypeError("retryOn is broken");
      const retryOn = (): boolean => {
        throw bug;
      };
      const { endpoint, calls } = controlled();
      const p = track(hedge<string, string>({ delay: 10, retryOn })(endpoint)(background, "x"));
      await vi.advanceTimersByTimeAsync(10);
      expect(calls).toHaveLength(2);
      calls[1]?.reject(unavailable());
      await vi.advanceTimersByTimeAsync(0);
      expect(p.settled).toBe(true);
      expect(await rejection(p.promise)).toBe(bug);
      expect((calls[0]?.ctx.signal.reason as ServiceError | undefined)?.code).toBe(Code.CANCELLED);
      // retry fails the same way with the same predicate.
      expect(
        await rejection(retry({ retryOn })(async () => Promise.reject(unavailable()))(background, "x")),
      ).toBe(bug);
    } finally {
      await unhandled.stop();
    }
    expect(unhandled.reasons).toEqual([]);
  });

  it("a retryOn that throws for a hedge that failed synchronously in the timer fails the call, nothing escapes", async () => {
    const unhandled = watchUnhandled();
    try {
      const bug = new Error("retryOn is broken");
      const retryOn = (): boolean => {
        throw bug;
      };
      const first = controlled();
      let n = 0;
      const endpoint: Endpoint<string, string> = (ctx, req) => {
        if (++n === 2) throw unavailable("sync");
        return first.endpoint(ctx, req);
      };
      const p = track(hedge<string, string>({ delay: 10, retryOn })(endpoint)(background, "x"));
      await vi.advanceTimersByTimeAsync(10); // would throw here if the timer callback threw
      expect(n).toBe(2);
      expect(await rejection(p.promise)).toBe(bug);
      expect((first.calls[0]?.ctx.signal.reason as ServiceError | undefined)?.code).toBe(Code.CANCELLED);
    } finally {
      await unhandled.stop();
    }
    expect(unhandled.reasons).toEqual([]);
  });

  it("a budget whose tryRetry throws in the hedge timer fails the call with what it threw and cancels the attempt", async () => {
    const bug = new Error("budget store down");
    const budget: RetryBudget = {
      recordRequest: () => {},
      tryRetry: () => {
        throw bug;
      },
    };
    const { endpoint, calls } = controlled();
    const p = track(hedge<string, string>({ delay: 10, budget })(endpoint)(background, "x"));
    await vi.advanceTimersByTimeAsync(10); // would throw here if the timer callback threw
    expect(p.settled).toBe(true);
    expect(await rejection(p.promise)).toBe(bug);
    expect(calls).toHaveLength(1);
    expect((calls[0]?.ctx.signal.reason as ServiceError | undefined)?.code).toBe(Code.CANCELLED);
  });

  it("a budget whose tryRetry throws after a failed attempt fails the call, with no unhandled rejection", async () => {
    const unhandled = watchUnhandled();
    try {
      const bug = new Error("budget store down");
      const tryRetry = vi.fn<() => boolean>(() => true);
      const budget: RetryBudget = { recordRequest: () => {}, tryRetry };
      const { endpoint, calls } = controlled();
      const p = track(
        hedge<string, string>({ delay: 10, maxAttempts: 3, budget })(endpoint)(background, "x"),
      );
      await vi.advanceTimersByTimeAsync(10);
      expect(calls).toHaveLength(2);
      tryRetry.mockImplementation(() => {
        throw bug;
      });
      calls[1]?.reject(unavailable());
      await vi.advanceTimersByTimeAsync(0);
      expect(p.settled).toBe(true);
      expect(await rejection(p.promise)).toBe(bug);
      expect((calls[0]?.ctx.signal.reason as ServiceError | undefined)?.code).toBe(Code.CANCELLED);
      expect(calls).toHaveLength(2);
    } finally {
      await unhandled.stop();
    }
    expect(unhandled.reasons).toEqual([]);
  });

  it("a budget whose recordRequest throws makes a rejected promise, not a synchronous throw, and no attempt", async () => {
    const bug = new Error("budget store down");
    const budget: RetryBudget = {
      recordRequest: () => {
        throw bug;
      },
      tryRetry: () => true,
    };
    const e = vi.fn(async () => "never");
    const client = hedge({ delay: 10, budget })(e);
    let p: Promise<unknown> | undefined;
    expect(() => {
      p = client(background, undefined);
    }).not.toThrow();
    expect(await rejection(p as Promise<unknown>)).toBe(bug);
    expect(e).not.toHaveBeenCalled();
  });
});

describe("hedge: waits longer than MAX_TIMER_MS", () => {
  const DAY = 86_400_000;

  it("waits a delay above MAX_TIMER_MS in full (in steps), not 1 ms", async () => {
    const delay = 30 * DAY;
    expect(delay).toBeGreaterThan(MAX_TIMER_MS);
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(delay - MAX_TIMER_MS - 1_001);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    calls[1]?.resolve("second");
    await expect(p).resolves.toBe("second");
  });

  it("a huge delay (Number.MAX_SAFE_INTEGER) hedges only after failures", async () => {
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: Number.MAX_SAFE_INTEGER })(endpoint)(background, "x");
    await vi.advanceTimersByTimeAsync(3 * MAX_TIMER_MS);
    expect(calls).toHaveLength(1);
    calls[0]?.reject(unavailable());
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(2);
    calls[1]?.resolve("after the failure");
    await expect(p).resolves.toBe("after the failure");
  });

  it("waits a percentile delay's fallback above MAX_TIMER_MS in full", async () => {
    const { endpoint, calls } = controlled();
    const p = hedge<string, string>({ delay: { percentile: 95, fallback: MAX_TIMER_MS + 10 } })(endpoint)(
      background,
      "x",
    );
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 9);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    calls[0]?.resolve("first");
    await expect(p).resolves.toBe("first");
  });

  it("waits for a deadline more than MAX_TIMER_MS away in steps, without spinning, and ends the call there", async () => {
    const timeout = 40 * DAY;
    const { endpoint, calls } = controlled();
    const p = track(hedge<string, string>({ delay: 50 * DAY })(endpoint)(createContext({ timeout }), "x"));
    const timers = vi.spyOn(globalThis, "setTimeout");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(timers.mock.calls.length).toBeLessThanOrEqual(1); // was a new 1 ms timer every ms
    await vi.advanceTimersByTimeAsync(timeout - 1_001);
    expect(p.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(((await rejection(p.promise)) as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toHaveLength(1);
  });
});

describe("hedge: no hedge may follow, the caller still ends the call", () => {
  it("maxAttempts: 1 ends the call at the caller's deadline even if the attempt ignores its signal", async () => {
    const { endpoint, calls } = controlled();
    const p = track(
      hedge<string, string>({ delay: 10, maxAttempts: 1 })(endpoint)(createContext({ timeout: 100 }), "x"),
    );
    await vi.advanceTimersByTimeAsync(99);
    expect(p.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(((await rejection(p.promise)) as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toHaveLength(1);
  });

  it("maxAttempts: 1 ends the call at once when the caller cancels, even if the attempt ignores its signal", async () => {
    const { endpoint, calls } = controlled();
    const caller = background.withCancel();
    const p = track(hedge<string, string>({ delay: 10, maxAttempts: 1 })(endpoint)(caller.context, "x"));
    await vi.advanceTimersByTimeAsync(50);
    caller.cancel();
    await vi.advanceTimersByTimeAsync(0);
    expect(p.settled).toBe(true);
    expect(((await rejection(p.promise)) as ServiceError).code).toBe(Code.CANCELLED);
    expect(calls).toHaveLength(1);
  });

  it("after the budget refused a hedge, ends the call at the caller's deadline", async () => {
    const budget: RetryBudget = { recordRequest: () => {}, tryRetry: () => false };
    const { endpoint, calls } = controlled();
    const p = track(
      hedge<string, string>({ delay: 10, budget })(endpoint)(createContext({ timeout: 100 }), "x"),
    );
    await vi.advanceTimersByTimeAsync(99);
    expect(p.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(((await rejection(p.promise)) as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toHaveLength(1);
  });

  it("after the budget refused a hedge, ends the call at once when the caller cancels", async () => {
    const budget: RetryBudget = { recordRequest: () => {}, tryRetry: () => false };
    const { endpoint, calls } = controlled();
    const caller = background.withCancel();
    const p = track(hedge<string, string>({ delay: 10, budget })(endpoint)(caller.context, "x"));
    await vi.advanceTimersByTimeAsync(20);
    caller.cancel();
    await vi.advanceTimersByTimeAsync(0);
    expect(p.settled).toBe(true);
    expect(((await rejection(p.promise)) as ServiceError).code).toBe(Code.CANCELLED);
    expect(calls).toHaveLength(1);
  });

  it("after the budget refused the attempt a failure asked for, ends the call at the deadline while another runs", async () => {
    const tryRetry = vi.fn<() => boolean>(() => true);
    const budget: RetryBudget = { recordRequest: () => {}, tryRetry };
    const { endpoint, calls } = controlled();
    const p = track(
      hedge<string, string>({ delay: 10, maxAttempts: 3, budget })(endpoint)(
        createContext({ timeout: 100 }),
        "x",
      ),
    );
    await vi.advanceTimersByTimeAsync(10);
    expect(calls).toHaveLength(2);
    tryRetry.mockReturnValue(false);
    const failure = unavailable("instance 2 down");
    calls[1]?.reject(failure);
    await vi.advanceTimersByTimeAsync(89);
    expect(p.settled).toBe(false);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(await rejection(p.promise)).toBe(failure); // the real failure rather than "deadline exceeded"
  });
});
