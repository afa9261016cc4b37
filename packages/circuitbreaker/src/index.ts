/**
 * svckit circuit breaker middleware on opossum.
 *
 * @packageDocumentation
 */

export {};
