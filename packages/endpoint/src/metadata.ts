/** What a metadata entry may hold: one value, or several for a repeated key. */
export type MetadataValue = string | readonly string[];

/**
 * Anything metadata can be built from: another {@link Metadata}, a record of values (e.g. Node's
 * `IncomingHttpHeaders`; `undefined` values are skipped), or `[key, value]` pairs (e.g. a `Headers`).
 */
export type MetadataInit =
  | Metadata
  | Readonly<Record<string, MetadataValue | undefined>>
  | Iterable<readonly [string, string]>;

/**
 * Read-only request metadata: HTTP headers or gRPC metadata. Keys are case-insensitive (stored
 * lower-cased). A key may hold several values; `get` returns the first, `getAll` every one.
 * Binary gRPC metadata (keys ending in `-bin`) is held as its base64 text, as on the wire.
 *
 * @example
 * ```ts
 * const md = createMetadata({ "X-Request-Id": "abc" });
 * md.get("x-request-id"); // "abc"
 * ```
 */
export interface Metadata extends Iterable<[string, string]> {
  /** The first value of `key`, or `undefined`. */
  get(key: string): string | undefined;
  /** Every value of `key`, in order; empty when absent. */
  getAll(key: string): string[];
  /** Whether `key` is present. */
  has(key: string): boolean;
  /** The distinct keys, lower-cased. */
  keys(): IterableIterator<string>;
  /** The number of distinct keys. */
  readonly size: number;
  /** A plain object copy: one string, or an array for a repeated key. */
  toRecord(): Record<string, string | string[]>;
}

type Entries = Readonly<Record<string, MetadataValue | undefined>>;

/**
 * Metadata over a record whose keys are already lower-case. The record is not copied: this is
 * what transports use to wrap `IncomingMessage.headers` at no cost.
 */
class RecordMetadata implements Metadata {
  readonly #entries: Entries;
  #size = -1;

  constructor(entries: Entries) {
    this.#entries = entries;
  }

  #raw(key: string): MetadataValue | undefined {
    const entries = this.#entries;
    if (Object.hasOwn(entries, key)) return entries[key];
    const lower = key.toLowerCase();
    return lower !== key && Object.hasOwn(entries, lower) ? entries[lower] : undefined;
  }

  get(key: string): string | undefined {
    const v = this.#raw(key);
    return typeof v === "string" || v === undefined ? v : v[0];
  }

  getAll(key: string): string[] {
    const v = this.#raw(key);
    if (v === undefined) return [];
    return typeof v === "string" ? [v] : [...v];
  }

  has(key: string): boolean {
    return this.#raw(key) !== undefined;
  }

  *keys(): IterableIterator<string> {
    const entries = this.#entries;
    for (const key in entries) {
      if (Object.hasOwn(entries, key) && entries[key] !== undefined) yield key;
    }
  }

  get size(): number {
    if (this.#size < 0) {
      let n = 0;
      for (const _ of this.keys()) n++;
      this.#size = n;
    }
    return this.#size;
  }

  *[Symbol.iterator](): IterableIterator<[string, string]> {
    const entries = this.#entries;
    for (const key of this.keys()) {
      const v = entries[key];
      if (typeof v === "string") yield [key, v];
      else if (v !== undefined) for (const one of v) yield [key, one];
    }
  }

  toRecord(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    const entries = this.#entries;
    for (const key of this.keys()) {
      const v = entries[key] as MetadataValue;
      const copy = typeof v === "string" ? v : [...v];
      // `out.__proto__ = x` would set the prototype instead of adding a key.
      if (key === "__proto__")
        Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true });
      else out[key] = copy;
    }
    return out;
  }
}

/** Metadata with no entries. */
export const emptyMetadata: Metadata = new RecordMetadata(Object.freeze({}));

/**
 * Structural, so a transport's own {@link Metadata} view (e.g. over gRPC metadata) is used as it is,
 * without a copy. A web `Headers` has no `getAll`/`toRecord` and is copied as pairs.
 */
function isMetadata(init: MetadataInit): init is Metadata {
  if (init instanceof RecordMetadata) return true;
  const m = init as Partial<Record<keyof Metadata, unknown>>;
  return (
    typeof m.get === "function" &&
    typeof m.getAll === "function" &&
    typeof m.has === "function" &&
    typeof m.toRecord === "function"
  );
}

