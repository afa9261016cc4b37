/**
 * svckit rate limiting middleware: erroring and delaying limiters, per key, local or Redis-backed (bottleneck).
 *
 * @packageDocumentation
 */

export {};
