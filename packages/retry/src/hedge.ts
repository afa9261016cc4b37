import {
  type CancelableContext,
  Code,
  type Context,
  clearLongTimeout,
  type Endpoint,
  type GenericMiddleware,
  type LongTimeout,
  type Middleware,
  onAbort,
  ServiceError,
  setLongTimeout,
} from "@svckit/endpoint";
import { abortReasonOf, deadlinePassed } from "./abort.js";
import type { RetryBudget } from "./budget.js";
import { LatencyWindow } from "./latency.js";
import { checkBudget, checkFunction, describe } from "./options.js";
import { type RetryPredicate, resolvePredicate } from "./retryable.js";

/**
 * A hedging delay that follows the endpoint's recent latency: a percentile of the latencies of the
 * last `sampleSize` successful attempts (so the delay adapts as the backend speeds up or slows
 * down), and `fallback` until `minSamples` have been seen.
 */
export interface PercentileDelay {
  /**
   * The percentile in (0, 100], e.g. 95: hedge the calls slower than 95 % of recent ones. Taken as the
   * decimal written, to a millionth of a percent (p99.9 of 1000 latencies is the 999th smallest).
   */
  percentile: number;
  /** The delay in ms (finite, ≥ 0) used until `minSamples` latencies have been recorded. */
  fallback: number;
  /** How many latencies are needed before the percentile is used (an integer ≥ 1). Default 20. */
  minSamples?: number;
  /** How many recent latencies are kept (an integer ≥ 1). Default 1000. */
  sampleSize?: number;
}

/** What {@link HedgeOptions.onHedge} is told when a hedged attempt starts. */
export interface HedgeInfo {
  /** The number of the attempt that starts (2 for the first hedge). */
  readonly attempt: number;
  /** The ms since the previous attempt started. */
  readonly delay: number;
  /** The failure that made it start early, or `undefined` when the delay passed. */
  readonly error: ServiceError | undefined;
}

/** Options of {@link hedge}. */
export interface HedgeOptions {
  /**
   * How long to wait for an attempt before starting another: ms (finite, ≥ 0) or a
   * {@link PercentileDelay}. Waits longer than `MAX_TIMER_MS` (24.8 days) are made in steps, so a delay
   * longer than any call, e.g. `Number.MAX_SAFE_INTEGER`, hedges only after retryable failures.
   */
  delay: number | PercentileDelay;
  /** The most attempts per call, the first one included (an integer ≥ 1). Default 2. */
  maxAttempts?: number;
  /**
   * Each hedged attempt must be allowed by it; share one with `retry` and the load balancer. A budget
   * that throws fails the call with what it threw.
   */
  budget?: RetryBudget;
  /**
   * Which failures let the other attempts go on (and start the next one at once); any other failure
   * ends the call. Default {@link isRetryable}: UNAVAILABLE. `attemptTimedOut` is always `false` here.
   * A predicate that throws fails the call with what it threw (as in `retry`) and cancels the attempts.
   */
  retryOn?: RetryPredicate;
  /** With the default `retryOn`, treat RESOURCE_EXHAUSTED as retryable too. Default `false`. */
  retryResourceExhausted?: boolean;
  /** Called when a hedged attempt starts. A hook that throws counts as that attempt's failure. */
  onHedge?: (info: HedgeInfo) => void;
}

interface HedgeConfig {
  readonly maxAttempts: number;
  readonly budget: RetryBudget | undefined;
  readonly retryOn: RetryPredicate;
  readonly onHedge: ((info: HedgeInfo) => void) | undefined;
}

