/**
 * One instance of a service: where to reach it and what a backend knows about it.
 *
 * @example
 * ```ts
 * const instance: Instance = { address: "10.0.0.7:8080", metadata: { zone: "eu-1" }, weight: 2 };
 * ```
 */
export interface Instance {
  /** Where the instance listens: `host:port` or a URL. It identifies the instance: two entries with the same address are the same instance. */
  readonly address: string;
  /** What the backend knows about the instance (tags, zone, protocol, ...). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** The instance's relative share for weighted balancing; a finite number ≥ 0, 1 when absent. */
  readonly weight?: number;
}

/**
 * What an {@link Instancer} knows now: the instances, and the error of the backend if its last
 * lookup failed. On an error, `instances` is still the last set known to be good.
 */
export interface InstancerState {
  /** The live instances (the last known good set while `error` is set). */
  readonly instances: readonly Instance[];
  /** Why the backend's last lookup failed; absent when it succeeded. */
  readonly error?: Error;
}

/**
 * A live set of service instances, from a static list or a discovery backend (etcd, Consul, DNS),
 * like go-kit's `sd.Instancer`.
 *
 * Contract for implementations: when the backend fails, keep serving the last known good set and
 * report the error in {@link InstancerState.error}; never flap to an empty set on a transient
 * failure. {@link InstanceCache} implements this; backends build on it.
 *
 * @example
 * ```ts
 * const stop = instancer.subscribe(({ instances, error }) => console.log(instances.length, error?.message));
 * stop();
 * ```
 */
export interface Instancer {
  /** The state now. Returns the same object until the state changes. */
  current(): InstancerState;
  /**
   * Calls `listener` with the current state at once, then with every change. Returns a function
   * that unsubscribes.
   */
  subscribe(listener: (state: InstancerState) => void): () => void;
  /** Stops watching the backend and drops the listeners. */
  close(): void;
}

/**
 * Registers this process with a discovery backend and removes it again, like go-kit's
 * `sd.Registrar`. An app calls `register()` once its servers listen and `deregister()` before it
 * drains them.
 *
 * @example
 * ```ts
 * await registrar.register();
 * process.once("SIGTERM", () => void registrar.deregister());
 * ```
 */
export interface Registrar {
  /** Adds the instance to the backend; resolves once the backend accepted it. */
  register(): Promise<void>;
  /** Removes the instance from the backend; resolves once the backend dropped it. */
  deregister(): Promise<void>;
}

/** An instance, or just its address. */
export type InstanceInit = Instance | string;

/**
 * Validates and copies instances into frozen objects, dropping repeated addresses (the first
 * wins). Throws a TypeError for an address that is not a non-empty string and a RangeError for a
 * weight that is not a finite number ≥ 0.
 */
export function normalizeInstances(instances: Iterable<InstanceInit>, where: string): readonly Instance[] {
  const seen = new Set<string>();
  const out: Instance[] = [];
  for (const init of instances) {
    const instance = normalizeInstance(init, where);
    if (seen.has(instance.address)) continue;
    seen.add(instance.address);
    out.push(instance);
  }
  return Object.freeze(out);
}

function normalizeInstance(init: InstanceInit, where: string): Instance {
  if (typeof init === "string") return Object.freeze({ address: checkAddress(init, where) });
  if (typeof init !== "object" || init === null) {
    throw new TypeError(
      `${where}: an instance must be an address string or { address }, got ${String(init)}`,
    );
  }
  const address = checkAddress(init.address, where);
  const { metadata, weight } = init;
  if (weight !== undefined && !(typeof weight === "number" && Number.isFinite(weight) && weight >= 0)) {
    throw new RangeError(
      `${where}: weight of instance ${address} must be a finite number >= 0, got ${String(weight)}`,
    );
  }
  if (metadata !== undefined && (typeof metadata !== "object" || metadata === null)) {
    throw new TypeError(`${where}: metadata of instance ${address} must be an object of strings`);
  }
  const copy: { address: string; metadata?: Readonly<Record<string, string>>; weight?: number } = {
    address,
  };
  if (metadata !== undefined) copy.metadata = Object.freeze({ ...metadata });
  if (weight !== undefined) copy.weight = weight;
  return Object.freeze(copy);
}

function checkAddress(address: unknown, where: string): string {
  if (typeof address !== "string" || address === "") {
    throw new TypeError(
      `${where}: an instance address must be a non-empty string, got ${JSON.stringify(address) ?? String(address)}`,
    );
  }
  return address;
}

/** Whether two instances have the same address, weight and metadata. */
export function sameInstance(a: Instance, b: Instance): boolean {
  if (a === b) return true;
  if (a.address !== b.address || a.weight !== b.weight) return false;
  const ma = a.metadata;
  const mb = b.metadata;
  if (ma === mb) return true;
  if (ma === undefined || mb === undefined) return false;
  const keys = Object.keys(ma);
  if (keys.length !== Object.keys(mb).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(mb, key) || ma[key] !== mb[key]) return false;
  }
  return true;
}

/** Whether two instance lists hold the same instances, in any order (addresses are unique in each). */
export function sameInstanceSet(a: readonly Instance[], b: readonly Instance[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  const byAddress = new Map<string, Instance>();
  for (const instance of a) byAddress.set(instance.address, instance);
  for (const instance of b) {
    const other = byAddress.get(instance.address);
    if (other === undefined || !sameInstance(other, instance)) return false;
  }
  return true;
}
