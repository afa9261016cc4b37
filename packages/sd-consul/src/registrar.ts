import { Code, MAX_TIMER_MS, ServiceError } from "@svckit/endpoint";
import type { Registrar } from "@svckit/sd";
import {
  type Connection,
  type ConsulConnectionOptions,
  type ConsulDuration,
  call,
  connection,
  durationMs,
  durationString,
  nonEmpty,
  noop,
} from "./http.js";

const where = "createConsulRegistrar";

/** An HTTP health check: Consul's agent calls `http` every `interval`; 2xx is passing, 429 warning, else critical. */
export interface ConsulHttpCheck {
  /** The URL the agent GETs, e.g. `"http://10.0.0.7:8080/health"`. */
  http: string;
  /** How often (default `"10s"`). */
  interval?: ConsulDuration;
  /** How long one check may take (Consul's default: 10 s). */
  timeout?: ConsulDuration;
  /** The HTTP method (Consul's default: GET). */
  method?: string;
  /** Skip TLS verification of `http` (default false). */
  tlsSkipVerify?: boolean;
  /** Consul removes the service once the check has been critical this long (Consul: minimum 1m). */
  deregisterCriticalServiceAfter?: ConsulDuration;
}

/**
 * A TTL health check: the check turns critical unless the registrar reports "passing" within each
 * `ttl`. The registrar does that every `refresh` (default `ttl / 3`) while registered, so the check
 * fails when the process hangs or dies.
 */
export interface ConsulTtlCheck {
  /** How long a "passing" report lasts, e.g. `"15s"`. */
  ttl: ConsulDuration;
  /**
   * How often the registrar reports "passing" (default a third of `ttl`, at most `MAX_TIMER_MS` from
   * `@svckit/endpoint`, 24.8 days). Must be shorter than `ttl` and at most `MAX_TIMER_MS`.
   */
  refresh?: ConsulDuration;
  /** Consul removes the service once the check has been critical this long (Consul: minimum 1m). */
  deregisterCriticalServiceAfter?: ConsulDuration;
}

/** Options of {@link createConsulRegistrar}. */
export interface ConsulRegistrarOptions extends ConsulConnectionOptions {
  /** The service name, e.g. `"users"`: what instancers ask for. */
  name: string;
  /** This instance's id, unique on the agent (default `"<name>-<address>-<port>"`). */
  id?: string;
  /** The address others reach it on; empty uses the agent's node address (Consul's rule). */
  address?: string;
  /** The port it listens on. */
  port?: number;
  /** Tags, e.g. `["v2", "eu-1"]`, which instancers can filter on. */
  tags?: string[];
  /** Metadata (string values), which instancers hand out as `instance.metadata`. */
  meta?: Record<string, string>;
  /** Relative weights for balancing, while passing and while warning (Consul's default 1 and 1). */
  weights?: { passing?: number; warning?: number };
  /** A health check: HTTP (the agent polls) or TTL (this registrar reports). Default: none. */
  check?: ConsulHttpCheck | ConsulTtlCheck;
  /** Told of failed TTL reports and re-registrations; the registrar keeps going. Default: ignore. */
  onError?: (error: ServiceError) => void;
}

/** A {@link Registrar} for one service instance on a Consul agent. */
export interface ConsulRegistrar extends Registrar {
  /** The service instance's id on the agent. */
  readonly id: string;
  /** The check's id (`"service:<id>"`), when there is a check. */
  readonly checkId: string | undefined;
  /** Whether the service is registered right now. */
  readonly registered: boolean;
}

/**
 * Creates a registrar that registers this instance with the local Consul agent
 * (`PUT /v1/agent/service/register`) with its tags, metadata, weights and an optional health check,
 * and deregisters it (`PUT /v1/agent/service/deregister/:id`), like go-kit's Consul registrar. With a
 * TTL check it reports "passing" (`PUT /v1/agent/check/pass/:check_id`) every `refresh` while
 * registered; if the agent no longer knows the check (it lost its state), it registers again.
 *
 * `register()` and `deregister()` reject with a `ServiceError` (`UNAVAILABLE` when the agent cannot be
 * reached, `PERMISSION_DENIED` for an ACL refusal, `INVALID_ARGUMENT` when Consul rejects the
 * registration, ...). An agent that answers a deregister with 404 (it does not know the service: it
 * was reaped after `deregisterCriticalServiceAfter`, removed by an operator, or never accepted) has
 * nothing to remove, so `deregister()` resolves and `registered` turns false. Throws a TypeError /
 * RangeError for bad options, including a TTL check's `refresh` above `MAX_TIMER_MS` (24.8 days; the
 * default, a third of the TTL, is capped there instead).
 *
 * @example
 * ```ts
 * const registrar = createConsulRegistrar({
 *   name: "users",
 *   address: "10.0.0.7",
 *   port: 8080,
 *   check: { http: "http://10.0.0.7:8080/health", interval: "10s" },
 * });
 * await registrar.register();
 * ```
 */
