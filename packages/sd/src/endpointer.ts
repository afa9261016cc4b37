import { Code, type Endpoint, MAX_TIMER_MS, ServiceError } from "@svckit/endpoint";
import { Emitter } from "./emitter.js";
import { type Instance, type Instancer, type InstancerState, sameInstance } from "./instance.js";

/** One usable endpoint of an {@link Endpointer}: the instance and the endpoint that calls it. */
export interface EndpointEntry<Req = unknown, Res = unknown> {
  /** The instance the endpoint calls. */
  readonly instance: Instance;
  /** The endpoint, made by the {@link Factory} for this instance. */
  readonly endpoint: Endpoint<Req, Res>;
}

/** What a {@link Factory} returns for one instance. */
export interface FactoryResult<Req = unknown, Res = unknown> {
  /** The endpoint that calls the instance (usually a transport client). */
  readonly endpoint: Endpoint<Req, Res>;
  /** Frees what the endpoint holds (connections, channels); called once, when the instance goes away. */
  readonly close?: () => void | Promise<void>;
}

/**
 * Makes the endpoint for one instance, like go-kit's `sd.Factory`: usually a transport client
 * aimed at `instance.address`, maybe wrapped in per-instance middleware (a circuit breaker). It may
 * return the result or a promise of it (for a client that must connect or resolve first). It is
 * called once per new instance, and never twice at once for the same address. A factory that throws
 * or rejects skips that instance (reported to {@link EndpointerOptions.onError}) without affecting the
 * others; the endpointer tries again with backoff (see {@link EndpointerOptions.factoryRetry}) and at
 * the instancer's next change, for as long as the instance is listed.
 *
 * `signal` aborts when the call is no longer wanted: it ran longer than
 * {@link EndpointerOptions.factoryTimeout} (the reason is a `DEADLINE_EXCEEDED` {@link ServiceError}) or the
 * endpointer was closed (`CANCELLED`). A factory that connects should stop then; what it still returns
 * is closed at once.
 *
 * @example
 * ```ts
 * const factory: Factory<SumRequest, SumResponse> = (instance) => ({
 *   endpoint: createHttpClient(`http://${instance.address}/sum`, "POST", encodeJsonRequest, jsonResponseDecoder()),
 * });
 * ```
 */
export type Factory<Req = unknown, Res = unknown> = (
  instance: Instance,
  signal: AbortSignal,
) => FactoryResult<Req, Res> | PromiseLike<FactoryResult<Req, Res>>;

/**
 * How an {@link Endpointer} retries a {@link Factory} that failed for an instance still listed: the
 * wait after the n-th failure in a row is drawn uniformly from `[cap / 2, cap]` (half jitter, so
 * clients that failed together do not retry together), with `cap = min(max, initial × multiplier^(n-1))`,
 * never above `MAX_TIMER_MS` (24.8 days).
 *
 * @example
 * ```ts
 * const endpointer = createEndpointer(instancer, factory, { factoryRetry: { initial: 250, max: 10_000 } });
 * ```
 */
export interface FactoryRetryOptions {
  /** The cap of the first wait, in ms (finite, > 0). Default 100. */
  initial?: number;
  /** The largest cap, in ms (> 0; `Infinity` or above `MAX_TIMER_MS` means `MAX_TIMER_MS`). Default 30 000. */
  max?: number;
  /** How much the cap grows per failure (finite, ≥ 1). Default 2. */
  multiplier?: number;
}

/** What an {@link EndpointerOptions.onError} call is about. */
export interface EndpointerErrorInfo {
  /**
   * `"create"`: the factory threw or rejected (or returned no endpoint function, or ran longer than
   * `factoryTimeout`); `"close"`: an endpoint's close threw or rejected, or `close()` stopped waiting
   * after `closeTimeout`; `"listener"`: a listener threw on a change the endpointer made on
   * its own (the invalidation timer, a factory retry, a factory that resolved later).
   */
  readonly during: "create" | "close" | "listener";
  /** The instance concerned (absent for `"listener"` and for a `"close"` that ran out of `closeTimeout`). */
  readonly instance?: Instance;
}

