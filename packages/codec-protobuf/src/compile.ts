import protobuf from "protobufjs";
import { checkKey64, describe, toWire64 } from "./int64.js";

// Per message type, two functions are generated once (protobufjs generates its encoder and decoder
// the same way) and then run on every call:
//
// - `finish(m)`: turns what protobufjs' decoder returned (a message instance whose unset fields live
//   on its prototype) into a plain object with every field an own property, 64-bit values already
//   bigints (see int64.ts), defaults filled in, oneof discriminators set, and known fields that
//   arrived with an impossible wire type rejected.
// - `prepare(m, depth)`: checks a plain object against the schema before protobufjs' encoder (which
//   does not check) sees it, and, for types that need it, builds the encoder's input: 64-bit values
//   as numbers or `{ low, high }`, and field names protobufjs spells differently. It reads fields as
//   own properties only (as JSON.stringify reads objects), so a field named like an Object.prototype
//   member (`constructor`, `toString`) never sees the inherited function. What is checked is exactly
//   what is written: `m` itself goes to the encoder only when it is a plain object that inherits
//   none of the fields; otherwise (a class instance, an `Object.create` child, a field named like an
//   Object.prototype member) the encoder gets a fresh object of the checked values, since protobufjs
//   reads repeated fields without an own-property check.
//
// Generated code is plain ES5 over values the caller passes in; names come from JSON.stringify.

/** Messages nested deeper than this are rejected (the protobufjs and protoc default). */
export const recursionLimit = 100;

/** The compiled per-type functions. */
export interface Plan {
  readonly type: protobuf.Type;
  /** The protobufjs-decoded message → the plain object users see. */
  finish: (message: object) => Record<string, unknown>;
  /** A user's object → what protobufjs' encoder takes (the same object when nothing changes). */
  prepare: (message: unknown, depth: number) => object;
}

/** A problem found while checking a message for encoding; `path` says where. */
export class FieldError extends Error {
  path: string;
  constructor(path: string, reason: string) {
    super(reason);
    this.name = "FieldError";
    this.path = path;
  }
}

/** A known field arrived with a wire type its type cannot have. */
export class WireTypeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireTypeError";
  }
}

type ScalarType =
  | "double"
  | "float"
  | "int32"
  | "uint32"
  | "sint32"
  | "fixed32"
  | "sfixed32"
  | "int64"
  | "uint64"
  | "sint64"
  | "fixed64"
  | "sfixed64"
  | "bool"
  | "string"
  | "bytes";

const wireTypeOf: Readonly<Record<ScalarType, number>> = {
  double: 1,
  float: 5,
  int32: 0,
  uint32: 0,
  sint32: 0,
  fixed32: 5,
  sfixed32: 5,
  int64: 0,
  uint64: 0,
  sint64: 0,
  fixed64: 1,
  sfixed64: 1,
  bool: 0,
  string: 2,
  bytes: 2,
};

const wireTypeNames = ["varint", "64-bit", "length-delimited", "start group", "end group", "32-bit"];

function isScalarType(type: string): type is ScalarType {
  return Object.hasOwn(wireTypeOf, type);
}

function is64(type: string): boolean {
  return (
    type === "int64" || type === "uint64" || type === "sint64" || type === "fixed64" || type === "sfixed64"
  );
}

function isUnsigned64(type: string): boolean {
  return type === "uint64" || type === "fixed64";
}

/** What one field of a type is, worked out once. */
interface FieldInfo {
  readonly index: number;
  /** Name in the user's objects: the proto3 JSON mapping's lowerCamelCase ({@link jsNameOf}). */
  readonly js: string;
  /** Name in protobufjs' messages. */
  readonly pb: string;
  /** Name in the `.proto` file. */
  readonly protoName: string;
  readonly id: number;
  /** The scalar type, or "enum" / "message". */
  readonly kind: ScalarType | "enum" | "message";
  readonly repeated: boolean;
  readonly map: boolean;
  readonly keyType: ScalarType | undefined;
  /** The real oneof this field belongs to (not proto3 `optional`'s synthetic one). */
  readonly oneof: protobuf.OneOf | undefined;
  /** Absent when unset instead of holding a default: oneof members, `optional` scalars. */
  readonly presence: boolean;
  readonly required: boolean;
  readonly delimited: boolean;
  readonly messageType: protobuf.Type | undefined;
  readonly enumType: protobuf.Enum | undefined;
  /** The decoded value of an unset singular field, for 64-bit and bytes fields. */
  readonly defaultValue: unknown;
}

