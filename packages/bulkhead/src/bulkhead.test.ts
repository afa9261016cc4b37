import { getEventListeners } from "node:events";
import { bulkhead, createBulkhead } from "@svckit/bulkhead";
import {
  background,
  Code,
  chain,
  codeToHttpStatus,
  createCancelableContext,
  createContext,
  type Endpoint,
  type Middleware,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import fc from "fast-check";
import { afterEach, describe, expect, expectTypeOf, it, vi } from "vitest";

interface Gate<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function gate<T>(): Gate<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An endpoint whose calls wait until the test opens their gate; records the requests it started, in order. */
function gated() {
  const started: string[] = [];
  const gates = new Map<string, Gate<string>>();
  const endpoint: Endpoint<string, string> = async (_ctx, req) => {
    started.push(req);
    const g = gate<string>();
    gates.set(req, g);
    return g.promise;
  };
  const finish = async (req: string, error?: unknown): Promise<void> => {
    const g = gates.get(req);
    if (g === undefined) throw new Error(`${req} has not started`);
    if (error === undefined) g.resolve(`done ${req}`);
    else g.reject(error);
    await flush();
  };
  return { endpoint, started, finish };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Settles `promise` and returns its rejection reason (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error("expected a rejection");
}

afterEach(() => {
  vi.useRealTimers();
});

describe("options", () => {
  it.each([
    [{ maxConcurrent: 0 }, "maxConcurrent must be a positive integer, got 0"],
    [{ maxConcurrent: -1 }, "maxConcurrent must be a positive integer, got -1"],
    [{ maxConcurrent: 1.5 }, "maxConcurrent must be a positive integer, got 1.5"],
    [{ maxConcurrent: Number.NaN }, "maxConcurrent must be a positive integer, got NaN"],
    [{ maxConcurrent: Number.POSITIVE_INFINITY }, "maxConcurrent must be a positive integer, got Infinity"],
    [{ maxConcurrent: 1, maxQueue: -1 }, "maxQueue must be a non-negative integer or Infinity, got -1"],
    [{ maxConcurrent: 1, maxQueue: 0.5 }, "maxQueue must be a non-negative integer or Infinity, got 0.5"],
    [
      { maxConcurrent: 1, maxQueue: Number.NaN },
      "maxQueue must be a non-negative integer or Infinity, got NaN",
    ],
  ])("rejects %o with a RangeError", (options, message) => {
    expect(() => createBulkhead(options)).toThrow(new RangeError(`bulkhead: ${message}`));
    expect(() => bulkhead(options)).toThrow(RangeError);
  });

  it.each([undefined, null, 3, "db"])(
    "rejects options %o that are not an object with a TypeError",
    (options) => {
      const type = options === null ? "null" : typeof options;
      const error = new TypeError(`bulkhead: options must be an object, got ${type}`);
      expect(() => createBulkhead(options as never)).toThrow(error);
      expect(() => bulkhead(options as never)).toThrow(error);
    },
  );

  it("rejects a name that is not a string with a TypeError", () => {
    expect(() => createBulkhead({ maxConcurrent: 1, name: 42 as never })).toThrow(
      new TypeError("bulkhead: name must be a string"),
    );
  });

  it("exposes its settings, maxQueue defaulting to 0", () => {
    const b = createBulkhead({ maxConcurrent: 3, name: "db" });
    expect(b).toMatchObject({ name: "db", maxConcurrent: 3, maxQueue: 0, running: 0, queued: 0 });
    expect(createBulkhead({ maxConcurrent: 1, maxQueue: Number.POSITIVE_INFINITY }).maxQueue).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(createBulkhead({ maxConcurrent: 1 }).name).toBeUndefined();
  });

  it("returns named functions", () => {
    const b = createBulkhead({ maxConcurrent: 1 });
    expect(b.middleware.name).toBe("bulkheadMiddleware");
    expect(b.middleware(async () => 1).name).toBe("bulkheadEndpoint");
  });
});

describe("limits", () => {
  it("runs at most maxConcurrent calls and refuses the next with RESOURCE_EXHAUSTED (429)", async () => {
    const b = createBulkhead({ name: "db", maxConcurrent: 2 });
    const { endpoint, started, finish } = gated();
    const call = b.middleware(endpoint);
    const one = call(background, "1");
    const two = call(background, "2");
    expect(started).toEqual(["1", "2"]);
    expect(b.running).toBe(2);
    const error = await rejection(call(background, "3"));
    expect(error).toBeInstanceOf(ServiceError);
    expect(error.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(codeToHttpStatus[error.code]).toBe(429);
    expect(error.message).toBe('bulkhead "db" is full: 2 running, 0 queued');
    expect(started).toEqual(["1", "2"]);
    await finish("1");
    await expect(one).resolves.toBe("done 1");
    expect(b.running).toBe(1);
    const three = call(background, "3");
    expect(started).toEqual(["1", "2", "3"]);
    await finish("2");
    await finish("3");
    await expect(Promise.all([two, three])).resolves.toEqual(["done 2", "done 3"]);
    expect(b.running).toBe(0);
  });

  it("says just 'bulkhead' in messages when it has no name", async () => {
    const call = bulkhead({ maxConcurrent: 1, maxQueue: 1 })(gated().endpoint);
    void call(background, "1");
    void call(background, "2");
    await expect(call(background, "3")).rejects.toThrow(
      new ServiceError(Code.RESOURCE_EXHAUSTED, "bulkhead is full: 1 running, 1 queued"),
    );
  });

  it("queues up to maxQueue calls and starts them first in, first out", async () => {
    const b = createBulkhead({ name: "q", maxConcurrent: 1, maxQueue: 3 });
    const { endpoint, started, finish } = gated();
    const call = b.middleware(endpoint);
    const calls = ["a", "b", "c", "d"].map((r) => call(background, r));
    expect(started).toEqual(["a"]);
    expect({ running: b.running, queued: b.queued }).toEqual({ running: 1, queued: 3 });
    const error = await rejection(call(background, "e"));
    expect(error.message).toBe('bulkhead "q" is full: 1 running, 3 queued');
    for (const r of ["a", "b", "c"]) {
      await finish(r);
      expect(started.at(-1)).not.toBe(r);
    }
    expect(started).toEqual(["a", "b", "c", "d"]);
    expect({ running: b.running, queued: b.queued }).toEqual({ running: 1, queued: 0 });
    await finish("d");
    await expect(Promise.all(calls)).resolves.toEqual(["done a", "done b", "done c", "done d"]);
    expect(b.running).toBe(0);
  });

  it("with maxQueue Infinity never refuses", async () => {
    const b = createBulkhead({ maxConcurrent: 1, maxQueue: Number.POSITIVE_INFINITY });
    const { endpoint, started, finish } = gated();
    const calls = Array.from({ length: 100 }, (_, i) => b.middleware(endpoint)(background, String(i)));
    expect(b.queued).toBe(99);
    for (let i = 0; i < 100; i++) await finish(String(i));
    expect(started).toHaveLength(100);
    expect(await Promise.all(calls)).toHaveLength(100);
  });

  it("is shared by every endpoint it wraps, whatever their types", async () => {
    const b = createBulkhead({ name: "shared", maxConcurrent: 1 });
    const { endpoint, finish } = gated();
    const numbers: Endpoint<{ n: number }, number> = async (_ctx, req) => req.n;
    void b.middleware(endpoint)(background, "1");
    await expect(b.middleware(numbers)(background, { n: 1 })).rejects.toThrow(
      'bulkhead "shared" is full: 1 running, 0 queued',
    );
    await finish("1");
    await expect(b.middleware(numbers)(background, { n: 1 })).resolves.toBe(1);
  });
});

describe("slots are released", () => {
  it("when the call fails; its error reaches the caller unchanged and the next queued call starts", async () => {
    const b = createBulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const { endpoint, started, finish } = gated();
    const call = b.middleware(endpoint);
    const first = call(background, "1");
    const second = call(background, "2");
    const error = new ServiceError(Code.INTERNAL, "boom");
    const failed = rejection(first);
    await finish("1", error);
    expect(await failed).toBe(error);
    expect(started).toEqual(["1", "2"]);
    await finish("2");
    await expect(second).resolves.toBe("done 2");
    expect(b.running).toBe(0);
  });

  it("when a non-async endpoint throws synchronously (the caller gets a rejection, not a throw)", async () => {
    const b = createBulkhead({ maxConcurrent: 1 });
    const error = new ServiceError(Code.INTERNAL, "sync");
    const sync = ((): Promise<string> => {
      throw error;
    }) as Endpoint<string, string>;
    const call = b.middleware(sync);
    let result: Promise<string> | undefined;
    expect(() => {
      result = call(background, "x");
    }).not.toThrow();
    expect(await rejection(result as Promise<string>)).toBe(error);
    expect(b.running).toBe(0);
    expect(await rejection(call(background, "x"))).toBe(error); // the slot is free again
  });

  it("when a plain-JS endpoint returns a non-promise", async () => {
    const b = createBulkhead({ maxConcurrent: 1 });
    const call = b.middleware((() => "not a promise") as unknown as Endpoint<string, string>);
    await expect(call(background, "x")).rejects.toBeInstanceOf(TypeError);
    expect(b.running).toBe(0);
  });

  it("even when the call was cancelled after it got its slot (the endpoint decides)", async () => {
    const b = createBulkhead({ maxConcurrent: 1 });
    const call = b.middleware(async (ctx, _req: string) => {
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
      ctx.throwIfAborted();
      return "never";
    });
    const c = createCancelableContext();
    const pending = rejection(call(c.context, "x"));
    c.cancel();
    expect((await pending).code).toBe(Code.CANCELLED);
    expect(b.running).toBe(0);
  });
});

describe("leaving the queue", () => {
  it("a queued call whose context is cancelled leaves at once with CANCELLED, without a slot", async () => {
    const b = createBulkhead({ name: "db", maxConcurrent: 1, maxQueue: 2 });
    const { endpoint, started, finish } = gated();
    const call = b.middleware(endpoint);
    const first = call(background, "1");
    const c = createCancelableContext();
    const cancelled = rejection(call(c.context, "2"));
    const third = call(background, "3");
    expect(b.queued).toBe(2);
    c.cancel();
    const error = await cancelled;
    expect(error.code).toBe(Code.CANCELLED);
    expect(error.message).toBe('context cancelled while queued in bulkhead "db"');
    expect(b.queued).toBe(1);
    expect(b.running).toBe(1);
    await finish("1");
    expect(started).toEqual(["1", "3"]); // "2" never ran; "3" kept its place
    await finish("3");
    await expect(Promise.all([first, third])).resolves.toEqual(["done 1", "done 3"]);
    expect({ running: b.running, queued: b.queued }).toEqual({ running: 0, queued: 0 });
  });

  it("a queued call whose deadline passes leaves at once with DEADLINE_EXCEEDED", async () => {
    vi.useFakeTimers();
    const b = createBulkhead({ name: "db", maxConcurrent: 1, maxQueue: 1 });
    const { endpoint, started } = gated();
    const call = b.middleware(endpoint);
    void call(background, "1");
    const late = rejection(call(createContext({ timeout: 100 }), "2"));
    await vi.advanceTimersByTimeAsync(99);
    expect(b.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    const error = await late;
    expect(error.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(error.message).toBe('deadline exceeded while queued in bulkhead "db"');
    expect(b.queued).toBe(0);
    expect(started).toEqual(["1"]);
  });

  it("keeps the code and message of a custom cancellation reason", async () => {
    const b = createBulkhead({ name: "db", maxConcurrent: 1, maxQueue: 1 });
    void b.middleware(gated().endpoint)(background, "1");
    const c = createCancelableContext();
    const pending = rejection(b.middleware(gated().endpoint)(c.context, "2"));
    const reason = new ServiceError(Code.UNAVAILABLE, "server shutting down");
    c.cancel(reason);
    const error = await pending;
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toBe('server shutting down while queued in bulkhead "db"');
    expect(error.cause).toBe(reason);
  });

  it("a call whose context is already aborted does not queue", async () => {
    const b = createBulkhead({ name: "db", maxConcurrent: 1, maxQueue: 1 });
    void b.middleware(gated().endpoint)(background, "1");
    const error = await rejection(b.middleware(gated().endpoint)(createContext({ deadline: 0 }), "2"));
    expect(error.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(error.message).toBe('deadline exceeded while queued in bulkhead "db"');
    expect(b.queued).toBe(0);
  });

  it("a call with a free slot runs even with an aborted context: the endpoint sees it", async () => {
    const b = createBulkhead({ maxConcurrent: 1 });
    const seen = vi.fn(async (ctx: { aborted: boolean }, _req: string) => ctx.aborted);
    await expect(b.middleware(seen)(createContext({ deadline: 0 }), "x")).resolves.toBe(true);
  });

  it("an AbortSignal reason that is not a ServiceError becomes one (AbortError → CANCELLED)", async () => {
    const b = createBulkhead({ maxConcurrent: 1, maxQueue: 1 });
    void b.middleware(gated().endpoint)(background, "1");
    const controller = new AbortController();
    const pending = rejection(
      b.middleware(gated().endpoint)(createContext({ signal: controller.signal }), "2"),
    );
    controller.abort(new DOMException("stop", "AbortError"));
    const error = await pending;
    expect(error).toBeInstanceOf(ServiceError);
    expect(error.code).toBe(Code.CANCELLED);
  });

  it("waiting calls add no listeners to their context's signal, however many share it", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on("warning", onWarning);
    try {
      const b = createBulkhead({ maxConcurrent: 1, maxQueue: 20 });
      const { endpoint, finish } = gated();
      void b.middleware(endpoint)(background, "first");
      const shared = createCancelableContext();
      const waiting = Array.from({ length: 20 }, (_, i) =>
        b
          .middleware(endpoint)(shared.context, `w${i}`)
          .catch((e: unknown) => e),
      );
      expect(b.queued).toBe(20);
      expect(getEventListeners(shared.context.signal, "abort")).toHaveLength(0);
      shared.cancel();
      const errors = await Promise.all(waiting);
      expect(errors.map((e) => (e as ServiceError).code)).toEqual(Array(20).fill(Code.CANCELLED));
      expect(b.queued).toBe(0);
      await finish("first");
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("a call that got its slot no longer follows its context", async () => {
    const b = createBulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const { endpoint, started, finish } = gated();
    void b.middleware(endpoint)(background, "1");
    const c = createCancelableContext();
    const second = b.middleware(endpoint)(c.context, "2");
    await finish("1");
    expect(started).toEqual(["1", "2"]);
    c.cancel();
    await finish("2");
    await expect(second).resolves.toBe("done 2");
  });
});

describe("composition", () => {
  it("a timeout() after the bulkhead does not count the time spent queued", async () => {
    vi.useFakeTimers();
    const b = createBulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const slow: Endpoint<string, string> = (ctx, req) =>
      new Promise((resolve) => {
        const t = setTimeout(() => resolve(req), 80);
        ctx.signal.addEventListener("abort", () => clearTimeout(t));
      });
    const call = chain(b.middleware, timeout(100))(slow);
    const first = call(background, "1");
    const second = call(background, "2");
    await vi.advanceTimersByTimeAsync(160);
    await expect(first).resolves.toBe("1");
    await expect(second).resolves.toBe("2");
  });

  it("keeps the endpoint's types; the typed overload is a Middleware", () => {
    const typed: Endpoint<{ id: string }, number> = async () => 1;
    expectTypeOf(createBulkhead({ maxConcurrent: 1 }).middleware(typed)).toEqualTypeOf<
      Endpoint<{ id: string }, number>
    >();
    expectTypeOf(bulkhead<string, number>({ maxConcurrent: 1 })).toEqualTypeOf<Middleware<string, number>>();
  });
});

describe("property: random arrivals, completions and cancellations", () => {
  type Op =
    | { kind: "arrive"; cancelable: boolean }
    | { kind: "finish"; index: number; ok: boolean }
    | { kind: "cancel"; index: number };

  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("arrive" as const), cancelable: fc.boolean() }),
    fc.record({ kind: fc.constant("finish" as const), index: fc.nat(), ok: fc.boolean() }),
    fc.record({ kind: fc.constant("cancel" as const), index: fc.nat() }),
  );

  interface Call {
    readonly id: number;
    readonly cancel: (() => void) | undefined;
    started: boolean;
    /** Whether it got a slot at once, in the call itself. */
    immediate: boolean;
    outcome: "pending" | "resolved" | "rejected";
    error?: ServiceError;
    value?: string;
    gate?: Gate<string>;
  }

  it("never runs more than maxConcurrent, never idles a slot while calls wait, starts FIFO and settles every call", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(op, { maxLength: 60 }),
        async (maxConcurrent, maxQueue, ops) => {
          const b = createBulkhead({ maxConcurrent, maxQueue });
          const calls: Call[] = [];
          const startOrder: number[] = [];
          let active = 0;
          let maxActive = 0;
          const endpoint: Endpoint<number, string> = (_ctx, id) => {
            const call = calls[id] as Call;
            call.started = true;
            startOrder.push(id);
            active++;
            maxActive = Math.max(maxActive, active);
            const g = gate<string>();
            call.gate = g;
            return g.promise.finally(() => {
              active--;
            });
          };
          const run = b.middleware(endpoint);

          const check = (): void => {
            const running = calls.filter((c) => c.started && c.outcome === "pending").length;
            const waiting = calls.filter((c) => !c.started && c.outcome === "pending").length;
            expect(b.running).toBe(running);
            expect(active).toBe(running);
            expect(b.queued).toBe(waiting);
            expect(maxActive).toBeLessThanOrEqual(maxConcurrent);
            expect(waiting).toBeLessThanOrEqual(maxQueue);
            if (waiting > 0) expect(running).toBe(maxConcurrent);
          };

          const settle = async (): Promise<void> => {
            // Outcomes are recorded by the promise handlers; give them (and slot hand-overs) time to run.
            await flush();
            check();
          };

          for (const o of ops) {
            if (o.kind === "arrive") {
              const handle = o.cancelable ? createCancelableContext() : undefined;
              const call: Call = {
                id: calls.length,
                cancel: handle?.cancel,
                started: false,
                immediate: false,
                outcome: "pending",
              };
              calls.push(call);
              run(handle?.context ?? background, call.id).then(
                (value) => {
                  call.outcome = "resolved";
                  call.value = value;
                },
                (error: ServiceError) => {
                  call.outcome = "rejected";
                  call.error = error;
                },
              );
              call.immediate = call.started;
            } else if (o.kind === "finish") {
              const running = calls.filter((c) => c.started && c.outcome === "pending");
              const target = running[o.index % Math.max(1, running.length)];
              if (o.ok) target?.gate?.resolve(`ok ${target.id}`);
              else target?.gate?.reject(new ServiceError(Code.INTERNAL, `failed ${target.id}`));
            } else {
              const cancelable = calls.filter((c) => c.cancel !== undefined && c.outcome === "pending");
              cancelable[o.index % Math.max(1, cancelable.length)]?.cancel?.();
            }
            await settle();
          }

          // Drain: finish everything that runs until nothing is pending.
          for (let guard = 0; calls.some((c) => c.outcome === "pending"); guard++) {
            expect(guard).toBeLessThan(1_000);
            for (const c of calls) if (c.started && c.outcome === "pending") c.gate?.resolve(`ok ${c.id}`);
            await settle();
          }

          // No call is lost: each one ran to its own result, or was refused or cancelled without running.
          for (const c of calls) {
            if (c.started) {
              expect(c.outcome === "resolved" ? c.value : c.error?.message).toMatch(
                new RegExp(`^(ok|failed) ${c.id}$`),
              );
            } else {
              expect(c.outcome).toBe("rejected");
              expect([Code.RESOURCE_EXHAUSTED, Code.CANCELLED]).toContain(c.error?.code);
            }
          }
          // Calls that had to wait started in the order they arrived.
          const queuedStarts = startOrder.filter((id) => calls[id]?.immediate === false);
          expect(queuedStarts).toEqual([...queuedStarts].sort((x, y) => x - y));
          expect({ running: b.running, queued: b.queued }).toEqual({ running: 0, queued: 0 });
        },
      ),
      { numRuns: 150 },
    );
  });
});