/** Options of {@link createEndpointer}. */
export interface EndpointerOptions {
  /**
   * How long, in ms, to keep serving the last good endpoints after the instancer reports an error
   * (go-kit's `InvalidateOnError`). When it runs out and the error is still there, every endpoint is
   * closed and `endpoints()` is empty until the instancer recovers. `0` invalidates at once; absent
   * (the default) keeps the last good set for as long as the error lasts.
   */
  invalidateTimeout?: number;
  /**
   * How a factory that failed for an instance is retried while the instance is listed (it is also
   * tried again at once on the instancer's next change). Default `{ initial: 100, max: 30_000,
   * multiplier: 2 }`; `false` retries only on the instancer's next change.
   */
  factoryRetry?: FactoryRetryOptions | false;
  /**
   * How long, in ms, a factory call may run (> 0, at most `MAX_TIMER_MS`, or `Infinity` for no limit).
   * When it runs out, the call's signal is aborted and it counts as failed with a `DEADLINE_EXCEEDED`
   * {@link ServiceError} (reported, kept on `error`, retried with `factoryRetry`); what it returns later
   * is closed. Default 10 000.
   */
  factoryTimeout?: number;
  /**
   * How long, in ms, `close()` waits for factory calls still running and for endpoint closes (≥ 0, at
   * most `MAX_TIMER_MS`, or `Infinity` to wait for them all). After that it resolves anyway and tells
   * `onError` (`"close"`); what a call returns later is still closed. Default 5 000.
   */
  closeTimeout?: number;
  /** Told of factory errors (each failed retry too), close errors and listener errors; none stops the endpointer. Default: ignore. */
  onError?: (error: unknown, info: EndpointerErrorInfo) => void;
}

/**
 * The endpoints of a service's live instances, kept in step with an {@link Instancer}: what a load
 * balancer picks from. Like go-kit's `sd.Endpointer`.
 */
export interface Endpointer<Req = unknown, Res = unknown> {
  /**
   * The current entries, in the instancer's order. The array is frozen and the same object is
   * returned until the set changes, so callers may cache what they derive from it by identity.
   */
  endpoints(): readonly EndpointEntry<Req, Res>[];
  /**
   * Why endpoints may be missing: the instancer's error if it reports one, else the last factory
   * error of an instance that has no endpoint; `undefined` when all is well.
   */
  readonly error: Error | undefined;
  /** Calls `listener` with the current entries at once, then after every change; returns an unsubscribe function. */
  subscribe(listener: (entries: readonly EndpointEntry<Req, Res>[]) => void): () => void;
  /**
   * Stops following the instancer (it does not close the instancer, which may be shared), cancels
   * pending factory retries, closes every endpoint and resolves once all their closes, and those
   * still running from earlier removals, have settled, or after `closeTimeout` (default 5 s). A
   * factory call still running has its signal aborted and is waited for (within the same bound); what
   * it makes, even later, is closed, and its failure is not reported. Calling it again returns the
   * same promise.
   */
  close(): Promise<void>;
}

interface Cached<Req, Res> {
  entry: EndpointEntry<Req, Res>;
  readonly close: (() => void | Promise<void>) | undefined;
}