function describeField(field: protobuf.Field, index: number): FieldInfo {
  field.resolve();
  const resolved = field.resolvedType;
  const messageType = resolved instanceof protobuf.Type ? resolved : undefined;
  const enumType = resolved instanceof protobuf.Enum ? resolved : undefined;
  let kind: FieldInfo["kind"];
  if (messageType !== undefined) kind = "message";
  else if (enumType !== undefined) kind = "enum";
  else if (isScalarType(field.type)) kind = field.type;
  else throw new Error(`field ${field.fullName} has an unsupported type "${field.type}"`);
  const partOf = field.partOf ?? undefined;
  const keyType: unknown = field.map ? (field as unknown as protobuf.MapField).keyType : undefined;
  if (keyType !== undefined && (typeof keyType !== "string" || !isScalarType(keyType))) {
    throw new Error(`map field ${field.fullName} has an unsupported key type`);
  }
  const js = jsNameOf(field);
  if (js === "__proto__") throw new Error(`field ${field.fullName} cannot be named __proto__`);
  const single = !field.repeated && !field.map;
  return {
    index,
    js,
    pb: field.name,
    protoName: field.protoName ?? field.name,
    id: field.id,
    kind,
    repeated: field.repeated && !field.map,
    map: field.map,
    keyType,
    oneof: partOf !== undefined && !partOf.isProto3Optional ? partOf : undefined,
    presence: single && kind !== "message" && field.hasPresence,
    required: field.required,
    delimited: field.delimited,
    messageType,
    enumType,
    defaultValue: defaultOf(field, kind),
  };
}

/**
 * The name of a field in the JS objects: protoc's ToJsonName of the name in the `.proto` file (each
 * `_` dropped and the next character upper-cased: `address_line_1` → `addressLine1`, `_x` → `X`),
 * which is the proto3 JSON mapping's name unless a `json_name` option overrides it there. protobufjs'
 * own `field.name` (util.camelCase, e.g. `addressLine_1`) differs for such names. Extensions keep
 * their `.`-qualified name.
 */
export function jsNameOf(field: protobuf.Field): string {
  if (field.name.startsWith(".")) return field.name;
  return protobuf.util.jsonName(field.protoName ?? field.name);
}

/** The JS name of a oneof's discriminator (protobufjs already camel-cased it; the rule is the same). */
function oneofJsName(name: string): string {
  return protobuf.util.jsonName(name);
}

/** Two fields (or a field and a oneof) spelled the same in JS objects would overwrite each other. */
function checkNameClashes(type: protobuf.Type, fields: readonly FieldInfo[]): void {
  const seen = new Map<string, string>();
  const add = (js: string, what: string) => {
    const other = seen.get(js);
    if (other !== undefined) {
      throw new Error(
        `${other} and ${what} of ${type.fullName.slice(1)} have the same JS name "${js}" (rename one)`,
      );
    }
    seen.set(js, what);
  };
  for (const f of fields) add(f.js, `field ${f.protoName}`);
  const oneofs = new Set<string>();
  for (const f of fields) if (f.oneof !== undefined) oneofs.add(f.oneof.name);
  for (const name of oneofs) add(oneofJsName(name), `oneof ${name}`);
}

function defaultOf(field: protobuf.Field, kind: FieldInfo["kind"]): unknown {
  const value: unknown = field.typeDefault;
  if (is64(kind)) {
    if (typeof value === "number") return BigInt(value);
    if (typeof value === "object" && value !== null && "low" in value && "high" in value) {
      const { low, high } = value as { low: number; high: number };
      const bits = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
      return isUnsigned64(kind) ? bits : BigInt.asIntN(64, bits);
    }
    return 0n;
  }
  if (kind === "bytes")
    return value instanceof Uint8Array && value.length > 0 ? Uint8Array.from(value) : undefined;
  return undefined;
}

const emptyBytes: Uint8Array = Object.freeze(new Uint8Array(0));

/** The wire types each known field may arrive with, as bit sets indexed by field number. */
function allowedWireTypes(fields: readonly FieldInfo[]): Map<number, number> {
  const allowed = new Map<number, number>();
  for (const f of fields) {
    let bits: number;
    if (f.map) bits = 1 << 2;
    else if (f.kind === "message") bits = f.delimited ? 1 << 3 : 1 << 2;
    else {
      const wt = f.kind === "enum" ? 0 : wireTypeOf[f.kind];
      bits = 1 << wt;
      if (f.repeated && wt !== 2) bits |= 1 << 2; // packed or not, both are accepted
    }
    allowed.set(f.id, bits);
  }
  return allowed;
}

