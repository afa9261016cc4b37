import { Etcd3, type IOptions } from "etcd3";

type WatchBackoff = NonNullable<NonNullable<IOptions["faultHandling"]>["watchBackoff"]>;

/** Options of {@link createEtcdClient}: etcd3's own `IOptions`, or just the hosts. */
export type EtcdClientInit = string | string[] | IOptions;

/**
 * A watch reconnect backoff with full jitter, from `initial` ms doubling up to `max` ms. etcd3's
 * default goes up to 30 s, so a watch could stay down for half a minute after etcd is back.
 */
function cappedBackoff(initial: number, max: number, attempt = 0): WatchBackoff {
  const ceiling = Math.min(max, initial * 2 ** attempt);
  return {
    duration: Math.round(ceiling / 2 + (Math.random() * ceiling) / 2),
    next: () => cappedBackoff(initial, max, Math.min(attempt + 1, 30)),
  };
}

/**
 * Creates an etcd3 client (`new Etcd3(options)`) suited to service discovery: the same as etcd3's
 * defaults except that a broken watch reconnects after at most about 5 s (etcd3's default backoff
 * grows to 30 s). Pass the hosts (`"http://127.0.0.1:2379"` or a list) or etcd3's full options
 * (TLS, auth, fault handling; a `faultHandling.watchBackoff` you give wins). Close it with
 * `client.close()` once the registrars and instancers using it are done.
 *
 * @example
 * ```ts
 * const client = createEtcdClient(["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
 * const instancer = createEtcdInstancer(client, { prefix: "/services/users/" });
 * ```
 */
export function createEtcdClient(options: EtcdClientInit): Etcd3 {
  const init: IOptions = typeof options === "string" || Array.isArray(options) ? { hosts: options } : options;
  return new Etcd3({
    ...init,
    faultHandling: { watchBackoff: cappedBackoff(100, 5_000), ...init.faultHandling },
  });
}
