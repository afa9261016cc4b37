import { createRequire } from "node:module";
import {
  Code,
  type Context,
  type Endpoint,
  MAX_TIMER_MS,
  onAbort,
  type ServiceError,
} from "@svckit/endpoint";
import Bottleneck from "bottleneck";
import {
  type ConnectionInternals,
  connectionOf,
  detachLimiter,
  fixRedis7ScriptErrors,
  type StoreInternals,
  settingsKey,
  storeOf,
} from "./bottleneck-internals.js";
import {
  closedError,
  concurrencyError,
  deadlineError,
  keysError,
  limitError,
  queueError,
  unavailableError,
} from "./errors.js";
import { type KeyEntry, KeyMap } from "./key-map.js";
import type { KeyOf, LimiterCore, Reporter } from "./local-limiter.js";
import type { RedisRateLimitOptions, RedisSettings, RejectReason, Settings } from "./options.js";

/** One key's Bottleneck limiter (its state lives in Redis). */
class RedisKey implements KeyEntry {
  lastUsed = 0;
  /** Calls of the key in progress here: taking a slot, waiting for one, or running. */
  inflight = 0;
  /** Calls waiting for a slot (delaying mode). */
  waiting = 0;
  /** Its start-up (connect, create the state in Redis, subscribe) is done. */
  ready = false;
  /** Its start-up failed; it is replaced on next use. */
  broken = false;

  constructor(
    readonly limiter: Bottleneck,
    readonly store: StoreInternals,
    readonly settingsKey: string,
  ) {}

  busy(): boolean {
    return this.inflight > 0;
  }
}

/** The outcome of one try to take a slot. */
type Attempt =
  | { readonly kind: "admitted"; readonly index: string }
  | {
      readonly kind: "limited";
      readonly reason: "limit" | "concurrency";
      readonly retryAfter: number | undefined;
    }
  | { readonly kind: "unavailable"; readonly cause: unknown };

/** Fail-open admission: nothing to give back. */
const NO_SLOT = "";

/** A call sleeping between tries (delaying mode), so `close()` can wake it. */
interface Sleeper {
  readonly timer: ReturnType<typeof setTimeout>;
  readonly fail: (error: ServiceError) => void;
}

class RedisTimeoutError extends Error {
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
    this.name = "RedisTimeoutError";
  }
}

/** Settles like `promise` unless `ms` pass first; `onLate` sees a value that arrived too late. */
function withTimeout<T>(promise: Promise<T>, ms: number, onLate?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new RedisTimeoutError(ms));
    }, ms);
    promise.then(
      (value) => {
        if (done) {
          onLate?.(value);
          return;
        }
        done = true;
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

const require = createRequire(import.meta.url);

/** ioredis' `Redis` class, loaded only in Redis mode (it is an optional peer dependency). */
function loadIoRedis(where: string): unknown {
  let mod: { default?: unknown };
  try {
    mod = require("ioredis") as { default?: unknown };
  } catch (cause) {
    throw new Error(`${where}: Redis mode needs the ioredis package (pnpm add ioredis)`, { cause });
  }
  return mod.default ?? mod;
}

const ignore = (): void => {};

/**
 * ioredis defaults for the connections the limiter opens. By default ioredis keeps commands sent while
 * the connection is down and replays unanswered ones after reconnecting; a call that has long failed
 * open or closed would then still take a slot. Bottleneck only sends commands once connected, so
 * nothing else needs the offline queue.
 */
const STALE_COMMANDS_DROPPED = { enableOfflineQueue: false, autoResendUnfulfilledCommands: false };

/** How long a waiting call sleeps before trying again when the wait has no known end (ms). */
const POLL_INTERVAL = 50;

let indexPrefix = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 8)}-`;
let indexCounter = 0;

function nextIndex(): string {
  indexCounter++;
  if (indexCounter > 1e15) {
    indexCounter = 0;
    indexPrefix = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 8)}-`;
  }
  return indexPrefix + indexCounter.toString(36);
}

/**
 * The limiter whose windows and running counts live in Redis, kept there by Bottleneck's clustering
 * scripts, so every process using the same `name` (and key) shares one limit. Each call costs one
 * Redis round trip (two when refused, to read when the window ends; one more, not awaited, to free a
 * `maxConcurrent` slot). A waiting call retries when the window ends, or every 50 ms while it waits
 * for a running call to end.
 */
