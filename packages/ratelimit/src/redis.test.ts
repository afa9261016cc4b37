// Redis mode against a real redis-server this file starts (test/support/redis-server.ts): how long a
// key's state lives while calls run, the order of delayed calls in one process, close() during a round
// trip, and the messages of fail-closed errors. Skipped (loudly) without redis-server unless CI=true.
import { background, Code, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptions,
  type RejectInfo,
} from "@svckit/ratelimit";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, skipWithoutRedis, startRedis } from "../../../test/support/redis-server.js";
import { gate, serviceRejection } from "./test-helpers.js";

const skip = skipWithoutRedis("packages/ratelimit/src/redis.test.ts");

let counter = 0;
/** A limiter name no other test uses, so every test starts with empty state in Redis. */
const unique = (label: string): string => `${label}-${process.pid}-${++counter}-${Date.now()}`;

/** Polls `probe` every 5 ms until it is true, for at most `ms`. */
async function until(probe: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** An endpoint that records the requests it ran, in order. */
function recorder(): { endpoint: Endpoint<number, number>; ran: number[] } {
  const ran: number[] = [];
  return {
    ran,
    endpoint: async (_ctx, n) => {
      ran.push(n);
      return n;
    },
  };
}

describe.skipIf(skip)("Redis mode", () => {
  let redis: RedisServer;
  let admin: Redis;
  const made: RateLimiter<never>[] = [];

  function limiter<Req = unknown>(options: RateLimiterOptions<Req>, port = redis.port): RateLimiter<Req> {
    const made1 = createRateLimiter<Req>({
      ...options,
      redis: { clientOptions: { host: "127.0.0.1", port }, ...options.redis },
    });
    made.push(made1 as RateLimiter<never>);
    return made1;
  }

  beforeAll(async () => {
    redis = await startRedis();
    admin = new Redis({ host: "127.0.0.1", port: redis.port });
  });
  afterEach(async () => {
    await Promise.all(made.splice(0).map((l) => l.close()));
  });
  afterAll(async () => {
    await admin?.quit();
    await redis?.stop();
  });

  it("keeps a key's state in Redis while a call runs longer than idleTimeout (until its slot expires)", async () => {
    const name = unique("ttl");
    const g = gate<number>();
    const slotTimeout = 3_000;
    const e = limiter({ name, maxConcurrent: 1, idleTimeout: 1_000, redis: { slotTimeout } }).middleware(
      g.endpoint,
    );
    const first = e(background, 1);
    await until(() => g.started.length === 1, 2_000, "the first call to run");
    expect((await serviceRejection(e(background, 2))).message).toContain("at most 1 concurrent calls");

    const prefix = `b_svckit:${name}:_`;
    const keys = await admin.keys(`${prefix}*`);
    expect(keys).toContain(`${prefix}settings`);
    const time = await admin.time();
    const redisNow = Number(time[0]) * 1_000 + Math.floor(Number(time[1]) / 1_000);
    const ttls = await Promise.all(keys.map((k) => admin.pttl(k)));
    // [index, expiry]: the running call's slot, expiring by Bottleneck's script clock.
    const slots = await admin.zrange(`${prefix}job_expirations`, 0, -1, "WITHSCORES");
    expect(slots).toHaveLength(2);
    const slotExpiry = Number(slots[1]);
    for (const ttl of ttls) {
      // Every key of the state outlives the slot (old: it expired after idleTimeout, 1 s).
      expect(ttl).toBeGreaterThan(slotTimeout);
      expect(redisNow + ttl).toBeGreaterThanOrEqual(slotExpiry);
    }
    g.finish();
    await first;
  });

  it("runs delayed calls of one process in arrival order, one window after another", async () => {
    const { endpoint, ran } = recorder();
    const e = limiter({ name: unique("fifo"), limit: 1, interval: 200, mode: "delay" }).middleware(endpoint);
    await e(background, 0);
    const ctx = createContext({ timeout: 10_000 });
    await Promise.all([1, 2, 3, 4, 5, 6].map((n) => e(ctx, n)));
    expect(ran).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it("hands a maxConcurrent slot to the delayed calls in arrival order", async () => {
    const g = gate<number>();
    const e = limiter({ name: unique("fifo-running"), maxConcurrent: 1, mode: "delay" }).middleware(
      g.endpoint,
    );
    const ctx = createContext({ timeout: 10_000 });
    const calls = [0, 1, 2, 3, 4, 5].map((n) => e(ctx, n));
    for (let i = 1; i <= 6; i++) {
      await until(() => g.started.length === i, 3_000, `call ${i - 1} to run`);
      g.finish();
    }
    await Promise.all(calls);
    expect(g.started).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("fails a delayed call at once when the calls ahead of it leave no slot before its deadline", async () => {
    const { endpoint, ran } = recorder();
    const seen: RejectInfo[] = [];
    const name = unique("eta");
    const e = limiter({
      name,
      limit: 1,
      interval: 1_000,
      mode: "delay",
      onReject: (info) => seen.push(info),
    }).middleware(endpoint);
    await e(background, 0);
    const t0 = Date.now();
    // Call 1 gets the next window's slot (in 1 s); call 2 would get the one after (2 s), past 1.5 s.
    const first = e(createContext({ timeout: 1_500 }), 1);
    const second = await serviceRejection(e(createContext({ timeout: 1_500 }), 2));
    expect(ran).toEqual([0]); // refused before call 1 ran, not after waiting for the window
    expect(second.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(second.message).toMatch(
      new RegExp(`^rate limit "${name}": no slot before the call's deadline \\(next in (1\\.[0-9]+|2) s\\)$`),
    );
    // A call that comes while call 1 waits is refused on arrival, from what Redis said.
    const third = await serviceRejection(e(createContext({ timeout: 1_500 }), 3));
    expect(third.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(ran).toEqual([0]);
    expect(Date.now() - t0).toBeLessThan(1_000);
    await expect(first).resolves.toBe(1);
    expect(ran).toEqual([0, 1]);
    expect(seen.map((r) => r.reason)).toEqual(["deadline", "deadline"]);
  });

  it("says whether Redis is down or a Redis call failed when failing closed", async () => {
    const own = await startRedis();
    const errors: unknown[] = [];
    try {
      const name = unique("why");
      const l = limiter(
        {
          name,
          limit: 5,
          interval: 60_000,
          redis: { failMode: "closed", onError: (err) => errors.push(err) },
        },
        own.port,
      );
      const e = l.middleware(async (_ctx, n: number) => n);
      await expect(e(background, 0)).resolves.toBe(0);

      // A script fails on a live connection: the key's state has the wrong type.
      const other = new Redis({ host: "127.0.0.1", port: own.port });
      await other.del(`b_svckit:${name}:_settings`);
      await other.set(`b_svckit:${name}:_settings`, "not a hash");
      await other.quit();
      const failed = await serviceRejection(e(background, 1));
      expect(failed.code).toBe(Code.UNAVAILABLE);
      expect(failed.message).toMatch(
        new RegExp(`^rate limiter "${name}" is unavailable: the Redis call failed: WRONGTYPE `),
      );
      expect(failed.cause).toBeInstanceOf(Error);
      expect(failed.message).toContain((failed.cause as Error).message);
      expect(errors).toContain(failed.cause);

      // Redis answers nothing on a live connection (frozen): the round trip times out.
      const slow = limiter(
        { name: unique("frozen"), limit: 5, interval: 60_000, redis: { failMode: "closed", timeout: 200 } },
        own.port,
      ).middleware(async (_ctx, n: number) => n);
      await expect(slow(background, 0)).resolves.toBe(0);
      own.pause();
      try {
        const late = await serviceRejection(slow(background, 1));
        expect(late.message).toMatch(
          / is unavailable: the Redis call failed: Redis did not answer within 200 ms$/,
        );
      } finally {
        own.resume();
      }

      // Redis is gone: the connection is down, also before ioredis has noticed (then the command fails).
      await own.kill();
      const down = await serviceRejection(e(background, 2));
      expect(down.message).toBe(`rate limiter "${name}" is unavailable: Redis cannot be reached`);
      await until(() => own.pid === -1 && errors.length > 1, 3_000, "the connection error");
      const later = await serviceRejection(e(background, 3));
      expect(later.message).toBe(`rate limiter "${name}" is unavailable: Redis cannot be reached`);
    } finally {
      await Promise.all(made.splice(0).map((l) => l.close()));
      await own.stop();
    }
  });

  it.each([
    ["error", "open"],
    ["error", "closed"],
    ["delay", "open"],
  ] as const)(
    "fails a call whose round trip is pending at close() with UNAVAILABLE; it never runs (mode %s, failMode %s)",
    async (mode, failMode) => {
      const own = await startRedis();
      try {
        const name = unique("closing");
        const { endpoint, ran } = recorder();
        const l = limiter(
          { name, limit: 5, interval: 60_000, mode, redis: { failMode, timeout: 300 } },
          own.port,
        );
        const e = l.middleware(endpoint);
        await expect(e(background, 0)).resolves.toBe(0);
        own.pause(); // the next round trip stays pending
        let pending: Promise<unknown>;
        try {
          // Settles to the call's error (or "ran"), handled at once: it may settle while close() runs.
          pending = e(background, 1).then(
            () => "ran",
            (err: unknown) => err,
          );
          await l.close();
        } finally {
          own.resume();
        }
        const err = await pending;
        expect(err).toBeInstanceOf(ServiceError);
        expect((err as ServiceError).code).toBe(Code.UNAVAILABLE);
        expect((err as ServiceError).message).toBe(`rate limiter "${name}" is closed`);
        expect(ran).toEqual([0]);
      } finally {
        await own.stop();
      }
    },
  );
});
