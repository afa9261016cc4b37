/**
 * svckit service discovery on Consul's HTTP API: registrar with health checks and a blocking-query instancer.
 *
 * @packageDocumentation
 */

export {};
