// The verified-token cache of createJwtVerifier: a bounded map from the exact token string to the result
// of its verification, evicting in least-recently-used order approximated by "second chance" (CLOCK): a
// hit only sets a flag; when the map is full, the oldest entry goes unless it was used since it was
// last looked at, in which case it moves to the back with its flag cleared. A hit stays one Map.get and a
// field write: re-inserting the entry on every hit (exact LRU with a Map) costs several times more in V8.
// It only stores and finds; what may be stored and whether a hit still holds (time rules, key set) is
// the verifier's business (see verifier.ts).
//
// The map is indexed by the token's last KEY_CHARS characters (the tail of its signature) and every hit
// compares the whole token: V8 hashes a string key anew for every new string, ~2 ns per character, so a
// 500-character token would cost ~1 µs per lookup, while the tail costs the same for any token. Two
// different tokens never share a result: the full comparison decides. Tokens sharing a tail evict each
// other; only valid tokens are stored, and their tails are 96 bits of signature.
import type { VerifiedJwt } from "./verifier.js";

/**
 * Options of the verified-token cache ({@link JwtVerifierOptions.cache}).
 *
 * @example
 * ```ts
 * // Many distinct callers: keep more tokens, reuse each verification for 30 s.
 * const verifier = createJwtVerifier({ jwksUrl, issuer, audience, cache: { max: 10_000, ttl: 30_000 } });
 * ```
 */
export interface JwtCacheOptions {
  /** The most tokens kept (default 1 000); past it the least recently used one is dropped (approximately). */
  max?: number;
  /**
   * How long one verification is reused, in ms from when it was made (default 60 000). A hit never
   * outlives the token's `exp` either: the time rules are checked again on every hit.
   */
  ttl?: number;
}

export const DEFAULT_CACHE_MAX = 1_000;
export const DEFAULT_CACHE_TTL = 60_000;
/** How many trailing characters of a token index the map (16 base64url characters: 96 bits). */
const KEY_CHARS = 16;

interface Entry {
  /** The whole token. */
  readonly token: string;
  readonly result: VerifiedJwt;
  /** The verifier's clock when the token was verified. */
  readonly verifiedAt: number;
  /** Hit since the eviction scan last passed it. */
  used: boolean;
}

/** A bounded cache of verified tokens; entries belong to one key-set `epoch` (see {@link TokenCache.get}). */
export class TokenCache {
  readonly #entries = new Map<string, Entry>();
  readonly #max: number;
  readonly #ttl: number;
  #epoch = 0;

  constructor(max: number, ttl: number) {
    this.#max = max;
    this.#ttl = ttl;
  }

  /**
   * The stored result for `token`, or `undefined`. An entry older than the ttl, or verified at a later
   * clock reading than `now` (the clock went back), is dropped; so is everything when the key set's
   * `epoch` is not the one the entries were verified under. A hit is marked as used.
   */
  get(token: string, now: number, epoch: number): VerifiedJwt | undefined {
    if (epoch !== this.#epoch) {
      this.#entries.clear();
      this.#epoch = epoch;
      return undefined;
    }
    const key = token.slice(-KEY_CHARS);
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.token !== token) return undefined;
    if (now - entry.verifiedAt >= this.#ttl || now < entry.verifiedAt) {
      this.#entries.delete(key);
      return undefined;
    }
    entry.used = true;
    return entry.result;
  }

  /** Forgets `token` (its time rules no longer hold). */
  delete(token: string): void {
    const key = token.slice(-KEY_CHARS);
    if (this.#entries.get(key)?.token === token) this.#entries.delete(key);
  }

  /** Stores a verification made at `verifiedAt` under key-set `epoch`, dropping one entry past `max`. */
  set(token: string, result: VerifiedJwt, verifiedAt: number, epoch: number): void {
    if (epoch !== this.#epoch) {
      this.#entries.clear();
      this.#epoch = epoch;
    }
    const key = token.slice(-KEY_CHARS);
    this.#entries.delete(key);
    this.#entries.set(key, { token, result, verifiedAt, used: false });
    if (this.#entries.size > this.#max) this.#evictOne();
  }

  /** Second chance: the oldest entry not used since it was last passed goes; used ones move to the back. Ends within `size + 1` steps. */
  #evictOne(): void {
    for (;;) {
      // Map iterates in insertion order: the first entry is the oldest.
      const [key, entry] = this.#entries.entries().next().value as [string, Entry];
      this.#entries.delete(key);
      if (!entry.used) return;
      entry.used = false;
      this.#entries.set(key, entry);
    }
  }
}

/** The cache options checked: `undefined` when the cache is off. */
export function cacheSettings(
  option: boolean | JwtCacheOptions | undefined,
  where: string,
): { max: number; ttl: number } | undefined {
  if (option === false) return undefined;
  if (option === undefined || option === true) return { max: DEFAULT_CACHE_MAX, ttl: DEFAULT_CACHE_TTL };
  if (typeof option !== "object" || option === null) {
    throw new TypeError(`${where}: cache must be a boolean or { max, ttl }, got ${String(option)}`);
  }
  const { max = DEFAULT_CACHE_MAX, ttl = DEFAULT_CACHE_TTL } = option;
  if (typeof max !== "number" || !Number.isSafeInteger(max) || max < 1) {
    throw new TypeError(`${where}: cache.max must be a positive integer, got ${String(max)}`);
  }
  if (typeof ttl !== "number" || !(ttl > 0)) {
    throw new TypeError(`${where}: cache.ttl must be a positive number of ms, got ${String(ttl)}`);
  }
  return { max, ttl };
}

/**
 * Freezes a verification result and everything in it, so one cached result can be handed to every
 * call without one caller's change reaching the next. Iterative: claims may nest deeply.
 */
export function deepFreeze<T extends object>(value: T): T {
  const stack: object[] = [value];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (Object.isFrozen(item)) continue;
    Object.freeze(item);
    for (const key of Object.keys(item)) {
      const child = (item as Record<string, unknown>)[key];
      if (typeof child === "object" && child !== null) stack.push(child);
    }
  }
  return value;
}
