import { getEventListeners } from "node:events";
import {
  background,
  type CancelableContext,
  Code,
  type Context,
  createCancelableContext,
  createContext,
  onAbort,
  ServiceError,
} from "@svckit/endpoint";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/**
 * A Context this package did not make: only what onAbort uses (withCancel, and the child's signal)
 * is implemented, delegating to a real context; the cast is the point of the test.
 */
function foreign(inner: Context): Context {
  const wrapped = {
    get signal(): AbortSignal {
      return inner.signal;
    },
    withCancel(): CancelableContext {
      const handle = inner.withCancel();
      return { context: foreign(handle.context), cancel: handle.cancel, release: handle.release };
    },
  };
  return wrapped as unknown as Context;
}

describe("onAbort", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("calls fn once with the cancel reason, and stop then reports it ran", () => {
    const call = createCancelableContext();
    const fn = vi.fn();
    const stop = onAbort(call.context, fn);
    expect(fn).not.toHaveBeenCalled();
    const reason = new ServiceError(Code.ABORTED, "stop now");
    call.cancel(reason);
    call.cancel(new ServiceError(Code.INTERNAL, "again"));
    expect(fn).toHaveBeenCalledTimes(1);
    expect(fn).toHaveBeenCalledWith(reason);
    expect(stop()).toBe(false);
  });

  it("calls fn with DEADLINE_EXCEEDED when the deadline passes, not before", () => {
    const ctx = background.withTimeout(50).context;
    const fn = vi.fn();
    onAbort(ctx, fn);
    vi.advanceTimersByTime(49);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(fn).toHaveBeenCalledWith(expect.objectContaining({ code: Code.DEADLINE_EXCEEDED }));
    // The context's own reason, not an equal one the watched child made for itself.
    expect(fn.mock.lastCall?.[0]).toBe(ctx.abortReason);
  });

  it("runs fn before returning when the context is already aborted", () => {
    const call = createCancelableContext();
    call.cancel();
    const order: string[] = [];
    const stop = onAbort(call.context, (reason) => order.push(`fn ${reason.code}`));
    order.push("returned");
    expect(order).toEqual([`fn ${Code.CANCELLED}`, "returned"]);
    expect(stop()).toBe(false);
  });

  it("stop keeps fn from running, says so once, and leaves the context as it was", () => {
    const call = createCancelableContext({ timeout: 1_000 });
    const fn = vi.fn();
    const stop = onAbort(call.context, fn);
    expect(stop()).toBe(true);
    expect(stop()).toBe(false);
    call.cancel();
    vi.advanceTimersByTime(2_000);
    expect(fn).not.toHaveBeenCalled();
    expect(call.context.abortReason?.code).toBe(Code.CANCELLED);
  });

  it("many waiters on one context add no listeners to its signal, and all hear the abort", () => {
    const call = createCancelableContext();
    const signal = call.context.signal;
    const heard: ServiceError[] = [];
    const stops = Array.from({ length: 30 }, () => onAbort(call.context, (r) => heard.push(r)));
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
    // Ten leave before the abort; the other twenty hear it.
    for (const stop of stops.slice(0, 10)) expect(stop()).toBe(true);
    call.cancel();
    expect(heard).toHaveLength(20);
    expect(new Set(heard.map((r) => r.code))).toEqual(new Set([Code.CANCELLED]));
    expect(signal.aborted).toBe(true);
  });

  it("on a context nothing can abort (background), stop still says once that fn did not run", () => {
    const fn = vi.fn();
    for (const ctx of [background, createContext({ metadata: { a: "b" } })]) {
      const stop = onAbort(ctx, fn);
      expect(stop()).toBe(true);
      expect(stop()).toBe(false);
    }
    expect(fn).not.toHaveBeenCalled();
  });

  it("a child's abort does not reach a waiter on its parent", () => {
    const parent = createCancelableContext();
    const child = parent.context.withCancel();
    const fn = vi.fn();
    onAbort(parent.context, fn);
    child.cancel();
    expect(fn).not.toHaveBeenCalled();
    parent.cancel();
    expect(fn).toHaveBeenCalledTimes(1);
  });

  describe("on a context another implementation made (through its signal)", () => {
    it("calls fn with a ServiceError made from the signal's reason", () => {
      const call = createCancelableContext();
      const fn = vi.fn();
      onAbort(foreign(call.context), fn);
      call.cancel(new Error("gone"));
      expect(fn).toHaveBeenCalledTimes(1);
      expect(fn).toHaveBeenCalledWith(expect.any(ServiceError));
      expect(fn).toHaveBeenCalledWith(expect.objectContaining({ code: Code.CANCELLED }));
    });

    it("runs fn at once when already aborted, and stop removes its listener", () => {
      const done = createCancelableContext();
      done.cancel(new ServiceError(Code.UNAVAILABLE, "down"));
      const early = vi.fn();
      expect(onAbort(foreign(done.context), early)()).toBe(false);
      expect(early).toHaveBeenCalledWith(expect.objectContaining({ code: Code.UNAVAILABLE }));

      const live = createCancelableContext();
      const child = foreign(live.context).withCancel();
      const fn = vi.fn();
      const stop = onAbort(child.context, fn);
      expect(stop()).toBe(true);
      live.cancel();
      expect(fn).not.toHaveBeenCalled();
    });
  });
});
