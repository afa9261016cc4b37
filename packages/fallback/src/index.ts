/**
 * svckit fallback middleware: turn chosen errors into a degraded answer.
 *
 * @packageDocumentation
 */

export {};
