import protobuf from "protobufjs";
import { jsNameOf, recursionLimit } from "./compile.js";

// protobufjs' ProtoJSON (protobufjs/ext/protojson) does the proto3 JSON mapping; these walks, run
// around it, close the gaps where it differs from the mapping (and from protobuf-go):
//
// - `checkJsonInput` (before fromJson): an Any with members but no "@type" is an error ({} stays the
//   empty Any), a type URL must have a "/" and name a message type of the schema exactly; proto2
//   required fields must be present; bad base64 is reported with the field's path.
// - `checkAnyOutput` (before toJson): the same type URL rule for the Anys of a message.
// - `negativeZeroIn` / `negativeZeroOut` (after): a float or double -0 is not a default value, so it
//   is read and written like any other number (ProtoJSON drops it as if it were 0).
//
// Each walk descends only into the message types that can hold what it looks for.

/** A problem with a JSON value, or with a message that has no JSON form; the message says where. */
export class JsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JsonError";
  }
}

const ANY = ".google.protobuf.Any";
const FLOAT_WRAPPERS = new Set([".google.protobuf.DoubleValue", ".google.protobuf.FloatValue"]);
/** Types ProtoJSON writes in a special form (not as an object of their fields). */
const SPECIAL = new Set([
  ANY,
  ".google.protobuf.Duration",
  ".google.protobuf.Timestamp",
  ".google.protobuf.FieldMask",
  ".google.protobuf.Struct",
  ".google.protobuf.Value",
  ".google.protobuf.ListValue",
  ...[
    "DoubleValue",
    "FloatValue",
    "Int64Value",
    "UInt64Value",
    "Int32Value",
    "UInt32Value",
    "BoolValue",
    "StringValue",
    "BytesValue",
  ].map((n) => `.google.protobuf.${n}`),
]);

interface Facts {
  /** An Any can be reached (and through it, any type). */
  readonly any: boolean;
  /** Something `checkJsonInput` checks can be reached: an Any, a required field, a bytes field. */
  readonly input: boolean;
  /** A float or double that ProtoJSON would drop when it is -0 can be reached. */
  readonly negativeZero: boolean;
}

const facts = new WeakMap<protobuf.Type, Facts>();

function factsOf(type: protobuf.Type): Facts {
  const cached = facts.get(type);
  if (cached !== undefined) return cached;
  let any = false;
  let input = false;
  let negativeZero = false;
  const seen = new Set<protobuf.Type>();
  const pending = [type];
  while (pending.length > 0) {
    const t = pending.pop() as protobuf.Type;
    if (seen.has(t)) continue;
    seen.add(t);
    if (t.fullName === ANY) any = true;
    if (t.fullName === ".google.protobuf.BytesValue") input = true;
    if (FLOAT_WRAPPERS.has(t.fullName)) negativeZero = true;
    if (SPECIAL.has(t.fullName)) continue;
    for (const field of t.fieldsArray) {
      field.resolve();
      if (field.required || field.type === "bytes") input = true;
      if (isImplicitFloat(field)) negativeZero = true;
      if (field.resolvedType instanceof protobuf.Type) pending.push(field.resolvedType);
    }
  }
  const found = { any, input: input || any, negativeZero: negativeZero || any };
  facts.set(type, found);
  return found;
}

/** A singular float or double without presence: the one ProtoJSON leaves out when it is ±0. */
function isImplicitFloat(field: protobuf.Field): boolean {
  return (
    (field.type === "double" || field.type === "float") &&
    !field.repeated &&
    !field.map &&
    !field.hasPresence &&
    field.resolvedType === null
  );
}

const jsonIndexes = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

/**
 * The JSON keys ProtoJSON reads for each field: its JSON name, its `.proto` name, protobufjs' name;
 * for an extension field, `"[<fully qualified name>]"` ({@link jsonKeyOf}).
 */
function jsonIndex(type: protobuf.Type): Map<string, protobuf.Field> {
  let index = jsonIndexes.get(type);
  if (index === undefined) {
    index = new Map();
    for (const field of type.fieldsArray) {
      field.resolve();
      if (isExtension(field)) {
        index.set(jsonKeyOf(field), field);
        continue;
      }
      index.set(field.name, field);
      index.set(field.protoName, field);
      index.set(field.jsonName, field);
    }
    jsonIndexes.set(type, index);
  }
  return index;
}

