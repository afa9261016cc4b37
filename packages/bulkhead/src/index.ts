/**
 * Bounded concurrency for svckit endpoints: a bulkhead middleware that lets a fixed number of calls run at
 * once, queues a bounded number more (first in, first out, leaving the queue as soon as their context is
 * cancelled or their deadline passes) and refuses the rest with RESOURCE_EXHAUSTED, so one slow dependency
 * cannot take every resource of the process. `createBulkhead` also exposes `running` and `queued` for metrics.
 *
 * @packageDocumentation
 */

export type { Bulkhead, BulkheadOptions } from "./bulkhead.js";
export { bulkhead, createBulkhead } from "./bulkhead.js";