function makeUnknownCheck(type: protobuf.Type, fields: readonly FieldInfo[]): (unknowns: unknown) => void {
  const allowed = allowedWireTypes(fields);
  const byId = new Map(fields.map((f) => [f.id, f]));
  const typeName = type.fullName.slice(1);
  return function checkUnknowns(unknowns: unknown): void {
    if (!Array.isArray(unknowns)) return;
    for (const raw of unknowns) {
      if (!(raw instanceof Uint8Array)) continue;
      const tag = readTag(raw);
      const id = tag >>> 3;
      const wireType = tag & 7;
      const bits = allowed.get(id);
      if (bits === undefined || (bits & (1 << wireType)) !== 0) continue; // unknown field, or a closed enum's unknown value
      const field = byId.get(id);
      const expected = [0, 1, 2, 3, 5]
        .filter((wt) => (bits & (1 << wt)) !== 0)
        .map((wt) => `${wt} (${wireTypeNames[wt]})`)
        .join(" or ");
      throw new WireTypeError(
        `field ${typeName}.${field?.js ?? id} (number ${id}) has wire type ${wireType}` +
          ` (${wireTypeNames[wireType] ?? "invalid"}), expected ${expected}`,
      );
    }
  };
}

function readTag(raw: Uint8Array): number {
  let value = 0;
  for (let i = 0; i < 5 && i < raw.length; i++) {
    const b = raw[i] as number;
    value += (b & 0x7f) * 2 ** (7 * i);
    if (b < 0x80) break;
  }
  return value >>> 0;
}

// ---------------------------------------------------------------------------------------------------
// Shared helpers the generated code calls (only on error paths, except the 64-bit conversions).

function fieldError(path: string, reason: string): FieldError {
  return new FieldError(path, reason);
}

function at(error: unknown, segment: string): unknown {
  if (error instanceof FieldError) {
    error.path =
      error.path === ""
        ? segment
        : error.path.startsWith("[")
          ? segment + error.path
          : `${segment}.${error.path}`;
  }
  return error;
}

function index(name: string, i: number): string {
  return `${name}[${i}]`;
}

function key(name: string, k: string): string {
  return `${name}[${JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k)}]`;
}

function why(value: unknown, typeName: string): string {
  if (typeof value !== "number") return `expected ${typeName} (a number), got ${describe(value)}`;
  if (!Number.isInteger(value)) return `expected ${typeName}, got a number that is not an integer`;
  return `out of range for ${typeName}`;
}

function whyEnum(value: unknown, enumName: string): string {
  if (typeof value !== "number") return `expected a ${enumName} value (a number), got ${describe(value)}`;
  if (!Number.isInteger(value)) return `expected a ${enumName} value, got a number that is not an integer`;
  return `out of range for an enum (int32)`;
}

function whyKey(k: string, keyType: string): string | undefined {
  if (keyType === "bool") return k === "true" || k === "false" ? undefined : `key is not "true" or "false"`;
  if (is64(keyType)) return checkKey64(k, isUnsigned64(keyType), keyType);
  if (!/^-?(0|[1-9]\d{0,9})$/.test(k) || k === "-0") return `key is not a decimal ${keyType}`;
  const n = Number(k);
  const ok = keyType === "uint32" || keyType === "fixed32" ? n >>> 0 === n : (n | 0) === n;
  return ok ? undefined : `key is out of range for ${keyType}`;
}

function whyMessage(value: unknown, typeName: string): string {
  return `expected a ${typeName} message (an object), got ${describe(value)}`;
}

function oneofClash(message: Record<string, unknown>, oneof: string, members: readonly string[]): FieldError {
  const set = members.filter((m) => Object.hasOwn(message, m) && message[m] != null);
  return new FieldError(oneof, `more than one member of the oneof is set (${set.join(", ")})`);
}

/** A null-prototype copy of the map `map` (its own keys `keys`), for replacing some values. */
function ownCopy(map: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const copy: Record<string, unknown> = Object.create(null);
  for (const k of keys) copy[k] = map[k];
  return copy;
}

function finishAll(list: unknown[], plan: Plan): unknown[] {
  for (let i = 0; i < list.length; i++) list[i] = plan.finish(list[i] as object);
  return list;
}

