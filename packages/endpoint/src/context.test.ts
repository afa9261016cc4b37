import {
  background,
  type CancelSource,
  Code,
  type Context,
  callInfoKey,
  createCancelableContext,
  createContext,
  createContextKey,
  emptyMetadata,
  ServiceError,
} from "@svckit/endpoint";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const T0 = Date.UTC(2030, 0, 1);

afterEach(() => {
  vi.restoreAllMocks();
});

/** A CancelSource over a tiny fake request, recording how it is used. */
function fakeSource() {
  const target = { cancelled: false, listeners: new Set<(reason?: unknown) => void>() };
  const isCancelled = vi.fn((t: typeof target) => t.cancelled);
  const unsubscribed = vi.fn();
  const subscribe = vi.fn((t: typeof target, cancel: (reason?: unknown) => void) => {
    t.listeners.add(cancel);
    return () => {
      unsubscribed();
      t.listeners.delete(cancel);
    };
  });
  const source: CancelSource<typeof target> = { isCancelled, subscribe };
  const cancel = (reason?: unknown): void => {
    target.cancelled = true;
    for (const fn of [...target.listeners]) fn(reason);
  };
  return { source, target, isCancelled, subscribe, unsubscribed, cancel };
}

/** Counts the abort listeners currently registered on a signal through the spied methods. */
function listenerCount(signal: AbortSignal): () => number {
  const add = vi.spyOn(signal, "addEventListener");
  const remove = vi.spyOn(signal, "removeEventListener");
  return () => add.mock.calls.length - remove.mock.calls.length;
}

function expectCode(reason: unknown, code: Code): ServiceError {
  expect(reason).toBeInstanceOf(ServiceError);
  const err = reason as ServiceError;
  expect(err.code).toBe(code);
  return err;
}

describe("createContextKey", () => {
  it("returns the default until a value is stored", () => {
    const count = createContextKey(0, { description: "count" });
    const user = createContextKey<string | undefined>(undefined);
    const ctx = createContext({});
    expect(ctx.value(count)).toBe(0);
    expect(ctx.value(user)).toBeUndefined();
    const ctx2 = ctx.with(count, 3).with(user, "ada");
    expect(ctx2.value(count)).toBe(3);
    expect(ctx2.value(user)).toBe("ada");
  });

  it("makes distinct keys per call, even with the same description", () => {
    const a = createContextKey("a", { description: "same" });
    const b = createContextKey("b", { description: "same" });
    expect(a.id).not.toBe(b.id);
    const ctx = background.with(a, "A!");
    expect(ctx.value(a)).toBe("A!");
    expect(ctx.value(b)).toBe("b");
  });

  it("shares keys across calls (and package copies) with shared: true", () => {
    const one = createContextKey<number | undefined>(undefined, {
      description: "test/shared-key",
      shared: true,
    });
    const two = createContextKey<number | undefined>(undefined, {
      description: "test/shared-key",
      shared: true,
    });
    expect(one).not.toBe(two);
    expect(one.id).toBe(two.id);
    expect(one.id).toBe(Symbol.for("svckit:test/shared-key"));
    expect(background.with(one, 7).value(two)).toBe(7);
    const unshared = createContextKey<number | undefined>(undefined, { description: "test/shared-key" });
    expect(background.with(one, 7).value(unshared)).toBeUndefined();
  });

  it("requires a description for a shared key", () => {
    expect(() => createContextKey(1, { shared: true })).toThrow(TypeError);
  });

  it("has a description and a frozen shape", () => {
    const key = createContextKey(1, { description: "n" });
    expect(key.description).toBe("n");
    expect(key.defaultValue).toBe(1);
    expect(Object.isFrozen(key)).toBe(true);
    expect(createContextKey(1).description).toBe("context key");
  });

  it("stores falsy values instead of falling back to the default", () => {
    const key = createContextKey<number | null | undefined>(42);
    expect(background.with(key, 0).value(key)).toBe(0);
    expect(background.with(key, null).value(key)).toBeNull();
    expect(background.with(key, undefined).value(key)).toBeUndefined();
  });
});

