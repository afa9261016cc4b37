import { Code, ServiceError } from "@svckit/endpoint";

// One decoder for the whole module: `fatal` makes invalid UTF-8 an error instead of U+FFFD, and the
// default `ignoreBOM: false` drops a leading byte order mark.
const utf8 = new TextDecoder("utf-8", { fatal: true });

const emptyMessage = "empty body: expected a JSON value";
const onlyJsonWhitespace = /^[ \t\n\r]*$/;
// The reason never contains a double quote, so an input excerpt (which V8 puts in "...") cannot match.
const v8Positioned = /^([^"]{1,200}?)(?: in JSON)? at position (\d{1,16})/;

/** The default of {@link ParseJsonOptions.maxDepth}. */
const defaultMaxDepth = 1000;

/**
 * Options of {@link parseJson}.
 *
 * @example
 * ```ts
 * const options: ParseJsonOptions = { maxDepth: 64 };
 * parseJson('{"a":[1]}', options); // { a: [1] }
 * ```
 */
export interface ParseJsonOptions {
  /**
   * The most arrays and objects a value may have nested inside each other (`[]` is 1 level, `[[]]` 2);
   * a deeper value is refused with INVALID_ARGUMENT. 1000 by default: deep enough for any sensible
   * document, shallow enough that encoding the value again (`JSON.stringify` recurses), or a
   * recursive schema, does not overflow the stack. `Infinity` turns the check off.
   */
  maxDepth?: number;
}

/**
 * Parses JSON text, or UTF-8 bytes holding JSON text, into a value, exactly as `JSON.parse` does
 * (objects, arrays, strings, numbers, booleans and `null`; a `"__proto__"` key becomes an ordinary
 * own property and pollutes nothing; of duplicate keys the last one wins). One leading byte order
 * mark is ignored, as RFC 8259 allows. Numbers beyond the double range become `Infinity` and long
 * integers lose precision, as in `JSON.parse`; validate with a schema if that matters. A value nested
 * more than `maxDepth` (default 1000) arrays and objects deep is refused.
 *
 * Bad input throws a {@link ServiceError} whose message says what was wrong and where, quoting at
 * most one character of the input:
 * - `"empty body: expected a JSON value"` for no input or only whitespace;
 * - `"body is not valid UTF-8: bad byte sequence at byte offset N"` for bytes that are not UTF-8;
 * - `"malformed JSON: <reason> at line L, column C"` otherwise (column in UTF-16 code units), with
 *   the engine's `SyntaxError` as `cause`;
 * - `"JSON nested too deeply (more than N levels) at line L, column C"` for a value deeper than
 *   `maxDepth`, at the bracket that goes one level too deep;
 *
 * all with {@link Code.INVALID_ARGUMENT}; and, with {@link Code.RESOURCE_EXHAUSTED},
 * `"body too large to decode: N bytes of UTF-8 ..."` for bytes that are valid but make a longer
 * string than the JavaScript engine allows (about 512 MiB in V8).
 *
 * @param input - the JSON text, or its UTF-8 encoding (a `Uint8Array`, such as a Node.js `Buffer`).
 * @param options - optional `maxDepth`.
 * @returns the parsed value.
 * @throws ServiceError INVALID_ARGUMENT when the input is empty, not UTF-8, not JSON or too deep;
 *   RESOURCE_EXHAUSTED when the bytes are too many to decode into one string.
 * @throws TypeError when `input` is neither a string nor a `Uint8Array` (e.g. a body some middleware
 *   already parsed: that is a programming error, not the client's), or `maxDepth` is not a positive
 *   integer or `Infinity`.
 *
 * @example
 * ```ts
 * parseJson('{"a":1}'); // { a: 1 }
 * parseJson(new TextEncoder().encode("[1,2]")); // [1, 2]
 * parseJson('{"a":'); // throws ServiceError INVALID_ARGUMENT
 * //   "malformed JSON: unexpected end of input at line 1, column 6"
 * parseJson("[[[1]]]", { maxDepth: 2 }); // throws ServiceError INVALID_ARGUMENT
 * //   "JSON nested too deeply (more than 2 levels) at line 1, column 3"
 * ```
 */
export function parseJson(input: string | Uint8Array, options?: ParseJsonOptions): unknown {
  const maxDepth = options?.maxDepth;
  return parseJsonWith(input, maxDepth === undefined ? defaultMaxDepth : checkMaxDepth(maxDepth));
}

/**
 * Checks a `maxDepth` option once (at setup in a decoder) and returns it.
 *
 * @internal
 */
export function checkMaxDepth(maxDepth: number | undefined): number {
  if (maxDepth === undefined) return defaultMaxDepth;
  if (maxDepth === Number.POSITIVE_INFINITY || (Number.isSafeInteger(maxDepth) && maxDepth >= 1)) {
    return maxDepth;
  }
  throw new TypeError(`maxDepth must be a positive integer or Infinity, got ${String(maxDepth)}`);
}

/**
 * {@link parseJson} with an already checked `maxDepth`.
 *
 * @internal
 */
export function parseJsonWith(input: string | Uint8Array, maxDepth: number): unknown {
  let text: string;
  let value: unknown;
  if (typeof input === "string") {
    text = input;
    try {
      value = JSON.parse(text);
    } catch (error) {
      // Text that failed to parse gets one more try without a leading BOM (bytes lose theirs in the
      // decoder).
      if (text.charCodeAt(0) !== 0xfeff) throw malformed(text, error);
      text = text.slice(1);
      try {
        value = JSON.parse(text);
      } catch (retryError) {
        throw malformed(text, retryError);
      }
    }
  } else if (input instanceof Uint8Array || isForeignUint8Array(input) || isOtherBytes(input)) {
    text = decodeUtf8(asBytes(input));
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw malformed(text, error);
    }
  } else {
    throw notABody(input);
  }
  // A value nested d levels deep takes at least 2d characters, so short texts need no check.
  if (text.length > 2 * maxDepth + 1 && typeof value === "object" && value !== null) {
    const at = tooDeepAt(text, value, maxDepth);
    if (at >= 0) {
      const message = `JSON nested too deeply (more than ${maxDepth} levels) at ${lineAndColumn(text, at)}`;
      throw new ServiceError(Code.INVALID_ARGUMENT, message);
    }
  }
  return value;
}

/** A `Uint8Array` from another realm (a `vm` context, a worker's transfer), which `instanceof` misses. */
function isForeignUint8Array(input: unknown): input is Uint8Array {
  return ArrayBuffer.isView(input) && Object.prototype.toString.call(input) === "[object Uint8Array]";
}

/** An `ArrayBuffer` or a view other than `Uint8Array` (`DataView`, `Int8Array`, ...): bytes too. */
function isOtherBytes(input: unknown): input is ArrayBuffer | ArrayBufferView {
  return input instanceof ArrayBuffer || ArrayBuffer.isView(input);
}

function asBytes(input: Uint8Array | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
}

/**
 * Checks that arrays and objects nest in an already parsed JSON `value` at most `maxDepth` levels (default
 * 1000, as {@link parseJson}), for a body some framework parsed (`express.json()`), which `parseJson`
 * never saw. It walks the value at most `maxDepth` levels down.
 *
 * @throws ServiceError INVALID_ARGUMENT `"JSON nested too deeply (more than N levels)"`.
 * @throws TypeError when `maxDepth` is not a positive integer or `Infinity`.
 *
 * @example
 * ```ts
 * checkJsonDepth(req.body, 64); // throws ServiceError INVALID_ARGUMENT when deeper
 * ```
 */
export function checkJsonDepth(value: unknown, maxDepth?: number): void {
  const levels = checkMaxDepth(maxDepth);
  if (levels === Number.POSITIVE_INFINITY || typeof value !== "object" || value === null) return;
  let deep: boolean;
  try {
    deep = deeperThan(value, levels);
  } catch (error) {
    // A walk deeper than the stack allows is deeper than any limit that fits it.
    if (!(error instanceof RangeError)) throw error;
    deep = true;
  }
  if (deep)
    throw new ServiceError(Code.INVALID_ARGUMENT, `JSON nested too deeply (more than ${levels} levels)`);
}

function notABody(input: unknown): TypeError {
  let got: string;
  if (input === null) got = "null";
  else if (Array.isArray(input)) got = "an array";
  else if (typeof input === "object") {
    const name: unknown = (input as { constructor?: { name?: unknown } }).constructor?.name;
    got = typeof name === "string" && name !== "Object" && name !== "" ? `a ${name}` : "an object";
  } else got = typeof input === "undefined" ? "undefined" : `a ${typeof input}`;
  const hint =
    typeof input === "object" && input !== null && !ArrayBuffer.isView(input)
      ? " (a body that a middleware already parsed? pass the raw body, or validate() the value instead)"
      : "";
  return new TypeError(`parseJson expects the body as a string or a Uint8Array, got ${got}${hint}`);
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch (error) {
    // A fatal decoder reports bad bytes with a TypeError (WHATWG Encoding). Anything else is the
    // engine refusing to make the string: Node.js throws ERR_STRING_TOO_LONG past 2^29 - 24 UTF-16
    // units, other engines a RangeError.
    if (error instanceof TypeError) throw invalidUtf8(bytes, error);
    if (error instanceof RangeError || (error as { code?: unknown } | null)?.code === "ERR_STRING_TOO_LONG") {
      const message = `body too large to decode: ${bytes.length} bytes of UTF-8 make a longer string than the JavaScript engine allows`;
      throw new ServiceError(Code.RESOURCE_EXHAUSTED, message, { cause: error });
    }
    throw error;
  }
}

function malformed(text: string, error: unknown): ServiceError {
  if (onlyJsonWhitespace.test(text)) return new ServiceError(Code.INVALID_ARGUMENT, emptyMessage);
  if (!(error instanceof SyntaxError)) {
    // JSON.parse throws nothing but SyntaxError for bad text; a RangeError means the engine gave up.
    const message = "malformed JSON: input is too large or too deeply nested";
    return new ServiceError(Code.INVALID_ARGUMENT, message, { cause: error });
  }
  // V8 says "<Reason> [in JSON ]at position N[ (line L column C)]" for most errors, "Unexpected end of
  // JSON input", or "Unexpected token 'x', "<excerpt>" is not valid JSON" without a position. Other
  // engines word it differently. Only V8's reason text and position are kept; where there is no
  // position, a small scanner finds the first character that cannot continue a JSON text.
  const found = v8Positioned.exec(error.message);
  let reason: string;
  let position: number;
  if (found !== null && Number(found[2]) <= text.length) {
    reason = lowerFirst(found[1] ?? "");
    position = Number(found[2]);
  } else {
    position = findSyntaxError(text);
    if (position < 0) {
      return new ServiceError(Code.INVALID_ARGUMENT, "malformed JSON: not a valid JSON text", {
        cause: error,
      });
    }
    reason =
      position >= text.length
        ? "unexpected end of input"
        : `unexpected character ${describeChar(text, position)}`;
  }
  const message = `malformed JSON: ${reason} at ${lineAndColumn(text, position)}`;
  return new ServiceError(Code.INVALID_ARGUMENT, message, { cause: error });
}

function invalidUtf8(bytes: Uint8Array, error: unknown): ServiceError {
  const offset = findInvalidUtf8(bytes);
  const message =
    offset < 0
      ? "body is not valid UTF-8"
      : `body is not valid UTF-8: bad byte sequence at byte offset ${offset}`;
  return new ServiceError(Code.INVALID_ARGUMENT, message, { cause: error });
}

// ---------------------------------------------------------------------------------------------------
// Depth check. Measured on a typical 100 KB body it adds ~10-15% to JSON.parse (a 1 KB body: nothing),
// because it looks at the text or the value only as far as it must:
// 1. a value deeper than maxDepth has more than maxDepth opening brackets: count them with indexOf
//    (native, stops as soon as there are enough);
// 2. walk the parsed value, at most maxDepth levels down (a scan of the text costs 3-4x more);
// 3. only when the walk finds it too deep, scan the text for the position to report.

/** Offset of the opening bracket that goes deeper than `maxDepth` in valid JSON `text`, or -1. */
function tooDeepAt(text: string, value: object, maxDepth: number): number {
  let openings = 0;
  for (let i = text.indexOf("["); i >= 0 && openings <= maxDepth; i = text.indexOf("[", i + 1)) openings++;
  for (let i = text.indexOf("{"); i >= 0 && openings <= maxDepth; i = text.indexOf("{", i + 1)) openings++;
  if (openings <= maxDepth) return -1;
  let deep: boolean;
  try {
    deep = deeperThan(value, maxDepth);
  } catch (error) {
    // A maxDepth so large that the walk overflows the stack: the text scan below is iterative.
    if (!(error instanceof RangeError)) throw error;
    deep = true;
  }
  // The text decides: it is what the position refers to, and it cannot be fooled by an enumerable
  // property someone added to Object.prototype, which the walk's for-in would visit.
  return deep ? findTooDeep(text, maxDepth) : -1;
}

/** Whether arrays and objects nest in `container` (counting itself) more than `levels` deep. */
function deeperThan(container: object, levels: number): boolean {
  if (levels === 0) return true;
  if (Array.isArray(container)) {
    for (let i = 0; i < container.length; i++) {
      const item: unknown = container[i];
      if (typeof item === "object" && item !== null && deeperThan(item, levels - 1)) return true;
    }
  } else {
    const record = container as Record<string, unknown>;
    for (const key in record) {
      const item = record[key];
      if (typeof item === "object" && item !== null && deeperThan(item, levels - 1)) return true;
    }
  }
  return false;
}

/** Offset of the first `[` or `{` that opens level `maxDepth + 1` in valid JSON `text`, or -1. */
function findTooDeep(text: string, maxDepth: number): number {
  const n = text.length;
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Skip the string; the text is valid JSON, so it ends.
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x22) break;
        if (d === 0x5c /* \ */) i++;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) return i;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return -1;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** `'x'` for printable ASCII, `U+XXXX` for anything else (so the message never carries odd text). */
