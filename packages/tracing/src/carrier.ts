import type { TextMapGetter, TextMapSetter } from "@opentelemetry/api";
import type { Metadata } from "@svckit/endpoint";

/**
 * A `TextMapGetter` over svckit {@link Metadata}, for `propagation.extract`: what a propagator needs to
 * read trace context (W3C `traceparent`/`tracestate`, B3, ...) from incoming HTTP headers or gRPC
 * metadata. A repeated key is returned as an array (the W3C propagator joins `tracestate` values).
 *
 * @example
 * ```ts
 * const parent = propagation.extract(ROOT_CONTEXT, ctx.metadata, metadataGetter);
 * ```
 */
export const metadataGetter: TextMapGetter<Metadata> = {
  keys(carrier: Metadata): string[] {
    return Array.from(carrier.keys());
  },
  get(carrier: Metadata, key: string): string | string[] | undefined {
    const first = carrier.get(key);
    if (first === undefined) return undefined;
    const all = carrier.getAll(key);
    return all.length > 1 ? all : first;
  },
};

/** A record a propagator injects into; it becomes outgoing metadata. Null prototype: any key is data. */
export type HeaderRecord = Record<string, string>;

/** Sets `key` on a {@link HeaderRecord}; header names are case-insensitive, so keys are lower-cased. */
export const recordSetter: TextMapSetter<HeaderRecord> = {
  set(carrier: HeaderRecord, key: string, value: string): void {
    carrier[key.toLowerCase()] = value;
  },
};

/** A fresh carrier for {@link recordSetter}. */
export function newHeaderRecord(): HeaderRecord {
  return Object.create(null) as HeaderRecord;
}
