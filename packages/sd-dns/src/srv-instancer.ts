import type { SrvRecord } from "node:dns";
import { Code, ServiceError } from "@svckit/endpoint";
import type { Instance } from "@svckit/sd";
import {
  cancelOnAbort,
  type DnsInstancer,
  type DnsInstancerOptions,
  DnsPoller,
  defaultResolver,
  type LookupResult,
  nonEmpty,
  pollerConfig,
} from "./poller.js";

const where = "createDnsSrvInstancer";

/**
 * What the SRV instancer needs of a resolver; node's `dns.promises.Resolver` is one.
 *
 * The instancer passes `{ signal }`, aborted when the lookup runs past `timeout` or the instancer is
 * closed; a resolver should then reject soon, since the next lookup waits until this one settles.
 *
 * @example
 * ```ts
 * const resolver: SrvResolver = {
 *   resolveSrv: async (name, options) => (await fetch(`http://dns-api/srv/${name}`, options)).json(),
 * };
 * ```
 */
export interface SrvResolver {
  resolveSrv(name: string, options?: { signal?: AbortSignal }): Promise<SrvRecord[]>;
}

/** Options of {@link createDnsSrvInstancer}. */
export interface DnsSrvInstancerOptions extends DnsInstancerOptions {
  /** The resolver to ask (tests, caching resolvers). Default: a `dns.promises.Resolver` of its own. */
  resolver?: SrvResolver;
}

/**
 * Creates an {@link DnsInstancer} that polls the SRV records of `name` (e.g.
 * `"_http._tcp.users.default.svc.cluster.local"`), like go-kit's `dnssrv` instancer. Each target of
 * the **lowest priority** becomes `{ address: "<target>:<port>", weight: <SRV weight> }` (target
 * lower-cased, trailing dot dropped, an IPv6 literal in brackets; records for the same target and
 * port are one instance with their weights summed); records of higher priorities (RFC 2782
 * fallbacks) are not used. A single record with target `"."` means "no instances" (RFC 2782). The
 * lookup repeats every `interval` (node's `resolveSrv` does not tell the records' TTL). On a failed
 * lookup the last good set stays, with the error in `current().error`; so does an answer whose every
 * record is malformed (`INVALID_ARGUMENT`); an empty answer counts as NODATA (see `notFound`).
 * One lookup runs at a time; `close()` clears the (unref'd) timers and aborts the lookup in flight.
 *
 * Throws a TypeError / RangeError for bad options.
 *
 * @example
 * ```ts
 * const instancer = createDnsSrvInstancer("_http._tcp.users.default.svc.cluster.local", { interval: 10_000 });
 * const { instances } = await instancer.ready(); // [{ address: "users-0.users...:8080", weight: 10 }, ...]
 * ```
 */
export function createDnsSrvInstancer(name: string, options: DnsSrvInstancerOptions = {}): DnsInstancer {
  nonEmpty(where, "name", name);
  if (typeof options !== "object" || options === null)
    throw new TypeError(`${where}: options must be an object`);
  const config = pollerConfig(where, options);
  let ask: (signal: AbortSignal) => Promise<SrvRecord[]>;
  if (options.resolver !== undefined) {
    if (options.servers !== undefined) throw new TypeError(`${where}: give servers or a resolver, not both`);
    const given = options.resolver;
    if (typeof given?.resolveSrv !== "function") {
      throw new TypeError(`${where}: resolver must have a resolveSrv(name) method`);
    }
    ask = (signal) => given.resolveSrv(name, { signal });
  } else {
    const own = defaultResolver(where, config.timeout, options.servers);
    ask = (signal) => {
      cancelOnAbort(signal, own);
      return own.resolveSrv(name);
    };
  }
  const what = `SRV lookup of ${name}`;
  const lookup = async (tell: (error: Error) => void, signal: AbortSignal): Promise<LookupResult> => {
    const records = await ask(signal);
    if (!Array.isArray(records))
      throw new TypeError("the resolver answered with something other than a list");
    return { instances: lowestPriority(records, what, tell) };
  };
  return new DnsPoller(what, lookup, config);
}

/**
 * The instances of an answer's lowest-priority records. Throws NOT_FOUND for an empty answer (as node
 * rejects with ENODATA) and INVALID_ARGUMENT when every record is malformed, so neither empties the set
 * unless `notFound: "empty"` says so.
 */
function lowestPriority(
  records: readonly SrvRecord[],
  what: string,
  tell: (error: Error) => void,
): Instance[] {
  if (records.length === 0) {
    throw new ServiceError(Code.NOT_FOUND, `dns: ${what} failed: the resolver answered with no records`);
  }
  const valid: SrvRecord[] = [];
  let lowest = Number.POSITIVE_INFINITY;
  for (const record of records) {
    const problem = invalid(record);
    if (problem === undefined) {
      valid.push(record);
      lowest = Math.min(lowest, record.priority);
    } else tell(new ServiceError(Code.INVALID_ARGUMENT, `dns: ${what}: skipping a record: ${problem}`));
  }
  if (valid.length === 0) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `dns: ${what} failed: every record of the answer is malformed (${records.length} skipped)`,
    );
  }
  // Records for the same target and port are one instance: RFC 2782 picks a record by weight, so the
  // target's share is the sum. DNS names are case-insensitive: the key (and address) is lower-cased.
  const byAddress = new Map<string, { address: string; weight: number }>();
  for (const record of valid) {
    if (record.priority !== lowest) continue;
    const target = record.name.replace(/\.$/, "").toLowerCase();
    // "." (node reports it as ""): the service is decidedly not available here (RFC 2782)
    if (target === "") continue;
    const address = `${target.includes(":") ? `[${target}]` : target}:${record.port}`;
    const seen = byAddress.get(address);
    if (seen === undefined) byAddress.set(address, { address, weight: record.weight });
    else seen.weight += record.weight;
  }
  return [...byAddress.values()];
}

const u16 = (n: unknown): boolean => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 65_535;

/** Why a record is unusable, or undefined. Port 0 is only for the "." (no service) target. */
function invalid(record: SrvRecord): string | undefined {
  if (typeof record !== "object" || record === null) return "not an object";
  if (typeof record.name !== "string") return "no target name";
  const root = record.name === "" || record.name === ".";
  if (!u16(record.port) || (record.port === 0 && !root)) {
    return `target ${record.name} has port ${String(record.port)}`;
  }
  if (!u16(record.priority)) return `target ${record.name} has priority ${String(record.priority)}`;
  if (!u16(record.weight)) return `target ${record.name} has weight ${String(record.weight)}`;
  return undefined;
}