describe("Context values are immutable", () => {
  const key = createContextKey("default", { description: "k" });

  it("with returns a new context and leaves the old one unchanged", () => {
    const a = createContext({ metadata: { x: "1" } });
    const b = a.with(key, "b");
    const c = b.with(key, "c");
    expect(b).not.toBe(a);
    expect(a.value(key)).toBe("default");
    expect(b.value(key)).toBe("b");
    expect(c.value(key)).toBe("c");
    expect(c.metadata.get("x")).toBe("1");
  });

  it("with on background never changes background", () => {
    const derived = background.with(key, "x");
    expect(derived.value(key)).toBe("x");
    expect(background.value(key)).toBe("default");
  });

  it("shares cancellation with the context it was derived from", () => {
    const root = createContext({ timeout: 1_000 });
    const derived = root.with(key, "x").withMetadata({ a: "1" }).withOutgoingMetadata({ b: "2" });
    expect(derived.signal).toBe(root.signal);
    expect(derived.deadline).toBe(root.deadline);
  });

  it("children keep values and metadata", () => {
    const ctx = createContext({ metadata: { a: "1" }, outgoingMetadata: { b: "2" } }).with(key, "v");
    for (const child of [ctx.withCancel(), ctx.withTimeout(1_000), ctx.withDeadline(Date.now() + 1_000)]) {
      expect(child.context.value(key)).toBe("v");
      expect(child.context.metadata.get("a")).toBe("1");
      expect(child.context.outgoingMetadata.get("b")).toBe("2");
      child.release();
    }
  });
});

describe("background and createContext", () => {
  it("createContext() is background", () => {
    expect(createContext()).toBe(background);
  });

  it("background is never aborted and carries nothing", () => {
    expect(background.aborted).toBe(false);
    expect(background.abortReason).toBeUndefined();
    expect(background.deadline).toBeUndefined();
    expect(background.timeRemaining()).toBeUndefined();
    expect(background.metadata).toBe(emptyMetadata);
    expect(background.outgoingMetadata).toBe(emptyMetadata);
    expect(background.signal.aborted).toBe(false);
    expect(() => background.throwIfAborted()).not.toThrow();
  });

  it("createContext({}) is a fresh root without deadline or metadata", () => {
    const ctx = createContext({});
    expect(ctx).not.toBe(background);
    expect(ctx.deadline).toBeUndefined();
    expect(ctx.metadata.size).toBe(0);
    expect(ctx.aborted).toBe(false);
  });
});

describe("metadata", () => {
  it("holds incoming and outgoing metadata separately, keys case-insensitive", () => {
    const ctx = createContext({
      metadata: { "X-Request-Id": "r1" },
      outgoingMetadata: [["X-Tenant", "acme"]],
    });
    expect(ctx.metadata.get("x-request-id")).toBe("r1");
    expect(ctx.metadata.has("x-tenant")).toBe(false);
    expect(ctx.outgoingMetadata.get("X-TENANT")).toBe("acme");
    expect(ctx.outgoingMetadata.has("x-request-id")).toBe(false);
  });

  it("withMetadata merges on top and returns a new context", () => {
    const ctx = createContext({ metadata: { a: "1", b: "2" }, outgoingMetadata: { o: "1" } });
    const next = ctx.withMetadata({ B: "3", c: "4" });
    expect(next.metadata.toRecord()).toEqual({ a: "1", b: "3", c: "4" });
    expect(ctx.metadata.toRecord()).toEqual({ a: "1", b: "2" });
    expect(next.outgoingMetadata).toBe(ctx.outgoingMetadata);
  });

  it("withOutgoingMetadata merges on top and returns a new context", () => {
    const ctx = createContext({ metadata: { a: "1" }, outgoingMetadata: { t: "x", keep: "k" } });
    const next = ctx.withOutgoingMetadata({ t: ["y", "z"] });
    expect(next.outgoingMetadata.getAll("t")).toEqual(["y", "z"]);
    expect(next.outgoingMetadata.get("keep")).toBe("k");
    expect(ctx.outgoingMetadata.getAll("t")).toEqual(["x"]);
    expect(next.metadata).toBe(ctx.metadata);
  });

  it("works on background without changing it", () => {
    const ctx = background.withOutgoingMetadata({ a: "1" }).withMetadata({ b: "2" });
    expect(ctx.outgoingMetadata.get("a")).toBe("1");
    expect(ctx.metadata.get("b")).toBe("2");
    expect(background.outgoingMetadata.size).toBe(0);
    expect(background.metadata.size).toBe(0);
  });
});

