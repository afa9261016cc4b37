import {
  Code,
  type Context,
  type Endpoint,
  type GenericMiddleware,
  MAX_TIMER_MS,
  type Middleware,
  ServiceError,
} from "@svckit/endpoint";
import { abortReasonOf, deadlinePassed, sleep } from "./abort.js";
import { type BackoffOptions, jitteredDelay, resolveBackoff } from "./backoff.js";
import type { RetryBudget } from "./budget.js";
import { checkBudget, checkFunction, describe } from "./options.js";
import { type RetryPredicate, resolvePredicate } from "./retryable.js";

/** What {@link RetryOptions.onRetry} is told before each retry. */
export interface RetryInfo {
  /** The number of the attempt that failed (1 for the first); the next one is `attempt + 1`. */
  readonly attempt: number;
  /** How long the middleware waits before the next attempt, in ms. */
  readonly delay: number;
  /** Why the attempt failed. */
  readonly error: ServiceError;
}

/**
 * Why the retry middleware stopped with an error that it would otherwise have retried:
 * - `"max-attempts"`: `maxAttempts` were made;
 * - `"deadline"`: the next wait would end at or after the caller's deadline, or the deadline passed;
 * - `"budget"`: the retry budget refused;
 * - `"cancelled"`: the caller cancelled.
 */
export type GiveUpReason = "max-attempts" | "deadline" | "budget" | "cancelled";

/** What {@link RetryOptions.onGiveUp} is told. */
export interface GiveUpInfo {
  /** How many attempts were made (0 when the caller was cancelled or out of time before the first). */
  readonly attempts: number;
  /** Why no further attempt is made. */
  readonly reason: GiveUpReason;
  /** The error the call fails with. */
  readonly error: ServiceError;
}

/** Options of {@link retry}. */
export interface RetryOptions {
  /** The most attempts per call, the first one included (an integer ≥ 1). Default 3. */
  maxAttempts?: number;
  /** The wait between attempts: exponential with full jitter. Default 100 ms doubling up to 10 s. */
  backoff?: BackoffOptions;
  /**
   * A time limit per attempt, in ms (> 0, at most `MAX_TIMER_MS`: 2^31 − 1, 24.8 days). An attempt that
   * exceeds it fails with DEADLINE_EXCEEDED (its context's signal aborts) and is retried; the caller's
   * own deadline still bounds the whole call. Default: none.
   */
  perAttemptTimeout?: number;
  /**
   * Which failures to retry. Default {@link isRetryable}: UNAVAILABLE and attempt timeouts. A predicate
   * that throws fails the call with what it threw.
   */
  retryOn?: RetryPredicate;
  /** With the default `retryOn`, retry RESOURCE_EXHAUSTED too. Default `false`. */
  retryResourceExhausted?: boolean;
  /**
   * Limits retries to a share of recent requests; share one between endpoints. A budget that throws
   * fails the call with what it threw. Default: unlimited.
   */
  budget?: RetryBudget;
  /** The random source of the jitter, returning numbers in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Called before each retry (after the budget allowed it). A hook that throws fails the call. */
  onRetry?: (info: RetryInfo) => void;
  /** Called when the call fails with an error that would have been retried; see {@link GiveUpReason}. */
  onGiveUp?: (info: GiveUpInfo) => void;
}

