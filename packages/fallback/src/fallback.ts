import { Code, type Context, type Endpoint, isCode, type Middleware, ServiceError } from "@svckit/endpoint";

/**
 * Makes the degraded answer for a failed call: gets the call's context and request and the error (as a
 * {@link ServiceError}; other thrown values arrive converted by `ServiceError.from`, the original as `cause`).
 * It may return the answer or a promise of it, or throw. Throwing `error` (the very object it got) declines: the
 * caller gets the endpoint's original failure unchanged, as if `when` had not picked it.
 */
export type FallbackHandler<Req, Res> = (
  ctx: Context,
  request: Req,
  error: ServiceError,
) => Res | Promise<Res>;

/** Decides whether a failed call gets the fallback answer. */
export type FallbackPredicate = (error: ServiceError, ctx: Context) => boolean;

/** Options of {@link fallback}. */
export interface FallbackOptions {
  /**
   * Which errors get the fallback answer: a list of codes, or a predicate. Default
   * {@link defaultFallbackCodes}. Whatever it says, a call whose own context is cancelled or past its deadline
   * keeps its error: its caller is gone.
   */
  when?: readonly Code[] | FallbackPredicate;
}

/**
 * The codes that get the fallback answer by default: failures of the server side that a degraded answer can
 * stand in for.
 * - UNAVAILABLE: the dependency is down, or a circuit breaker is open;
 * - DEADLINE_EXCEEDED: the dependency was too slow (a `timeout` after this middleware ran out);
 * - RESOURCE_EXHAUSTED: the dependency (or a bulkhead, a rate limiter) refused the load;
 * - INTERNAL and UNKNOWN: the dependency failed (any thrown value that is not a ServiceError is INTERNAL).
 *
 * Not by default: client faults (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, UNAUTHENTICATED,
 * FAILED_PRECONDITION, OUT_OF_RANGE), which the caller must hear about; CANCELLED (the caller gave up); ABORTED
 * (a conflict to retry, not to paper over); UNIMPLEMENTED (a wiring mistake); DATA_LOSS (never hide it).
 */
export const defaultFallbackCodes: readonly Code[] = Object.freeze([
  Code.UNAVAILABLE,
  Code.DEADLINE_EXCEEDED,
  Code.RESOURCE_EXHAUSTED,
  Code.INTERNAL,
  Code.UNKNOWN,
]);

function codePredicate(codes: readonly Code[]): FallbackPredicate {
  for (const code of codes) {
    if (!isCode(code)) throw new RangeError(`fallback: when lists ${String(code)}, which is not a Code`);
  }
  const set: ReadonlySet<Code> = new Set(codes);
  return (error) => set.has(error.code);
}

/**
 * Turns chosen errors of the wrapped endpoint into a degraded answer made by `handler`: a cached value, a
 * default, a reduced result. Results, errors `when` does not pick, and errors the handler declines (by throwing
 * the `error` it got) pass through unchanged. Other errors thrown by `handler` (or by a `when` predicate) reach
 * the caller as ServiceErrors (`ServiceError.from`: a ServiceError as it is, anything else INTERNAL with the
 * original as `cause`).
 *
 * @param handler - makes the answer from `(ctx, request, error)`.
 * @param options - `when`: the codes (default {@link defaultFallbackCodes}) or a predicate.
 *
 * @example
 * ```ts
 * const getPrices = chain(
 *   fallback(async (_ctx, req: { sku: string }) => ({ sku: req.sku, price: cache.get(req.sku), stale: true })),
 *   timeout(500),
 * )(pricesClient);
 * ```
 */
export function fallback<Req, Res>(
  handler: FallbackHandler<Req, Res>,
  options: FallbackOptions = {},
): Middleware<Req, Res> {
  if (typeof handler !== "function") throw new TypeError("fallback: handler must be a function");
  const { when = defaultFallbackCodes } = options;
  let applies: FallbackPredicate;
  if (typeof when === "function") applies = when;
  else if (Array.isArray(when)) applies = codePredicate(when);
  else throw new TypeError("fallback: when must be a list of codes or a predicate");

  return function fallbackMiddleware(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return async function fallbackEndpoint(ctx: Context, request: Req): Promise<Res> {
      try {
        return await next(ctx, request);
      } catch (thrown) {
        // The caller is gone (cancelled, or its deadline passed): nobody waits for a degraded answer.
        if (ctx.aborted) throw thrown;
        const error = ServiceError.from(thrown);
        try {
          if (!applies(error, ctx)) throw thrown;
          return await handler(ctx, request, error);
        } catch (failure) {
          // Declined (`when` said no, or the handler rethrew the `error` it got): the original failure.
          throw failure === thrown || failure === error ? thrown : ServiceError.from(failure);
        }
      }
    };
  };
}
