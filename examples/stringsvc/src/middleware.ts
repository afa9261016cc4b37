import {
  type CodeName,
  type Context,
  chain,
  codeToString,
  createContextKey,
  type Endpoint,
  type GenericMiddleware,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import type { StringEndpoints } from "./endpoints.js";

/**
 * The transport a call came in on: `"HTTP"` or `"gRPC"` (`"unknown"` when nothing set it). The
 * example's transports set it in their `before` hook, so middleware can name the transport in what it
 * records without knowing anything about transports.
 */
export const transportKey = createContextKey<string>("unknown", { description: "stringsvc.transport" });

/**
 * A `before` hook for any svckit transport (HTTP or gRPC: both pass the context first) that marks
 * each call as coming from `transport`.
 *
 * @example
 * ```ts
 * createHttpHandler(endpoint, decode, encode, { before: [markTransport("HTTP")] });
 * ```
 */
export function markTransport(transport: string): (ctx: Context) => Context {
  return function marked(ctx: Context): Context {
    return ctx.with(transportKey, transport);
  };
}

/** One finished call, as {@link callLogging} records it. */
export interface CallRecord {
  /** The method: `"uppercase"` or `"count"`. */
  readonly method: string;
  /** The transport it came in on, from {@link transportKey}. */
  readonly transport: string;
  /** `"OK"`, or the canonical name of the error's code, e.g. `"INVALID_ARGUMENT"`. */
  readonly code: CodeName;
  /** The error's message, for a call that failed. */
  readonly error?: string;
  /** How long the call took, in milliseconds. */
  readonly ms: number;
}

/** Where {@link callLogging} sends each {@link CallRecord}; must not throw. */
export type CallSink = (call: CallRecord) => void;

/**
 * Records every call of one method, with its transport, outcome and duration, like the logging
 * middleware of go-kit's stringsvc. Put it outermost so it also sees the errors of the middleware
 * inside it (a timeout's `DEADLINE_EXCEEDED`). It passes results and errors on untouched.
 *
 * @example
 * ```ts
 * const calls: CallRecord[] = [];
 * const logged = callLogging("uppercase", (call) => calls.push(call))(endpoints.uppercase);
 * ```
 */
export function callLogging(method: string, sink: CallSink): GenericMiddleware {
  return function callLoggingMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return async function logged(ctx: Context, request: Req): Promise<Res> {
      const start = performance.now();
      const transport = ctx.value(transportKey);
      try {
        const response = await next(ctx, request);
        sink({ method, transport, code: "OK", ms: elapsed(start) });
        return response;
      } catch (err) {
        const error = ServiceError.from(err);
        sink({ method, transport, code: codeToString(error.code), error: error.message, ms: elapsed(start) });
        throw err;
      }
    };
  };
}

function elapsed(start: number): number {
  return Math.round((performance.now() - start) * 100) / 100;
}

/**
 * Middleware for the service's endpoints, made per method (so a logger can name it). Apply it with
 * {@link withMiddleware}.
 */
export type StringsvcMiddleware = (method: keyof StringEndpoints) => GenericMiddleware;

/**
 * The chain every stringsvc call goes through, whichever transport carries it: {@link callLogging}
 * (outermost, so it records timeouts too), then `timeout(timeoutMs)` from `@svckit/endpoint`.
 *
 * @example
 * ```ts
 * const endpoints = withMiddleware(makeEndpoints(svc), stringsvcMiddleware(console.log, 1_000));
 * ```
 */
export function stringsvcMiddleware(sink: CallSink, timeoutMs: number): StringsvcMiddleware {
  const limit = timeout(timeoutMs);
  return function forMethod(method) {
    const logged = callLogging(method, sink);
    return function stringsvcChain<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
      return chain<Req, Res>(logged, limit)(next);
    };
  };
}

/**
 * Wraps each endpoint in `middleware`, once, at setup. Serve the result on every transport: the
 * calls of all of them then pass through the same chain.
 *
 * @example
 * ```ts
 * const endpoints = withMiddleware(makeEndpoints(createStringService()), stringsvcMiddleware(log, 1_000));
 * createStringsvcRouter(endpoints); // HTTP
 * bindStringsvc(grpcServer, endpoints); // gRPC
 * ```
 */
export function withMiddleware(endpoints: StringEndpoints, middleware: StringsvcMiddleware): StringEndpoints {
  return {
    uppercase: middleware("uppercase")(endpoints.uppercase),
    count: middleware("count")(endpoints.count),
  };
}