export class RedisLimiter<Req> implements LimiterCore<Req> {
  readonly #s: Settings;
  readonly #r: RedisSettings;
  readonly #keyOf: KeyOf<Req> | undefined;
  readonly #report: Reporter;
  readonly #keys: KeyMap<RedisKey>;
  readonly #connection: Bottleneck.IORedisConnection;
  readonly #conn: ConnectionInternals;
  /** What `close()` shuts: the whole connection, only the subscriber made for the user's client, or nothing. */
  readonly #owns: "all" | "subscriber" | "none";
  readonly #sleepers = new Set<Sleeper>();
  readonly #sweeper: ReturnType<typeof setInterval>;
  #closed = false;
  #down = false;

  constructor(
    settings: Settings,
    redis: RedisSettings,
    options: RedisRateLimitOptions,
    keyOf: KeyOf<Req> | undefined,
    report: Reporter,
    where: string,
  ) {
    this.#s = settings;
    this.#r = redis;
    this.#keyOf = keyOf;
    this.#report = report;
    if (options.connection !== undefined) {
      this.#connection = options.connection;
      this.#owns = "none";
    } else if (options.client !== undefined) {
      // Passing the client's own class keeps Bottleneck from `require("ioredis")` from its own folder.
      this.#connection = new Bottleneck.IORedisConnection({
        client: options.client,
        Redis: options.client.constructor,
      });
      this.#owns = "subscriber";
    } else {
      this.#connection = new Bottleneck.IORedisConnection({
        clientOptions: { ...STALE_COMMANDS_DROPPED, ...options.clientOptions },
        Redis: loadIoRedis(where),
      });
      this.#owns = "all";
    }
    this.#conn = connectionOf(this.#connection);
    fixRedis7ScriptErrors(this.#connection);
    if (this.#owns !== "none") this.#conn.on("error", redis.onError);
    this.#keys = new KeyMap<RedisKey>(
      settings.maxKeys,
      settings.idleTimeout,
      (key) => this.#create(key),
      (entry) => detachLimiter(entry.limiter, this.#conn),
    );
    // Idle keys stop their Bottleneck heartbeat (one Redis call every 5 s each) once forgotten.
    this.#sweeper = setInterval(() => this.#keys.sweep(Date.now()), Math.min(settings.idleTimeout, 60_000));
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#keys.size;
  }

  #create(key: string): RedisKey {
    const s = this.#s;
    const id = `svckit:${s.name}:${key}`;
    const limiter = new Bottleneck({
      id,
      datastore: "ioredis",
      connection: this.#connection,
      reservoir: s.hasWindow ? s.limit : null,
      reservoirRefreshAmount: s.hasWindow ? s.limit : null,
      reservoirRefreshInterval: s.hasWindow ? s.interval : null,
      maxConcurrent: s.hasConcurrency ? s.maxConcurrent : null,
      // Redis drops the key's state after this long unused.
      timeout: s.idleTimeout,
    });
    limiter.on("error", this.#r.onError);
    const entry = new RedisKey(limiter, storeOf(limiter), settingsKey(id));
    limiter.ready().then(
      () => {
        entry.ready = true;
      },
      (err: unknown) => {
        entry.broken = true;
        this.#r.onError(err);
      },
    );
    return entry;
  }

  /**
   * Whether to try Redis: the connection is up, or making its first connection (then calls wait for
   * it, up to `timeout`). Once it was seen down, it counts as down until it is ready again, so calls do
   * not wait for each of ioredis's reconnection attempts.
   */
  #reachable(): boolean {
    const status = this.#conn.client.status;
    if (status === "ready") {
      this.#down = false;
      return true;
    }
    if (status === "reconnecting" || status === "close" || status === "end") this.#down = true;
    return !this.#down;
  }

  wrap<R extends Req, Res>(next: Endpoint<R, Res>): Endpoint<R, Res> {
    const self = this;
    const s = this.#s;
    const keyOf = this.#keyOf;
    return async function rateLimitedEndpoint(ctx: Context, request: R): Promise<Res> {
      if (self.#closed) throw closedError(s);
      const key = keyOf === undefined ? "" : keyOf(ctx, request);
      if (!self.#reachable()) {
        self.#unavailable(key, new Error(`Redis connection is ${self.#conn.client.status}`));
        return next(ctx, request);
      }
      const entry = self.#entry(key);
      entry.inflight++;
      let index: string;
      try {
        index =
          s.mode === "error" ? await self.#acquire(entry, key) : await self.#acquireWaiting(entry, key, ctx);
      } catch (err) {
        entry.inflight--;
        throw err;
      }
      try {
        return await next(ctx, request);
      } finally {
        entry.inflight--;
        if (index !== NO_SLOT && s.hasConcurrency) self.#free(entry, index);
      }
    };
  }

  #entry(key: string): RedisKey {
    const now = Date.now();
    let entry = this.#keys.get(key, now);
    if (entry?.broken === true && !entry.busy()) {
      this.#keys.delete(key, entry);
      entry = this.#keys.get(key, now);
    }
    if (entry === undefined) {
      this.#report(key, "keys");
      throw keysError(this.#s);
    }
    return entry;
  }

  #free(entry: RedisKey, index: string): void {
    entry.store.__free__(index, 1).catch(this.#r.onError);
  }

  /** Fails closed (throws UNAVAILABLE) or open (returns, so the call goes through). */
  #unavailable(key: string, cause: unknown): void {
    if (this.#r.failMode === "open") return;
    this.#report(key, "unavailable");
    throw unavailableError(this.#s, cause);
  }

  /** One try: take a slot, or learn why not and when the window ends. */
  async #attempt(entry: RedisKey): Promise<Attempt> {
    const s = this.#s;
    const r = this.#r;
    if (!this.#reachable()) {
      return { kind: "unavailable", cause: new Error(`Redis connection is ${this.#conn.client.status}`) };
    }
    if (!entry.ready) {
      // Bottleneck would hold the script until it is connected and send it then, however late: wait
      // here instead, so that a call that gives up leaves no script behind to take a slot later.
      try {
        await withTimeout(entry.limiter.ready(), r.timeout);
      } catch (err) {
        r.onError(err);
        return { kind: "unavailable", cause: err };
      }
    }
    const index = nextIndex();
    // Without maxConcurrent the slot is only a count in the window: it expires at once and needs no
    // free. With it, the slot is held until freed, or for slotTimeout at most.
    const expiration = s.hasConcurrency ? r.slotTimeout : 1;
    try {
      const result = await withTimeout(entry.store.__register__(index, 1, expiration), r.timeout, (late) => {
        if (late.success && s.hasConcurrency) this.#free(entry, index);
      });
      if (result.success) return { kind: "admitted", index };
    } catch (err) {
      r.onError(err);
      return { kind: "unavailable", cause: err };
    }
    return this.#whyLimited(entry);
  }

  /** Reads the key's window from Redis: refused for the window (and until when) or for concurrency. */
  async #whyLimited(entry: RedisKey): Promise<Attempt> {
    const s = this.#s;
    if (!s.hasWindow) return { kind: "limited", reason: "concurrency", retryAfter: undefined };
    let fields: (string | null)[];
    try {
      fields = await withTimeout(
        this.#conn.client.hmget(entry.settingsKey, "reservoir", "lastReservoirRefresh"),
        this.#r.timeout,
      );
    } catch (err) {
      this.#r.onError(err);
      return { kind: "limited", reason: s.hasConcurrency ? "concurrency" : "limit", retryAfter: undefined };
    }
    const reservoir = Number(fields[0]);
    const refreshed = Number(fields[1]);
    if (s.hasConcurrency && reservoir > 0) {
      return { kind: "limited", reason: "concurrency", retryAfter: undefined };
    }
    const retryAfter = Number.isFinite(refreshed) ? refreshed + s.interval - Date.now() : undefined;
    // A window that just opened (between the two calls) is free again: try again shortly.
    return { kind: "limited", reason: "limit", retryAfter: Math.max(1, retryAfter ?? 1) };
  }

  /** Erroring mode: a slot now, or RESOURCE_EXHAUSTED (UNAVAILABLE when failing closed). */
  async #acquire(entry: RedisKey, key: string): Promise<string> {
    const attempt = await this.#attempt(entry);
    if (attempt.kind === "admitted") return attempt.index;
    if (attempt.kind === "unavailable") {
      this.#unavailable(key, attempt.cause);
      return NO_SLOT;
    }
    this.#report(key, attempt.reason);
    throw attempt.reason === "limit" ? limitError(this.#s, attempt.retryAfter) : concurrencyError(this.#s);
  }

  /** Delaying mode: tries until a slot is had, the deadline cannot be met, or the call is cancelled. */
  async #acquireWaiting(entry: RedisKey, key: string, ctx: Context): Promise<string> {
    const s = this.#s;
    let waiting = false;
    try {
      for (;;) {
        // A cancel cuts a round trip short too (next to Redis's round trip, the signal costs nothing).
        const attempt = await this.#attemptUnlessAborted(entry, ctx, key);
        if (attempt.kind === "admitted") return attempt.index;
        if (attempt.kind === "unavailable") {
          this.#unavailable(key, attempt.cause);
          return NO_SLOT;
        }
        if (this.#closed) throw closedError(s);
        const aborted = ctx.abortReason;
        if (aborted !== undefined) {
          this.#report(key, abortKind(aborted));
          throw aborted;
        }
        const delay = attempt.retryAfter ?? POLL_INTERVAL;
        if (!waiting) {
          if (entry.waiting >= s.maxQueue) {
            this.#report(key, "queue");
            throw queueError(s, attempt.retryAfter);
          }
          entry.waiting++;
          waiting = true;
        }
        const deadline = ctx.deadline;
        if (attempt.reason === "limit" && deadline !== undefined && Date.now() + delay >= deadline) {
          this.#report(key, "deadline");
          throw deadlineError(s, delay);
        }
        await this.#sleep(delay, ctx, key);
      }
    } finally {
      if (waiting) entry.waiting--;
    }
  }

  /** {@link RedisLimiter.#attempt}, but rejects at once when the call is cancelled meanwhile. */
  #attemptUnlessAborted(entry: RedisKey, ctx: Context, key: string): Promise<Attempt> {
    // A call that is over already takes no slot: a window slot once taken stays used.
    const over = ctx.abortReason;
    if (over !== undefined) {
      this.#report(key, abortKind(over));
      return Promise.reject(over);
    }
    const attempt = this.#attempt(entry);
    return new Promise<Attempt>((resolve, reject) => {
      // onAbort watches a child of the context, as for a local limiter's waiting call: many calls in
      // flight with one shared context add no listeners to its signal.
      const stop = onAbort(ctx, (reason) => {
        this.#report(key, abortKind(reason));
        reject(reason);
        // A slot granted after the caller left is given back (a window slot stays used).
        attempt.then((late) => {
          if (late.kind === "admitted" && this.#s.hasConcurrency) this.#free(entry, late.index);
        }, ignore);
      });
      attempt.then(
        (result) => {
          if (stop()) resolve(result);
        },
        (err: unknown) => {
          if (stop()) reject(err);
        },
      );
    });
  }

  /** Sleeps `ms` (plus a little jitter so waiters do not all retry at once), unless cancelled or closed. */
  #sleep(ms: number, ctx: Context, key: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let stop: (() => boolean) | undefined;
      const finish = (): void => {
        clearTimeout(sleeper.timer);
        stop?.();
        this.#sleepers.delete(sleeper);
      };
      const sleeper: Sleeper = {
        timer: setTimeout(
          () => {
            finish();
            resolve();
          },
          // Capped (a longer delay fires after 1 ms in Node): woken early, the caller asks again.
          Math.min(ms + Math.floor(Math.random() * 5), MAX_TIMER_MS),
        ),
        fail: (error) => {
          finish();
          reject(error);
        },
      };
      this.#sleepers.add(sleeper);
      stop = onAbort(ctx, (reason) => {
        finish();
        this.#report(key, abortKind(reason));
        reject(reason);
      });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    const error = closedError(this.#s);
    for (const sleeper of [...this.#sleepers]) sleeper.fail(error);
    this.#keys.clear();
    const conn = this.#conn;
    if (this.#owns === "all") {
      const flush = conn.client.status === "ready" && conn.subscriber.status === "ready";
      const quit = conn.disconnect(flush).catch(this.#r.onError);
      if (flush) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<"late">((resolve) => {
          timer = setTimeout(() => resolve("late"), this.#r.timeout);
        });
        if ((await Promise.race([quit, late])) === "late") await conn.disconnect(false);
        clearTimeout(timer);
      }
    } else if (this.#owns === "subscriber") {
      conn.terminated = true;
      conn.subscriber.disconnect();
    }
  }
}

function abortKind(reason: ServiceError): RejectReason {
  return reason.code === Code.DEADLINE_EXCEEDED ? "deadline" : "cancelled";
}
