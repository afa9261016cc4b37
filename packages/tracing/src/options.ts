import {
  type Attributes,
  propagation,
  type TextMapPropagator,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";

/** The instrumentation scope name of the default tracer. */
export const TRACER_NAME = "@svckit/tracing";

/** This package's version, the instrumentation scope version of the default tracer. */
export const VERSION = "0.1.0";

/** Options shared by {@link serverTracing} and {@link clientTracing}. */
export interface TracingOptions {
  /** The tracer to start spans with. Default: `tracerProvider.getTracer("@svckit/tracing", version)`. */
  tracer?: Tracer;
  /** Where the default tracer comes from. Default: the global provider (`trace`). Ignored with `tracer`. */
  tracerProvider?: TracerProvider;
  /**
   * Reads and writes the trace context in metadata. Default: the global propagator (`propagation`),
   * looked up on every call, so one registered later (W3C, B3, a composite) is used.
   */
  propagator?: TextMapPropagator;
  /** Attributes put on every span (they win over the computed ones), e.g. `{ "peer.service": "users" }`. */
  attributes?: Attributes;
}

export function resolveTracer(options: TracingOptions): Tracer {
  return options.tracer ?? (options.tracerProvider ?? trace).getTracer(TRACER_NAME, VERSION);
}

export function resolvePropagator(options: TracingOptions): TextMapPropagator {
  return options.propagator ?? propagation;
}
