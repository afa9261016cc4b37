/**
 * svckit Prometheus metrics middleware and /metrics handler (prom-client).
 *
 * @packageDocumentation
 */

export {};