/** An extension field, as the extended type holds it (protobufjs names it `.pkg.ext`). */
function isExtension(field: protobuf.Field): boolean {
  return field.declaringField != null || field.name.startsWith(".");
}

/** The key ProtoJSON writes a field under: its JSON name, or `"[pkg.ext]"` for an extension. */
function jsonKeyOf(field: protobuf.Field): string {
  if (!isExtension(field)) return field.jsonName;
  const declared = field.declaringField ?? field;
  const full = declared.fullName.startsWith(".") ? declared.fullName.slice(1) : declared.fullName;
  return `[${declared.protoName ? full.replace(/[^.]+$/, declared.protoName) : full}]`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function member(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

function element(path: string, i: number): string {
  return `${path}[${i}]`;
}

function entry(path: string, k: string): string {
  return `${path}[${JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k)}]`;
}

function where(path: string): string {
  return path === "" ? "" : `${path}: `;
}

/** Calls `visit` with each value of a field (one, each element, each map value) and its path. */
function eachValue(
  field: protobuf.Field,
  value: unknown,
  path: string,
  visit: (v: unknown, path: string, key: string | number | undefined) => void,
): void {
  if (field.map) {
    if (!isObject(value)) return;
    for (const k of Object.keys(value)) if (value[k] != null) visit(value[k], entry(path, k), k);
  } else if (field.repeated) {
    if (!Array.isArray(value)) return;
    for (let i = 0; i < value.length; i++) if (value[i] != null) visit(value[i], element(path, i), i);
  } else visit(value, path, undefined);
}

// ---------------------------------------------------------------------------------------------------
// Type URLs

function quote(s: string): string {
  return JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);
}

/**
 * The message type a type URL names, exactly: the part after the last "/" must be the fully
 * qualified name of a message type in `root` (no relative lookup). Throws a JsonError otherwise.
 */
function typeOfUrl(root: protobuf.Root, url: string, path: string): protobuf.Type {
  const slash = url.lastIndexOf("/");
  if (url === "")
    throw new JsonError(`${where(path)}"@type" is empty (it names the message type the Any holds)`);
  if (slash < 0) {
    throw new JsonError(
      `${where(path)}type URL ${quote(url)} has no "/" (expected "<prefix>/<fully qualified message name>", e.g. "type.googleapis.com/google.protobuf.Duration")`,
    );
  }
  const name = url.slice(slash + 1);
  let found: protobuf.ReflectionObject | undefined = root;
  for (const part of name.split(".")) {
    const nested: Record<string, protobuf.ReflectionObject> | undefined =
      found instanceof protobuf.Namespace ? found.nested : undefined;
    found = nested !== undefined && Object.hasOwn(nested, part) ? nested[part] : undefined;
    if (found === undefined) break;
  }
  if (!(found instanceof protobuf.Type)) {
    throw new JsonError(
      `${where(path)}type URL ${quote(url)}: ${quote(name)} is not a message type of this schema (the name must be fully qualified, e.g. "pkg.Message")`,
    );
  }
  return found;
}

/** protobufjs' field names of Any's type_url and value. */
function anyFields(any: protobuf.Type): { url: string; value: string } {
  return {
    url: any.fieldsById[1]?.name ?? "type_url",
    value: any.fieldsById[2]?.name ?? "value",
  };
}

// ---------------------------------------------------------------------------------------------------
// fromJSON

/** Throws a JsonError for what ProtoJSON would let through or report without saying where. */
export function checkJsonInput(type: protobuf.Type, json: unknown): void {
  if (factsOf(type).input) checkIn(type, json, "", 0);
}

const base64 = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/;

function checkBase64(value: unknown, path: string): void {
  if (typeof value !== "string") return; // ProtoJSON says what it expected
  const data = value.replace(/=+$/, "");
  const padded = data.length !== value.length;
  if (!base64.test(value) || data.length % 4 === 1 || (padded && value.length % 4 !== 0)) {
    throw new JsonError(`${where(path)}not valid base64 (standard or URL-safe alphabet, padding optional)`);
  }
}

function checkIn(type: protobuf.Type, json: unknown, path: string, depth: number): void {
  if (depth > recursionLimit) return; // ProtoJSON reports the depth
  if (type.fullName === ANY) {
    checkAnyIn(type, json, path, depth);
    return;
  }
  if (type.fullName === ".google.protobuf.BytesValue") {
    checkBase64(json, path);
    return;
  }
  if (SPECIAL.has(type.fullName) || !isObject(json)) return;
  for (const field of type.fieldsArray) {
    if (!field.required) continue;
    const present = [field.jsonName, field.protoName, field.name].some(
      (k) => Object.hasOwn(json, k) && json[k] !== null,
    );
    if (!present) throw new JsonError(`missing required field ${member(path, field.jsonName)}`);
  }
  const index = jsonIndex(type);
  for (const k of Object.keys(json)) {
    const field = index.get(k);
    const value = json[k];
    if (field === undefined || value == null) continue;
    const child = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (field.type === "bytes" && field.resolvedType === null) {
      eachValue(field, value, member(path, k), (v, p) => checkBase64(v, p));
    } else if (child !== undefined && factsOf(child).input) {
      eachValue(field, value, member(path, k), (v, p) => checkIn(child, v, p, depth + 1));
    }
  }
}

function checkAnyIn(any: protobuf.Type, json: unknown, path: string, depth: number): void {
  if (!isObject(json)) return; // ProtoJSON: "must be an object"
  if (!Object.hasOwn(json, "@type")) {
    if (Object.keys(json).length === 0) return; // {} is the empty Any
    throw new JsonError(
      `${where(path)}an Any with members needs "@type" naming its message type ({} is the empty Any)`,
    );
  }
  const url = json["@type"];
  if (typeof url !== "string") return; // ProtoJSON: "@type must be a string"
  const target = typeOfUrl(any.root, url, path);
  if (SPECIAL.has(target.fullName)) checkIn(target, json.value, member(path, "value"), depth + 1);
  else checkIn(target, json, path, depth + 1); // "@type" is no field of the target, so it is passed over
}

/** Encodes a message of `type` from its JSON (already checked); for an Any's value. */
export type EncodeJson = (type: protobuf.Type, json: unknown) => Uint8Array;

function isNegativeZero(json: unknown): boolean {
  if (typeof json === "number") return Object.is(json, -0);
  return typeof json === "string" && Object.is(Number(json), -0);
}

/**
 * Puts back into `message` (what fromJSON decoded) the float and double -0s of `json` that ProtoJSON
 * dropped. Anys holding one are encoded again with `encodeJson`.
 */
export function negativeZeroIn(
  type: protobuf.Type,
  json: unknown,
  message: Record<string, unknown>,
  encodeJson: EncodeJson,
): void {
  if (factsOf(type).negativeZero) zeroIn(type, json, message, encodeJson, 0);
}

function zeroIn(
  type: protobuf.Type,
  json: unknown,
  message: unknown,
  encodeJson: EncodeJson,
  depth: number,
): void {
  if (depth > recursionLimit || !isObject(message)) return;
  if (FLOAT_WRAPPERS.has(type.fullName)) {
    if (isNegativeZero(json)) message.value = -0;
    return;
  }
  if (!isObject(json)) return;
  if (type.fullName === ANY) {
    const url = json["@type"];
    if (typeof url !== "string") return;
    const target = typeOfUrl(type.root, url, "");
    if (!factsOf(target).negativeZero) return;
    let body: unknown = json.value;
    if (!SPECIAL.has(target.fullName)) {
      const fields: Record<string, unknown> = {};
      for (const k of Object.keys(json)) if (k !== "@type") fields[k] = json[k];
      body = fields;
    }
    const bytes = encodeJson(target, body); // a Buffer in Node.js; decoded bytes are plain Uint8Arrays
    message.value = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    return;
  }
  if (SPECIAL.has(type.fullName)) return;
  const index = jsonIndex(type);
  for (const k of Object.keys(json)) {
    const field = index.get(k);
    const value = json[k];
    if (field === undefined || value == null) continue;
    const js = jsNameOf(field);
    if (isImplicitFloat(field)) {
      if (isNegativeZero(value)) message[js] = -0;
      continue;
    }
    const child = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (child === undefined || !factsOf(child).negativeZero) continue;
    const decoded = message[js];
    eachValue(field, value, "", (v, _, key) => {
      const target = targetOf(decoded, key, field);
      zeroIn(child, v, target, encodeJson, depth + 1);
    });
  }
}

/** The decoded value that a JSON value (at `key` in a list or map, if any) became. */
function targetOf(decoded: unknown, key: string | number | undefined, field: protobuf.Field): unknown {
  if (key === undefined) return decoded;
  if (typeof key === "number") return Array.isArray(decoded) ? decoded[key] : undefined;
  if (!isObject(decoded)) return undefined;
  const keyType = (field as unknown as protobuf.MapField).keyType;
  if (keyType === "string" || keyType === "bool") return decoded[key];
  try {
    return decoded[BigInt(key).toString()]; // "007" and "-0" are read as 7 and 0
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// toJSON

/** Throws a JsonError for an Any (at any depth) whose type URL does not name a type exactly. */
export function checkAnyOutput(type: protobuf.Type, message: unknown): void {
  if (factsOf(type).any) checkAnyOut(type, message, "", 0);
}

function checkAnyOut(type: protobuf.Type, message: unknown, path: string, depth: number): void {
  if (depth > recursionLimit || typeof message !== "object" || message === null) return;
  const m = message as Record<string, unknown>;
  if (type.fullName === ANY) {
    const names = anyFields(type);
    const url = m[names.url];
    const bytes = m[names.value];
    if (typeof url !== "string" || url === "") {
      if (bytes instanceof Uint8Array && bytes.length > 0) {
        throw new JsonError(
          `${where(path)}an Any with a value but no type URL has no JSON form (nothing names the value's message type)`,
        );
      }
      return; // the empty Any: ProtoJSON writes {}
    }
    const target = typeOfUrl(type.root, url, path);
    if (!factsOf(target).any) return;
    checkAnyOut(
      target,
      target.decode(bytes instanceof Uint8Array ? bytes : new Uint8Array(0)),
      path,
      depth + 1,
    );
    return;
  }
  if (SPECIAL.has(type.fullName)) return;
  for (const field of type.fieldsArray) {
    const child = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    const value = m[field.name];
    if (child === undefined || value == null || !factsOf(child).any) continue;
    eachValue(field, value, member(path, jsonKeyOf(field)), (v, p) => checkAnyOut(child, v, p, depth + 1));
  }
}

/**
 * Writes into `json` (ProtoJSON's output for `message`, a protobufjs-decoded message) the float and
 * double -0s ProtoJSON left out, as the JSON number -0 (what protobuf-go writes).
 */
export function negativeZeroOut(type: protobuf.Type, message: unknown, json: unknown): void {
  if (factsOf(type).negativeZero) zeroOut(type, message, json, 0);
}

function zeroOut(type: protobuf.Type, message: unknown, json: unknown, depth: number): void {
  if (depth > recursionLimit || typeof message !== "object" || message === null || !isObject(json)) return;
  const m = message as Record<string, unknown>;
  if (type.fullName === ANY) {
    const names = anyFields(type);
    const url = m[names.url];
    if (typeof url !== "string" || url === "") return;
    const target = typeOfUrl(type.root, url, "");
    if (!factsOf(target).negativeZero) return;
    // ProtoJSON writes a special form under "value" (an Any in an Any: {"@type", "value": {...}}),
    // other messages' fields beside "@type". Wrappers keep -0 already.
    let out: unknown = json;
    if (target.fullName === ANY) out = json.value;
    else if (SPECIAL.has(target.fullName)) return;
    const bytes = m[names.value];
    zeroOut(target, target.decode(bytes instanceof Uint8Array ? bytes : new Uint8Array(0)), out, depth + 1);
    return;
  }
  if (SPECIAL.has(type.fullName)) return;
  for (const field of type.fieldsArray) {
    const value = m[field.name];
    if (value == null) continue;
    const key = jsonKeyOf(field);
    if (isImplicitFloat(field)) {
      if (Object.is(value, -0)) json[key] = -0;
      continue;
    }
    const child = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (child === undefined || !factsOf(child).negativeZero) continue;
    if (SPECIAL.has(child.fullName) && child.fullName !== ANY) continue; // wrappers keep -0 already
    const out = json[key];
    if (field.map) {
      if (!isObject(value) || !isObject(out)) continue;
      const keyType = (field as unknown as protobuf.MapField).keyType;
      const long = keyType.endsWith("64");
      for (const k of Object.keys(value)) {
        const outKey = long
          ? protobuf.util.longFromKey(k, keyType === "uint64" || keyType === "fixed64").toString()
          : k;
        zeroOut(child, value[k], out[outKey], depth + 1);
      }
    } else if (field.repeated) {
      if (!Array.isArray(value) || !Array.isArray(out)) continue;
      for (let i = 0; i < value.length; i++) zeroOut(child, value[i], out[i], depth + 1);
    } else zeroOut(child, value, out, depth + 1);
  }
}
