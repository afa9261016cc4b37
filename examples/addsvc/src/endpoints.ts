import { type CircuitBreaker, createCircuitBreaker } from "@svckit/circuitbreaker";
import { chain, type Endpoint, type GenericMiddleware } from "@svckit/endpoint";
import { type Logger, logging } from "@svckit/log";
import type { Metrics } from "@svckit/metrics";
import { createRateLimiter } from "@svckit/ratelimit";
import { type ServerTracingOptions, serverTracing } from "@svckit/tracing";
import type { AddService } from "./service.js";

/** The request of `sum`: go-kit's `SumRequest{A, B int}`. */
export interface SumRequest {
  /** The first addend. */
  a: bigint;
  /** The second addend. */
  b: bigint;
}

/** The response of `sum`. */
export interface SumResponse {
  /** The sum. */
  v: bigint;
}

/** The request of `concat`: go-kit's `ConcatRequest{A, B string}`. */
export interface ConcatRequest {
  /** The first string. */
  a: string;
  /** The second string. */
  b: string;
}

/** The response of `concat`. */
export interface ConcatResponse {
  /** The concatenation. */
  v: string;
}

/**
 * The service's endpoints, one per method: go-kit's `addendpoint.Set`. Servers serve them, and the
 * clients of every transport return the same shape, so code written against one works with all.
 */
export interface AddEndpoints {
  /** Sums the request's `a` and `b`. */
  sum: Endpoint<SumRequest, SumResponse>;
  /** Concatenates the request's `a` and `b`. */
  concat: Endpoint<ConcatRequest, ConcatResponse>;
}

/** The names of the endpoints, as they appear in logs, metrics, rate limit and breaker messages. */
export type AddMethod = keyof AddEndpoints;

/**
 * Wraps each service method as an endpoint (go-kit's `MakeSumEndpoint`, `MakeConcatEndpoint`). The
 * service's errors are thrown as they are: middleware sees them (logs and metrics count them as
 * `INVALID_ARGUMENT`), the breaker does not count them, and each transport encodes them its own way.
 *
 * @example
 * ```ts
 * const endpoints = makeEndpoints(createAddService());
 * await endpoints.sum(createContext(), { a: 1n, b: 2n }); // { v: 3n }
 * ```
 */
export function makeEndpoints(svc: AddService): AddEndpoints {
  return {
    sum: async (_ctx, req) => ({ v: await svc.sum(req.a, req.b) }),
    concat: async (_ctx, req) => ({ v: await svc.concat(req.a, req.b) }),
  };
}

/** The circuit breaker settings of {@link AddsvcMiddlewareOptions.breaker}. */
export interface BreakerSettings {
  /**
   * The breaker opens once its 10 s window holds at least this many calls and more than half of
   * them failed (rate-limit refusals and server faults count; the service's own errors do not).
   */
  minCalls: number;
  /** How long it stays open before one trial call may go through, in ms. */
  openMs: number;
}

/** What {@link withMiddleware} puts around each endpoint. Everything is optional. */
export interface AddsvcMiddlewareOptions {
  /** Where the logging middleware writes one line per call; no logging without it. */
  logger?: Logger;
  /** Metrics to record calls in, and to export the breakers and rate-limit refusals to. */
  metrics?: Metrics;
  /** `serverTracing` options; `false` leaves tracing out. Default `{}` (the global OpenTelemetry API). */
  tracing?: ServerTracingOptions | false;
  /** Calls of `sum` admitted per second, all clients together; `0` = unlimited. Default 1 (go-kit). */
  sumRate?: number;
  /** Calls of `concat` admitted per second; `0` = unlimited. Default 100 (go-kit's burst). */
  concatRate?: number;
  /** One breaker per endpoint with these settings, or `false` for none. Default `{ minCalls: 6, openMs: 60_000 }`. */
  breaker?: BreakerSettings | false;
}

/** The endpoints with their middleware, and the breakers made for them. */
export interface AddsvcWithMiddleware {
  /** The wrapped endpoints: serve these on every transport. */
  readonly endpoints: AddEndpoints;
  /** The breakers, one per endpoint (none with `breaker: false`), to observe or shut down. */
  readonly breakers: readonly CircuitBreaker[];
  /** Shuts the breakers down (their timers are unref'd already: this is for tidiness and tests). */
  close(): void;
}

const RATE_INTERVAL_MS = 1_000;
const BREAKER_WINDOW_MS = 10_000;

/**
 * Wraps each endpoint, once, in go-kit addsvc's chain, outermost first: tracing (a server span, and
 * the trace id for the log line), metrics, logging, the circuit breaker, the rate limiter. As in
 * go-kit, the breaker sits outside the limiter, so a burst of refused calls opens it; the service's
 * own errors are `INVALID_ARGUMENT` and never count. Serve the result on every transport: all calls
 * pass through the same chain.
 *
 * @example
 * ```ts
 * const { endpoints } = withMiddleware(makeEndpoints(createAddService()), { sumRate: 10, logger });
 * createAddsvcRouter(endpoints); // HTTP
 * bindAddsvc(grpcServer, endpoints); // gRPC
 * ```
 */
export function withMiddleware(
  endpoints: AddEndpoints,
  options: AddsvcMiddlewareOptions = {},
): AddsvcWithMiddleware {
  const { logger, metrics } = options;
  const tracing = options.tracing === false ? undefined : serverTracing(options.tracing ?? {});
  const breakerSettings = options.breaker ?? { minCalls: 6, openMs: 60_000 };
  const breakers: CircuitBreaker[] = [];
  const stopObserving: (() => void)[] = [];

  function middlewareFor(method: AddMethod, rate: number): GenericMiddleware {
    const chainOf: GenericMiddleware[] = [];
    if (tracing !== undefined) chainOf.push(tracing);
    if (metrics !== undefined) chainOf.push(metrics.middleware({ name: method }));
    if (logger !== undefined) chainOf.push(logging({ logger, name: method }));
    if (breakerSettings !== false && breakerSettings.minCalls > 0) {
      const breaker = createCircuitBreaker({
        name: method,
        volumeThreshold: breakerSettings.minCalls,
        errorThresholdPercentage: 50,
        rollingCountTimeout: BREAKER_WINDOW_MS,
        resetTimeout: breakerSettings.openMs,
      });
      breakers.push(breaker);
      if (metrics !== undefined) stopObserving.push(metrics.observeBreaker(breaker));
      chainOf.push(breaker.middleware);
    }
    if (rate > 0) {
      const limiter = createRateLimiter({
        name: method,
        limit: rate,
        interval: RATE_INTERVAL_MS,
        ...(metrics === undefined ? {} : { onReject: metrics.recordRateLimitRejection }),
      });
      chainOf.push(limiter.middleware);
    }
    const [outer, ...others] = chainOf;
    return outer === undefined
      ? function noMiddleware<Req, Res>(next: Endpoint<Req, Res>) {
          return next;
        }
      : function addsvcChain<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
          return chain<Req, Res>(outer, ...others)(next);
        };
  }

  return {
    endpoints: {
      sum: middlewareFor("sum", options.sumRate ?? 1)(endpoints.sum),
      concat: middlewareFor("concat", options.concatRate ?? 100)(endpoints.concat),
    },
    breakers,
    close() {
      for (const stop of stopObserving) stop();
      for (const breaker of breakers) breaker.shutdown();
    },
  };
}