function finishMap(map: Record<string, unknown>, plan: Plan): Record<string, unknown> {
  for (const k of Object.keys(map)) map[k] = plan.finish(map[k] as object);
  return map;
}

// protobufjs fills a map entry without a value with a Long zero (64-bit) or [] (bytes).
function fixMap64(map: Record<string, unknown>): Record<string, unknown> {
  for (const k of Object.keys(map)) if (typeof map[k] !== "bigint") map[k] = 0n;
  return map;
}

function fixMapBytes(map: Record<string, unknown>): Record<string, unknown> {
  for (const k of Object.keys(map)) if (!(map[k] instanceof Uint8Array)) map[k] = emptyBytes;
  return map;
}

const helpers = {
  H: Object.prototype.hasOwnProperty,
  B: emptyBytes,
  fe: fieldError,
  at,
  ix: index,
  key,
  why,
  whyEnum,
  whyKey,
  whyMessage,
  clash: oneofClash,
  own: ownCopy,
  d: describe,
  w64: toWire64,
  all: finishAll,
  map: finishMap,
  m64: fixMap64,
  mb: fixMapBytes,
  limit: recursionLimit,
};

type Helpers = typeof helpers;

// ---------------------------------------------------------------------------------------------------
// Plans

const plans = new WeakMap<protobuf.Type, Plan>();

/** The compiled plan of a message type (and, through it, of every type it reaches). */
export function planOf(type: protobuf.Type): Plan {
  const cached = plans.get(type);
  if (cached !== undefined) return cached;
  const copying = typesNeedingCopy(type);
  const created: Plan[] = [];
  const pending: protobuf.Type[] = [type];
  // Create every reachable plan first, so recursive types find each other, then compile them all.
  while (pending.length > 0) {
    const t = pending.pop() as protobuf.Type;
    if (plans.has(t)) continue;
    const plan: Plan = { type: t, finish: unset, prepare: unset };
    plans.set(t, plan);
    created.push(plan);
    t.setup(); // protobufjs' own generated encoder/decoder, now rather than on the first call
    for (const field of t.fieldsArray) {
      field.resolve();
      if (field.resolvedType instanceof protobuf.Type) pending.push(field.resolvedType);
    }
  }
  try {
    for (const plan of created) compile(plan, copying);
  } catch (error) {
    // A schema the plans refuse (a name clash, say): forget the half-built plans, so that every
    // later lookup fails the same way instead of finding one that was never compiled.
    for (const plan of created) plans.delete(plan.type);
    throw error;
  }
  return plans.get(type) as Plan;
}

function unset(): never {
  throw new Error("message plan used before it was compiled");
}

/** Types whose encoder input must be a converted copy: 64-bit or renamed fields, here or below. */
function typesNeedingCopy(root: protobuf.Type): Set<protobuf.Type> {
  const reachable: protobuf.Type[] = [];
  const seen = new Set<protobuf.Type>();
  const pending = [root];
  while (pending.length > 0) {
    const t = pending.pop() as protobuf.Type;
    if (seen.has(t)) continue;
    seen.add(t);
    reachable.push(t);
    for (const field of t.fieldsArray) {
      field.resolve();
      if (field.resolvedType instanceof protobuf.Type) pending.push(field.resolvedType);
    }
  }
  const copying = new Set<protobuf.Type>();
  for (const t of reachable) {
    for (const field of t.fieldsArray) {
      if (is64(field.type) || jsNameOf(field) !== field.name) copying.add(t);
    }
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const t of reachable) {
      if (copying.has(t)) continue;
      for (const field of t.fieldsArray) {
        if (field.resolvedType instanceof protobuf.Type && copying.has(field.resolvedType)) {
          copying.add(t);
          changed = true;
          break;
        }
      }
    }
  }
  return copying;
}

function compile(plan: Plan, copying: ReadonlySet<protobuf.Type>): void {
  const type = plan.type;
  const fields = type.fieldsArray.map(describeField);
  checkNameClashes(type, fields);
  const children: (Plan | undefined)[] = fields.map((f) =>
    f.messageType ? plans.get(f.messageType) : undefined,
  );
  const defaults: unknown[] = fields.map((f) => f.defaultValue);
  const check = makeUnknownCheck(type, fields);
  const typeName = type.fullName.slice(1);
  const finishSource = finishCode(fields);
  const prepareSource = prepareCode(fields, typeName, copying.has(type), copying);
  plan.finish = build(finishSource, helpers, children, defaults, check) as Plan["finish"];
  plan.prepare = build(prepareSource, helpers, children, defaults, check) as Plan["prepare"];
}

