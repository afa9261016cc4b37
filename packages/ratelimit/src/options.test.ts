import { background, createContext, MAX_TIMER_MS } from "@svckit/endpoint";
import {
  createRateLimiter,
  delayingLimiter,
  erroringLimiter,
  MAX_KEY_LENGTH,
  metadataKey,
  type RateLimiterOptions,
  type RedisRateLimitOptions,
  routeKey,
} from "@svckit/ratelimit";
import type { Cluster, Redis } from "ioredis";
import { describe, expect, it } from "vitest";

describe("createRateLimiter options", () => {
  const bad: [string, unknown, ErrorConstructor, string][] = [
    ["no options", undefined, TypeError, "createRateLimiter: options must be an object"],
    ["no limit at all", {}, TypeError, "createRateLimiter: give limit and interval, maxConcurrent, or both"],
    [
      "limit without interval",
      { limit: 1 },
      TypeError,
      "createRateLimiter: limit and interval go together; give both or neither",
    ],
    [
      "interval without limit",
      { interval: 1 },
      TypeError,
      "createRateLimiter: limit and interval go together; give both or neither",
    ],
    [
      "zero limit",
      { limit: 0, interval: 1 },
      RangeError,
      "createRateLimiter: limit must be a positive integer, got 0",
    ],
    [
      "fractional limit",
      { limit: 1.5, interval: 1 },
      RangeError,
      "createRateLimiter: limit must be a positive integer, got 1.5",
    ],
    [
      "string limit",
      { limit: "5", interval: 1 },
      RangeError,
      "createRateLimiter: limit must be a positive integer, got 5",
    ],
    [
      "infinite interval",
      { limit: 1, interval: Number.POSITIVE_INFINITY },
      RangeError,
      "createRateLimiter: interval must be a positive integer, got Infinity",
    ],
    [
      "negative interval",
      { limit: 1, interval: -5 },
      RangeError,
      "createRateLimiter: interval must be a positive integer, got -5",
    ],
    [
      "NaN maxConcurrent",
      { maxConcurrent: Number.NaN },
      RangeError,
      "createRateLimiter: maxConcurrent must be a positive integer, got NaN",
    ],
    [
      "unknown mode",
      { maxConcurrent: 1, mode: "queue" },
      TypeError,
      'createRateLimiter: mode must be "error" or "delay", got queue',
    ],
    [
      "empty name",
      { maxConcurrent: 1, name: "" },
      TypeError,
      "createRateLimiter: name must be a non-empty string",
    ],
    [
      "key not a function",
      { maxConcurrent: 1, key: "x-user" },
      TypeError,
      "createRateLimiter: key must be a function",
    ],
    [
      "onReject not a function",
      { maxConcurrent: 1, onReject: 1 },
      TypeError,
      "createRateLimiter: onReject must be a function",
    ],
    [
      "zero maxKeys",
      { maxConcurrent: 1, maxKeys: 0 },
      RangeError,
      "createRateLimiter: maxKeys must be a positive integer, got 0",
    ],
    [
      "idleTimeout below interval",
      { limit: 1, interval: 1_000, idleTimeout: 999 },
      RangeError,
      "createRateLimiter: idleTimeout (999 ms) must be at least interval (1000 ms)",
    ],
    [
      "negative maxQueue",
      { maxConcurrent: 1, maxQueue: -1 },
      RangeError,
      "createRateLimiter: maxQueue must be a non-negative integer, got -1",
    ],
    [
      "redis not an object",
      { maxConcurrent: 1, redis: 1 },
      TypeError,
      "createRateLimiter: redis must be an object",
    ],
    [
      "two Redis sources",
      { maxConcurrent: 1, redis: { clientOptions: {}, client: { status: "ready", duplicate() {} } } },
      TypeError,
      "createRateLimiter: give at most one of redis.client, redis.connection, redis.clientOptions",
    ],
    [
      "unknown failMode",
      { maxConcurrent: 1, redis: { failMode: "half" } },
      TypeError,
      'createRateLimiter: redis.failMode must be "open" or "closed", got half',
    ],
    [
      "zero Redis timeout",
      { maxConcurrent: 1, redis: { timeout: 0 } },
      RangeError,
      "createRateLimiter: redis.timeout must be a positive integer, got 0",
    ],
    [
      "Redis timeout longer than setTimeout can wait (it would fire after 1 ms)",
      { maxConcurrent: 1, redis: { timeout: 2 ** 31 } },
      RangeError,
      "createRateLimiter: redis.timeout must be at most 2147483647 ms, got 2147483648",
    ],
    [
      "zero slotTimeout",
      { maxConcurrent: 1, redis: { slotTimeout: 0 } },
      RangeError,
      "createRateLimiter: redis.slotTimeout must be a positive integer, got 0",
    ],
    [
      "onError not a function",
      { maxConcurrent: 1, redis: { onError: "log" } },
      TypeError,
      "createRateLimiter: redis.onError must be a function",
    ],
  ];

  it.each(bad)("rejects %s", (_label, options, type, message) => {
    const make = (): unknown => createRateLimiter(options as RateLimiterOptions);
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });

  it("accepts a window limit, a concurrency limit, or both", () => {
    expect(createRateLimiter({ limit: 1, interval: 1 }).size).toBe(1);
    expect(createRateLimiter({ maxConcurrent: 1 }).size).toBe(1);
    expect(
      createRateLimiter({ limit: 1, interval: 1, maxConcurrent: 1, mode: "delay", maxQueue: 0 }).size,
    ).toBe(1);
  });

  it("accepts a Redis timeout of MAX_TIMER_MS, the longest setTimeout keeps", async () => {
    const limiter = createRateLimiter({
      maxConcurrent: 1,
      redis: { timeout: MAX_TIMER_MS, clientOptions: { lazyConnect: true } },
    });
    await limiter.close();
  });

  it("counts no key before the first call when a key function is given", () => {
    expect(createRateLimiter({ maxConcurrent: 1, key: () => "k" }).size).toBe(0);
  });

  it("takes ioredis clients and clusters as redis.client (checked when compiling)", () => {
    const fromClient = (client: Redis): RedisRateLimitOptions => ({ client });
    const fromCluster = (client: Cluster): RedisRateLimitOptions => ({ client });
    expect([typeof fromClient, typeof fromCluster]).toEqual(["function", "function"]);
  });

  it("returns a frozen limiter object", () => {
    const limiter = createRateLimiter({ maxConcurrent: 1 });
    expect(Object.isFrozen(limiter)).toBe(true);
    expect(typeof limiter.close).toBe("function");
  });
});

