import {
  Code,
  type Context,
  clearLongTimeout,
  type Endpoint,
  type LongTimeout,
  onAbort,
  type ServiceError,
  setLongTimeout,
} from "@svckit/endpoint";
import { closedError, concurrencyError, deadlineError, keysError, limitError, queueError } from "./errors.js";
import { KeyEntry, KeyMap } from "./key-map.js";
import type { RejectReason, Settings } from "./options.js";

/** What both limiter kinds (in-process and Redis) offer {@link createRateLimiter}. */
export interface LimiterCore<Req> {
  /** Tracked keys. */
  readonly size: number;
  /** The rate-limited endpoint in front of `next`. */
  wrap<R extends Req, Res>(next: Endpoint<R, Res>): Endpoint<R, Res>;
  close(): Promise<void>;
}

/** Turns a call into its key; throws what the user's key function throws. */
export type KeyOf<Req> = (ctx: Context, request: Req) => string;

/** Reports a rejection to the user's `onReject`. */
export type Reporter = (key: string, reason: RejectReason) => void;

/** {@link LocalLimiter.take}: admitted. */
const ADMITTED = 0;
/** {@link LocalLimiter.take}: the key runs `maxConcurrent` calls. (A positive number: ms until the window ends.) */
const BUSY = -1;

/** A call waiting for a slot, in its key's FIFO list. */
interface Waiter {
  prev: Waiter | undefined;
  next: Waiter | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
  /** Stops watching the caller's context (see `#wait`). */
  stop: (() => boolean) | undefined;
}

/**
 * One key's state: its window, its running calls and its waiting calls. Each running call (counted
 * with `maxConcurrent`) and each waiting call holds it in the key map, so it is not forgotten.
 */
class LocalKey extends KeyEntry {
  /** When the current window closes (epoch ms); a window is open while `now < windowEnd`. */
  windowEnd = 0;
  /** Calls admitted in the current window. */
  used = 0;
  /** Calls running (counted only with `maxConcurrent`). */
  running = 0;
  head: Waiter | undefined = undefined;
  tail: Waiter | undefined = undefined;
  waiting = 0;
  timer: LongTimeout | undefined = undefined;
  timerAt = 0;
  /** Made once per key so that releasing a call's slot allocates no closure per call. */
  readonly release: () => void;
  /** Releases, then passes the endpoint's value on. */
  readonly settled: (value: unknown) => unknown;
  /** Releases, then rethrows the endpoint's very error. */
  readonly failed: (error: unknown) => never;

  constructor(limiter: LocalLimiter<never>) {
    super();
    this.release = () => limiter.release(this);
    this.settled = (value) => {
      limiter.release(this);
      return value;
    };
    this.failed = (error) => {
      limiter.release(this);
      throw error;
    };
  }
}

/**
 * The in-process limiter: fixed windows and a running count per key, all synchronous, so an admitted
 * call costs a few comparisons and (with a key function) a map lookup. Waiting calls queue per key in
 * FIFO order; one timer per key runs while calls wait for the next window.
 */
export class LocalLimiter<Req> implements LimiterCore<Req> {
  readonly #s: Settings;
  readonly #keyOf: KeyOf<Req> | undefined;
  readonly #report: Reporter;
  readonly #keys: KeyMap<LocalKey>;
  readonly #single: LocalKey;
  #closed = false;