function build(
  source: string,
  x: Helpers,
  children: readonly (Plan | undefined)[],
  defaults: readonly unknown[],
  check: (unknowns: unknown) => void,
): unknown {
  // The same technique as protobufjs' codegen: the body is assembled from the schema only.
  const factory = new Function("X", "P", "D", "U", `"use strict";\n${source}`) as (
    x: Helpers,
    p: readonly (Plan | undefined)[],
    d: readonly unknown[],
    u: (unknowns: unknown) => void,
  ) => unknown;
  return factory(x, children, defaults, check);
}

const q = JSON.stringify;

function bigintLiteral(value: unknown): string {
  return typeof value === "bigint" ? `${value}n` : "0n";
}

/** The source of `finish(m)` for one type. */
function finishCode(fields: readonly FieldInfo[]): string {
  const props: string[] = [];
  const after: string[] = [];
  const oneofs = new Map<string, FieldInfo[]>();
  for (const f of fields) {
    const get = `m[${q(f.pb)}]`;
    if (f.oneof !== undefined) {
      const members = oneofs.get(f.oneof.name) ?? [];
      members.push(f);
      oneofs.set(f.oneof.name, members);
      continue;
    }
    if (f.presence) {
      after.push(`if(H.call(m,${q(f.pb)}))o[${q(f.js)}]=${setValue(f, get)};`);
      continue;
    }
    props.push(`${q(f.js)}:${singular(f, get)}`);
  }
  for (const [name, members] of oneofs) {
    const kind = q(oneofJsName(name));
    props.push(`${kind}:undefined`);
    const branches = members.map(
      (f) => `if(H.call(m,${q(f.pb)})){o[${kind}]=${q(f.js)};o[${q(f.js)}]=${setValue(f, `m[${q(f.pb)}]`)};}`,
    );
    after.push(branches.join("else "));
  }
  return [
    "var H=X.H,B=X.B;",
    "return function finish(m){",
    "var t;",
    "if(m.$unknowns!==undefined)U(m.$unknowns);",
    `var o={${props.join(",")}};`,
    ...after,
    "return o;",
    "};",
  ].join("\n");

  function singular(f: FieldInfo, get: string): string {
    const i = f.index;
    if (f.map) {
      if (f.kind === "message") return `X.map(${get},P[${i}])`;
      if (is64(f.kind)) return `X.m64(${get})`;
      if (f.kind === "bytes") return `X.mb(${get})`;
      return get;
    }
    if (f.repeated) return f.kind === "message" ? `X.all(${get},P[${i}])` : get;
    if (f.kind === "message") return `(t=${get})==null?null:P[${i}].finish(t)`;
    // Unset fields read protobufjs' prototype default: a Long for 64-bit, a frozen [] for bytes.
    if (is64(f.kind)) return `typeof(t=${get})==="bigint"?t:${bigintLiteral(f.defaultValue)}`;
    if (f.kind === "bytes") {
      return f.defaultValue === undefined
        ? `(t=${get}) instanceof Uint8Array?t:B`
        : `H.call(m,${q(f.pb)})?${get}:new Uint8Array(D[${i}])`;
    }
    return get; // the prototype holds the right default for every other type
  }

  // A value known to be set (own property): only messages need work.
  function setValue(f: FieldInfo, get: string): string {
    return f.kind === "message" ? `P[${f.index}].finish(${get})` : get;
  }
}