/**
 * Sends hedged requests (Dean & Barroso, "The Tail at Scale"; gRPC's hedging policy): when an
 * attempt has not answered after `delay`, another one is sent without cancelling the first, up to
 * `maxAttempts`, and the first success wins. The others are then cancelled: each attempt runs with
 * its own child context (`ctx.withCancel()`), whose `signal` aborts with CANCELLED.
 * - A failure that `retryOn` accepts starts the next attempt at once (if any is left); once all have
 *   failed, the call fails with the last failure that was not CANCELLED (else the last one).
 * - Any other failure ends the call at once with that error and cancels the other attempts.
 * - With a `budget`, each call records a request and every hedged attempt must be allowed by it, so
 *   hedging adds at most the budget's ratio to the load. A refused hedge is simply not sent, and no
 *   other is tried for that call. A budget that throws fails the call with what it threw.
 * - The caller's cancel reaches every attempt through its signal. Once a hedge was sent, or once no
 *   hedge may follow (`maxAttempts: 1`, or the budget refused), it also ends the call at once, even if
 *   attempts ignore their signals (before that, the one attempt is like a plain call: the call ends
 *   when it does, or at the hedge delay at the latest). No hedge is sent after a cancel or at or past
 *   the deadline, and the call ends at the deadline. Timers are cleared, and unref'd meanwhile. The
 *   fast path (an answer before `delay`) makes no AbortController.
 *
 * With a {@link PercentileDelay}, the latencies of winning attempts of the wrapped endpoint set the
 * delay (each endpoint the middleware wraps keeps its own). Hedge only idempotent operations.
 *
 * @throws RangeError or TypeError (at setup) when an option is invalid.
 *
 * @example
 * ```ts
 * const budget = createRetryBudget({ retryRatio: 0.05 });
 * const lookup = hedge({ delay: { percentile: 95, fallback: 50 }, budget })(backend);
 * ```
 */
export function hedge(options: HedgeOptions): GenericMiddleware;
/** The same, fixed to one request and response type. */
export function hedge<Req, Res>(options: HedgeOptions): Middleware<Req, Res>;
export function hedge<Req, Res>(options: HedgeOptions): Middleware<Req, Res> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`hedge: options must be an object, got ${describe(options)}`);
  }
  const maxAttempts = options.maxAttempts ?? 2;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`hedge: maxAttempts must be an integer ≥ 1, got ${describe(maxAttempts)}`);
  }
  const makeDelay = delaySource(options.delay);
  const config: HedgeConfig = {
    maxAttempts,
    budget: checkBudget(options.budget, "hedge"),
    retryOn: resolvePredicate(options.retryOn, options.retryResourceExhausted, "hedge"),
    onHedge: checkFunction(options.onHedge, "onHedge", "hedge"),
  };

  return function hedgeMiddleware(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    const latencies = makeDelay();
    return function hedgeEndpoint(ctx: Context, request: Req): Promise<Res> {
      if (ctx.aborted) return Promise.reject(abortReasonOf(ctx));
      try {
        config.budget?.recordRequest();
      } catch (err) {
        // A budget that throws fails the call (as in `retry`), never the caller synchronously.
        return Promise.reject(err);
      }
      const delay = typeof latencies === "number" ? latencies : latencies.delay();
      return new Promise<Res>((resolve, reject) => {
        new HedgedCall(config, next, ctx, request, delay, latencies, resolve, reject).start();
      });
    };
  };
}

/** Checks `delay` and returns what makes, per wrapped endpoint, a fixed delay or a latency window. */
function delaySource(delay: HedgeOptions["delay"]): () => number | LatencyWindow {
  if (typeof delay === "number") {
    if (!Number.isFinite(delay) || delay < 0) {
      throw new RangeError(`hedge: delay must be a finite number of ms ≥ 0, got ${describe(delay)}`);
    }
    return () => delay;
  }
  if (typeof delay !== "object" || delay === null) {
    throw new TypeError(
      `hedge: delay must be a number of ms or { percentile, fallback }, got ${describe(delay)}`,
    );
  }
  const { percentile, fallback } = delay;
  const minSamples = delay.minSamples ?? 20;
  const sampleSize = delay.sampleSize ?? 1000;
  if (typeof percentile !== "number" || !(percentile > 0 && percentile <= 100)) {
    throw new RangeError(`hedge: delay.percentile must be in (0, 100], got ${describe(percentile)}`);
  }
  if (typeof fallback !== "number" || !Number.isFinite(fallback) || fallback < 0) {
    throw new RangeError(
      `hedge: delay.fallback must be a finite number of ms ≥ 0, got ${describe(fallback)}`,
    );
  }
  if (!Number.isInteger(minSamples) || minSamples < 1) {
    throw new RangeError(`hedge: delay.minSamples must be an integer ≥ 1, got ${describe(minSamples)}`);
  }
  if (!Number.isInteger(sampleSize) || sampleSize < 1 || sampleSize > 1_000_000) {
    throw new RangeError(
      `hedge: delay.sampleSize must be an integer in [1, 1000000], got ${describe(sampleSize)}`,
    );
  }
  if (minSamples > sampleSize) {
    throw new RangeError(
      `hedge: delay.minSamples (${minSamples}) must not exceed delay.sampleSize (${sampleSize})`,
    );
  }
  return () => new LatencyWindow(sampleSize, percentile, minSamples, fallback);
}

