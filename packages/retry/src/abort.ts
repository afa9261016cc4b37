import { Code, type Context, ServiceError } from "@svckit/endpoint";

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
 * clears the timer. It watches a child of `ctx` and releases it afterwards, so the caller's context
 * drops the deadline timer and listeners that watching set up (unless someone else watches it).
 * The timer is not unref'd: a pending retry is work the caller is awaiting, and an unref'd timer
 * would let a process that has nothing else to do exit in the middle of it.
 */
export function sleep(ctx: Context, ms: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const watch = ctx.withCancel();
    const signal = watch.context.signal;
    if (signal.aborted) {
      watch.release();
      reject(abortReasonOf(ctx));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      watch.release();
      reject(abortReasonOf(ctx));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      watch.release();
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
