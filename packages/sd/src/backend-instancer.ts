import type { Instancer, InstancerState } from "./instance.js";
import { InstanceCache, report } from "./instance-cache.js";

function noop(): void {}

/**
 * The skeleton of a discovery backend's instancer (svckit's etcd, Consul and DNS instancers extend it):
 * an {@link InstanceCache} the backend's watch or poll loop feeds, a `ready()` that resolves once the
 * first lookup has answered (or failed, or the instancer was closed), and one place for errors that must
 * not break the loop. A subclass:
 * - feeds `this.cache` with `update(instances)` and `fail(error)` (or `update(instances, error)` for a
 *   set it listed while it knows it may be stale, e.g. its watch is down);
 * - calls `this.settle()` after its first lookup, whatever came of it (later calls do nothing);
 * - reports what it skips (a malformed entry, say) with `this.tell(error)`;
 * - implements `stop()`: cancel timers, watches and requests. `close()` calls it once, then settles.
 *
 * Invalid instances given to `update` and errors thrown by listeners go to `onError` too, so neither
 * throws into the loop; an `onError` that throws is ignored.
 *
 * @example
 * ```ts
 * class PollingInstancer extends BackendInstancer {
 *   #timer: NodeJS.Timeout | undefined;
 *   constructor(lookup: () => Promise<string[]>, onError?: (error: Error) => void) {
 *     super(onError);
 *     const poll = async (): Promise<void> => {
 *       try {
 *         this.cache.update(await lookup());
 *       } catch (error) {
 *         this.cache.fail(error);
 *       }
 *       this.settle();
 *       if (!this.cache.closed) this.#timer = setTimeout(poll, 5_000);
 *     };
 *     void poll();
 *   }
 *   protected stop(): void {
 *     clearTimeout(this.#timer);
 *   }
 * }
 * ```
 */
export abstract class BackendInstancer implements Instancer {
  /** The state the backend feeds; closed once `close()` was called. */
  protected readonly cache: InstanceCache;
  readonly #onError: (error: Error) => void;
  readonly #ready: Promise<InstancerState>;
  #resolveReady: ((state: InstancerState) => void) | undefined;

  /**
   * @param onError - where invalid instances, listener errors and what the subclass `tell`s go
   *   (default: ignored).
   */
  protected constructor(onError: (error: Error) => void = noop) {
    this.#onError = onError;
    this.cache = new InstanceCache([], {
      onClose: () => {
        this.stop();
        this.settle();
      },
      onError,
    });
    this.#ready = new Promise((resolve) => {
      this.#resolveReady = resolve;
    });
  }

  current(): InstancerState {
    return this.cache.current();
  }

  subscribe(listener: (state: InstancerState) => void): () => void {
    return this.cache.subscribe(listener);
  }

  /** Stops the backend's loop (`stop()`, once) and drops the listeners; `ready()` resolves if it had not. */
  close(): void {
    this.cache.close();
  }

  /**
   * Resolves with the state once the first lookup has succeeded or failed (or the instancer was
   * closed); never rejects. Await it before the first call so a balancer does not start with an
   * empty set.
   */
  ready(): Promise<InstancerState> {
    return this.#ready;
  }

  /** Resolves `ready()` with the current state; only the first call counts. */
  protected settle(): void {
    const resolve = this.#resolveReady;
    if (resolve === undefined) return;
    this.#resolveReady = undefined;
    resolve(this.cache.current());
  }

  /** Hands `error` (a non-Error is wrapped in one) to `onError`; never throws. */
  protected tell(error: unknown): void {
    report(this.#onError, error);
  }

  /** Cancels the backend's timers, watches and requests in flight; called once, by `close()`. */
  protected abstract stop(): void;
}
