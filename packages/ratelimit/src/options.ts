import { type Context, MAX_TIMER_MS } from "@svckit/endpoint";
import type Bottleneck from "bottleneck";

/** Why a limiter turned a call away; passed to {@link RateLimiterOptions.onReject}. */
export type RejectReason =
  /** The key used up its `limit` calls of the current window. */
  | "limit"
  /** The key already runs `maxConcurrent` calls. */
  | "concurrency"
  /** Delaying mode: `maxQueue` calls of the key are already waiting. */
  | "queue"
  /** Delaying mode: no slot frees up before the call's deadline, or the deadline passed while waiting. */
  | "deadline"
  /** Delaying mode: the caller cancelled while waiting. */
  | "cancelled"
  /** `maxKeys` keys are tracked and every one of them has calls running or waiting. */
  | "keys"
  /** Redis mode with `failMode: "closed"`: the connection is down, or a Redis call failed or timed out. */
  | "unavailable";

/** What {@link RateLimiterOptions.onReject} is told about a rejected call. */
export interface RejectInfo {
  /** The limiter's `name`. */
  readonly name: string;
  /** The call's key (`""` without a `key` function). */
  readonly key: string;
  /** Why the call was turned away. */
  readonly reason: RejectReason;
}

/**
 * The parts of an ioredis client the limiter uses (an `ioredis` `Redis` or `Cluster` instance fits).
 * Typed structurally so that `ioredis` stays an optional peer dependency.
 */
export interface RedisClientLike {
  /** The client's connection state (`"ready"`, `"reconnecting"`, `"end"`, ...). */
  readonly status: string;
  /** Makes a second connection with the same options (used for Bottleneck's pub/sub subscriber). */
  duplicate(...args: never[]): unknown;
}

/** Options of the Redis (distributed) mode; give at most one of `client`, `connection`, `clientOptions`. */
export interface RedisRateLimitOptions {
  /**
   * ioredis options for a connection the limiter opens (and closes in `close()`), e.g.
   * `{ host: "127.0.0.1", port: 6379 }`. The default when neither `client` nor `connection` is given.
   * `enableOfflineQueue` and `autoResendUnfulfilledCommands` default to `false` here, so that a call
   * that failed during an outage is not counted once Redis is back.
   */
  clientOptions?: Readonly<Record<string, unknown>>;
  /**
   * An ioredis client of yours. The limiter adds one duplicate connection for Bottleneck's pub/sub and
   * closes only that one in `close()`; your client stays open. Consider `enableOfflineQueue: false`
   * and `autoResendUnfulfilledCommands: false` on it (see `clientOptions`).
   */
  client?: RedisClientLike;
  /** A `Bottleneck.IORedisConnection` of yours, shared with other limiters; `close()` leaves it open. */
  connection?: Bottleneck.IORedisConnection;
  /**
   * What a call does when Redis cannot answer within `timeout`, a Redis call fails or the connection
   * is down: `"open"` lets it through unlimited, `"closed"` fails it with UNAVAILABLE ("Redis cannot be
   * reached" when the connection is down, else "the Redis call failed: <its error>"). Default `"open"`.
   * In delaying mode it applies at once to every call waiting for the key whose round trip failed.
   */
  failMode?: "open" | "closed";
  /**
   * How long one Redis round trip may take before `failMode` applies, in ms: a positive integer up to
   * `MAX_TIMER_MS` (2^31 − 1, the longest delay `setTimeout` keeps). Default 500.
   */
  timeout?: number;
  /**
   * With `maxConcurrent`: a slot not released within this many ms is freed by Redis anyway, so a
   * process that dies mid-call does not hold it forever. Default 60 000. A key's state in Redis then
   * lives at least this long after its last admitted call (its TTL is `max(idleTimeout, slotTimeout +
   * 1 s)`, the second being slack for Bottleneck's script clock), so the running count is never
   * forgotten while a slot can still be held.
   */
  slotTimeout?: number;
  /** Told of Redis errors (connection errors, failed scripts, time-outs). Default: ignore them. */
  onError?: (error: unknown) => void;
}

