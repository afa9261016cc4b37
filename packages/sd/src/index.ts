/**
 * Service discovery core, after go-kit's `sd`: an {@link Instancer} is a live set of service
 * {@link Instance}s (static, or fed by a backend through an {@link InstanceCache}, which keeps the
 * last good set when the backend fails); an {@link Endpointer} turns it into endpoints with a
 * {@link Factory}, caching one per instance and closing those of instances that went away; a
 * {@link Registrar} announces this process to a backend. Load balancers (`@svckit/lb`) pick from an
 * endpointer's entries.
 *
 * @packageDocumentation
 */

export { BackendInstancer } from "./backend-instancer.js";
export type {
  EndpointEntry,
  Endpointer,
  EndpointerErrorInfo,
  EndpointerOptions,
  Factory,
  FactoryResult,
  FactoryRetryOptions,
} from "./endpointer.js";
export { createEndpointer } from "./endpointer.js";
export type { Instance, InstanceInit, Instancer, InstancerState, Registrar } from "./instance.js";
export type { InstanceCacheOptions } from "./instance-cache.js";
export { createInstanceCache, InstanceCache } from "./instance-cache.js";
export { createStaticInstancer } from "./static-instancer.js";