function describeChar(text: string, position: number): string {
  const code = text.codePointAt(position) ?? 0;
  if (code > 0x20 && code < 0x7f) return `'${String.fromCharCode(code)}'`;
  return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** 1-based line and column of a UTF-16 offset; `\n`, `\r\n` and a lone `\r` each end a line. */
function lineAndColumn(text: string, position: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < position; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) !== 0x0a)) {
      line++;
      lineStart = i + 1;
    }
  }
  return `line ${line}, column ${position - lineStart + 1}`;
}

// ---------------------------------------------------------------------------------------------------
// Error-path scanners. They run only after the engine has rejected the input, to say where.

const inArray = 0;
const inObject = 1;

/**
 * Offset of the first character at which `text` stops being a prefix of some JSON text
 * (`text.length` when it is a truncated JSON text), or -1 when `text` is valid JSON.
 * Iterative, so any nesting depth is fine.
 */
function findSyntaxError(text: string): number {
  const n = text.length;
  const stack: (typeof inArray | typeof inObject)[] = [];
  let i = 0;
  for (;;) {
    // A value is expected at i.
    i = skipWhitespace(text, i);
    if (i >= n) return n;
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      i = skipWhitespace(text, i + 1);
      if (text.charCodeAt(i) === 0x7d /* } */) {
        i++;
      } else {
        stack.push(inObject);
        i = scanKeyAndColon(text, i);
        if (i < 0) return ~i;
        continue;
      }
    } else if (c === 0x5b /* [ */) {
      i = skipWhitespace(text, i + 1);
      if (text.charCodeAt(i) === 0x5d /* ] */) {
        i++;
      } else {
        stack.push(inArray);
        continue;
      }
    } else {
      i = scanScalar(text, i);
      if (i < 0) return ~i;
    }
    // A value ended at i: close containers or move to the next element.
    for (;;) {
      i = skipWhitespace(text, i);
      const top = stack.at(-1);
      if (top === undefined) return i < n ? i : -1;
      if (i >= n) return n;
      const d = text.charCodeAt(i);
      if (d === 0x2c /* , */) {
        i++;
        if (top === inObject) {
          i = scanKeyAndColon(text, skipWhitespace(text, i));
          if (i < 0) return ~i;
        }
        break;
      }
      if (d === (top === inObject ? 0x7d /* } */ : 0x5d) /* ] */) {
        stack.pop();
        i++;
        continue;
      }
      return i;
    }
  }
}

