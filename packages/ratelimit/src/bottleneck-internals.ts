// The few internals of Bottleneck 2.19 this package relies on, in one place and checked at run time.
// Bottleneck's last release is 2.19.5 (2019) and the peer range is ^2.19.5, so they do not move.
//
// Why internals at all: Bottleneck's public `schedule()` queues a job, and a queued job can neither be
// taken back (a cancelled call would still use a slot later) nor be refused at once across processes
// (its erroring set-up, `highWater: 0`, races between the submit and the register scripts and then
// leaves jobs queued). Its datastore's `__register__` is one atomic Redis script that takes a slot
// or says no, and `__free__` gives a running slot back: exactly the try-acquire/release a middleware
// needs. Everything else (the Lua scripts, the state in Redis, windows, clients, connections) is
// Bottleneck's own.
import type Bottleneck from "bottleneck";

/** What `__register__` answers. */
export interface RegisterResult {
  readonly success: boolean;
}

/** The datastore of a Redis-backed Bottleneck limiter. */
export interface StoreInternals {
  heartbeat?: ReturnType<typeof setInterval> | undefined;
  __register__(index: string, weight: number, expiration: number | null): Promise<RegisterResult>;
  __free__(index: string, weight: number): Promise<unknown>;
}

/** The ioredis commands used directly. */
export interface RedisCommands {
  readonly status: string;
  hget(key: string, field: string): Promise<string | null>;
  hmget(key: string, ...fields: string[]): Promise<(string | null)[]>;
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  disconnect(): void;
  quit(): Promise<unknown>;
}

/** A `Bottleneck.IORedisConnection`'s fields. */
export interface ConnectionInternals {
  readonly client: RedisCommands;
  readonly subscriber: RedisCommands;
  readonly limiters: Record<string, unknown>;
  terminated: boolean;
  disconnect(flush?: boolean): Promise<void>;
  on(name: "error", fn: (error: unknown) => void): void;
}

interface LimiterShape {
  readonly _store: StoreInternals;
  channel(): string;
  channel_client(): string;
}

const unsupported = (what: string): Error =>
  new Error(`@svckit/ratelimit: this bottleneck version is not supported (no ${what}); use bottleneck 2.19`);

/** The datastore of `limiter`, checked. */
export function storeOf(limiter: Bottleneck): StoreInternals {
  const store = (limiter as unknown as Partial<LimiterShape>)._store;
  if (typeof store?.__register__ !== "function" || typeof store.__free__ !== "function") {
    throw unsupported("datastore __register__/__free__");
  }
  return store;
}

/** The fields of an IORedisConnection, checked. */
export function connectionOf(connection: Bottleneck.IORedisConnection): ConnectionInternals {
  const c = connection as unknown as Partial<ConnectionInternals>;
  if (
    typeof c.client?.hmget !== "function" ||
    typeof c.subscriber?.unsubscribe !== "function" ||
    typeof c.limiters !== "object"
  ) {
    throw unsupported("IORedisConnection client/subscriber/limiters");
  }
  return c as ConnectionInternals;
}

/** The Redis hash holding the limiter's settings and counters. */
export function settingsKey(id: string): string {
  return `b_${id}_settings`;
}

const ignore = (): void => {};

/**
 * Detaches a limiter from a shared connection without Bottleneck's `disconnect()`, whose
 * unsubscribe promises are left floating and, when Redis is down, end as unhandled rejections.
 * Stops its heartbeat and unsubscribes its channels (errors ignored); runs again once the limiter's
 * start-up settles, since that start-up subscribes and starts the heartbeat.
 */
export function detachLimiter(limiter: Bottleneck, connection: ConnectionInternals): void {
  const shape = limiter as unknown as LimiterShape;
  const detach = (): void => {
    clearInterval(shape._store.heartbeat);
    for (const channel of [shape.channel(), shape.channel_client()]) {
      if (connection.limiters[channel] !== limiter) continue;
      delete connection.limiters[channel];
      if (!connection.terminated && connection.subscriber.status === "ready") {
        connection.subscriber.unsubscribe(channel).catch(ignore);
      }
    }
  };
  detach();
  limiter.ready().then(detach, detach);
}

type ScriptCallback = (error: unknown, replies: unknown) => void;
type ScriptFn = (...args: unknown[]) => unknown;
const PATCHED = Symbol.for("svckit:ratelimit:redis7-script-errors");
const PREFIXED = /^ERR (SETTINGS_KEY_NOT_FOUND|UNKNOWN_CLIENT)$/;

/**
 * Makes Bottleneck 2.19 recover on Redis 7 and later. Its scripts fail with `SETTINGS_KEY_NOT_FOUND`
 * (the limiter's state expired or Redis lost it) or `UNKNOWN_CLIENT` (the process was idle too long),
 * and Bottleneck then re-creates the state or re-registers the client, but it compares the error
 * message exactly, and Redis 7 prefixes script errors with `ERR ` (SGrondin/bottleneck#205, #212,
 * #219, unfixed). Without this, such a limiter fails every call from then on. The connection's script
 * calls get their error message back without the prefix. Idempotent; harmless on older Redis.
 */
export function fixRedis7ScriptErrors(connection: Bottleneck.IORedisConnection): void {
  const c = connection as unknown as { __scriptFn__?: (name: string) => ScriptFn; [PATCHED]?: true };
  const original = c.__scriptFn__;
  if (c[PATCHED] === true || typeof original !== "function") return;
  c.__scriptFn__ = (name: string): ScriptFn => {
    const fn = original.call(connection, name);
    return (...args: unknown[]): unknown => {
      const callback = args.at(-1);
      if (typeof callback === "function") {
        args[args.length - 1] = (error: unknown, replies: unknown): void => {
          if (error instanceof Error) {
            const match = PREFIXED.exec(error.message);
            if (match?.[1] !== undefined) error.message = match[1];
          }
          (callback as ScriptCallback)(error, replies);
        };
      }
      return fn(...args);
    };
  };
  c[PATCHED] = true;
}