/** The source of `prepare(m, q)` for one type. */
function prepareCode(
  fields: readonly FieldInfo[],
  typeName: string,
  copy: boolean,
  copying: ReadonlySet<protobuf.Type>,
): string {
  const lines: string[] = [
    "var H=X.H;",
    "return function prepare(m,q){",
    "if(typeof m!=='object'||m===null||Array.isArray(m)||m instanceof Uint8Array||m instanceof Map)",
    `throw X.fe('',X.whyMessage(m,${q(typeName)}));`,
    "if(q>X.limit)throw X.fe('','messages are nested more than '+X.limit+' deep (is there a cycle?)');",
    "var v,w,c,i,n,k,ks,e,y;",
    // Own properties only (see the top of this file). `r`: protobufjs' encoder must not see `m` itself
    // (it reads repeated fields without an own-property check), but a fresh object built from the
    // checked values: when `m` is not a plain object, when a field was dropped as inherited, when a
    // nested message was replaced, or when `m` has a `$unknowns` (raw bytes protobufjs would write).
    // Types that need a copy always build one.
    "var r=Object.getPrototypeOf(m);r=!(r===Object.prototype||r===null);",
    copy ? "" : "if(m.$unknowns!==undefined)r=true;",
  ];
  const oneofs = new Map<string, FieldInfo[]>();
  for (const f of fields) {
    const local = `f${f.index}`;
    const name = q(f.js);
    lines.push(`var ${local}=m[${name}];`);
    // A plain object can inherit only from Object.prototype: the own-property check runs for fields
    // named like its members (and on every other object). Checking every field of plain objects as
    // well (for a polluted Object.prototype) costs 5-10% of encode; what such a field inherits is
    // checked and written like an own value instead (see the README).
    lines.push(
      f.js in Object.prototype
        ? `if(${local}!==undefined&&!H.call(m,${name})){${local}=undefined;r=true;}`
        : `if(${local}!==undefined&&r&&!H.call(m,${name}))${local}=undefined;`,
    );
    if (f.required) lines.push(`if(${local}==null)throw X.fe(${name},'required field is missing');`);
    lines.push(`if(${local}!=null){`);
    if (f.map) lines.push(...mapCode(f, local));
    else if (f.repeated) lines.push(...repeatedCode(f, local));
    else if (f.kind === "message" && !copy) {
      // A nested message that had to be rebuilt makes this one rebuilt too.
      lines.push(`y=${local};`, ...valueCode(f, local, name, local), `if(${local}!==y)r=true;`);
    } else lines.push(...valueCode(f, local, name, local));
    lines.push("}");
    if (f.oneof !== undefined) {
      const members = oneofs.get(f.oneof.name) ?? [];
      members.push(f);
      oneofs.set(f.oneof.name, members);
    }
  }
  for (const [name, members] of oneofs) {
    if (members.length < 2) continue;
    const count = members.map((f) => `(f${f.index}!=null?1:0)`).join("+");
    lines.push(`if(${count}>1)throw X.clash(m,${q(oneofJsName(name))},${q(members.map((f) => f.js))});`);
  }
  const fresh = `{${fields.map((f) => `${q(f.pb)}:f${f.index}`).join(",")}}`;
  lines.push(copy ? `return ${fresh};` : `return r?${fresh}:m;`);
  lines.push("};");
  return lines.join("\n");

  /** Checks `v` (a single value) and leaves the encoder's value in `out`. `path` is a JS expression. */
  function valueCode(f: FieldInfo, v: string, path: string, out: string): string[] {
    const i = f.index;
    switch (f.kind) {
      case "message":
        return [`try{${out}=P[${i}].prepare(${v},q+1);}catch(e){throw X.at(e,${path});}`];
      case "enum":
        return [
          `if(typeof ${v}!=='number'||(${v}|0)!==${v})throw X.fe(${path},X.whyEnum(${v},${q(f.enumType?.fullName.slice(1) ?? "enum")}));`,
        ];
      case "int32":
      case "sint32":
      case "sfixed32":
        return [`if(typeof ${v}!=='number'||(${v}|0)!==${v})throw X.fe(${path},X.why(${v},${q(f.kind)}));`];
      case "uint32":
      case "fixed32":
        return [`if(typeof ${v}!=='number'||${v}>>>0!==${v})throw X.fe(${path},X.why(${v},${q(f.kind)}));`];
      case "double":
      case "float":
        return [
          `if(typeof ${v}!=='number')throw X.fe(${path},'expected ${f.kind} (a number), got '+X.d(${v}));`,
        ];
      case "bool":
        return [
          `if(typeof ${v}!=='boolean')throw X.fe(${path},'expected bool (a boolean), got '+X.d(${v}));`,
        ];
      case "string":
        // A lone surrogate would be written as bytes that are not UTF-8, which decoders reject.
        return [
          `if(typeof ${v}!=='string')throw X.fe(${path},'expected string, got '+X.d(${v}));`,
          `if(!${v}.isWellFormed())throw X.fe(${path},'string is not valid Unicode (a lone surrogate)');`,
        ];
      case "bytes":
        return [
          `if(!(${v} instanceof Uint8Array))throw X.fe(${path},'expected bytes (a Uint8Array), got '+X.d(${v}));`,
        ];
      default:
        // Inline fast path for the common case, a bigint within ±(2^53-1) (Number() rounds
        // monotonically, so a safe result means the bigint is exactly that number).
        return [
          `if(typeof ${v}!=='bigint'||(c=Number(${v}))>9007199254740991||c<${isUnsigned64(f.kind) ? "0" : "-9007199254740991"}){`,
          `c=X.w64(${v},${isUnsigned64(f.kind)},${q(f.kind)});`,
          `if(typeof c==='string')throw X.fe(${path},c);`,
          "}",
          `${out}=c;`,
        ];
    }
  }

  function converts(f: FieldInfo): boolean {
    return is64(f.kind) || (f.messageType !== undefined && copying.has(f.messageType));
  }

  function repeatedCode(f: FieldInfo, local: string): string[] {
    const name = q(f.js);
    const conv = converts(f);
    // Messages that need no copy come back as they are, unless one had to be rebuilt: then the
    // list is copied (once, at the first such element) to hold it.
    const swap = !conv && f.kind === "message";
    return [
      `if(!Array.isArray(${local}))throw X.fe(${name},'expected an array, got '+X.d(${local}));`,
      `n=${local}.length;`,
      conv ? "w=new Array(n);" : swap ? "w=undefined;" : "",
      "for(i=0;i<n;i++){",
      `v=${local}[i];`,
      `if(v==null)throw X.fe(X.ix(${name},i),'expected a value, got '+X.d(v));`,
      swap ? "y=v;" : "",
      ...valueCode(f, "v", `X.ix(${name},i)`, "v"),
      conv ? "w[i]=v;" : swap ? `if(v!==y){if(w===undefined)w=${local}.slice();w[i]=v;}` : "",
      "}",
      conv ? `${local}=w;` : swap ? `if(w!==undefined){${local}=w;r=true;}` : "",
    ];
  }

  function mapCode(f: FieldInfo, local: string): string[] {
    const name = q(f.js);
    const conv = converts(f);
    const swap = !conv && f.kind === "message"; // as in repeatedCode
    return [
      `if(typeof ${local}!=='object'||Array.isArray(${local})||${local} instanceof Map||${local} instanceof Uint8Array)`,
      `throw X.fe(${name},'expected an object (a map), got '+X.d(${local}));`,
      `ks=Object.keys(${local});n=ks.length;`,
      conv ? "w=Object.create(null);" : swap ? "w=undefined;" : "",
      "for(i=0;i<n;i++){",
      "k=ks[i];",
      f.keyType === "string"
        ? `if(!k.isWellFormed())throw X.fe(X.key(${name},k),'key is not valid Unicode (a lone surrogate)');`
        : `e=X.whyKey(k,${q(f.keyType)});if(e!==undefined)throw X.fe(X.key(${name},k),e);`,
      `v=${local}[k];`,
      `if(v==null)throw X.fe(X.key(${name},k),'expected a value, got '+X.d(v));`,
      swap ? "y=v;" : "",
      ...valueCode(f, "v", `X.key(${name},k)`, "v"),
      conv ? "w[k]=v;" : swap ? `if(v!==y){if(w===undefined)w=X.own(${local},ks);w[k]=v;}` : "",
      "}",
      conv ? `${local}=w;` : swap ? `if(w!==undefined){${local}=w;r=true;}` : "",
    ];
  }
}