/**
 * Options of {@link createRateLimiter}. Give `limit` and `interval`, `maxConcurrent`, or both.
 *
 * **What "limit per window" means.** Calls are counted in fixed windows per key: a window opens when
 * the limiter is consulted for the key after the previous window closed, lasts `interval` ms, and
 * admits at most `limit` calls. Calls turned away use no slot. Because windows are fixed, up to
 * `2 × limit` calls can pass within one `interval` that straddles two windows.
 */
export interface RateLimiterOptions<Req = unknown> {
  /** Names the limiter in error messages, in `onReject` and in Redis keys. Default `"ratelimit"`. */
  name?: string;
  /** Calls admitted per window and key (a positive integer); needs `interval`. */
  limit?: number;
  /** The window length in ms (a positive integer); needs `limit`. */
  interval?: number;
  /** Calls of one key allowed to run at the same time (a positive integer). */
  maxConcurrent?: number;
  /**
   * `"error"` (default) fails a call over the limit at once with RESOURCE_EXHAUSTED; `"delay"` waits
   * for a slot, within the call's deadline, in arrival order per key (in Redis mode: per key and
   * process).
   */
  mode?: "error" | "delay";
  /**
   * Picks the key a call is counted under, e.g. the client from metadata or the route; each key has its
   * own limit. Without it all calls share one. Keys longer than 200 characters are hashed (SHA-256).
   */
  key?: (ctx: Context, request: Req) => string;
  /**
   * The most keys tracked at once. When full, the least recently used idle key is forgotten (locally its
   * count restarts; in Redis mode the shared count stays in Redis). Default 10 000.
   */
  maxKeys?: number;
  /**
   * A key unused for this many ms is forgotten (it must be at least `interval`, so no open window is
   * lost); a key with calls running or waiting is never forgotten. In Redis mode it is also the TTL of
   * the key's state, renewed by each admitted call (with `maxConcurrent`: `max(idleTimeout,
   * redis.slotTimeout + 1 s)`, so no running call is forgotten). Default `max(60 000, 2 × interval)`.
   */
  idleTimeout?: number;
  /**
   * Delaying mode: how many calls of one key over the limit may wait; more fail with
   * RESOURCE_EXHAUSTED. Calls within the limit never count (with 0 a call over the limit fails at once).
   * Default 1 000.
   */
  maxQueue?: number;
  /** Told of every rejected call (for metrics). Must not throw; what it throws is ignored. */
  onReject?: (info: RejectInfo) => void;
  /** Share the limit across processes through Redis (Bottleneck clustering). */
  redis?: RedisRateLimitOptions;
}

/** The validated options every part of the limiter works from. */
export interface Settings {
  readonly name: string;
  /** `Infinity` without a window limit. */
  readonly limit: number;
  /** 0 without a window limit. */
  readonly interval: number;
  readonly hasWindow: boolean;
  /** `Infinity` without a concurrency limit. */
  readonly maxConcurrent: number;
  readonly hasConcurrency: boolean;
  readonly mode: "error" | "delay";
  readonly maxKeys: number;
  readonly idleTimeout: number;
  readonly maxQueue: number;
}

const DEFAULT_MAX_KEYS = 10_000;
const DEFAULT_MAX_QUEUE = 1_000;
const MIN_IDLE_TIMEOUT = 60_000;

