/**
 * Prometheus metrics for svckit on prom-client (a peer). {@link createMetrics} makes a middleware that
 * counts, times and tracks in-flight calls per endpoint, kind, transport and code, a handler that serves
 * them to Prometheus, and hooks that export circuit breaker states and rate-limit rejections without
 * depending on those packages. Label values are always bounded: names from code, transports, code names.
 *
 * @packageDocumentation
 */

export type {
  BreakerState,
  CallKind,
  Metrics,
  MetricsMiddlewareOptions,
  MetricsOptions,
  MetricsRegistry,
  ObservableBreaker,
  RateLimitRejection,
} from "./metrics.js";
export { createMetrics, defaultBuckets } from "./metrics.js";
