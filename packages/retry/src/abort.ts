import { Code, type Context, onAbort, ServiceError } from "@svckit/endpoint";

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
 * `ms` must be at most MAX_TIMER_MS (a longer timer fires after 1 ms): the backoff caps its waits there.
 */
export function sleep(ctx: Context, ms: number): Promise<void> {
  if (ctx.aborted) return Promise.reject(abortReasonOf(ctx));
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      resolve();
    }, ms);
    const stop = onAbort(ctx, (reason) => {
      clearTimeout(timer);
      reject(reason);
    });
  });
}
