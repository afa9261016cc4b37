/**
 * Request logging for svckit endpoints. {@link logging} writes one structured line per call (endpoint,
 * transport, method, route, code, duration, trace id, chosen metadata and your own fields) at a level
 * that follows the code, redacted, and never fails the call. It logs through {@link Logger}, a
 * one-method interface any logger fits: {@link createJsonLogger} is the fast built-in one (JSON lines,
 * written in batches), and `@svckit/log/winston` adapts winston (an optional peer) and offers the
 * redaction as a winston format. {@link createRedactor} is the redaction on its own.
 *
 * @packageDocumentation
 */

export type { JsonDestination, JsonLogger, JsonLoggerOptions } from "./json-logger.js";
export { createJsonLogger } from "./json-logger.js";
export type { LogFields, Logger, LogLevel } from "./logger.js";
export { childLogger, noopLogger } from "./logger.js";
export type { CallKind, CodeLevel, LogFieldsHook, LoggingOptions } from "./logging.js";
export { defaultCodeLevels, logging } from "./logging.js";
export type { RedactOptions, Redactor } from "./redact.js";
export { createRedactor, defaultRedactKeys, redact } from "./redact.js";
export { parseTraceparent, traceIdKey, traceIdOf } from "./trace.js";
