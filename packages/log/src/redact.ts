/**
 * The field names redacted by default, matched case-insensitively and ignoring `-` and `_`
 * (so `Authorization`, `set_cookie`, `accessToken` and `X-API-Key` all match).
 */
export const defaultRedactKeys: readonly string[] = Object.freeze([
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "x-api-key",
  "api-key",
  "password",
  "token",
  "access_token",
  "refresh_token",
  "secret",
  "client_secret",
]);

/** Options of {@link createRedactor} and {@link redact}. */
export interface RedactOptions {
  /**
   * The field names whose values are replaced, at any depth (default {@link defaultRedactKeys}).
   * Replaces the defaults: extend them with `[...defaultRedactKeys, "ssn"]`.
   */
  keys?: readonly string[];
  /** What a redacted value becomes (default `"[REDACTED]"`). */
  censor?: string;
  /**
   * Also scrub credentials found inside any string: the credentials after `Bearer ` and `Basic `
   * and whole JWTs (default `true`). A lower-case scheme followed by a lower-case word ("missing
   * bearer token", "basic auth") is prose and left as it is.
   */
  scrubStrings?: boolean;
  /** Objects nested deeper than this become `"[Depth limit]"` (default 10). */
  maxDepth?: number;
  /**
   * At most this many object properties and array elements are copied in all; the rest is
   * dropped and marked with a `"…": "[Truncated]"` entry (default 1000). Bounds the work per line.
   */
  maxEntries?: number;
  /** Longer strings are cut to this many characters plus a marker (default 8192). */
  maxStringLength?: number;
}

/** Returns a redacted copy of a value; see {@link createRedactor}. */
export type Redactor = (value: unknown) => unknown;

const CREDENTIALS = /\b(bearer|basic)(\s+)([^\s,;"']+)/gi;
/** A lower-case word: with a lower-case scheme ("missing bearer token"), prose, not a credential. */
const LOWER_WORD = /^[a-z]+$/;
/**
 * A JWT, starting where a token starts: `\b` alone would let every `eyJ` inside a run such as
 * `eyJ-eyJ-…` start a scan to the run's end, quadratic in the string (17 ms for 8 KiB).
 */
const JWT = /(?<![\w-])eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*/g;
/**
 * A header line, `Name: value`, at the start of the string or of a line: a raw header block (the
 * `_header` of a `ClientRequest` that an HTTP library's error carries) or a single header.
 */
const HEADER_LINE = /^([\w-]{1,64})([ \t]*:[ \t]*)([^\r\n]+)/gm;
/** An auth scheme at the start of a header value (`Bearer `, `Token `), kept when the value is hidden. */
const AUTH_SCHEME = /^[A-Za-z][\w-]{0,19}[ \t]+(?=\S)/;
/** What both patterns above need somewhere in a string: one cheap test spares most strings both scans. */
const MAYBE_CREDENTIALS = /bearer|basic|eyJ/i;
const TRUNCATED_KEY = "…";
/** How many keys a redactor remembers the verdict of (keys repeat from line to line). */
const MAX_VERDICTS = 1024;

/** Lower-cases and drops `-` and `_`, so header, snake_case and camelCase spellings agree. */
function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, "");
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(value >= 0)) throw new RangeError(`createRedactor: ${name} must be a number ≥ 0, got ${value}`);
  return value;
}

/**
 * Compiles a redactor: a function returning a copy of any value in which the values of sensitive
 * fields are replaced, at any depth and inside arrays, credentials in strings are scrubbed, and
 * size is bounded. It never changes its input, survives cycles (`"[Circular]"`), getters that throw
 * (`"[Unreadable]"`) and `toJSON` methods; errors become `{ name, message, code?, stack?, cause? }`,
 * Maps objects, Sets arrays and binary data `"[N bytes]"`. Build it once and reuse it.
 *
 * @example
 * ```ts
 * const clean = createRedactor({ keys: [...defaultRedactKeys, "ssn"] });
 * clean({ user: "ada", headers: { Authorization: "Bearer abc" }, ssn: "123" });
 * // { user: "ada", headers: { Authorization: "[REDACTED]" }, ssn: "[REDACTED]" }
 * ```
 */
