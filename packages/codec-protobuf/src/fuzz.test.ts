import { fileURLToPath } from "node:url";
import { loadProtoSync, type MessageType } from "@svckit/codec-protobuf";
import { Code, ServiceError } from "@svckit/endpoint";
import fc from "fast-check";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";

// Property tests: whatever bytes arrive, decoding ends in a message or an INVALID_ARGUMENT
// ServiceError with one of the documented reasons, never another error; a decoded message always
// encodes again to the same message; and valid messages round-trip exactly, with protobufjs on its
// own reading our bytes as the same values. Runs are bounded so the file stays well under 5 s.

const files = ["addsvc.proto", "rich.proto", "legacy.proto"].map((f) =>
  fileURLToPath(new URL(`./testdata/${f}`, import.meta.url)),
);
const root = loadProtoSync(files);
const reference = protobuf.loadSync(files);

const typeNames = [
  "pb.SumRequest",
  "pb.ConcatReply",
  "rich.v1.Scalars",
  "rich.v1.Repeated",
  "rich.v1.Choice",
  "rich.v1.Maps",
  "rich.v1.Tree",
  "rich.v1.WellKnown",
  "legacy.Record",
];

const knownReason = new RegExp(
  `^(${[
    "truncated data: a value or a length runs past the end of the message",
    "invalid wire type [67] \\(only 0 to 5 exist\\)",
    "an end-group tag \\(wire type 4\\)( for field \\d+)? without a group",
    "invalid tag: field number 0",
    "malformed (tag|length): longer than 5 bytes",
    "malformed varint: longer than 10 bytes",
    "messages nested more than 100 deep",
    "a group is not closed",
    "a group ends with the wrong field number(: .+ \\((field \\d+|an? [\\w ]+, used as a group)\\) is closed by an end-group tag for field \\d+)?",
    "a string field is not valid UTF-8",
    "missing required field id",
    "field [\\w.]+ \\(number \\d+\\) has wire type [0-7] \\([^)]+\\), expected .+",
  ].join("|")})$`,
);

/** Decodes; on success checks the message re-encodes to itself, on failure that the error is documented. */
function checkDecode(type: MessageType, bytes: Uint8Array): void {
  let decoded: Record<string, unknown>;
  try {
    decoded = type.decode(bytes);
  } catch (error) {
    if (!(error instanceof ServiceError)) throw error;
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    const prefix = `invalid ${type.typeName} message: `;
    expect(error.message.startsWith(prefix)).toBe(true);
    expect(error.message.slice(prefix.length)).toMatch(knownReason);
    return;
  }
  expect(type.decode(type.encode(decoded))).toEqual(decoded);
}

