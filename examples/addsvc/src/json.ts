// The JSON form of requests and responses, shared by the HTTP and JSON-RPC transports. Requests are
// read the way Go's `encoding/json` fills go-kit's `SumRequest{A, B int}` and `ConcatRequest{A, B
// string}`: field names match case-insensitively (`"A"` and `"a"`; a later key wins over an earlier
// one), missing fields and `null` values are zero values, unknown fields are ignored. Unlike Go, an
// integer must be exactly representable as a JSON number in JavaScript (at most 2^53 - 1 in
// magnitude): over JSON a larger one would be silently rounded.
import { Code, ServiceError } from "@svckit/endpoint";
import type { ConcatRequest, ConcatResponse, SumRequest, SumResponse } from "./endpoints.js";

/** A plain JSON object. */
type JsonObject = Record<string, unknown>;

/** What is being decoded, for messages: `"request"` (an HTTP body) or `"params"` (JSON-RPC). */
export type JsonSubject = "request" | "params";

function invalid(subject: JsonSubject, message: string): ServiceError {
  return new ServiceError(Code.INVALID_ARGUMENT, `invalid ${subject}: ${message}`);
}

/** What a JSON value is, for messages: `a string`, `an array`, `1.5`. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return "a string";
    case "boolean":
      return "a boolean";
    case "number":
      return String(value);
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

function asObject(subject: JsonSubject, value: unknown): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(subject, `expected a JSON object, got ${value === undefined ? "none" : describe(value)}`);
  }
  return value as JsonObject;
}

/**
 * The values of the fields `a` and `b`, matched case-insensitively as Go does for the exported fields
 * `A` and `B` (the last matching key wins); `undefined` when absent.
 */
function fieldsAB(object: JsonObject): { a: unknown; b: unknown } {
  let a: unknown;
  let b: unknown;
  for (const key of Object.keys(object)) {
    if (key === "a" || key === "A") a = object[key];
    else if (key === "b" || key === "B") b = object[key];
  }
  return { a, b };
}

function integerField(subject: JsonSubject, name: string, value: unknown): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw invalid(subject, `${name}: expected an integer, got ${describe(value)}`);
  }
  if (!Number.isSafeInteger(value)) {
    throw invalid(
      subject,
      `${name}: ${value} is out of range: JSON integers must be between -9007199254740991 and 9007199254740991`,
    );
  }
  return BigInt(value);
}

// Lone UTF-16 surrogates (from "\ud800" escapes), which Go's decoder turns into U+FFFD.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function stringField(subject: JsonSubject, name: string, value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw invalid(subject, `${name}: expected a string, got ${describe(value)}`);
  return value.replace(LONE_SURROGATE, "\ufffd");
}

/**
 * A parsed JSON value → a {@link SumRequest}, Go's way (see the comment at the top). Anything else
 * throws `INVALID_ARGUMENT` saying what was wrong: `invalid request: a: expected an integer, got a
 * string` (`invalid params: ...` with `subject` `"params"`).
 *
 * @example
 * ```ts
 * sumRequestFromJson({ A: 1, B: 2 }); // { a: 1n, b: 2n }
 * sumRequestFromJson({ a: 7 }); // { a: 7n, b: 0n }
 * ```
 */
export function sumRequestFromJson(value: unknown, subject: JsonSubject = "request"): SumRequest {
  const { a, b } = fieldsAB(asObject(subject, value));
  return { a: integerField(subject, "a", a), b: integerField(subject, "b", b) };
}

/**
 * A parsed JSON value → a {@link ConcatRequest}, Go's way; lone surrogates become U+FFFD.
 *
 * @example
 * ```ts
 * concatRequestFromJson({ A: "ab", B: "cd" }); // { a: "ab", b: "cd" }
 * ```
 */
export function concatRequestFromJson(value: unknown, subject: JsonSubject = "request"): ConcatRequest {
  const { a, b } = fieldsAB(asObject(subject, value));
  return { a: stringField(subject, "a", a), b: stringField(subject, "b", b) };
}

/**
 * A {@link SumResponse} → `{ v: number }`. Over JSON the result always fits: the addends are at most
 * 2^53 - 1 in magnitude, and `sum` never returns a value larger in magnitude than both of them.
 */
export function sumResponseToJson(response: SumResponse): { v: number } {
  return { v: Number(response.v) };
}

/** A {@link ConcatResponse} → `{ v: string }`. */
export function concatResponseToJson(response: ConcatResponse): { v: string } {
  return { v: response.v };
}

/** A request's integer for a JSON body, refused when JSON cannot carry it exactly. */
function jsonInteger(name: string, value: bigint): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `${name}: ${value} cannot be sent exactly as a JSON number (at most 2^53 - 1 in magnitude); use gRPC`,
    );
  }
  return n;
}

/** A client's {@link SumRequest} → the JSON body `{"a":1,"b":2}`; values JSON cannot carry exactly throw. */
export function sumRequestToJson(request: SumRequest): { a: number; b: number } {
  return { a: jsonInteger("a", request.a), b: jsonInteger("b", request.b) };
}

/** A client's {@link ConcatRequest} → the JSON body `{"a":"ab","b":"cd"}`. */
export function concatRequestToJson(request: ConcatRequest): { a: string; b: string } {
  return { a: request.a, b: request.b };
}

/** A server's answer → a {@link SumResponse}; anything but `{"v": <integer>}` is `INTERNAL`. */
export function sumResponseFromJson(value: unknown): SumResponse {
  const v = typeof value === "object" && value !== null ? (value as JsonObject).v : undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw new ServiceError(Code.INTERNAL, `invalid response from server: expected {"v": <integer>}`);
  }
  return { v: BigInt(v) };
}

/** A server's answer → a {@link ConcatResponse}; anything but `{"v": <string>}` is `INTERNAL`. */
export function concatResponseFromJson(value: unknown): ConcatResponse {
  const v = typeof value === "object" && value !== null ? (value as JsonObject).v : undefined;
  if (typeof v !== "string") {
    throw new ServiceError(Code.INTERNAL, `invalid response from server: expected {"v": <string>}`);
  }
  return { v };
}
