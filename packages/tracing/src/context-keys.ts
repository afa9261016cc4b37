import { INVALID_TRACEID, type Context as OtelContext, type SpanContext, trace } from "@opentelemetry/api";
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
  const traceId = spanContext === undefined ? undefined : validTraceId(spanContext);
  return traceId === undefined ? next : next.with(traceIdKey, traceId);
}

/** 1 for the character codes of hex digits (0-9, a-f, A-F: what `@opentelemetry/api` accepts). */
const HEX_DIGIT = new Uint8Array(128);
for (const digit of "0123456789abcdefABCDEF") HEX_DIGIT[digit.charCodeAt(0)] = 1;

/**
 * The trace id of `spanContext` when it is a valid one (the rule of `isValidTraceId` from
 * `@opentelemetry/api`: 32 hex digits, not all zeros), else `undefined`. A table lookup per character
 * instead of the API's regular expression (and no span-id check: only the trace id is used), which
 * took ~0.3 µs of every traced call. Internal: not exported from the package.
 */
export function validTraceId(spanContext: SpanContext): string | undefined {
  const id: unknown = spanContext.traceId;
  if (typeof id !== "string" || id.length !== 32 || id === INVALID_TRACEID) return undefined;
  for (let i = 0; i < 32; i++) if (HEX_DIGIT[id.charCodeAt(i)] !== 1) return undefined;
  return id;
}