function positiveInteger(where: string, name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${where}: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/** Checks the options and fills in the defaults; throws a TypeError or RangeError naming the bad option. */
export function resolveSettings(options: RateLimiterOptions<never>, where = "createRateLimiter"): Settings {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${where}: options must be an object`);
  }
  const name = options.name ?? "ratelimit";
  if (typeof name !== "string" || name.length === 0) {
    throw new TypeError(`${where}: name must be a non-empty string`);
  }
  if ((options.limit === undefined) !== (options.interval === undefined)) {
    throw new TypeError(`${where}: limit and interval go together; give both or neither`);
  }
  const hasWindow = options.limit !== undefined;
  const limit = hasWindow ? positiveInteger(where, "limit", options.limit) : Number.POSITIVE_INFINITY;
  const interval = hasWindow ? positiveInteger(where, "interval", options.interval) : 0;
  const hasConcurrency = options.maxConcurrent !== undefined;
  const maxConcurrent = hasConcurrency
    ? positiveInteger(where, "maxConcurrent", options.maxConcurrent)
    : Number.POSITIVE_INFINITY;
  if (!hasWindow && !hasConcurrency) {
    throw new TypeError(`${where}: give limit and interval, maxConcurrent, or both`);
  }
  const mode = options.mode ?? "error";
  if (mode !== "error" && mode !== "delay") {
    throw new TypeError(`${where}: mode must be "error" or "delay", got ${String(mode)}`);
  }
  if (options.key !== undefined && typeof options.key !== "function") {
    throw new TypeError(`${where}: key must be a function`);
  }
  if (options.onReject !== undefined && typeof options.onReject !== "function") {
    throw new TypeError(`${where}: onReject must be a function`);
  }
  const maxKeys =
    options.maxKeys === undefined ? DEFAULT_MAX_KEYS : positiveInteger(where, "maxKeys", options.maxKeys);
  const idleTimeout =
    options.idleTimeout === undefined
      ? Math.max(MIN_IDLE_TIMEOUT, 2 * interval)
      : positiveInteger(where, "idleTimeout", options.idleTimeout);
  if (idleTimeout < interval) {
    throw new RangeError(
      `${where}: idleTimeout (${idleTimeout} ms) must be at least interval (${interval} ms)`,
    );
  }
  let maxQueue = DEFAULT_MAX_QUEUE;
  if (options.maxQueue !== undefined) {
    if (!Number.isSafeInteger(options.maxQueue) || options.maxQueue < 0) {
      throw new RangeError(`${where}: maxQueue must be a non-negative integer, got ${options.maxQueue}`);
    }
    maxQueue = options.maxQueue;
  }
  return {
    name,
    limit,
    interval,
    hasWindow,
    maxConcurrent,
    hasConcurrency,
    mode,
    maxKeys,
    idleTimeout,
    maxQueue,
  };
}

/** The validated Redis options. */
export interface RedisSettings {
  readonly failMode: "open" | "closed";
  readonly timeout: number;
  readonly slotTimeout: number;
  readonly onError: (error: unknown) => void;
}

const ignore = (): void => {};

/** Checks the Redis options; throws a TypeError or RangeError naming the bad option. */
export function resolveRedisSettings(
  redis: RedisRateLimitOptions,
  where = "createRateLimiter",
): RedisSettings {
  if (typeof redis !== "object" || redis === null) {
    throw new TypeError(`${where}: redis must be an object`);
  }
  const given = [redis.client, redis.connection, redis.clientOptions].filter((x) => x !== undefined);
  if (given.length > 1) {
    throw new TypeError(`${where}: give at most one of redis.client, redis.connection, redis.clientOptions`);
  }
  const failMode = redis.failMode ?? "open";
  if (failMode !== "open" && failMode !== "closed") {
    throw new TypeError(`${where}: redis.failMode must be "open" or "closed", got ${String(failMode)}`);
  }
  const timeout = redis.timeout === undefined ? 500 : positiveInteger(where, "redis.timeout", redis.timeout);
  // A longer delay would make setTimeout fire after 1 ms: every round trip would "time out" at once.
  if (timeout > MAX_TIMER_MS) {
    throw new RangeError(`${where}: redis.timeout must be at most ${MAX_TIMER_MS} ms, got ${timeout}`);
  }
  const slotTimeout =
    redis.slotTimeout === undefined ? 60_000 : positiveInteger(where, "redis.slotTimeout", redis.slotTimeout);
  if (redis.onError !== undefined && typeof redis.onError !== "function") {
    throw new TypeError(`${where}: redis.onError must be a function`);
  }
  const userOnError = redis.onError;
  // Guarded: a throwing listener would become an unhandled rejection (or, inside Bottleneck's event
  // emitter, re-trigger its "error" event without end).
  const onError =
    userOnError === undefined
      ? ignore
      : (error: unknown): void => {
          try {
            userOnError(error);
          } catch {
            // ignored: reporting must not change what the limiter does
          }
        };
  return { failMode, timeout, slotTimeout, onError };
}
