import { ServiceError } from "@svckit/endpoint";
import type { InstanceInit, Registrar } from "@svckit/sd";
import type { Etcd3, Lease } from "etcd3";
import { codeOf, messageOf, nonEmpty, noop, positive, retryDelay } from "./util.js";
import { checkInstance, type EtcdValueEncoding, encodeValue } from "./value.js";

const where = "createEtcdRegistrar";

/** Options of {@link createEtcdRegistrar}. */
export interface EtcdRegistrarOptions {
  /** The service's key prefix, e.g. `"/services/users/"`; the instance's key is `prefix + id`. */
  prefix: string;
  /** This instance's id, unique within the service (e.g. host name + port). */
  id: string;
  /** What to store: an address (`"10.0.0.7:8080"`) or `{ address, metadata?, weight? }`. */
  instance: InstanceInit;
  /** The lease's time to live in whole seconds (default 10): how long the key outlives a dead process. */
  ttl?: number;
  /** How the value is written: `"json"` (default) or `"address"` (go-kit's plain address). */
  encoding?: EtcdValueEncoding;
  /** Deadline of each etcd call, in ms (default 5000). */
  requestTimeout?: number;
  /**
   * Told when the lease is lost (etcd unreachable for longer than the TTL, or the lease expired) and
   * of each failed attempt to register again; the registrar keeps retrying until `deregister()`.
   * Default: ignore.
   */
  onError?: (error: ServiceError) => void;
}

/** A {@link Registrar} that keeps one instance's key in etcd, under a lease it keeps alive. */
export interface EtcdRegistrar extends Registrar {
  /** The instance's key, `prefix + id`. */
  readonly key: string;
  /** The value written to the key. */
  readonly value: string;
  /** Whether the key is registered under a live lease right now. */
  readonly registered: boolean;
}

/**
 * Creates a registrar that writes this instance to etcd under `prefix + id`, attached to a lease of
 * `ttl` seconds that the client keeps alive, like go-kit's etcdv3 registrar. If the process dies the
 * keep-alives stop and etcd deletes the key when the lease runs out; `deregister()` revokes the lease
 * at once. If the lease is lost while registered (etcd was unreachable for longer than the TTL), the
 * registrar grants a new lease and writes the key again, retrying with backoff until it succeeds or
 * `deregister()` is called. Calls are serialized: a `deregister()` made while `register()` is in flight
 * runs after it and removes the key, and nothing registers it again until the next `register()`.
 *
 * `register()` rejects with a `ServiceError` (`UNAVAILABLE`, `DEADLINE_EXCEEDED`) when etcd does not
 * accept the key, and does not retry then. Throws a TypeError / RangeError for bad options.
 *
 * @example
 * ```ts
 * const registrar = createEtcdRegistrar(client, {
 *   prefix: "/services/users/",
 *   id: "users-1",
 *   instance: { address: "10.0.0.7:8080", metadata: { zone: "eu-1" } },
 *   ttl: 10,
 * });
 * await registrar.register(); // key /services/users/users-1 → {"address":"10.0.0.7:8080",...}
 * await registrar.deregister(); // revokes the lease: the key is gone
 * ```
 */
export function createEtcdRegistrar(client: Etcd3, options: EtcdRegistrarOptions): EtcdRegistrar {
  if (typeof client !== "object" || client === null || typeof client.lease !== "function") {
    throw new TypeError(`${where}: client must be an etcd3 client (createEtcdClient or new Etcd3())`);
  }
  if (typeof options !== "object" || options === null) throw new TypeError(`${where}: options are required`);
  const prefix = nonEmpty(where, "prefix", options.prefix);
  const id = nonEmpty(where, "id", options.id);
  const ttl = positive(where, "ttl", options.ttl, 10);
  if (!Number.isInteger(ttl))
    throw new RangeError(`${where}: ttl must be a whole number of seconds, got ${ttl}`);
  const encoding = options.encoding ?? "json";
  if (encoding !== "json" && encoding !== "address") {
    throw new TypeError(`${where}: encoding must be "json" or "address", got ${JSON.stringify(encoding)}`);
  }
  const value = encodeValue(checkInstance(options.instance, where), encoding);
  const timeout = positive(where, "requestTimeout", options.requestTimeout, 5_000);
  return new EtcdRegistrarImpl(client, `${prefix}${id}`, value, ttl, timeout, options.onError ?? noop);
}

