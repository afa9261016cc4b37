import {
  Code,
  type CodeName,
  codeFromString,
  codeNames,
  codeToHttpStatus,
  codeToString,
  httpStatusToCode,
  httpStatusToCodeTable,
  isCode,
} from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

// The canonical table, written out independently of the sources: [code, number, name, HTTP status].
const canonical: readonly (readonly [Code, number, CodeName, number])[] = [
  [Code.OK, 0, "OK", 200],
  [Code.CANCELLED, 1, "CANCELLED", 499],
  [Code.UNKNOWN, 2, "UNKNOWN", 500],
  [Code.INVALID_ARGUMENT, 3, "INVALID_ARGUMENT", 400],
  [Code.DEADLINE_EXCEEDED, 4, "DEADLINE_EXCEEDED", 504],
  [Code.NOT_FOUND, 5, "NOT_FOUND", 404],
  [Code.ALREADY_EXISTS, 6, "ALREADY_EXISTS", 409],
  [Code.PERMISSION_DENIED, 7, "PERMISSION_DENIED", 403],
  [Code.RESOURCE_EXHAUSTED, 8, "RESOURCE_EXHAUSTED", 429],
  [Code.FAILED_PRECONDITION, 9, "FAILED_PRECONDITION", 400],
  [Code.ABORTED, 10, "ABORTED", 409],
  [Code.OUT_OF_RANGE, 11, "OUT_OF_RANGE", 400],
  [Code.UNIMPLEMENTED, 12, "UNIMPLEMENTED", 501],
  [Code.INTERNAL, 13, "INTERNAL", 500],
  [Code.UNAVAILABLE, 14, "UNAVAILABLE", 503],
  [Code.DATA_LOSS, 15, "DATA_LOSS", 500],
  [Code.UNAUTHENTICATED, 16, "UNAUTHENTICATED", 401],
];

// HTTP status → code for every entry of httpStatusToCodeTable, written out independently.
const reverse: readonly (readonly [number, Code])[] = [
  [400, Code.INVALID_ARGUMENT],
  [401, Code.UNAUTHENTICATED],
  [403, Code.PERMISSION_DENIED],
  [404, Code.NOT_FOUND],
  [405, Code.UNIMPLEMENTED],
  [408, Code.DEADLINE_EXCEEDED],
  [409, Code.ALREADY_EXISTS],
  [412, Code.FAILED_PRECONDITION],
  [413, Code.RESOURCE_EXHAUSTED],
  [415, Code.INVALID_ARGUMENT],
  [416, Code.OUT_OF_RANGE],
  [422, Code.INVALID_ARGUMENT],
  [429, Code.RESOURCE_EXHAUSTED],
  [499, Code.CANCELLED],
  [500, Code.INTERNAL],
  [501, Code.UNIMPLEMENTED],
  [502, Code.UNAVAILABLE],
  [503, Code.UNAVAILABLE],
  [504, Code.DEADLINE_EXCEEDED],
];

describe("Code", () => {
  it("has exactly the 17 canonical codes with gRPC's numeric values", () => {
    expect(Object.keys(Code)).toHaveLength(17);
    expect(Object.values(Code)).toEqual(Array.from({ length: 17 }, (_, i) => i));
  });

  it.each(canonical)("Code.%s has the numeric value %i and name %s", (code, value, name) => {
    expect(code).toBe(value);
    expect(Code[name]).toBe(value);
  });
});

describe("codeNames / codeToString", () => {
  it("covers every code and nothing else", () => {
    expect(Object.keys(codeNames).map(Number)).toEqual(canonical.map(([c]) => c));
  });

  it.each(canonical)("code %i → %s", (code, _value, name) => {
    expect(codeNames[code]).toBe(name);
    expect(codeToString(code)).toBe(name);
  });

  it.each([-1, 17, 99, 1.5, Number.NaN, Number.POSITIVE_INFINITY])("codeToString(%s) → UNKNOWN", (n) => {
    expect(codeToString(n)).toBe("UNKNOWN");
  });
});

describe("codeToHttpStatus", () => {
  it("covers every code and nothing else", () => {
    expect(Object.keys(codeToHttpStatus).map(Number)).toEqual(canonical.map(([c]) => c));
  });

  it.each(canonical)("code %i (%s) → HTTP %i", (code, _value, _name, status) => {
    expect(codeToHttpStatus[code]).toBe(status);
  });
});

describe("httpStatusToCodeTable", () => {
  it("holds exactly the listed statuses", () => {
    expect(Object.keys(httpStatusToCodeTable).map(Number)).toEqual(reverse.map(([s]) => s));
  });

  it.each(reverse)("HTTP %i → code %i", (status, code) => {
    expect(httpStatusToCodeTable[status as keyof typeof httpStatusToCodeTable]).toBe(code);
    expect(httpStatusToCode(status)).toBe(code);
  });

  it("round-trips every code whose status is not shared", () => {
    const counts = new Map<number, number>();
    for (const [, , , status] of canonical) counts.set(status, (counts.get(status) ?? 0) + 1);
    const unshared = canonical.filter(([, , , status]) => counts.get(status) === 1);
    expect(unshared.map(([, , name]) => name)).toEqual([
      "OK",
      "CANCELLED",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "UNIMPLEMENTED",
      "UNAVAILABLE",
      "UNAUTHENTICATED",
    ]);
    for (const [code, , , status] of unshared) expect(httpStatusToCode(status)).toBe(code);
  });

  it("maps every status that a code maps to back to some code with that status", () => {
    for (const [, , , status] of canonical) {
      expect(codeToHttpStatus[httpStatusToCode(status)]).toBe(status);
    }
  });
});

describe("httpStatusToCode", () => {
  it.each([200, 201, 202, 204, 206, 299])("2xx %i → OK", (status) => {
    expect(httpStatusToCode(status)).toBe(Code.OK);
  });

  it.each([
    0,
    100,
    101,
    199,
    300,
    301,
    304,
    399,
    402,
    406,
    410,
    418,
    451,
    498,
    505,
    511,
    599,
    600,
    -1,
    Number.NaN,
  ])("unmapped %s → UNKNOWN", (status) => {
    expect(httpStatusToCode(status)).toBe(Code.UNKNOWN);
  });
});

describe("codeFromString", () => {
  it.each(canonical)("parses %i from %s in any case", (code, _value, name) => {
    expect(codeFromString(name)).toBe(code);
    expect(codeFromString(name.toLowerCase())).toBe(code);
    const mixed = [...name].map((ch, i) => (i % 2 === 0 ? ch.toLowerCase() : ch)).join("");
    expect(codeFromString(mixed)).toBe(code);
  });

  it.each([
    "",
    " ",
    "NOPE",
    "NOT FOUND",
    "NOT-FOUND",
    " NOT_FOUND",
    "NOT_FOUND ",
    "NOTFOUND",
    "5",
    "0",
    "constructor",
    "__proto__",
    "toString",
    "hasOwnProperty",
    "valueOf",
    // toUpperCase maps "ı" → "I" and "ſ" → "S": these are not code names.
    "ınternal",
    "reſource_exhausted",
  ])("rejects %j", (junk) => {
    expect(codeFromString(junk)).toBeUndefined();
  });
});

describe("isCode", () => {
  it.each(canonical)("accepts %i", (code) => {
    expect(isCode(code)).toBe(true);
  });

  it.each([-1, 17, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "1", "OK", null, undefined, {}, [], true, 1n])(
    "rejects %s",
    (value) => {
      expect(isCode(value)).toBe(false);
    },
  );
});
