import type { Context } from "./context.js";

/**
 * The unit of everything in svckit: one remote procedure as a plain async function.
 * Services are written as endpoints, middleware wraps them, transports serve them, and clients are
 * endpoints too.
 *
 * @example
 * ```ts
 * const uppercase: Endpoint<{ s: string }, { v: string }> = async (_ctx, req) => ({ v: req.s.toUpperCase() });
 * ```
 */
export type Endpoint<Req = unknown, Res = unknown> = (ctx: Context, request: Req) => Promise<Res>;

/**
 * Decorates an endpoint: takes the next endpoint and returns one that runs code before and/or after
 * it. Middleware never knows which transport carries the call.
 *
 * @example
 * ```ts
 * const logging: Middleware = (next) => async function logged(ctx, req) {
 *   console.log("calling");
 *   try { return await next(ctx, req); } finally { console.log("called"); }
 * };
 * ```
 */
export type Middleware<Req = unknown, Res = unknown> = (next: Endpoint<Req, Res>) => Endpoint<Req, Res>;

/**
 * A middleware that works on endpoints of any request and response type (most cross-cutting ones:
 * timeouts, retries, logging). It fits wherever a {@link Middleware} of specific types is expected, so
 * `chain(timeout(1_000))(typedEndpoint)` keeps the endpoint's types.
 *
 * @example
 * ```ts
 * const noop: GenericMiddleware = (next) => next;
 * ```
 */
export type GenericMiddleware = <Req, Res>(next: Endpoint<Req, Res>) => Endpoint<Req, Res>;

/**
 * Composes middlewares into one. The first is the outermost: `chain(a, b, c)(e)` runs
 * a → b → c → e and unwinds e → c → b → a, as go-kit's `endpoint.Chain`. Compose once at setup, not
 * per request: the result allocates nothing per call.
 *
 * @example
 * ```ts
 * const e = chain(logging, timeout(1_000))(uppercase);
 * ```
 */
export function chain<Req = unknown, Res = unknown>(
  outer: Middleware<Req, Res>,
  ...others: Middleware<Req, Res>[]
): Middleware<Req, Res> {
  return function chained(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    for (let i = others.length - 1; i >= 0; i--) {
      next = (others[i] as Middleware<Req, Res>)(next);
    }
    return outer(next);
  };
}

/**
 * An endpoint that does nothing and resolves `undefined`; handy in tests and benchmarks.
 */
export const nop: Endpoint<unknown, undefined> = async function nop() {
  return undefined;
};
