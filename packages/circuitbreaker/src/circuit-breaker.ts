import { EventEmitter } from "node:events";
import {
  Code,
  type Context,
  type Endpoint,
  type GenericMiddleware,
  MAX_TIMER_MS,
  type Middleware,
  ServiceError,
} from "@svckit/endpoint";
import Opossum from "opossum";

/** The state of a circuit breaker: `closed` lets calls through, `open` refuses them, `halfOpen` lets one trial call through. */
export type CircuitState = "closed" | "open" | "halfOpen";

/**
 * Hears a breaker's state changes. Called synchronously, in order, before the call that caused the change
 * settles. An exception thrown by a listener does not reach the breaker, the call or the other listeners:
 * it is rethrown on a microtask (as `EventTarget` does), where the process's `uncaughtException` handling
 * sees it.
 */
export type CircuitStateListener = (state: CircuitState, previous: CircuitState) => void;

/**
 * Counts over the breaker's rolling window (the last `rollingCountTimeout` ms). The window is cleared when
 * the breaker closes, so a breaker that recovers starts afresh.
 */
export interface CircuitBreakerStats {
  /** Calls made through the breaker, including the ones it refused. */
  readonly calls: number;
  /** Calls that succeeded, or failed with an error `isFailure` does not count. */
  readonly successes: number;
  /** Calls that failed with an error `isFailure` counts. */
  readonly failures: number;
  /** Calls the breaker refused because it was open (or half-open with its trial call in flight). */
  readonly rejected: number;
}

/**
 * Options of {@link createCircuitBreaker} and {@link circuitBreaker}.
 *
 * @typeParam Req - the fallback's request type. Without a fallback (the default `never`) the middleware
 *   is generic; with one it is fixed to the fallback's types.
 * @typeParam Res - the fallback's response type.
 */
export interface CircuitBreakerOptions<Req = never, Res = never> {
  /** Names the breaker in errors and for metrics; keep it a constant (e.g. the dependency's name). */
  name: string;
  /**
   * The breaker opens when more than this percentage of the calls in the rolling window failed
   * (0–100; 100 never opens). Default 50.
   */
  errorThresholdPercentage?: number;
  /** The breaker never opens before the rolling window holds at least this many calls. Default 20. */
  volumeThreshold?: number;
  /** Length of the rolling window in ms. Default 10 000. */
  rollingCountTimeout?: number;
  /** Number of buckets the window is divided into; it slides one bucket at a time. Default 10. */
  rollingCountBuckets?: number;
  /** How long the breaker stays open before letting one trial call through, in ms. Default 10 000. */
  resetTimeout?: number;
  /**
   * Which errors count as failures. Gets the error as a {@link ServiceError} (other thrown values are
   * converted with `ServiceError.from`, i.e. mostly INTERNAL). Default {@link defaultIsFailure}: all but
   * client faults and CANCELLED. A predicate that throws counts the error as a failure.
   */
  isFailure?: (error: ServiceError) => boolean;
  /**
   * Answers the calls the breaker refuses (open, half-open with its trial call in flight, or shut down)
   * instead of failing them with UNAVAILABLE. Its result or error is the call's. Not called for errors of
   * the wrapped endpoint: use `@svckit/fallback` for those.
   */
  fallback?: Endpoint<Req, Res>;
}

/**
 * A circuit breaker: its middleware plus what to observe and control it with. `{ name, state, subscribe }`
 * is all a metrics package needs, structurally, without importing opossum.
 *
 * @typeParam M - the middleware's type: generic without a fallback, fixed to the fallback's types with one.
 */
export interface CircuitBreaker<M = GenericMiddleware> {
  /** The breaker's name, as given. */
  readonly name: string;
  /** The current state. `open` for good once {@link CircuitBreaker.shutdown} was called. */
  readonly state: CircuitState;
  /** The middleware. Every endpoint it wraps shares this one breaker. */
  readonly middleware: M;
  /** Calls `listener` on every state change until the returned function is called. */
  subscribe(listener: CircuitStateListener): () => void;
  /** The counts over the current rolling window. */
  stats(): CircuitBreakerStats;
  /**
   * Stops the breaker's timers and drops its listeners (after telling them it is `open`). Afterwards every
   * call is refused with UNAVAILABLE (or answered by the fallback). Idempotent. Not needed to let the
   * process exit: the timers never keep it alive.
   */
  shutdown(): void;
}

