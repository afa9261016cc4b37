import { Code, ServiceError } from "@svckit/endpoint";
import type protobuf from "protobufjs";
import protojson from "protobufjs/ext/protojson.js";
import { endGroupProblem, FieldError, planOf, recursionLimit, WireTypeError } from "./compile.js";
import { bigintReader, describe } from "./int64.js";
import { checkAnyOutput, checkJsonInput, JsonError, negativeZeroIn, negativeZeroOut } from "./json-checks.js";

/**
 * A message type from a `.proto` schema: encodes plain JS objects to protobuf bytes and decodes
 * them back, with the JS representation described in the package README (64-bit integers as
 * `bigint`, enums as numbers, bytes as `Uint8Array`, defaults filled in on decode). Get one from
 * {@link ProtoRoot.messageType}.
 *
 * All methods are bound, so they can be passed around as plain functions
 * (`createServer(endpoint, SumRequest.decode, SumReply.encode)`). Every failure is a
 * `ServiceError` with `INVALID_ARGUMENT`; a server that encodes a bad response may remap it to
 * `INTERNAL`.
 *
 * @typeParam T - the message's JS shape; an assertion, not checked at compile time against the schema.
 *
 * @example
 * ```ts
 * const SumRequest = root.messageType<{ a: bigint; b: bigint }>("pb.SumRequest");
 * const bytes = SumRequest.encode({ a: 1n, b: 2n }); // Uint8Array [8, 1, 16, 2]
 * SumRequest.decode(bytes); // { a: 1n, b: 2n }
 * SumRequest.create({ a: 5 }); // { a: 5n, b: 0n }
 * SumRequest.toJSON({ a: 1n, b: 2n }); // { a: "1", b: "2" }
 * ```
 */
export interface MessageType<T = Record<string, unknown>> {
  /** The fully qualified name, e.g. `"pb.SumRequest"`. */
  readonly typeName: string;
  /**
   * Checks `message` against the schema and encodes it. 64-bit fields take a `bigint`, an integer
   * `number` or a decimal string; `null` and `undefined` mean "not set"; properties the schema does
   * not know are ignored. Fields are read as own properties only (as `JSON.stringify` reads objects):
   * inherited values and prototype getters are not encoded. In Node.js the result is a `Buffer`.
   *
   * @throws ServiceError INVALID_ARGUMENT `"invalid pb.SumRequest message: a: <reason>"` when a
   *   field has the wrong type or is out of range.
   */
  encode(message: T): Uint8Array;
  /**
   * Decodes protobuf bytes into a plain object with every field present (proto3 defaults for
   * fields that were not sent). `bytes` fields are views into `bytes`, not copies.
   *
   * @throws ServiceError INVALID_ARGUMENT `"invalid pb.SumRequest message: <reason>"` for bytes
   *   that are not a valid message of this type.
   */
  decode(bytes: Uint8Array): T;
  /**
   * A message with defaults filled in and `init`'s fields checked and normalised (64-bit values
   * become bigints, nested messages get their defaults too): the same as `decode(encode(init))`.
   *
   * @throws ServiceError INVALID_ARGUMENT as {@link MessageType.encode} does.
   */
  create(init?: Partial<T>): T;
  /**
   * The message in the proto3 JSON mapping (lowerCamelCase names or `json_name`, 64-bit integers as
   * strings, enums by name, bytes as base64, well-known types in their special forms; default values
   * left out, but a float or double `-0` is written as the number `-0`).
   *
   * @throws ServiceError INVALID_ARGUMENT when the message is invalid or has no JSON form
   *   (e.g. a Timestamp out of range, or an Any whose type URL does not name a message type of the
   *   schema exactly).
   */
  toJSON(message: T): unknown;
  /**
   * Parses a value in the proto3 JSON mapping (already `JSON.parse`d) into a message. Fields may use
   * their JSON or `.proto` names; `-0` and `"-0"` give `-0`; proto2 `required` fields must be present;
   * an Any must be `{}` or have an `"@type"` of the form `"<prefix>/<fully qualified message name>"`.
   *
   * @throws ServiceError INVALID_ARGUMENT `"invalid pb.SumRequest JSON: <reason>"`, e.g.
   *   `"missing required field r.id"` or `"data: not valid base64 (…)"`.
   */
  fromJSON(json: unknown): T;
}

const messageTypes = new WeakMap<protobuf.Type, MessageType<never>>();

/** The (cached) MessageType of a protobufjs type. */
export function messageTypeOf<T>(type: protobuf.Type): MessageType<T> {
  const cached = messageTypes.get(type);
  if (cached !== undefined) return cached as unknown as MessageType<T>;
  const created = createMessageType<T>(type);
  messageTypes.set(type, created as unknown as MessageType<never>);
  return created;
}

