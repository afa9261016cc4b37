import type { Context, Endpoint } from "@svckit/endpoint";
import { normalizeKey } from "./key-map.js";
import { type KeyOf, type LimiterCore, LocalLimiter, type Reporter } from "./local-limiter.js";
import { type RateLimiterOptions, resolveRedisSettings, resolveSettings } from "./options.js";
import { RedisLimiter } from "./redis-limiter.js";

/**
 * The middleware of a rate limiter. It fits any endpoint whose request type is `Req` or narrower; with
 * `Req = unknown` (no typed key function) it is a `GenericMiddleware` and fits every endpoint.
 */
export type RateLimitMiddleware<Req = unknown> = <R extends Req, Res>(
  next: Endpoint<R, Res>,
) => Endpoint<R, Res>;

/** A rate limiter made by {@link createRateLimiter}: its middleware and a way to shut it down. */
export interface RateLimiter<Req = unknown> {
  /** Put it in front of the endpoints that share this limit (each key counts across all of them). */
  readonly middleware: RateLimitMiddleware<Req>;
  /** How many keys this process tracks now (at most `maxKeys`). */
  readonly size: number;
  /**
   * Stops the limiter: waiting calls fail with UNAVAILABLE, later calls too, timers stop, and in
   * Redis mode the connections it opened are closed (yours are left open). In Redis mode a call whose
   * round trip is still pending fails with UNAVAILABLE too, when it returns, and never runs; the
   * connections it opened are closed once such round trips have answered (waiting, with the final
   * QUIT, at most `redis.timeout`), so a slot granted late is freed in Redis, not held there until
   * `slotTimeout`. Calls already running go on.
   */
  close(): Promise<void>;
}

/** The options of {@link erroringLimiter} and {@link delayingLimiter}: in-process only. */
export type LocalRateLimiterOptions<Req = unknown> = Omit<RateLimiterOptions<Req>, "mode" | "redis">;

const ignore = (): void => {};

/**
 * Creates a rate limiter: at most `limit` calls per `interval` ms and/or `maxConcurrent` calls at once,
 * per key. Over the limit a call fails at once with RESOURCE_EXHAUSTED (HTTP 429) carrying a retry
 * hint (`mode: "error"`), or waits for a slot within its deadline (`mode: "delay"`). With `redis` the
 * limit is shared by every process using the same `name`, through Bottleneck's Redis clustering.
 *
 * @example
 * ```ts
 * const perClient = createRateLimiter({
 *   name: "api",
 *   limit: 100,
 *   interval: 60_000,
 *   key: metadataKey("x-api-key"),
 *   onReject: ({ name, reason }) => rejected.inc({ name, reason }),
 * });
 * const endpoint = chain(perClient.middleware, timeout(1_000))(search);
 * // on shutdown: await perClient.close();
 * ```
 */
export function createRateLimiter<Req = unknown>(options: RateLimiterOptions<Req>): RateLimiter<Req> {
  const where = "createRateLimiter";
  const settings = resolveSettings(options, where);
  const userKey = options.key;
  const keyOf: KeyOf<Req> | undefined =
    userKey === undefined
      ? undefined
      : function rateLimitKey(ctx: Context, request: Req): string {
          return normalizeKey(userKey(ctx, request));
        };
  const onReject = options.onReject;
  const name = settings.name;
  const report: Reporter =
    onReject === undefined
      ? ignore
      : function reportRejection(key, reason) {
          try {
            onReject({ name, key, reason });
          } catch {
            // A metrics callback must not change the answer the caller gets.
          }
        };
  const core: LimiterCore<Req> =
    options.redis === undefined
      ? new LocalLimiter<Req>(settings, keyOf, report)
      : new RedisLimiter<Req>(
          settings,
          resolveRedisSettings(options.redis, where),
          options.redis,
          keyOf,
          report,
          where,
        );
  const middleware: RateLimitMiddleware<Req> = function rateLimitMiddleware<R extends Req, Res>(
    next: Endpoint<R, Res>,
  ): Endpoint<R, Res> {
    return core.wrap(next);
  };
  return Object.freeze({
    middleware,
    get size(): number {
      return core.size;
    },
    close: (): Promise<void> => core.close(),
  });
}

function localOnly<Req>(
  options: LocalRateLimiterOptions<Req>,
  mode: "error" | "delay",
  where: string,
): RateLimiterOptions<Req> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${where}: options must be an object`);
  }
  if ("redis" in options && (options as RateLimiterOptions<Req>).redis !== undefined) {
    throw new TypeError(`${where}: for Redis mode use createRateLimiter, whose close() ends the connection`);
  }
  return { ...options, mode };
}

/**
 * An in-process limiter that fails calls over the limit at once with RESOURCE_EXHAUSTED (go-kit's
 * erroring limiter). Shorthand for `createRateLimiter({ ...options, mode: "error" }).middleware`; it
 * holds no timers, so it needs no closing.
 *
 * @example
 * ```ts
 * const limited = erroringLimiter({ limit: 10, interval: 1_000 })(uppercase);
 * ```
 */
export function erroringLimiter<Req = unknown>(
  options: LocalRateLimiterOptions<Req>,
): RateLimitMiddleware<Req> {
  return createRateLimiter(localOnly(options, "error", "erroringLimiter")).middleware;
}

/**
 * An in-process limiter that makes calls over the limit wait for a slot, in order, failing early with
 * DEADLINE_EXCEEDED when no slot comes before the call's deadline and with the context's reason when it
 * is cancelled (go-kit's delaying limiter). Shorthand for
 * `createRateLimiter({ ...options, mode: "delay" }).middleware`.
 *
 * @example
 * ```ts
 * const paced = delayingLimiter({ limit: 5, interval: 1_000 })(callPartnerApi);
 * ```
 */
export function delayingLimiter<Req = unknown>(
  options: LocalRateLimiterOptions<Req>,
): RateLimitMiddleware<Req> {
  return createRateLimiter(localOnly(options, "delay", "delayingLimiter")).middleware;
}
