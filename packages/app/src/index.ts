/**
 * svckit application lifecycle: start servers, register, signals, drain and graceful stop.
 *
 * @packageDocumentation
 */

export {};