export function createConsulRegistrar(options: ConsulRegistrarOptions): ConsulRegistrar {
  if (typeof options !== "object" || options === null) throw new TypeError(`${where}: options are required`);
  const conn = connection(where, options);
  const name = nonEmpty(where, "name", options.name);
  const address = options.address ?? "";
  if (typeof address !== "string") throw new TypeError(`${where}: address must be a string`);
  const port = options.port;
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65_535)) {
    throw new RangeError(`${where}: port must be a whole number from 0 to 65535, got ${String(port)}`);
  }
  const id =
    options.id === undefined
      ? `${name}-${address || "agent"}-${port ?? 0}`
      : nonEmpty(where, "id", options.id);
  const body: Record<string, unknown> = { ID: id, Name: name };
  if (address !== "") body.Address = address;
  if (port !== undefined) body.Port = port;
  if (options.tags !== undefined) body.Tags = checkTags(options.tags);
  if (options.meta !== undefined) body.Meta = checkMeta(options.meta);
  if (options.weights !== undefined) body.Weights = checkWeights(options.weights);
  let refresh: number | undefined;
  let checkId: string | undefined;
  if (options.check !== undefined) {
    checkId = `service:${id}`;
    const built = buildCheck(options.check, checkId, name);
    body.Check = built.check;
    refresh = built.refresh;
  }
  return new ConsulRegistrarImpl(conn, id, checkId, body, refresh, options.onError ?? noop);
}

function checkTags(tags: unknown): string[] {
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === "string" && tag !== "")) {
    throw new TypeError(`${where}: tags must be an array of non-empty strings`);
  }
  return [...tags];
}

function checkMeta(meta: unknown): Record<string, string> {
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) {
    throw new TypeError(`${where}: meta must be an object of strings`);
  }
  for (const [key, value] of Object.entries(meta)) {
    if (typeof value !== "string") {
      throw new TypeError(
        `${where}: meta must be an object of strings, but ${JSON.stringify(key)} is ${typeof value}`,
      );
    }
  }
  return { ...(meta as Record<string, string>) };
}

function checkWeights(weights: { passing?: number; warning?: number }): { Passing: number; Warning: number } {
  const weight = (name: string, value: number | undefined): number => {
    if (value === undefined) return 1;
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`${where}: weights.${name} must be a whole number >= 1, got ${String(value)}`);
    }
    return value;
  };
  return { Passing: weight("passing", weights.passing), Warning: weight("warning", weights.warning) };
}

