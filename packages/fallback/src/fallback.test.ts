import {
  background,
  Code,
  type CodeName,
  chain,
  createCancelableContext,
  createContext,
  type Endpoint,
  type Middleware,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import { defaultFallbackCodes, fallback } from "@svckit/fallback";
import { afterEach, describe, expect, expectTypeOf, it, vi } from "vitest";

const failWith =
  (error: unknown): Endpoint<string, string> =>
  async () => {
    throw error;
  };

/** Settles `promise` and returns its rejection reason (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error("expected a rejection");
}

const degraded = vi.fn(
  (_ctx: unknown, req: string, error: ServiceError) => `degraded ${req} (${error.codeName})`,
);

afterEach(() => {
  degraded.mockClear();
  vi.useRealTimers();
});

describe("options", () => {
  it("needs a handler function", () => {
    expect(() => fallback(undefined as never)).toThrow(new TypeError("fallback: handler must be a function"));
  });

  it("needs `when` to be a list of codes or a predicate", () => {
    expect(() => fallback(degraded, { when: "UNAVAILABLE" as never })).toThrow(
      new TypeError("fallback: when must be a list of codes or a predicate"),
    );
    expect(() => fallback(degraded, { when: [Code.UNAVAILABLE, 99 as Code] })).toThrow(
      new RangeError("fallback: when lists 99, which is not a Code"),
    );
    expect(() => fallback(degraded, { when: ["UNAVAILABLE" as never] })).toThrow(
      new RangeError("fallback: when lists UNAVAILABLE, which is not a Code"),
    );
  });

  it("returns named functions", () => {
    const middleware = fallback(degraded);
    expect(middleware.name).toBe("fallbackMiddleware");
    expect(middleware(failWith(1)).name).toBe("fallbackEndpoint");
  });
});

describe("default codes", () => {
  const picked: CodeName[] = [
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "INTERNAL",
    "UNKNOWN",
  ];
  const kept = (Object.keys(Code) as CodeName[]).filter((name) => name !== "OK" && !picked.includes(name));

  it("are exactly the server-side failures, and frozen", () => {
    expect([...defaultFallbackCodes].sort()).toEqual(picked.map((name) => Code[name]).sort());
    expect(Object.isFrozen(defaultFallbackCodes)).toBe(true);
  });

  it.each(picked)(
    "%s gets the degraded answer, the handler seeing the context, request and error",
    async (name) => {
      const error = new ServiceError(Code[name], "dependency trouble");
      const ctx = createContext({ metadata: { "x-id": "1" } });
      await expect(fallback(degraded)(failWith(error))(ctx, "q")).resolves.toBe(`degraded q (${name})`);
      expect(degraded).toHaveBeenCalledTimes(1);
      expect(degraded.mock.calls[0]?.[0]).toBe(ctx);
      expect(degraded.mock.calls[0]?.[1]).toBe("q");
      expect(degraded.mock.calls[0]?.[2]).toBe(error);
    },
  );

  it.each(kept)("%s reaches the caller unchanged", async (name) => {
    const error = new ServiceError(Code[name], "not for a fallback");
    expect(await rejection(fallback(degraded)(failWith(error))(background, "q"))).toBe(error);
    expect(degraded).not.toHaveBeenCalled();
  });
});

describe("wrapped endpoint", () => {
  it("passes results through without calling the handler", async () => {
    const ok: Endpoint<string, string> = async (_ctx, req) => `ok ${req}`;
    await expect(fallback(degraded)(ok)(background, "q")).resolves.toBe("ok q");
    expect(degraded).not.toHaveBeenCalled();
  });

  it("treats a thrown value that is not a ServiceError as INTERNAL, the original as cause", async () => {
    const boom = new Error("db password wrong");
    await expect(fallback(degraded)(failWith(boom))(background, "q")).resolves.toBe("degraded q (INTERNAL)");
    const seen = degraded.mock.calls[0]?.[2];
    expect(seen).toBeInstanceOf(ServiceError);
    expect(seen?.cause).toBe(boom);
  });

  it("passes a thrown value that is not picked through unchanged", async () => {
    const abort = new DOMException("stop", "AbortError"); // CANCELLED by ServiceError.from
    expect(await rejection(fallback(degraded)(failWith(abort))(background, "q"))).toBe(abort);
  });

  it("handles an error thrown synchronously by a non-async endpoint", async () => {
    const sync = ((): Promise<string> => {
      throw new ServiceError(Code.UNAVAILABLE, "sync");
    }) as Endpoint<string, string>;
    await expect(fallback(degraded)(sync)(background, "q")).resolves.toBe("degraded q (UNAVAILABLE)");
  });

  it("answers with the fallback when a timeout() after it runs out", async () => {
    vi.useFakeTimers();
    const hang: Endpoint<string, string> = () => new Promise(() => undefined);
    const call = chain(fallback(degraded), timeout(50))(hang);
    const result = call(background, "q");
    await vi.advanceTimersByTimeAsync(50);
    await expect(result).resolves.toBe("degraded q (DEADLINE_EXCEEDED)");
  });
});

describe("the caller is gone", () => {
  it("a call whose context was cancelled keeps its error, whatever `when` says", async () => {
    const c = createCancelableContext();
    const endpoint: Endpoint<string, string> = (ctx) =>
      new Promise((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
      );
    const pending = rejection(fallback(degraded, { when: () => true })(endpoint)(c.context, "q"));
    c.cancel();
    const error = await pending;
    expect(error.code).toBe(Code.CANCELLED);
    expect(degraded).not.toHaveBeenCalled();
  });

  it("a call whose own deadline passed keeps its DEADLINE_EXCEEDED", async () => {
    vi.useFakeTimers();
    const ctx = createContext({ timeout: 50 });
    const call = chain(fallback(degraded), timeout(1_000))(() => new Promise<string>(() => undefined));
    const pending = rejection(call(ctx, "q"));
    await vi.advanceTimersByTimeAsync(50);
    expect((await pending).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(degraded).not.toHaveBeenCalled();
  });

  it("CANCELLED from a dependency while the caller still waits is not picked by default", async () => {
    const error = new ServiceError(Code.CANCELLED, "the dependency cancelled");
    expect(await rejection(fallback(degraded)(failWith(error))(background, "q"))).toBe(error);
  });
});

describe("when", () => {
  it("a list of codes replaces the defaults (client faults only when listed)", async () => {
    const middleware = fallback(degraded, { when: [Code.NOT_FOUND] });
    await expect(middleware(failWith(new ServiceError(Code.NOT_FOUND)))(background, "q")).resolves.toBe(
      "degraded q (NOT_FOUND)",
    );
    const down = new ServiceError(Code.UNAVAILABLE);
    expect(await rejection(middleware(failWith(down))(background, "q"))).toBe(down);
  });

  it("an empty list never falls back", async () => {
    const down = new ServiceError(Code.UNAVAILABLE);
    expect(await rejection(fallback(degraded, { when: [] })(failWith(down))(background, "q"))).toBe(down);
  });

  it("a predicate gets the error and the context", async () => {
    const when = vi.fn((error: ServiceError) => error.message === "use cache");
    const ctx = createContext();
    const middleware = fallback(degraded, { when });
    const yes = new ServiceError(Code.DATA_LOSS, "use cache");
    await expect(middleware(failWith(yes))(ctx, "q")).resolves.toBe("degraded q (DATA_LOSS)");
    expect(when).toHaveBeenCalledWith(yes, ctx);
    const no = new ServiceError(Code.UNAVAILABLE, "no");
    expect(await rejection(middleware(failWith(no))(ctx, "q"))).toBe(no);
  });

  it("a predicate that throws fails the call with a ServiceError", async () => {
    const bug = new Error("predicate bug");
    const middleware = fallback(degraded, {
      when: () => {
        throw bug;
      },
    });
    const error = await rejection(middleware(failWith(new ServiceError(Code.UNAVAILABLE)))(background, "q"));
    expect(error).toBeInstanceOf(ServiceError);
    expect(error.code).toBe(Code.INTERNAL);
    expect(error.message).toBe("internal error");
    expect(error.cause).toBe(bug);
  });
});

describe("handler", () => {
  it("may return a promise", async () => {
    const middleware = fallback(async (_ctx, req: string) => `later ${req}`);
    await expect(middleware(failWith(new ServiceError(Code.UNAVAILABLE)))(background, "q")).resolves.toBe(
      "later q",
    );
  });

  it("errors it throws or rejects with reach the caller as ServiceErrors", async () => {
    const own = new ServiceError(Code.NOT_FOUND, "nothing cached for q");
    const down = failWith(new ServiceError(Code.UNAVAILABLE));
    const sync = fallback<string, string>(() => {
      throw own;
    });
    expect(await rejection(sync(down)(background, "q"))).toBe(own);
    const rejecting = fallback<string, string>(async () => {
      throw own;
    });
    expect(await rejection(rejecting(down)(background, "q"))).toBe(own);
    const plain = new TypeError("cache is undefined");
    const buggy = fallback<string, string>(() => {
      throw plain;
    });
    const error = await rejection(buggy(down)(background, "q"));
    expect(error).toBeInstanceOf(ServiceError);
    expect(error.code).toBe(Code.INTERNAL);
    expect(error.message).toBe("internal error");
    expect(error.cause).toBe(plain);
  });

  it("rethrowing the error it got keeps the original failure, the very value thrown, ServiceError or not", async () => {
    const original = new ServiceError(Code.UNAVAILABLE, "down");
    const seen: ServiceError[] = [];
    const middleware = fallback((_ctx, _req: string, error): string => {
      seen.push(error);
      throw error;
    });
    expect(await rejection(middleware(failWith(original))(background, "q"))).toBe(original);
    // A plain Error arrives converted (INTERNAL, the original as cause); declining gives back the original,
    // as when `when` does not pick it, not the converted INTERNAL "internal error".
    const plain = new Error("plain");
    expect(await rejection(middleware(failWith(plain))(background, "q"))).toBe(plain);
    expect(seen[1]?.code).toBe(Code.INTERNAL);
    expect(seen[1]?.cause).toBe(plain);
    const rejecting = fallback(async (_ctx, _req: string, error): Promise<string> => {
      throw error;
    });
    expect(await rejection(rejecting(failWith(plain))(background, "q"))).toBe(plain);
  });
});

describe("types", () => {
  it("is a Middleware of the handler's request and response types", () => {
    const middleware = fallback(async (_ctx, req: { sku: string }) => ({ sku: req.sku, price: 0 }));
    expectTypeOf(middleware).toEqualTypeOf<Middleware<{ sku: string }, { sku: string; price: number }>>();
    const prices: Endpoint<{ sku: string }, { sku: string; price: number }> = async (_ctx, req) => ({
      sku: req.sku,
      price: 1,
    });
    expectTypeOf(chain(middleware, timeout(100))(prices)).toEqualTypeOf<typeof prices>();
  });
});
