// Redis mode against a real redis-server this file starts (test/support/redis-server.ts): how long a
// key's state lives while calls run, the order of delayed calls in one process, close() during a round
// trip, a slot granted to a call that left during its round trip, and the messages of fail-closed
// errors. Skipped (loudly) without redis-server unless CI=true.
import {
  background,
  Code,
  createCancelableContext,
  createContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptions,
  type RejectInfo,
} from "@svckit/ratelimit";
import { type Command, Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, skipWithoutRedis, startRedis } from "../../../test/support/redis-server.js";
import { gate, outcomes, rejection, serviceRejection } from "./test-helpers.js";

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

/** Resolves after `ms` (set-up only: to let calls reach a state, never to assert one). */
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `calls` and tells, for each, its outcome and when it settled (ms after `t0`). */
async function timed(
  calls: Promise<unknown>[],
  t0: number,
): Promise<{ outcomes: string[]; times: number[]; errors: unknown[] }> {
  const times: number[] = [];
  const errors: unknown[] = [];
  const watched = calls.map((call, i) =>
    call.then(
      (value) => {
        times[i] = Date.now() - t0;
        return value;
      },
      (err: unknown) => {
        times[i] = Date.now() - t0;
        errors[i] = err;
        throw err;
      },
    ),
  );
  return { outcomes: await outcomes(watched), times, errors };
}

/** Resolves once the promise jobs queued now (and those they queue) have run. */
const nextMacrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Whether `command` runs Bottleneck's `register` script (the one that takes a slot: 5 arguments). */
function takesSlot(command: Command): boolean {
  if (command.name !== "evalsha" && command.name !== "eval") return false;
  const keys = Number(command.args[1]);
  return command.args.length - 2 - keys === 5;
}

/**
 * An ioredis client (for the `redis.client` option) that can hold back the next answer granting the
 * limiter a slot: Redis ran the script, so the slot is taken there, but the limiter hears of it only on
 * `release()`. A test can so act while the round trip is in flight, without timing. Refusals pass.
 */
