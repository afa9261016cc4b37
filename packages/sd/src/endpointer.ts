import { type Endpoint, MAX_TIMER_MS } from "@svckit/endpoint";
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
 * aimed at `instance.address`, maybe wrapped in per-instance middleware (a circuit breaker). It is
 * called once per new instance; throwing skips that instance (reported to
 * {@link EndpointerOptions.onError}) without affecting the others, and the endpointer tries again on
 * the instancer's next change.
 *
 * @example
 * ```ts
 * const factory: Factory<SumRequest, SumResponse> = (instance) => ({
 *   endpoint: createHttpClient(`http://${instance.address}/sum`, "POST", encodeJsonRequest, jsonResponseDecoder()),
 * });
 * ```
 */
export type Factory<Req = unknown, Res = unknown> = (instance: Instance) => FactoryResult<Req, Res>;

/** What an {@link EndpointerOptions.onError} call is about. */
export interface EndpointerErrorInfo {
  /** `"create"`: the factory threw; `"close"`: an endpoint's close threw or rejected; `"listener"`: a listener threw on a timer-driven change. */
  readonly during: "create" | "close" | "listener";
  /** The instance concerned (absent for `"listener"`). */
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
  /** Told of factory errors, close errors and listener errors; none stops the endpointer. Default: ignore. */
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
   * Stops following the instancer (it does not close the instancer, which may be shared), closes
   * every endpoint and resolves once all their closes, and those still running from earlier
   * removals, have settled. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

interface Cached<Req, Res> {
  entry: EndpointEntry<Req, Res>;
  readonly close: (() => void | Promise<void>) | undefined;
}

const noEntries: readonly never[] = Object.freeze([]);

function noop(): void {}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value), { cause: value });
}

class EndpointerImpl<Req, Res> implements Endpointer<Req, Res> {
  readonly #factory: Factory<Req, Res>;
  readonly #invalidateTimeout: number | undefined;
  readonly #onError: EndpointerOptions["onError"];
  readonly #cache = new Map<string, Cached<Req, Res>>();
  readonly #factoryErrors = new Map<string, Error>();
  readonly #pendingCloses = new Set<Promise<void>>();
  readonly #emitter = new Emitter<readonly EndpointEntry<Req, Res>[]>(() => this.#entries);
  readonly #unsubscribe: () => void;
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
    this.#dropAll();
    this.#factoryErrors.clear();
    this.#closed = Promise.all([...this.#pendingCloses]).then(noop);
    return this.#closed;
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
    this.#entries = noEntries;
    for (const c of cached) this.#closeOne(c.close, c.entry.instance);
  }

  /** Makes the entries follow `instances`; returns whether they changed. */
  #apply(instances: readonly Instance[]): boolean {
    const next: EndpointEntry<Req, Res>[] = [];
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
        next.push(cached.entry);
        continue;
      }
      const created = this.#create(instance);
      if (created !== undefined) {
        this.#cache.set(address, created);
        next.push(created.entry);
      }
    }
    for (const address of this.#factoryErrors.keys()) {
      if (!seen.has(address)) this.#factoryErrors.delete(address);
    }
    for (const [address, cached] of this.#cache) {
      if (seen.has(address)) continue;
      this.#cache.delete(address);
      this.#closeOne(cached.close, cached.entry.instance);
    }
    const current = this.#entries;
    if (next.length === current.length && next.every((entry, i) => entry === current[i])) return false;
    this.#entries = Object.freeze(next);
    return true;
  }

  #create(instance: Instance): Cached<Req, Res> | undefined {
    let result: FactoryResult<Req, Res>;
    try {
      result = this.#factory(instance);
      if (typeof result?.endpoint !== "function") {
        if (typeof result?.close === "function") this.#closeOne(result.close, instance);
        throw new TypeError(`factory returned no endpoint function for instance ${instance.address}`);
      }
    } catch (error) {
      this.#factoryErrors.set(instance.address, toError(error));
      this.#report(error, { during: "create", instance });
      return undefined;
    }
    this.#factoryErrors.delete(instance.address);
    const close = typeof result.close === "function" ? result.close : undefined;
    return { entry: Object.freeze({ instance, endpoint: result.endpoint }), close };
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
 * {@link EndpointerOptions.invalidateTimeout}). A factory that throws for one instance only skips
 * that instance.
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
