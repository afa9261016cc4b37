/**
 * Retries for svckit endpoints, after gRPC's retry policy and Finagle's retry budgets:
 * {@link retry} retries UNAVAILABLE failures and attempt timeouts with exponential backoff and full
 * jitter, never past the caller's deadline and never after it cancels; {@link createRetryBudget}
 * keeps retries to a share of recent requests so they cannot amplify an outage; {@link hedge} sends
 * a second attempt when the first is slow (after a fixed delay or a latency percentile) and takes
 * the first success. All are plain middleware over `Endpoint` and `Context`: they work on clients
 * and servers of any transport. No runtime dependencies besides the `@svckit/endpoint` peer.
 *
 * @packageDocumentation
 */

export type { BackoffOptions } from "./backoff.js";
export { backoffDelay } from "./backoff.js";
export type { RetryBudget, RetryBudgetOptions, TokenRetryBudget } from "./budget.js";
export { createRetryBudget, unlimitedRetryBudget } from "./budget.js";
export type { HedgeInfo, HedgeOptions, PercentileDelay } from "./hedge.js";
export { hedge } from "./hedge.js";
export type { GiveUpInfo, GiveUpReason, RetryInfo, RetryOptions } from "./retry.js";
export { retry } from "./retry.js";
export type { RetryableOptions, RetryPredicate } from "./retryable.js";
export { isRetryable } from "./retryable.js";
