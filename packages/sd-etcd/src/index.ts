/**
 * svckit service discovery on etcd: registrar with lease keep-alive and a prefix-watching instancer.
 *
 * @packageDocumentation
 */

export {};
