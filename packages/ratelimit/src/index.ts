/**
 * Rate limiting middleware for svckit endpoints, on Bottleneck. An erroring limiter fails calls over
 * the limit at once with RESOURCE_EXHAUSTED (HTTP 429) and a retry hint; a delaying limiter makes them
 * wait for a slot within their deadline. Limits are `limit` calls per `interval` ms in fixed windows
 * and/or `maxConcurrent` calls at once, per key (client, route, ...) with bounded memory, in-process
 * or shared by many processes through Redis (Bottleneck clustering) with a chosen fail-open or
 * fail-closed behaviour when Redis is down.
 *
 * @packageDocumentation
 */

export { RETRY_INFO_TYPE } from "./errors.js";
export { MAX_KEY_LENGTH } from "./key-map.js";
export { metadataKey, routeKey } from "./keys.js";
export type {
  RateLimiterOptions,
  RedisClientLike,
  RedisRateLimitOptions,
  RejectInfo,
  RejectReason,
} from "./options.js";
export type { LocalRateLimiterOptions, RateLimiter, RateLimitMiddleware } from "./rate-limiter.js";
export { createRateLimiter, delayingLimiter, erroringLimiter } from "./rate-limiter.js";
