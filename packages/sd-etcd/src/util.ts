import { Code } from "@svckit/endpoint";
import {
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
} from "etcd3";

/** The code for an error from etcd3: DEADLINE_EXCEEDED, PERMISSION_DENIED, UNAUTHENTICATED or UNAVAILABLE. */
export function codeOf(error: unknown): Code {
  if (error instanceof GRPCDeadlineExceededError) return Code.DEADLINE_EXCEEDED;
  if (error instanceof EtcdPermissionDeniedError) return Code.PERMISSION_DENIED;
  if (
    error instanceof EtcdAuthenticationFailedError ||
    error instanceof EtcdInvalidAuthTokenError ||
    error instanceof GRPCUnauthenticatedError
  ) {
    return Code.UNAUTHENTICATED;
  }
  return Code.UNAVAILABLE;
}

/** The message of a thrown value, for error messages. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Throws a RangeError unless `value` is absent or a finite number > 0; returns it or `fallback`. */
export function positive(where: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${where}: ${name} must be a finite number > 0, got ${String(value)}`);
  }
  return value;
}

/** Throws a TypeError unless `value` is a non-empty string. */
export function nonEmpty(where: string, name: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(
      `${where}: ${name} must be a non-empty string, got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
  return value;
}

/** The delay before retry number `attempt` (0-based): 250 ms doubling up to 5 s, with half jitter. */
export function retryDelay(attempt: number): number {
  const ceiling = Math.min(5_000, 250 * 2 ** Math.min(attempt, 10));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function noop(): void {}
