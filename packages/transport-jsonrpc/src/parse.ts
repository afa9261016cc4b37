import { Code } from "@svckit/endpoint";
import { JsonRpcError, JsonRpcErrorCode } from "./json-rpc-error.js";

// `fatal`: invalid UTF-8 is an error, not U+FFFD; a leading byte order mark is dropped.
const utf8 = new TextDecoder("utf-8", { fatal: true });

const whitespaceOnly = /^[ \t\n\r]*$/;
// V8: "<Reason> [in JSON ]at position N[ (line L column C)]". The reason never holds a double quote,
// so the input excerpt some messages carry cannot leak into it.
const positioned = /^([^"]{1,200}?)(?: in JSON)? at position (\d{1,16})/;
// V8: "Unexpected token 'x', "<excerpt>" is not valid JSON".
const unexpectedToken = /^Unexpected token '([\s\S])/u;

function parseError(detail: string, cause?: unknown): JsonRpcError {
  return new JsonRpcError(
    JsonRpcErrorCode.PARSE_ERROR,
    Code.INVALID_ARGUMENT,
    `JSON could not be decoded: ${detail}`,
    { cause },
  );
}

/** `'x'` for printable ASCII, `U+XXXX` otherwise, so a message never carries odd characters. */
function describeChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  if (code > 0x20 && code < 0x7f) return `'${char}'`;
  return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Why `JSON.parse` rejected a text, in a few words and without quoting the input. */
function reasonOf(text: string, error: unknown): string {
  if (!(error instanceof SyntaxError)) return "input is too large or too deeply nested";
  const message = error.message;
  const found = positioned.exec(message);
  if (found !== null) {
    if (Number(found[2]) >= text.length) return "unexpected end of input";
    const reason = found[1] ?? "";
    return `${reason.charAt(0).toLowerCase()}${reason.slice(1)} at position ${found[2]}`;
  }
  if (message.startsWith("Unexpected end of JSON input")) return "unexpected end of input";
  const token = unexpectedToken.exec(message);
  if (token !== null) return `unexpected character ${describeChar(token[1] ?? "")}`;
  return "not a valid JSON text";
}

/**
 * Parses a request body (UTF-8 bytes) into a JSON value. Throws a {@link JsonRpcError} -32700 whose
 * message is `JSON could not be decoded: <reason>` for an empty body, bytes that are not UTF-8 and
 * text that is not JSON.
 */
export function parseBody(body: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch (error) {
    throw parseError("body is not valid UTF-8", error);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    if (whitespaceOnly.test(text)) throw parseError("empty body", error);
    throw parseError(reasonOf(text, error), error);
  }
}