describe("fuzz: decode", () => {
  it("arbitrary bytes decode to a message that re-encodes, or fail with INVALID_ARGUMENT", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...typeNames),
        fc.uint8Array({ maxLength: 48 }),
        fc.boolean(),
        (name, bytes, asBuffer) => {
          checkDecode(root.messageType(name), asBuffer ? Buffer.from(bytes) : bytes);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("valid messages with bytes flipped, cut, inserted or removed behave the same", () => {
    const mutated = fc
      .tuple(
        fc.constantFrom("rich.v1.Item", "rich.v1.Choice", "rich.v1.Repeated"),
        anyItem,
        fc.array(
          fc.tuple(
            fc.nat(),
            fc.integer({ min: 0, max: 255 }),
            fc.constantFrom("flip", "cut", "insert", "remove"),
          ),
          {
            minLength: 1,
            maxLength: 3,
          },
        ),
      )
      .map(([typeName, item, edits]) => {
        const source =
          typeName === "rich.v1.Item"
            ? root.messageType("rich.v1.Item").encode(item)
            : typeName === "rich.v1.Choice"
              ? root.messageType("rich.v1.Choice").encode({ item, single: item })
              : root.messageType("rich.v1.Repeated").encode({ rItem: [item, item], rInt64: [item.quantity] });
        let bytes = [...source];
        for (const [at, value, edit] of edits) {
          const i = bytes.length === 0 ? 0 : at % bytes.length;
          if (edit === "flip") bytes[i] = (bytes[i] ?? 0) ^ (value || 1);
          else if (edit === "cut") bytes = bytes.slice(0, i);
          else if (edit === "insert") bytes.splice(i, 0, value);
          else bytes.splice(i, 1);
        }
        return [typeName, Uint8Array.from(bytes)] as const;
      });
    fc.assert(
      fc.property(mutated, ([typeName, bytes]) => checkDecode(root.messageType(typeName), bytes)),
      { numRuns: 1500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Arbitrary valid messages, in the exact shape decode returns.

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const uint32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const text = fc.string({ unit: "grapheme", maxLength: 12 });
const bytes = fc.uint8Array({ maxLength: 12 });
const status = fc.oneof(fc.constantFrom(0, 1, 2, -1), int32);

const anyTag = fc.record({ key: text, weight: uint64 });
const anyItem = fc.record({ name: text, quantity: int64, status, tags: fc.array(anyTag, { maxLength: 3 }) });

const anySum = fc.record({ a: int64, b: int64 });

const anyScalars = fc.record({
  fDouble: fc.double(),
  fFloat: fc.float(),
  fInt32: int32,
  fInt64: int64,
  fUint32: uint32,
  fUint64: uint64,
  fSint32: int32,
  fSint64: int64,
  fFixed32: uint32,
  fFixed64: uint64,
  fSfixed32: int32,
  fSfixed64: int64,
  fBool: fc.boolean(),
  fString: text,
  fBytes: bytes,
});

const list = <T>(arb: fc.Arbitrary<T>) => fc.array(arb, { maxLength: 5 });
const anyRepeated = fc.record({
  rDouble: list(fc.double()),
  rFloat: list(fc.float()),
  rInt32: list(int32),
  rInt64: list(int64),
  rUint32: list(uint32),
  rUint64: list(uint64),
  rSint32: list(int32),
  rSint64: list(int64),
  rFixed32: list(uint32),
  rFixed64: list(uint64),
  rSfixed32: list(int32),
  rSfixed64: list(int64),
  rBool: list(fc.boolean()),
  rString: list(text),
  rBytes: list(bytes),
  rStatus: list(status),
  rItem: fc.array(anyItem, { maxLength: 2 }),
  rUnpacked: list(int64),
});

const anyChoice = fc
  .record({
    single: fc.option(anyItem, { nil: null }),
    kind: fc.oneof(
      fc.constant({}),
      text.map((v) => ({ text: v })),
      int64.map((v) => ({ number: v })),
      anyItem.map((v) => ({ item: v })),
      bytes.map((v) => ({ blob: v })),
      status.map((v) => ({ state: v })),
    ),
    other: fc.oneof(
      fc.constant({}),
      fc.boolean().map((v) => ({ flag: v })),
      fc.double().map((v) => ({ ratio: v })),
    ),
    maybe: fc.option(int32, { nil: undefined }),
    maybeBig: fc.option(uint64, { nil: undefined }),
    maybeText: fc.option(text, { nil: undefined }),
  })
  .map(({ single, kind, other, maybe, maybeBig, maybeText }) => {
    const value: Record<string, unknown> = {
      single,
      kind: Object.keys(kind)[0],
      other: Object.keys(other)[0],
      ...kind,
      ...other,
    };
    if (maybe !== undefined) value.maybe = maybe;
    if (maybeBig !== undefined) value.maybeBig = maybeBig;
    if (maybeText !== undefined) value.maybeText = maybeText;
    return value;
  });

const keyed = <T>(key: fc.Arbitrary<string>, value: fc.Arbitrary<T>) =>
  fc.dictionary(key, value, { maxKeys: 4, noNullPrototype: true });
const anyMaps = fc.record({
  byName: keyed(text, int64),
  byId: keyed(int64.map(String), text),
  items: keyed(uint64.map(String), anyItem),
  flags: keyed(fc.constantFrom("true", "false"), status),
  blobs: keyed(int32.map(String), bytes),
  signed: keyed(int64.map(String), int64),
  ratios: keyed(uint32.map(String), fc.double()),
  namedItems: keyed(text, anyItem),
});

type Tree = { label: string; children: Tree[]; parentHint: Tree | null };
const tree: (depth?: number) => fc.Arbitrary<Tree> = fc.memo<Tree>((depth) =>
  fc.record({
    label: text,
    children: depth <= 1 ? fc.constant([]) : fc.array(tree(depth - 1), { maxLength: 2 }),
    parentHint: depth <= 1 ? fc.constant(null) : fc.option(tree(depth - 1), { nil: null }),
  }),
);
const anyTree = tree(4);

const wrapped = <T>(arb: fc.Arbitrary<T>) =>
  fc.option(
    arb.map((value) => ({ value })),
    { nil: null },
  );
const anyWellKnown = fc.record({
  at: fc.option(fc.record({ seconds: int64, nanos: int32 }), { nil: null }),
  took: fc.option(fc.record({ seconds: int64, nanos: int32 }), { nil: null }),
  meta: fc.constant(null),
  value: fc.constant(null),
  list: fc.constant(null),
  big: wrapped(int64),
  ubig: wrapped(uint64),
  name: wrapped(text),
  flag: wrapped(fc.boolean()),
  data: wrapped(bytes),
  ratio: wrapped(fc.double()),
  small: wrapped(int32),
  usmall: wrapped(uint32),
  fratio: wrapped(fc.float()),
  nothing: fc.option(fc.constant({}), { nil: null }),
  extra: fc.option(fc.record({ typeUrl: text, value: bytes }), { nil: null }),
});

/** Every 64-bit value in a protobufjs toObject({ longs: String }) result, as bigint, for comparing. */
function longsToBigInt(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(longsToBigInt);
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, longsToBigInt(v)]));
  }
  return value;
}

describe("fuzz: round trips", () => {
  const cases: [string, fc.Arbitrary<Record<string, unknown>>][] = [
    ["pb.SumRequest", anySum],
    ["rich.v1.Scalars", anyScalars],
    ["rich.v1.Repeated", anyRepeated],
    ["rich.v1.Item", anyItem],
    ["rich.v1.Choice", anyChoice],
    ["rich.v1.Maps", anyMaps],
    ["rich.v1.Tree", anyTree],
    ["rich.v1.WellKnown", anyWellKnown],
  ];

  it.each(cases)("%s: decode(encode(m)) equals m", (typeName, arbitrary) => {
    const type = root.messageType(typeName);
    fc.assert(
      fc.property(arbitrary, (message) => {
        expect(type.decode(type.encode(message))).toEqual(message);
      }),
      { numRuns: 300 },
    );
  });

  it("addsvc: protobufjs on its own reads our bytes as the same 64-bit values, and we read its", () => {
    const SumRequest = root.messageType("pb.SumRequest");
    const raw = reference.lookupType("pb.SumRequest");
    fc.assert(
      fc.property(anySum, ({ a, b }) => {
        const ours = SumRequest.encode({ a, b });
        const theirs = raw.toObject(raw.decode(ours), { longs: String, defaults: true });
        expect(theirs).toEqual({ a: a.toString(), b: b.toString() });
        const back = raw.encode(raw.fromObject({ a: a.toString(), b: b.toString() })).finish();
        expect(SumRequest.decode(back)).toEqual({ a, b });
      }),
      { numRuns: 1000 },
    );
  });

  it("rich.v1.Scalars: protobufjs on its own reads our bytes as the same values", () => {
    const Scalars = root.messageType("rich.v1.Scalars");
    const raw = reference.lookupType("rich.v1.Scalars");
    fc.assert(
      fc.property(anyScalars, (message) => {
        const theirs = raw.toObject(raw.decode(Scalars.encode(message)), { longs: String, defaults: true });
        const expected = Object.fromEntries(
          Object.entries(message).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]),
        );
        expect(longsToBigInt(theirs)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });
});
