import { Code, ServiceError } from "@svckit/endpoint";
import { BackendInstancer, type Instance, type Instancer, type InstancerState } from "@svckit/sd";
import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import { codeOf, messageOf, nonEmpty, noop, positive, retryDelay } from "./util.js";
import { decodeValue } from "./value.js";

const where = "createEtcdInstancer";

/** Options of {@link createEtcdInstancer}. */
export interface EtcdInstancerOptions {
  /** The service's key prefix, e.g. `"/services/users/"`: every key under it is one instance. */
  prefix: string;
  /** Deadline of each listing of the prefix, in ms (default 5000). */
  requestTimeout?: number;
  /**
   * Told of keys whose value is not an instance (they are skipped, the others still count) and of
   * errors thrown by the instancer's listeners. Backend failures are not told here: they are in
   * `current().error`. Default: ignore.
   */
  onError?: (error: Error) => void;
}

/** An {@link Instancer} fed by an etcd prefix. */
export interface EtcdInstancer extends Instancer {
  /**
   * Resolves with the state once the first listing of the prefix has succeeded or failed (or the
   * instancer was closed); never rejects. Await it before the first call so a balancer does not
   * start with an empty set.
   */
  ready(): Promise<InstancerState>;
}

/**
 * Creates an {@link Instancer} over every key under `prefix`, like go-kit's etcdv3 instancer: it lists
 * the prefix, watches it, and lists it again after each change, so it always reports one consistent
 * snapshot of the keys. Each key `prefix + id` holds an instance as written by
 * {@link createEtcdRegistrar}: JSON `{address, metadata?, weight?}`, or a plain address (go-kit's
 * layout). Keys whose value is neither are skipped and told to `onError`.
 *
 * When etcd becomes unreachable the instancer keeps the last set it saw and reports the error in
 * `current().error` (an `UNAVAILABLE` `ServiceError`); once the watch reconnects it lists the prefix
 * again and resumes. A listing made while the watch is down updates the set and keeps the error in one
 * state change. Failed listings and watches etcd cancels are retried with backoff (250 ms doubling to
 * 5 s, jittered): a listing's until a listing succeeds, a watch's until etcd accepts a watch, listing the
 * prefix on each retry meanwhile (etcd3 may never send a watch queued behind one etcd refused).
 * `close()` stops the watch and timers; the client stays open (it may be shared).
 *
 * @example
 * ```ts
 * const instancer = createEtcdInstancer(client, { prefix: "/services/users/" });
 * const { instances } = await instancer.ready();
 * instancer.subscribe(({ instances, error }) => console.log(instances.length, error?.message));
 * ```
 */
export function createEtcdInstancer(client: Etcd3, options: EtcdInstancerOptions): EtcdInstancer {
  if (typeof client !== "object" || client === null || typeof client.watch !== "function") {
    throw new TypeError(`${where}: client must be an etcd3 client (createEtcdClient or new Etcd3())`);
  }
  if (typeof options !== "object" || options === null) throw new TypeError(`${where}: options are required`);
  const prefix = nonEmpty(where, "prefix", options.prefix);
  const timeout = positive(where, "requestTimeout", options.requestTimeout, 5_000);
  return new EtcdInstancerImpl(client, prefix, timeout, options.onError ?? noop);
}

class EtcdInstancerImpl extends BackendInstancer implements EtcdInstancer {
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #timeout: number;
  #watcher: Watcher | undefined;
  /** The error reported for the current watch outage, if the watch is down. */
  #watchError: ServiceError | undefined;
  #listing = false;
  #relist = false;
  #timer: NodeJS.Timeout | undefined;
  /** Failed listings in a row; reset by a listing that succeeds. */
  #listAttempt = 0;
  /**
   * Watches cancelled in a row; reset only when etcd really establishes a watch ('connected'), not by
   * a listing, so a watch that etcd keeps cancelling backs off to 5 s instead of retrying every 250 ms.
   */
  #watchAttempt = 0;

  constructor(client: Etcd3, prefix: string, timeout: number, onError: (error: Error) => void) {
    // Listener errors and bad instances go to onError: nothing breaks the watch.
    super(onError);
    this.#client = client;
    this.#prefix = prefix;
    this.#timeout = timeout;
    this.#watch();
    this.#list();
  }

