import { fileURLToPath } from "node:url";
import { loadProtoSync, type MessageType, parseProto } from "@svckit/codec-protobuf";
import { Code, ServiceError } from "@svckit/endpoint";
import protobuf from "protobufjs";
import { describe, expect, it, vi } from "vitest";

const root = loadProtoSync(
  ["addsvc.proto", "rich.proto", "legacy.proto"].map((f) =>
    fileURLToPath(new URL(`./testdata/${f}`, import.meta.url)),
  ),
);

function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replaceAll(" ", ""), "hex"));
}

/** Tree nested `depth` levels deep through field 3 (parentHint). */
function nested(depth: number): Uint8Array {
  let bytes = new Uint8Array(0);
  for (let i = 0; i < depth; i++) {
    const head = [0x1a];
    for (let n = bytes.length; ; n >>>= 7) {
      if (n < 0x80) {
        head.push(n);
        break;
      }
      head.push((n & 0x7f) | 0x80);
    }
    bytes = new Uint8Array([...head, ...bytes]);
  }
  return bytes;
}

const truncated = "truncated data: a value or a length runs past the end of the message";

// [case, type, bytes (hex), reason]
const cases: [string, string, string, string][] = [
  ["a varint cut off", "pb.SumRequest", "08 80", truncated],
  ["a tag with nothing after it", "pb.SumRequest", "08", truncated],
  ["a length past the end", "pb.ConcatRequest", "0a 05 61", truncated],
  ["a fixed64 cut off", "rich.v1.Scalars", "51 01 02 03", truncated],
  ["a nested message's length past its parent's end", "rich.v1.Item", "22 03 12 05 61", truncated],
  ["a packed field's length past the end", "rich.v1.Repeated", "22 09 01 02", truncated],
  ["garbage", "pb.SumRequest", "de ad be ef", truncated],
  [
    "a known field with the wrong wire type",
    "pb.SumRequest",
    "0a 01 00",
    "field pb.SumRequest.a (number 1) has wire type 2 (length-delimited), expected 0 (varint)",
  ],
  [
    "a string field sent as a varint",
    "pb.ConcatRequest",
    "08 01",
    "field pb.ConcatRequest.a (number 1) has wire type 0 (varint), expected 2 (length-delimited)",
  ],
  [
    "a wrong wire type in a nested message",
    "rich.v1.Item",
    "22 05 15 00 00 00 00",
    "field rich.v1.Item.Tag.weight (number 2) has wire type 5 (32-bit), expected 0 (varint)",
  ],
  [
    "a repeated int64 sent as fixed32",
    "rich.v1.Repeated",
    "25 01 00 00 00",
    "field rich.v1.Repeated.rInt64 (number 4) has wire type 5 (32-bit), expected 0 (varint) or 2 (length-delimited)",
  ],
  ["wire type 6", "pb.SumRequest", "0e", "invalid wire type 6 (only 0 to 5 exist)"],
  ["wire type 7", "pb.SumRequest", "0f 00", "invalid wire type 7 (only 0 to 5 exist)"],
  [
    "an end-group tag outside a group",
    "pb.SumRequest",
    "0c",
    "an end-group tag (wire type 4) for field 1 without a group",
  ],
  ["field number 0", "pb.SumRequest", "00 01", "invalid tag: field number 0"],
  ["a tag longer than 5 bytes", "pb.SumRequest", "ff ff ff ff 7f 00", "malformed tag: longer than 5 bytes"],
  [
    "a varint longer than 10 bytes",
    "pb.SumRequest",
    "08 ff ff ff ff ff ff ff ff ff ff 01",
    "malformed varint: longer than 10 bytes",
  ],
  ["a group that is not closed", "pb.SumRequest", "1b 08 01", truncated],
  [
    "a group closed with the wrong field number",
    "pb.SumRequest",
    "1b 08 01 24",
    "a group ends with the wrong field number: an unknown group (field 3) is closed by an end-group tag for field 4",
  ],
  [
    "a known group closed by another field's end-group tag (it names the group)",
    "legacy.Record",
    "0a 01 78  33 3a 01 6e 3c",
    "a group ends with the wrong field number: group legacy.Record.extra (field 6) is closed by an end-group tag for field 7",
  ],
  [
    "a scalar field's number used to open a group (it is not called a group)",
    "pb.SumRequest",
    "0b 14",
    "a group ends with the wrong field number: field pb.SumRequest.a (an int64, used as a group) is closed by an end-group tag for field 2",
  ],
  [
    "a message field's number used to open a group",
    "rich.v1.Item",
    "23 2c",
    "a group ends with the wrong field number: field rich.v1.Item.tags (a repeated message, used as a group) is closed by an end-group tag for field 5",
  ],
  [
    "an end-group tag without a group, inside a nested message",
    "rich.v1.Item",
    "22 02 3c 00",
    "an end-group tag (wire type 4) for field 7 without a group",
  ],
  [
    "invalid UTF-8 in a proto3 string",
    "pb.ConcatRequest",
    "0a 02 c3 28",
    "a string field is not valid UTF-8",
  ],
  ["a missing proto2 required field", "legacy.Record", "10 01", "missing required field id"],
];

