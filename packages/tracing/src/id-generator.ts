import { randomFillSync } from "node:crypto";

/**
 * Makes trace and span ids: the shape of the OpenTelemetry SDK's `IdGenerator` (its `idGenerator`
 * option), declared here so that this package needs only `@opentelemetry/api`.
 */
export interface IdGenerator {
  /** A random trace id: 32 lowercase hex characters, not all zero. */
  generateTraceId(): string;
  /** A random span id: 16 lowercase hex characters, not all zero. */
  generateSpanId(): string;
}

/** Random bytes drawn at a time: 8,192 hex characters, 170 span ids and trace ids mixed. */
const POOL_BYTES = 4096;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_SPAN_ID = "0".repeat(16);

/**
 * An id generator over `fill` (which fills a buffer with random bytes). Exported for tests only, to
 * feed it chosen bytes; the package entry exports {@link createIdGenerator}.
 *
 * @internal
 */
export function idGeneratorFrom(fill: (bytes: Buffer) => void): IdGenerator {
  const bytes = Buffer.allocUnsafe(POOL_BYTES);
  let hex = "";
  let at = 0;
  const take = (length: number): string => {
    if (at + length > hex.length) {
      fill(bytes);
      hex = bytes.toString("hex");
      at = 0;
    }
    const id = hex.slice(at, at + length);
    at += length;
    return id;
  };
  return {
    generateTraceId(): string {
      let id = take(32);
      // W3C trace context: an all-zero id is invalid. 2^-128 for real random bytes.
      while (id === ZERO_TRACE_ID) id = take(32);
      return id;
    },
    generateSpanId(): string {
      let id = take(16);
      while (id === ZERO_SPAN_ID) id = take(16);
      return id;
    },
  };
}

/**
 * Creates an id generator for the OpenTelemetry SDK, to pass as its `idGenerator` option. Ids come
 * from `crypto.randomFillSync`, drawn 4 KiB at a time and hex-encoded once, so making an id is taking a
 * slice of a string: about 80 ns for a trace id and a span id together, against about 350 ns with the
 * SDK's default generator (which calls `Math.random` per 4 bytes and hex-encodes each id on its own).
 * Under load that is about 1 µs per root span (bench/RESULTS.md). Ids are never all zero.
 *
 * An id is a slice of a pooled string, so a span kept for long (e.g. by an in-memory exporter) keeps
 * its 8 KiB pool string alive too; exporters that serialize spans and let them go are not affected.
 *
 * @example
 * ```ts
 * const provider = new BasicTracerProvider({
 *   idGenerator: createIdGenerator(),
 *   spanProcessors: [new BatchSpanProcessor(exporter)],
 * });
 * ```
 */
export function createIdGenerator(): IdGenerator {
  return idGeneratorFrom((bytes) => {
    randomFillSync(bytes);
  });
}
