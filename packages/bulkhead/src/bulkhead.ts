import {
  Code,
  type Context,
  type Endpoint,
  type GenericMiddleware,
  type Middleware,
  onAbort,
  ServiceError,
} from "@svckit/endpoint";

/** Options of {@link createBulkhead} and {@link bulkhead}. */
export interface BulkheadOptions {
  /** How many calls may run at once (a positive integer). */
  maxConcurrent: number;
  /** How many more calls may wait, first in first out, for a slot (a non-negative integer or `Infinity`). Default 0. */
  maxQueue?: number;
  /** Names the bulkhead in errors and for metrics. */
  name?: string;
}

/**
 * A bulkhead: its middleware plus live counts for metrics. Every endpoint the middleware wraps shares its slots
 * and its queue.
 */
export interface Bulkhead {
  /** The name given, if any. */
  readonly name: string | undefined;
  /** The limit of calls running at once. */
  readonly maxConcurrent: number;
  /** The limit of calls waiting. */
  readonly maxQueue: number;
  /** Calls running now (holding a slot). */
  readonly running: number;
  /** Calls waiting for a slot now. */
  readonly queued: number;
  /** The middleware. */
  readonly middleware: GenericMiddleware;
}

/** A call waiting for a slot: a node of the doubly linked FIFO queue. */
interface Waiter {
  prev: Waiter | undefined;
  next: Waiter | undefined;
  readonly grant: () => void;
  /** Stops watching the caller's context (see `acquire`). */
  stop: (() => boolean) | undefined;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new RangeError(`bulkhead: ${message}`);
}

/**
 * Creates a bulkhead: at most `maxConcurrent` calls run at once, up to `maxQueue` more wait first in first out,
 * and any further call fails at once with RESOURCE_EXHAUSTED (`bulkhead "<name>" is full: N running, M queued`).
 * A waiting call whose context is cancelled or whose deadline passes leaves the queue at once with CANCELLED or
 * DEADLINE_EXCEEDED, without ever taking a slot. A slot is freed when its call settles, whether it succeeded,
 * failed or threw synchronously, and handed straight to the oldest waiting call.
 *
 * A call that gets a slot at once costs no allocation beyond the endpoint's promise: only a call that has to wait
 * watches its context, through a child context of its own, so any number of calls can wait with one shared context
 * without piling listeners on its signal.
 *
 * Bad options throw at once, naming the option: a TypeError when `options` is not an object or `name` not a
 * string, a RangeError for a bad `maxConcurrent` or `maxQueue`.
 *
 * @example
 * ```ts
 * const db = createBulkhead({ name: "db", maxConcurrent: 10, maxQueue: 50 });
 * const query = db.middleware(runQuery);
 * metrics.gauge("db_running", () => db.running);
 * ```
 */
export function createBulkhead(options: BulkheadOptions): Bulkhead {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `bulkhead: options must be an object, got ${options === null ? "null" : typeof options}`,
    );
  }
  const { maxConcurrent, maxQueue = 0, name } = options;
  check(
    Number.isInteger(maxConcurrent) && maxConcurrent >= 1,
    `maxConcurrent must be a positive integer, got ${maxConcurrent}`,
  );
  check(
    (Number.isInteger(maxQueue) && maxQueue >= 0) || maxQueue === Number.POSITIVE_INFINITY,
    `maxQueue must be a non-negative integer or Infinity, got ${maxQueue}`,
  );
  if (name !== undefined && typeof name !== "string") throw new TypeError("bulkhead: name must be a string");
  const label = name === undefined ? "bulkhead" : `bulkhead "${name}"`;

  let running = 0;
  let queued = 0;
  let head: Waiter | undefined;
  let tail: Waiter | undefined;

  const unlink = (waiter: Waiter): void => {
    if (waiter.prev === undefined) head = waiter.next;
    else waiter.prev.next = waiter.next;
    if (waiter.next === undefined) tail = waiter.prev;
    else waiter.next.prev = waiter.prev;
    waiter.prev = undefined;
    waiter.next = undefined;
    queued--;
    waiter.stop?.();
  };

  /** Frees a slot: hands it to the oldest waiting call, if any (so `running` stays), else gives it back. */
  const release = (): void => {
    const waiter = head;
    if (waiter === undefined) {
      running--;
      return;
    }
    unlink(waiter);
    waiter.grant();
  };

  // Shared by every call (no closure per call); `.then` with these costs fewer ticks than `.finally`.
  const releaseResolved = <T>(value: T): T => {
    release();
    return value;
  };
  const releaseRejected = (error: unknown): never => {
    release();
    throw error;
  };

  const full = (): ServiceError =>
    new ServiceError(Code.RESOURCE_EXHAUSTED, `${label} is full: ${running} running, ${queued} queued`);

  const left = (reason: unknown): ServiceError => {
    const error = ServiceError.from(reason, Code.CANCELLED);
    return new ServiceError(error.code, `${error.message} while queued in ${label}`, { cause: reason });
  };

  /** Waits for a slot; resolves holding it, or rejects (holding none) when `ctx` aborts first. */
  const acquire = (ctx: Context): Promise<void> => {
    if (ctx.aborted) return Promise.reject(left(ctx.abortReason));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { prev: tail, next: undefined, grant: resolve, stop: undefined };
      if (tail === undefined) head = waiter;
      else tail.next = waiter;
      tail = waiter;
      queued++;
      // onAbort watches a child of the context: any number of calls waiting with one shared context
      // add no listeners to its signal. It is stopped when the call leaves the queue.
      waiter.stop = onAbort(ctx, (reason) => {
        unlink(waiter);
        reject(left(reason));
      });
    });
  };

  /** Runs the call in the slot it holds and frees the slot when the call settles. */
  const run = <Req, Res>(next: Endpoint<Req, Res>, ctx: Context, request: Req): Promise<Res> => {
    try {
      // `.then` inside the try too: a plain-JS endpoint that returns a non-promise must not keep the slot.
      return next(ctx, request).then(releaseResolved, releaseRejected);
    } catch (error) {
      release();
      return Promise.reject(error);
    }
  };

  const middleware: GenericMiddleware = function bulkheadMiddleware<Req, Res>(
    next: Endpoint<Req, Res>,
  ): Endpoint<Req, Res> {
    return function bulkheadEndpoint(ctx: Context, request: Req): Promise<Res> {
      if (running < maxConcurrent) {
        running++;
        return run(next, ctx, request);
      }
      if (queued >= maxQueue) return Promise.reject(full());
      return acquire(ctx).then(() => run(next, ctx, request));
    };
  };

  return {
    name,
    maxConcurrent,
    maxQueue,
    get running() {
      return running;
    },
    get queued() {
      return queued;
    },
    middleware,
  };
}

/**
 * A bulkhead middleware: `createBulkhead(options).middleware`, for when nothing needs its counts.
 *
 * @example
 * ```ts
 * const search = chain(bulkhead({ name: "search", maxConcurrent: 4, maxQueue: 16 }), timeout(2_000))(searchEndpoint);
 * ```
 */
export function bulkhead(options: BulkheadOptions): GenericMiddleware;
/** The same, fixed to one request and response type. */
export function bulkhead<Req, Res>(options: BulkheadOptions): Middleware<Req, Res>;
export function bulkhead(options: BulkheadOptions): GenericMiddleware {
  return createBulkhead(options).middleware;
}
