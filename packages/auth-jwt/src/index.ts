/**
 * svckit JWT authentication and authorization middleware (jose): verify, sign, key sets, policies.
 *
 * @packageDocumentation
 */

export {};