/** Codes that mean the caller asked for something wrong: the dependency answered, so it is healthy. */
const clientFaults: ReadonlySet<Code> = new Set<Code>([
  Code.INVALID_ARGUMENT,
  Code.NOT_FOUND,
  Code.ALREADY_EXISTS,
  Code.PERMISSION_DENIED,
  Code.UNAUTHENTICATED,
  Code.FAILED_PRECONDITION,
  Code.OUT_OF_RANGE,
]);

/**
 * The default `isFailure`: every error counts except
 * - client faults (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, UNAUTHENTICATED,
 *   FAILED_PRECONDITION, OUT_OF_RANGE): the dependency answered, correctly, so it is healthy;
 * - CANCELLED: the caller gave up, which says nothing about the dependency; counting it would let
 *   impatient callers open the breaker for everyone. (DEADLINE_EXCEEDED does count: it is what a slow
 *   dependency looks like.) A CANCELLED while the caller's context is still live is not the caller's:
 *   the breaker counts it as a failure before asking this predicate.
 *
 * @example
 * ```ts
 * // Also ignore rate limiting by the dependency:
 * const isFailure = (e: ServiceError) => e.code !== Code.RESOURCE_EXHAUSTED && defaultIsFailure(e);
 * ```
 */
export function defaultIsFailure(error: ServiceError): boolean {
  return error.code !== Code.CANCELLED && !clientFaults.has(error.code);
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new RangeError(`createCircuitBreaker: ${message}`);
}

/**
 * What tells a breaker's outcome handling that the call being settled is stale: started before the
 * breaker last opened, so its outcome says nothing about the dependency as it is now.
 */
interface Generations {
  /** Counts the breaker's openings; a call carries the value it had when it started. */
  current: number;
  /** Set while opossum handles a stale call's outcome, until it emits that outcome's `success`. */
  settlingStale: boolean;
}

/**
 * The endpoint's answer as opossum's action returns it: a thenable whose `then` marks a stale call's
 * success for the breaker's `emit` (opossum emits `success` synchronously inside its `onFulfilled`).
 */
class Tracked<Res> implements PromiseLike<Res> {
  constructor(
    private readonly answer: Promise<Res>,
    private readonly generation: number,
    private readonly generations: Generations,
  ) {}