/** One hedged call: its attempts, its timer and how it ends. */
class HedgedCall<Req, Res> {
  /** Each started attempt's context, until the attempt settles. */
  readonly #attempts: (CancelableContext | undefined)[] = [];
  #settled = false;
  #started = 0;
  #inFlight = 0;
  /** When the latest attempt started (performance.now()). */
  #lastStart = 0;
  /** The timer for the next hedge (or the caller's deadline). */
  #timer: LongTimeout | undefined = undefined;
  /** Whether the timer waits for the caller's deadline rather than for the next hedge. */
  #untilDeadline = false;
  /** Whether the budget refused a hedge: no more are tried for this call. */
  #refused = false;
  /** The last failure that let the call go on, and the last of those that was not CANCELLED. */
  #last: unknown = undefined;
  #useful: unknown = undefined;
  #hasUseful = false;
  /** Stops watching the caller's context (set once a hedge is sent), so that a cancel ends the call at once. */
  #stopWatching: (() => boolean) | undefined = undefined;

  constructor(
    readonly config: HedgeConfig,
    readonly next: Endpoint<Req, Res>,
    readonly ctx: Context,
    readonly request: Req,
    readonly delay: number,
    readonly latencies: number | LatencyWindow,
    readonly resolve: (value: Res) => void,
    readonly reject: (reason: unknown) => void,
  ) {}

  start(): void {
    this.#launch(undefined);
  }

  /**
   * Makes a caller's cancel (or deadline) end the call at once even if attempts ignore their signals.
   * Done only once a hedge is sent, or once none may follow: until then there is one attempt, which
   * sees the cancel through its own signal, the hedge timer bounds the wait, and the common fast call
   * creates no AbortController. `onAbort` watches a child of the caller's context, so stopping it at
   * the end also drops the timer and links that watching set up.
   */
  #watchCaller(): void {
    if (this.#stopWatching !== undefined) return;
    this.#stopWatching = onAbort(this.ctx, this.#onAbort);
  }

