import { createHash } from "node:crypto";

/**
 * What the key map keeps of each key's state. The limiters' key states extend it; the map links the
 * idle ones into its least-recently-used list through `prev`/`next`.
 */
export class KeyEntry {
  /** When the key was last used (epoch ms): its last call came, or its last call in progress ended. */
  lastUsed = 0;
  /**
   * Calls of the key in progress (running or waiting) that forgetting it would lose: see
   * {@link KeyMap.hold}. Only an entry with none is in the idle list and can be forgotten.
   */
  holds = 0;
  /** Whether a {@link KeyMap} holds the entry now, and under which key. */
  tracked = false;
  mapKey = "";
  /** Neighbours in the map's idle list (only while tracked and idle). */
  prev: KeyEntry | undefined = undefined;
  next: KeyEntry | undefined = undefined;

  busy(): boolean {
    return this.holds > 0;
  }
}

/** Keys longer than this are replaced by their SHA-256, so memory per key stays bounded. */
export const MAX_KEY_LENGTH = 200;

/** The key as stored: itself, or `sha256:<hex>` when longer than {@link MAX_KEY_LENGTH}. */
export function normalizeKey(key: string): string {
  if (typeof key !== "string") key = String(key);
  return key.length <= MAX_KEY_LENGTH ? key : `sha256:${createHash("sha256").update(key).digest("hex")}`;
}

/**
 * The per-key states of one limiter with bounded memory: at most `maxKeys` entries. Entries with calls
 * in progress (holds) are busy and never forgotten; idle entries sit in a doubly linked list in least
 * recently used order. A new key first drops the entries idle for `idleTimeout` ms, then, when still
 * full, the least recently used idle entry; only when every tracked entry is busy is the new key
 * refused. Every operation is O(1) (a sweep O(1) per entry it drops).
 */
export class KeyMap<E extends KeyEntry> {
  readonly #map = new Map<string, E>();
  readonly #maxKeys: number;
  readonly #idleTimeout: number;
  readonly #create: (key: string) => E;
  readonly #dispose: (entry: E, key: string) => void;
  /** The idle list: least recently used first. */
  #head: KeyEntry | undefined = undefined;
  #tail: KeyEntry | undefined = undefined;

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

  /** The entry of `key`, made if needed; `undefined` when every tracked entry is busy. */
  get(key: string, now: number): E | undefined {
    const map = this.#map;
    let entry = map.get(key);
    if (entry !== undefined) {
      entry.lastUsed = now;
      if (entry.holds === 0 && entry !== this.#tail) {
        this.#unlink(entry);
        this.#append(entry);
      }
      return entry;
    }
    this.sweep(now);
    if (map.size >= this.#maxKeys) {
      const oldest = this.#head;
      if (oldest === undefined) return undefined;
      this.#drop(oldest as E);
    }
    entry = this.#create(key);
    entry.lastUsed = now;
    entry.tracked = true;
    entry.mapKey = key;
    map.set(key, entry);
    if (entry.holds === 0) this.#append(entry);
    return entry;
  }

  /**
   * One more call of the entry in progress: while it has any, it is busy and cannot be forgotten.
   * Works on entries of no map too (a limiter's single state), and after the map forgot them.
   */
  hold(entry: E): void {
    if (entry.holds++ === 0 && entry.tracked) this.#unlink(entry);
  }

  /** A call of the entry ended; with none left it is idle, and counts as used now. */
  release(entry: E): void {
    if (--entry.holds === 0 && entry.tracked) {
      entry.lastUsed = Date.now();
      this.#append(entry);
    }
  }

  /** Forgets `key` if it still maps to `entry` and the entry is idle (e.g. a broken Redis limiter). */
  delete(key: string, entry: E): void {
    if (this.#map.get(key) === entry && entry.holds === 0) this.#drop(entry);
  }

  /** Drops every idle entry unused for `idleTimeout` ms; busy entries are not in the way. */
  sweep(now: number): void {
    const deadline = now - this.#idleTimeout;
    for (let entry = this.#head; entry !== undefined && entry.lastUsed <= deadline; entry = this.#head) {
      this.#drop(entry as E);
    }
  }

  /** Every entry, for `close()`. */
  values(): IterableIterator<E> {
    return this.#map.values();
  }

  /** Forgets every entry (disposing each). */
  clear(): void {
    for (const [key, entry] of this.#map) {
      entry.tracked = false;
      entry.prev = undefined;
      entry.next = undefined;
      this.#dispose(entry, key);
    }
    this.#map.clear();
    this.#head = undefined;
    this.#tail = undefined;
  }

  /** Forgets an idle entry. */
  #drop(entry: E): void {
    const key = entry.mapKey;
    this.#unlink(entry);
    this.#map.delete(key);
    entry.tracked = false;
    this.#dispose(entry, key);
  }

  #append(entry: KeyEntry): void {
    entry.prev = this.#tail;
    entry.next = undefined;
    if (this.#tail === undefined) this.#head = entry;
    else this.#tail.next = entry;
    this.#tail = entry;
  }

  #unlink(entry: KeyEntry): void {
    const { prev, next } = entry;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    entry.prev = undefined;
    entry.next = undefined;
  }
}
