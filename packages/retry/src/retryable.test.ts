import { readdirSync, readFileSync } from "node:fs";
import { Code, type CodeName, ServiceError } from "@svckit/endpoint";
import { isRetryable } from "@svckit/retry";
import { describe, expect, it } from "vitest";

describe("isRetryable", () => {
  const table: [CodeName, boolean, boolean, boolean][] = [
    // code, default, { attemptTimedOut }, { retryResourceExhausted }
    ["CANCELLED", false, false, false],
    ["UNKNOWN", false, false, false],
    ["INVALID_ARGUMENT", false, false, false],
    ["DEADLINE_EXCEEDED", false, true, false],
    ["NOT_FOUND", false, false, false],
    ["ALREADY_EXISTS", false, false, false],
    ["PERMISSION_DENIED", false, false, false],
    ["RESOURCE_EXHAUSTED", false, false, true],
    ["FAILED_PRECONDITION", false, false, false],
    ["ABORTED", false, false, false],
    ["OUT_OF_RANGE", false, false, false],
    ["UNIMPLEMENTED", false, false, false],
    ["INTERNAL", false, false, false],
    ["UNAVAILABLE", true, true, true],
    ["DATA_LOSS", false, false, false],
    ["UNAUTHENTICATED", false, false, false],
  ];

  it("covers every code but OK", () => {
    expect(table.map(([name]) => name).sort()).toEqual(
      (Object.keys(Code) as CodeName[]).filter((n) => n !== "OK").sort(),
    );
  });

  it.each(table)(
    "%s: default %s, attempt timed out %s, retryResourceExhausted %s",
    (name, plain, timedOut, exhausted) => {
      const error = new ServiceError(Code[name]);
      expect(isRetryable(error)).toBe(plain);
      expect(isRetryable(error, {})).toBe(plain);
      expect(isRetryable(error, { attemptTimedOut: true })).toBe(timedOut);
      expect(isRetryable(error, { retryResourceExhausted: true })).toBe(exhausted);
    },
  );

  it("never retries what is not a ServiceError (it would be INTERNAL)", () => {
    expect(isRetryable(new Error("boom"))).toBe(false);
    expect(isRetryable({ code: Code.UNAVAILABLE })).toBe(false);
    expect(isRetryable(undefined)).toBe(false);
    expect(isRetryable(new DOMException("aborted", "AbortError"))).toBe(false);
  });

  it("recognises a ServiceError from another copy of the endpoint package", () => {
    const lookalike = Object.assign(new Error("down"), { name: "ServiceError", code: Code.UNAVAILABLE });
    expect(isRetryable(lookalike)).toBe(true);
  });
});

describe("package", () => {
  it("imports nothing but @svckit/endpoint and its own files: no transport, no node: module", () => {
    const dir = new URL("./", import.meta.url);
    const sources = readdirSync(dir).filter(
      (f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && f !== "test-helpers.ts",
    );
    expect(sources.length).toBeGreaterThan(5);
    for (const file of sources) {
      const text = readFileSync(new URL(file, dir), "utf8");
      const specifiers = [...text.matchAll(/from "([^"]+)"/g)].map((m) => m[1]);
      for (const s of specifiers) expect(s === "@svckit/endpoint" || s?.startsWith("./")).toBe(true);
    }
  });
});
