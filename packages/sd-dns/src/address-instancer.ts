import type { RecordWithTtl } from "node:dns";
import { Code, ServiceError } from "@svckit/endpoint";
import type { Instance } from "@svckit/sd";
import {
  cancelOnAbort,
  type DnsInstancer,
  type DnsInstancerOptions,
  DnsPoller,
  defaultResolver,
  type LookupResult,
  lookupError,
  nonEmpty,
  pollerConfig,
} from "./poller.js";

const where = "createDnsAddressInstancer";

/**
 * What the A/AAAA instancer needs of a resolver; node's `dns.promises.Resolver` is one.
 *
 * The instancer passes `{ ttl: true, signal }`; `signal` is aborted when the lookup runs past
 * `timeout` or the instancer is closed, and a resolver should then reject soon, since the next lookup
 * waits until this one settles.
 *
 * @example
 * ```ts
 * const resolver: AddressResolver = {
 *   resolve4: async () => [{ address: "10.0.0.5", ttl: 30 }],
 *   resolve6: async () => [],
 * };
 * ```
 */
export interface AddressResolver {
  resolve4(name: string, options: { ttl: true; signal?: AbortSignal }): Promise<RecordWithTtl[]>;
  resolve6(name: string, options: { ttl: true; signal?: AbortSignal }): Promise<RecordWithTtl[]>;
}

/** Options of {@link createDnsAddressInstancer}. */
export interface DnsAddressInstancerOptions extends DnsInstancerOptions {
  /** Which records: `4` (A), `6` (AAAA) or `0` (both, the default). */
  family?: 0 | 4 | 6;
  /** The resolver to ask (tests, caching resolvers). Default: a `dns.promises.Resolver` of its own. */
  resolver?: AddressResolver;
}

/**
 * Creates an {@link DnsInstancer} over every address of `host` (its A and/or AAAA records), each on
 * the fixed `port`: `{ address: "10.0.0.5:6379" }`, `{ address: "[fd00::5]:6379" }`. It is TTL-aware:
 * the next lookup comes when the shortest record TTL runs out, but never sooner than `minInterval` nor
 * later than `interval`. With `family: 0` a name with only A (or only AAAA) records is fine; a
 * failure of either lookup other than "no records" fails the whole lookup, so the set does not shrink
 * on a transient error. Failures keep the last good set; see `notFound` for NXDOMAIN (an empty
 * answer counts as NODATA). One lookup runs at a time; `close()` clears the (unref'd) timers and
 * aborts the lookup in flight.
 *
 * Throws a TypeError / RangeError for bad options.
 *
 * @example
 * ```ts
 * const instancer = createDnsAddressInstancer("redis.internal", 6379, { family: 4 });
 * const { instances } = await instancer.ready(); // [{ address: "10.0.0.5:6379" }, ...]
 * ```
 */
export function createDnsAddressInstancer(
  host: string,
  port: number,
  options: DnsAddressInstancerOptions = {},
): DnsInstancer {
  nonEmpty(where, "host", host);
  if (!(Number.isInteger(port) && port >= 1 && port <= 65_535)) {
    throw new RangeError(`${where}: port must be a whole number from 1 to 65535, got ${String(port)}`);
  }
  if (typeof options !== "object" || options === null)
    throw new TypeError(`${where}: options must be an object`);
  const config = pollerConfig(where, options);
  const family = options.family ?? 0;
  if (family !== 0 && family !== 4 && family !== 6) {
    throw new TypeError(`${where}: family must be 0, 4 or 6, got ${JSON.stringify(family)}`);
  }
  let resolver: AddressResolver;
  let own: { cancel(): void } | undefined;
  if (options.resolver !== undefined) {
    if (options.servers !== undefined) throw new TypeError(`${where}: give servers or a resolver, not both`);
    const given = options.resolver;
    if (
      (family !== 6 && typeof given?.resolve4 !== "function") ||
      (family !== 4 && typeof given?.resolve6 !== "function")
    ) {
      throw new TypeError(`${where}: resolver must have resolve4 / resolve6 methods for family ${family}`);
    }
    resolver = given;
  } else {
    const made = defaultResolver(where, config.timeout, options.servers);
    resolver = made;
    own = made;
  }
  const kind = family === 4 ? "A" : family === 6 ? "AAAA" : "A/AAAA";
  const what = `${kind} lookup of ${host}`;
  const lookup = async (_tell: unknown, signal: AbortSignal): Promise<LookupResult> => {
    if (own !== undefined) cancelOnAbort(signal, own);
    const lookups: Promise<RecordWithTtl[]>[] = [];
    if (family !== 6) lookups.push(resolver.resolve4(host, { ttl: true, signal }));
    if (family !== 4) lookups.push(resolver.resolve6(host, { ttl: true, signal }));
    const settled = await Promise.allSettled(lookups);
    const records: RecordWithTtl[] = [];
    let notFound: unknown;
    for (const outcome of settled) {
      if (outcome.status === "fulfilled") {
        if (!Array.isArray(outcome.value))
          throw new TypeError("the resolver answered with something other than a list");
        records.push(...outcome.value);
        continue;
      }
      const error = lookupError(what, outcome.reason);
      if (error.code !== Code.NOT_FOUND) throw outcome.reason; // a transient failure fails the lookup
      notFound = outcome.reason;
    }
    // No records of either kind: that is the answer (for `notFound` to judge), also when a custom
    // resolver says so with an empty list instead of ENODATA.
    if (records.length === 0) {
      throw (
        notFound ??
        new ServiceError(Code.NOT_FOUND, `dns: ${what} failed: the resolver answered with no records`)
      );
    }
    const instances: Instance[] = [];
    let ttl: number | undefined;
    for (const record of records) {
      if (typeof record?.address !== "string" || record.address === "") {
        throw new ServiceError(
          Code.UNAVAILABLE,
          `dns: ${what} failed: the resolver gave a record without an address`,
        );
      }
      const host = record.address.includes(":") ? `[${record.address}]` : record.address;
      instances.push({ address: `${host}:${port}` });
      if (typeof record.ttl === "number" && Number.isFinite(record.ttl) && record.ttl >= 0) {
        ttl = ttl === undefined ? record.ttl : Math.min(ttl, record.ttl);
      }
    }
    return ttl === undefined ? { instances } : { instances, ttl };
  };
  return new DnsPoller(what, lookup, config);
}
