import { Code, type ErrorDetail, ServiceError } from "@svckit/endpoint";
import type { Settings } from "./options.js";

/** The type name of the retry hint detail, as google.rpc.RetryInfo is named in a google.protobuf.Any. */
export const RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo";

/**
 * A delay in the JSON form of google.protobuf.Duration: whole seconds, or seconds with three
 * fractional digits (`"2s"`, `"1.500s"`, `"0.001s"`).
 */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(ms));
  const seconds = Math.floor(total / 1000);
  const millis = total % 1000;
  return millis === 0 ? `${seconds}s` : `${seconds}.${String(millis).padStart(3, "0")}s`;
}

/** Seconds with at most three decimals and no trailing zeros, for messages: `1.5`, `2`, `0.001`. */
function seconds(ms: number): string {
  return String(Math.ceil(ms) / 1000);
}

/**
 * A RESOURCE_EXHAUSTED error; with `retryAfterMs`, it carries the hint twice: as a
 * google.rpc.RetryInfo detail (`retryDelay`) and as `retry-after` metadata in whole seconds (rounded
 * up), which the HTTP transport sends as the `Retry-After` header and gRPC as a trailer.
 */
function exhausted(message: string, retryAfterMs: number | undefined): ServiceError {
  if (retryAfterMs === undefined) return new ServiceError(Code.RESOURCE_EXHAUSTED, message);
  const delay = Math.max(1, Math.ceil(retryAfterMs));
  const details: ErrorDetail[] = [{ type: RETRY_INFO_TYPE, value: { retryDelay: formatDuration(delay) } }];
  return new ServiceError(Code.RESOURCE_EXHAUSTED, `${message}, retry in ${seconds(delay)} s`, {
    details,
    metadata: { "retry-after": String(Math.ceil(delay / 1000)) },
  });
}

/** The key used up its window; `retryAfterMs` is the time until it ends, when known. */
export function limitError(s: Settings, retryAfterMs: number | undefined): ServiceError {
  return exhausted(
    `rate limit "${s.name}" exceeded: at most ${s.limit} calls per ${s.interval} ms`,
    retryAfterMs,
  );
}

/** The key runs `maxConcurrent` calls. */
export function concurrencyError(s: Settings): ServiceError {
  return exhausted(`rate limit "${s.name}" exceeded: at most ${s.maxConcurrent} concurrent calls`, undefined);
}

/** Too many calls of the key wait already. */
export function queueError(s: Settings, retryAfterMs: number | undefined): ServiceError {
  return exhausted(
    `rate limit "${s.name}" exceeded: ${s.maxQueue} calls are already waiting for a slot`,
    retryAfterMs,
  );
}

/** Every tracked key is busy and a new one cannot be added. */
export function keysError(s: Settings): ServiceError {
  return exhausted(
    `rate limit "${s.name}" exceeded: all ${s.maxKeys} tracked keys have calls in progress`,
    undefined,
  );
}

/** No slot can be had before the call's deadline. */
export function deadlineError(s: Settings, slotInMs: number): ServiceError {
  return new ServiceError(
    Code.DEADLINE_EXCEEDED,
    `rate limit "${s.name}": no slot before the call's deadline (next in ${seconds(Math.max(0, slotInMs))} s)`,
  );
}

/**
 * Redis could not answer and the limiter fails closed. `down` says whether the connection is down
 * ("Redis cannot be reached"); otherwise the Redis call itself failed (an error reply, a failed script,
 * no answer within `timeout`) and the message says how. The error is kept as `cause` either way.
 */
export function unavailableError(s: Settings, cause: unknown, down: boolean): ServiceError {
  const why = down ? "Redis cannot be reached" : `the Redis call failed: ${describe(cause)}`;
  return new ServiceError(Code.UNAVAILABLE, `rate limiter "${s.name}" is unavailable: ${why}`, { cause });
}

/** An error's message (or the value itself, for a thrown non-error). */
function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

/** The limiter was closed. */
export function closedError(s: Settings): ServiceError {
  return new ServiceError(Code.UNAVAILABLE, `rate limiter "${s.name}" is closed`);
}
