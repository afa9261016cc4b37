/**
 * svckit retry middleware: exponential backoff with full jitter, retry budget, hedged requests.
 *
 * @packageDocumentation
 */

export {};
