import { Code, ServiceError } from "@svckit/endpoint";

// One decoder for the whole module: `fatal` makes invalid UTF-8 an error instead of U+FFFD, and the
// default `ignoreBOM: false` drops a leading byte order mark.
const utf8 = new TextDecoder("utf-8", { fatal: true });

const emptyMessage = "empty body: expected a JSON value";
const onlyJsonWhitespace = /^[ \t\n\r]*$/;
// The reason never contains a double quote, so an input excerpt (which V8 puts in "...") cannot match.
const v8Positioned = /^([^"]{1,200}?)(?: in JSON)? at position (\d{1,16})/;

/**
 * Parses JSON text, or UTF-8 bytes holding JSON text, into a value, exactly as `JSON.parse` does
 * (objects, arrays, strings, numbers, booleans and `null`; a `"__proto__"` key becomes an ordinary
 * own property and pollutes nothing). One leading byte order mark is ignored, as RFC 8259 allows.
 * Numbers beyond the double range become `Infinity` and long integers lose precision, as in
 * `JSON.parse`; validate with a schema if that matters.
 *
 * Bad input throws a {@link ServiceError} with {@link Code.INVALID_ARGUMENT} whose message says what
 * was wrong and where, quoting at most one character of the input:
 * - `"empty body: expected a JSON value"` for no input or only whitespace;
 * - `"body is not valid UTF-8: bad byte sequence at byte offset N"` for bytes that are not UTF-8;
 * - `"malformed JSON: <reason> at line L, column C"` otherwise (column in UTF-16 code units), with
 *   the engine's `SyntaxError` as `cause`.
 *
 * @param input - the JSON text, or its UTF-8 encoding (a `Uint8Array`, such as a Node.js `Buffer`).
 * @returns the parsed value.
 * @throws ServiceError INVALID_ARGUMENT when the input is empty, not UTF-8 or not JSON.
 *
 * @example
 * ```ts
 * parseJson('{"a":1}'); // { a: 1 }
 * parseJson(new TextEncoder().encode("[1,2]")); // [1, 2]
 * parseJson('{"a":'); // throws ServiceError INVALID_ARGUMENT
 * //   "malformed JSON: unexpected end of input at line 1, column 6"
 * ```
 */
export function parseJson(input: string | Uint8Array): unknown {
  if (typeof input === "string") {
    try {
      return JSON.parse(input);
    } catch (error) {
      return retryWithoutBom(input, error);
    }
  }
  const text = decodeUtf8(input);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw malformed(text, error);
  }
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch (error) {
    throw invalidUtf8(bytes, error);
  }
}

// Text that failed to parse gets one more try without a leading BOM (bytes lose theirs in the decoder).
function retryWithoutBom(text: string, error: unknown): unknown {
  if (text.charCodeAt(0) !== 0xfeff) throw malformed(text, error);
  const rest = text.slice(1);
  try {
    return JSON.parse(rest);
  } catch (retryError) {
    throw malformed(rest, retryError);
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