function buildCheck(
  check: ConsulHttpCheck | ConsulTtlCheck,
  checkId: string,
  name: string,
): { check: Record<string, unknown>; refresh: number | undefined } {
  if (typeof check !== "object" || check === null) throw new TypeError(`${where}: check must be an object`);
  const out: Record<string, unknown> = { CheckID: checkId, Name: `Service '${name}' check` };
  if (check.deregisterCriticalServiceAfter !== undefined) {
    out.DeregisterCriticalServiceAfter = durationString(
      where,
      "check.deregisterCriticalServiceAfter",
      check.deregisterCriticalServiceAfter,
    );
  }
  if ("ttl" in check && check.ttl !== undefined) {
    if ("http" in check) throw new TypeError(`${where}: check has both http and ttl: pick one`);
    const ttl = durationMs(where, "check.ttl", check.ttl);
    out.TTL = durationString(where, "check.ttl", check.ttl);
    // Passing from the start: the registrar reports right away and then every `refresh`.
    out.Status = "passing";
    // Node fires a longer timer after 1 ms: a refresh above MAX_TIMER_MS would report in a loop. The
    // default (a third of the TTL) is capped there, which still reports well within the TTL; a refresh
    // given explicitly must fit.
    const refresh =
      check.refresh === undefined
        ? Math.min(ttl / 3, MAX_TIMER_MS)
        : durationMs(where, "check.refresh", check.refresh);
    if (refresh > MAX_TIMER_MS) {
      throw new RangeError(
        `${where}: check.refresh must be at most ${MAX_TIMER_MS} ms (24.8 days), got ${refresh}`,
      );
    }
    if (refresh >= ttl) {
      throw new RangeError(
        `${where}: check.refresh (${refresh} ms) must be shorter than check.ttl (${ttl} ms)`,
      );
    }
    return { check: out, refresh };
  }
  if ("http" in check) {
    let url: URL;
    try {
      url = new URL(check.http);
    } catch {
      throw new TypeError(`${where}: check.http must be an http(s) URL, got ${JSON.stringify(check.http)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`${where}: check.http must be an http(s) URL, got ${JSON.stringify(check.http)}`);
    }
    out.HTTP = check.http;
    out.Interval = durationString(where, "check.interval", check.interval ?? "10s");
    if (check.timeout !== undefined) out.Timeout = durationString(where, "check.timeout", check.timeout);
    if (check.method !== undefined) out.Method = nonEmpty(where, "check.method", check.method);
    if (check.tlsSkipVerify !== undefined) out.TLSSkipVerify = check.tlsSkipVerify === true;
    return { check: out, refresh: undefined };
  }
  throw new TypeError(`${where}: check needs http (an HTTP check) or ttl (a TTL check)`);
}

class ConsulRegistrarImpl implements ConsulRegistrar {
  readonly id: string;
  readonly checkId: string | undefined;
  readonly #conn: Connection;
  readonly #body: Record<string, unknown>;
  readonly #refresh: number | undefined;
  readonly #onError: (error: ServiceError) => void;
  #registered = false;
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    conn: Connection,
    id: string,
    checkId: string | undefined,
    body: Record<string, unknown>,
    refresh: number | undefined,
    onError: (error: ServiceError) => void,
  ) {
    this.#conn = conn;
    this.id = id;
    this.checkId = checkId;
    this.#body = body;
    this.#refresh = refresh;
    this.#onError = onError;
  }

  /** A register request was sent since the last successful deregister (it may have been applied). */
  #attempted = false;

  get registered(): boolean {
    return this.#registered;
  }

  register(): Promise<void> {
    return this.#serial(async () => {
      // From the moment the request leaves, the agent may have applied it (an answer can be lost or
      // come after the timeout): deregister() must then still ask it to remove the service.
      this.#attempted = true;
      await this.#put();
      this.#registered = true;
      this.#schedule();
    });
  }

  deregister(): Promise<void> {
    this.#stopTimer();
    return this.#serial(async () => {
      if (!this.#attempted) return; // also true whenever #registered is
      this.#stopTimer();
      // The flags clear only once the agent answered, so a failed deregister can be retried instead
      // of leaving the service registered. An agent that does not know the service (404 "Unknown
      // service ID": reaped by DeregisterCriticalServiceAfter, removed by an operator, or a register
      // it refused) has nothing left to remove: that is success, not an error to repeat forever.
      try {
        await call(
          this.#conn,
          "PUT",
          `/v1/agent/service/deregister/${encodeURIComponent(this.id)}`,
          `consul registrar: cannot deregister ${this.id}`,
        );
      } catch (error) {
        // Only the agent's own answer: a 404 from a proxy in front of it (or a wrong base path) proves nothing.
        if (
          !(
            error instanceof ServiceError &&
            error.code === Code.NOT_FOUND &&
            /unknown service/i.test(error.message)
          )
        ) {
          throw error;
        }
      }
      this.#registered = false;
      this.#attempted = false;
    });
  }

  #put(): Promise<unknown> {
    return call(
      this.#conn,
      "PUT",
      "/v1/agent/service/register?replace-existing-checks=true",
      `consul registrar: cannot register ${this.id}`,
      { body: this.#body },
    );
  }

  #serial(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(noop);
    return run;
  }

  #schedule(): void {
    if (this.#refresh === undefined || this.#timer !== undefined || !this.#registered) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#serial(() => this.#pass());
    }, this.#refresh);
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Reports the TTL check passing; registers again if the agent forgot the check. */
  async #pass(): Promise<void> {
    if (!this.#registered || this.checkId === undefined) return;
    try {
      await call(
        this.#conn,
        "PUT",
        `/v1/agent/check/pass/${encodeURIComponent(this.checkId)}`,
        `consul registrar: cannot report ${this.checkId} passing`,
      );
    } catch (error) {
      const serviceError = error as ServiceError;
      this.#report(serviceError);
      if (this.#registered && forgotten(serviceError)) {
        try {
          await this.#put();
        } catch (putError) {
          this.#report(putError as ServiceError);
        }
      }
    }
    this.#schedule();
  }

  #report(error: ServiceError): void {
    try {
      this.#onError(error);
    } catch {
      // an onError that throws must not stop the TTL reports
    }
  }
}

/** Whether the agent answered that it does not know the check (it restarted without its state). */
function forgotten(error: ServiceError): boolean {
  return (
    error.code === Code.NOT_FOUND ||
    /unknown check|does not have associated TTL|unknown service/i.test(error.message)
  );
}
