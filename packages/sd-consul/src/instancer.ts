import { Code, ServiceError } from "@svckit/endpoint";
import { BackendInstancer, type Instance, type Instancer, type InstancerState } from "@svckit/sd";
import {
  backoff,
  type Connection,
  type ConsulConnectionOptions,
  type ConsulDuration,
  call,
  connection,
  durationMs,
  messageOf,
  nonEmpty,
  noop,
  positive,
} from "./http.js";

const where = "createConsulInstancer";

/** Options of {@link createConsulInstancer}. */
export interface ConsulInstancerOptions extends ConsulConnectionOptions {
  /** The service name to follow, e.g. `"users"`. */
  service: string;
  /** Only instances carrying every one of these tags. Default: all. */
  tags?: string[];
  /** Only instances whose checks all pass (`?passing`), the default; `false` lists every instance. */
  passingOnly?: boolean;
  /** The datacenter to ask (`?dc=`). Default: the agent's. */
  datacenter?: string;
  /** How long one blocking query may wait for a change (default `"60s"`; Consul caps it at 10m). */
  wait?: ConsulDuration;
  /** First delay after a failed query, in ms (default 250); it doubles on each failure in a row. */
  minBackoff?: number;
  /** Longest delay between failed queries, in ms (default 30000). */
  maxBackoff?: number;
  /** Told of entries skipped as malformed and of errors thrown by listeners. Default: ignore. */
  onError?: (error: Error) => void;
}

/** An {@link Instancer} fed by Consul's health endpoint. */
export interface ConsulInstancer extends Instancer {
  /**
   * Resolves with the state once the first query has succeeded or failed (or the instancer was
   * closed); never rejects. Await it before the first call so a balancer does not start empty.
   */
  ready(): Promise<InstancerState>;
}

/** One entry of `GET /v1/health/service/:service`, as far as the instancer reads it. */
interface HealthEntry {
  Node?: { Address?: unknown };
  Service?: {
    ID?: unknown;
    Address?: unknown;
    Port?: unknown;
    Tags?: unknown;
    Meta?: unknown;
    Weights?: unknown;
  };
  Checks?: unknown;
}

/**
 * Creates an {@link Instancer} over the healthy instances of a Consul service, like go-kit's Consul
 * instancer: it runs blocking queries on `GET /v1/health/service/:service?passing&index=N&wait=...`
 * one after another, so a change is seen as soon as Consul has it. Each instance's address is
 * `Service.Address` (or the node's address when empty) and `Service.Port`; its metadata is
 * `Service.Meta`; its weight is `Weights.Passing` (`Weights.Warning` while a check warns). Entries
 * without an address or a port from 1 to 65535 (Consul sends `Port: 0` for a service registered
 * without one) are skipped and told to `onError`.
 *
 * Follows Consul's advice for blocking queries: an index that goes backwards (a restored snapshot,
 * a new cluster) resets it to 0, and an index that is not above 0 is treated as 1. When a query fails,
 * the last good set is kept with `error` set, and the query is retried with backoff (`minBackoff`
 * doubling to `maxBackoff`, jittered). `close()` aborts the query in flight and clears the timers.
 *
 * @example
 * ```ts
 * const instancer = createConsulInstancer({ service: "users", tags: ["v2"] });
 * const { instances } = await instancer.ready();
 * ```
 */
export function createConsulInstancer(options: ConsulInstancerOptions): ConsulInstancer {
  if (typeof options !== "object" || options === null) throw new TypeError(`${where}: options are required`);
  const conn = connection(where, options);
  const service = nonEmpty(where, "service", options.service);
  const tags = options.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === "string" && tag !== "")) {
    throw new TypeError(`${where}: tags must be an array of non-empty strings`);
  }
  const passingOnly = options.passingOnly ?? true;
  if (typeof passingOnly !== "boolean") throw new TypeError(`${where}: passingOnly must be a boolean`);
  if (options.datacenter !== undefined) nonEmpty(where, "datacenter", options.datacenter);
  const wait = Math.min(600_000, durationMs(where, "wait", options.wait ?? "60s"));
  const minBackoff = positive(where, "minBackoff", options.minBackoff, 250);
  const maxBackoff = positive(where, "maxBackoff", options.maxBackoff, 30_000);
  if (maxBackoff < minBackoff) {
    throw new RangeError(`${where}: maxBackoff (${maxBackoff}) must not be below minBackoff (${minBackoff})`);
  }
  const query = new URLSearchParams();
  if (passingOnly) query.set("passing", "true");
  for (const tag of tags) query.append("tag", tag);
  if (options.datacenter !== undefined) query.set("dc", options.datacenter);
  return new ConsulInstancerImpl(
    conn,
    service,
    [...tags],
    query,
    wait,
    minBackoff,
    maxBackoff,
    options.onError ?? noop,
  );
}

class ConsulInstancerImpl extends BackendInstancer implements ConsulInstancer {
  readonly #conn: Connection;
  readonly #service: string;
  readonly #tags: readonly string[];
  readonly #query: URLSearchParams;
  readonly #wait: number;
  readonly #minBackoff: number;
  readonly #maxBackoff: number;
  readonly #abort = new AbortController();
  #index = 0n;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;