/** An address with no endpoint yet whose factory call is running or waits for a retry. */
interface Attempt {
  /** The instance as last listed (its weight or metadata may change while the call runs). */
  instance: Instance;
  /** Whether the instancer still lists the address; a running call of an unlisted one is discarded. */
  listed: boolean;
  /** Whether a factory call for the address is running (then no other starts). */
  running: boolean;
  /** The running call's controller: a call whose controller is no longer this one was given up. */
  controller: AbortController | undefined;
  /** The running call's `factoryTimeout` timer. */
  deadline: ReturnType<typeof setTimeout> | undefined;
  /** Failed calls in a row. */
  failures: number;
  /** The retry timer, while one is pending. */
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface ResolvedRetry {
  readonly initial: number;
  readonly max: number;
  readonly multiplier: number;
}

const defaultRetry: ResolvedRetry = Object.freeze({ initial: 100, max: 30_000, multiplier: 2 });
const defaultFactoryTimeout = 10_000;
const defaultCloseTimeout = 5_000;

const noEntries: readonly never[] = Object.freeze([]);

function noop(): void {}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value), { cause: value });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

function resolveRetry(options: FactoryRetryOptions | false | undefined): ResolvedRetry | undefined {
  if (options === undefined) return defaultRetry;
  if (options === false) return undefined;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`createEndpointer: factoryRetry must be an object or false, got ${String(options)}`);
  }
  const {
    initial = defaultRetry.initial,
    max = defaultRetry.max,
    multiplier = defaultRetry.multiplier,
  } = options;
  if (!(typeof initial === "number" && Number.isFinite(initial) && initial > 0)) {
    throw new RangeError(
      `createEndpointer: factoryRetry.initial must be a finite number of ms > 0, got ${String(initial)}`,
    );
  }
  if (!(typeof max === "number" && max > 0)) {
    throw new RangeError(`createEndpointer: factoryRetry.max must be a number of ms > 0, got ${String(max)}`);
  }
  if (!(typeof multiplier === "number" && Number.isFinite(multiplier) && multiplier >= 1)) {
    throw new RangeError(
      `createEndpointer: factoryRetry.multiplier must be a finite number >= 1, got ${String(multiplier)}`,
    );
  }
  return { initial, max, multiplier };
}

/**
 * Checks a timeout option: a number of ms > 0 (`positive`) or >= 0, at most `MAX_TIMER_MS` (Node fires
 * a longer timer after 1 ms), or `Infinity`, returned as `undefined` (no limit). Absent gives `fallback`.
 */
function resolveTimeout(
  name: string,
  value: unknown,
  fallback: number,
  positive: boolean,
): number | undefined {
  if (value === undefined) return fallback;
  if (value === Number.POSITIVE_INFINITY) return undefined;
  if (!(typeof value === "number" && (positive ? value > 0 : value >= 0) && value <= MAX_TIMER_MS)) {
    throw new RangeError(
      `createEndpointer: ${name} must be a number of ms ${positive ? ">" : ">="} 0 and at most ${MAX_TIMER_MS}, or Infinity, got ${String(value)}`,
    );
  }
  return value;
}

