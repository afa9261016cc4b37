/**
 * Degraded answers for svckit endpoints: a fallback middleware that turns chosen errors (by default the
 * server-side ones: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN) into an answer made
 * by a handler, such as a cached or default value. Client faults and calls whose caller is gone keep their
 * errors.
 *
 * @packageDocumentation
 */

export type { FallbackHandler, FallbackOptions, FallbackPredicate } from "./fallback.js";
export { defaultFallbackCodes, fallback } from "./fallback.js";
