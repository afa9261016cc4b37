import { isSpanContextValid, type Context as OtelContext, trace } from "@opentelemetry/api";
import { type Context, type ContextKey, createContextKey } from "@svckit/endpoint";

/**
 * The context key under which {@link serverTracing} and {@link clientTracing} put the OpenTelemetry
 * `Context` (holding the call's span) in the svckit `Context`. {@link clientTracing} parents its span on
 * it, so a client call made with the server call's context nests under the server span without any
 * context manager. Shared across copies of this package (`Symbol.for("svckit:otelContext")`).
 *
 * @example
 * ```ts
 * const otelCtx = ctx.value(otelContextKey); // the OTel context of the call, or undefined
 * const span = otelCtx && trace.getSpan(otelCtx);
 * ```
 */
export const otelContextKey: ContextKey<OtelContext | undefined> = createContextKey<OtelContext | undefined>(
  undefined,
  { description: "otelContext", shared: true },
);

/**
 * The context key holding the trace id (32 lowercase hex digits) of the call's span, set by
 * {@link serverTracing}, {@link clientTracing} and {@link withOtelContext}, so that a logging
 * middleware can log it without depending on OpenTelemetry. Shared across packages and copies
 * (`Symbol.for("svckit:traceId")`): a logger defines the same key with
 * `createContextKey<string | undefined>(undefined, { description: "traceId", shared: true })`.
 *
 * @example
 * ```ts
 * const traceId = ctx.value(traceIdKey); // "4bf92f3577b34da6a3ce929d0e0e4736", or undefined
 * ```
 */
export const traceIdKey: ContextKey<string | undefined> = createContextKey<string | undefined>(undefined, {
  description: "traceId",
  shared: true,
});

/**
 * Returns `ctx` carrying `otelCtx` under {@link otelContextKey} (and the trace id of its span, if it
 * holds a valid one, under {@link traceIdKey}). Use it to make client spans children of a span you
 * started yourself, since the svckit context wins over the OTel active context.
 *
 * @example
 * ```ts
 * // `context` from "@opentelemetry/api": the active OTel context (with a context manager)
 * await tracer.startActiveSpan("batch", async (span) => {
 *   await client(withOtelContext(ctx, context.active()), request); // client span under "batch"
 *   span.end();
 * });
 * ```
 */
export function withOtelContext(ctx: Context, otelCtx: OtelContext): Context {
  const next = ctx.with(otelContextKey, otelCtx);
  const spanContext = trace.getSpanContext(otelCtx);
  return spanContext !== undefined && isSpanContextValid(spanContext)
    ? next.with(traceIdKey, spanContext.traceId)
    : next;
}