function isIterable(init: MetadataInit): init is Iterable<readonly [string, string]> {
  return typeof (init as Partial<Iterable<unknown>>)[Symbol.iterator] === "function";
}

function add(out: Record<string, MetadataValue>, key: string, value: string): void {
  const prev = out[key];
  if (prev === undefined) out[key] = value;
  else out[key] = typeof prev === "string" ? [prev, value] : [...prev, value];
}

function collect(out: Record<string, MetadataValue>, init: MetadataInit, override: boolean): void {
  // With `override`, the first time a key of `init` is met it drops that key's earlier values; the
  // key's later values in `init` (a repeated key, or "X-A" and "x-a" in one record) are all kept.
  const seen = override ? new Set<string>() : undefined;
  if (isMetadata(init) || isIterable(init)) {
    for (const [rawKey, value] of init) {
      const key = rawKey.toLowerCase();
      if (seen && !seen.has(key)) {
        seen.add(key);
        delete out[key];
      }
      add(out, key, String(value));
    }
    return;
  }
  for (const rawKey of Object.keys(init)) {
    const v = init[rawKey];
    if (v === undefined) continue;
    const key = rawKey.toLowerCase();
    if (seen && !seen.has(key)) {
      seen.add(key);
      delete out[key];
    }
    if (typeof v === "string") add(out, key, v);
    else for (const one of v) add(out, key, String(one));
  }
}

/**
 * Builds metadata from headers, a record or pairs; keys are lower-cased, repeated keys keep every value.
 *
 * @example
 * ```ts
 * createMetadata([["Accept", "a"], ["accept", "b"]]).getAll("accept"); // ["a", "b"]
 * ```
 */
export function createMetadata(init?: MetadataInit): Metadata {
  if (init === undefined) return emptyMetadata;
  if (isMetadata(init)) return init;
  const out: Record<string, MetadataValue> = Object.create(null);
  collect(out, init, false);
  return new RecordMetadata(out);
}

/**
 * Wraps a record whose keys are already lower-case without copying it, e.g. Node's
 * `IncomingMessage.headers`. The caller must not change the record afterwards.
 *
 * @example
 * ```ts
 * const md = metadataFromLowerCaseRecord(req.headers);
 * ```
 */
export function metadataFromLowerCaseRecord(
  record: Readonly<Record<string, MetadataValue | undefined>>,
): Metadata {
  return new RecordMetadata(record);
}

/** Credential headers of which Node keeps only the first in `IncomingMessage.headers`. */
const FOLDED_CREDENTIALS = ["authorization", "proxy-authorization"] as const;

/**
 * Metadata of a Node HTTP request's headers: {@link metadataFromLowerCaseRecord} of `headers`, except
 * that every value of a credential header sent more than once (`authorization`,
 * `proxy-authorization`, whose repeats Node drops from `headers`) is kept, from `rawHeaders`, so that
 * an authenticator sees the ambiguity and refuses it instead of trusting the first.
 *
 * @example
 * ```ts
 * const md = metadataFromNodeHeaders(req.headers, req.rawHeaders);
 * ```
 */
export function metadataFromNodeHeaders(
  headers: Readonly<Record<string, MetadataValue | undefined>>,
  rawHeaders: readonly string[],
): Metadata {
  let copy: Record<string, MetadataValue | undefined> | undefined;
  for (const name of FOLDED_CREDENTIALS) {
    if (headers[name] === undefined) continue;
    let values: string[] | undefined;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const raw = rawHeaders[i] as string;
      if (raw.length !== name.length || raw.toLowerCase() !== name) continue;
      if (values === undefined) values = [];
      values.push(rawHeaders[i + 1] as string);
    }
    if (values !== undefined && values.length > 1) {
      copy ??= { ...headers };
      copy[name] = values;
    }
  }
  return new RecordMetadata(copy ?? headers);
}

/**
 * Returns new metadata holding `base` with `extra` on top: a key present in `extra` replaces all of
 * that key's values in `base`.
 *
 * @example
 * ```ts
 * mergeMetadata(createMetadata({ a: "1", b: "2" }), { b: "3" }).toRecord(); // { a: "1", b: "3" }
 * ```
 */
export function mergeMetadata(base: Metadata, extra: MetadataInit): Metadata {
  const out: Record<string, MetadataValue> = Object.create(null);
  collect(out, base, false);
  collect(out, extra, true);
  return new RecordMetadata(out);
}