/**
 * Retries failed calls, like gRPC's retry policy: a failure that `retryOn` accepts (by default
 * UNAVAILABLE, and DEADLINE_EXCEEDED when the attempt ran out of its own `perAttemptTimeout`) is
 * retried after a wait drawn with full jitter from an exponential backoff, up to `maxAttempts`
 * attempts. The caller's context rules over it all:
 * - no attempt starts once the caller is cancelled or its deadline has passed;
 * - a retry whose wait would end at or after the deadline is not made: the last error is returned;
 * - a cancel (or a deadline) during the wait stops at once and clears the timer; a cancel fails the
 *   call with the context's abort reason (CANCELLED, or the ServiceError given to `cancel`).
 * With a `budget`, each call that makes an attempt records a request (one whose caller is already
 * cancelled or out of time does not) and each retry must be allowed by the budget, so
 * retries cannot multiply the load during an outage; when it refuses, the last error is returned.
 * Errors are passed through unchanged (a thrown non-ServiceError counts as INTERNAL: not retried).
 *
 * Retry only idempotent operations. Each attempt gets the caller's context (or, with
 * `perAttemptTimeout`, a child of it with that deadline), so deadlines, cancellation and metadata
 * propagate. Cancellation stays lazy: a caller's cancel during an attempt reaches the endpoint through
 * its signal, and the middleware notices it when the attempt ends (with `perAttemptTimeout`, at the
 * attempt's time limit at the latest, even if the endpoint ignores the signal). A call that succeeds
 * at once costs one budget entry and, with `perAttemptTimeout`, one unref'd timer; no AbortController.
 *
 * @throws RangeError or TypeError (at setup) when an option is invalid.
 *
 * @example
 * ```ts
 * const budget = createRetryBudget({ retryRatio: 0.1 });
 * const client = chain(retry({ maxAttempts: 4, perAttemptTimeout: 500, budget }))(backend);
 * await client(createContext({ timeout: 2_000 }), request);
 * ```
 */
export function retry(options?: RetryOptions): GenericMiddleware;
/** The same, fixed to one request and response type. */
export function retry<Req, Res>(options?: RetryOptions): Middleware<Req, Res>;
export function retry<Req, Res>(options: RetryOptions = {}): Middleware<Req, Res> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`retry: options must be an object, got ${describe(options)}`);
  }
  const maxAttempts = options.maxAttempts ?? 3;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`retry: maxAttempts must be an integer ≥ 1, got ${describe(maxAttempts)}`);
  }
  const timeoutMs = options.perAttemptTimeout;
  if (
    timeoutMs !== undefined &&
    (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs <= 0)
  ) {
    throw new RangeError(
      `retry: perAttemptTimeout must be a finite number of ms > 0, got ${describe(timeoutMs)}`,
    );
  }
  if (timeoutMs !== undefined && timeoutMs > MAX_TIMER_MS) {
    // A longer timer would fire after 1 ms: every attempt would time out at once.
    throw new RangeError(
      `retry: perAttemptTimeout must be at most ${MAX_TIMER_MS} ms (24.8 days), got ${timeoutMs}`,
    );
  }
  const backoff = resolveBackoff(options.backoff, "retry");
  const retryOn = resolvePredicate(options.retryOn, options.retryResourceExhausted, "retry");
  const budget = checkBudget(options.budget, "retry");
  const random = checkFunction(options.random, "random", "retry") ?? Math.random;
  const onRetry = checkFunction(options.onRetry, "onRetry", "retry");
  const onGiveUp = checkFunction(options.onGiveUp, "onGiveUp", "retry");

  /** The error to fail with once the caller is cancelled or out of time, reported to onGiveUp. */
  function stopped(
    ctx: Context,
    attempts: number,
    last: unknown,
    lastError: ServiceError | undefined,
  ): unknown {
    const passed = deadlinePassed(ctx);
    // Out of time: the last attempt's error says more than "deadline exceeded". Cancelled: say so.
    const useLast = passed && lastError !== undefined;
    const error = useLast ? lastError : abortReasonOf(ctx);
    onGiveUp?.({ attempts, reason: passed ? "deadline" : "cancelled", error });
    return useLast ? last : error;
  }

  return function retryMiddleware(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return async function retryEndpoint(ctx: Context, request: Req): Promise<Res> {
      if (ctx.aborted) throw stopped(ctx, 0, undefined, undefined);
      // Only a call that makes an attempt counts: one refused at the door earns no retries.
      budget?.recordRequest();
      let last: unknown;
      let lastError: ServiceError | undefined;
      for (let attempt = 1; ; attempt++) {
        if (ctx.aborted) throw stopped(ctx, attempt - 1, last, lastError);
        const outcome: AttemptOutcome = { expired: false };
        try {
          return timeoutMs === undefined
            ? await next(ctx, request)
            : await attemptWithTimeout(next, ctx, request, timeoutMs, attempt, outcome);
        } catch (thrown) {
          last = thrown;
          lastError = ServiceError.from(thrown);
        }
        if (ctx.aborted) throw stopped(ctx, attempt, last, lastError);
        // Only this attempt running out of its own time counts, not a DEADLINE_EXCEEDED the backend
        // answered with (its own deadline, a dependency's) before the attempt's time was up.
        const timedOut = outcome.expired && lastError.code === Code.DEADLINE_EXCEEDED;
        if (!retryOn(lastError, attempt, timedOut)) throw last;
        let reason: GiveUpReason | undefined;
        let delay = 0;
        if (attempt >= maxAttempts) reason = "max-attempts";
        else {
          delay = jitteredDelay(attempt, backoff, random);
          const remaining = ctx.timeRemaining();
          if (remaining !== undefined && delay >= remaining) reason = "deadline";
          else if (budget !== undefined && !budget.tryRetry()) reason = "budget";
        }
        if (reason !== undefined) {
          onGiveUp?.({ attempts: attempt, reason, error: lastError });
          throw last;
        }
        onRetry?.({ attempt, delay, error: lastError });
        if (delay > 0) {
          try {
            await sleep(ctx, delay);
          } catch {
            throw stopped(ctx, attempt, last, lastError);
          }
        }
      }
    };
  };
}

