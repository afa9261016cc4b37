import {
  Code,
  type Context,
  clearLongTimeout,
  onAbort,
  ServiceError,
  setLongTimeout,
} from "@svckit/endpoint";

/** Whether the context's own deadline has passed (as opposed to it being cancelled). */
export function deadlinePassed(ctx: Context): boolean {
  const deadline = ctx.deadline;
  return deadline !== undefined && Date.now() >= deadline;
}

/** Why the context is aborted, as a ServiceError (CANCELLED when the reason is not one). */
export function abortReasonOf(ctx: Context): ServiceError {
  return ctx.abortReason ?? new ServiceError(Code.CANCELLED, "context cancelled");
}

/**
 * Waits `ms` milliseconds unless `ctx` aborts first; then rejects with its abort reason at once and
 * clears the timer. It watches `ctx` with `onAbort` and stops watching afterwards, so the caller's
 * context keeps no timer or listener that waiting set up.
 * The timer is not unref'd: a pending retry is work the caller is awaiting, and an unref'd timer
 * would let a process that has nothing else to do exit in the middle of it.
 * `ms` may be longer than MAX_TIMER_MS (it is waited for in steps), though the backoff caps its waits there.
 */
export function sleep(ctx: Context, ms: number): Promise<void> {
  if (ctx.aborted) return Promise.reject(abortReasonOf(ctx));
  return new Promise<void>((resolve, reject) => {
    const timer = setLongTimeout(() => {
      stop();
      resolve();
    }, ms);
    const stop = onAbort(ctx, (reason) => {
      clearLongTimeout(timer);
      reject(reason);
    });
  });
}
