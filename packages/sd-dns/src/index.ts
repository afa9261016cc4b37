/**
 * svckit service discovery from DNS SRV records.
 *
 * @packageDocumentation
 */

export {};
