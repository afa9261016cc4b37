/**
 * The svckit core: the {@link Endpoint} and {@link Middleware} types and {@link chain}, the
 * per-call {@link Context}, the one error type {@link ServiceError} with the canonical
 * {@link Code}s and their HTTP mappings, request {@link Metadata}, the {@link timeout}
 * middleware, and {@link setLongTimeout} for timers past `setTimeout`'s 24.8 days. Zero runtime
 * dependencies and no `node:` imports: it runs anywhere.
 *
 * @packageDocumentation
 */

export type { CodeName, MappedHttpStatus } from "./code.js";
export {
  Code,
  codeFromString,
  codeNames,
  codeToHttpStatus,
  codeToString,
  httpStatusToCode,
  httpStatusToCodeTable,
  isCode,
} from "./code.js";
export type {
  CallInfo,
  CancelableContext,
  CancelSource,
  Context,
  ContextInit,
  ContextKey,
  ContextKeyOptions,
} from "./context.js";
export {
  background,
  callInfoKey,
  createCancelableContext,
  createContext,
  createContextKey,
  onAbort,
} from "./context.js";
export type { Endpoint, GenericMiddleware, Middleware } from "./endpoint.js";
export { chain, nop } from "./endpoint.js";
export type { LongTimeout } from "./long-timeout.js";
export { clearLongTimeout, MAX_TIMER_MS, setLongTimeout } from "./long-timeout.js";
export type { Metadata, MetadataInit, MetadataValue } from "./metadata.js";
export {
  createMetadata,
  emptyMetadata,
  mergeMetadata,
  metadataFromLowerCaseRecord,
  metadataFromNodeHeaders,
} from "./metadata.js";
export type { ErrorDetail, ServiceErrorOptions } from "./service-error.js";
export { ServiceError } from "./service-error.js";
export { timeout } from "./timeout.js";