/** The wait before the retry that follows the `failures`-th failure in a row: half jitter under the cap. */
function retryDelay(failures: number, retry: ResolvedRetry): number {
  // multiplier^(failures-1) may overflow to Infinity; min() then gives the bound, never NaN (initial > 0).
  const cap = Math.min(retry.max, MAX_TIMER_MS, retry.initial * retry.multiplier ** (failures - 1));
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

class EndpointerImpl<Req, Res> implements Endpointer<Req, Res> {
  readonly #factory: Factory<Req, Res>;
  readonly #invalidateTimeout: number | undefined;
  readonly #retry: ResolvedRetry | undefined;
  readonly #factoryTimeout: number | undefined;
  readonly #closeTimeout: number | undefined;
  readonly #onError: EndpointerOptions["onError"];
  readonly #cache = new Map<string, Cached<Req, Res>>();
  readonly #attempts = new Map<string, Attempt>();
  readonly #factoryErrors = new Map<string, Error>();
  readonly #pendingCloses = new Set<Promise<void>>();
  readonly #pendingCreates = new Set<Promise<void>>();
  readonly #emitter = new Emitter<readonly EndpointEntry<Req, Res>[]>(() => this.#entries);
  readonly #unsubscribe: () => void;
  /** The instances last applied, in the instancer's order: what the entries follow. */
  #listed: readonly Instance[] = noEntries;
  #entries: readonly EndpointEntry<Req, Res>[] = noEntries;
  #instancerError: Error | undefined = undefined;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #invalidated = false;
  #closed: Promise<void> | undefined = undefined;

  constructor(instancer: Instancer, factory: Factory<Req, Res>, options: EndpointerOptions | undefined) {
    if (typeof factory !== "function") throw new TypeError("createEndpointer: factory must be a function");
    const timeout = options?.invalidateTimeout;
    if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0)) {
      throw new RangeError(
        `createEndpointer: invalidateTimeout must be a number of ms >= 0, got ${String(timeout)}`,
      );
    }
    // Node fires a longer timer after 1 ms: every endpoint would go at the first error.
    if (timeout !== undefined && timeout !== Number.POSITIVE_INFINITY && timeout > MAX_TIMER_MS) {
      throw new RangeError(
        `createEndpointer: invalidateTimeout must be at most ${MAX_TIMER_MS} ms (24.8 days) or Infinity, got ${timeout}`,
      );
    }
    this.#retry = resolveRetry(options?.factoryRetry);
    this.#factoryTimeout = resolveTimeout(
      "factoryTimeout",
      options?.factoryTimeout,
      defaultFactoryTimeout,
      true,
    );
    this.#closeTimeout = resolveTimeout("closeTimeout", options?.closeTimeout, defaultCloseTimeout, false);
    this.#factory = factory;
    this.#invalidateTimeout = timeout === Number.POSITIVE_INFINITY ? undefined : timeout;
    this.#onError = options?.onError;
    this.#unsubscribe = instancer.subscribe((state) => this.#onState(state));
  }

  endpoints(): readonly EndpointEntry<Req, Res>[] {
    return this.#entries;
  }

  get error(): Error | undefined {
    if (this.#instancerError !== undefined) return this.#instancerError;
    for (const error of this.#factoryErrors.values()) return error;
    return undefined;
  }

  subscribe(listener: (entries: readonly EndpointEntry<Req, Res>[]) => void): () => void {
    if (this.#closed !== undefined) {
      listener(this.#entries);
      return noop;
    }
    return this.#emitter.subscribe(listener);
  }

  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closed = Promise.resolve();
    this.#clearTimer();
    this.#unsubscribe();
    this.#emitter.clear();
    // A factory call still running is told to stop; what it makes when it settles is closed.
    const cancelled = new ServiceError(Code.CANCELLED, "createEndpointer: the endpointer was closed");
    for (const attempt of this.#attempts.values()) {
      if (attempt.running) this.#giveUp(attempt, cancelled);
    }
    this.#dropAll();
    this.#factoryErrors.clear();
    this.#closed = this.#settleClose();
    return this.#closed;
  }

  /** Waits for running factory calls, then for every close, at most `closeTimeout`. */
  async #settleClose(): Promise<void> {
    const creates = [...this.#pendingCreates];
    if (creates.length === 0 && this.#pendingCloses.size === 0) return;
    const all = Promise.all(creates).then(() => Promise.all([...this.#pendingCloses]));
    const limit = this.#closeTimeout;
    if (limit === undefined) {
      await all;
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), limit);
      }),
    ]);
    clearTimeout(timer);
    if (!timedOut) return;
    const calls = this.#pendingCreates.size;
    const closes = this.#pendingCloses.size;
    this.#report(
      new ServiceError(
        Code.DEADLINE_EXCEEDED,
        `createEndpointer: close() gave up after ${limit} ms with ${calls} factory call(s) and ${closes} endpoint close(s) still running; what they make is closed when they settle`,
      ),
      { during: "close" },
    );
  }

  #onState(state: InstancerState): void {
    if (this.#closed !== undefined) return;
    let changed = false;
    const error = state.error;
    if (error === undefined) {
      this.#clearTimer();
      this.#invalidated = false;
      this.#instancerError = undefined;
      changed = this.#apply(state.instances);
    } else {
      this.#instancerError = error;
      // An instancer in error still reports its last good set; an empty one (a backend that flaps)
      // is not applied, so a failure never empties the endpoints by itself.
      if (!this.#invalidated && state.instances.length > 0) changed = this.#apply(state.instances);
      if (!this.#invalidated && this.#timer === undefined && this.#invalidateTimeout !== undefined) {
        if (this.#invalidateTimeout === 0) {
          changed = this.#invalidate() || changed;
        } else {
          const timer = setTimeout(() => this.#onInvalidateTimer(), this.#invalidateTimeout);
          (timer as { unref?: () => void }).unref?.();
          this.#timer = timer;
        }
      }
    }
    if (changed) this.#emitter.emit();
  }

  #onInvalidateTimer(): void {
    this.#timer = undefined;
    if (this.#closed !== undefined || !this.#invalidate()) return;
    this.#emitOwnChange();
  }

  /** Tells listeners of a change nobody else made (a timer, a factory that settled later). */
  #emitOwnChange(): void {
    try {
      this.#emitter.emit();
    } catch (error) {
      this.#report(error, { during: "listener" });
    }
  }

  /** Drops every endpoint after an error outlived `invalidateTimeout`; returns whether entries changed. */
  #invalidate(): boolean {
    this.#invalidated = true;
    const had = this.#entries.length > 0;
    this.#dropAll();
    return had;
  }

  #dropAll(): void {
    const cached = [...this.#cache.values()];
    this.#cache.clear();
    this.#listed = noEntries;
    this.#entries = noEntries;
    for (const attempt of this.#attempts.values()) this.#forget(attempt);
    for (const c of cached) this.#closeOne(c.close, c.entry.instance);
  }

  /** Makes the entries follow `instances`; returns whether they changed. */
  #apply(instances: readonly Instance[]): boolean {
    this.#listed = instances;
    const seen = new Set<string>();
    for (const instance of instances) {
      const address = instance.address;
      if (seen.has(address)) continue;
      seen.add(address);
      const cached = this.#cache.get(address);
      if (cached !== undefined) {
        // Same address, new weight or metadata: keep the endpoint, refresh the entry.
        if (!sameInstance(cached.entry.instance, instance)) {
          cached.entry = Object.freeze({ instance, endpoint: cached.entry.endpoint });
        }
        continue;
      }
      let attempt = this.#attempts.get(address);
      if (attempt === undefined) {
        attempt = {
          instance,
          listed: true,
          running: false,
          controller: undefined,
          deadline: undefined,
          failures: 0,
          timer: undefined,
        };
        this.#attempts.set(address, attempt);
      } else {
        attempt.instance = instance;
        attempt.listed = true;
        // One call per address at a time: the running one decides (within factoryTimeout).
        if (attempt.running) continue;
        // A change is a reason to try again now, without waiting for the backoff.
        this.#clearRetry(attempt);
      }
      this.#call(attempt);
    }
    for (const address of this.#factoryErrors.keys()) {
      if (!seen.has(address)) this.#factoryErrors.delete(address);
    }
    for (const attempt of [...this.#attempts.values()]) {
      if (!seen.has(attempt.instance.address)) this.#forget(attempt);
    }
    for (const [address, cached] of this.#cache) {
      if (seen.has(address)) continue;
      this.#cache.delete(address);
      this.#closeOne(cached.close, cached.entry.instance);
    }
    return this.#rebuild();
  }

  /** Sets the entries from the listed instances that have an endpoint; returns whether they changed. */
  #rebuild(): boolean {
    const next: EndpointEntry<Req, Res>[] = [];
    const seen = new Set<string>();
    for (const instance of this.#listed) {
      if (seen.has(instance.address)) continue;
      seen.add(instance.address);
      const cached = this.#cache.get(instance.address);
      if (cached !== undefined) next.push(cached.entry);
    }
    const current = this.#entries;
    if (next.length === current.length && next.every((entry, i) => entry === current[i])) return false;
    this.#entries = Object.freeze(next);
    return true;
  }

  /** Stops retrying an address that is no longer listed; a running call is discarded when it settles. */
  #forget(attempt: Attempt): void {
    this.#clearRetry(attempt);
    attempt.listed = false;
    if (!attempt.running) this.#attempts.delete(attempt.instance.address);
  }

  /**
   * Calls the factory for the attempt's address. Returns whether it made an endpoint synchronously
   * (the caller then rebuilds the entries); a promise is followed and settles on its own, or is given
   * up after `factoryTimeout`.
   */
  #call(attempt: Attempt): boolean {
    const instance = attempt.instance;
    const controller = new AbortController();
    attempt.running = true;
    attempt.controller = controller;
    let result: FactoryResult<Req, Res> | PromiseLike<FactoryResult<Req, Res>>;
    try {
      result = this.#factory(instance, controller.signal);
      if (isThenable(result)) {
        const settled = Promise.resolve(result).then(
          (value) => this.#settledLater(attempt, controller, instance, value, undefined),
          (error: unknown) => this.#settledLater(attempt, controller, instance, undefined, { error }),
        );
        const pending: Promise<void> = settled.then(() => {
          this.#pendingCreates.delete(pending);
        });
        this.#pendingCreates.add(pending);
        if (this.#factoryTimeout !== undefined && attempt.controller === controller) {
          const deadline = setTimeout(() => this.#onDeadline(attempt, controller), this.#factoryTimeout);
          (deadline as { unref?: () => void }).unref?.();
          attempt.deadline = deadline;
        }
        return false;
      }
    } catch (error) {
      attempt.controller = undefined;
      return this.#finish(attempt, instance, undefined, { error });
    }
    attempt.controller = undefined;
    return this.#finish(attempt, instance, result, undefined);
  }

  /** A factory call ran out of `factoryTimeout`: it counts as failed and is retried; its late result is closed. */
  #onDeadline(attempt: Attempt, controller: AbortController): void {
    attempt.deadline = undefined;
    if (attempt.controller !== controller || this.#closed !== undefined) return;
    const instance = attempt.instance;
    const error = new ServiceError(
      Code.DEADLINE_EXCEEDED,
      `factory for instance ${instance.address} did not settle within ${this.#factoryTimeout} ms`,
    );
    this.#giveUp(attempt, error);
    if (this.#finish(attempt, instance, undefined, { error }) && this.#rebuild()) this.#emitOwnChange();
  }

  /** Detaches the running call from its attempt and aborts its signal with `reason`. */
  #giveUp(attempt: Attempt, reason: ServiceError): void {
    const controller = attempt.controller;
    attempt.controller = undefined;
    attempt.running = false;
    if (attempt.deadline !== undefined) {
      clearTimeout(attempt.deadline);
      attempt.deadline = undefined;
    }
    controller?.abort(reason);
  }

  #settledLater(
    attempt: Attempt,
    controller: AbortController,
    instance: Instance,
    result: FactoryResult<Req, Res> | undefined,
    failure: { error: unknown } | undefined,
  ): void {
    if (attempt.controller !== controller) {
      // Given up (timed out, or the endpointer closed): its failure was already counted or no longer
      // matters; what it made is not wanted.
      if (failure === undefined && typeof result?.close === "function")
        this.#closeOne(result.close, instance);
      return;
    }
    attempt.controller = undefined;
    if (attempt.deadline !== undefined) {
      clearTimeout(attempt.deadline);
      attempt.deadline = undefined;
    }
    if (this.#finish(attempt, instance, result, failure) && this.#rebuild()) this.#emitOwnChange();
  }

  /**
   * Takes the outcome of a factory call for `instance`: caches the endpoint if the address is still
   * listed (else closes it), or records and reports the failure and schedules a retry. Returns
   * whether an endpoint was cached.
   */
  #finish(
    attempt: Attempt,
    instance: Instance,
    result: FactoryResult<Req, Res> | undefined,
    failure: { error: unknown } | undefined,
  ): boolean {
    attempt.running = false;
    const address = instance.address;
    const live = attempt.listed && this.#closed === undefined;
    let error: unknown;
    if (failure === undefined) {
      if (typeof result?.endpoint === "function") {
        const close = typeof result.close === "function" ? result.close : undefined;
        this.#attempts.delete(address);
        if (!live) {
          this.#closeOne(close, instance);
          return false;
        }
        this.#factoryErrors.delete(address);
        this.#cache.set(address, {
          entry: Object.freeze({ instance: attempt.instance, endpoint: result.endpoint }),
          close,
        });
        return true;
      }
      if (typeof result?.close === "function") this.#closeOne(result.close, instance);
      error = new TypeError(`factory returned no endpoint function for instance ${address}`);
    } else {
      error = failure.error;
    }
    if (live) this.#factoryErrors.set(address, toError(error));
    this.#report(error, { during: "create", instance });
    if (!live || this.#retry === undefined) {
      this.#attempts.delete(address);
      return false;
    }
    attempt.failures++;
    const timer = setTimeout(() => this.#onRetryTimer(attempt), retryDelay(attempt.failures, this.#retry));
    (timer as { unref?: () => void }).unref?.();
    attempt.timer = timer;
    return false;
  }

  #onRetryTimer(attempt: Attempt): void {
    attempt.timer = undefined;
    if (this.#closed !== undefined || !attempt.listed || attempt.running) return;
    if (this.#call(attempt) && this.#rebuild()) this.#emitOwnChange();
  }

  #clearRetry(attempt: Attempt): void {
    if (attempt.timer !== undefined) {
      clearTimeout(attempt.timer);
      attempt.timer = undefined;
    }
  }

  #closeOne(close: (() => void | Promise<void>) | undefined, instance: Instance): void {
    if (close === undefined) return;
    let result: void | Promise<void>;
    try {
      result = close();
    } catch (error) {
      this.#report(error, { during: "close", instance });
      return;
    }
    if (result === undefined || typeof (result as { then?: unknown }).then !== "function") return;
    const pending: Promise<void> = Promise.resolve(result).then(
      () => {
        this.#pendingCloses.delete(pending);
      },
      (error: unknown) => {
        this.#pendingCloses.delete(pending);
        this.#report(error, { during: "close", instance });
      },
    );
    this.#pendingCloses.add(pending);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #report(error: unknown, info: EndpointerErrorInfo): void {
    try {
      this.#onError?.(error, info);
    } catch {
      // An error handler that throws must not break the endpointer; there is nobody left to tell.
    }
  }
}

/**
 * Creates an {@link Endpointer}: it follows `instancer`, calls `factory` once for each new
 * instance, caches the endpoint by address, and closes the endpoints of instances that went away.
 * While the instancer reports an error the last good endpoints stay (see
 * {@link EndpointerOptions.invalidateTimeout}). A factory that throws or rejects for one instance
 * only skips that instance, which is retried with backoff while it is listed (see
 * {@link EndpointerOptions.factoryRetry}).
 *
 * @example
 * ```ts
 * const instancer = createStaticInstancer(["127.0.0.1:8081", "127.0.0.1:8082"]);
 * const endpointer = createEndpointer(instancer, (instance) => ({
 *   endpoint: createHttpClient(`http://${instance.address}/sum`, "POST", encodeJsonRequest, jsonResponseDecoder()),
 * }));
 * endpointer.endpoints().length; // 2
 * await endpointer.close();
 * ```
 */
export function createEndpointer<Req, Res>(
  instancer: Instancer,
  factory: Factory<Req, Res>,
  options?: EndpointerOptions,
): Endpointer<Req, Res> {
  return new EndpointerImpl(instancer, factory, options);
}
