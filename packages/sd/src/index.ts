/**
 * svckit service discovery core: instancers, registrars, endpointer with a factory and cache.
 *
 * @packageDocumentation
 */

export {};
