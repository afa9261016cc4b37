/**
 * svckit load balancers over an endpointer: round robin, random, weighted, least requests, P2C EWMA, retry.
 *
 * @packageDocumentation
 */

export {};