/** What {@link attemptWithTimeout} tells about how an attempt ended. */
interface AttemptOutcome {
  /** The attempt's time (its child context's deadline) ran out. */
  expired: boolean;
}

/**
 * Runs one attempt with a child context whose deadline is `ms` away, and fails it once that passes
 * even if `next` ignores the signal. Cancellation stays lazy: the deadline is enforced by one unref'd
 * timer, and no AbortController is made unless the endpoint asks for its signal. So a caller's cancel
 * reaches the attempt through its signal, and an attempt that ignores it is abandoned at the latest
 * when its time is up.
 */
function attemptWithTimeout<Req, Res>(
  next: Endpoint<Req, Res>,
  ctx: Context,
  request: Req,
  ms: number,
  attempt: number,
  outcome: AttemptOutcome,
): Promise<Res> {
  const remaining = ctx.timeRemaining();
  // When the caller's deadline comes first, the timer stops the attempt there instead.
  const callerFirst = remaining !== undefined && remaining <= ms;
  const child = ctx.withTimeout(ms);
  return new Promise<Res>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(
      () => {
        if (done) return;
        done = true;
        outcome.expired = true;
        // The caller's own abort (a cancel, or its deadline) wins over the attempt's timeout.
        const reason =
          ctx.abortReason ??
          (callerFirst
            ? new ServiceError(Code.DEADLINE_EXCEEDED, "deadline exceeded")
            : new ServiceError(
                Code.DEADLINE_EXCEEDED,
                `deadline exceeded: attempt ${attempt} took longer than ${ms} ms`,
              ));
        child.cancel(reason);
        reject(reason);
      },
      callerFirst ? remaining : ms,
    );
    (timer as { unref?: () => void }).unref?.();
    const settle = (): boolean => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      child.release();
      return true;
    };
    try {
      // `.then` inside the try too: a plain-JS `next` that throws or returns a non-promise is handled.
      Promise.resolve(next(child.context, request)).then(
        (value) => {
          if (settle()) resolve(value);
        },
        (err: unknown) => {
          // The endpoint may fail first on the attempt's own deadline (a client watching the child
          // context's signal, a server that got the deadline propagated and gave up a moment before
          // the timer): within the last tenth of the attempt's time that is the attempt running out
          // of time too. A DEADLINE_EXCEEDED that comes earlier is the backend's own.
          const left = child.context.timeRemaining() ?? 0;
          const expired = child.context.aborted || left <= ms / 10;
          if (settle()) {
            outcome.expired = expired;
            reject(err);
          }
        },
      );
    } catch (err) {
      if (settle()) reject(err);
    }
  });
}