function skipWhitespace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return i;
    i++;
  }
}

// The scanners below return the offset after what they read, or ~offset (negative) of an error.

function scanKeyAndColon(text: string, i: number): number {
  if (i >= text.length) return ~text.length;
  if (text.charCodeAt(i) !== 0x22 /* " */) return ~i;
  i = scanString(text, i);
  if (i < 0) return i;
  i = skipWhitespace(text, i);
  if (i >= text.length) return ~text.length;
  return text.charCodeAt(i) === 0x3a /* : */ ? i + 1 : ~i;
}

function scanScalar(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22 /* " */) return scanString(text, i);
  if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) return scanNumber(text, i);
  if (c === 0x74 /* t */) return scanLiteral(text, i, "true");
  if (c === 0x66 /* f */) return scanLiteral(text, i, "false");
  if (c === 0x6e /* n */) return scanLiteral(text, i, "null");
  return ~i;
}

function scanLiteral(text: string, i: number, literal: string): number {
  for (let k = 0; k < literal.length; k++, i++) {
    if (i >= text.length) return ~text.length;
    if (text.charCodeAt(i) !== literal.charCodeAt(k)) return ~i;
  }
  return i;
}

function scanString(text: string, i: number): number {
  const n = text.length;
  for (i++; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) return i + 1;
    if (c < 0x20) return ~i;
    if (c === 0x5c /* \ */) {
      i++;
      if (i >= n) return ~n;
      const e = text.charCodeAt(i);
      if (e === 0x75 /* u */) {
        for (let k = 0; k < 4; k++) {
          i++;
          if (i >= n) return ~n;
          if (!isHexDigit(text.charCodeAt(i))) return ~i;
        }
      } else if (!isSimpleEscape(e)) {
        return ~i;
      }
    }
  }
  return ~n;
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function isSimpleEscape(c: number): boolean {
  // " \ / b f n r t
  return (
    c === 0x22 ||
    c === 0x5c ||
    c === 0x2f ||
    c === 0x62 ||
    c === 0x66 ||
    c === 0x6e ||
    c === 0x72 ||
    c === 0x74
  );
}