// ---------------------------------------------------------------------------------------------------
// Diagnosing a stray end-group tag (error path only)

/**
 * What is wrong with the groups in `bytes` when protobufjs stopped at an end-group tag: walks the
 * bytes with the schema as protobufjs' decoder reads them (into nested messages, map entries and
 * groups) to find the first end-group tag that closes nothing or closes a group with another field
 * number. `undefined` when the walk finds neither. Linear in the input; the names in the reason are
 * built only once it is found.
 */
export function endGroupProblem(type: protobuf.Type, bytes: Uint8Array): string | undefined {
  try {
    const found = scanGroups(type, bytes, 0, bytes.length, noGroup, 0);
    return typeof found === "string" ? found : undefined;
  } catch {
    return undefined; // some other damage; the caller keeps protobufjs' reason
  }
}

/** Where the scan reads fields: a message type, a map entry, or nothing known (an unknown group). */
type Scope = protobuf.Type | MapEntry | undefined;

/** A map field's entry: field 1 is the key, field 2 the value (a message type, if `value` is set). */
interface MapEntry {
  readonly value: protobuf.Type | undefined;
}

/**
 * The group the scan is inside (`id` 0: none). It keeps the field that opened it, not its name: the
 * name is built only for the error (see groupName).
 */
interface OpenGroup {
  readonly id: number;
  /** The type holding the field that opened the group, and that field, when known. */
  readonly type: protobuf.Type | undefined;
  readonly field: protobuf.Field | undefined;
}