  readonly #onAbort = (): void => {
    if (this.#settled) return;
    const ctx = this.ctx;
    // Out of time: a real failure says more than "deadline exceeded"; cancelled: say so.
    const reason = deadlinePassed(ctx) && this.#hasUseful ? this.#useful : abortReasonOf(ctx);
    this.#finish(undefined, false);
    this.reject(reason);
  };

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (this.#settled) return;
    if (this.ctx.aborted) this.#onAbort();
    else if (this.#untilDeadline)
      this.#arm(); // fired a hair before the deadline: wait for it
    else if (this.#mayHedge()) this.#launch(undefined);
    else this.#arm(); // the budget refused: no hedge follows, only the caller can end the call early
  };

  /** Ends the call with `reason` and cancels the attempts still running. */
  #end(reason: unknown): void {
    this.#finish(undefined, true);
    this.reject(reason);
  }

  #launch(error: ServiceError | undefined): void {
    const index = this.#started++;
    if (index > 0) {
      this.#watchCaller();
      if (this.#settled) return; // the caller was aborted already: #onAbort ended the call
    }
    const child = this.ctx.withCancel();
    this.#attempts[index] = child;
    this.#inFlight++;
    const start = performance.now();
    const previous = this.#lastStart;
    this.#lastStart = start;
    try {
      if (index > 0) this.config.onHedge?.({ attempt: index + 1, delay: start - previous, error });
      Promise.resolve(this.next(child.context, this.request)).then(
        (value) => this.#succeed(index, value, start),
        (err: unknown) => this.#fail(index, err),
      );
    } catch (err) {
      this.#fail(index, err);
    }
    this.#arm();
  }

  /**
   * Schedules the next hedge. A hedge that would start at or past the caller's deadline is not
   * scheduled: the timer then fires at the deadline and ends the call, even if the attempts ignore
   * their signals. When no hedge may follow (`maxAttempts` started, or the budget refused), the
   * caller's context is watched instead, so that its cancel or deadline still ends the call.
   */
  #arm(): void {
    if (this.#timer !== undefined) {
      clearLongTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#settled) return;
    if (this.#refused || this.#started >= this.config.maxAttempts) {
      this.#watchCaller();
      return;
    }
    const remaining = this.ctx.timeRemaining();
    this.#untilDeadline = remaining !== undefined && this.delay >= remaining;
    // However long: past MAX_TIMER_MS, setLongTimeout waits in steps (a plain setTimeout would fire at once).
    const timer = setLongTimeout(
      this.#onTimer,
      this.#untilDeadline ? Math.max(1, remaining as number) : this.delay,
    );
    timer.unref?.();
    this.#timer = timer;
  }

  /**
   * Whether one more attempt may start now; asks the budget (which spends a retry when it agrees).
   * A budget that throws ends the call with what it threw (the call is then settled).
   */
  #mayHedge(): boolean {
    if (this.#refused || this.#started >= this.config.maxAttempts || this.ctx.aborted) return false;
    const budget = this.config.budget;
    if (budget === undefined) return true;
    let allowed: boolean;
    try {
      allowed = budget.tryRetry();
    } catch (err) {
      this.#end(err);
      return false;
    }
    if (!allowed) this.#refused = true;
    return allowed;
  }

  #succeed(index: number, value: Res, start: number): void {
    if (this.#settled) return;
    if (typeof this.latencies !== "number") this.latencies.record(performance.now() - start);
    this.#finish(index, true);
    this.resolve(value);
  }

  #fail(index: number, thrown: unknown): void {
    if (this.#settled) return;
    this.#attempts[index]?.release();
    this.#attempts[index] = undefined;
    this.#inFlight--;
    if (this.ctx.aborted) {
      this.#onAbort();
      return;
    }
    const error = ServiceError.from(thrown);
    let goOn: boolean;
    try {
      goOn = this.config.retryOn(error, index + 1, false);
    } catch (err) {
      // As in `retry`: a predicate that throws fails the call with what it threw.
      this.#end(err);
      return;
    }
    if (!goOn) {
      this.#end(thrown);
      return;
    }
    this.#last = thrown;
    if (error.code !== Code.CANCELLED) {
      this.#useful = thrown;
      this.#hasUseful = true;
    }
    if (this.#mayHedge()) {
      this.#launch(error);
      return;
    }
    if (this.#settled) return; // the budget threw and ended the call
    if (this.#inFlight === 0) this.#end(this.#hasUseful ? this.#useful : this.#last);
    else this.#arm(); // no hedge may follow: drop the hedge timer, watch the caller
  }

  /**
   * Ends the call: clears the timer and the abort listener, releases the winner's context and
   * cancels (or, when the caller aborted, just releases) every other attempt still running.
   */
  #finish(winner: number | undefined, cancelOthers: boolean): void {
    this.#settled = true;
    if (this.#timer !== undefined) {
      clearLongTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#stopWatching?.();
    const attempts = this.#attempts;
    let lost: ServiceError | undefined;
    for (let i = 0; i < attempts.length; i++) {
      const child = attempts[i];
      if (child === undefined) continue;
      attempts[i] = undefined;
      if (i === winner || !cancelOthers) {
        child.release();
      } else {
        lost ??= new ServiceError(Code.CANCELLED, "hedged attempt cancelled: the call already finished");
        child.cancel(lost);
      }
    }
  }
}
