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
import { KeyEntry, KeyMap } from "./key-map.js";
import type { KeyOf, LimiterCore, Reporter } from "./local-limiter.js";
import type { RedisRateLimitOptions, RedisSettings, RejectReason, Settings } from "./options.js";

/**
 * A call of a key in delaying mode, from its arrival until it has a slot or fails. It first tries
 * Redis itself ("trying"), unless calls of its key wait already; once Redis refused it (or it came
 * behind waiting calls) it waits in the key's FIFO queue ("queued"), where only the queue's first call
 * is tried for, by the key's pump.
 */
interface Waiter {
  readonly entry: RedisKey;
  /** Arrival order: the queue is kept sorted by it. */
  readonly seq: number;
  prev: Waiter | undefined;
  next: Waiter | undefined;
  readonly ctx: Context;
  readonly key: string;
  readonly resolve: (index: string) => void;
  readonly reject: (error: unknown) => void;
  /** Stops watching the caller's context. */
  stop: (() => boolean) | undefined;
  /** Where it is: its own round trip, the key's queue, or done (admitted, failed, cancelled, closed). */
  state: "trying" | "queued" | "done";
}

/**
 * One key's Bottleneck limiter (its state lives in Redis). Each call of the key in progress here
 * (taking a slot, waiting for one, or running) holds it in the key map.
 */
class RedisKey extends KeyEntry {
  /** Its start-up (connect, create the state in Redis, subscribe) is done. */
  ready = false;
  /** Its start-up failed; it is replaced on next use. */
  broken = false;
  /** Delaying mode: the calls Redis found over the limit (or that came behind them), in arrival order. */
  head: Waiter | undefined = undefined;
  tail: Waiter | undefined = undefined;
  /** The length of the queue: what `maxQueue` bounds. */
  queued = 0;
  /** Delaying mode: until when (epoch ms) Redis said the key's window is used up (0: not known). */
  fullUntil = 0;
  /** The pump (asking Redis for the queue's first call) runs. */
  pumping = false;
  /** The pump's sleep until its next try, so that an empty queue, a freed slot or close() ends it. */
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  wake: (() => void) | undefined = undefined;
  /** The pump sleeps because `maxConcurrent` calls run: a slot freed here wakes it at once. */
  forSlot = false;

  constructor(
    readonly limiter: Bottleneck,
    readonly store: StoreInternals,
    readonly settingsKey: string,
  ) {
    super();
  }
}

/** The outcome of one try to take a slot. */
type Attempt =
  | {
      readonly kind: "admitted";
      readonly index: string;
      /**
       * Delaying mode with a window: the key's window (its `lastReservoirRefresh` in Redis) read just
       * before the slot was taken, so that a slot nobody takes can be given back to that window only.
       */
      readonly window: Promise<string | undefined> | undefined;
    }
  | {
      readonly kind: "limited";
      readonly reason: "limit" | "concurrency";
      readonly retryAfter: number | undefined;
    }
  | {
      readonly kind: "unavailable";
      readonly cause: unknown;
      /** The connection is down (else a call failed on a live connection). */
      readonly down: boolean;
    };

/** Fail-open admission: nothing to give back. */
const NO_SLOT = "";

/**
 * Gives one window slot back to a key's reservoir (KEYS[1]: its settings hash), but only to the window
 * it was taken in. Bottleneck's scripts open a window by setting `lastReservoirRefresh` to their clock,
 * at least one interval past its value, so while it still holds the value read before the slot was
 * taken (ARGV[1]), no window has opened since and the reservoir is that window's. Never above the
 * window's limit. Answers 1 when it gave the slot back, 0 when not (a new window, or the state is gone).
 */
const GIVE_BACK_SCRIPT = `
local s = redis.call('hmget', KEYS[1], 'lastReservoirRefresh', 'reservoir', 'reservoirRefreshAmount')
if s[1] ~= ARGV[1] then return 0 end
local reservoir = tonumber(s[2])
local limit = tonumber(s[3])
if reservoir == nil or limit == nil or reservoir >= limit then return 0 end
redis.call('hincrby', KEYS[1], 'reservoir', 1)
return 1
`;