const noGroup: OpenGroup = { id: 0, type: undefined, field: undefined };

let scanPos = 0;

function scanVarint(buf: Uint8Array, end: number): number {
  let value = 0;
  for (let i = 0; i < 10; i++) {
    if (scanPos >= end) throw new RangeError("truncated");
    const b = buf[scanPos++] as number;
    value += (b & 0x7f) * 2 ** (7 * i);
    if (b < 0x80) return value;
  }
  throw new RangeError("varint too long");
}

/**
 * The scope the bytes of a length-delimited field `id` are read in, as protobufjs' decoder reads
 * them: a message field's type, a map field's entry, a map entry's message value; `null` when they
 * are skipped (scalars, strings, packed lists, unknown fields, a group field sent length-delimited).
 */
function lengthDelimitedScope(scope: Scope, id: number): Scope | null {
  if (scope === undefined) return null;
  if (!(scope instanceof protobuf.Type)) return id === 2 && scope.value !== undefined ? scope.value : null;
  const field = scope.fieldsById[id];
  if (field === undefined) return null;
  const resolved = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
  if (field.map) return { value: resolved };
  return resolved !== undefined && !field.delimited ? resolved : null;
}

/** The position after the message or group (a number), or the problem found (a string). */
function scanGroups(
  scope: Scope,
  buf: Uint8Array,
  start: number,
  end: number,
  group: OpenGroup,
  depth: number,
): number | string {
  if (depth > recursionLimit) throw new RangeError("too deep");
  scanPos = start;
  while (scanPos < end) {
    const tag = scanVarint(buf, end);
    const id = Math.floor(tag / 8);
    const wt = tag % 8;
    if (id === 0) throw new RangeError("field number 0"); // protobufjs stops there too
    if (wt === 4) {
      if (group.id === 0) return `an end-group tag (wire type 4) for field ${id} without a group`;
      if (id !== group.id) {
        return `a group ends with the wrong field number: ${groupName(group)} is closed by an end-group tag for field ${id}`;
      }
      return scanPos;
    }
    if (wt === 0) scanVarint(buf, end);
    else if (wt === 1) scanPos += 8;
    else if (wt === 5) scanPos += 4;
    else if (wt === 2) {
      const length = scanVarint(buf, end);
      const stop = scanPos + length;
      if (stop > end) throw new RangeError("truncated");
      const inner = lengthDelimitedScope(scope, id);
      if (inner !== null) {
        const found = scanGroups(inner, buf, scanPos, stop, noGroup, depth + 1);
        if (typeof found === "string") return found;
      }
      scanPos = stop;
    } else if (wt === 3) {
      // A group field's group is read in its type; anything else is skipped as an unknown group.
      const type = scope instanceof protobuf.Type ? scope : undefined;
      const field = type?.fieldsById[id];
      const inner =
        field?.delimited && field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
      const found = scanGroups(inner, buf, scanPos, end, { id, type, field }, depth + 1);
      if (typeof found === "string") return found;
      scanPos = found;
    } else throw new RangeError("invalid wire type");
  }
  if (scanPos > end || group.id !== 0) throw new RangeError("truncated");
  return scanPos;
}

/**
 * `group legacy.Record.extra (field 6)`, `an unknown group (field 3)`, or for a field that is no
 * group, `field pb.SumRequest.a (an int64, used as a group)`.
 */
function groupName(group: OpenGroup): string {
  const { type, field } = group;
  if (type === undefined || field === undefined) return `an unknown group (field ${group.id})`;
  const name = field.name.startsWith(".")
    ? field.name.slice(1)
    : `${type.fullName.slice(1)}.${jsNameOf(field)}`;
  if (field.delimited) return `group ${name} (field ${group.id})`;
  let kind: string = field.type;
  if (field.map) kind = "map";
  else if (field.resolvedType instanceof protobuf.Type) kind = "message";
  else if (field.resolvedType instanceof protobuf.Enum) kind = "enum";
  if (field.repeated && !field.map) kind = `repeated ${kind}`;
  return `field ${name} (${/^(?:int|uint|sint|sfixed|enum)/.test(kind) ? "an" : "a"} ${kind}, used as a group)`;
}
