/**
 * svckit health checks: liveness and readiness with named checks, HTTP handler and grpc.health.v1 service.
 *
 * @packageDocumentation
 */

export {};
