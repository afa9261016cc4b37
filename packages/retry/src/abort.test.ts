import { background, Code, createCancelableContext, MAX_TIMER_MS, type ServiceError } from "@svckit/endpoint";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { sleep } from "./abort.js";

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

/** Whether `p` has settled, observed without awaiting it. */
function track(p: Promise<void>): { settled: () => boolean; promise: Promise<void> } {
  let settled = false;
  const promise = p.finally(() => {
    settled = true;
  });
  promise.catch(() => undefined);
  return { settled: () => settled, promise };
}

describe("sleep", () => {
  it("resolves after exactly ms", async () => {
    const slept = track(sleep(background, 100));
    await vi.advanceTimersByTimeAsync(99);
    expect(slept.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(slept.promise).resolves.toBeUndefined();
  });

  it("waits a wait longer than MAX_TIMER_MS in full, not 1 ms", async () => {
    const ms = 2 * MAX_TIMER_MS + 10;
    const slept = track(sleep(background, ms));
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 1);
    expect(slept.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(ms - MAX_TIMER_MS - 2);
    expect(slept.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(slept.promise).resolves.toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects at once with the reason when the context is cancelled during a long wait, and clears the timer", async () => {
    const { context, cancel } = createCancelableContext();
    const slept = track(sleep(context, 3 * MAX_TIMER_MS));
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 5); // a step in
    cancel();
    const error = (await slept.promise.catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(Code.CANCELLED);
    expect(vi.getTimerCount()).toBe(0);
  });
});