describe("decoding invalid bytes", () => {
  it.each(cases)("%s → INVALID_ARGUMENT", (_, typeName, bytes, reason) => {
    const type = root.messageType(typeName);
    for (const input of [fromHex(bytes), Buffer.from(fromHex(bytes))]) {
      const err = thrown(() => type.decode(input));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toBe(`invalid ${typeName} message: ${reason}`);
      expect(err.cause).toBeInstanceOf(Error); // what protobufjs said, for logs
    }
  });

  it("finds a stray end-group tag inside a map entry's value, as protobufjs reads it", () => {
    const maps = parseProto(`syntax = "proto3"; package k;
      message Sub { int32 x = 1; }
      message K { map<string, Sub> m = 1; Sub one = 2; map<int32, Sub> byId = 3; }`);
    const K = maps.messageType("k.K");
    for (const [bytes, reason] of [
      // m = {"": <Sub with end-group tag 5>}, then one = <Sub with end-group tag 9>
      ["0a 05 12 03 2c 0a 00  12 01 4c", "an end-group tag (wire type 4) for field 5 without a group"],
      // the same after a key, in a map with int32 keys
      ["1a 06 08 07 12 02 3c 00", "an end-group tag (wire type 4) for field 7 without a group"],
      // a group in the entry itself is an unknown one
      [
        "0a 04 1b 08 01 24",
        "a group ends with the wrong field number: an unknown group (field 3) is closed by an end-group tag for field 4",
      ],
    ] as const) {
      expect(thrown(() => K.decode(fromHex(bytes))).message).toBe(`invalid k.K message: ${reason}`);
    }
  });

  it("diagnoses a stray end-group tag after many groups in linear time, naming fields only for the error", () => {
    const Record = root.messageType("legacy.Record");
    const n = 500_000; // 1 MB of well-closed groups (field 6, the known group "extra"), then a stray tag
    const bytes = new Uint8Array(2 * n + 1);
    for (let i = 0; i < n; i++) bytes.set([0x33, 0x34], 2 * i);
    bytes[2 * n] = 0x3c;
    const jsonName = vi.spyOn(protobuf.util, "jsonName");
    try {
      expect(thrown(() => Record.decode(bytes)).message).toBe(
        "invalid legacy.Record message: an end-group tag (wire type 4) for field 7 without a group",
      );
      expect(jsonName).not.toHaveBeenCalled();
      bytes[2 * n] = 0x33; // one more group, closed by the wrong field number
      const wrong = Uint8Array.of(...bytes.subarray(2 * n - 4), 0x3c);
      expect(thrown(() => Record.decode(wrong)).message).toBe(
        "invalid legacy.Record message: a group ends with the wrong field number: group legacy.Record.extra (field 6) is closed by an end-group tag for field 7",
      );
      expect(jsonName.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      jsonName.mockRestore();
    }
  });

  it("accepts 100 levels of nesting and rejects 101", () => {
    const Tree = root.messageType("rich.v1.Tree");
    expect(Tree.decode(nested(100))).toBeTruthy();
    expect(thrown(() => Tree.decode(nested(101))).message).toBe(
      "invalid rich.v1.Tree message: messages nested more than 100 deep",
    );
  });

  it("rejects input that is not bytes", () => {
    const SumRequest = root.messageType("pb.SumRequest") as MessageType;
    for (const input of ["0801", [8, 1], null, undefined, new ArrayBuffer(2)]) {
      const err = thrown(() => SumRequest.decode(input as unknown as Uint8Array));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toMatch(/^invalid pb\.SumRequest message: expected bytes \(a Uint8Array\), got /);
    }
  });

  it("skips unknown fields of every wire type, including groups", () => {
    const SumRequest = root.messageType("pb.SumRequest");
    // field 3 varint, field 4 fixed64, field 5 bytes, field 6 group, field 7 fixed32, then a = 1
    const bytes = fromHex("18 7f  21 0102030405060708  2a 02 6162  33 08 01 34  3d 01020304  08 01");
    expect(SumRequest.decode(bytes)).toEqual({ a: 1n, b: 0n });
  });
});
