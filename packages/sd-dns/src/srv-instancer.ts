import type { SrvRecord } from "node:dns";
import { Code, ServiceError } from "@svckit/endpoint";
import type { Instance } from "@svckit/sd";
import {
  type DnsInstancer,
  type DnsInstancerOptions,
  DnsPoller,
  defaultResolver,
  type LookupResult,
  nonEmpty,
  pollerConfig,
} from "./poller.js";

const where = "createDnsSrvInstancer";

/** What the SRV instancer needs of a resolver; node's `dns.promises.Resolver` is one. */
export interface SrvResolver {
  resolveSrv(name: string): Promise<SrvRecord[]>;
}

/** Options of {@link createDnsSrvInstancer}. */
export interface DnsSrvInstancerOptions extends DnsInstancerOptions {
  /** The resolver to ask (tests, caching resolvers). Default: a `dns.promises.Resolver` of its own. */
  resolver?: SrvResolver;
}

/**
 * Creates an {@link DnsInstancer} that polls the SRV records of `name` (e.g.
 * `"_http._tcp.users.default.svc.cluster.local"`), like go-kit's `dnssrv` instancer. Each record of the
 * **lowest priority** becomes `{ address: "<target>:<port>", weight: <SRV weight> }`; records of higher
 * priorities (RFC 2782 fallbacks) are not used. A single record with target `"."` means "no
 * instances" (RFC 2782). The lookup repeats every `interval` (node's `resolveSrv` does not tell the
 * records' TTL). On a failed lookup the last good set stays, with the error in `current().error`; see
 * `notFound` for NXDOMAIN. `close()` clears the (unref'd) timer and cancels the lookup in flight.
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
  let resolver: SrvResolver;
  let cancel: (() => void) | undefined;
  if (options.resolver !== undefined) {
    if (options.servers !== undefined) throw new TypeError(`${where}: give servers or a resolver, not both`);
    if (typeof options.resolver?.resolveSrv !== "function") {
      throw new TypeError(`${where}: resolver must have a resolveSrv(name) method`);
    }
    resolver = options.resolver;
  } else {
    const own = defaultResolver(where, config.timeout, options.servers);
    resolver = own;
    cancel = () => own.cancel();
  }
  const what = `SRV lookup of ${name}`;
  const lookup = async (tell: (error: Error) => void): Promise<LookupResult> => {
    const records = await resolver.resolveSrv(name);
    if (!Array.isArray(records))
      throw new TypeError("the resolver answered with something other than a list");
    return { instances: lowestPriority(records, what, tell) };
  };
  return new DnsPoller(what, lookup, config, cancel);
}

function lowestPriority(
  records: readonly SrvRecord[],
  what: string,
  tell: (error: Error) => void,
): Instance[] {
  const valid: SrvRecord[] = [];
  for (const record of records) {
    const problem = invalid(record);
    if (problem === undefined) valid.push(record);
    else tell(new ServiceError(Code.INVALID_ARGUMENT, `dns: ${what}: skipping a record: ${problem}`));
  }
  if (valid.length === 0) return [];
  const lowest = Math.min(...valid.map((r) => r.priority));
  const instances: Instance[] = [];
  for (const record of valid) {
    if (record.priority !== lowest) continue;
    const target = record.name.replace(/\.$/, "");
    if (target === "") continue; // "." : the service is decidedly not available here (RFC 2782)
    instances.push({ address: `${target}:${record.port}`, weight: record.weight });
  }
  return instances;
}

const u16 = (n: unknown): boolean => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 65_535;

function invalid(record: SrvRecord): string | undefined {
  if (typeof record !== "object" || record === null) return "not an object";
  if (typeof record.name !== "string" || record.name === "") return "no target name";
  if (!u16(record.port)) return `target ${record.name} has port ${String(record.port)}`;
  if (!u16(record.priority)) return `target ${record.name} has priority ${String(record.priority)}`;
  if (!u16(record.weight)) return `target ${record.name} has weight ${String(record.weight)}`;
  return undefined;
}