function holdingClient(port: number): {
  readonly client: Redis;
  /** Holds the next answer that grants a slot; resolves once Redis has given it. */
  holdNextSlot(): Promise<void>;
  /** Hands the held answer to the limiter. */
  release(): void;
  /** Resolves once every command sent so far has been answered and what the answers start has run. */
  settle(): Promise<void>;
} {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
  });
  let armed: (() => void) | undefined;
  let held: (() => void) | undefined;
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command, stream) => {
    if (armed !== undefined && takesSlot(command)) {
      const resolve = command.resolve;
      command.resolve = (value: unknown) => {
        const answered = armed;
        // Bottleneck's answer: [1, wait, reservoir] when granted.
        if (answered === undefined || !Array.isArray(value) || value[0] !== 1) {
          resolve(value);
          return;
        }
        armed = undefined;
        held = () => resolve(value);
        answered();
      };
    }
    return send(command, stream);
  };
  return {
    client,
    holdNextSlot: () =>
      new Promise<void>((resolve) => {
        armed = resolve;
      }),
    release: () => {
      if (held === undefined) throw new Error("no answer is held");
      held();
      held = undefined;
    },
    settle: async () => {
      await client.ping();
      await nextMacrotask();
    },
  };
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

  it("close() during a round trip frees the slot a late answer brings in, so other processes are not held off until slotTimeout", async () => {
    const own = await startRedis();
    try {
      const name = unique("closefree");
      const options = { name, limit: 100, interval: 60_000, maxConcurrent: 1, slotTimeout: 20_000 };
      const a = limiter({ ...options, mode: "delay" as const, redis: { timeout: 2_000 } }, own.port);
      const b = limiter({ ...options, mode: "error" as const }, own.port);
      const { endpoint, ran } = recorder();
      await expect(a.middleware(endpoint)(background, 0)).resolves.toBe(0);
      await expect(b.middleware(endpoint)(background, 1)).resolves.toBe(1);
      own.pause(); // A's next round trip stays pending
      const pending = a
        .middleware(endpoint)(background, 2)
        .then(
          () => "ran",
          (err: unknown) => (err as ServiceError).message,
        );
      await new Promise((resolve) => setTimeout(resolve, 100));
      const closed = a.close();
      own.resume(); // the slot is granted late, to a call that will not run
      await closed;
      expect(await pending).toBe(`rate limiter "${name}" is closed`);
      // Freed before A's connection closed: B (another process) gets the one slot at once.
      await expect(b.middleware(endpoint)(background, 3)).resolves.toBe(3);
      expect(ran).toEqual([0, 1, 3]);
    } finally {
      await own.stop();
    }
  });

  describe("delaying mode: maxQueue counts only calls over the limit", () => {
    it("admits concurrent calls within the limit, however small maxQueue is", async () => {
      const { endpoint, ran } = recorder();
      const e = limiter({
        name: unique("within"),
        limit: 100,
        interval: 1_000,
        mode: "delay",
        maxQueue: 2,
      }).middleware(endpoint);
      await e(background, 0);
      const ctx = createContext({ timeout: 5_000 });
      const calls = Array.from({ length: 10 }, (_, i) => e(ctx, i + 1));
      expect(await outcomes(calls)).toEqual(Array(10).fill("ok"));
      expect(ran.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

      const none = limiter({
        name: unique("within0"),
        limit: 100,
        interval: 1_000,
        mode: "delay",
        maxQueue: 0,
      }).middleware(endpoint);
      expect(await outcomes([none(ctx, 11), none(ctx, 12)])).toEqual(["ok", "ok"]);
    });

    it("with maxQueue 0 refuses a call only once Redis says the window is full, with the retry hint", async () => {
      const seen: RejectInfo[] = [];
      const name = unique("queue0");
      const e = limiter({
        name,
        limit: 2,
        interval: 10_000,
        mode: "delay",
        maxQueue: 0,
        onReject: (info) => seen.push(info),
      }).middleware(async (_ctx, n: number) => n);
      const ctx = createContext({ timeout: 5_000 });
      const settled = await Promise.allSettled([e(ctx, 1), e(ctx, 2), e(ctx, 3)]);
      expect(settled.slice(0, 2).map((r) => r.status)).toEqual(["fulfilled", "fulfilled"]);
      const third = settled[2];
      if (third?.status !== "rejected") throw new Error("expected the third call to be refused");
      const err = third.reason as ServiceError;
      expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
      expect(err.message).toMatch(
        new RegExp(
          `^rate limit "${name}" exceeded: 0 calls are already waiting for a slot, retry in [0-9.]+ s$`,
        ),
      );
      // The window's end as Bottleneck's script clock has it, which may run up to 0.99 s ahead.
      expect(err.metadata.get("retry-after")).toMatch(/^1[01]$/);
      expect(seen.map((r) => r.reason)).toEqual(["queue"]);
    });

    it("lets maxQueue calls over the limit wait in arrival order; the next are refused with the retry hint", async () => {
      const { endpoint, ran } = recorder();
      // Windows longer than the 0.99 s Bottleneck's script clock may jump ahead: no call is admitted early.
      const e = limiter({
        name: unique("queue2"),
        limit: 1,
        interval: 1_200,
        mode: "delay",
        maxQueue: 2,
      }).middleware(endpoint);
      await e(background, 0);
      const ctx = createContext({ timeout: 10_000 });
      const settled = await Promise.allSettled([1, 2, 3, 4].map((n) => e(ctx, n)));
      expect(ran).toEqual([0, 1, 2]);
      for (const refused of settled.slice(2)) {
        if (refused.status !== "rejected") throw new Error("expected calls 3 and 4 to be refused");
        const err = refused.reason as ServiceError;
        expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
        expect(err.message).toContain("2 calls are already waiting for a slot, retry in ");
        expect(err.metadata.get("retry-after")).toMatch(/^[12]$/);
      }
    });
  });

  describe("delaying mode with Redis hung (connection up, no answers)", () => {
    it.each(["closed", "open"] as const)(
      "applies failMode %s to concurrent calls within one timeout, not one timeout per call ahead",
      async (failMode) => {
        const own = await startRedis();
        try {
          const timeout = 300;
          const name = unique("hung");
          const { endpoint, ran } = recorder();
          const e = limiter(
            { name, limit: 100, interval: 60_000, mode: "delay", redis: { failMode, timeout } },
            own.port,
          ).middleware(endpoint);
          await e(background, 0);
          own.pause();
          try {
            const ctx = createContext({ timeout: 2_000 });
            const t0 = Date.now();
            const { outcomes: got, times } = await timed(
              [1, 2, 3, 4, 5, 6].map((n) => e(ctx, n)),
              t0,
            );
            expect(got).toEqual(Array(6).fill(failMode === "open" ? "ok" : "UNAVAILABLE"));
            // Old: settled one timeout apart (300, 600, ... ms): the calls behind hit the deadline.
            expect(Math.max(...times)).toBeLessThan(timeout + 250);
            expect(ran.length).toBe(failMode === "open" ? 7 : 1);
          } finally {
            own.resume();
          }
        } finally {
          await Promise.all(made.splice(0).map((l) => l.close()));
          await own.stop();
        }
      },
    );

    it.each(["closed", "open"] as const)(
      "applies failMode %s to every call waiting in the key's queue at once; calls coming after try afresh",
      async (failMode) => {
        const own = await startRedis();
        try {
          const timeout = 300;
          const name = unique("hung-queue");
          const { endpoint, ran } = recorder();
          const e = limiter(
            // The window outlasts the set-up even by Bottleneck's script clock (up to 0.99 s ahead).
            { name, limit: 1, interval: 2_000, mode: "delay", redis: { failMode, timeout } },
            own.port,
          ).middleware(endpoint);
          await e(background, 0);
          const ctx = createContext({ timeout: 60_000 });
          const t0 = Date.now();
          const calls = [1, 2, 3, 4, 5].map((n) => e(ctx, n));
          await pause(100); // Redis refuses them (the window is used up): they wait for its end
          own.pause();
          const pausedAt = Date.now() - t0;
          try {
            const { outcomes: got, times, errors } = await timed(calls, t0);
            expect(got).toEqual(Array(5).fill(failMode === "open" ? "ok" : "UNAVAILABLE"));
            // The first waiting call's try at the window's end times out, and all follow it at once
            // (old: one more timeout per call ahead, 300 ms apart).
            expect(Math.max(...times) - Math.min(...times)).toBeLessThan(100);
            expect(Math.min(...times)).toBeGreaterThanOrEqual(pausedAt + timeout);
            if (failMode === "closed") {
              for (const err of errors) {
                expect((err as ServiceError).message).toBe(
                  `rate limiter "${name}" is unavailable: the Redis call failed: Redis did not answer within ${timeout} ms`,
                );
              }
            }
            expect(ran).toEqual(failMode === "open" ? [0, 1, 2, 3, 4, 5] : [0]);

            // A call coming right after makes its own try, which times out in turn.
            const t1 = Date.now();
            const after = await timed([e(ctx, 6)], t1);
            expect(after.outcomes).toEqual([failMode === "open" ? "ok" : "UNAVAILABLE"]);
            expect(after.times[0]).toBeGreaterThanOrEqual(timeout - 10);
            expect(after.times[0]).toBeLessThan(timeout + 250);
          } finally {
            own.resume();
          }
        } finally {
          await Promise.all(made.splice(0).map((l) => l.close()));
          await own.stop();
        }
      },
    );
  });

  describe("a slot Redis grants to a call that left during its round trip", () => {
    const settingsOf = (name: string): string => `b_svckit:${name}:_settings`;

    /** A delaying limiter on a holding client, and a call whose slot request is held, then cancelled. */
    async function leftDuringRoundTrip(options: Omit<RateLimiterOptions<number>, "redis" | "mode">) {
      const held = holdingClient(redis.port);
      const { endpoint, ran } = recorder();
      const l = createRateLimiter<number>({ ...options, mode: "delay", redis: { client: held.client } });
      made.push(l as RateLimiter<never>);
      const e = l.middleware(endpoint);
      await expect(e(background, 0)).resolves.toBe(0);
      const granted = held.holdNextSlot();
      const leaving = createCancelableContext();
      const left = e(leaving.context, 1);
      await granted; // Redis took a slot for call 1; the limiter does not know yet
      return { held, e, ran, leaving, left };
    }

    it("goes back to its window in Redis when no call of the key waits here, so a later call gets it", async () => {
      const name = unique("left-back");
      const { held, e, ran, leaving, left } = await leftDuringRoundTrip({ name, limit: 2, interval: 60_000 });
      try {
        leaving.cancel();
        expect((await serviceRejection(left)).code).toBe(Code.CANCELLED);
        held.release();
        await held.settle();
        // Old: the slot stayed used until the window ended (in 60 s), so this call was refused at
        // once with DEADLINE_EXCEEDED ("no slot before the call's deadline").
        await expect(e(createContext({ timeout: 2_000 }), 2)).resolves.toBe(2);
        // The window admitted its 2 calls: the next waits for the next window, past its deadline.
        expect((await serviceRejection(e(createContext({ timeout: 2_000 }), 3))).code).toBe(
          Code.DEADLINE_EXCEEDED,
        );
        expect(ran).toEqual([0, 2]);
        expect(await admin.hget(settingsOf(name), "reservoir")).toBe("0");
      } finally {
        await Promise.all(made.splice(0).map((l) => l.close()));
        await held.client.quit();
      }
    });

    it("goes to the key's first waiting call (arrival order) at once, not back to Redis", async () => {
      const name = unique("left-on");
      const { held, e, ran, leaving, left } = await leftDuringRoundTrip({ name, limit: 2, interval: 60_000 });
      try {
        // Calls 2 and 3 come while call 1's round trip is in flight: Redis refuses them (the window
        // is used up), so they wait in the key's queue, in arrival order.
        const waiting = [createCancelableContext(), createCancelableContext()];
        const second = e(waiting[0]?.context ?? background, 2);
        const third = e(waiting[1]?.context ?? background, 3);
        // Handled here too: should the test fail first, closing the limiter fails them.
        void Promise.allSettled([second, third]);
        await held.settle(); // Redis refused both
        await held.settle(); // and said when the window ends: both wait
        leaving.cancel();
        expect((await serviceRejection(left)).code).toBe(Code.CANCELLED);
        held.release();
        await nextMacrotask();
        // Old: call 2 waited for the next window (60 s) while the slot stayed unused.
        expect(ran).toEqual([0, 2]);
        await expect(second).resolves.toBe(2);
        waiting[1]?.cancel();
        expect((await serviceRejection(third)).code).toBe(Code.CANCELLED);
        expect(ran).toEqual([0, 2]);
        // Handed on here, not given back and taken again.
        expect(await admin.hget(settingsOf(name), "reservoir")).toBe("0");
      } finally {
        await Promise.all(made.splice(0).map((l) => l.close()));
        await held.client.quit();
      }
    });

    it("with maxConcurrent, frees the held slot and gives its window slot back when no call waits here", async () => {
      const name = unique("left-running");
      const options = { name, limit: 100, interval: 60_000, maxConcurrent: 1 };
      const { held, ran, leaving, left } = await leftDuringRoundTrip(options);
      try {
        const other = limiter<number>({ ...options, mode: "error" }).middleware(async (_ctx, n: number) => n);
        leaving.cancel();
        expect((await serviceRejection(left)).code).toBe(Code.CANCELLED);
        held.release();
        await held.settle();
        expect(ran).toEqual([0]);
        expect(await admin.hget(settingsOf(name), "running")).toBe("0");
        // Only call 0 counts in the window (old: 98, call 1's slot too).
        expect(await admin.hget(settingsOf(name), "reservoir")).toBe("99");
        // Another process gets the one running slot at once.
        await expect(other(background, 2)).resolves.toBe(2);
      } finally {
        await Promise.all(made.splice(0).map((l) => l.close()));
        await held.client.quit();
      }
    });

    it("obtained by the pump for a queue emptied meanwhile goes back to Redis (window and running slot)", async () => {
      const held = holdingClient(redis.port);
      try {
        const name = unique("left-pump");
        const g = gate<number>();
        const l = createRateLimiter<number>({
          name,
          limit: 5,
          interval: 60_000,
          maxConcurrent: 1,
          mode: "delay",
          redis: { client: held.client },
        });
        made.push(l as RateLimiter<never>);
        const e = l.middleware(g.endpoint);
        const first = e(background, 0);
        await until(() => g.started.length === 1, 2_000, "call 0 to run");
        const leaving = createCancelableContext();
        const left = e(leaving.context, 1);
        await held.settle(); // Redis refused call 1 (call 0 runs)
        await held.settle(); // and it waits in the queue, for which the pump asks
        const granted = held.holdNextSlot();
        g.finish();
        await first;
        await granted; // the pump got call 1 a slot; the limiter does not know yet
        leaving.cancel();
        expect((await serviceRejection(left)).code).toBe(Code.CANCELLED);
        held.release();
        await held.settle();
        expect(g.started).toEqual([0]);
        expect(await admin.hget(settingsOf(name), "running")).toBe("0");
        // Only call 0 counts in the window (old: 3, the pump's slot too).
        expect(await admin.hget(settingsOf(name), "reservoir")).toBe("4");
      } finally {
        await Promise.all(made.splice(0).map((l) => l.close()));
        await held.client.quit();
      }
    });
  });

  it("never refuses a delayed call by the window's end when Redis could not say when it ends", async () => {
    const client = new Redis({
      host: "127.0.0.1",
      port: redis.port,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
    });
    // Reading the window fails; taking slots (Bottleneck's scripts) works.
    client.hmget = (() => Promise.reject(new Error("HMGET failed (test)"))) as unknown as Redis["hmget"];
    try {
      const seen: RejectInfo[] = [];
      const l = createRateLimiter<number>({
        name: unique("no-end"),
        limit: 1,
        interval: 10_000,
        mode: "delay",
        onReject: (info) => seen.push(info),
        redis: { client },
      });
      made.push(l as RateLimiter<never>);
      const e = l.middleware(async (_ctx, n: number) => n);
      await expect(e(background, 0)).resolves.toBe(0);
      // Old: the window's end was taken to be 50 ms away, so the first call was refused at once with
      // "no slot before the call's deadline (next in 0.05 s)" and the second, one window later, too.
      const first = createContext({ timeout: 120 });
      const second = createContext({ timeout: 240 });
      const [a, b] = await Promise.all([rejection(e(first, 1)), rejection(e(second, 2))]);
      // They waited until their deadlines passed: the context's own reason, not the limiter's refusal.
      expect(a).toBe(first.abortReason);
      expect(b).toBe(second.abortReason);
      expect(seen.map((r) => r.reason)).toEqual(["deadline", "deadline"]);
    } finally {
      await Promise.all(made.splice(0).map((l) => l.close()));
      await client.quit();
    }
  });
});
