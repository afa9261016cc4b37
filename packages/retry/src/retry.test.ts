import {
  background,
  Code,
  type CodeName,
  type Context,
  chain,
  createContext,
  createContextKey,
  type Endpoint,
  MAX_TIMER_MS,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import {
  createRetryBudget,
  type GiveUpInfo,
  type RetryBudget,
  type RetryInfo,
  type RetryOptions,
  type RetryPredicate,
  retry,
} from "@svckit/retry";
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import { controlled, rejection, sequence, track } from "./test-helpers.js";

const T0 = Date.UTC(2030, 0, 1);

const unavailable = (message = "backend down"): ServiceError => new ServiceError(Code.UNAVAILABLE, message);

/** An endpoint that fails with each of `failures` in turn, then answers "ok"; it counts its calls. */
function failing(...failures: unknown[]): Endpoint<string, string> & { calls: Context[] } {
  const calls: Context[] = [];
  const endpoint = async (ctx: Context, _request: string): Promise<string> => {
    calls.push(ctx);
    const failure = failures[calls.length - 1];
    if (failure !== undefined) throw failure;
    return "ok";
  };
  return Object.assign(endpoint, { calls });
}

/** Instant retries: the jitter always draws 0. */
const instant: RetryOptions = { random: () => 0 };

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("retry: attempts", () => {
  it("calls the endpoint once when it succeeds, with the caller's context, and leaves no timer", async () => {
    const e = failing();
    const ctx = createContext({ timeout: 1_000 });
    await expect(retry()(e)(ctx, "x")).resolves.toBe("ok");
    expect(e.calls).toEqual([ctx]);
  });

  it("retries UNAVAILABLE until an attempt succeeds", async () => {
    const e = failing(unavailable(), unavailable());
    await expect(retry(instant)(e)(background, "x")).resolves.toBe("ok");
    expect(e.calls).toHaveLength(3);
  });

  it("makes maxAttempts attempts (3 by default), then fails with the last error unchanged", async () => {
    const errors = [unavailable("1"), unavailable("2"), unavailable("3"), unavailable("4")];
    const e = failing(...errors);
    expect(await rejection(retry(instant)(e)(background, "x"))).toBe(errors[2]);
    expect(e.calls).toHaveLength(3);

    const five = failing(...errors, unavailable("5"), unavailable("6"));
    expect(await rejection(retry({ ...instant, maxAttempts: 5 })(five)(background, "x"))).toBeInstanceOf(
      ServiceError,
    );
    expect(five.calls).toHaveLength(5);
  });

  it("maxAttempts: 1 never retries", async () => {
    const e = failing(unavailable());
    expect(((await rejection(retry({ maxAttempts: 1 })(e)(background, "x"))) as ServiceError).code).toBe(
      Code.UNAVAILABLE,
    );
    expect(e.calls).toHaveLength(1);
  });

  const notRetried = (Object.keys(Code) as CodeName[]).filter(
    (name) => name !== "OK" && name !== "UNAVAILABLE",
  );
  it.each(notRetried)("does not retry %s by default and passes it through unchanged", async (name) => {
    const error = new ServiceError(Code[name], `failed with ${name}`);
    const e = failing(error);
    expect(await rejection(retry(instant)(e)(background, "x"))).toBe(error);
    expect(e.calls).toHaveLength(1);
  });

  it("retries RESOURCE_EXHAUSTED only with retryResourceExhausted", async () => {
    const e = failing(new ServiceError(Code.RESOURCE_EXHAUSTED, "slow down"));
    await expect(retry({ ...instant, retryResourceExhausted: true })(e)(background, "x")).resolves.toBe("ok");
    expect(e.calls).toHaveLength(2);
  });

  it("does not retry a thrown non-ServiceError (INTERNAL) and rethrows it as it was", async () => {
    const bug = new TypeError("x is undefined");
    const e = failing(bug);
    expect(await rejection(retry(instant)(e)(background, "x"))).toBe(bug);
    expect(e.calls).toHaveLength(1);
  });

  it("treats a synchronous throw from the endpoint as a failed attempt", async () => {
    let calls = 0;
    const e: Endpoint<string, string> = (() => {
      calls++;
      if (calls === 1) throw unavailable();
      return Promise.resolve("ok");
    }) as Endpoint<string, string>;
    await expect(retry(instant)(e)(background, "x")).resolves.toBe("ok");
    expect(calls).toBe(2);
  });

  it("asks retryOn with the error as a ServiceError, the attempt number and whether it timed out", async () => {
    const aborted = new ServiceError(Code.ABORTED, "conflict");
    const plain = new Error("boom");
    const retryOn = vi.fn<RetryPredicate>((error) => error.code === Code.ABORTED);
    const e = failing(aborted, aborted, plain);
    expect(await rejection(retry({ ...instant, maxAttempts: 5, retryOn })(e)(background, "x"))).toBe(plain);
    expect(e.calls).toHaveLength(3);
    expect(retryOn.mock.calls.map(([err, attempt, timedOut]) => [err.code, attempt, timedOut])).toEqual([
      [Code.ABORTED, 1, false],
      [Code.ABORTED, 2, false],
      [Code.INTERNAL, 3, false],
    ]);
    expect(retryOn.mock.calls[2]?.[0].cause).toBe(plain);
  });

  it("a custom retryOn replaces the default: UNAVAILABLE is then not retried unless it says so", async () => {
    const e = failing(unavailable());
    await rejection(retry({ retryOn: () => false })(e)(background, "x"));
    expect(e.calls).toHaveLength(1);
  });

  it("sends the same request to every attempt", async () => {
    const seen: string[] = [];
    const e: Endpoint<string, string> = async (_ctx, req) => {
      seen.push(req);
      if (seen.length < 3) throw unavailable();
      return req;
    };
    await expect(retry(instant)(e)(background, "payload")).resolves.toBe("payload");
    expect(seen).toEqual(["payload", "payload", "payload"]);
  });
});

describe("retry: backoff", () => {
  it("waits a full-jitter delay between attempts: random × initial × multiplier^(n-1)", async () => {
    const onRetry = vi.fn<(info: RetryInfo) => void>();
    const errors = [unavailable("a"), unavailable("b"), unavailable("c")];
    const e = failing(...errors);
    const p = track(
      retry({
        maxAttempts: 4,
        backoff: { initial: 100, multiplier: 3 },
        random: sequence(0.5, 0.25, 1 - 2 ** -53),
        onRetry,
      })(e)(background, "x"),
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(e.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(49);
    expect(e.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1); // 0.5 × 100
    expect(e.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(74);
    expect(e.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // 0.25 × 300
    expect(e.calls).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(899);
    expect(e.calls).toHaveLength(4); // (1 - 2^-53) × 900 ≈ 900, just under
    await expect(p.promise).resolves.toBe("ok");
    expect(onRetry.mock.calls.map(([info]) => info)).toEqual([
      { attempt: 1, delay: 50, error: errors[0] },
      { attempt: 2, delay: 75, error: errors[1] },
      { attempt: 3, delay: (1 - 2 ** -53) * 900, error: errors[2] },
    ]);
  });

  it("never waits longer than backoff.max", async () => {
    const onRetry = vi.fn<(info: RetryInfo) => void>();
    const e = failing(unavailable(), unavailable(), unavailable(), unavailable());
    const p = retry({ maxAttempts: 5, backoff: { initial: 100, max: 150 }, random: () => 0.999, onRetry })(e)(
      background,
      "x",
    );
    await vi.advanceTimersByTimeAsync(100 + 150 + 150 + 150);
    await expect(p).resolves.toBe("ok");
    expect(onRetry.mock.calls.map(([info]) => info.delay)).toEqual([99.9, 149.85, 149.85, 149.85]);
  });

  it("caps a wait at MAX_TIMER_MS: a huge backoff waits ~24.8 days, not the 1 ms of an overflowing timer", async () => {
    const onRetry = vi.fn<(info: RetryInfo) => void>();
    const e = failing(unavailable());
    const p = track(
      retry({ backoff: { initial: 1e12, max: 1e12 }, random: () => 0.5, onRetry })(e)(background, "x"),
    );
    await vi.advanceTimersByTimeAsync(1_000);
    expect(e.calls).toHaveLength(1);
    const delay = MAX_TIMER_MS * 0.5;
    expect(onRetry).toHaveBeenCalledWith({ attempt: 1, delay, error: expect.any(ServiceError) });
    await vi.advanceTimersByTimeAsync(Math.floor(delay) - 1_001);
    expect(e.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(e.calls).toHaveLength(2);
    await expect(p.promise).resolves.toBe("ok");
  });

  it("uses Math.random by default and the default backoff of 100 ms doubling", async () => {
    const random = vi.spyOn(Math, "random").mockReturnValue(0.5);
    const onRetry = vi.fn<(info: RetryInfo) => void>();
    const e = failing(unavailable(), unavailable());
    const p = retry({ onRetry })(e)(background, "x");
    await vi.advanceTimersByTimeAsync(150);
    await expect(p).resolves.toBe("ok");
    expect(random).toHaveBeenCalledTimes(2);
    expect(onRetry.mock.calls.map(([info]) => info.delay)).toEqual([50, 100]);
  });

  it("retries at once, without a timer, when the delay is 0", async () => {
    const setTimeoutSpy = vi.spyOn(globalThis, "setTimeout");
    const e = failing(unavailable(), unavailable());
    await expect(retry({ backoff: { initial: 0 } })(e)(background, "x")).resolves.toBe("ok");
    expect(setTimeoutSpy).not.toHaveBeenCalled();
  });
});

describe("retry: per-attempt timeout and deadlines", () => {
  it("an attempt that exceeds perAttemptTimeout fails with DEADLINE_EXCEEDED, its signal aborts, and it is retried", async () => {
    const { endpoint, calls } = controlled();
    const p = track(retry<string, string>({ ...instant, perAttemptTimeout: 100 })(endpoint)(background, "x"));
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1);
    const first = calls[0]?.ctx as Context;
    expect(first.deadline).toBe(T0 + 100);
    await vi.advanceTimersByTimeAsync(99);
    expect(first.signal.aborted).toBe(false);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(first.signal.aborted).toBe(true);
    expect((first.signal.reason as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.ctx.deadline).toBe(T0 + 200);
    calls[1]?.resolve("second");
    await expect(p.promise).resolves.toBe("second");
    calls[0]?.resolve("too late"); // ignored
  });

  it("fails with the attempt's timeout after the last attempt, saying which attempt took too long", async () => {
    const { endpoint, calls } = controlled();
    const onGiveUp = vi.fn<(info: GiveUpInfo) => void>();
    const p = rejection(
      retry<string, string>({ ...instant, perAttemptTimeout: 100, maxAttempts: 2, onGiveUp })(endpoint)(
        background,
        "x",
      ),
    );
    await vi.advanceTimersByTimeAsync(200);
    const err = (await p) as ServiceError;
    expect(calls).toHaveLength(2);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(err.message).toBe("deadline exceeded: attempt 2 took longer than 100 ms");
    expect(onGiveUp).toHaveBeenCalledWith({ attempts: 2, reason: "max-attempts", error: err });
  });

  it("an attempt that honours its signal and rejects on the per-attempt timeout is retried too", async () => {
    let calls = 0;
    const e: Endpoint<string, string> = (ctx) => {
      calls++;
      if (calls === 2) return Promise.resolve("ok");
      return new Promise((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
      });
    };
    const p = retry<string, string>({ ...instant, perAttemptTimeout: 50 })(e)(background, "x");
    await vi.advanceTimersByTimeAsync(50);
    await expect(p).resolves.toBe("ok");
    expect(calls).toBe(2);
  });

  it("a DEADLINE_EXCEEDED the endpoint returns in the last tenth of its per-attempt time counts as the attempt's", async () => {
    // e.g. the server saw the attempt's deadline (propagated by the transport) and gave up first.
    const lateFailure = (): Endpoint<string, string> => {
      let calls = 0;
      return () =>
        ++calls === 1
          ? new Promise((_resolve, reject) =>
              setTimeout(
                () => reject(new ServiceError(Code.DEADLINE_EXCEEDED, "server: deadline exceeded")),
                95,
              ),
            )
          : Promise.resolve("ok");
    };
    const retryOn = vi.fn(() => true);
    const p = retry({ ...instant, perAttemptTimeout: 100, retryOn })(lateFailure())(background, "x");
    await vi.advanceTimersByTimeAsync(95);
    await expect(p).resolves.toBe("ok");
    expect(retryOn).toHaveBeenCalledWith(expect.any(ServiceError), 1, true);
    const defaults = retry({ ...instant, perAttemptTimeout: 100 })(lateFailure())(background, "x");
    await vi.advanceTimersByTimeAsync(95);
    await expect(defaults).resolves.toBe("ok");
  });

  it("a DEADLINE_EXCEEDED the backend answers early is its own, not the attempt's: not retried by default", async () => {
    const error = new ServiceError(Code.DEADLINE_EXCEEDED, "backend: its dependency timed out");
    const retryOn = vi.fn(() => false);
    await expect(
      rejection(retry({ ...instant, perAttemptTimeout: 1_000, retryOn })(failing(error))(background, "x")),
    ).resolves.toBe(error);
    expect(retryOn).toHaveBeenCalledWith(error, 1, false);
    let calls = 0;
    const e: Endpoint<string, string> = () => {
      calls++;
      return Promise.reject(error);
    };
    expect(await rejection(retry({ ...instant, perAttemptTimeout: 1_000 })(e)(background, "x"))).toBe(error);
    expect(calls).toBe(1);
  });

  it("does not retry a DEADLINE_EXCEEDED without a per-attempt timeout (the caller's or the server's)", async () => {
    const error = new ServiceError(Code.DEADLINE_EXCEEDED, "server: deadline exceeded");
    const e = failing(error);
    expect(await rejection(retry(instant)(e)(createContext({ timeout: 1_000 }), "x"))).toBe(error);
    expect(e.calls).toHaveLength(1);
  });

  it("the caller's deadline is not retried: it fails once, with the deadline, even with a longer perAttemptTimeout", async () => {
    const { endpoint, calls } = controlled();
    const onGiveUp = vi.fn<(info: GiveUpInfo) => void>();
    const p = rejection(
      retry<string, string>({ ...instant, perAttemptTimeout: 500, onGiveUp })(endpoint)(
        createContext({ timeout: 100 }),
        "x",
      ),
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(calls[0]?.ctx.deadline).toBe(T0 + 100);
    await vi.advanceTimersByTimeAsync(100);
    const err = (await p) as ServiceError;
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(err.message).toBe("deadline exceeded");
    expect(calls).toHaveLength(1);
    expect(onGiveUp).toHaveBeenCalledWith({ attempts: 1, reason: "deadline", error: err });
  });

  it("the caller's deadline passing during an attempt returns that attempt's error, and starts no other", async () => {
    const e: Endpoint<string, string> = (ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () =>
          reject(new ServiceError(Code.DEADLINE_EXCEEDED, "from the client")),
        );
      });
    const spy = vi.fn(e);
    const p = rejection(retry<string, string>(instant)(spy)(createContext({ timeout: 100 }), "x"));
    await vi.advanceTimersByTimeAsync(100);
    expect(((await p) as ServiceError).message).toBe("from the client");
    expect(spy).toHaveBeenCalledTimes(1);
  });

  it("does not sleep past the deadline: when the next wait would end at or after it, it returns the last error", async () => {
    const error = unavailable("down");
    const onGiveUp = vi.fn<(info: GiveUpInfo) => void>();
    const onRetry = vi.fn();
    const setTimeoutSpy = vi.spyOn(globalThis, "setTimeout");
    const e = failing(error);
    const ctx = createContext({ timeout: 150 });
    // random 0.75 × initial 200 = 150 ≥ 150 ms left.
    const p = retry({ backoff: { initial: 200 }, random: () => 0.75, onRetry, onGiveUp })(e)(ctx, "x");
    expect(await rejection(p)).toBe(error);
    expect(Date.now()).toBe(T0); // at once, no sleep
    expect(e.calls).toHaveLength(1);
    expect(onRetry).not.toHaveBeenCalled();
    expect(onGiveUp).toHaveBeenCalledWith({ attempts: 1, reason: "deadline", error });
    expect(setTimeoutSpy).not.toHaveBeenCalled();
  });

  it("waits when the delay ends before the deadline, and the retry sees the same deadline", async () => {
    const e = failing(unavailable());
    const ctx = createContext({ timeout: 150 });
    const p = retry({ backoff: { initial: 200 }, random: () => 0.7 })(e)(ctx, "x");
    await vi.advanceTimersByTimeAsync(140);
    await expect(p).resolves.toBe("ok");
    expect(e.calls).toEqual([ctx, ctx]);
  });

  it("starts no attempt when the caller's deadline has already passed", async () => {
    const e = failing();
    const ctx = createContext({ deadline: T0 - 1 });
    const err = (await rejection(retry()(e)(ctx, "x"))) as ServiceError;
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(e.calls).toHaveLength(0);
  });

  it("gives each attempt a child context with the caller's values and metadata, and releases it", async () => {
    const key = createContextKey("none", { description: "tenant" });
    const e = failing(unavailable());
    const ctx = createContext({ metadata: { "x-id": "7" }, timeout: 10_000 }).with(key, "acme");
    await retry({ ...instant, perAttemptTimeout: 100 })(e)(ctx, "x");
    for (const attemptCtx of e.calls) {
      expect(attemptCtx).not.toBe(ctx);
      expect(attemptCtx.value(key)).toBe("acme");
      expect(attemptCtx.metadata.get("x-id")).toBe("7");
      expect(attemptCtx.signal.aborted).toBe(false);
    }
  });

  it("with perAttemptTimeout, resolves the value of a plain-JS endpoint that returns a non-promise", async () => {
    const e = (() => "plain") as unknown as Endpoint<string, string>;
    await expect(retry({ perAttemptTimeout: 100 })(e)(background, "x")).resolves.toBe("plain");
  });

  it("with perAttemptTimeout, treats a synchronous throw as a failed attempt", async () => {
    let calls = 0;
    const e = (() => {
      calls++;
      if (calls === 1) throw unavailable();
      return Promise.resolve("ok");
    }) as Endpoint<string, string>;
    await expect(retry({ ...instant, perAttemptTimeout: 100 })(e)(background, "x")).resolves.toBe("ok");
    expect(calls).toBe(2);
  });
});

describe("retry: cancellation", () => {
  it("stops at once when the caller cancels during the backoff, clearing the timer", async () => {
    const onGiveUp = vi.fn<(info: GiveUpInfo) => void>();
    const e = failing(unavailable());
    const caller = background.withCancel();
    const p = track(
      retry({ backoff: { initial: 10_000 }, random: () => 1, onGiveUp })(e)(caller.context, "x"),
    );
    await vi.advanceTimersByTimeAsync(100);
    expect(vi.getTimerCount()).toBe(1);
    caller.cancel();
    const err = (await rejection(p.promise)) as ServiceError;
    expect(Date.now()).toBe(T0 + 100);
    expect(err.code).toBe(Code.CANCELLED);
    expect(err.message).toBe("context cancelled");
    expect(e.calls).toHaveLength(1);
    expect(onGiveUp).toHaveBeenCalledWith({ attempts: 1, reason: "cancelled", error: err });
  });

  it("fails with the abort reason when the caller cancels with a ServiceError", async () => {
    const e = failing(unavailable());
    const caller = background.withCancel();
    const p = rejection(retry({ backoff: { initial: 10_000 }, random: () => 1 })(e)(caller.context, "x"));
    await vi.advanceTimersByTimeAsync(10);
    const reason = new ServiceError(Code.ABORTED, "user pressed stop");
    caller.cancel(reason);
    expect(await p).toBe(reason);
  });

  it("does not retry an attempt that failed because the caller cancelled", async () => {
    const caller = background.withCancel();
    const e: Endpoint<string, string> = (ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () => reject(unavailable("connection reset")));
      });
    const spy = vi.fn(e);
    const p = rejection(retry<string, string>(instant)(spy)(caller.context, "x"));
    caller.cancel();
    expect(((await p) as ServiceError).code).toBe(Code.CANCELLED);
    expect(spy).toHaveBeenCalledTimes(1);
  });

  it("with perAttemptTimeout, aborts the attempt's signal at once when the caller cancels", async () => {
    const caller = background.withCancel();
    const e = vi.fn(
      (ctx: Context, _req: string) =>
        new Promise<string>((_resolve, reject) => {
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
        }),
    );
    const p = rejection(retry<string, string>({ perAttemptTimeout: 1_000 })(e)(caller.context, "x"));
    await vi.advanceTimersByTimeAsync(10);
    caller.cancel();
    const err = (await p) as ServiceError;
    expect(Date.now()).toBe(T0 + 10);
    expect(err.code).toBe(Code.CANCELLED);
    expect(e).toHaveBeenCalledTimes(1);
  });

  it("with perAttemptTimeout, gives up an attempt that ignores the caller's cancel at its time limit", async () => {
    const { endpoint, calls } = controlled();
    const caller = background.withCancel();
    const p = track(retry<string, string>({ perAttemptTimeout: 1_000 })(endpoint)(caller.context, "x"));
    await vi.advanceTimersByTimeAsync(10);
    caller.cancel();
    expect(calls[0]?.ctx.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(989);
    expect(p.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const err = (await rejection(p.promise)) as ServiceError;
    expect(err.code).toBe(Code.CANCELLED);
    expect(err.message).toBe("context cancelled");
    expect(calls).toHaveLength(1);
  });

  it("with perAttemptTimeout, makes no AbortController unless the endpoint asks for its signal", async () => {
    const controllers = vi.spyOn(globalThis, "AbortController");
    const e = failing(unavailable());
    await retry({ ...instant, perAttemptTimeout: 100 })(e)(createContext({ timeout: 1_000 }), "x");
    expect(e.calls).toHaveLength(2);
    expect(controllers).not.toHaveBeenCalled();
  });

  it("with perAttemptTimeout longer than the time left, stops the attempt at the caller's deadline", async () => {
    const { endpoint, calls } = controlled();
    const p = rejection(
      retry<string, string>({ ...instant, perAttemptTimeout: 500 })(endpoint)(
        createContext({ timeout: 80 }),
        "x",
      ),
    );
    await vi.advanceTimersByTimeAsync(80);
    const err = (await p) as ServiceError;
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(err.message).toBe("deadline exceeded");
    expect(calls).toHaveLength(1);
    expect(calls[0]?.ctx.signal.reason).toBe(err);
  });

  it("starts no attempt when the caller is already cancelled", async () => {
    const e = failing();
    const caller = background.withCancel();
    caller.cancel();
    expect(((await rejection(retry()(e)(caller.context, "x"))) as ServiceError).code).toBe(Code.CANCELLED);
    expect(e.calls).toHaveLength(0);
  });
});

describe("retry: per-attempt timeout at the timer limit", () => {
  it("accepts perAttemptTimeout = MAX_TIMER_MS and times the attempt out only then", async () => {
    const { endpoint, calls } = controlled();
    const p = track(
      retry<string, string>({ perAttemptTimeout: MAX_TIMER_MS, maxAttempts: 1 })(endpoint)(background, "x"),
    );
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS - 1);
    expect(p.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(((await rejection(p.promise)) as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toHaveLength(1);
  });
});

describe("retry: budget", () => {
  it("records one request per call and asks the budget before each retry", async () => {
    const budget = { recordRequest: vi.fn(), tryRetry: vi.fn(() => true) };
    const e = failing(unavailable(), unavailable());
    await retry({ ...instant, budget })(e)(background, "x");
    expect(budget.recordRequest).toHaveBeenCalledTimes(1);
    expect(budget.tryRetry).toHaveBeenCalledTimes(2);
  });

  it("records no request for a call refused at the door (cancelled, or past its deadline): it earns no retries", async () => {
    const budget = { recordRequest: vi.fn(), tryRetry: vi.fn(() => true) };
    const e = failing();
    const caller = background.withCancel();
    caller.cancel();
    expect(((await rejection(retry({ budget })(e)(caller.context, "x"))) as ServiceError).code).toBe(
      Code.CANCELLED,
    );
    const late = createContext({ timeout: 10 });
    vi.advanceTimersByTime(10);
    expect(((await rejection(retry({ budget })(e)(late, "x"))) as ServiceError).code).toBe(
      Code.DEADLINE_EXCEEDED,
    );
    expect(e.calls).toHaveLength(0);
    expect(budget.recordRequest).not.toHaveBeenCalled();
    await retry({ budget })(e)(background, "x");
    expect(budget.recordRequest).toHaveBeenCalledTimes(1);
  });

  it("returns the last error when the budget refuses, and says why", async () => {
    const budget: RetryBudget = { recordRequest: () => {}, tryRetry: () => false };
    const onGiveUp = vi.fn<(info: GiveUpInfo) => void>();
    const onRetry = vi.fn();
    const error = unavailable();
    const e = failing(error);
    expect(await rejection(retry({ budget, onGiveUp, onRetry })(e)(background, "x"))).toBe(error);
    expect(e.calls).toHaveLength(1);
    expect(onRetry).not.toHaveBeenCalled();
    expect(onGiveUp).toHaveBeenCalledWith({ attempts: 1, reason: "budget", error });
  });

  it("does not spend budget on a retry it would not make (deadline, last attempt, final error)", async () => {
    const budget = { recordRequest: vi.fn(), tryRetry: vi.fn(() => true) };
    await rejection(retry({ budget, maxAttempts: 1 })(failing(unavailable()))(background, "x"));
    await rejection(retry({ budget })(failing(new ServiceError(Code.NOT_FOUND)))(background, "x"));
    await rejection(
      retry({ budget, random: () => 1 })(failing(unavailable()))(createContext({ timeout: 10 }), "x"),
    );
    expect(budget.tryRetry).not.toHaveBeenCalled();
    expect(budget.recordRequest).toHaveBeenCalledTimes(3);
  });

  it("keeps retries within the budget under a sustained outage, then recovers", async () => {
    // 1000 failing calls with up to 3 attempts each: without a budget that is 3000 requests.
    const budget = createRetryBudget({ retryRatio: 0.1, minRetriesPerSecond: 5, ttl: 10_000 });
    const giveUps: string[] = [];
    const down = vi.fn(async () => {
      throw unavailable();
    });
    const client = retry({ ...instant, budget, onGiveUp: ({ reason }) => giveUps.push(reason) })(down);
    for (let i = 0; i < 1000; i++) {
      await rejection(client(background, undefined));
      if (i % 100 === 99) vi.advanceTimersByTime(500); // 1000 calls over 5 s, all within the 10 s window
    }
    const retries = down.mock.calls.length - 1000;
    // ≤ 10 % of 1000 requests + 5/s × 10 s of reserve.
    expect(retries).toBeLessThanOrEqual(150);
    expect(retries).toBeGreaterThanOrEqual(140);
    expect(giveUps.filter((r) => r === "budget").length).toBeGreaterThan(850);

    // The backend is back: the expired window refills the budget and failures are retried again.
    vi.advanceTimersByTime(10_000);
    expect(budget.balance()).toBe(50);
    const flaky = failing(unavailable(), unavailable());
    await expect(retry({ ...instant, budget })(flaky)(background, "x")).resolves.toBe("ok");
    expect(flaky.calls).toHaveLength(3);
  });

  it("is shared between endpoints: retries of one use up the budget of the other", async () => {
    const budget = createRetryBudget({ retryRatio: 0, minRetriesPerSecond: 0.2, ttl: 10_000 }); // 2 retries
    const a = failing(unavailable(), unavailable());
    const b = failing(unavailable());
    await expect(retry({ ...instant, budget })(a)(background, "x")).resolves.toBe("ok");
    await rejection(retry({ ...instant, budget })(b)(background, "x"));
    expect(b.calls).toHaveLength(1);
  });
});

describe("retry: setup", () => {
  it.each([
    [{ maxAttempts: 0 }, RangeError, "retry: maxAttempts must be an integer ≥ 1, got 0"],
    [{ maxAttempts: 1.5 }, RangeError, "retry: maxAttempts must be an integer ≥ 1, got 1.5"],
    [
      { maxAttempts: Number.POSITIVE_INFINITY },
      RangeError,
      "retry: maxAttempts must be an integer ≥ 1, got Infinity",
    ],
    [{ maxAttempts: "3" }, RangeError, 'retry: maxAttempts must be an integer ≥ 1, got "3"'],
    [
      { perAttemptTimeout: 0 },
      RangeError,
      "retry: perAttemptTimeout must be a finite number of ms > 0, got 0",
    ],
    [
      { perAttemptTimeout: -5 },
      RangeError,
      "retry: perAttemptTimeout must be a finite number of ms > 0, got -5",
    ],
    [
      { perAttemptTimeout: Number.NaN },
      RangeError,
      "retry: perAttemptTimeout must be a finite number of ms > 0, got NaN",
    ],
    [
      { perAttemptTimeout: MAX_TIMER_MS + 1 },
      RangeError,
      "retry: perAttemptTimeout must be at most 2147483647 ms (24.8 days), got 2147483648",
    ],
    [{ backoff: { initial: -1 } }, RangeError, "retry: backoff.initial must be a finite number ≥ 0, got -1"],
    [
      { backoff: { max: Number.POSITIVE_INFINITY } },
      RangeError,
      "retry: backoff.max must be a finite number ≥ 0, got Infinity",
    ],
    [
      { backoff: { multiplier: 0.5 } },
      RangeError,
      "retry: backoff.multiplier must be a finite number ≥ 1, got 0.5",
    ],
    [{ backoff: 100 }, TypeError, "retry: backoff must be an object, got 100"],
    [{ retryOn: true }, TypeError, "retry: retryOn must be a function, got boolean"],
    [{ random: 0.5 }, TypeError, "retry: random must be a function, got 0.5"],
    [{ onRetry: "log" }, TypeError, 'retry: onRetry must be a function, got "log"'],
    [{ onGiveUp: {} }, TypeError, "retry: onGiveUp must be a function, got object"],
    [
      { budget: { tryRetry: () => true } },
      TypeError,
      "retry: budget must have recordRequest() and tryRetry() methods",
    ],
    [{ budget: null }, TypeError, "retry: budget must have recordRequest() and tryRetry() methods"],
  ])("rejects %j at setup", (options, type, message) => {
    expect(() => retry(options as unknown as RetryOptions)).toThrow(type);
    expect(() => retry(options as unknown as RetryOptions)).toThrow(message);
  });

  it("rejects options that are not an object", () => {
    expect(() => retry(null as unknown as RetryOptions)).toThrow(
      new TypeError("retry: options must be an object, got null"),
    );
  });

  it("returns named functions, composes once and keeps the endpoint's types in a chain", async () => {
    const middleware = retry();
    expect(middleware.name).toBe("retryMiddleware");
    const typed: Endpoint<{ a: number }, { v: number }> = async (_ctx, { a }) => ({ v: a * 2 });
    const wrapped = chain(retry(instant), timeout(100))(typed);
    expectTypeOf(wrapped).toEqualTypeOf<Endpoint<{ a: number }, { v: number }>>();
    expect(retry()(typed).name).toBe("retryEndpoint");
    await expect(wrapped(background, { a: 2 })).resolves.toEqual({ v: 4 });
  });

  it("retries a timeout() inside it only as the caller's deadline: use perAttemptTimeout instead", async () => {
    // timeout(50) inside retry produces DEADLINE_EXCEEDED that retry cannot tell from the server's.
    const { endpoint, calls } = controlled();
    const p = rejection(
      chain(retry<string, string>(instant), timeout<string, string>(50))(endpoint)(background, "x"),
    );
    await vi.advanceTimersByTimeAsync(50);
    expect(((await p) as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toHaveLength(1);
  });
});
