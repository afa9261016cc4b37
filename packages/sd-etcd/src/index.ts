/**
 * Service discovery on etcd v3, after go-kit's `sd/etcdv3`: {@link createEtcdRegistrar} keeps this
 * instance's key (`prefix + id`) in etcd under a lease it keeps alive, so the key disappears when the
 * process dies, and revokes it on `deregister()`; {@link createEtcdInstancer} watches a prefix and
 * reports the instances under it as an `@svckit/sd` `Instancer`, keeping the last set while etcd is
 * unreachable. {@link createEtcdClient} makes an etcd3 client that reconnects watches quickly. Values
 * are JSON `{address, metadata?, weight?}`; plain addresses (go-kit's layout) are read too.
 *
 * @packageDocumentation
 */

export type { EtcdClientInit } from "./client.js";
export { createEtcdClient } from "./client.js";
export type { EtcdInstancer, EtcdInstancerOptions } from "./instancer.js";
export { createEtcdInstancer } from "./instancer.js";
export type { EtcdRegistrar, EtcdRegistrarOptions } from "./registrar.js";
export { createEtcdRegistrar } from "./registrar.js";
export type { EtcdValueEncoding } from "./value.js";
