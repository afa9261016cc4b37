import { Code } from "./code.js";
import { type Context, watchContext } from "./context.js";
import type { Endpoint, GenericMiddleware, Middleware } from "./endpoint.js";
import { ServiceError } from "./service-error.js";

/**
 * Limits each call to `ms` milliseconds. The wrapped endpoint sees a context whose deadline is at
 * most `ms` away (an earlier deadline from the caller stays); when it passes, the context's signal
 * aborts and the call fails with DEADLINE_EXCEEDED at once, even if the endpoint ignores the signal.
 * A caller that cancels makes the call fail with CANCELLED.
 *
 * @param ms - the time limit per call, in milliseconds (≥ 0).
 *
 * @example
 * ```ts
 * const limited = timeout(500)(slowEndpoint);
 * await limited(ctx, req); // ServiceError DEADLINE_EXCEEDED after 500 ms
 * ```
 */
export function timeout(ms: number): GenericMiddleware;
/** The same, fixed to one request and response type. */
export function timeout<Req, Res>(ms: number): Middleware<Req, Res>;
export function timeout<Req, Res>(ms: number): Middleware<Req, Res> {
  if (!(ms >= 0) || !Number.isFinite(ms)) {
    throw new RangeError(`timeout: ms must be a finite non-negative number, got ${ms}`);
  }
  return function timeoutMiddleware(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return function timeoutEndpoint(ctx: Context, request: Req): Promise<Res> {
      const child = ctx.withTimeout(ms);
      return new Promise<Res>((resolve, reject) => {
        let done = false;
        const onAbort = (reason: ServiceError): void => {
          if (done) return;
          done = true;
          reject(reason);
        };
        // The child's deadline timer and the caller's cancellation reach `onAbort` without an
        // AbortController; one is made only if the endpoint reads `ctx.signal`.
        if (!watchContext(child.context, onAbort)) {
          const signal = child.context.signal;
          if (signal.aborted) onAbort(abortError(signal));
          else signal.addEventListener("abort", () => onAbort(abortError(signal)), { once: true });
        }
        if (done) {
          child.release();
          return;
        }
        const settle = (): boolean => {
          child.release();
          if (done) return false;
          done = true;
          return true;
        };
        try {
          // `.then` inside the try too: a plain-JS `next` that returns a non-promise must not leave
          // the timer behind.
          next(child.context, request).then(
            (value) => {
              if (settle()) resolve(value);
            },
            (err: unknown) => {
              if (settle()) reject(err);
            },
          );
        } catch (err) {
          if (settle()) reject(err);
        }
      });
    };
  };
}

function abortError(signal: AbortSignal): ServiceError {
  const reason: unknown = signal.reason;
  return reason instanceof ServiceError
    ? reason
    : new ServiceError(Code.DEADLINE_EXCEEDED, "deadline exceeded");
}
