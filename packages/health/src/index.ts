/**
 * svckit health: liveness and readiness with named checks, each with its own timeout, aggregated into
 * Consul's `passing` / `warning` / `critical` ({@link createHealth}); an HTTP handler for `node:http`
 * and express serving `/healthz` and `/readyz` ({@link createHealthHandler}); and the standard
 * `grpc.health.v1.Health` service with Check and Watch for grpc-js ({@link addHealthService}, with
 * hand-written message codecs and no grpc-js import). A `Health` is the readiness object
 * `@svckit/app` takes: readiness turns critical first thing when the app stops.
 *
 * @packageDocumentation
 */

export type {
  CheckOptions,
  CheckReport,
  CheckResult,
  CheckSpec,
  Health,
  HealthCheck,
  HealthOptions,
  HealthReport,
  HealthStatus,
} from "./health.js";
export { createHealth } from "./health.js";
export type { HealthHandler, HealthHandlerOptions } from "./health-handler.js";
export { createHealthHandler } from "./health-handler.js";
export type {
  GrpcHealthOptions,
  GrpcHealthService,
  GrpcServiceRegistrar,
  GrpcStatusError,
  HealthMethodDefinition,
  HealthServiceDefinition,
  HealthServiceImplementation,
  HealthUnaryCall,
  HealthWatchCall,
  SettableStatus,
} from "./health-service.js";
export { addHealthService, HEALTH_SERVICE_NAME } from "./health-service.js";
export type { HealthCheckRequest, HealthCheckResponse, MessageCodec, ServingStatus } from "./messages.js";
export { healthCheckRequest, healthCheckResponse } from "./messages.js";
