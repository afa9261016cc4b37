import { readFileSync } from "node:fs";
import { parseProto } from "@svckit/codec-protobuf";
import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

// #region readme-example (the README's first ts block, minus its imports, which this file shares)
const root = parseProto(`syntax = "proto3"; package pb;
  service Add { rpc Sum (SumRequest) returns (SumReply) {} }
  message SumRequest { int64 a = 1; int64 b = 2; }
  message SumReply { int64 v = 1; string err = 2; }`); // or: await loadProto("addsvc.proto")
const SumRequest = root.messageType<{ a: bigint; b: bigint }>("pb.SumRequest");
const sum = root.service("pb.Add").methods.Sum; // { path: "/pb.Add/Sum", requestType, responseType, ... }

const bytes = SumRequest.encode({ a: 1n, b: 2n ** 60n }); // 08 01 10 80 80 80 80 80 80 80 80 10
SumRequest.decode(bytes); // { a: 1n, b: 1152921504606846976n }
// SumRequest.decode(bytes.subarray(0, 4)) throws ServiceError INVALID_ARGUMENT
//   "invalid pb.SumRequest message: truncated data: a value or a length runs past the end of the message"
// #endregion

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const self = readFileSync(new URL(import.meta.url), "utf8");

function firstTsBlock(markdown: string): string {
  const match = /```ts\n([\s\S]*?)```/.exec(markdown);
  if (match?.[1] === undefined) throw new Error("README has no ts code block");
  return match[1];
}

describe("README example", () => {
  it("is the code this test runs: same body, and its imports are this file's imports", () => {
    const block = firstTsBlock(readme);
    const lines = block.split("\n");
    const imports = lines.filter((line) => line.startsWith("import "));
    const body = lines
      .filter((line) => !line.startsWith("import "))
      .join("\n")
      .trim();
    const region = /\/\/ #region readme-example[^\n]*\n([\s\S]*?)\/\/ #endregion/.exec(self)?.[1]?.trim();
    expect(body).toBe(region);
    for (const line of imports) expect(self).toContain(`${line}\n`);
    expect(lines.filter((line) => line.trim() !== "").length).toBeLessThan(15); // STYLE rule 12
  });

  it("describes the method as the comment says", () => {
    expect(sum?.path).toBe("/pb.Add/Sum");
    expect(sum?.requestType).toBe(SumRequest);
    expect(sum?.responseType.typeName).toBe("pb.SumReply");
  });

  it("encodes and decodes as the comments say", () => {
    expect(Buffer.from(bytes).toString("hex")).toBe("080110808080808080808010");
    expect(SumRequest.decode(bytes)).toEqual({ a: 1n, b: 1152921504606846976n });
  });

  it("rejects truncated bytes with INVALID_ARGUMENT and the message shown", () => {
    let err: unknown;
    try {
      SumRequest.decode(bytes.subarray(0, 4));
    } catch (error) {
      err = error;
    }
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect((err as ServiceError).message).toBe(
      "invalid pb.SumRequest message: truncated data: a value or a length runs past the end of the message",
    );
  });

  it("documents every error message the tests pin", () => {
    for (const message of [
      "truncated data: a value or a length runs past the end of the message",
      "field pb.SumRequest.a (number 1) has wire type 2 (length-delimited), expected 0 (varint)",
      "invalid wire type 6 (only 0 to 5 exist)",
      "an end-group tag (wire type 4) for field 1 without a group",
      "invalid tag: field number 0",
      "malformed varint: longer than 10 bytes",
      "malformed tag: longer than 5 bytes",
      "a group is not closed",
      "a group ends with the wrong field number: group legacy.Record.extra (field 6) is closed by an end-group tag for field 7",
      "field pb.SumRequest.a (an int64, used as a group)",
      "a string field is not valid UTF-8",
      "missing required field id",
      "messages nested more than 100 deep",
      "expected bytes (a Uint8Array), got a string",
      "a: out of range for int64",
      "kind: more than one member of the oneof is set (text, number)",
      "messages are nested more than 100 deep (is there a cycle?)",
      'invalid rich.v1.Item JSON: unknown field: "nope"',
      "invalid g.B JSON: data: not valid base64 (standard or URL-safe alphabet, padding optional)",
      "invalid g.W JSON: missing required field r.id",
      'invalid a.Holder JSON: any: an Any with members needs "@type" naming its message type ({} is the empty Any)',
      'invalid names.Keys message: counts["\\ud800"]: key is not valid Unicode (a lone surrogate)',
      'field a_b and field a__b of c.M have the same JS name "aB" (rename one)',
      "rich.v1.WellKnown message has no JSON form: google.protobuf.Timestamp out of range",
      "an Any with a value but no type URL has no JSON form (nothing names the value's message type)",
      'unknown message type "SumRequest" (names are fully qualified: did you mean "pb.SumRequest"?)',
      '"pb.Add" is a service, not a message type',
    ]) {
      expect(readme).toContain(message);
    }
  });
});
