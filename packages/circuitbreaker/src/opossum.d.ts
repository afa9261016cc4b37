// The part of opossum 9's API this package uses. opossum 9 ships no types and @types/opossum would be
// one more dependency for a handful of members, so they are declared here. Only the options and members
// used by circuit-breaker.ts are listed; see opossum's lib/circuit.js and lib/status.js.
declare module "opossum" {
  import type { EventEmitter } from "node:events";

  namespace CircuitBreaker {
    interface Options {
      name?: string;
      /** Per-call time limit in ms, or `false` for none. */
      timeout?: number | false;
      resetTimeout?: number;
      errorThresholdPercentage?: number;
      volumeThreshold?: number;
      rollingCountTimeout?: number;
      rollingCountBuckets?: number;
      rollingPercentilesEnabled?: boolean;
      enableSnapshots?: boolean;
      /** An emitter whose `rotate` events rotate the rolling window's buckets instead of opossum's timer. */
      rotateBucketController?: EventEmitter;
      /** Returns true for errors that must not count as failures (opossum then emits `success`). */
      errorFilter?: (error: unknown, ...args: unknown[]) => boolean;
    }

    /** Counts over the rolling window (more fields exist; only these are read). */
    interface Stats {
      fires: number;
      successes: number;
      failures: number;
      rejects: number;
    }
  }

  class CircuitBreaker<Args extends unknown[] = unknown[], Result = unknown> extends EventEmitter {
    /**
     * opossum calls `action(...args)` synchronously inside `fire`, then `.then(onFulfilled)` on what it
     * returns (once, with one argument) and `.catch` on the promise that gives.
     */
    constructor(action: (...args: Args) => PromiseLike<Result>, options?: CircuitBreaker.Options);
    readonly name: string;
    readonly closed: boolean;
    readonly opened: boolean;
    readonly halfOpen: boolean;
    readonly pendingClose: boolean;
    readonly isShutdown: boolean;
    readonly stats: CircuitBreaker.Stats;
    fire(...args: Args): Promise<Result>;
    open(): void;
    close(): void;
    shutdown(): void;
  }

  export = CircuitBreaker;
}
