import { background, chain, createContextKey, type Endpoint, type Middleware, nop } from "@svckit/endpoint";
import { describe, expect, it, vi } from "vitest";

/** A middleware that records "<name> pre" before and "<name> post" after the next endpoint. */
function recording(name: string, log: string[]): Middleware<string, string> {
  return (next) =>
    async function recorded(ctx, req) {
      log.push(`${name} pre`);
      const res = await next(ctx, `${req}>${name}`);
      log.push(`${name} post`);
      return `${res}<${name}`;
    };
}

describe("chain", () => {
  it("runs the first middleware outermost, like go-kit's endpoint.Chain", async () => {
    const log: string[] = [];
    const endpoint: Endpoint<string, string> = async (_ctx, req) => {
      log.push("endpoint");
      return `${req}|`;
    };
    const e = chain(recording("first", log), recording("second", log), recording("third", log))(endpoint);
    const res = await e(background, "req");
    expect(log).toEqual([
      "first pre",
      "second pre",
      "third pre",
      "endpoint",
      "third post",
      "second post",
      "first post",
    ]);
    expect(res).toBe("req>first>second>third|<third<second<first");
  });

  it("with one middleware is that middleware", async () => {
    const log: string[] = [];
    const endpoint: Endpoint<string, string> = async (_ctx, req) => {
      log.push("endpoint");
      return req.toUpperCase();
    };
    const only = recording("only", log);
    const e = chain(only)(endpoint);
    expect(await e(background, "a")).toBe("A>ONLY<only");
    expect(log).toEqual(["only pre", "endpoint", "only post"]);
  });

  it("calls each middleware factory once, at compose time, not per call", async () => {
    const f1 = vi.fn();
    const f2 = vi.fn();
    const f3 = vi.fn();
    const factories = [f1, f2, f3];
    const plusOne =
      (spy: () => void): Middleware<number, number> =>
      (next) => {
        spy();
        return (ctx, n) => next(ctx, n + 1);
      };
    const composed = chain(plusOne(f1), plusOne(f2), plusOne(f3));
    for (const spy of factories) expect(spy).not.toHaveBeenCalled();
    const e = composed(async (_ctx, n) => n * 10);
    for (const spy of factories) expect(spy).toHaveBeenCalledTimes(1);
    expect(await e(background, 0)).toBe(30);
    expect(await e(background, 1)).toBe(40);
    await Promise.all(Array.from({ length: 5 }, (_, i) => e(background, i)));
    for (const spy of factories) expect(spy).toHaveBeenCalledTimes(1);
  });

  it("builds each wrapped endpoint once per composition", () => {
    const log: string[] = [];
    const composed = chain(recording("a", log), recording("b", log));
    const e1 = composed(async (_ctx, s) => s);
    const e2 = composed(async (_ctx, s) => s);
    expect(e1).not.toBe(e2);
    expect(typeof e1).toBe("function");
    expect(log).toEqual([]);
  });

  it("passes the context through unchanged, or as a middleware derives it", async () => {
    const key = createContextKey("none", { description: "who" });
    const setUser: Middleware<void, string> = (next) => (ctx, req) => next(ctx.with(key, "ada"), req);
    const seen: unknown[] = [];
    const spy: Middleware<void, string> = (next) => (ctx, req) => {
      seen.push(ctx);
      return next(ctx, req);
    };
    const e = chain(spy, setUser)(async (ctx) => ctx.value(key));
    expect(await e(background)).toBe("ada");
    expect(seen).toEqual([background]);
  });

  it("lets errors unwind through every middleware", async () => {
    const log: string[] = [];
    const failing: Endpoint<string, string> = async () => {
      log.push("endpoint");
      throw new Error("boom");
    };
    const guard =
      (name: string): Middleware<string, string> =>
      (next) =>
      async (ctx, req) => {
        try {
          return await next(ctx, req);
        } finally {
          log.push(`${name} finally`);
        }
      };
    const e = chain(guard("outer"), guard("inner"))(failing);
    await expect(e(background, "x")).rejects.toThrow("boom");
    expect(log).toEqual(["endpoint", "inner finally", "outer finally"]);
  });

  it("lets a middleware short-circuit without calling next", async () => {
    const inner = vi.fn(async () => "inner");
    const cached: Middleware<string, string> = () => async () => "cached";
    expect(await chain(cached)(inner)(background, "x")).toBe("cached");
    expect(inner).not.toHaveBeenCalled();
  });

  it("returns a named function", () => {
    const m: Middleware = (next) => next;
    expect(chain(m).name).toBe("chained");
  });
});

describe("nop", () => {
  it("resolves undefined for any request and context", async () => {
    await expect(nop(background, undefined)).resolves.toBeUndefined();
    await expect(nop(background, { anything: 1 })).resolves.toBeUndefined();
  });

  it("returns a promise and works as the innermost endpoint of a chain", async () => {
    expect(nop(background, 1)).toBeInstanceOf(Promise);
    const calls: string[] = [];
    const m: Middleware<unknown, undefined> = (next) => async (ctx, req) => {
      calls.push("m");
      return next(ctx, req);
    };
    await expect(chain(m)(nop)(background, 1)).resolves.toBeUndefined();
    expect(calls).toEqual(["m"]);
  });
});
