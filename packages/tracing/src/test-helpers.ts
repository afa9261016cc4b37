// Shared by the tests of this package only: excluded from the build (see tsconfig.json), never exported.
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  type Sampler,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

/** An SDK that keeps finished spans in memory. */
export interface TestOtel {
  readonly provider: BasicTracerProvider;
  readonly exporter: InMemorySpanExporter;
  /** The finished spans, in the order they ended. */
  spans(): ReadableSpan[];
  /** The one finished span called `name`; fails unless there is exactly one. */
  span(name: string): ReadableSpan;
}

/** Options of {@link installOtel}. */
export interface InstallOptions {
  /** Register an AsyncLocalStorageContextManager (default false: the API's no-op manager). */
  contextManager?: boolean;
  /** Register the provider and the W3C propagator globally (default true). */
  global?: boolean;
  /** The provider's sampler (default: parent-based always-on). */
  sampler?: Sampler;
}

/**
 * Makes an in-memory SDK and, unless told otherwise, registers it and the W3C propagator globally
 * (replacing what an earlier call registered).
 */
export function installOtel(options: InstallOptions = {}): TestOtel {
  if (options.global !== false) resetOtel();
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    ...(options.sampler === undefined ? {} : { sampler: options.sampler }),
  });
  if (options.global !== false) {
    trace.setGlobalTracerProvider(provider);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  }
  if (options.contextManager === true) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  }
  return {
    provider,
    exporter,
    spans: () => exporter.getFinishedSpans(),
    span(name) {
      const found = exporter.getFinishedSpans().filter((s) => s.name === name);
      if (found.length !== 1) {
        throw new Error(
          `expected one span "${name}", found ${found.length} among [${exporter
            .getFinishedSpans()
            .map((s) => s.name)
            .join(", ")}]`,
        );
      }
      return found[0] as ReadableSpan;
    },
  };
}

/** Unregisters every OTel global (provider, propagator, context manager). */
export function resetOtel(): void {
  trace.disable();
  propagation.disable();
  context.disable();
}

/** A valid W3C traceparent's parts, for building headers. */
export const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
export const PARENT_SPAN_ID = "00f067aa0ba902b7";
export const TRACEPARENT = `00-${TRACE_ID}-${PARENT_SPAN_ID}-01`;

/** Parses a W3C traceparent (version 00) into its parts; fails on anything else. */
export function parseTraceparent(value: string | undefined): {
  traceId: string;
  spanId: string;
  flags: string;
} {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value ?? "");
  if (match === null) throw new Error(`not a traceparent: ${String(value)}`);
  return { traceId: match[1] as string, spanId: match[2] as string, flags: match[3] as string };
}
