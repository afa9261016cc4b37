import { createHash } from "node:crypto";
import {
  background,
  Code,
  type Context,
  callInfoKey,
  chain,
  codeToHttpStatus,
  createContext,
  type Endpoint,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import {
  createRateLimiter,
  erroringLimiter,
  RETRY_INFO_TYPE,
  type RejectInfo,
  routeKey,
} from "@svckit/ratelimit";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { gate, outcomes, rejection, serviceRejection, T0 } from "./test-helpers.js";

const echo: Endpoint<number, number> = async (_ctx, n) => n;

/** Calls `e` `n` times at the current fake time and counts the admitted ones. */
async function burst(e: Endpoint<number, number>, n: number, ctx: Context = background): Promise<number> {
  const results = await outcomes(Array.from({ length: n }, (_, i) => e(ctx, i)));
  return results.filter((r) => r === "ok").length;
}

describe("erroring limiter: windows", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("admits exactly `limit` calls per window and refuses the rest with RESOURCE_EXHAUSTED", async () => {
    const e = erroringLimiter({ limit: 3, interval: 1_000 })(echo);
    expect(await outcomes([1, 2, 3, 4, 5].map((n) => e(background, n)))).toEqual([
      "ok",
      "ok",
      "ok",
      "RESOURCE_EXHAUSTED",
      "RESOURCE_EXHAUSTED",
    ]);
    vi.setSystemTime(T0 + 999);
    expect(await burst(e, 5)).toBe(0);
    vi.setSystemTime(T0 + 1_000);
    expect(await burst(e, 5)).toBe(3);
  });

  it("admits exactly `limit` per window under sustained load over many windows", async () => {
    const e = erroringLimiter({ limit: 7, interval: 100 })(echo);
    const perWindow: number[] = [];
    for (let w = 0; w < 20; w++) {
      let admitted = 0;
      // Ten bursts spread over the window, ending before it closes.
      for (let step = 0; step < 10; step++) {
        vi.setSystemTime(T0 + w * 100 + step * 10);
        admitted += await burst(e, 2);
      }
      perWindow.push(admitted);
    }
    expect(perWindow).toEqual(Array.from({ length: 20 }, () => 7));
  });

  it("opens a window at the first call after the previous one closed, not on a fixed grid", async () => {
    const e = erroringLimiter({ limit: 2, interval: 1_000 })(echo);
    expect(await burst(e, 3)).toBe(2); // window [T0, T0+1000)
    vi.setSystemTime(T0 + 1_500);
    expect(await burst(e, 1)).toBe(1); // window [T0+1500, T0+2500)
    vi.setSystemTime(T0 + 2_400);
    expect(await burst(e, 3)).toBe(1);
    vi.setSystemTime(T0 + 2_500);
    expect(await burst(e, 3)).toBe(2);
  });

  it("matches a reference model of fixed windows for any sequence of call times", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 60 }),
        async (limit, interval, gaps) => {
          vi.setSystemTime(T0);
          const e = erroringLimiter({ limit, interval })(echo);
          let now = T0;
          let windowEnd = 0;
          let used = 0;
          for (const gap of gaps) {
            now += gap;
            vi.setSystemTime(now);
            if (now >= windowEnd) {
              windowEnd = now + interval;
              used = 0;
            }
            const expected = used < limit ? "ok" : "RESOURCE_EXHAUSTED";
            if (expected === "ok") used++;
            expect(await outcomes([e(background, 0)])).toEqual([expected]);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("tells how long until the window ends: RetryInfo detail and retry-after metadata (429 over HTTP)", async () => {
    const e = erroringLimiter({ name: "api", limit: 1, interval: 2_000 })(echo);
    await e(background, 1);
    vi.setSystemTime(T0 + 500);
    const err = await serviceRejection(e(background, 2));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(codeToHttpStatus[err.code]).toBe(429);
    expect(err.message).toBe('rate limit "api" exceeded: at most 1 calls per 2000 ms, retry in 1.5 s');
    expect(err.details).toEqual([{ type: RETRY_INFO_TYPE, value: { retryDelay: "1.500s" } }]);
    expect(RETRY_INFO_TYPE).toBe("type.googleapis.com/google.rpc.RetryInfo");
    expect(err.metadata.get("retry-after")).toBe("2");
    expect(err.toJSON()).toEqual({
      code: "RESOURCE_EXHAUSTED",
      message: 'rate limit "api" exceeded: at most 1 calls per 2000 ms, retry in 1.5 s',
      details: [{ type: RETRY_INFO_TYPE, value: { retryDelay: "1.500s" } }],
    });
  });

  it.each([
    [0, "2s", "2", "2"],
    [1, "1.999s", "2", "1.999"],
    [1_000, "1s", "1", "1"],
    [1_001, "0.999s", "1", "0.999"],
    [1_999, "0.001s", "1", "0.001"],
  ])(
    "retry hint %d ms into a 2 s window: retryDelay %s, retry-after %s",
    async (elapsed, delay, after, secs) => {
      const e = erroringLimiter({ limit: 1, interval: 2_000 })(echo);
      await e(background, 1);
      vi.setSystemTime(T0 + elapsed);
      const err = await serviceRejection(e(background, 2));
      expect(err.details[0]?.value).toEqual({ retryDelay: delay });
      expect(err.metadata.get("retry-after")).toBe(after);
      expect(err.message.endsWith(`retry in ${secs} s`)).toBe(true);
    },
  );

  it("does not count refused calls: they use no slot of the next window", async () => {
    const e = erroringLimiter({ limit: 2, interval: 100 })(echo);
    expect(await burst(e, 50)).toBe(2);
    vi.setSystemTime(T0 + 100);
    expect(await burst(e, 50)).toBe(2);
  });
});

describe("erroring limiter: maxConcurrent", () => {
  it("refuses a call while `maxConcurrent` run, without a retry hint, and admits again once one ends", async () => {
    const g = gate<number>();
    const e = erroringLimiter({ name: "db", maxConcurrent: 2 })(g.endpoint);
    const first = e(background, 1);
    const second = e(background, 2);
    const err = await serviceRejection(e(background, 3));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toBe('rate limit "db" exceeded: at most 2 concurrent calls');
    expect(err.details).toEqual([]);
    expect(err.metadata.has("retry-after")).toBe(false);
    expect(g.started).toEqual([1, 2]);
    g.finish();
    await expect(first).resolves.toBe(1);
    const third = e(background, 4);
    expect(g.started).toEqual([1, 2, 4]);
    g.finish();
    g.finish();
    await expect(Promise.all([second, third])).resolves.toEqual([2, 4]);
  });

  it("frees the slot when the endpoint rejects or throws synchronously (a rejection, not a throw)", async () => {
    const boom = new Error("boom");
    let mode: "reject" | "throw" | "ok" = "reject";
    const endpoint: Endpoint<number, number> = (_ctx, n) => {
      if (mode === "throw") throw boom;
      return mode === "reject" ? Promise.reject(boom) : Promise.resolve(n);
    };
    const e = erroringLimiter({ maxConcurrent: 1 })(endpoint);
    expect(await rejection(e(background, 1))).toBe(boom);
    mode = "throw";
    let call: Promise<number> | undefined;
    expect(() => {
      call = e(background, 2);
    }).not.toThrow();
    expect(await rejection(call as Promise<number>)).toBe(boom);
    mode = "ok";
    await expect(e(background, 3)).resolves.toBe(3);
    await expect(e(background, 4)).resolves.toBe(4);
  });

  it("applies both limits: a call needs a window slot and a running slot", async () => {
    vi.useFakeTimers({ now: T0 });
    try {
      const g = gate<number>();
      const e = erroringLimiter({ limit: 3, interval: 1_000, maxConcurrent: 2 })(g.endpoint);
      const a = e(background, 1);
      e(background, 2);
      const busy = await serviceRejection(e(background, 3));
      expect(busy.message).toContain("at most 2 concurrent calls");
      g.finish();
      await a;
      e(background, 4);
      const limited = await serviceRejection(e(background, 5));
      expect(limited.message).toContain("at most 3 calls per 1000 ms");
      g.finish();
      g.finish();
    } finally {
      vi.useRealTimers();
    }
  });

  it("handles an endpoint that returns a plain value instead of a promise (plain JS)", async () => {
    const plain = ((_ctx: Context, n: number) => n * 2) as unknown as Endpoint<number, number>;
    const e = erroringLimiter({ maxConcurrent: 1 })(plain);
    await expect(e(background, 2)).resolves.toBe(4);
    await expect(e(background, 3)).resolves.toBe(6);
  });

  it.each([
    ["window only", { limit: 5, interval: 1_000 }],
    ["window only, per key", { limit: 5, interval: 1_000, key: () => "k" }],
    ["maxConcurrent", { maxConcurrent: 1 }],
  ])(
    "returns a promise for a plain value or a synchronous throw of a plain-JS endpoint (%s)",
    async (_label, options) => {
      const boom = new Error("boom");
      const plain = ((_ctx: Context, n: number) => {
        if (n < 0) throw boom;
        return n * 2;
      }) as unknown as Endpoint<number, number>;
      const e = erroringLimiter(options)(plain);
      const value = e(background, 2);
      expect(value).toBeInstanceOf(Promise);
      await expect(value).resolves.toBe(4);
      const thrown = e(background, -1);
      expect(thrown).toBeInstanceOf(Promise);
      expect(await rejection(thrown)).toBe(boom);
    },
  );
});

describe("erroring limiter: the endpoint's own results", () => {
  it.each([
    ["window only", { limit: 10, interval: 1_000 }],
    ["maxConcurrent", { maxConcurrent: 2 }],
  ])("passes values and errors of the endpoint through untouched (%s)", async (_label, options) => {
    const own = new ServiceError(Code.NOT_FOUND, "no such user");
    const plain = new TypeError("bug");
    const odd = { not: "an error" };
    const errors: unknown[] = [own, plain, odd];
    let i = 0;
    const endpoint: Endpoint<string, { v: string }> = async (_ctx, s) => {
      const err = errors[i++];
      if (err !== undefined) throw err;
      return { v: s };
    };
    const e = erroringLimiter(options)(endpoint);
    expect(await rejection(e(background, "a"))).toBe(own);
    expect(await rejection(e(background, "b"))).toBe(plain);
    expect(await rejection(e(background, "c"))).toBe(odd);
    const value = await e(background, "d");
    expect(value).toEqual({ v: "d" });
  });

  it("gives the endpoint the caller's context and request", async () => {
    const seen: [Context, string][] = [];
    const e = erroringLimiter({ limit: 1, interval: 1_000 })(async (ctx: Context, s: string) => {
      seen.push([ctx, s]);
      return s;
    });
    const ctx = createContext({ metadata: { "x-a": "1" } });
    await e(ctx, "req");
    expect(seen).toEqual([[ctx, "req"]]);
  });

  it("returns named functions and composes with chain and typed endpoints", async () => {
    const limiter = createRateLimiter({ limit: 5, interval: 1_000 });
    expect(limiter.middleware.name).toBe("rateLimitMiddleware");
    const wrapped = limiter.middleware(echo);
    expect(wrapped.name).toBe("rateLimitedEndpoint");
    const composed: Endpoint<number, number> = chain<number, number>(
      limiter.middleware,
      timeout(1_000),
    )(echo);
    await expect(composed(background, 7)).resolves.toBe(7);
  });

  it("counts every endpoint wrapped by one limiter against the same limit", async () => {
    const limiter = createRateLimiter({ limit: 2, interval: 60_000 });
    const a = limiter.middleware(echo);
    const b = limiter.middleware(async (_ctx: Context, s: string) => s);
    await a(background, 1);
    await b(background, "x");
    expect((await serviceRejection(a(background, 2))).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect((await serviceRejection(b(background, "y"))).code).toBe(Code.RESOURCE_EXHAUSTED);
  });
});

describe("per-key limits", () => {
  const byUser = (ctx: Context): string => ctx.metadata.get("x-user") ?? "";
  const as = (user: string): Context => createContext({ metadata: { "x-user": user } });

  it("gives each key its own window", async () => {
    const e = erroringLimiter({ limit: 2, interval: 60_000, key: byUser })(echo);
    expect(await burst(e, 5, as("ada"))).toBe(2);
    expect(await burst(e, 5, as("bob"))).toBe(2);
    expect(await burst(e, 5, as("ada"))).toBe(0);
    expect(await burst(e, 5, as("cy"))).toBe(2);
  });

  it("gives each key its own running slots", async () => {
    const g = gate<number>();
    const e = erroringLimiter({ maxConcurrent: 1, key: byUser })(g.endpoint);
    e(as("ada"), 1);
    e(as("bob"), 2);
    expect((await serviceRejection(e(as("ada"), 3))).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(g.started).toEqual([1, 2]);
    g.finish();
    g.finish();
  });

  it("passes the typed request to the key function", async () => {
    const keys: string[] = [];
    const limiter = createRateLimiter<{ tenant: string }>({
      limit: 1,
      interval: 60_000,
      key: (_ctx, req) => {
        keys.push(req.tenant);
        return req.tenant;
      },
    });
    const e = limiter.middleware(async (_ctx: Context, req: { tenant: string; n: number }) => req.n);
    await e(background, { tenant: "acme", n: 1 });
    await e(background, { tenant: "globex", n: 2 });
    expect((await serviceRejection(e(background, { tenant: "acme", n: 3 }))).code).toBe(
      Code.RESOURCE_EXHAUSTED,
    );
    expect(keys).toEqual(["acme", "globex", "acme"]);
  });

  it("counts per route with routeKey", async () => {
    const e = erroringLimiter({ limit: 1, interval: 60_000, key: routeKey })(echo);
    const route = (method: string, path?: string): Context =>
      createContext().with(callInfoKey, { transport: "http", method, route: path });
    await e(route("GET", "/users/:id"), 1);
    await e(route("POST", "/users/:id"), 2);
    await e(route("GET", "/orders"), 3);
    await e(route("/pkg.Svc/Get"), 4);
    expect(await burst(e, 1, route("GET", "/users/:id"))).toBe(0);
    expect(await burst(e, 1, route("/pkg.Svc/Get"))).toBe(0);
  });

  it("fails the call with the key function's error and counts nothing", async () => {
    const bad = new Error("no tenant");
    const e = erroringLimiter({
      limit: 1,
      interval: 60_000,
      key: (ctx) => {
        if (!ctx.metadata.has("x-user")) throw bad;
        return "k";
      },
    })(echo);
    expect(await rejection(e(background, 1))).toBe(bad);
    await expect(e(as("ada"), 2)).resolves.toBe(2);
  });

  it("replaces keys longer than 200 characters by their SHA-256", async () => {
    const seen: RejectInfo[] = [];
    const e = erroringLimiter({
      limit: 1,
      interval: 60_000,
      key: byUser,
      onReject: (info) => seen.push(info),
    })(echo);
    const long1 = `${"x".repeat(5_000)}1`;
    const long2 = `${"x".repeat(5_000)}2`;
    expect(await burst(e, 2, as(long1))).toBe(1);
    expect(await burst(e, 2, as(long2))).toBe(1);
    const exact = "y".repeat(200);
    expect(await burst(e, 2, as(exact))).toBe(1);
    const sha = (k: string): string => `sha256:${createHash("sha256").update(k).digest("hex")}`;
    expect(seen.map((r) => r.key)).toEqual([sha(long1), sha(long2), exact]);
    expect(seen[0]?.key).not.toBe(seen[1]?.key);
  });
});

describe("bounded keys", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("tracks at most maxKeys keys while 10 000 distinct keys come through", async () => {
    const limiter = createRateLimiter({
      limit: 1,
      interval: 1_000,
      maxKeys: 100,
      key: (_ctx, req) => String(req),
    });
    const e = limiter.middleware(echo);
    let max = 0;
    for (let i = 0; i < 10_000; i++) {
      await e(background, i);
      max = Math.max(max, limiter.size);
    }
    expect(max).toBe(100);
    expect(limiter.size).toBe(100);
    // The 100 most recent keys are still limited; the oldest were forgotten and start afresh.
    expect((await serviceRejection(e(background, 9_999))).code).toBe(Code.RESOURCE_EXHAUSTED);
    await expect(e(background, 0)).resolves.toBe(0);
  });

  it("forgets the least recently used key first", async () => {
    const limiter = createRateLimiter({ limit: 1, interval: 60_000, maxKeys: 2, key: (_c, r) => String(r) });
    const e = limiter.middleware(echo);
    await e(background, 1);
    await e(background, 2);
    await rejection(e(background, 1)); // key 1 is now the most recently used
    await e(background, 3); // forgets key 2
    expect((await serviceRejection(e(background, 1))).code).toBe(Code.RESOURCE_EXHAUSTED);
    await expect(e(background, 2)).resolves.toBe(2); // forgotten: a fresh window
  });

  it("never forgets a key with running calls; refuses a new key when all are busy", async () => {
    const seen: RejectInfo[] = [];
    const g = gate<number>();
    const limiter = createRateLimiter<number>({
      name: "busy",
      maxConcurrent: 1,
      maxKeys: 3,
      key: (_c, r) => String(r),
      onReject: (info) => seen.push(info),
    });
    const e = limiter.middleware(g.endpoint);
    const running = [e(background, 1), e(background, 2), e(background, 3)];
    const err = await serviceRejection(e(background, 4));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toBe('rate limit "busy" exceeded: all 3 tracked keys have calls in progress');
    expect(seen).toEqual([{ name: "busy", key: "4", reason: "keys" }]);
    expect(limiter.size).toBe(3);
    g.finish(1); // key 2 ends: it can be forgotten now
    await running[1];
    const fourth = e(background, 4);
    expect(g.started).toEqual([1, 2, 3, 4]);
    // Key 1 still runs, so it was kept: a second call of key 1 is refused for concurrency.
    expect((await serviceRejection(e(background, 1))).message).toContain("concurrent");
    g.finish();
    g.finish();
    g.finish();
    await Promise.all([running[0], running[2], fourth]);
  });

  it("forgets an idle key to admit a new one even when the least recently used keys are all busy", async () => {
    const seen: RejectInfo[] = [];
    const g = gate<string>();
    const limiter = createRateLimiter<string>({
      maxConcurrent: 5,
      maxKeys: 40,
      key: (_c, r) => r,
      onReject: (info) => seen.push(info),
    });
    const e = limiter.middleware(g.endpoint);
    // The 36 least recently used keys have a call running; the 4 most recent are idle.
    const running = Array.from({ length: 36 }, (_, i) => e(background, `busy${i}`));
    for (let i = 0; i < 4; i++) {
      const call = e(background, `idle${i}`);
      g.finish(36);
      await call;
    }
    expect(limiter.size).toBe(40);
    for (let i = 0; i < 4; i++) {
      const call = e(background, `new${i}`);
      g.finish(36);
      await expect(call).resolves.toBe(`new${i}`);
      expect(limiter.size).toBe(40);
    }
    expect(seen).toEqual([]);
    // Four more long calls of new keys take the places of the four idle keys; then all 40 are busy.
    const more = Array.from({ length: 4 }, (_, i) => e(background, `more${i}`));
    expect(g.started.slice(-4)).toEqual(["more0", "more1", "more2", "more3"]);
    const refused = await serviceRejection(e(background, "refused"));
    expect(refused.message).toContain("all 40 tracked keys have calls in progress");
    expect(seen.map((r) => r.reason)).toEqual(["keys"]);
    for (let i = 0; i < 40; i++) g.finish();
    await Promise.all([...running, ...more]);
  });

  it("forgets keys idle for idleTimeout that sit behind a key whose call runs long", async () => {
    const g = gate<string>();
    const limiter = createRateLimiter<string>({ maxConcurrent: 5, idleTimeout: 1_000, key: (_c, r) => r });
    const e = limiter.middleware(g.endpoint);
    const long = e(background, "long"); // the least recently used key; its call runs throughout
    for (let i = 0; i < 50; i++) {
      const call = e(background, `k${i}`);
      g.finish(1);
      await call;
    }
    expect(limiter.size).toBe(51);
    vi.setSystemTime(T0 + 1_000);
    const fresh = e(background, "new");
    g.finish(1);
    await fresh;
    // k0..k49, idle for idleTimeout, are gone; "long" (busy) and "new" remain.
    expect(limiter.size).toBe(2);
    g.finish();
    await long;
  });

  it("counts a key as used until its last call ends, not only when the call came", async () => {
    const g = gate<string>();
    const limiter = createRateLimiter<string>({ maxConcurrent: 5, idleTimeout: 1_000, key: (_c, r) => r });
    const e = limiter.middleware(g.endpoint);
    const long = e(background, "long");
    vi.setSystemTime(T0 + 5_000);
    g.finish();
    await long;
    vi.setSystemTime(T0 + 5_999);
    const other = e(background, "other");
    g.finish();
    await other;
    expect(limiter.size).toBe(2); // "long" was used at 5 000 (its call ended): not idle for 1 000 ms yet
    vi.setSystemTime(T0 + 6_000);
    const again = e(background, "again");
    g.finish();
    await again;
    expect(limiter.size).toBe(2); // "long" forgotten; "other" and "again" remain
  });

  it("forgets keys unused for idleTimeout when new keys come", async () => {
    const limiter = createRateLimiter({
      limit: 1,
      interval: 1_000,
      idleTimeout: 5_000,
      key: (_c, r) => String(r),
    });
    const e = limiter.middleware(echo);
    for (let i = 0; i < 50; i++) await e(background, i);
    expect(limiter.size).toBe(50);
    vi.setSystemTime(T0 + 4_999);
    await e(background, 0); // key 0 used again
    await e(background, 100);
    expect(limiter.size).toBe(51);
    vi.setSystemTime(T0 + 5_000);
    await e(background, 101);
    // keys 1..49 idle for 5 s are gone; 0, 100 and 101 remain
    expect(limiter.size).toBe(3);
  });
});

describe("onReject", () => {
  it("is told the limiter's name, the key and the reason of each rejection", async () => {
    vi.useFakeTimers({ now: T0 });
    try {
      const seen: RejectInfo[] = [];
      const g = gate<number>();
      const e = erroringLimiter({
        name: "search",
        limit: 2,
        interval: 1_000,
        maxConcurrent: 1,
        key: (ctx) => ctx.metadata.get("x-user") ?? "anon",
        onReject: (info) => seen.push(info),
      })(g.endpoint);
      const ada = createContext({ metadata: { "x-user": "ada" } });
      const first = e(ada, 1);
      await rejection(e(ada, 2)); // ada runs one call already
      g.finish();
      await first;
      const third = e(ada, 3); // ada's second and last call of the window
      g.finish();
      await third;
      const anon = e(background, 4);
      await rejection(e(background, 5)); // anon runs one call already
      await rejection(e(ada, 6)); // ada used up the window
      expect(seen).toEqual([
        { name: "search", key: "ada", reason: "concurrency" },
        { name: "search", key: "anon", reason: "concurrency" },
        { name: "search", key: "ada", reason: "limit" },
      ]);
      g.finish();
      await anon;
    } finally {
      vi.useRealTimers();
    }
  });

  it("cannot change the answer by throwing", async () => {
    const e = erroringLimiter({
      limit: 1,
      interval: 60_000,
      onReject: () => {
        throw new Error("metrics down");
      },
    })(echo);
    await e(background, 1);
    const err = await serviceRejection(e(background, 2));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
  });
});

describe("close", () => {
  it("fails later calls with UNAVAILABLE and leaves no timer", async () => {
    vi.useFakeTimers({ now: T0 });
    try {
      const limiter = createRateLimiter({ name: "api", limit: 1, interval: 1_000 });
      const e = limiter.middleware(echo);
      await e(background, 1);
      await limiter.close();
      await limiter.close();
      const err = await serviceRejection(e(background, 2));
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(err.message).toBe('rate limiter "api" is closed');
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