class RedisTimeoutError extends Error {
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
    this.name = "RedisTimeoutError";
  }
}

/** Settles like `promise` unless `ms` pass first; `onLate` sees a value that arrived too late. */
/**
 * Waits for `promise` until `deadline` (a performance.now() time) at the latest; true if it settled
 * by then. The timer is cleared either way.
 */
async function settledBy(promise: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([
      promise.then(
        () => true as const,
        () => true as const,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

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

/**
 * ioredis defaults for the connections the limiter opens. By default ioredis keeps commands sent while
 * the connection is down and replays unanswered ones after reconnecting; a call that has long failed
 * open or closed would then still take a slot. Bottleneck only sends commands once connected, so
 * nothing else needs the offline queue.
 */
const STALE_COMMANDS_DROPPED = { enableOfflineQueue: false, autoResendUnfulfilledCommands: false };

/** ioredis' errors for a command it could not send, or lost, because the connection is gone. */
const CONNECTION_LOST = new Set([
  "Connection is closed.",
  "Stream isn't writeable and enableOfflineQueue options is false",
]);
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/**
 * Whether a round trip failed because the connection is gone (ioredis may report it before its status
 * changes), as opposed to an error reply, a failed script or no answer in time on a live connection.
 */
function connectionLost(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (CONNECTION_LOST.has(err.message) || err.name === "MaxRetriesPerRequestError") return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && NETWORK_CODES.has(code);
}

/**
 * How much later (ms) than its `slotTimeout` a slot may expire by the clock Bottleneck's scripts read:
 * they take the milliseconds from the first three digits of Redis's microseconds, which `TIME` does
 * not zero-pad, so that clock runs up to 0.9 s ahead of Redis's own (by which keys expire).
 */
const CLOCK_SLACK = 1_000;

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
 * `maxConcurrent` slot). In delaying mode a call tries Redis at once while no call of its key waits;
 * a call Redis refused, or one that comes while calls wait, queues here in arrival order, and only the
 * queue's first call is tried for: again when the window ends, or every 50 ms while it waits for a
 * running call to end. Only the queued calls count against `maxQueue`. A slot Redis grants to a call
 * that left during the round trip (cancelled, deadline passed) goes to the key's first waiting call;
 * with none, it goes back to Redis: the `maxConcurrent` slot is freed, and the window slot is returned
 * while its window lasts, which is why a delayed call's round trip also reads the key's current window
 * (one more command, sent ahead of the slot's script on the same connection: no extra round trip).
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
  readonly #sweeper: ReturnType<typeof setInterval>;
  /** Delaying mode: the calls in their own first round trip (see #try), so that `close()` fails them. */
  readonly #trying = new Set<Waiter>();
  /**
   * Round trips under way (slot registrations and frees): close() lets them finish, bounded by the
   * timeout, before it closes its connection, so that a slot a late answer brings in is freed in Redis
   * rather than held there (for every process) until slotTimeout.
   */
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Numbers the delayed calls in arrival order. */
  #arrivals = 0;
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
      // Redis drops the key's state this long after its last admitted call; with maxConcurrent not
      // before every slot taken could have expired, or a call still running would be forgotten.
      timeout: s.hasConcurrency ? Math.max(s.idleTimeout, this.#r.slotTimeout + CLOCK_SLACK) : s.idleTimeout,
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
        self.#unavailable(key, self.#downError(), true);
        return next(ctx, request);
      }
      const entry = self.#entry(key);
      self.#keys.hold(entry);
      let index: string;
      try {
        index =
          s.mode === "error" ? await self.#acquire(entry, key) : await self.#acquireWaiting(entry, key, ctx);
      } catch (err) {
        self.#keys.release(entry);
        throw err;
      }
      try {
        return await next(ctx, request);
      } finally {
        self.#keys.release(entry);
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

  /** Gives a `maxConcurrent` slot back; then a pump of the key waiting for one tries at once. */
  #free(entry: RedisKey, index: string): void {
    this.#track(
      entry.store.__free__(index, 1).then(() => {
        if (entry.forSlot) this.#wake(entry);
      }, this.#r.onError),
    );
  }

  /** Remembers a round trip until it settles (see {@link #inFlight}). */
  #track<T>(round: Promise<T>): Promise<T> {
    this.#inFlight.add(round);
    const done = (): void => {
      this.#inFlight.delete(round);
    };
    round.then(done, done);
    return round;
  }

  /**
   * Waits, until `deadline` (a performance.now() time), until no round trip is under way: late answers give their slots back
   * (which starts more round trips, the frees), so it looks again after each round settles.
   */
  async #settleInFlight(deadline: number): Promise<void> {
    while (this.#inFlight.size > 0) {
      if (!(await settledBy(Promise.allSettled([...this.#inFlight]), deadline))) return;
      // The answers' continuations (a closed call giving its slot back) run before the next look.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Gives back the slot of an attempt whose call will not run: its `maxConcurrent` slot, and in
   * delaying mode its window slot too, while that window lasts (see {@link GIVE_BACK_SCRIPT}).
   */
  #giveBack(entry: RedisKey, attempt: Attempt): void {
    if (attempt.kind !== "admitted") return;
    if (this.#s.hasConcurrency) this.#free(entry, attempt.index);
    const window = attempt.window;
    if (window === undefined) return;
    const client = this.#conn.client;
    this.#track(
      window
        .then((current) =>
          current === undefined ? 0 : client.eval(GIVE_BACK_SCRIPT, 1, entry.settingsKey, current),
        )
        .then(undefined, this.#r.onError),
    );
  }

  /**
   * The slot of a call that left during its round trip goes to the first call waiting for the key,
   * if one waits (and the limiter is open), else back to Redis (see {@link #giveBack}).
   */
  #handOn(entry: RedisKey, attempt: Attempt): void {
    const next = entry.head;
    if (attempt.kind === "admitted" && next !== undefined && !this.#closed) {
      this.#leave(next);
      next.resolve(attempt.index);
      return;
    }
    this.#giveBack(entry, attempt);
  }

  /**
   * Delaying mode with a window: the key's current window, read just before its slot is taken. Sent
   * on the connection that takes the slot, ahead of it, so it adds no round trip and Redis answers it
   * first. `undefined` when it cannot be read (no slot is given back then).
   */
  #windowNow(entry: RedisKey): Promise<string | undefined> | undefined {
    if (!this.#s.hasWindow || this.#s.mode !== "delay") return undefined;
    return this.#conn.client.hget(entry.settingsKey, "lastReservoirRefresh").then(
      (value) => value ?? undefined,
      () => undefined,
    );
  }

  #downError(): Error {
    return new Error(`Redis connection is ${this.#conn.client.status}`);
  }

  /** Whether `err` (of a failed round trip) means the connection is down, not that the call failed. */
  #isDown(err: unknown): boolean {
    return this.#conn.client.status !== "ready" || connectionLost(err);
  }

  /** Fails closed (throws UNAVAILABLE) or open (returns, so the call goes through). */
  #unavailable(key: string, cause: unknown, down: boolean): void {
    if (this.#r.failMode === "open") return;
    this.#report(key, "unavailable");
    throw unavailableError(this.#s, cause, down);
  }

  /** One try: take a slot, or learn why not and when the window ends. */
  async #attempt(entry: RedisKey): Promise<Attempt> {
    const s = this.#s;
    const r = this.#r;
    if (!this.#reachable()) return { kind: "unavailable", cause: this.#downError(), down: true };
    if (!entry.ready) {
      // Bottleneck would hold the script until it is connected and send it then, however late: wait
      // here instead, so that a call that gives up leaves no script behind to take a slot later.
      try {
        await withTimeout(entry.limiter.ready(), r.timeout);
      } catch (err) {
        r.onError(err);
        return { kind: "unavailable", cause: err, down: this.#isDown(err) };
      }
    }
    const index = nextIndex();
    const window = this.#windowNow(entry);
    // Without maxConcurrent the slot is only a count in the window: it expires at once and needs no
    // free. With it, the slot is held until freed, or for slotTimeout at most.
    const expiration = s.hasConcurrency ? r.slotTimeout : 1;
    try {
      const result = await withTimeout(
        this.#track(entry.store.__register__(index, 1, expiration)),
        r.timeout,
        (late) => {
          if (late.success && s.hasConcurrency) this.#free(entry, index);
        },
      );
      if (result.success) return { kind: "admitted", index, window };
    } catch (err) {
      r.onError(err);
      return { kind: "unavailable", cause: err, down: this.#isDown(err) };
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

  /** Erroring mode: a slot now, or RESOURCE_EXHAUSTED (UNAVAILABLE when failing closed or closed). */
  async #acquire(entry: RedisKey, key: string): Promise<string> {
    const attempt = await this.#attempt(entry);
    if (this.#closed) {
      // Closed during the round trip: the call does not run, whatever Redis answered.
      this.#giveBack(entry, attempt);
      throw closedError(this.#s);
    }
    if (attempt.kind === "admitted") return attempt.index;
    if (attempt.kind === "unavailable") {
      this.#unavailable(key, attempt.cause, attempt.down);
      return NO_SLOT;
    }
    this.#report(key, attempt.reason);
    throw attempt.reason === "limit" ? limitError(this.#s, attempt.retryAfter) : concurrencyError(this.#s);
  }

  /**
   * Delaying mode: settles with the call's slot (its index) once it has one, or fails when the
   * deadline cannot be met, the call is cancelled, Redis is unavailable (`failMode: "closed"`) or the
   * limiter closes. While no call of the key waits, the call tries Redis at once, like any call within
   * the limit; refused, it waits in the key's queue. While calls wait, a new call is over the limit too
   * and joins the queue at once, if there is room and a chance.
   */
  #acquireWaiting(entry: RedisKey, key: string, ctx: Context): Promise<string> {
    const s = this.#s;
    // A call that is over already takes no slot: a window slot once taken stays used.
    const over = ctx.abortReason;
    if (over !== undefined) {
      this.#report(key, abortKind(over));
      return Promise.reject(over);
    }
    const queue = entry.queued > 0;
    if (queue) {
      const now = Date.now();
      if (entry.queued >= s.maxQueue) {
        this.#report(key, "queue");
        return Promise.reject(queueError(s, entry.fullUntil > now ? entry.fullUntil - now : undefined));
      }
      const eta = this.#eta(entry, entry.queued, now);
      const deadline = ctx.deadline;
      if (eta !== undefined && deadline !== undefined && eta >= deadline) {
        this.#report(key, "deadline");
        return Promise.reject(deadlineError(s, eta - now));
      }
    }
    return new Promise<string>((resolve, reject) => {
      const w: Waiter = {
        entry,
        seq: ++this.#arrivals,
        prev: undefined,
        next: undefined,
        ctx,
        key,
        resolve,
        reject,
        stop: undefined,
        state: "trying",
      };
      // onAbort watches a child of the context, as for a local limiter's waiting call: many calls
      // waiting with one shared context add no listeners to its signal. A cancel never waits for a
      // round trip: a slot granted after the caller left goes to the key's first waiting call, or back
      // to Redis (see #try and #pump).
      w.stop = onAbort(ctx, (reason) => {
        if (!this.#leave(w)) return;
        this.#report(key, abortKind(reason));
        reject(reason);
      });
      if (queue) {
        this.#enqueue(w);
      } else {
        this.#trying.add(w);
        void this.#try(w);
      }
    });
  }

  /**
   * The call's own round trip, made while no call of its key waits: admitted, it runs; refused, it is
   * over the limit and waits in the queue, or is refused when `maxQueue` calls wait already.
   */
  async #try(w: Waiter): Promise<void> {
    const s = this.#s;
    const entry = w.entry;
    let attempt: Attempt;
    try {
      attempt = await this.#attempt(entry);
    } catch (err) {
      // #attempt does not throw; should it, the call fails rather than waits forever.
      if (this.#leave(w)) w.reject(err);
      return;
    }
    if (w.state === "done") {
      // The call left meanwhile (cancelled, or the limiter closed): it does not run, and its slot goes
      // to the first call waiting for the key, or back to Redis.
      this.#handOn(entry, attempt);
      return;
    }
    if (attempt.kind === "admitted") {
      this.#leave(w);
      w.resolve(attempt.index);
      return;
    }
    if (attempt.kind === "unavailable") {
      this.#leave(w);
      this.#failMode(w, attempt);
      return;
    }
    this.#learn(entry, attempt, Date.now());
    if (entry.queued >= s.maxQueue) {
      // With maxQueue 0 the call may try once, not wait.
      this.#fail(w, "queue", queueError(s, attempt.retryAfter));
      return;
    }
    this.#trying.delete(w);
    this.#enqueue(w);
  }

  /** Remembers until when the key's window is used up, when Redis said so. */
  #learn(entry: RedisKey, attempt: Attempt & { kind: "limited" }, now: number): void {
    // Without a known end (Redis did not say), calls are never refused by the windows' schedule.
    if (attempt.reason === "limit" && attempt.retryAfter !== undefined) {
      entry.fullUntil = now + attempt.retryAfter;
    }
  }

  /**
   * Puts a call over the limit in its key's queue, at its place in arrival order (a call refused late
   * may have come before calls refused already), fails the calls that can have no slot in time, and
   * starts the pump.
   */
  #enqueue(w: Waiter): void {
    const entry = w.entry;
    let after = entry.tail;
    while (after !== undefined && after.seq > w.seq) after = after.prev;
    w.prev = after;
    w.next = after === undefined ? entry.head : after.next;
    if (w.prev === undefined) entry.head = w;
    else w.prev.next = w;
    if (w.next === undefined) entry.tail = w;
    else w.next.prev = w;
    entry.queued++;
    w.state = "queued";
    const now = Date.now();
    if (w.next !== undefined) {
      // The calls behind it moved back one place.
      this.#refuseHopeless(entry, now);
    } else {
      const eta = this.#eta(entry, entry.queued - 1, now);
      const deadline = w.ctx.deadline;
      if (eta !== undefined && deadline !== undefined && eta >= deadline) {
        this.#fail(w, "deadline", deadlineError(this.#s, eta - now));
      }
    }
    if (!entry.pumping && entry.head !== undefined) void this.#pump(entry);
  }

  /**
   * When the call at `position` of the queue (0: the first) could have a slot at the earliest, from the
   * windows alone: `undefined` while Redis has not said until when the current window is used up.
   * Each window after it admits at most `limit` of the calls ahead.
   */
  #eta(entry: RedisKey, position: number, now: number): number | undefined {
    if (entry.fullUntil <= now) return undefined;
    return entry.fullUntil + Math.floor(position / this.#s.limit) * this.#s.interval;
  }

  /**
   * Asks Redis for a slot for the key's queue until it is empty, and gives each slot to the first call
   * waiting when Redis answers: refused, it tries again when the window ends (or, while `maxConcurrent`
   * calls run, every 50 ms and when a call of this process frees a slot). When Redis is unavailable,
   * `failMode` applies to every waiting call at once, and the pump ends; calls coming later try afresh.
   */
  async #pump(entry: RedisKey): Promise<void> {
    entry.pumping = true;
    try {
      while (entry.head !== undefined && !this.#closed) {
        const attempt = await this.#attempt(entry);
        const w = entry.head;
        if (w === undefined || this.#closed) {
          // Every waiting call left meanwhile (cancelled, or the limiter closed): none runs, and the
          // slot goes back to Redis.
          this.#giveBack(entry, attempt);
          return;
        }
        if (attempt.kind === "admitted") {
          this.#leave(w);
          w.resolve(attempt.index);
          continue;
        }
        if (attempt.kind === "unavailable") {
          for (let first = entry.head; first !== undefined; first = entry.head) {
            this.#leave(first);
            this.#failMode(first, attempt);
          }
          return;
        }
        const now = Date.now();
        this.#learn(entry, attempt, now);
        this.#refuseHopeless(entry, now);
        if (entry.head === undefined) return;
        entry.forSlot = attempt.reason === "concurrency";
        await this.#sleep(entry, attempt.retryAfter ?? POLL_INTERVAL);
        entry.forSlot = false;
      }
    } catch (err) {
      // #attempt does not throw; should anything else, the calls fail rather than wait forever.
      for (let w = entry.head; w !== undefined; w = entry.head) {
        this.#leave(w);
        w.reject(err);
      }
    } finally {
      entry.pumping = false;
    }
  }

  /** Applies `failMode` to a call that left its queue because Redis is unavailable. */
  #failMode(w: Waiter, attempt: Attempt & { kind: "unavailable" }): void {
    if (this.#r.failMode === "open") {
      w.resolve(NO_SLOT);
      return;
    }
    this.#report(w.key, "unavailable");
    w.reject(unavailableError(this.#s, attempt.cause, attempt.down));
  }

  /** Fails the waiting calls that the windows alone show cannot have a slot before their deadline. */
  #refuseHopeless(entry: RedisKey, now: number): void {
    if (entry.fullUntil <= now) return;
    let position = 0;
    for (let w = entry.head; w !== undefined; ) {
      const after = w.next;
      const eta = this.#eta(entry, position, now);
      const deadline = w.ctx.deadline;
      if (eta !== undefined && deadline !== undefined && eta >= deadline) {
        this.#fail(w, "deadline", deadlineError(this.#s, eta - now));
      } else {
        position++;
      }
      w = after;
    }
  }

  #fail(w: Waiter, reason: RejectReason, error: ServiceError): void {
    if (!this.#leave(w)) return;
    this.#report(w.key, reason);
    w.reject(error);
  }

  /**
   * Ends the call's stay (false if it ended already): takes it out of its round trip's watch or its
   * key's queue and stops watching its context. A pump left without waiting calls wakes up and ends.
   */
  #leave(w: Waiter): boolean {
    if (w.state === "done") return false;
    if (w.state === "trying") {
      this.#trying.delete(w);
    } else {
      const entry = w.entry;
      if (w.prev === undefined) entry.head = w.next;
      else w.prev.next = w.next;
      if (w.next === undefined) entry.tail = w.prev;
      else w.next.prev = w.prev;
      w.prev = undefined;
      w.next = undefined;
      entry.queued--;
      if (entry.head === undefined) this.#wake(entry);
    }
    w.state = "done";
    w.stop?.();
    return true;
  }

  /** Ends the pump's sleep, if it sleeps. */
  #wake(entry: RedisKey): void {
    if (entry.timer !== undefined) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    const wake = entry.wake;
    entry.wake = undefined;
    wake?.();
  }

  /** The pump sleeps `ms` (plus a little jitter, so processes do not all retry at once) or until woken. */
  #sleep(entry: RedisKey, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      entry.wake = resolve;
      entry.timer = setTimeout(
        () => {
          entry.timer = undefined;
          entry.wake = undefined;
          resolve();
        },
        // Capped (a longer delay fires after 1 ms in Node): woken early, the pump asks again.
        Math.min(ms + Math.floor(Math.random() * 5), MAX_TIMER_MS),
      );
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    const error = closedError(this.#s);
    for (const w of [...this.#trying]) {
      this.#leave(w);
      w.reject(error);
    }
    for (const entry of this.#keys.values()) {
      for (let w = entry.head; w !== undefined; w = entry.head) {
        this.#leave(w);
        w.reject(error);
      }
      this.#wake(entry);
    }
    this.#keys.clear();
    const conn = this.#conn;
    if (this.#owns === "all") {
      // One deadline for both waits: the round trips under way, then the QUIT that flushes.
      const deadline = performance.now() + this.#r.timeout;
      // Only over a live connection of ours: a user's client stays open for late frees, and a
      // connection that is down answers nothing.
      if (conn.client.status === "ready") await this.#settleInFlight(deadline);
      const flush = conn.client.status === "ready" && conn.subscriber.status === "ready";
      const quit = conn.disconnect(flush).catch(this.#r.onError);
      if (flush && !(await settledBy(quit, deadline))) await conn.disconnect(false);
    } else if (this.#owns === "subscriber") {
      conn.terminated = true;
      conn.subscriber.disconnect();
    }
  }
}

function abortKind(reason: ServiceError): RejectReason {
  return reason.code === Code.DEADLINE_EXCEEDED ? "deadline" : "cancelled";
}