function createMessageType<T>(type: protobuf.Type): MessageType<T> {
  const plan = planOf(type);
  const typeName = type.fullName.slice(1);

  function encode(message: T): Uint8Array {
    try {
      return type.encode(plan.prepare(message, 0)).finish();
    } catch (error) {
      throw encodeError(typeName, error);
    }
  }

  function decode(bytes: Uint8Array): T {
    if (!(bytes instanceof Uint8Array)) {
      throw new ServiceError(
        Code.INVALID_ARGUMENT,
        `invalid ${typeName} message: expected bytes (a Uint8Array), got ${describe(bytes)}`,
      );
    }
    try {
      return plan.finish(type.decode(bigintReader(bytes))) as T;
    } catch (error) {
      throw decodeError(type, bytes, error);
    }
  }

  function create(init?: Partial<T>): T {
    return decode(encode((init ?? {}) as T));
  }

  function toJSON(message: T): unknown {
    const bytes = encode(message);
    try {
      const decoded = type.decode(bytes);
      checkAnyOutput(type, decoded);
      const json = protojson.toJson(type, decoded);
      negativeZeroOut(type, decoded, json);
      return json;
    } catch (error) {
      throw new ServiceError(
        Code.INVALID_ARGUMENT,
        `${typeName} message has no JSON form: ${jsonReason(error, typeName)}`,
        { cause: error },
      );
    }
  }

  function fromJSON(json: unknown): T {
    let bytes: Uint8Array;
    try {
      checkJsonInput(type, json);
      bytes = type.encode(protojson.fromJson(type, json)).finish();
    } catch (error) {
      throw new ServiceError(
        Code.INVALID_ARGUMENT,
        `invalid ${typeName} JSON: ${jsonReason(error, typeName)}`,
        {
          cause: error,
        },
      );
    }
    const message = decode(bytes);
    negativeZeroIn(type, json, message as Record<string, unknown>, encodeJson);
    return message;
  }

  return Object.freeze({ typeName, encode, decode, create, toJSON, fromJSON });
}

function encodeError(typeName: string, error: unknown): ServiceError {
  if (error instanceof FieldError) {
    const path =
      error.path.length > 160 ? `${error.path.slice(0, 100)}…${error.path.slice(-50)}` : error.path;
    const where = path === "" ? "" : `${path}: `;
    return new ServiceError(Code.INVALID_ARGUMENT, `invalid ${typeName} message: ${where}${error.message}`);
  }
  // Not expected after the checks (a buffer too large to allocate, say); the cause says what it was.
  return new ServiceError(Code.INVALID_ARGUMENT, `invalid ${typeName} message: it could not be encoded`, {
    cause: error,
  });
}

/** An Any's value from its JSON (checked before): the bytes of the message it holds. */
function encodeJson(type: protobuf.Type, json: unknown): Uint8Array {
  const inner = messageTypeOf<unknown>(type);
  return inner.encode(inner.fromJSON(json));
}

function decodeError(type: protobuf.Type, bytes: Uint8Array, error: unknown): ServiceError {
  let reason = decodeReason(error);
  if (reason === endGroupWithoutGroup || reason === endGroupWrongNumber) {
    reason = endGroupProblem(type, bytes) ?? reason; // the walk says which field, if it finds it
  }
  return new ServiceError(Code.INVALID_ARGUMENT, `invalid ${type.fullName.slice(1)} message: ${reason}`, {
    cause: error,
  });
}

const endGroupWithoutGroup = "an end-group tag (wire type 4) without a group";
const endGroupWrongNumber = "a group ends with the wrong field number";

const wireType = /^invalid wire type (\d+)/;

/** A clear reason for what protobufjs (or our checks) threw while decoding. */
function decodeReason(error: unknown): string {
  if (error instanceof WireTypeError) return error.message;
  if (!(error instanceof Error)) return "malformed protobuf data";
  const message = error.message;
  if (error.name === "ProtocolError")
    return message.replace(/^missing required '(.*)'$/, "missing required field $1");
  if (message.startsWith("index out of range")) {
    return "truncated data: a value or a length runs past the end of the message";
  }
  const wt = wireType.exec(message);
  if (wt !== null) {
    return wt[1] === "4" ? endGroupWithoutGroup : `invalid wire type ${wt[1]} (only 0 to 5 exist)`;
  }
  switch (message) {
    case "illegal tag: field number 0":
      return "invalid tag: field number 0";
    case "invalid tag encoding":
      return "malformed tag: longer than 5 bytes";
    case "invalid length encoding":
      return "malformed length: longer than 5 bytes";
    case "invalid varint encoding":
      return "malformed varint: longer than 10 bytes";
    case "max depth exceeded":
      return `messages nested more than ${recursionLimit} deep`;
    case "missing end group":
      return "a group is not closed";
    case "invalid end group tag":
      return endGroupWrongNumber;
  }
  if ((error as { code?: unknown }).code === "ERR_ENCODING_INVALID_ENCODED_DATA") {
    return "a string field is not valid UTF-8";
  }
  return "malformed protobuf data";
}

/** protobufjs' ProtoJSON errors read ".pkg.Type.field: what: <value>"; keep them short and relative. */
function jsonReason(error: unknown, typeName: string): string {
  if (error instanceof JsonError) return error.message;
  if (!(error instanceof Error)) return "malformed JSON value";
  let message = error.message;
  if (/^Cannot convert .* to a BigInt/.test(message)) {
    message = "a number in a 64-bit integer field is out of range or not an integer";
  }
  if (message.startsWith(`.${typeName}.`)) message = message.slice(typeName.length + 2);
  else if (message.startsWith(`.${typeName}: `)) message = message.slice(typeName.length + 3);
  else if (message.startsWith(".")) message = message.slice(1);
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}