class EtcdRegistrarImpl implements EtcdRegistrar {
  readonly key: string;
  readonly value: string;
  readonly #client: Etcd3;
  readonly #ttl: number;
  readonly #timeout: number;
  readonly #onError: (error: ServiceError) => void;
  /** The lease the key lives under while registered. */
  #lease: Lease | undefined;
  /** Whether the user wants the key registered (between a successful register() and deregister()). */
  #wanted = false;
  #queue: Promise<unknown> = Promise.resolve();
  #retryTimer: NodeJS.Timeout | undefined;
  #attempt = 0;

  constructor(
    client: Etcd3,
    key: string,
    value: string,
    ttl: number,
    timeout: number,
    onError: (error: ServiceError) => void,
  ) {
    this.#client = client;
    this.key = key;
    this.value = value;
    this.#ttl = ttl;
    this.#timeout = timeout;
    this.#onError = onError;
  }

  get registered(): boolean {
    return this.#lease !== undefined;
  }

  register(): Promise<void> {
    return this.#serial(async () => {
      if (this.#lease !== undefined) return;
      this.#clearRetry();
      const wanted = this.#wanted;
      try {
        await this.#put();
      } catch (error) {
        // A first register that fails leaves nothing to keep. One made while a lost lease was being
        // re-registered must not cancel that: the retries go on until deregister().
        if (wanted) this.#scheduleRetry();
        else this.#wanted = false;
        throw error;
      }
      this.#wanted = true;
    });
  }

  deregister(): Promise<void> {
    this.#wanted = false;
    this.#clearRetry();
    return this.#serial(async () => {
      // Again here: a register() that was in flight when deregister() was called has set #wanted once
      // its put succeeded; left set, a later failed register() would re-register in the background.
      this.#wanted = false;
      this.#clearRetry();
      const lease = this.#lease;
      this.#lease = undefined;
      if (lease === undefined) return;
      try {
        await lease.revoke({ deadline: Date.now() + this.#timeout });
      } catch (error) {
        throw this.#error(
          error,
          `cannot deregister ${this.key}: ${messageOf(error)}; the key goes when its lease runs out within ${this.#ttl} s`,
        );
      }
    });
  }

  /** Runs `task` after every earlier register/deregister settled. */
  #serial(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(noop);
    return run;
  }

  /** Grants a new lease and writes the key under it; throws a ServiceError when etcd refuses. */
  async #put(): Promise<void> {
    const deadline = Date.now() + this.#timeout;
    const lease = this.#client.lease(this.#ttl, { deadline });
    lease.on("lost", (error) => this.#lost(lease, error));
    try {
      await lease.put(this.key).value(this.value).options({ deadline });
    } catch (error) {
      // Stop the keep-alives and drop the lease if it was granted; the key was not written.
      lease.revoke({ deadline: Date.now() + this.#timeout }).catch(noop);
      throw this.#error(error, `cannot register ${this.key}: ${messageOf(error)}`);
    }
    this.#lease = lease;
    this.#attempt = 0;
  }

  #lost(lease: Lease, error: Error): void {
    if (lease !== this.#lease) return; // a failed attempt's lease, or one already replaced
    this.#lease = undefined;
    this.#report(
      this.#error(error, `lost the lease of ${this.key} (${messageOf(error)}); registering it again`),
    );
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (!this.#wanted || this.#retryTimer !== undefined) return;
    const delay = retryDelay(this.#attempt++);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#serial(async () => {
        if (!this.#wanted || this.#lease !== undefined) return;
        try {
          await this.#put();
        } catch (error) {
          this.#report(error as ServiceError);
          this.#scheduleRetry();
        }
      });
    }, delay);
    this.#retryTimer.unref();
  }

  #clearRetry(): void {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  #report(error: ServiceError): void {
    try {
      this.#onError(error);
    } catch {
      // an onError that throws must not break the retry loop
    }
  }

  #error(cause: unknown, message: string): ServiceError {
    return new ServiceError(codeOf(cause), `etcd registrar: ${message}`, { cause });
  }
}
