/**
 * Service discovery on Consul through its HTTP API (no client library): {@link createConsulRegistrar}
 * registers this instance with the local agent, with tags, metadata and an HTTP or TTL health check
 * (reporting the TTL check itself), and deregisters it; {@link createConsulInstancer} follows a
 * service's passing instances with blocking queries and reports them as an `@svckit/sd` `Instancer`,
 * keeping the last good set while Consul is unreachable. Both take the agent's URL, an ACL token and
 * an injectable `fetch`.
 *
 * @packageDocumentation
 */

export type { ConsulConnectionOptions, ConsulDuration } from "./http.js";
export type { ConsulInstancer, ConsulInstancerOptions } from "./instancer.js";
export { createConsulInstancer } from "./instancer.js";
export type {
  ConsulHttpCheck,
  ConsulRegistrar,
  ConsulRegistrarOptions,
  ConsulTtlCheck,
} from "./registrar.js";
export { createConsulRegistrar } from "./registrar.js";
