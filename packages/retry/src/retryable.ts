import { Code, ServiceError } from "@svckit/endpoint";

/** Options of {@link isRetryable}. */
export interface RetryableOptions {
  /** Retry RESOURCE_EXHAUSTED (a rate limit that may pass). Default `false`: quotas rarely pass soon. */
  retryResourceExhausted?: boolean;
  /**
   * Whether the failure was the attempt's own time limit (`perAttemptTimeout`), which makes
   * DEADLINE_EXCEEDED retryable. The retry middleware works it out; default `false`.
   */
  attemptTimedOut?: boolean;
}

/**
 * Decides whether a failed attempt may be retried. Called with the failure as a {@link ServiceError}
 * (anything else thrown arrives as INTERNAL, see `ServiceError.from`), the number of the attempt
 * that failed (1 for the first), and whether that attempt ran out of its own `perAttemptTimeout`.
 * Never called when the caller cancelled or its deadline passed: those always stop.
 */
export type RetryPredicate = (error: ServiceError, attempt: number, attemptTimedOut: boolean) => boolean;

/**
 * The default retry predicate, after gRPC's retry policy: UNAVAILABLE is retryable (the request
 * did not get through or the server is going away); DEADLINE_EXCEEDED only when it was the attempt's
 * own time limit (`attemptTimedOut`), never the caller's deadline; RESOURCE_EXHAUSTED only with
 * `retryResourceExhausted`. Everything else — including anything that is not a {@link ServiceError},
 * which becomes INTERNAL — is final.
 *
 * @example
 * ```ts
 * isRetryable(new ServiceError(Code.UNAVAILABLE)); // true
 * isRetryable(new ServiceError(Code.DEADLINE_EXCEEDED)); // false: the caller's own deadline
 * isRetryable(new ServiceError(Code.DEADLINE_EXCEEDED), { attemptTimedOut: true }); // true
 * isRetryable(new Error("bug")); // false
 * ```
 */
export function isRetryable(error: unknown, options?: RetryableOptions): boolean {
  if (!(error instanceof ServiceError)) return false;
  switch (error.code) {
    case Code.UNAVAILABLE:
      return true;
    case Code.DEADLINE_EXCEEDED:
      return options?.attemptTimedOut === true;
    case Code.RESOURCE_EXHAUSTED:
      return options?.retryResourceExhausted === true;
    default:
      return false;
  }
}

/** The predicate a middleware uses: the user's, or {@link isRetryable} with the given option. */
export function resolvePredicate(
  retryOn: RetryPredicate | undefined,
  retryResourceExhausted: boolean | undefined,
  who: string,
): RetryPredicate {
  if (retryOn !== undefined) {
    if (typeof retryOn !== "function") {
      throw new TypeError(`${who}: retryOn must be a function, got ${typeof retryOn}`);
    }
    return retryOn;
  }
  const onExhausted = retryResourceExhausted === true;
  return function defaultRetryOn(error, _attempt, attemptTimedOut) {
    switch (error.code) {
      case Code.UNAVAILABLE:
        return true;
      case Code.DEADLINE_EXCEEDED:
        return attemptTimedOut;
      case Code.RESOURCE_EXHAUSTED:
        return onExhausted;
      default:
        return false;
    }
  };
}
