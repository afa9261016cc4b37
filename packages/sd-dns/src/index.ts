/**
 * Service discovery from DNS, after go-kit's `sd/dnssrv`: {@link createDnsSrvInstancer} polls a name's
 * SRV records and reports the lowest-priority targets (`target:port`, weighted by the SRV weight) as an
 * `@svckit/sd` `Instancer`; {@link createDnsAddressInstancer} polls a host's A/AAAA records, TTL-aware,
 * on a fixed port. Both keep the last good set when a lookup fails, take an injectable resolver, and
 * stop their (unref'd) timer on `close()`.
 *
 * @packageDocumentation
 */

export type { AddressResolver, DnsAddressInstancerOptions } from "./address-instancer.js";
export { createDnsAddressInstancer } from "./address-instancer.js";
export type { DnsInstancer, DnsInstancerOptions } from "./poller.js";
export type { DnsSrvInstancerOptions, SrvResolver } from "./srv-instancer.js";
export { createDnsSrvInstancer } from "./srv-instancer.js";
