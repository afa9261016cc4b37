import { Resolver } from "node:dns/promises";
import { Code, MAX_TIMER_MS, ServiceError } from "@svckit/endpoint";
import { BackendInstancer, type Instance, type Instancer, type InstancerState } from "@svckit/sd";

/** Options every DNS instancer takes. */
export interface DnsInstancerOptions {
  /** How often to look the name up, in ms (default 30000); in A/AAAA mode the longest wait between lookups. */
  interval?: number;
  /** Shortest wait between lookups, in ms (default 1000): the floor for TTL-driven lookups and the first retry. */
  minInterval?: number;
  /** How long one lookup may take, in ms (default 5000); a slower one counts as failed. */
  timeout?: number;
  /** DNS servers for the built-in resolver (`"10.0.0.2"`, `"[fd00::2]:53"`); default: the system's. */
  servers?: string[];
  /**
   * What a "no such name" / "no records" answer (NXDOMAIN, NODATA) means: `"keep"` (the default) keeps
   * the last good set and reports a `NOT_FOUND` error, like any other failure; `"empty"` takes it as
   * the real answer "no instances" and empties the set.
   */
  notFound?: "keep" | "empty";
  /** Told of records skipped as malformed and of errors thrown by listeners. Default: ignore. */
  onError?: (error: Error) => void;
}

/** An {@link Instancer} fed by DNS lookups. */
export interface DnsInstancer extends Instancer {
  /**
   * Resolves with the state once the first lookup has succeeded or failed (or the instancer was
   * closed); never rejects. Await it before the first call so a balancer does not start empty.
   */
  ready(): Promise<InstancerState>;
}

/** What one lookup found: the instances, and the shortest TTL of the records in seconds if known. */
export interface LookupResult {
  readonly instances: Instance[];
  readonly ttl?: number;
}

/** Validated common options. */
export interface PollerConfig {
  readonly interval: number;
  readonly minInterval: number;
  readonly timeout: number;
  readonly notFound: "keep" | "empty";
  readonly onError: (error: Error) => void;
}

