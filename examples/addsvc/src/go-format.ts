// Go's ways of reading and printing values, so addcli prints what go-kit's addcli prints.

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * A decimal 64-bit integer, as Go's `strconv.ParseInt(s, 10, 64)` takes it; throws an `Error` naming
 * the string otherwise.
 *
 * @example
 * ```ts
 * parseInt64("-5"); // -5n
 * ```
 */
export function parseInt64(s: string): bigint {
  if (!/^[+-]?\d{1,20}$/.test(s)) throw new Error(`invalid integer "${s}"`);
  const n = BigInt(s);
  if (n < INT64_MIN || n > INT64_MAX) throw new Error(`integer "${s}" is out of the 64-bit range`);
  return n;
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const ESCAPES: Readonly<Record<string, string>> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\v": "\\v",
  '"': '\\"',
  "\\": "\\\\",
};

/**
 * `s` quoted as Go's `%q` (`strconv.Quote`) does: printable characters as they are (letters, marks,
 * numbers, punctuation, symbols and the ASCII space); the quote, the backslash and the C escapes
 * backslash-escaped; other characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
 *
 * @example
 * ```ts
 * goQuote("abcd"); // '"abcd"'
 * goQuote("a\tb"); // '"a\\tb"'
 * ```
 */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const escaped = ESCAPES[ch];
    if (escaped !== undefined) {
      out += escaped;
      continue;
    }
    if (PRINTABLE.test(ch)) {
      out += ch;
      continue;
    }
    const cp = ch.codePointAt(0) as number;
    // A lone surrogate cannot be in a Go string: it would be the replacement character there.
    if (cp >= 0xd800 && cp <= 0xdfff) out += "\ufffd";
    else if (cp < 0x80) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else if (cp <= 0xffff) out += `\\u${cp.toString(16).padStart(4, "0")}`;
    else out += `\\U${cp.toString(16).padStart(8, "0")}`;
  }
  return `${out}"`;
}
