import { type Context, type ContextKey, createContextKey, type Metadata } from "@svckit/endpoint";

/**
 * The context key holding the current trace id (32 lower-case hex digits). `@svckit/tracing` sets it
 * for every span it starts; other tracing code may set it too. Shared across package copies
 * (`Symbol.for("svckit:traceId")`).
 *
 * @example
 * ```ts
 * const traced = ctx.with(traceIdKey, "4bf92f3577b34da6a3ce929d0e0e4736");
 * ```
 */
export const traceIdKey: ContextKey<string | undefined> = createContextKey<string | undefined>(undefined, {
  description: "traceId",
  shared: true,
});

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE_ID = "00000000000000000000000000000000";
const ZERO_PARENT_ID = "0000000000000000";
/** Longer headers are not looked at (the W3C spec allows vendors to drop them). */
const MAX_TRACEPARENT_LENGTH = 512;

/**
 * Parses a W3C `traceparent` header value and returns its trace id, or `undefined` if the value is
 * not a valid traceparent: wrong shape, upper-case hex, version `ff`, an all-zero trace or parent id,
 * extra data after a version-00 value, or longer than 512 characters.
 *
 * @example
 * ```ts
 * parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); // "4bf92f3577b34da6a3ce929d0e0e4736"
 * parseTraceparent("garbage"); // undefined
 * ```
 */
export function parseTraceparent(value: string): string | undefined {
  if (value.length > MAX_TRACEPARENT_LENGTH) return undefined;
  const match = TRACEPARENT.exec(value);
  if (match === null) return undefined;
  const [, version, traceId, parentId, , rest] = match;
  if (version === "ff") return undefined;
  if (version === "00" && rest !== undefined) return undefined;
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_PARENT_ID) return undefined;
  return traceId;
}

/**
 * The trace id of a call: the value under {@link traceIdKey} if set, else the trace id of the
 * incoming metadata's `traceparent` (exactly one, valid), else `undefined`.
 *
 * @example
 * ```ts
 * const ctx = createContext({ metadata: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" } });
 * traceIdOf(ctx); // "4bf92f3577b34da6a3ce929d0e0e4736"
 * ```
 */
export function traceIdOf(ctx: Context): string | undefined {
  const fromKey = ctx.value(traceIdKey);
  if (typeof fromKey === "string" && fromKey !== "") return fromKey;
  return traceIdFromMetadata(ctx.metadata);
}

/** The trace id of the one valid `traceparent` in `metadata`, if there is exactly one. */
export function traceIdFromMetadata(metadata: Metadata): string | undefined {
  if (!metadata.has("traceparent")) return undefined;
  const values = metadata.getAll("traceparent");
  // Several traceparent headers make the request's trace context invalid (W3C Trace Context §3.2).
  return values.length === 1 ? parseTraceparent(values[0] as string) : undefined;
}