  // biome-ignore lint/suspicious/noThenProperty: a thenable is the point: opossum awaits it like a promise
  then<A = Res, B = never>(
    onFulfilled?: ((value: Res) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    if (typeof onFulfilled !== "function") return this.answer.then(onFulfilled, onRejected);
    const { generation, generations } = this;
    return this.answer.then((value) => {
      generations.settlingStale = generation !== generations.current;
      try {
        return onFulfilled(value);
      } finally {
        generations.settlingStale = false;
      }
    }, onRejected);
  }
}

function throwLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/**
 * Creates a circuit breaker on opossum. While `closed`, calls go through and the breaker counts failures
 * over a rolling window; once at least `volumeThreshold` calls were made and more than
 * `errorThresholdPercentage` % of them failed, it opens. While `open`, calls fail at once with
 * UNAVAILABLE (`circuit breaker "<name>" is open`) or are answered by `fallback`, and the endpoint is not
 * called. After `resetTimeout` it turns `halfOpen` and lets exactly one trial call through (others are
 * refused meanwhile): if that call succeeds (or fails with an error that does not count, like a client
 * fault), the breaker closes and its window is cleared; if it fails, or is cancelled by its caller (which
 * proves nothing), it opens again for another `resetTimeout`. A call that started before the breaker last
 * opened and settles later is neither counted nor allowed to change the state: only the trial call decides.
 *
 * Errors of the endpoint pass through unchanged. The breaker has no timeout of its own: put
 * `timeout(ms)` after it in the chain (a trial call that never settles keeps the breaker half-open).
 *
 * @example
 * ```ts
 * const users = createCircuitBreaker({ name: "users", volumeThreshold: 10, resetTimeout: 5_000 });
 * users.subscribe((state, previous) => console.log(`users: ${previous} -> ${state}`));
 * const getUser = chain(users.middleware, timeout(1_000))(getUserClient);
 * ```
 */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker;
/** With a fallback: the middleware is fixed to the fallback's request and response types. */
export function createCircuitBreaker<Req, Res>(
  options: CircuitBreakerOptions<Req, Res>,
): CircuitBreaker<Middleware<Req, Res>>;
export function createCircuitBreaker<Req, Res>(
  options: CircuitBreakerOptions<Req, Res> | CircuitBreakerOptions,
): CircuitBreaker | CircuitBreaker<Middleware<Req, Res>> {
  const {
    name,
    errorThresholdPercentage = 50,
    volumeThreshold = 20,
    rollingCountTimeout = 10_000,
    rollingCountBuckets = 10,
    resetTimeout = 10_000,
    isFailure = defaultIsFailure,
  } = options;
  // Without a fallback of its own type the options hold an Endpoint<never, never>, which can only fail.
  const fallback = options.fallback as Endpoint<Req, Res> | undefined;
  if (typeof name !== "string" || name === "") {
    throw new TypeError("createCircuitBreaker: name must be a non-empty string");
  }
  check(
    errorThresholdPercentage >= 0 && errorThresholdPercentage <= 100,
    `errorThresholdPercentage must be between 0 and 100, got ${errorThresholdPercentage}`,
  );
  check(
    Number.isInteger(volumeThreshold) && volumeThreshold >= 0,
    `volumeThreshold must be a non-negative integer, got ${volumeThreshold}`,
  );
  check(
    Number.isInteger(rollingCountBuckets) && rollingCountBuckets >= 1,
    `rollingCountBuckets must be a positive integer, got ${rollingCountBuckets}`,
  );
  const bucketMs = Math.floor(rollingCountTimeout / rollingCountBuckets);
  check(
    bucketMs >= 1 && rollingCountTimeout <= MAX_TIMER_MS,
    `rollingCountTimeout must be at least 1 ms per bucket and at most ${MAX_TIMER_MS} ms, got ${rollingCountTimeout} for ${rollingCountBuckets} buckets`,
  );
  check(
    resetTimeout >= 0 && resetTimeout <= MAX_TIMER_MS,
    `resetTimeout must be between 0 and ${MAX_TIMER_MS} ms, got ${resetTimeout}`,
  );
  if (typeof isFailure !== "function")
    throw new TypeError("createCircuitBreaker: isFailure must be a function");
  if (fallback !== undefined && typeof fallback !== "function") {
    throw new TypeError("createCircuitBreaker: fallback must be an endpoint (a function)");
  }

  const counts = (error: unknown, ctx: Context | undefined): boolean => {
    const serviceError = ServiceError.from(error);
    let failed: boolean;
    if (serviceError.code === Code.CANCELLED && ctx?.aborted === false) {
      // Not the caller giving up (its context is live): something on the dependency's side aborted the
      // call (an AbortController timer, a client library's timeout), which is what a hanging
      // dependency looks like.
      failed = true;
    } else {
      try {
        failed = isFailure(serviceError) !== false;
      } catch {
        failed = true;
      }
    }
    // A cancelled trial call proves nothing, so it must not close the breaker: it opens it again.
    return failed || (serviceError.code === Code.CANCELLED && breaker.halfOpen);
  };

  // A call that started before the breaker last opened (a slow call still in flight when it opened) must
  // not decide anything: opossum would close a half-open breaker on its late success, or reopen it on its
  // late failure while the trial call is still running. As with go-kit's gobreaker, such outcomes are
  // ignored: each call carries the generation it started in; a stale failure is filtered (errorFilter)
  // and the resulting `success`, like a stale success, is not emitted, so opossum neither counts it nor
  // changes state. Calls from before an opening were counted in a window the closing clears anyway.
  const generations: Generations = { current: 0, settlingStale: false };
  const run = (endpoint: Endpoint<Req, Res>, ctx: Context, request: Req, generation: number): Tracked<Res> =>
    // Promise.resolve: the very promise for an endpoint's own; a plain value from a non-async one works too.
    new Tracked(Promise.resolve(endpoint(ctx, request)), generation, generations);

  // The rolling window is rotated by this emitter from one unref'd timer instead of opossum's own
  // interval, so the window can also be cleared when the breaker closes (opossum keeps it otherwise, and
  // stale failures would reopen a recovered breaker at the next error).
  const rotation = new EventEmitter();
  const breaker = new Opossum<[Endpoint<Req, Res>, Context, Req, number], Res>(run, {
    name,
    timeout: false, // svckit's timeout middleware does this, with the context's deadline
    resetTimeout,
    errorThresholdPercentage,
    volumeThreshold,
    rollingCountTimeout,
    rollingCountBuckets,
    rollingPercentilesEnabled: false, // would keep every latency of the window and sort them on each failure
    enableSnapshots: false, // one timer less; nothing listens to snapshots
    rotateBucketController: rotation,
    // opossum passes the arguments of `fire` after the error: (endpoint, ctx, request, generation).
    errorFilter: (error: unknown, ...args: unknown[]) => {
      if (args[3] !== generations.current) {
        generations.settlingStale = true;
        return true;
      }
      return !counts(error, args[1] as Context | undefined);
    },
  });
  const emit = breaker.emit;
  breaker.emit = function emitUnlessStale(event: string | symbol, ...args: unknown[]): boolean {
    if (event === "success" && generations.settlingStale) {
      generations.settlingStale = false;
      return false;
    }
    return emit.call(this, event, ...args);
  };
  const timer = setInterval(() => rotation.emit("rotate"), bucketMs);
  timer.unref();

  let state: CircuitState = "closed";
  let shutDown = false;
  const listeners = new Set<{ readonly listener: CircuitStateListener }>();

  const transition = (next: CircuitState): void => {
    const previous = state;
    if (previous === next) return;
    state = next;
    for (const entry of listeners) {
      try {
        entry.listener(next, previous);
      } catch (error) {
        throwLater(error);
      }
    }
  };
  breaker.on("open", () => {
    generations.current++;
    transition("open");
  });
  breaker.on("halfOpen", () => transition("halfOpen"));
  breaker.on("close", () => {
    for (let i = 0; i < rollingCountBuckets; i++) rotation.emit("rotate");
    transition("closed");
  });

  const openMessage = `circuit breaker "${name}" is open`;
  const busyMessage = `circuit breaker "${name}" is half-open and its trial call has not finished`;
  const shutDownMessage = `circuit breaker "${name}" is shut down`;

  /** Answers a call the breaker refuses: the fallback's answer, or UNAVAILABLE. */
  const refuse = (ctx: Context, request: Req): Promise<Res> => {
    if (!shutDown) {
      // opossum's counts see the refusal as if it had refused the call itself.
      breaker.emit("fire");
      breaker.emit("reject");
    }
    if (fallback !== undefined) {
      try {
        return fallback(ctx, request);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const message = shutDown ? shutDownMessage : breaker.halfOpen ? busyMessage : openMessage;
    return Promise.reject(new ServiceError(Code.UNAVAILABLE, message));
  };

  const middleware: Middleware<Req, Res> = function circuitBreakerMiddleware(next) {
    return function circuitBreakerEndpoint(ctx, request) {
      // The calls opossum would refuse (open, or half-open with the trial call taken) are refused here, before
      // opossum builds an Error with a stack trace per refusal: failing fast must stay cheap.
      if (shutDown || !(breaker.closed || breaker.pendingClose)) return refuse(ctx, request);
      return breaker.fire(next, ctx, request, generations.current);
    };
  };

  return {
    name,
    get state() {
      return state;
    },
    middleware,
    subscribe(listener) {
      if (typeof listener !== "function") throw new TypeError("subscribe: listener must be a function");
      const entry = { listener };
      if (!shutDown) listeners.add(entry);
      return () => {
        listeners.delete(entry);
      };
    },
    stats() {
      const { fires, successes, failures, rejects } = breaker.stats;
      return { calls: fires, successes, failures, rejected: rejects };
    },
    shutdown() {
      if (shutDown) return;
      shutDown = true;
      clearInterval(timer);
      breaker.shutdown();
      transition("open");
      listeners.clear();
    },
  };
}

/**
 * A circuit breaker middleware: `createCircuitBreaker(options).middleware`, for when nothing needs to
 * observe or shut down the breaker (its timers never keep the process alive).
 *
 * @example
 * ```ts
 * const getUser = chain(circuitBreaker({ name: "users" }), timeout(1_000))(getUserClient);
 * ```
 */
export function circuitBreaker(options: CircuitBreakerOptions): GenericMiddleware;
/** With a fallback: the middleware is fixed to the fallback's request and response types. */
export function circuitBreaker<Req, Res>(options: CircuitBreakerOptions<Req, Res>): Middleware<Req, Res>;
export function circuitBreaker<Req, Res>(
  options: CircuitBreakerOptions<Req, Res> | CircuitBreakerOptions,
): GenericMiddleware | Middleware<Req, Res> {
  return createCircuitBreaker(options as CircuitBreakerOptions<Req, Res>).middleware;
}
