/**
 * OpenTelemetry tracing for svckit endpoints. {@link serverTracing} starts a SERVER span per call,
 * continuing the trace the caller sent in its metadata (W3C trace context by default, or any registered
 * propagator); {@link clientTracing} starts a CLIENT span under the current call's span and sends its
 * trace context in the outgoing metadata, which svckit's HTTP client sends as headers and its gRPC client
 * as gRPC metadata. Span names and attributes follow the HTTP and RPC semantic conventions. Only
 * `@opentelemetry/api` is needed at run time: the SDK, exporter and context manager are the user's choice,
 * and without an SDK the middlewares cost little. Both put the trace id in the context under
 * {@link traceIdKey} so logs can carry it.
 *
 * @packageDocumentation
 */

export { metadataGetter } from "./carrier.js";
export type { ClientTracingOptions } from "./client-tracing.js";
export { clientTracing } from "./client-tracing.js";
export { otelContextKey, traceIdKey, withOtelContext } from "./context-keys.js";
export type { IdGenerator } from "./id-generator.js";
export { createIdGenerator } from "./id-generator.js";
export type { TracingOptions } from "./options.js";
export type { ServerTracingOptions } from "./server-tracing.js";
export { serverTracing } from "./server-tracing.js";
