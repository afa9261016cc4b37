/**
 * svckit OpenTelemetry tracing middleware: server and client spans, W3C trace context over HTTP and gRPC.
 *
 * @packageDocumentation
 */

export {};