export function positive(where: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${where}: ${name} must be a finite number > 0, got ${String(value)}`);
  }
  // Node fires a longer timer after 1 ms (a DNS interval would poll in a loop).
  if (value > MAX_TIMER_MS) {
    throw new RangeError(`${where}: ${name} must be at most ${MAX_TIMER_MS} ms (24.8 days), got ${value}`);
  }
  return value;
}

export function pollerConfig(where: string, options: DnsInstancerOptions): PollerConfig {
  const interval = positive(where, "interval", options.interval, 30_000);
  const minInterval = positive(where, "minInterval", options.minInterval, Math.min(1_000, interval));
  if (minInterval > interval) {
    throw new RangeError(`${where}: minInterval (${minInterval}) must not be above interval (${interval})`);
  }
  const notFound = options.notFound ?? "keep";
  if (notFound !== "keep" && notFound !== "empty") {
    throw new TypeError(`${where}: notFound must be "keep" or "empty", got ${JSON.stringify(notFound)}`);
  }
  return {
    interval,
    minInterval,
    timeout: positive(where, "timeout", options.timeout, 5_000),
    notFound,
    onError: options.onError ?? noop,
  };
}

const notFoundCodes = new Set(["ENOTFOUND", "ENODATA"]);
const timeoutCodes = new Set(["ETIMEOUT", "ETIMEDOUT"]);
const badNameCodes = new Set(["EBADNAME", "EBADQUERY", "EBADFAMILY"]);

/** A lookup error as a ServiceError: NOT_FOUND for NXDOMAIN/NODATA, DEADLINE_EXCEEDED for timeouts, else UNAVAILABLE. */
export function lookupError(what: string, error: unknown): ServiceError {
  if (error instanceof ServiceError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const status =
    typeof code !== "string"
      ? Code.UNAVAILABLE
      : notFoundCodes.has(code)
        ? Code.NOT_FOUND
        : timeoutCodes.has(code)
          ? Code.DEADLINE_EXCEEDED
          : badNameCodes.has(code)
            ? Code.INVALID_ARGUMENT
            : Code.UNAVAILABLE;
  return new ServiceError(status, `dns: ${what} failed: ${message}`, { cause: error });
}

/**
 * One lookup: rejects with the resolver's error; reports records it skips to `tell`. `signal` is
 * aborted when the lookup runs past `timeout` or the instancer is closed; the lookup should then
 * stop (reject) soon, as the next one waits for it to settle.
 */
export type Lookup = (tell: (error: Error) => void, signal: AbortSignal) => Promise<LookupResult>;

/**
 * The polling loop behind both DNS instancers: one lookup at a time, the next one after `interval`
 * (or the records' TTL, bounded by `minInterval` and `interval`), after a failure `minInterval`
 * doubling up to `interval`. A lookup past `timeout` fails with DEADLINE_EXCEEDED and its signal is
 * aborted; a new lookup starts only once it has settled. Timers are unref'd and cleared on close,
 * which also aborts the lookup in flight.
 */
export class DnsPoller extends BackendInstancer implements DnsInstancer {
  readonly #what: string;
  readonly #lookup: Lookup;
  /** {@link BackendInstancer.tell}, bound once, for lookups to report what they skip. */
  readonly #tell = (error: Error): void => this.tell(error);
  readonly #config: PollerConfig;
  /** The timer of the next poll. */
  #timer: NodeJS.Timeout | undefined;
  /** The `timeout` timer of the lookup in flight. */
  #deadline: NodeJS.Timeout | undefined;
  /** Aborts the lookup in flight (until its answer, error or timeout). */
  #controller: AbortController | undefined;
  /** Settles once the last lookup started has settled (it may outlive its timeout); cleared then. */
  #unsettled: Promise<void> | undefined;
  #failures = 0;

  /**
   * @param what - what a lookup is, for messages: `SRV lookup of _http._tcp.users`.
   * @param lookup - one lookup.
   */
  constructor(what: string, lookup: Lookup, config: PollerConfig) {
    // Listener errors and bad instances go to onError: nothing breaks the poll loop.
    super(config.onError);
    this.#what = what;
    this.#lookup = lookup;
    this.#config = config;
    void this.#poll();
  }

  protected stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
    const controller = this.#controller;
    this.#controller = undefined;
    controller?.abort(
      new ServiceError(Code.CANCELLED, `dns: ${this.#what} canceled: the instancer was closed`),
    );
  }

  async #poll(): Promise<void> {
    this.#timer = undefined;
    if (this.#unsettled !== undefined) {
      // One lookup at a time: the last one outlived its timeout (and ignored its signal) so far.
      await this.#unsettled;
      if (this.cache.closed) return;
    }
    const { interval, minInterval, notFound } = this.#config;
    let delay: number;
    try {
      const result = await this.#start();
      if (this.cache.closed) return;
      this.#failures = 0;
      this.cache.update(result.instances);
      delay =
        result.ttl === undefined ? interval : Math.min(interval, Math.max(minInterval, result.ttl * 1_000));
    } catch (error) {
      if (this.cache.closed) return;
      const failure = lookupError(this.#what, error);
      if (failure.code === Code.NOT_FOUND && notFound === "empty") {
        this.#failures = 0;
        this.cache.update([]);
        delay = interval;
      } else {
        this.#failures += 1;
        this.cache.fail(failure);
        delay = Math.min(interval, minInterval * 2 ** Math.min(this.#failures - 1, 30));
      }
    }
    this.settle();
    // update() and fail() call the listeners at once; one of them may have closed the instancer.
    if (this.cache.closed) return;
    this.#timer = setTimeout(() => void this.#poll(), delay);
    this.#timer.unref();
  }

  /**
   * Starts one lookup with a fresh signal and settles with its outcome, or rejects with the signal's
   * reason once it is aborted (DEADLINE_EXCEEDED after `timeout`, CANCELLED on close).
   */
  #start(): Promise<LookupResult> {
    const { timeout } = this.#config;
    const controller = new AbortController();
    const { signal } = controller;
    // Listening before the lookup does, so the abort reason wins over the lookup's own reaction.
    const aborted = new Promise<never>((_resolve, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    const deadline = setTimeout(() => {
      controller.abort(
        new ServiceError(Code.DEADLINE_EXCEEDED, `dns: ${this.#what} failed: no answer within ${timeout} ms`),
      );
    }, timeout);
    deadline.unref();
    this.#deadline = deadline;
    this.#controller = controller;
    let lookup: Promise<LookupResult>;
    try {
      lookup = this.#lookup(this.#tell, signal);
    } catch (error) {
      lookup = Promise.reject(error);
    }
    const unsettled: Promise<void> = lookup.then(noop, noop).then(() => {
      if (this.#unsettled === unsettled) this.#unsettled = undefined;
    });
    this.#unsettled = unsettled;
    return Promise.race([lookup, aborted]).then(
      (result) => {
        this.#done(controller, deadline);
        return result;
      },
      (error: unknown) => {
        this.#done(controller, deadline);
        throw signal.aborted ? signal.reason : error;
      },
    );
  }

  /** Forgets the timer and controller of a lookup that has an outcome. */
  #done(controller: AbortController, deadline: NodeJS.Timeout): void {
    clearTimeout(deadline);
    if (this.#deadline === deadline) this.#deadline = undefined;
    if (this.#controller === controller) this.#controller = undefined;
  }
}

/** Makes `resolver.cancel()` (node's Resolver: cancels its queries in flight) follow `signal`. */
export function cancelOnAbort(signal: AbortSignal, resolver: { cancel(): void }): void {
  signal.addEventListener(
    "abort",
    () => {
      try {
        resolver.cancel();
      } catch {
        // nothing in flight
      }
    },
    { once: true },
  );
}

/** The built-in resolver: node's `dns.promises.Resolver`, on `servers` if given. */
export function defaultResolver(where: string, timeout: number, servers: unknown): Resolver {
  const resolver = new Resolver({ timeout: Math.max(1, Math.ceil(timeout / 2)), tries: 2 });
  if (servers !== undefined) {
    if (!Array.isArray(servers) || servers.length === 0 || !servers.every((s) => typeof s === "string")) {
      throw new TypeError(`${where}: servers must be a non-empty array of addresses`);
    }
    try {
      resolver.setServers(servers);
    } catch (error) {
      throw new TypeError(`${where}: servers: ${(error as Error).message}`, { cause: error });
    }
  }
  return resolver;
}

export function noop(): void {}

export function nonEmpty(where: string, name: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(
      `${where}: ${name} must be a non-empty string, got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
  return value;
}