  constructor(
    conn: Connection,
    service: string,
    tags: string[],
    query: URLSearchParams,
    wait: number,
    minBackoff: number,
    maxBackoff: number,
    onError: (error: Error) => void,
  ) {
    // Listener errors and bad instances go to onError: nothing breaks the query loop.
    super(onError);
    this.#conn = conn;
    this.#service = service;
    this.#tags = tags;
    this.#query = query;
    this.#wait = wait;
    this.#minBackoff = minBackoff;
    this.#maxBackoff = maxBackoff;
    void this.#loop();
  }

  protected stop(): void {
    this.#abort.abort();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wake?.();
  }

  async #loop(): Promise<void> {
    let lastStart = Number.NEGATIVE_INFINITY;
    while (!this.cache.closed) {
      // At most one query per minBackoff, as Consul advises for blocking queries: an agent, proxy or
      // cache that answers at once (ignoring `index`/`wait`) must not make this loop spin.
      const since = Date.now() - lastStart;
      if (since < this.#minBackoff) {
        await this.#sleep(this.#minBackoff - since);
        if (this.cache.closed) return;
      }
      lastStart = Date.now();
      try {
        await this.#poll();
        this.#attempt = 0;
      } catch (error) {
        if (this.cache.closed) return;
        this.cache.fail(error);
        this.settle();
        await this.#sleep(backoff(this.#attempt++, this.#minBackoff, this.#maxBackoff));
      }
    }
  }

  /** One (blocking) query; updates the cache with its answer. */
  async #poll(): Promise<void> {
    const query = new URLSearchParams(this.#query);
    if (this.#index > 0n) {
      query.set("index", this.#index.toString());
      query.set("wait", `${Math.round(this.#wait)}ms`);
    }
    const blocking = this.#index > 0n;
    const what = `consul instancer: health query for ${this.#service} failed`;
    const answer = await call(
      this.#conn,
      "GET",
      `/v1/health/service/${encodeURIComponent(this.#service)}?${query}`,
      what,
      // Consul adds up to wait/16 of jitter to a blocking query's wait.
      {
        signal: this.#abort.signal,
        timeout: this.#conn.timeout + (blocking ? this.#wait + this.#wait / 16 : 0),
      },
    );
    if (this.cache.closed) return;
    const header = answer.headers.get("x-consul-index");
    if (header === null || !/^\d+$/.test(header.trim())) {
      throw new ServiceError(
        Code.INTERNAL,
        `${what}: the answer has no valid X-Consul-Index header (got ${JSON.stringify(header)})`,
      );
    }
    let entries: unknown;
    try {
      entries = JSON.parse(answer.text);
    } catch (error) {
      throw new ServiceError(Code.INTERNAL, `${what}: the answer is not JSON: ${messageOf(error)}`, {
        cause: error,
      });
    }
    if (!Array.isArray(entries))
      throw new ServiceError(Code.INTERNAL, `${what}: the answer is not a JSON array`);
    const index = BigInt(header.trim());
    // Consul's rules for blocking queries: an index that goes backwards is reset to 0 (the next query
    // returns at once with the real index); one that is not above 0 is treated as 1.
    this.#index = index < this.#index ? 0n : index > 0n ? index : 1n;
    this.cache.update(this.#instances(entries as HealthEntry[]));
    this.settle();
  }

  #instances(entries: readonly HealthEntry[]): Instance[] {
    const instances: Instance[] = [];
    for (const entry of entries) {
      try {
        const instance = toInstance(entry, this.#tags);
        if (instance !== undefined) instances.push(instance);
      } catch (error) {
        this.tell(
          new ServiceError(
            Code.INVALID_ARGUMENT,
            `consul instancer: skipping an entry of ${this.#service}: ${messageOf(error)}`,
            { cause: error },
          ),
        );
      }
    }
    return instances;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#timer.unref();
    });
  }
}

/** The instance of one health entry, undefined when it lacks a wanted tag; throws when malformed. */
function toInstance(entry: HealthEntry, tags: readonly string[]): Instance | undefined {
  const service = entry?.Service;
  if (typeof service !== "object" || service === null) throw new TypeError("it has no Service object");
  const id = typeof service.ID === "string" ? service.ID : "?";
  const serviceTags = Array.isArray(service.Tags) ? service.Tags : [];
  if (!tags.every((tag) => serviceTags.includes(tag))) return undefined;
  const host =
    typeof service.Address === "string" && service.Address !== ""
      ? service.Address
      : typeof entry.Node?.Address === "string"
        ? entry.Node.Address
        : "";
  if (host === "") throw new TypeError(`service ${id} has no address and neither has its node`);
  const port = service.Port;
  // Consul sends Port 0 for a service registered without one: nothing to call there.
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new TypeError(`service ${id} has no valid port (got ${JSON.stringify(port) ?? "nothing"})`);
  }
  const address = `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
  const instance: { address: string; metadata?: Record<string, string>; weight?: number } = { address };
  if (typeof service.Meta === "object" && service.Meta !== null) {
    const meta: Record<string, string> = {};
    for (const [key, value] of Object.entries(service.Meta)) {
      if (typeof value === "string") meta[key] = value;
    }
    if (Object.keys(meta).length > 0) instance.metadata = meta;
  }
  const weights = service.Weights as { Passing?: unknown; Warning?: unknown } | null | undefined;
  if (typeof weights === "object" && weights !== null) {
    const warning = Array.isArray(entry.Checks)
      ? entry.Checks.some((check) => (check as { Status?: unknown })?.Status === "warning")
      : false;
    const weight = warning ? weights.Warning : weights.Passing;
    if (typeof weight === "number" && Number.isFinite(weight) && weight >= 0) instance.weight = weight;
  }
  return instance;
}
