/**
 * Circuit breaking for svckit endpoints, on opossum: a middleware that stops calling a failing dependency
 * for a while, fails fast with UNAVAILABLE (or answers from a fallback) meanwhile, and lets one trial call
 * through to see whether it recovered. Client faults and cancelled calls do not trip it. The breaker's
 * `{ name, state, subscribe }` lets metrics observe it without knowing opossum.
 *
 * @packageDocumentation
 */

export type {
  CircuitBreaker,
  CircuitBreakerOptions,
  CircuitBreakerStats,
  CircuitState,
  CircuitStateListener,
} from "./circuit-breaker.js";
export { circuitBreaker, createCircuitBreaker, defaultIsFailure } from "./circuit-breaker.js";
