/**
 * svckit bulkhead middleware: bounded concurrency with a bounded queue.
 *
 * @packageDocumentation
 */

export {};