function scanNumber(text: string, i: number): number {
  const n = text.length;
  if (text.charCodeAt(i) === 0x2d /* - */) i++;
  if (i >= n) return ~n;
  if (text.charCodeAt(i) === 0x30 /* 0 */) {
    i++;
  } else {
    i = scanDigits(text, i);
    if (i < 0) return i;
  }
  if (text.charCodeAt(i) === 0x2e /* . */) {
    i = scanDigits(text, i + 1);
    if (i < 0) return i;
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 /* e */ || e === 0x45 /* E */) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b /* + */ || sign === 0x2d /* - */) i++;
    i = scanDigits(text, i);
  }
  return i;
}

/** One or more digits. */
function scanDigits(text: string, i: number): number {
  if (i >= text.length) return ~text.length;
  const start = i;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    i++;
  }
  return i === start ? ~i : i;
}

/**
 * Offset of the first byte that starts an ill-formed UTF-8 sequence (per the WHATWG decoder: no
 * overlong forms, surrogates or code points above U+10FFFF; a sequence cut short counts from its
 * first byte), or -1 when all bytes are well-formed.
 */
function findInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const start = i;
    const lead = bytes[i++] ?? 0;
    if (lead < 0x80) continue;
    let needed: number;
    let lower = 0x80;
    let upper = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
      needed = 1;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      needed = 2;
      if (lead === 0xe0) lower = 0xa0;
      if (lead === 0xed) upper = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      needed = 3;
      if (lead === 0xf0) lower = 0x90;
      if (lead === 0xf4) upper = 0x8f;
    } else {
      return start;
    }
    for (; needed > 0; needed--) {
      const b = bytes[i++];
      if (b === undefined || b < lower || b > upper) return start;
      lower = 0x80;
      upper = 0xbf;
    }
  }
  return -1;
}