  constructor(settings: Settings, keyOf: KeyOf<Req> | undefined, report: Reporter) {
    this.#s = settings;
    this.#keyOf = keyOf;
    this.#report = report;
    this.#keys = new KeyMap<LocalKey>(
      settings.maxKeys,
      settings.idleTimeout,
      () => new LocalKey(this as LocalLimiter<never>),
      (state) => this.#clearTimer(state),
    );
    this.#single = new LocalKey(this as LocalLimiter<never>);
  }

  get size(): number {
    return this.#keyOf === undefined ? 1 : this.#keys.size;
  }

  wrap<R extends Req, Res>(next: Endpoint<R, Res>): Endpoint<R, Res> {
    const self = this;
    const s = this.#s;
    const keyOf = this.#keyOf;
    return function rateLimitedEndpoint(ctx: Context, request: R): Promise<Res> {
      if (self.#closed) return Promise.reject(closedError(s));
      const now = Date.now();
      let key = "";
      let state = self.#single;
      if (keyOf !== undefined) {
        try {
          key = keyOf(ctx, request);
        } catch (err) {
          return Promise.reject(err);
        }
        const found = self.#keys.get(key, now);
        if (found === undefined) return self.#reject(key, "keys", keysError(s));
        state = found;
      }
      if (state.waiting > 0) self.#drain(state, now);
      if (state.waiting === 0) {
        const verdict = self.#take(state, now);
        if (verdict === ADMITTED) return self.#run(state, next, ctx, request);
        if (s.mode === "error") {
          return verdict === BUSY
            ? self.#reject(key, "concurrency", concurrencyError(s))
            : self.#reject(key, "limit", limitError(s, verdict));
        }
      }
      return self.#wait(state, key, now, next, ctx, request);
    };
  }

  /** Takes a slot of `state` now if one is free: {@link ADMITTED}, {@link BUSY} or ms until the window ends. */
  #take(state: LocalKey, now: number): number {
    const s = this.#s;
    if (s.hasWindow) {
      if (now >= state.windowEnd) {
        state.windowEnd = now + s.interval;
        state.used = 0;
      }
      if (state.used >= s.limit) return state.windowEnd - now;
    }
    if (s.hasConcurrency) {
      if (state.running >= s.maxConcurrent) return BUSY;
      state.running++;
      this.#keys.hold(state);
    }
    state.used++;
    return ADMITTED;
  }

  #run<R extends Req, Res>(state: LocalKey, next: Endpoint<R, Res>, ctx: Context, request: R): Promise<Res> {
    let result: Promise<Res>;
    try {
      result = next(ctx, request);
    } catch (err) {
      // A plain-JS endpoint that throws: the caller gets a rejection (an Endpoint returns a promise).
      if (this.#s.hasConcurrency) state.release();
      return Promise.reject(err);
    }
    if (!this.#s.hasConcurrency) {
      // The endpoint's own promise as it is; a plain value from a non-async endpoint lifted into one.
      return result instanceof Promise ? result : Promise.resolve(result);
    }
    // Settles like `result`: the endpoint's value or its very error, untouched.
    return (result instanceof Promise ? result : Promise.resolve(result)).then(
      state.settled,
      state.failed,
    ) as Promise<Res>;
  }

  /** Frees a running slot and hands it to the next waiting call. */
  release(state: LocalKey): void {
    state.running--;
    this.#keys.release(state);
    if (state.waiting > 0) this.#drain(state, Date.now());
  }

  #reject<T>(key: string, reason: RejectReason, error: ServiceError): Promise<T> {
    this.#report(key, reason);
    return Promise.reject(error);
  }

  /** The earliest time the waiter at `position` could get a slot, from the windows alone. */
  #eta(state: LocalKey, now: number, position: number): number {
    const s = this.#s;
    if (!s.hasWindow) return now;
    const open = now < state.windowEnd;
    const free = open ? s.limit - state.used : s.limit;
    if (position < free) return now;
    const first = open ? state.windowEnd : now + s.interval;
    return first + Math.floor((position - free) / s.limit) * s.interval;
  }

  #wait<R extends Req, Res>(
    state: LocalKey,
    key: string,
    now: number,
    next: Endpoint<R, Res>,
    ctx: Context,
    request: R,
  ): Promise<Res> {
    const s = this.#s;
    const reason = ctx.abortReason;
    if (reason !== undefined) {
      return this.#reject(key, reason.code === Code.DEADLINE_EXCEEDED ? "deadline" : "cancelled", reason);
    }
    const eta = this.#eta(state, now, state.waiting);
    if (state.waiting >= s.maxQueue) {
      return this.#reject(key, "queue", queueError(s, eta > now ? eta - now : undefined));
    }
    const deadline = ctx.deadline;
    if (deadline !== undefined && eta >= deadline) {
      return this.#reject(key, "deadline", deadlineError(s, eta - now));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { prev: state.tail, next: undefined, resolve, reject, stop: undefined };
      if (state.tail === undefined) state.head = waiter;
      else state.tail.next = waiter;
      state.tail = waiter;
      state.waiting++;
      this.#keys.hold(state);
      // onAbort watches a child of the context: any number of calls waiting with one shared context
      // add no listeners to its signal. It is stopped when the call leaves the queue.
      waiter.stop = onAbort(ctx, (why) => {
        this.#unlink(state, waiter);
        if (state.waiting === 0) this.#clearTimer(state);
        this.#report(key, why.code === Code.DEADLINE_EXCEEDED ? "deadline" : "cancelled");
        reject(why);
      });
      // A slot may be free already (the key only had to keep FIFO order); otherwise arm the timer.
      this.#drain(state, now);
    }).then(() => this.#run(state, next, ctx, request));
  }

  /** Admits waiting calls in order while slots are free; arms the timer for the next window if needed. */
  #drain(state: LocalKey, now: number): void {
    for (let w = state.head; w !== undefined; w = state.head) {
      const verdict = this.#take(state, now);
      if (verdict !== ADMITTED) {
        if (verdict !== BUSY) this.#arm(state, now + verdict);
        return;
      }
      this.#unlink(state, w);
      w.resolve();
    }
    this.#clearTimer(state);
  }

  /** Takes a waiter out of its key's queue and stops watching its context. */
  #unlink(state: LocalKey, w: Waiter): void {
    if (w.prev === undefined) state.head = w.next;
    else w.prev.next = w.next;
    if (w.next === undefined) state.tail = w.prev;
    else w.next.prev = w.prev;
    w.prev = undefined;
    w.next = undefined;
    state.waiting--;
    this.#keys.release(state);
    w.stop?.();
  }

  #arm(state: LocalKey, at: number): void {
    if (state.timer !== undefined) {
      if (state.timerAt === at) return;
      clearLongTimeout(state.timer);
    }
    state.timerAt = at;
    state.timer = setLongTimeout(
      () => {
        state.timer = undefined;
        if (!this.#closed) this.#drain(state, Date.now());
      },
      // Woken early (the wall clock was set back), `#drain` arms the rest again.
      Math.max(0, at - Date.now()),
    );
  }

  #clearTimer(state: LocalKey): void {
    if (state.timer !== undefined) {
      clearLongTimeout(state.timer);
      state.timer = undefined;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = closedError(this.#s);
    const states = [this.#single, ...this.#keys.values()];
    for (const state of states) {
      this.#clearTimer(state);
      for (let w = state.head; w !== undefined; w = state.head) {
        this.#unlink(state, w);
        w.reject(error);
      }
    }
    this.#keys.clear();
  }
}
