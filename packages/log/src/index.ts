/**
 * svckit request logging middleware with a small logger interface and a winston-backed logger.
 *
 * @packageDocumentation
 */

export {};
