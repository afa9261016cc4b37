import { Emitter } from "./emitter.js";
import {
  type Instance,
  type InstanceInit,
  type Instancer,
  type InstancerState,
  normalizeInstances,
  sameInstanceSet,
} from "./instance.js";

/** Options of {@link InstanceCache} and {@link createInstanceCache}. */
export interface InstanceCacheOptions {
  /** Called once by `close()`: stop the backend's watch or poll here. */
  onClose?: () => void;
  /**
   * Where the errors go that `update` and `fail` would otherwise throw — an invalid instance given to
   * `update` (the state stays as it was) and what listeners threw (after all of them ran) — so a
   * backend's watch or poll loop is never broken by them. When set, `update` and `fail` never throw.
   * A non-Error is wrapped in one; an `onError` that throws is ignored.
   */
  onError?: (error: Error) => void;
}

const emptyState: InstancerState = Object.freeze({ instances: Object.freeze([]) as readonly Instance[] });

/**
 * The state keeper every discovery backend (static, etcd, Consul, DNS) builds on: the backend calls
 * {@link InstanceCache.update} with each set it sees and {@link InstanceCache.fail} when a lookup
 * fails; the cache implements {@link Instancer} for the endpointer.
 *
 * Rules it enforces:
 * - `fail` keeps the last known good instances and only adds the error, so a transient backend
 *   failure never flaps the set to empty. The next successful `update` clears the error.
 * - Listeners hear only real changes: an `update` with the same instances (in any order, e.g. a DNS
 *   answer in rotated order) and no error to clear notifies nobody, and a `fail` with the same
 *   message as the error already reported does not either.
 * - A backend that listed the set but knows it may be stale (its watch is down) passes the error
 *   with the set, `update(instances, error)`, so listeners hear one change, not "ok" then "failed".
 * - Instances are validated and frozen; a repeated address keeps its first entry.
 * - After `close()` updates and failures are ignored (invalid input included: nothing throws).
 *
 * @example
 * ```ts
 * const cache = new InstanceCache([], { onClose: () => clearInterval(timer) });
 * const timer = setInterval(async () => {
 *   try {
 *     cache.update(await lookup("users"));
 *   } catch (error) {
 *     cache.fail(error); // keeps serving the last good set
 *   }
 * }, 5_000);
 * ```
 */
export class InstanceCache implements Instancer {
  #state: InstancerState = emptyState;
  #closed = false;
  readonly #onClose: (() => void) | undefined;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #emitter = new Emitter<InstancerState>(() => this.#state);

  /**
   * @param instances - the initial set (empty when absent).
   * @param options - what to do on close, and where errors go.
   */
  constructor(instances?: Iterable<InstanceInit>, options?: InstanceCacheOptions) {
    this.#onClose = options?.onClose;
    this.#onError = options?.onError;
    if (instances !== undefined) {
      const list = normalizeInstances(instances, "InstanceCache");
      if (list.length > 0) this.#state = Object.freeze({ instances: list });
    }
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  current(): InstancerState {
    return this.#state;
  }

  subscribe(listener: (state: InstancerState) => void): () => void {
    if (this.#closed) {
      listener(this.#state);
      return noop;
    }
    return this.#emitter.subscribe(listener);
  }

  /**
   * Replaces the set with `instances` and clears any error, or, given `error`, sets that error with
   * it: one state change, so a backend whose listing succeeded while its watch is still down reports
   * both at once instead of telling listeners "healthy" and then "failed" (a non-Error is wrapped in
   * one). Returns whether the state changed (and listeners were told): not for the same set (in any
   * order) with the same error message, or no error, as before. An empty list is a real answer ("no
   * instances registered"), not a failure: backends call {@link InstanceCache.fail} when they could
   * not ask.
   *
   * Throws a TypeError or RangeError, leaving the state as it was, when an instance is invalid.
   * Rethrows what listeners threw, after all of them ran. With the `onError` option, both go there
   * instead. After `close()` it does nothing, not even validate, and returns false.
   *
   * @param instances - the set the backend reported.
   * @param error - why that set may be stale (e.g. the watch that keeps it current is down); absent
   *   clears the error.
   *
   * @example
   * ```ts
   * cache.update(await listPrefix()); // healthy
   * cache.update(await listPrefix(), watchError); // listed, but not being watched: set and error at once
   * ```
   */
  update(instances: Iterable<InstanceInit>, error?: unknown): boolean {
    if (this.#closed) return false;
    let list: readonly Instance[];
    try {
      list = normalizeInstances(instances, "InstanceCache.update");
    } catch (invalid) {
      if (this.#onError === undefined) throw invalid;
      this.#report(invalid);
      return false;
    }
    const err = error === undefined ? undefined : toError(error);
    const state = this.#state;
    const same = sameInstanceSet(state.instances, list);
    if (same && state.error?.message === err?.message) return false;
    const kept = same ? state.instances : list;
    this.#state =
      err !== undefined
        ? Object.freeze({ instances: kept, error: err })
        : kept.length === 0
          ? emptyState
          : Object.freeze({ instances: kept });
    this.#emit();
    return true;
  }

  /**
   * Reports that the backend's lookup failed: the instances stay as they were (the last known good
   * set) and the state carries `error`. Returns whether listeners were told: not when the same
   * message is already reported. A non-Error is wrapped in one. Rethrows what listeners threw (to
   * `onError` when given).
   */
  fail(error: unknown): boolean {
    if (this.#closed) return false;
    const err = toError(error);
    const state = this.#state;
    if (state.error !== undefined && state.error.message === err.message) return false;
    this.#state = Object.freeze({ instances: state.instances, error: err });
    this.#emit();
    return true;
  }

  #emit(): void {
    if (this.#onError === undefined) {
      this.#emitter.emit();
      return;
    }
    try {
      this.#emitter.emit();
    } catch (error) {
      this.#report(error);
    }
  }

  #report(error: unknown): void {
    if (this.#onError !== undefined) report(this.#onError, error);
  }

  /** Drops the listeners, ignores later updates and calls `onClose` once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#emitter.clear();
    this.#onClose?.();
  }
}

/**
 * Hands `error` (a non-Error wrapped in one) to `onError`, ignoring what `onError` throws, so a
 * backend's loop is never broken by it. Internal to the package (also used by BackendInstancer).
 */
export function report(onError: (error: Error) => void, error: unknown): void {
  try {
    onError(error instanceof Error ? error : new Error(String(error)));
  } catch {
    // ignored: onError must not break the backend's loop
  }
}

function noop(): void {}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error), { cause: error });
}

/**
 * Creates an {@link InstanceCache}: an {@link Instancer} a discovery backend feeds with `update` and
 * `fail`, which keeps the last good set on failures.
 *
 * @example
 * ```ts
 * const cache = createInstanceCache(["10.0.0.1:8080"]);
 * cache.update(["10.0.0.1:8080", "10.0.0.2:8080"]);
 * cache.fail(new Error("consul: connection refused"));
 * cache.current(); // { instances: [both], error: Error("consul: connection refused") }
 * ```
 */
export function createInstanceCache(
  instances?: Iterable<InstanceInit>,
  options?: InstanceCacheOptions,
): InstanceCache {
  return new InstanceCache(instances, options);
}