describe("deadlines", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("timeout sets a deadline and timeRemaining counts down to 0", () => {
    const ctx = createContext({ timeout: 1_000 });
    expect(ctx.deadline).toBe(T0 + 1_000);
    expect(ctx.timeRemaining()).toBe(1_000);
    vi.advanceTimersByTime(400);
    expect(ctx.timeRemaining()).toBe(600);
    expect(ctx.aborted).toBe(false);
    vi.advanceTimersByTime(600);
    expect(ctx.timeRemaining()).toBe(0);
    expect(ctx.aborted).toBe(true);
    vi.advanceTimersByTime(5_000);
    expect(ctx.timeRemaining()).toBe(0);
  });

  it("accepts an absolute deadline as epoch ms or a Date", () => {
    expect(createContext({ deadline: T0 + 250 }).deadline).toBe(T0 + 250);
    expect(createContext({ deadline: new Date(T0 + 250) }).deadline).toBe(T0 + 250);
  });

  it.each([
    [T0 + 500, 1_000, T0 + 500],
    [T0 + 2_000, 1_000, T0 + 1_000],
    [new Date(T0 + 300), 400, T0 + 300],
  ])("deadline %s with timeout %i → the earlier, %i", (deadline, timeout, expected) => {
    expect(createContext({ deadline, timeout }).deadline).toBe(expected);
  });

  it.each([
    ["a negative timeout", { timeout: -1 }],
    ["a NaN timeout", { timeout: Number.NaN }],
    ["a NaN deadline", { deadline: Number.NaN }],
    ["an invalid Date", { deadline: new Date("nope") }],
  ])("createContext rejects %s", (_label, init) => {
    expect(() => createContext(init)).toThrow(RangeError);
  });

  it("treats an infinite timeout or deadline as none", () => {
    expect(createContext({ timeout: Number.POSITIVE_INFINITY }).deadline).toBeUndefined();
    expect(createContext({ deadline: Number.POSITIVE_INFINITY }).deadline).toBeUndefined();
    const root = createContext({ timeout: 1_000 });
    expect(root.withTimeout(Number.POSITIVE_INFINITY).context.deadline).toBe(T0 + 1_000);
    expect(background.withTimeout(Number.POSITIVE_INFINITY).context.deadline).toBeUndefined();
    expect(background.withDeadline(Number.POSITIVE_INFINITY).context.timeRemaining()).toBeUndefined();
  });

  it("a past deadline is aborted at once with DEADLINE_EXCEEDED", () => {
    const ctx = createContext({ deadline: T0 - 1 });
    expect(ctx.aborted).toBe(true);
    expect(ctx.signal.aborted).toBe(true);
    expectCode(ctx.abortReason, Code.DEADLINE_EXCEEDED);
    expect(createContext({ timeout: 0 }).aborted).toBe(true);
  });

  it("the signal aborts with DEADLINE_EXCEEDED when the deadline passes", () => {
    const ctx = createContext({ timeout: 1_000 });
    const signal = ctx.signal;
    const onAbort = vi.fn();
    signal.addEventListener("abort", onAbort);
    vi.advanceTimersByTime(999);
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(signal.aborted).toBe(true);
    expect(onAbort).toHaveBeenCalledTimes(1);
    const reason = expectCode(signal.reason, Code.DEADLINE_EXCEEDED);
    expect(reason.message).toBe("deadline exceeded");
    expect(ctx.abortReason).toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("arms no timer until the signal is asked for", () => {
    const ctx = createContext({ timeout: 1_000 });
    expect(ctx.aborted).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    void ctx.signal;
    expect(vi.getTimerCount()).toBe(1);
  });

  it("re-arms when the wall clock moved back before the timer fired", () => {
    const ctx = createContext({ timeout: 1_000 });
    const signal = ctx.signal;
    vi.setSystemTime(T0 - 500); // the clock jumps back 500 ms
    vi.advanceTimersByTime(1_000); // the timer fires, but Date.now() is still before the deadline
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(500);
    expect(signal.aborted).toBe(true);
    expectCode(signal.reason, Code.DEADLINE_EXCEEDED);
  });

  it("handles deadlines beyond the 2^31-1 ms timer limit", () => {
    const ctx = createContext({ timeout: 2 ** 31 + 1_000 });
    const signal = ctx.signal;
    vi.advanceTimersByTime(2 ** 31);
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(1_000);
    expect(signal.aborted).toBe(true);
  });

  describe("withTimeout / withDeadline", () => {
    it("withTimeout shortens the parent's deadline", () => {
      const parent = createContext({ timeout: 1_000 });
      const child = parent.withTimeout(100);
      expect(child.context.deadline).toBe(T0 + 100);
      expect(child.context.timeRemaining()).toBe(100);
      expect(parent.deadline).toBe(T0 + 1_000);
      child.release();
    });

    it("withTimeout never extends the parent's deadline", () => {
      const parent = createContext({ timeout: 100 });
      const child = parent.withTimeout(10_000);
      expect(child.context.deadline).toBe(T0 + 100);
      const signal = child.context.signal;
      vi.advanceTimersByTime(100);
      expect(signal.aborted).toBe(true);
      expectCode(signal.reason, Code.DEADLINE_EXCEEDED);
    });

    it("withDeadline takes a Date or epoch ms and never extends the parent's deadline", () => {
      const parent = createContext({ timeout: 1_000 });
      expect(parent.withDeadline(new Date(T0 + 200)).context.deadline).toBe(T0 + 200);
      expect(parent.withDeadline(T0 + 300).context.deadline).toBe(T0 + 300);
      expect(parent.withDeadline(new Date(T0 + 5_000)).context.deadline).toBe(T0 + 1_000);
      expect(background.withDeadline(new Date(T0 + 5_000)).context.deadline).toBe(T0 + 5_000);
    });

    it("withCancel keeps the parent's deadline", () => {
      expect(createContext({ timeout: 700 }).withCancel().context.deadline).toBe(T0 + 700);
      expect(background.withCancel().context.deadline).toBeUndefined();
    });

    it.each([-1, Number.NaN, Number.NEGATIVE_INFINITY])("withTimeout(%s) throws RangeError", (ms) => {
      expect(() => background.withTimeout(ms)).toThrow(RangeError);
    });

    it("withDeadline with an invalid Date or NaN throws RangeError", () => {
      expect(() => background.withDeadline(new Date("nope"))).toThrow(RangeError);
      expect(() => background.withDeadline(Number.NaN)).toThrow(RangeError);
    });

    it("withTimeout(0) is aborted at once", () => {
      const child = background.withTimeout(0);
      expect(child.context.aborted).toBe(true);
      expect(child.context.signal.aborted).toBe(true);
      expectCode(child.context.abortReason, Code.DEADLINE_EXCEEDED);
    });

    it("a child's deadline does not abort the parent", () => {
      const parent = createContext({ timeout: 1_000 });
      const parentSignal = parent.signal;
      const child = parent.withTimeout(100);
      const childSignal = child.context.signal;
      vi.advanceTimersByTime(100);
      expect(childSignal.aborted).toBe(true);
      expect(parentSignal.aborted).toBe(false);
      expect(parent.aborted).toBe(false);
    });
  });
});

describe("lazy cancellation", () => {
  it("does not subscribe to a CancelSource until ctx.signal is read", () => {
    const s = fakeSource();
    const ctx = createContext({ cancelSource: s.source, cancelTarget: s.target });
    expect(ctx.aborted).toBe(false);
    expect(ctx.abortReason).toBeUndefined();
    ctx.throwIfAborted();
    expect(s.isCancelled).toHaveBeenCalledTimes(3);
    expect(s.isCancelled).toHaveBeenCalledWith(s.target);
    expect(s.subscribe).not.toHaveBeenCalled();
    const signal = ctx.signal;
    expect(s.subscribe).toHaveBeenCalledTimes(1);
    expect(s.subscribe.mock.calls[0]?.[0]).toBe(s.target);
    expect(ctx.signal).toBe(signal);
    expect(s.subscribe).toHaveBeenCalledTimes(1);
  });

  it("ctx.aborted consults isCancelled without a signal", () => {
    const s = fakeSource();
    const ctx = createContext({ cancelSource: s.source, cancelTarget: s.target });
    s.target.cancelled = true;
    expect(ctx.aborted).toBe(true);
    const reason = expectCode(ctx.abortReason, Code.CANCELLED);
    expect(reason.message).toBe("request cancelled");
    expect(s.subscribe).not.toHaveBeenCalled();
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBe(reason);
    expect(s.subscribe).not.toHaveBeenCalled();
  });

  it("aborts the signal when the source cancels, then unsubscribes", () => {
    const s = fakeSource();
    const ctx = createContext({ cancelSource: s.source, cancelTarget: s.target });
    const signal = ctx.signal;
    s.cancel();
    expect(signal.aborted).toBe(true);
    expectCode(signal.reason, Code.CANCELLED);
    expect(s.unsubscribed).toHaveBeenCalledTimes(1);
    expect(s.target.listeners.size).toBe(0);
  });

  it("uses the reason the source gives", () => {
    const s = fakeSource();
    const ctx = createContext({ cancelSource: s.source, cancelTarget: s.target });
    const signal = ctx.signal;
    const given = new ServiceError(Code.UNAVAILABLE, "shutting down");
    s.cancel(given);
    expect(signal.reason).toBe(given);
    expect(ctx.abortReason).toBe(given);
  });

  it("does not leak a subscription when the source cancels while subscribing", () => {
    const unsubscribe = vi.fn();
    const source: CancelSource<null> = {
      isCancelled: () => false,
      subscribe(_t, cancel) {
        cancel();
        return unsubscribe;
      },
    };
    const ctx = createContext({ cancelSource: source, cancelTarget: null });
    expect(ctx.signal.aborted).toBe(true);
    expectCode(ctx.signal.reason, Code.CANCELLED);
    expect(unsubscribe).toHaveBeenCalledTimes(1);
  });

  it("does not listen on an external signal until ctx.signal is read", () => {
    const external = new AbortController();
    const add = vi.spyOn(external.signal, "addEventListener");
    const ctx = createContext({ signal: external.signal });
    expect(ctx.aborted).toBe(false);
    expect(add).not.toHaveBeenCalled();
    void ctx.signal;
    expect(add).toHaveBeenCalledTimes(1);
  });

  it("creates no AbortController for contexts nobody watches", () => {
    const Controller = globalThis.AbortController;
    let created = 0;
    globalThis.AbortController = class extends Controller {
      constructor() {
        super();
        created++;
      }
    };
    try {
      const ctx = createContext({ timeout: 1_000, metadata: { a: "1" } });
      const child = ctx.withTimeout(100);
      expect(child.context.aborted).toBe(false);
      expect(ctx.with(createContextKey(0), 1).aborted).toBe(false);
      child.release();
      expect(created).toBe(0);
      void child.context.withCancel().context.signal;
      expect(created).toBe(1);
    } finally {
      globalThis.AbortController = Controller;
    }
  });
});

describe("external AbortSignal", () => {
  it("an already aborted signal aborts the context with CANCELLED", () => {
    const ctx = createContext({ signal: AbortSignal.abort() });
    expect(ctx.aborted).toBe(true);
    const reason = expectCode(ctx.abortReason, Code.CANCELLED);
    expect((reason.cause as Error).name).toBe("AbortError");
    expect(ctx.signal.reason).toBe(reason);
  });

  it("propagates a later abort to the context and its children", () => {
    const external = new AbortController();
    const ctx = createContext({ signal: external.signal });
    const signal = ctx.signal;
    const child = ctx.withCancel();
    const childSignal = child.context.signal;
    external.abort();
    expect(signal.aborted).toBe(true);
    expectCode(signal.reason, Code.CANCELLED);
    expect(childSignal.aborted).toBe(true);
    expect(childSignal.reason).toBe(signal.reason);
  });

  it("keeps a ServiceError reason and maps a TimeoutError to DEADLINE_EXCEEDED", () => {
    const given = new ServiceError(Code.UNAVAILABLE, "draining");
    expect(createContext({ signal: AbortSignal.abort(given) }).abortReason).toBe(given);
    const timedOut = AbortSignal.abort(new DOMException("t", "TimeoutError"));
    expectCode(createContext({ signal: timedOut }).abortReason, Code.DEADLINE_EXCEEDED);
  });

  it("maps any other reason to CANCELLED with it as cause", () => {
    const external = new AbortController();
    const ctx = createContext({ signal: external.signal });
    const signal = ctx.signal;
    external.abort("bye");
    const reason = expectCode(signal.reason, Code.CANCELLED);
    expect(reason.cause).toBe("bye");
  });

  it("removes its listener once the context is cancelled by something else", () => {
    vi.useFakeTimers();
    try {
      const external = new AbortController();
      const count = listenerCount(external.signal);
      const ctx = createContext({ signal: external.signal, timeout: 10 });
      void ctx.signal;
      expect(count()).toBe(1);
      vi.advanceTimersByTime(10);
      expect(ctx.aborted).toBe(true);
      expect(count()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("cancellation trees", () => {
  it("parent cancel reaches a child whose signal was read before", () => {
    const parent = background.withCancel();
    const child = parent.context.withCancel();
    const grandchild = child.context.withTimeout(60_000);
    const childSignal = child.context.signal;
    const grandchildSignal = grandchild.context.signal;
    parent.cancel();
    expect(childSignal.aborted).toBe(true);
    expect(grandchildSignal.aborted).toBe(true);
    const reason = expectCode(childSignal.reason, Code.CANCELLED);
    expect(reason.message).toBe("context cancelled");
    expect(grandchildSignal.reason).toBe(reason);
    expect(parent.context.abortReason).toBe(reason);
  });

  it("parent cancel reaches a child whose signal is read after", () => {
    const parent = background.withCancel();
    const child = parent.context.withCancel();
    const grandchild = child.context.withCancel();
    parent.cancel();
    expect(child.context.aborted).toBe(true);
    expect(grandchild.context.aborted).toBe(true);
    expect(grandchild.context.signal.aborted).toBe(true);
    expect(grandchild.context.signal.reason).toBe(parent.context.abortReason);
    expect(() => grandchild.context.throwIfAborted()).toThrow(ServiceError);
  });

  it("parent cancel reaches a child whose signal is read only later, after the parent's signal", () => {
    const parent = background.withCancel();
    const parentSignal = parent.context.signal;
    const child = parent.context.withCancel();
    parent.cancel();
    expect(parentSignal.aborted).toBe(true);
    expect(child.context.signal.aborted).toBe(true);
  });

  it("a child created from an aborted context is aborted", () => {
    const parent = background.withCancel();
    parent.cancel();
    const child = parent.context.withTimeout(1_000);
    expect(child.context.aborted).toBe(true);
    expect(child.context.signal.reason).toBe(parent.context.abortReason);
  });

  it("child cancel does not affect the parent or siblings", () => {
    const parent = background.withCancel();
    const parentSignal = parent.context.signal;
    const a = parent.context.withCancel();
    const b = parent.context.withCancel();
    const bSignal = b.context.signal;
    a.cancel();
    expect(a.context.aborted).toBe(true);
    expect(parent.context.aborted).toBe(false);
    expect(parentSignal.aborted).toBe(false);
    expect(b.context.aborted).toBe(false);
    expect(bSignal.aborted).toBe(false);
    b.release();
    parent.release();
  });

  it("cancel(reason) keeps a ServiceError and maps other reasons", () => {
    const given = new ServiceError(Code.ABORTED, "conflict");
    const a = background.withCancel();
    a.cancel(given);
    expect(a.context.abortReason).toBe(given);

    const b = background.withCancel();
    const cause = new Error("caller gave up");
    b.cancel(cause);
    const reason = expectCode(b.context.abortReason, Code.CANCELLED);
    expect(reason.cause).toBe(cause);

    const c = background.withCancel();
    c.cancel(new DOMException("t", "TimeoutError"));
    expectCode(c.context.abortReason, Code.DEADLINE_EXCEEDED);
  });

  it("the first cancel wins", () => {
    const child = background.withCancel();
    const signal = child.context.signal;
    const first = new ServiceError(Code.ABORTED, "first");
    child.cancel(first);
    child.cancel(new ServiceError(Code.INTERNAL, "second"));
    expect(signal.reason).toBe(first);
    expect(child.context.abortReason).toBe(first);
  });

  it("throwIfAborted throws the abort reason, and nothing before", () => {
    const child = background.withCancel();
    expect(() => child.context.throwIfAborted()).not.toThrow();
    child.cancel();
    let thrown: unknown;
    try {
      child.context.throwIfAborted();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBe(child.context.abortReason);
    expectCode(thrown, Code.CANCELLED);
  });

  it("abortReason is undefined until aborted", () => {
    const child = background.withCancel();
    expect(child.context.abortReason).toBeUndefined();
    child.cancel();
    expectCode(child.context.abortReason, Code.CANCELLED);
  });
});

describe("release", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("drops the child's timer without aborting", () => {
    const child = background.withTimeout(1_000);
    const signal = child.context.signal;
    expect(vi.getTimerCount()).toBe(1);
    child.release();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(2_000);
    expect(signal.aborted).toBe(false);
    // `aborted` still tells the truth about the deadline: it is computed, not event-driven.
    expect(child.context.aborted).toBe(true);
    child.release(); // idempotent
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops listening on the parent: a later parent cancel does not abort the released child's signal", () => {
    const parent = background.withCancel();
    const child = parent.context.withCancel();
    const signal = child.context.signal;
    child.release();
    parent.cancel();
    expect(signal.aborted).toBe(false);
    expect(parent.context.signal.aborted).toBe(true);
  });

  it("cancel after release still aborts", () => {
    const child = background.withCancel();
    const signal = child.context.signal;
    child.release();
    child.cancel();
    expect(signal.aborted).toBe(true);
  });

  it("a released child's signal read afterwards never aborts by itself", () => {
    const child = background.withTimeout(10);
    child.release();
    const signal = child.context.signal;
    vi.advanceTimersByTime(100);
    expect(signal.aborted).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("releases the root's timer, external listener and source subscription once no child watches", () => {
    const external = new AbortController();
    const count = listenerCount(external.signal);
    const s = fakeSource();
    const root = createContext({
      timeout: 30_000,
      signal: external.signal,
      cancelSource: s.source,
      cancelTarget: s.target,
    });
    const a = root.withTimeout(100);
    const b = root.withTimeout(200);
    void a.context.signal;
    void b.context.signal;
    expect(s.subscribe).toHaveBeenCalledTimes(1);
    expect(count()).toBe(1);
    expect(vi.getTimerCount()).toBe(3); // root + a + b
    a.release();
    expect(vi.getTimerCount()).toBe(2);
    expect(s.unsubscribed).not.toHaveBeenCalled();
    b.release();
    expect(vi.getTimerCount()).toBe(0);
    expect(count()).toBe(0);
    expect(s.unsubscribed).toHaveBeenCalledTimes(1);
    expect(root.aborted).toBe(false);

    // Watching again sets everything up again, and it still works.
    const c = root.withCancel();
    const cSignal = c.context.signal;
    expect(s.subscribe).toHaveBeenCalledTimes(2);
    s.cancel();
    expect(cSignal.aborted).toBe(true);
    expect(root.aborted).toBe(true);
    expect(count()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps the root watching while its own signal is in use", () => {
    const root = createContext({ timeout: 1_000 });
    const rootSignal = root.signal;
    const child = root.withCancel();
    void child.context.signal;
    child.release();
    vi.advanceTimersByTime(1_000);
    expect(rootSignal.aborted).toBe(true);
  });

  it("many watched children of one context add a single listener to its external signal", () => {
    const external = new AbortController();
    const count = listenerCount(external.signal);
    const root = createContext({ signal: external.signal });
    const children = Array.from({ length: 50 }, () => root.withTimeout(1_000));
    const signals = children.map((c) => c.context.signal);
    expect(count()).toBe(1);
    external.abort();
    expect(signals.every((s) => s.aborted)).toBe(true);
    expect(count()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("children of background add no listener to background's signal", () => {
    const count = listenerCount(background.signal);
    const children = Array.from({ length: 20 }, () => background.withTimeout(1_000));
    for (const c of children) void c.context.signal;
    expect(count()).toBe(0);
    for (const c of children) c.release();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("many watched children of one context emit no MaxListenersExceededWarning", () => {
    const warn = vi.spyOn(process, "emitWarning");
    try {
      const parent = createContext({ timeout: 5_000 });
      void parent.signal;
      const children = Array.from({ length: 30 }, () => parent.withCancel());
      for (const c of children) void c.context.signal;
      vi.advanceTimersByTime(5_000);
      expect(children.every((c) => c.context.signal.aborted)).toBe(true);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });
});

describe("Context as a type", () => {
  it("is what endpoints receive", () => {
    const read = (ctx: Context): string | undefined => ctx.metadata.get("x");
    expect(read(createContext({ metadata: { X: "y" } }))).toBe("y");
  });
});

describe("createCancelableContext", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("gives a root context with the init's metadata and deadline", () => {
    const call = createCancelableContext({ metadata: { "X-A": "1" }, timeout: 1_000 });
    expect(call.context.metadata.get("x-a")).toBe("1");
    expect(call.context.timeRemaining()).toBeGreaterThan(900);
    call.release();
  });

  it("cancel aborts the signal with CANCELLED", () => {
    const call = createCancelableContext();
    const signal = call.context.signal;
    call.cancel();
    expect(signal.aborted).toBe(true);
    expect((signal.reason as ServiceError).code).toBe(Code.CANCELLED);
    expect(call.context.abortReason?.code).toBe(Code.CANCELLED);
  });

  it("cancel aborts the signals of children and grandchildren watched before it", () => {
    // A root with nothing but its handle: its children still follow it.
    const call = createCancelableContext();
    const child = call.context.withCancel();
    const grandchild = child.context.withTimeout(60_000);
    const watched: string[] = [];
    const childSignal = child.context.signal;
    const grandchildSignal = grandchild.context.signal;
    childSignal.addEventListener("abort", () => watched.push("child"));
    grandchildSignal.addEventListener("abort", () => watched.push("grandchild"));
    call.cancel();
    expect([childSignal.aborted, grandchildSignal.aborted]).toEqual([true, true]);
    expect((grandchildSignal.reason as ServiceError).code).toBe(Code.CANCELLED);
    expect(watched.sort()).toEqual(["child", "grandchild"]);
    grandchild.release();
    child.release();
  });

  it("release drops the deadline timer without aborting the signal", () => {
    vi.useFakeTimers();
    const call = createCancelableContext({ timeout: 100 });
    const signal = call.context.signal;
    expect(vi.getTimerCount()).toBe(1);
    call.release();
    expect(vi.getTimerCount()).toBe(0);
    expect(signal.aborted).toBe(false);
  });

  it("release unsubscribes from the cancel source", () => {
    let subscribed = 0;
    let unsubscribed = 0;
    const source: CancelSource<object> = {
      isCancelled: () => false,
      subscribe: () => {
        subscribed++;
        return () => {
          unsubscribed++;
        };
      },
    };
    const call = createCancelableContext({ cancelSource: source, cancelTarget: {} });
    expect(subscribed).toBe(0);
    void call.context.signal;
    expect(subscribed).toBe(1);
    call.release();
    expect(unsubscribed).toBe(1);
  });
});

describe("CancelableContext handles destructure", () => {
  it("cancel and release work when taken off the handle", () => {
    const { context, cancel } = background.withCancel();
    cancel();
    expect(context.abortReason?.code).toBe(Code.CANCELLED);
    const { context: root, release } = createCancelableContext({ timeout: 1_000 });
    release();
    expect(root.aborted).toBe(false);
  });

  it("stores no function on the handle: cancel and release are made when read", () => {
    // Two closures stored per handle (one handle per call) made V8 pretenure grpc-js's per-call
    // objects under load, ~15% of a gRPC server's throughput (bench/RESULTS.md, 2026-12-02, fourth
    // entry). Keep them off the instance.
    for (const handle of [createCancelableContext({ timeout: 1_000 }), background.withTimeout(1_000)]) {
      expect(Object.values(handle).filter((v) => typeof v === "function")).toEqual([]);
      expect(typeof handle.cancel).toBe("function");
      expect(typeof handle.release).toBe("function");
      handle.release();
    }
  });

  it("a function read off one handle acts on that handle only, with the reason given", () => {
    const first = background.withCancel();
    const second = background.withCancel();
    const cancelFirst = first.cancel;
    const reason = new ServiceError(Code.ABORTED, "stop");
    cancelFirst(reason);
    expect(first.context.abortReason).toBe(reason);
    expect(second.context.aborted).toBe(false);
    // The signal of a released handle's context never aborts afterwards, whichever read did it.
    const timed = createCancelableContext({ timeout: 5 });
    const signal = timed.context.signal;
    const release = timed.release;
    release();
    timed.release();
    return new Promise<void>((resolve) => {
      setTimeout(() => {
        expect(signal.aborted).toBe(false);
        second.cancel();
        expect(second.context.abortReason?.code).toBe(Code.CANCELLED);
        resolve();
      }, 20);
    });
  });
});

describe("call info", () => {
  it("is undefined unless the transport gives it", () => {
    expect(background.value(callInfoKey)).toBeUndefined();
    expect(createContext({ timeout: 10 }).value(callInfoKey)).toBeUndefined();
  });

  it("is read back from the init and survives derived contexts", () => {
    const info = { transport: "http", method: "POST", route: "/sum" } as const;
    const call = createCancelableContext({ callInfo: info });
    const key = createContextKey(0);
    const child = call.context.with(key, 1).withMetadata({ a: "b" }).withTimeout(1000);
    expect(call.context.value(callInfoKey)).toBe(info);
    expect(child.context.value(callInfoKey)).toBe(info);
    expect(child.context.value(key)).toBe(1);
    child.release();
    call.release();
  });

  it("is one shared key across package copies", () => {
    const copy = createContextKey<unknown>(undefined, { description: "callInfo", shared: true });
    const ctx = createContext({ callInfo: { transport: "grpc", method: "/pb.Add/Sum" } });
    expect(ctx.value(copy)).toEqual({ transport: "grpc", method: "/pb.Add/Sum" });
  });
});
