import type { CircuitBreakerOptions, CircuitState } from "@svckit/circuitbreaker";
import { circuitBreaker, createCircuitBreaker, defaultIsFailure } from "@svckit/circuitbreaker";
import {
  background,
  Code,
  type Context,
  chain,
  codeToHttpStatus,
  createCancelableContext,
  createContext,
  type Endpoint,
  type GenericMiddleware,
  type Middleware,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from "vitest";

const down = (): ServiceError => new ServiceError(Code.UNAVAILABLE, "backend down");

/** An endpoint that answers each call as the next scripted outcome says ("ok", or an error to throw). */
function scripted(): Endpoint<string, string> & { fail: boolean; error: unknown; calls: number } {
  const endpoint = Object.assign(
    async (_ctx: unknown, req: string): Promise<string> => {
      endpoint.calls++;
      if (endpoint.fail) throw endpoint.error;
      return `ok ${req}`;
    },
    { fail: false, error: down() as unknown, calls: 0 },
  );
  return endpoint;
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Settles `promise` and returns its rejection reason (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error("expected a rejection");
}

const small: CircuitBreakerOptions = {
  name: "users",
  volumeThreshold: 4,
  errorThresholdPercentage: 50,
  rollingCountTimeout: 1_000,
  rollingCountBuckets: 10,
  resetTimeout: 500,
};

const breakers: { shutdown(): void }[] = [];
function make(options: Partial<CircuitBreakerOptions> = {}) {
  const breaker = createCircuitBreaker({ ...small, ...options });
  breakers.push(breaker);
  return breaker;
}

/** Opens `breaker` by failing `volumeThreshold` (4) calls through `endpoint`. */
async function trip(call: Endpoint<string, string>, endpoint: ReturnType<typeof scripted>): Promise<void> {
  endpoint.fail = true;
  for (let i = 0; i < 4; i++) await call(background, "x").catch(() => undefined);
  endpoint.fail = false;
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  for (const b of breakers.splice(0)) b.shutdown();
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("createCircuitBreaker: options", () => {
  it.each([
    [{ errorThresholdPercentage: -1 }, "errorThresholdPercentage must be between 0 and 100, got -1"],
    [{ errorThresholdPercentage: 101 }, "errorThresholdPercentage must be between 0 and 100, got 101"],
    [{ errorThresholdPercentage: Number.NaN }, "errorThresholdPercentage must be between 0 and 100, got NaN"],
    [{ volumeThreshold: -1 }, "volumeThreshold must be a non-negative integer, got -1"],
    [{ volumeThreshold: 1.5 }, "volumeThreshold must be a non-negative integer, got 1.5"],
    [{ rollingCountBuckets: 0 }, "rollingCountBuckets must be a positive integer, got 0"],
    [{ rollingCountBuckets: 2.5 }, "rollingCountBuckets must be a positive integer, got 2.5"],
    [
      { rollingCountTimeout: 5, rollingCountBuckets: 10 },
      "rollingCountTimeout must be at least 1 ms per bucket and at most 2147483647 ms, got 5 for 10 buckets",
    ],
    [
      { rollingCountTimeout: Number.NaN },
      "rollingCountTimeout must be at least 1 ms per bucket and at most 2147483647 ms, got NaN for 10 buckets",
    ],
    [
      { rollingCountTimeout: 2 ** 31 },
      "rollingCountTimeout must be at least 1 ms per bucket and at most 2147483647 ms, got 2147483648 for 10 buckets",
    ],
    [{ resetTimeout: -1 }, "resetTimeout must be between 0 and 2147483647 ms, got -1"],
    [{ resetTimeout: 2 ** 31 }, "resetTimeout must be between 0 and 2147483647 ms, got 2147483648"],
    [{ resetTimeout: Number.NaN }, "resetTimeout must be between 0 and 2147483647 ms, got NaN"],
  ] as const)("rejects %o with a RangeError", (bad, message) => {
    expect(() => createCircuitBreaker({ ...small, ...bad })).toThrow(RangeError);
    expect(() => createCircuitBreaker({ ...small, ...bad })).toThrow(`createCircuitBreaker: ${message}`);
  });

  it("rejects a missing or empty name, and non-function isFailure / fallback, with a TypeError", () => {
    expect(() => createCircuitBreaker({ name: "" })).toThrow(
      new TypeError("createCircuitBreaker: name must be a non-empty string"),
    );
    expect(() => createCircuitBreaker({} as CircuitBreakerOptions)).toThrow(
      "createCircuitBreaker: name must be a non-empty string",
    );
    expect(() => createCircuitBreaker({ name: "a", isFailure: 1 as never })).toThrow(
      new TypeError("createCircuitBreaker: isFailure must be a function"),
    );
    expect(() => createCircuitBreaker({ name: "a", fallback: "x" as never })).toThrow(
      new TypeError("createCircuitBreaker: fallback must be an endpoint (a function)"),
    );
  });

  it("has the documented defaults: opens on the 11th failure of 21 calls, half-opens 10 s later", async () => {
    const breaker = createCircuitBreaker({ name: "defaults" });
    breakers.push(breaker);
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 10; i++) await call(background, "x");
    endpoint.fail = true;
    for (let i = 0; i < 10; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("closed"); // 10 of 20 failed: 50 %, not more
    await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open"); // 11 of 21
    await vi.advanceTimersByTimeAsync(9_999);
    expect(breaker.state).toBe("open");
    await vi.advanceTimersByTimeAsync(1);
    expect(breaker.state).toBe("halfOpen");
  });

  it("does not open below volumeThreshold calls, whatever fails", async () => {
    const breaker = make();
    const endpoint = scripted();
    endpoint.fail = true;
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 3; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("closed");
    expect(breaker.stats()).toEqual({ calls: 3, successes: 0, failures: 3, rejected: 0 });
    await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
  });

  it("with errorThresholdPercentage 0 opens on any failure once the volume is reached", async () => {
    const breaker = make({ errorThresholdPercentage: 0, volumeThreshold: 5 });
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 5; i++) await call(background, "x");
    endpoint.fail = true;
    await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
  });

  it("with errorThresholdPercentage 100 never opens", async () => {
    const breaker = make({ errorThresholdPercentage: 100 });
    const endpoint = scripted();
    endpoint.fail = true;
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 50; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("closed");
    expect(endpoint.calls).toBe(50);
  });
});

describe("closed", () => {
  it("passes results, and the endpoint's errors as the very same objects", async () => {
    const breaker = make();
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await expect(call(background, "a")).resolves.toBe("ok a");
    const error = new ServiceError(Code.NOT_FOUND, "no user a");
    endpoint.fail = true;
    endpoint.error = error;
    expect(await rejection(call(background, "a"))).toBe(error);
    const plain = new Error("boom");
    endpoint.error = plain;
    expect(await rejection(call(background, "a"))).toBe(plain);
    endpoint.error = undefined;
    await expect(call(background, "a")).rejects.toBeUndefined();
  });

  it("passes the context and the request to the endpoint", async () => {
    const breaker = make();
    const seen: unknown[] = [];
    const ctx = createContext({ metadata: { "x-id": "7" } });
    const call = breaker.middleware(async (c: typeof ctx, req: { id: number }) => {
      seen.push(c, req);
      return req.id;
    });
    await expect(call(ctx, { id: 7 })).resolves.toBe(7);
    expect(seen).toEqual([ctx, { id: 7 }]);
    expect(seen[0]).toBe(ctx);
  });

  it("counts an error thrown synchronously by a non-async endpoint, and passes it on unchanged", async () => {
    const breaker = make();
    const error = new ServiceError(Code.INTERNAL, "sync boom");
    const sync = ((): Promise<string> => {
      throw error;
    }) as Endpoint<string, string>;
    const call = breaker.middleware(sync);
    for (let i = 0; i < 4; i++) expect(await rejection(call(background, "x"))).toBe(error);
    expect(breaker.state).toBe("open");
    expect(breaker.stats()).toMatchObject({ calls: 4, failures: 4 });
  });

  it("passes a plain value from a non-async endpoint on as the answer", async () => {
    const breaker = make();
    const call = breaker.middleware(
      ((_ctx: Context, req: string) => `sync ${req}`) as unknown as Endpoint<string, string>,
    );
    await expect(call(background, "x")).resolves.toBe("sync x");
    expect(breaker.stats()).toMatchObject({ calls: 1, successes: 1, failures: 0 });
  });

  it("counts plain errors (INTERNAL by ServiceError.from) as failures", async () => {
    const breaker = make();
    const endpoint = scripted();
    endpoint.error = new TypeError("oops");
    const call = breaker.middleware(endpoint);
    endpoint.fail = true;
    for (let i = 0; i < 4; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
  });

  it("forgets failures once they leave the rolling window", async () => {
    const breaker = make();
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    endpoint.fail = true;
    for (let i = 0; i < 3; i++) await call(background, "x").catch(() => undefined);
    await vi.advanceTimersByTimeAsync(1_000); // the whole 1 s window has rotated
    expect(breaker.stats()).toEqual({ calls: 0, successes: 0, failures: 0, rejected: 0 });
    await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("closed"); // 1 call in the window, below volume 4
  });

  it("keeps failures still inside the window (it slides one 100 ms bucket at a time)", async () => {
    const breaker = make();
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    endpoint.fail = true;
    for (let i = 0; i < 3; i++) await call(background, "x").catch(() => undefined);
    await vi.advanceTimersByTimeAsync(850);
    await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
  });
});

describe("client faults and cancellation", () => {
  const clientFaults = [
    Code.INVALID_ARGUMENT,
    Code.NOT_FOUND,
    Code.ALREADY_EXISTS,
    Code.PERMISSION_DENIED,
    Code.UNAUTHENTICATED,
    Code.FAILED_PRECONDITION,
    Code.OUT_OF_RANGE,
  ];

  it.each(clientFaults)(
    "code %i does not trip the breaker, and reaches the caller unchanged",
    async (code) => {
      const breaker = make();
      const endpoint = scripted();
      const error = new ServiceError(code, "your fault");
      endpoint.fail = true;
      endpoint.error = error;
      const call = breaker.middleware(endpoint);
      for (let i = 0; i < 20; i++) expect(await rejection(call(background, "x"))).toBe(error);
      expect(breaker.state).toBe("closed");
      expect(breaker.stats()).toEqual({ calls: 20, successes: 20, failures: 0, rejected: 0 });
    },
  );

  /** A context its caller has cancelled. */
  function cancelledByCaller(): Context {
    const handle = createCancelableContext();
    handle.cancel();
    return handle.context;
  }

  it("CANCELLED because the caller gave up does not trip the breaker", async () => {
    const breaker = make();
    const endpoint = scripted();
    endpoint.fail = true;
    endpoint.error = new ServiceError(Code.CANCELLED, "caller went away");
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 20; i++) await call(cancelledByCaller(), "x").catch(() => undefined);
    expect(breaker.state).toBe("closed");
  });

  it("an AbortError (CANCELLED by ServiceError.from) with the caller gone does not trip it either", async () => {
    const breaker = make();
    const endpoint = scripted();
    endpoint.fail = true;
    endpoint.error = new DOMException("aborted", "AbortError");
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 20; i++) await call(cancelledByCaller(), "x").catch(() => undefined);
    expect(breaker.state).toBe("closed");
  });

  it("a CANCELLED the caller did not cause (the endpoint's own abort timer) counts as a failure", async () => {
    const breaker = make();
    const endpoint = scripted();
    endpoint.fail = true;
    endpoint.error = new DOMException("The operation was aborted.", "AbortError");
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 20; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
  });

  it.each([
    Code.UNKNOWN,
    Code.DEADLINE_EXCEEDED,
    Code.RESOURCE_EXHAUSTED,
    Code.ABORTED,
    Code.UNIMPLEMENTED,
    Code.INTERNAL,
    Code.UNAVAILABLE,
    Code.DATA_LOSS,
  ])("code %i trips it", async (code) => {
    const breaker = make();
    const endpoint = scripted();
    endpoint.fail = true;
    endpoint.error = new ServiceError(code);
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 4; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
  });

  it("defaultIsFailure says which codes count", () => {
    const counted = Object.values(Code).filter((code) => defaultIsFailure(new ServiceError(code)));
    expect(counted.sort((a, b) => a - b)).toEqual([0, 2, 4, 8, 10, 12, 13, 14, 15]);
  });

  it("a DEADLINE_EXCEEDED from timeout() after the breaker counts", async () => {
    const breaker = make();
    const hang: Endpoint<string, string> = () => new Promise(() => undefined);
    const call = chain(breaker.middleware, timeout(50))(hang);
    for (let i = 0; i < 4; i++) {
      const pending = rejection(call(background, "x"));
      await vi.advanceTimersByTimeAsync(50);
      expect((await pending).code).toBe(Code.DEADLINE_EXCEEDED);
    }
    expect(breaker.state).toBe("open");
  });
});

describe("custom isFailure", () => {
  it("decides which errors count", async () => {
    const isFailure = vi.fn((e: ServiceError) => e.message !== "benign");
    const breaker = make({ isFailure });
    const endpoint = scripted();
    endpoint.fail = true;
    endpoint.error = new ServiceError(Code.INTERNAL, "benign");
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 10; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("closed");
    expect(isFailure).toHaveBeenCalledTimes(10);
    expect(isFailure.mock.calls[0]?.[0]).toBe(endpoint.error);
    endpoint.error = new ServiceError(Code.NOT_FOUND, "counted now");
    for (let i = 0; i < 11; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
  });

  it("gets other thrown values as ServiceErrors", async () => {
    const isFailure = vi.fn((_e: ServiceError) => true);
    const breaker = make({ isFailure });
    const endpoint = scripted();
    endpoint.fail = true;
    endpoint.error = "a string";
    await breaker
      .middleware(endpoint)(background, "x")
      .catch(() => undefined);
    const seen = isFailure.mock.calls[0]?.[0];
    expect(seen).toBeInstanceOf(ServiceError);
    expect(seen?.code).toBe(Code.INTERNAL);
    expect(seen?.cause).toBe("a string");
  });

  it("counts the error as a failure when the predicate throws, and the call still settles", async () => {
    const breaker = make({
      isFailure: () => {
        throw new Error("buggy predicate");
      },
    });
    const endpoint = scripted();
    endpoint.fail = true;
    endpoint.error = new ServiceError(Code.NOT_FOUND, "nf");
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 4; i++) expect((await rejection(call(background, "x"))).message).toBe("nf");
    expect(breaker.state).toBe("open");
  });

  it("can build on defaultIsFailure", async () => {
    const breaker = make({ isFailure: (e) => e.code !== Code.RESOURCE_EXHAUSTED && defaultIsFailure(e) });
    const endpoint = scripted();
    endpoint.fail = true;
    endpoint.error = new ServiceError(Code.RESOURCE_EXHAUSTED, "slow down");
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 10; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("closed");
  });
});

describe("open", () => {
  it("fails fast with UNAVAILABLE (HTTP 503) naming the breaker, without calling the endpoint", async () => {
    const breaker = make();
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    expect(breaker.state).toBe("open");
    const before = endpoint.calls;
    const error = await rejection(call(background, "x"));
    expect(endpoint.calls).toBe(before);
    expect(error).toBeInstanceOf(ServiceError);
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(codeToHttpStatus[error.code]).toBe(503);
    expect(error.message).toBe('circuit breaker "users" is open');
    expect(breaker.stats()).toEqual({ calls: 5, successes: 0, failures: 4, rejected: 1 });
  });

  it("half-opens after resetTimeout, not before", async () => {
    const breaker = make();
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    await vi.advanceTimersByTimeAsync(499);
    expect(breaker.state).toBe("open");
    await expect(call(background, "x")).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await vi.advanceTimersByTimeAsync(1);
    expect(breaker.state).toBe("halfOpen");
  });

  it("half-opens even with no traffic, and resetTimeout 0 half-opens on the next tick", async () => {
    const breaker = make({ resetTimeout: 0 });
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    expect(breaker.state).toBe("open");
    await vi.advanceTimersByTimeAsync(0);
    expect(breaker.state).toBe("halfOpen");
  });

  it("runs the fallback endpoint with the call's context and request instead of failing", async () => {
    const fallback = vi.fn(async (_ctx: unknown, req: string) => `cached ${req}`);
    const breaker = createCircuitBreaker({ ...small, fallback });
    breakers.push(breaker);
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    expect(fallback).not.toHaveBeenCalled(); // not for the endpoint's own errors
    const ctx = createContext({ metadata: { a: "1" } });
    await expect(call(ctx, "q")).resolves.toBe("cached q");
    expect(fallback).toHaveBeenCalledTimes(1);
    expect(fallback.mock.calls[0]?.[0]).toBe(ctx);
    expect(fallback.mock.calls[0]?.[1]).toBe("q");
    expect(endpoint.calls).toBe(4);
  });

  it("passes the fallback's errors on unchanged, thrown or rejected", async () => {
    const error = new ServiceError(Code.NOT_FOUND, "not cached");
    let sync = false;
    const fallback = ((): Promise<string> => {
      if (sync) throw error;
      return Promise.reject(error);
    }) as Endpoint<string, string>;
    const breaker = createCircuitBreaker({ ...small, fallback });
    breakers.push(breaker);
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    expect(await rejection(call(background, "x"))).toBe(error);
    sync = true;
    expect(await rejection(call(background, "x"))).toBe(error);
  });

  it("the convenience circuitBreaker() takes a fallback too", async () => {
    const middleware = circuitBreaker({
      ...small,
      name: "conv",
      fallback: async (_ctx, _req: string) => "fb",
    });
    const endpoint = scripted();
    const call = middleware(endpoint);
    endpoint.fail = true;
    for (let i = 0; i < 4; i++) await call(background, "x").catch(() => undefined);
    await expect(call(background, "x")).resolves.toBe("fb");
    // Let the reset timer pass so the breaker's timers do not outlive the test's fake clock.
    await vi.advanceTimersByTimeAsync(500);
  });
});

describe("half-open", () => {
  async function halfOpen(options: Partial<CircuitBreakerOptions> = {}) {
    const breaker = make(options);
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    await vi.advanceTimersByTimeAsync(500);
    expect(breaker.state).toBe("halfOpen");
    return { breaker, endpoint, call };
  }

  it("closes when the trial call succeeds, with a fresh window", async () => {
    const { breaker, call } = await halfOpen();
    await expect(call(background, "probe")).resolves.toBe("ok probe");
    expect(breaker.state).toBe("closed");
    expect(breaker.stats()).toEqual({ calls: 0, successes: 0, failures: 0, rejected: 0 });
  });

  it("does not reopen a recovered breaker at its next failure (the old failures are forgotten)", async () => {
    const { breaker, endpoint, call } = await halfOpen();
    await call(background, "probe");
    endpoint.fail = true;
    for (let i = 0; i < 3; i++) await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("closed");
  });

  it("opens again when the trial call fails, for another resetTimeout", async () => {
    const { breaker, endpoint, call } = await halfOpen();
    endpoint.fail = true;
    expect(await rejection(call(background, "probe"))).toBe(endpoint.error);
    expect(breaker.state).toBe("open");
    await expect(call(background, "x")).rejects.toThrow('circuit breaker "users" is open');
    await vi.advanceTimersByTimeAsync(499);
    expect(breaker.state).toBe("open");
    await vi.advanceTimersByTimeAsync(1);
    expect(breaker.state).toBe("halfOpen");
    endpoint.fail = false;
    await call(background, "probe");
    expect(breaker.state).toBe("closed");
  });

  it("closes when the trial call fails with a client fault (the dependency answered)", async () => {
    const { breaker, endpoint, call } = await halfOpen();
    endpoint.fail = true;
    endpoint.error = new ServiceError(Code.NOT_FOUND, "no such user");
    await expect(call(background, "probe")).rejects.toBe(endpoint.error);
    expect(breaker.state).toBe("closed");
  });

  it("opens again when the trial call is cancelled by its caller: that proves nothing", async () => {
    const { breaker } = await halfOpen();
    const pending = deferred<string>();
    const call = breaker.middleware(async (ctx, _req: string) => {
      ctx.signal.addEventListener("abort", () => pending.reject(ctx.signal.reason));
      return pending.promise;
    });
    const caller = createCancelableContext();
    const probe = rejection(call(caller.context, "probe"));
    caller.cancel();
    expect((await probe).code).toBe(Code.CANCELLED);
    expect(breaker.state).toBe("open");
    await vi.advanceTimersByTimeAsync(500);
    expect(breaker.state).toBe("halfOpen");
  });

  it("lets exactly one trial call through; the others are refused while it runs", async () => {
    const { breaker, endpoint } = await halfOpen();
    const pending = deferred<string>();
    let calls = 0;
    const call = breaker.middleware(async (_ctx, _req: string) => {
      calls++;
      return pending.promise;
    });
    const probe = call(background, "probe");
    const others = await Promise.all([1, 2, 3].map(() => rejection(call(background, "x"))));
    for (const error of others) {
      expect(error.code).toBe(Code.UNAVAILABLE);
      expect(error.message).toBe('circuit breaker "users" is half-open and its trial call has not finished');
    }
    expect(calls).toBe(1);
    pending.resolve("done");
    await expect(probe).resolves.toBe("done");
    expect(breaker.state).toBe("closed");
    expect(endpoint.calls).toBe(4);
  });
});

describe("calls from before the breaker opened", () => {
  /**
   * A breaker with one slow call (`late`) started while it was closed, then opened by four failures
   * and half-open after resetTimeout; `late` is still in flight.
   */
  async function halfOpenWithLateCall() {
    const breaker = make();
    const endpoint = scripted();
    const late = deferred<string>();
    const slow = breaker.middleware(async (_ctx, _req: string) => late.promise);
    const lateCall = slow(background, "late");
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    expect(breaker.state).toBe("open");
    await vi.advanceTimersByTimeAsync(500);
    expect(breaker.state).toBe("halfOpen");
    return { breaker, endpoint, late, lateCall };
  }

  it("a late success during half-open does not close the breaker: only the trial call decides", async () => {
    const { breaker, late, lateCall } = await halfOpenWithLateCall();
    const trial = deferred<string>();
    const probe = breaker.middleware(async (_ctx, _req: string) => trial.promise);
    const trialCall = rejection(probe(background, "probe"));
    late.resolve("late answer");
    await expect(lateCall).resolves.toBe("late answer");
    expect(breaker.state).toBe("halfOpen");
    trial.reject(down());
    expect((await trialCall).code).toBe(Code.UNAVAILABLE);
    expect(breaker.state).toBe("open");
  });

  it("a late failure during half-open does not reopen it: the trial call's success closes it", async () => {
    const { breaker, late, lateCall } = await halfOpenWithLateCall();
    const trial = deferred<string>();
    const probe = breaker.middleware(async (_ctx, _req: string) => trial.promise);
    const trialCall = probe(background, "probe");
    late.reject(down());
    expect((await rejection(lateCall)).message).toBe("backend down");
    expect(breaker.state).toBe("halfOpen");
    trial.resolve("fine");
    await expect(trialCall).resolves.toBe("fine");
    expect(breaker.state).toBe("closed");
  });

  it("a late success before the trial call starts does not close the breaker either", async () => {
    const { breaker, endpoint, late, lateCall } = await halfOpenWithLateCall();
    late.resolve("late answer");
    await lateCall;
    expect(breaker.state).toBe("halfOpen");
    const call = breaker.middleware(endpoint);
    await expect(call(background, "probe")).resolves.toBe("ok probe");
    expect(breaker.state).toBe("closed");
  });

  it("late failures after the breaker recovered do not reopen it; fresh ones do", async () => {
    const breaker = make({ volumeThreshold: 1, errorThresholdPercentage: 0 });
    const endpoint = scripted();
    const late = deferred<string>();
    const lateCall = breaker.middleware(async (_ctx, _req: string) => late.promise)(background, "late");
    const call = breaker.middleware(endpoint);
    endpoint.fail = true;
    await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
    await vi.advanceTimersByTimeAsync(500);
    endpoint.fail = false;
    await call(background, "probe");
    expect(breaker.state).toBe("closed");
    await call(background, "fresh");
    late.reject(down());
    await rejection(lateCall);
    expect(breaker.state).toBe("closed");
    expect(breaker.stats()).toEqual({ calls: 1, successes: 1, failures: 0, rejected: 0 });
    endpoint.fail = true;
    await call(background, "x").catch(() => undefined);
    expect(breaker.state).toBe("open");
  });

  it("a late failure while open does not restart the reset timer", async () => {
    const { breaker, late, lateCall } = await (async () => {
      const b = make();
      const endpoint = scripted();
      const l = deferred<string>();
      const lc = b.middleware(async (_ctx, _req: string) => l.promise)(background, "late");
      await trip(b.middleware(endpoint), endpoint);
      return { breaker: b, late: l, lateCall: lc };
    })();
    await vi.advanceTimersByTimeAsync(300);
    late.reject(down());
    await rejection(lateCall);
    expect(breaker.state).toBe("open");
    await vi.advanceTimersByTimeAsync(200);
    expect(breaker.state).toBe("halfOpen");
  });
});

describe("state events", () => {
  it("reports every change, in order, with the previous state", async () => {
    const breaker = make();
    const events: [CircuitState, CircuitState][] = [];
    breaker.subscribe((state, previous) => {
      events.push([state, previous]);
      expect(breaker.state).toBe(state); // already updated when listeners run
    });
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    await vi.advanceTimersByTimeAsync(500);
    endpoint.fail = true;
    await call(background, "probe").catch(() => undefined);
    await vi.advanceTimersByTimeAsync(500);
    endpoint.fail = false;
    await call(background, "probe");
    expect(events).toEqual([
      ["open", "closed"],
      ["halfOpen", "open"],
      ["open", "halfOpen"],
      ["halfOpen", "open"],
      ["closed", "halfOpen"],
    ]);
  });

  it("tells listeners before the call that opened the breaker settles", async () => {
    const breaker = make();
    const order: string[] = [];
    breaker.subscribe((state) => order.push(state));
    const endpoint = scripted();
    endpoint.fail = true;
    const call = breaker.middleware(endpoint);
    for (let i = 0; i < 4; i++) await call(background, "x").catch(() => order.push(`call ${i}`));
    expect(order).toEqual(["call 0", "call 1", "call 2", "open", "call 3"]);
  });

  it("stops telling a listener once unsubscribed; the same function may subscribe twice", async () => {
    const breaker = make();
    const seen: string[] = [];
    const listener = (state: CircuitState): void => {
      seen.push(state);
    };
    const first = breaker.subscribe(listener);
    const second = breaker.subscribe(listener);
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    expect(seen).toEqual(["open", "open"]);
    first();
    first();
    await vi.advanceTimersByTimeAsync(500);
    expect(seen).toEqual(["open", "open", "halfOpen"]);
    second();
    await call(background, "probe");
    expect(seen).toEqual(["open", "open", "halfOpen"]);
    expect(() => breaker.subscribe(1 as never)).toThrow(
      new TypeError("subscribe: listener must be a function"),
    );
  });

  it("a throwing listener affects neither the call, nor the state, nor the other listeners", async () => {
    const rethrown: (() => void)[] = [];
    vi.spyOn(globalThis, "queueMicrotask").mockImplementation((fn) => {
      rethrown.push(fn);
    });
    const breaker = make();
    const bug = new Error("listener bug");
    breaker.subscribe(() => {
      throw bug;
    });
    const seen: string[] = [];
    breaker.subscribe((state) => seen.push(state));
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    endpoint.fail = true;
    for (let i = 0; i < 4; i++) expect(await rejection(call(background, "x"))).toBe(endpoint.error);
    vi.mocked(queueMicrotask).mockRestore();
    expect(breaker.state).toBe("open");
    expect(seen).toEqual(["open"]);
    expect(rethrown).toHaveLength(1);
    expect(() => rethrown[0]?.()).toThrow(bug);
  });
});

describe("one breaker, many endpoints", () => {
  it("is shared: failures of one endpoint open it for another of other types", async () => {
    const breaker = make();
    const failing = scripted();
    const numbers: Endpoint<{ n: number }, number> = async (_ctx, req) => req.n * 2;
    const a = breaker.middleware(failing);
    const b = breaker.middleware(numbers);
    await expect(b(background, { n: 2 })).resolves.toBe(4);
    await trip(a, failing);
    await expect(b(background, { n: 2 })).rejects.toThrow('circuit breaker "users" is open');
  });

  it("works as server middleware (around a service) and client middleware (around a call out)", async () => {
    const breaker = make();
    // Client side: the breaker wraps the endpoint that calls the dependency.
    const dependency = scripted();
    const client = chain(breaker.middleware, timeout(1_000))(dependency);
    // Server side: a breaker wraps a whole service endpoint; the service uses the client.
    const server = make({ name: "server" });
    const service = server.middleware<string, string>(async (ctx, req) => `served ${await client(ctx, req)}`);
    await expect(service(background, "a")).resolves.toBe("served ok a");
    dependency.fail = true;
    for (let i = 0; i < 4; i++) await service(background, "a").catch(() => undefined);
    expect(breaker.state).toBe("open");
    expect(server.state).toBe("open"); // UNAVAILABLE from the client breaker counts for the server one
    await expect(service(background, "a")).rejects.toThrow('circuit breaker "server" is open');
  });
});

describe("shutdown", () => {
  it("refuses every call, tells listeners it is open, then forgets them", async () => {
    const breaker = make();
    const seen: string[] = [];
    breaker.subscribe((state, previous) => seen.push(`${previous}->${state}`));
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    breaker.shutdown();
    breaker.shutdown();
    expect(breaker.state).toBe("open");
    expect(seen).toEqual(["closed->open"]);
    const error = await rejection(call(background, "x"));
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toBe('circuit breaker "users" is shut down');
    expect(endpoint.calls).toBe(0);
    const late = vi.fn();
    breaker.subscribe(late)();
    expect(late).not.toHaveBeenCalled();
  });

  it("answers from the fallback after shutdown when there is one", async () => {
    const breaker = createCircuitBreaker({ ...small, fallback: async (_ctx, _req: string) => "fb" });
    breaker.shutdown();
    await expect(breaker.middleware(scripted())(background, "x")).resolves.toBe("fb");
  });

  it("clears every timer (rolling window and reset)", async () => {
    const breaker = make();
    expect(vi.getTimerCount()).toBe(1); // the window's rotation
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    expect(vi.getTimerCount()).toBe(2); // + the reset timer
    breaker.shutdown();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("timers", () => {
  it("never keep the process alive (all unref'd)", async () => {
    vi.useRealTimers();
    const timers: NodeJS.Timeout[] = [];
    const realSetTimeout = globalThis.setTimeout;
    const realSetInterval = globalThis.setInterval;
    vi.spyOn(globalThis, "setTimeout").mockImplementation(((...args: Parameters<typeof setTimeout>) => {
      const t = realSetTimeout(...args);
      timers.push(t);
      return t;
    }) as typeof setTimeout);
    vi.spyOn(globalThis, "setInterval").mockImplementation(((...args: Parameters<typeof setInterval>) => {
      const t = realSetInterval(...args);
      timers.push(t);
      return t;
    }) as typeof setInterval);
    const breaker = make({ resetTimeout: 60_000 });
    const endpoint = scripted();
    const call = breaker.middleware(endpoint);
    await trip(call, endpoint);
    expect(breaker.state).toBe("open");
    expect(timers.length).toBe(2);
    for (const t of timers) expect(t.hasRef()).toBe(false);
  });
});

describe("types", () => {
  it("keeps the wrapped endpoint's types, and fixes them to the fallback's when there is one", () => {
    const breaker = make();
    expectTypeOf(breaker.middleware).toEqualTypeOf<GenericMiddleware>();
    const typed: Endpoint<{ id: string }, number> = async () => 1;
    expectTypeOf(chain(breaker.middleware, timeout(1_000))(typed)).toEqualTypeOf<
      Endpoint<{ id: string }, number>
    >();
    const withFallback = createCircuitBreaker({
      name: "fb",
      fallback: async (_ctx, req: { id: string }) => req.id.length,
    });
    breakers.push(withFallback);
    expectTypeOf(withFallback.middleware).toEqualTypeOf<Middleware<{ id: string }, number>>();
    expectTypeOf(circuitBreaker({ name: "g" })).toEqualTypeOf<GenericMiddleware>();
    // A fallback that can only fail fits every endpoint.
    const failing = createCircuitBreaker({
      name: "f",
      fallback: async () => {
        throw new ServiceError(Code.UNAVAILABLE, "no fallback data");
      },
    });
    breakers.push(failing);
    expectTypeOf(failing.middleware(typed)).toEqualTypeOf<Endpoint<{ id: string }, number>>();
  });
});