export function createRedactor(options: RedactOptions = {}): Redactor {
  const keys = new Set((options.keys ?? defaultRedactKeys).map(normalizeKey));
  const censor = options.censor ?? "[REDACTED]";
  const scrub = options.scrubStrings ?? true;
  const maxDepth = positive("maxDepth", options.maxDepth, 10);
  const maxEntries = positive("maxEntries", options.maxEntries, 1000);
  const maxStringLength = positive("maxStringLength", options.maxStringLength, 8192);
  // `Bearer abc…` and `authorization=bearer x1` are scrubbed; prose such as "missing bearer token" or
  // "basic auth" (a lower-case scheme followed by a lower-case word) is left as it is.
  const censorCredentials = (match: string, scheme: string, space: string, credential: string): string =>
    scheme === scheme.toLowerCase() && LOWER_WORD.test(credential) ? match : scheme + space + censor;

  /** Whether `key` is one of the sensitive keys, in any of its spellings. */
  const isSensitiveKey = (key: string): boolean => keys.has(key) || keys.has(normalizeKey(key));
  /** Whether each key seen so far is sensitive: normalizing a key costs more than the lookup. Bounded. */
  const verdicts = new Map<string, boolean>();
  const sensitive = (key: string): boolean => {
    let verdict = verdicts.get(key);
    if (verdict === undefined) {
      verdict = isSensitiveKey(key);
      if (verdicts.size < MAX_VERDICTS) verdicts.set(key, verdict);
    }
    return verdict;
  };

  /**
   * A sensitive header's value in a header line, keeping an auth scheme (`Bearer`, `Token`) as the
   * credential scrub does; the verdict is not cached (a line's "name" may be any word).
   */
  const censorHeaderLine = (match: string, name: string, separator: string, value: string): string => {
    if (!isSensitiveKey(name)) return match;
    const scheme = AUTH_SCHEME.exec(value);
    return name + separator + (scheme === null ? "" : scheme[0]) + censor;
  };

  function cleanString(s: string): string {
    if (s.length > maxStringLength) {
      s = `${s.slice(0, maxStringLength)}…[${s.length - maxStringLength} more characters]`;
    }
    if (scrub && s.length >= 8) {
      if (MAYBE_CREDENTIALS.test(s)) s = s.replace(CREDENTIALS, censorCredentials).replace(JWT, censor);
      if (s.includes(":")) s = s.replace(HEADER_LINE, censorHeaderLine);
    }
    return s;
  }

  return function redactor(input: unknown): unknown {
    /** Objects on the path from the root to the current one: a repeat is a cycle. */
    const ancestors = new Set<object>();
    let budget = maxEntries;

    function walk(value: unknown, depth: number): unknown {
      if (typeof value === "string") return cleanString(value);
      if (typeof value !== "object" || value === null) return value;
      if (ancestors.has(value)) return "[Circular]";
      if (depth >= maxDepth) return "[Depth limit]";
      if (value instanceof Date) return value;
      if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`;
      ancestors.add(value);
      try {
        if (Array.isArray(value)) return walkArray(value, depth);
        if (value instanceof Error) return walkError(value, depth);
        if (value instanceof Map) return walkEntries(value.entries(), depth);
        if (value instanceof Set) return walkArray([...value], depth);
        const toJSON = (value as { toJSON?: unknown }).toJSON;
        if (typeof toJSON === "function") return walk(toJSON.call(value), depth);
        return walkObject(value, depth);
      } catch {
        return "[Unreadable]";
      } finally {
        ancestors.delete(value);
      }
    }

    function walkArray(array: readonly unknown[], depth: number): unknown[] {
      const n = Math.min(array.length, budget);
      budget -= n;
      const out: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) {
        // The value after a sensitive name: header pairs (`[["cookie", "sid=1"]]`) and flat header
        // lists (`IncomingMessage.rawHeaders`: `["Cookie", "sid=1", "Host", "x"]`).
        const previous = i > 0 ? array[i - 1] : undefined;
        out[i] =
          typeof previous === "string" && previous.length <= 64 && sensitive(previous)
            ? censor
            : walk(array[i], depth + 1);
      }
      if (n < array.length) out.push("[Truncated]");
      return out;
    }

    function set(out: Record<string, unknown>, key: string, value: unknown, depth: number): void {
      let cleaned: unknown;
      if (sensitive(key)) cleaned = censor;
      else {
        try {
          cleaned = walk(value, depth + 1);
        } catch {
          cleaned = "[Unreadable]";
        }
      }
      // `out.__proto__ = x` would set the prototype instead of adding a key.
      if (key === "__proto__") {
        Object.defineProperty(out, key, {
          value: cleaned,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else out[key] = cleaned;
    }

    function walkObject(object: object, depth: number): Record<string, unknown> {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(object)) {
        if (budget <= 0) {
          out[TRUNCATED_KEY] = "[Truncated]";
          break;
        }
        budget--;
        let value: unknown;
        try {
          value = (object as Record<string, unknown>)[key];
        } catch {
          value = "[Unreadable]";
        }
        set(out, key, value, depth);
      }
      return out;
    }

    function walkEntries(entries: Iterable<[unknown, unknown]>, depth: number): Record<string, unknown> {
      const out: Record<string, unknown> = {};
      for (const [key, value] of entries) {
        if (budget <= 0) {
          out[TRUNCATED_KEY] = "[Truncated]";
          break;
        }
        budget--;
        set(out, String(key), value, depth);
      }
      return out;
    }

    function walkError(error: Error, depth: number): Record<string, unknown> {
      const out: Record<string, unknown> = {};
      set(out, "name", error.name, depth);
      set(out, "message", error.message, depth);
      const code = (error as { code?: unknown }).code;
      if (code !== undefined) set(out, "code", code, depth);
      if (typeof error.stack === "string") set(out, "stack", error.stack, depth);
      for (const key of Object.keys(error)) {
        if (Object.hasOwn(out, key)) continue;
        if (budget <= 0) {
          out[TRUNCATED_KEY] = "[Truncated]";
          break;
        }
        budget--;
        set(out, key, (error as unknown as Record<string, unknown>)[key], depth);
      }
      if (error.cause !== undefined && !Object.hasOwn(out, "cause")) set(out, "cause", error.cause, depth);
      return out;
    }

    return walk(input, 0);
  };
}

let defaultRedactor: Redactor | undefined;

/**
 * Returns a redacted copy of `value` (see {@link createRedactor} for what is redacted). Without
 * options it reuses one default redactor; with options it compiles one per call, so prefer
 * {@link createRedactor} on hot paths.
 *
 * @example
 * ```ts
 * redact({ headers: { authorization: "Bearer abc", accept: "*\/*" } });
 * // { headers: { authorization: "[REDACTED]", accept: "*\/*" } }
 * ```
 */
export function redact(value: unknown, options?: RedactOptions): unknown {
  if (options !== undefined) return createRedactor(options)(value);
  defaultRedactor ??= createRedactor();
  return defaultRedactor(value);
}
