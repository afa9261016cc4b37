import {
  background,
  Code,
  type Context,
  chain,
  createContext,
  type Endpoint,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const T0 = Date.UTC(2030, 0, 1);

/** An endpoint that never settles and ignores its signal; it records the context it was given. */
function stuck(): { endpoint: Endpoint<string, string>; seen: Context[] } {
  const seen: Context[] = [];
  return {
    seen,
    endpoint: (ctx) => {
      seen.push(ctx);
      return new Promise<string>(() => {});
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("timeout", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it("resolves with the endpoint's result when it is fast, and leaves no timer behind", async () => {
    const e = timeout<string, string>(100)(async (_ctx, s) => s.toUpperCase());
    await expect(e(background, "abc")).resolves.toBe("ABC");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("resolves when the endpoint finishes just before the deadline", async () => {
    const e = timeout<string, string>(100)(
      (_ctx, s) => new Promise<string>((resolve) => setTimeout(() => resolve(s), 99)),
    );
    const p = e(background, "ok");
    await vi.advanceTimersByTimeAsync(99);
    await expect(p).resolves.toBe("ok");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("fails with DEADLINE_EXCEEDED when slow, even if the endpoint ignores the signal", async () => {
    const { endpoint } = stuck();
    const p = rejection(timeout<string, string>(100)(endpoint)(background, "x"));
    await vi.advanceTimersByTimeAsync(99);
    let settled = false;
    void p.then(() => {
      settled = true;
    });
    await Promise.resolve();
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const err = await p;
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("gives the endpoint a context with the deadline, whose signal aborts with DEADLINE_EXCEEDED", async () => {
    const { endpoint, seen } = stuck();
    const p = rejection(timeout<string, string>(100)(endpoint)(background, "x"));
    const inner = seen[0] as Context;
    expect(inner.deadline).toBe(T0 + 100);
    expect(inner.timeRemaining()).toBe(100);
    expect(inner.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    expect(inner.signal.aborted).toBe(true);
    expect(inner.signal.reason).toBeInstanceOf(ServiceError);
    expect((inner.signal.reason as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(await p).toBe(inner.signal.reason);
  });

  it("keeps the caller's values and metadata", async () => {
    const seen: Context[] = [];
    const e = timeout<void, string>(100)(async (ctx) => {
      seen.push(ctx);
      return ctx.metadata.get("x-id") ?? "";
    });
    const ctx = createContext({ metadata: { "X-Id": "42" } });
    await expect(e(ctx)).resolves.toBe("42");
    expect(seen[0]).not.toBe(ctx);
  });

  it("lets an earlier caller deadline win", async () => {
    const { endpoint, seen } = stuck();
    const caller = createContext({ timeout: 50 });
    const p = rejection(timeout<string, string>(1_000)(endpoint)(caller, "x"));
    expect(seen[0]?.deadline).toBe(T0 + 50);
    await vi.advanceTimersByTimeAsync(50);
    const err = await p;
    expect((err as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("never extends the deadline: a later caller deadline is shortened", async () => {
    const { endpoint, seen } = stuck();
    const p = rejection(timeout<string, string>(100)(endpoint)(createContext({ timeout: 5_000 }), "x"));
    expect(seen[0]?.deadline).toBe(T0 + 100);
    await vi.advanceTimersByTimeAsync(100);
    expect(((await p) as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("nests: the shorter of two timeouts wins", async () => {
    const { endpoint, seen } = stuck();
    const e = chain(timeout<string, string>(100), timeout<string, string>(30))(endpoint);
    const p = rejection(e(background, "x"));
    expect(seen[0]?.deadline).toBe(T0 + 30);
    await vi.advanceTimersByTimeAsync(30);
    expect(((await p) as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("fails with CANCELLED when the caller cancels, and aborts the endpoint's signal", async () => {
    const { endpoint, seen } = stuck();
    const caller = background.withCancel();
    const p = rejection(timeout<string, string>(1_000)(endpoint)(caller.context, "x"));
    caller.cancel();
    const err = await p;
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.CANCELLED);
    expect(seen[0]?.signal.aborted).toBe(true);
    expect(seen[0]?.signal.reason).toBe(err);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("fails with CANCELLED at once, without calling the endpoint, when the caller is already cancelled", async () => {
    const endpoint = vi.fn(async () => "never");
    const caller = background.withCancel();
    caller.cancel();
    const err = await rejection(timeout(100)(endpoint)(caller.context, undefined));
    expect((err as ServiceError).code).toBe(Code.CANCELLED);
    expect(endpoint).not.toHaveBeenCalled();
  });

  it("timeout(0) fails with DEADLINE_EXCEEDED without calling the endpoint", async () => {
    const endpoint = vi.fn(async () => "never");
    const err = await rejection(timeout(0)(endpoint)(background, undefined));
    expect((err as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(endpoint).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("passes the endpoint's own rejection through unchanged", async () => {
    const boom = new Error("boom");
    const e = timeout(100)(async () => {
      throw boom;
    });
    expect(await rejection(e(background, undefined))).toBe(boom);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("turns a synchronous throw from next into a rejection", async () => {
    const boom = new ServiceError(Code.INVALID_ARGUMENT, "bad");
    const e = timeout(100)(() => {
      throw boom;
    });
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = e(background, undefined);
    }).not.toThrow();
    expect(result).toBeInstanceOf(Promise);
    expect(await rejection(result as Promise<unknown>)).toBe(boom);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects, and cleans up, when a plain-JS next returns something that is not a promise", async () => {
    const notAPromise = (() => "oops") as unknown as Endpoint;
    const err = await rejection(timeout(100)(notAPromise)(background, undefined));
    expect(err).toBeInstanceOf(TypeError);
    expect(vi.getTimerCount()).toBe(0);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    "timeout(%s) throws RangeError at once",
    (ms) => {
      expect(() => timeout(ms)).toThrow(RangeError);
    },
  );

  it("ignores a result that arrives after the deadline", async () => {
    const e = timeout<void, string>(10)(
      () => new Promise<string>((resolve) => setTimeout(() => resolve("late"), 50)),
    );
    const p = rejection(e(background));
    await vi.advanceTimersByTimeAsync(10);
    expect(((await p) as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    await vi.advanceTimersByTimeAsync(50);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("leaves no timer or listener on the caller's context after each call", async () => {
    const external = new AbortController();
    const add = vi.spyOn(external.signal, "addEventListener");
    const remove = vi.spyOn(external.signal, "removeEventListener");
    const caller = createContext({ timeout: 30_000, signal: external.signal });
    const e = timeout<number, number>(100)(async (_ctx, n) => n + 1);
    for (let i = 0; i < 3; i++) await expect(e(caller, i)).resolves.toBe(i + 1);
    expect(add.mock.calls.length).toBeGreaterThan(0);
    expect(remove.mock.calls.length).toBe(add.mock.calls.length);
    expect(vi.getTimerCount()).toBe(0);
    expect(caller.aborted).toBe(false);
  });

  it("serves many concurrent calls on one context without a MaxListenersExceededWarning", async () => {
    const warn = vi.spyOn(process, "emitWarning");
    const caller = createContext({ timeout: 10_000 });
    const e = timeout<number, number>(1_000)(
      (_ctx, n) => new Promise<number>((resolve) => setTimeout(() => resolve(n), 10)),
    );
    for (const ctx of [background, caller]) {
      const all = Promise.all(Array.from({ length: 40 }, (_, i) => e(ctx, i)));
      await vi.advanceTimersByTimeAsync(10);
      expect((await all).length).toBe(40);
    }
    expect(warn).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("returns named functions", () => {
    const m = timeout(10);
    expect(m.name).toBe("timeoutMiddleware");
    expect(m(async () => 1).name).toBe("timeoutEndpoint");
  });
});

describe("timeout with real timers", () => {
  it("causes no unhandled rejection when the inner promise rejects after the timeout", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on("unhandledRejection", onUnhandled);
    try {
      let rejectedLate = false;
      const e = timeout(5)(
        () =>
          new Promise<never>((_resolve, reject) =>
            setTimeout(() => {
              rejectedLate = true;
              reject(new Error("late failure"));
            }, 30),
          ),
      );
      const err = await rejection(e(background, undefined));
      expect((err as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
      await new Promise((resolve) => setTimeout(resolve, 60));
      expect(rejectedLate).toBe(true);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("aborts a signal-aware endpoint on time", async () => {
    const started = Date.now();
    const e = timeout<void, string>(20)(
      (ctx) =>
        new Promise<string>((resolve, reject) => {
          const t = setTimeout(() => resolve("too late"), 500);
          ctx.signal.addEventListener("abort", () => {
            clearTimeout(t);
            reject(ctx.signal.reason);
          });
        }),
    );
    const err = await rejection(e(background));
    expect((err as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(400);
  });
});

describe("timeout keeps an endpoint's types", () => {
  it("composes with chain and typed endpoints without type arguments", async () => {
    const sum: Endpoint<{ a: number; b: number }, { v: number }> = async (_ctx, { a, b }) => ({ v: a + b });
    const limited: Endpoint<{ a: number; b: number }, { v: number }> = chain(timeout(100))(sum);
    expect(await limited(background, { a: 1, b: 2 })).toEqual({ v: 3 });
    expect(await timeout(100)(sum)(background, { a: 2, b: 2 })).toEqual({ v: 4 });
  });
});