describe("erroringLimiter / delayingLimiter", () => {
  it("return named middlewares", () => {
    expect(erroringLimiter({ maxConcurrent: 1 }).name).toBe("rateLimitMiddleware");
    expect(delayingLimiter({ maxConcurrent: 1 }).name).toBe("rateLimitMiddleware");
  });

  it("refuse Redis options, which need createRateLimiter's close()", () => {
    const options = { maxConcurrent: 1, redis: {} } as RateLimiterOptions;
    expect(() => erroringLimiter(options)).toThrow(
      "erroringLimiter: for Redis mode use createRateLimiter, whose close() ends the connection",
    );
    expect(() => delayingLimiter(options)).toThrow(
      "delayingLimiter: for Redis mode use createRateLimiter, whose close() ends the connection",
    );
  });

  it("check their options like createRateLimiter, naming themselves", () => {
    expect(() => erroringLimiter(null as unknown as RateLimiterOptions)).toThrow(
      "erroringLimiter: options must be an object",
    );
    expect(() => delayingLimiter({ limit: 0, interval: 1 })).toThrow(
      "createRateLimiter: limit must be a positive integer, got 0",
    );
  });
});

describe("key helpers", () => {
  it("metadataKey reads one metadata entry, any case, with a fallback", () => {
    const key = metadataKey("X-Api-Key", "anonymous");
    expect(key.name).toBe("keyFromMetadata");
    expect(key(createContext({ metadata: { "x-api-key": "k1" } }))).toBe("k1");
    expect(key(createContext({ metadata: { "X-API-KEY": "k2" } }))).toBe("k2");
    expect(key(background)).toBe("anonymous");
    expect(metadataKey("x-api-key")(background)).toBe("");
    expect(() => metadataKey("")).toThrow("metadataKey: name must be a non-empty string");
  });

  it("routeKey is empty without call information", () => {
    expect(routeKey(background)).toBe("");
  });

  it("hashes keys above MAX_KEY_LENGTH characters", () => {
    expect(MAX_KEY_LENGTH).toBe(200);
  });
});
