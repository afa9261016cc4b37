import { readFileSync } from "node:fs";
import { createJsonDecoder, createJsonEncoder } from "@svckit/codec-json";
import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";
import { z } from "zod";

// #region readme-example (the README's first ts block, minus its imports, which this file shares)
const decodeSum = createJsonDecoder({ schema: z.object({ a: z.number(), b: z.number() }) });
const encodeSum = createJsonEncoder<{ v: number }>();

// What a transport does with a request body (a string, a Uint8Array or a Buffer):
async function sum(body: string | Uint8Array): Promise<string> {
  const { a, b } = await decodeSum(body); // typed { a: number; b: number }
  return encodeSum({ v: a + b });
}
// await sum('{"a":1,"b":2}')   → '{"v":3}'
// await sum('{"a":1,"b":"2"}') → ServiceError INVALID_ARGUMENT
//   "invalid request: b: Invalid input: expected number, received string"
// await sum('{"a":')           → "malformed JSON: unexpected end of input at line 1, column 6"
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

  it("sums, as the comment says", async () => {
    await expect(sum('{"a":1,"b":2}')).resolves.toBe('{"v":3}');
    await expect(sum(new TextEncoder().encode('{"a":1,"b":2}'))).resolves.toBe('{"v":3}');
  });

  it("rejects a wrong type with INVALID_ARGUMENT and the message shown", async () => {
    const err = await sum('{"a":1,"b":"2"}').catch((error: unknown) => error);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect((err as ServiceError).message).toBe(
      "invalid request: b: Invalid input: expected number, received string",
    );
  });

  it("rejects malformed JSON with the message shown", async () => {
    await expect(sum('{"a":')).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
      message: "malformed JSON: unexpected end of input at line 1, column 6",
    });
  });

  it("documents every error message the tests pin", () => {
    for (const message of [
      "empty body: expected a JSON value",
      "body is not valid UTF-8: bad byte sequence at byte offset 1",
      "malformed JSON: unexpected character ']' at line 1, column 4",
      "response could not be encoded as JSON",
      "google.rpc.BadRequest",
    ]) {
      expect(readme).toContain(message);
    }
  });
});