  protected stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher !== undefined) {
      watcher.removeAllListeners();
      watcher.on("error", noop); // a late cancel error must not become an unhandled 'error' event
      try {
        // Cancelling matters: a watch left attached keeps the client's stream (and the process) alive.
        watcher.cancel().catch(noop);
      } catch {
        // the client was closed first: nothing left to cancel
      }
    }
  }

  /** Starts a watch on the prefix; its events only trigger listings. */
  #watch(): void {
    const watcher = this.#client.watch().prefix(this.#prefix).watcher();
    this.#watcher = watcher;
    watcher.on("connected", () => {
      // etcd accepted the watch (a watch it refuses is cancelled without 'connected').
      this.#watchAttempt = 0;
      this.#watchError = undefined;
      this.#list();
    });
    watcher.on("data", () => this.#list());
    watcher.on("disconnected", (error: Error) => {
      // etcd3 reconnects by itself. Report the outage once, with the first cause, so listeners are not
      // told again for each failed reconnect.
      if (this.#watchError !== undefined) return;
      this.#watchError = new ServiceError(
        codeOf(error),
        `etcd instancer: watch on ${this.#prefix} lost: ${messageOf(error)}`,
        { cause: error },
      );
      this.cache.fail(this.#watchError);
    });
    watcher.on("error", (error: Error) => {
      // etcd cancelled the watch for good (e.g. permission denied): report it and start a new one.
      if (watcher !== this.#watcher) return;
      this.#watcher = undefined;
      watcher.removeAllListeners();
      watcher.on("error", noop);
      this.#watchError = new ServiceError(
        codeOf(error),
        `etcd instancer: watch on ${this.#prefix} cancelled: ${messageOf(error)}`,
        { cause: error },
      );
      this.cache.fail(this.#watchError);
      this.#retry("watch");
    });
  }

  /** Lists the prefix and updates the cache; a listing asked for while one runs runs after it. */
  #list(): void {
    if (this.cache.closed) return;
    if (this.#listing) {
      this.#relist = true;
      return;
    }
    this.#listing = true;
    void this.#listLoop().finally(() => {
      this.#listing = false;
    });
  }

  async #listLoop(): Promise<void> {
    do {
      this.#relist = false;
      let kvs: IKeyValue[];
      try {
        const response = await this.#client
          .getAll()
          .prefix(this.#prefix)
          .options({ deadline: Date.now() + this.#timeout })
          .exec();
        kvs = response.kvs;
      } catch (error) {
        if (this.cache.closed) return;
        this.cache.fail(
          new ServiceError(
            codeOf(error),
            `etcd instancer: cannot list ${this.#prefix}: ${messageOf(error)}`,
            {
              cause: error,
            },
          ),
        );
        this.settle();
        this.#retry("list");
        return;
      }
      if (this.cache.closed) return;
      this.#listAttempt = 0;
      // A listing that succeeded while the watch is down is not being kept up to date: say so, in the
      // same state change, so listeners do not hear "healthy" and then "failed" on every retry. An
      // empty listing goes first on its own: an endpointer does not apply an empty set that comes with
      // an error (so that a failure never empties it), but every instance really is gone.
      const instances = this.#decode(kvs);
      const watchError = this.#watchError;
      if (instances.length === 0 && watchError !== undefined) {
        this.cache.update(instances);
        this.cache.update(instances, watchError);
      } else this.cache.update(instances, watchError);
      this.settle();
    } while (this.#relist && !this.cache.closed);
  }

  /**
   * Tries again after a failed listing or a cancelled watch, with backoff (250 ms doubling to 5 s, counted
   * per kind of failure); a retry already scheduled stays as it is.
   */
  #retry(failed: "list" | "watch"): void {
    if (this.cache.closed || this.#timer !== undefined) return;
    const attempt = failed === "watch" ? this.#watchAttempt++ : this.#listAttempt++;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.cache.closed) return;
      if (this.#watcher === undefined) this.#watch();
      this.#list();
      // While the watch is down, keep listing on the backoff until a watch comes up: etcd3 (1.1.2)
      // never sends a watch queued behind one that etcd refused, so a new watch may stay silent for
      // good, and the set is kept current by these listings meanwhile.
      if (this.#watchError !== undefined) this.#retry("watch");
    }, retryDelay(attempt));
    this.#timer.unref();
  }

  #decode(kvs: readonly IKeyValue[]): Instance[] {
    const instances: Instance[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString();
      try {
        instances.push(decodeValue(kv.value.toString()));
      } catch (error) {
        this.tell(
          new ServiceError(Code.INVALID_ARGUMENT, `etcd instancer: skipping ${key}: ${messageOf(error)}`, {
            cause: error,
          }),
        );
      }
    }
    return instances;
  }
}
