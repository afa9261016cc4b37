import { createHash } from "node:crypto";

/** What the key map needs of each key's state. */
export interface KeyEntry {
  /** When the key was last used (epoch ms). */
  lastUsed: number;
  /** Whether calls of the key are running or waiting, so forgetting it would lose them. */
  busy(): boolean;
}

/** Keys longer than this are replaced by their SHA-256, so memory per key stays bounded. */
export const MAX_KEY_LENGTH = 200;

/** The key as stored: itself, or `sha256:<hex>` when longer than {@link MAX_KEY_LENGTH}. */
export function normalizeKey(key: string): string {
  if (typeof key !== "string") key = String(key);
  return key.length <= MAX_KEY_LENGTH ? key : `sha256:${createHash("sha256").update(key).digest("hex")}`;
}

/** How many busy entries an eviction looks past before it gives up. */
const EVICTION_SCAN = 16;

/**
 * The per-key states of one limiter with bounded memory: at most `maxKeys` entries, kept in least
 * recently used order (a `Map`'s insertion order, refreshed on each use). A new key first drops idle
 * entries (unused for `idleTimeout` ms and not busy), then, when still full, the least recently used
 * entry that is not busy. When the oldest entries are all busy the new key is refused.
 */
export class KeyMap<E extends KeyEntry> {
  readonly #map = new Map<string, E>();
  readonly #maxKeys: number;
  readonly #idleTimeout: number;
  readonly #create: (key: string) => E;
  readonly #dispose: (entry: E, key: string) => void;

  constructor(
    maxKeys: number,
    idleTimeout: number,
    create: (key: string) => E,
    dispose: (entry: E, key: string) => void,
  ) {
    this.#maxKeys = maxKeys;
    this.#idleTimeout = idleTimeout;
    this.#create = create;
    this.#dispose = dispose;
  }

  /** How many keys are tracked. */
  get size(): number {
    return this.#map.size;
  }

  /** The entry of `key`, made if needed; `undefined` when the map is full of busy entries. */
  get(key: string, now: number): E | undefined {
    const map = this.#map;
    let entry = map.get(key);
    if (entry !== undefined) {
      map.delete(key);
      map.set(key, entry);
      entry.lastUsed = now;
      return entry;
    }
    this.sweep(now);
    if (map.size >= this.#maxKeys && !this.#evictOne()) return undefined;
    entry = this.#create(key);
    entry.lastUsed = now;
    map.set(key, entry);
    return entry;
  }

  /** Forgets `key` if it still maps to `entry` (e.g. a broken Redis limiter). */
  delete(key: string, entry: E): void {
    if (this.#map.get(key) === entry) {
      this.#map.delete(key);
      this.#dispose(entry, key);
    }
  }

  /** Drops idle entries from the least recently used end; stops at the first one in use. */
  sweep(now: number): void {
    const deadline = now - this.#idleTimeout;
    for (const [key, entry] of this.#map) {
      if (entry.lastUsed > deadline || entry.busy()) return;
      this.#map.delete(key);
      this.#dispose(entry, key);
    }
  }

  /** Drops the least recently used entry that is not busy; busy ones are moved to the recent end. */
  #evictOne(): boolean {
    const map = this.#map;
    for (let i = 0; i < EVICTION_SCAN; i++) {
      const first = map.entries().next();
      if (first.done === true) return true;
      const [key, entry] = first.value;
      map.delete(key);
      if (!entry.busy()) {
        this.#dispose(entry, key);
        return true;
      }
      map.set(key, entry);
    }
    return false;
  }

  /** Every entry, for `close()`. */
  values(): IterableIterator<E> {
    return this.#map.values();
  }

  /** Forgets every entry (disposing each). */
  clear(): void {
    for (const [key, entry] of this.#map) this.#dispose(entry, key);
    this.#map.clear();
  }
}
