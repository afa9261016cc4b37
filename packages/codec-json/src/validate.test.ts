import { type StandardSchemaV1, validate } from "@svckit/codec-json";
import { Code, ServiceError } from "@svckit/endpoint";
import * as v from "valibot";
import { describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";

interface FieldViolation {
  field: string;
  description: string;
}

function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

function violations(err: ServiceError): FieldViolation[] {
  expect(err.details).toHaveLength(1);
  const detail = err.details[0];
  expect(detail?.type).toBe("google.rpc.BadRequest");
  const value = detail?.value as { fieldViolations: FieldViolation[] } | undefined;
  return value?.fieldViolations ?? [];
}

/** A hand-written Standard Schema that fails with the given issues and counts its runs. */
function failing(issues: StandardSchemaV1.Issue[]): StandardSchemaV1<unknown, never> & { runs: number } {
  const schema = {
    runs: 0,
    "~standard": {
      version: 1 as const,
      vendor: "test",
      validate: () => {
        schema.runs++;
        return { issues };
      },
    },
  };
  return schema;
}

describe("validate with zod 4", () => {
  const Req = z.object({
    s: z.string().transform((s) => s.toUpperCase()),
    a: z.object({ b: z.array(z.number()) }),
  });

  it("returns the schema's output synchronously, transforms applied and unknown keys stripped", () => {
    const out = validate(Req, { s: "hi", a: { b: [1, 2] }, extra: true });
    expect(out).not.toBeInstanceOf(Promise);
    expect(out).toEqual({ s: "HI", a: { b: [1, 2] } });
    expectTypeOf(out).toEqualTypeOf<
      { s: string; a: { b: number[] } } | Promise<{ s: string; a: { b: number[] } }>
    >();
  });

  it("fails with INVALID_ARGUMENT, the first issue in the message and every issue in details", () => {
    const err = thrown(() => validate(Req, { s: 1, a: { b: [1, "x", 3, null] } }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe("invalid request: s: Invalid input: expected string, received number");
    expect(violations(err)).toEqual([
      { field: "s", description: "Invalid input: expected string, received number" },
      { field: "a.b[1]", description: "Invalid input: expected number, received string" },
      { field: "a.b[3]", description: "Invalid input: expected number, received null" },
    ]);
    expect(err.toJSON()).toEqual({ code: "INVALID_ARGUMENT", message: err.message, details: err.details });
  });

  it("says (root) for an issue about the value as a whole", () => {
    const err = thrown(() => validate(Req, "text"));
    expect(err.message).toBe("invalid request: (root): Invalid input: expected object, received string");
    expect(violations(err)).toEqual([
      { field: "", description: "Invalid input: expected object, received string" },
    ]);
  });

  it("formats keys that are not identifiers with brackets and quotes", () => {
    const schema = z.object({
      "odd key": z.object({ "0": z.number(), $ok_1: z.array(z.object({ x: z.string() })) }),
    });
    const err = thrown(() => validate(schema, { "odd key": { "0": "no", $ok_1: [{ x: "a" }, { x: 2 }] } }));
    expect(violations(err).map((f) => f.field)).toEqual(['["odd key"]["0"]', '["odd key"].$ok_1[1].x']);
    expect(err.message).toBe(
      'invalid request: ["odd key"]["0"]: Invalid input: expected number, received string',
    );
  });

  it("returns a Promise for an async schema, resolving to the output or rejecting with INVALID_ARGUMENT", async () => {
    const Name = z.object({ name: z.string().refine(async (s) => s !== "taken", "name is taken") });
    const ok = validate(Name, { name: "free" });
    expect(ok).toBeInstanceOf(Promise);
    await expect(ok).resolves.toEqual({ name: "free" });

    const bad = validate(Name, { name: "taken" });
    expect(bad).toBeInstanceOf(Promise);
    const err = await Promise.resolve(bad).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect((err as ServiceError).message).toBe("invalid request: name: name is taken");
  });
});

describe("validate with valibot 1", () => {
  const Req = v.object({
    s: v.pipe(
      v.string(),
      v.transform((s) => s.length),
    ),
    a: v.object({ b: v.array(v.number()) }),
  });

  it("returns the schema's output synchronously", () => {
    const out = validate(Req, { s: "four", a: { b: [] } });
    expect(out).not.toBeInstanceOf(Promise);
    expect(out).toEqual({ s: 4, a: { b: [] } });
    expectTypeOf(out).toEqualTypeOf<
      { s: number; a: { b: number[] } } | Promise<{ s: number; a: { b: number[] } }>
    >();
  });

  it("reads valibot's path segment objects", () => {
    const err = thrown(() => validate(Req, { s: 1, a: { b: [0, "x"] } }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe("invalid request: s: Invalid type: Expected string but received 1");
    expect(violations(err)).toEqual([
      { field: "s", description: "Invalid type: Expected string but received 1" },
      { field: "a.b[1]", description: 'Invalid type: Expected number but received "x"' },
    ]);
  });

  it("says (root) when valibot gives no path", () => {
    const err = thrown(() => validate(Req, null));
    expect(err.message).toBe("invalid request: (root): Invalid type: Expected Object but received null");
    expect(violations(err)).toEqual([
      { field: "", description: "Invalid type: Expected Object but received null" },
    ]);
  });

  it("returns a Promise for an async valibot schema", async () => {
    const Async = v.objectAsync({
      n: v.pipeAsync(
        v.number(),
        v.checkAsync(async (n) => n > 0, "must be positive"),
      ),
    });
    const bad = validate(Async, { n: -1 });
    expect(bad).toBeInstanceOf(Promise);
    await expect(bad).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
      message: "invalid request: n: must be positive",
    });
    await expect(validate(Async, { n: 1 })).resolves.toEqual({ n: 1 });
  });

  it("shortens very long issue messages so an error never carries much of the request", () => {
    const err = thrown(() => validate(v.number(), "x".repeat(10_000)));
    expect(err.message.length).toBeLessThanOrEqual(250);
    expect(err.message.endsWith("…")).toBe(true);
    expect(violations(err)[0]?.description).toHaveLength(200);
  });
});

describe("validate with any Standard Schema", () => {
  it("formats symbol keys, path segment objects and long keys", () => {
    const schema = failing([
      { message: "m1", path: [Symbol("tag"), { key: "x" }, { key: 2 }] },
      { message: "m2", path: [] },
      { message: "m3", path: ["k".repeat(300)] },
    ]);
    const err = thrown(() => validate(schema, {}));
    expect(err.message).toBe("invalid request: [Symbol(tag)].x[2]: m1");
    const fields = violations(err).map((f) => f.field);
    expect(fields.slice(0, 2)).toEqual(["[Symbol(tag)].x[2]", ""]);
    expect(fields[2]).toBe(`["${"k".repeat(99)}…"]`);
  });

  it("lists at most 20 issues in fieldViolations and counts the rest in one last entry", () => {
    // A 900 KB body of 300,000 "" items once made a 25 MB error; 5,000 items show the same.
    const err = thrown(() =>
      validate(
        z.array(z.number()),
        Array.from({ length: 5000 }, () => ""),
      ),
    );
    expect(err.message).toBe("invalid request: [0]: Invalid input: expected number, received string");
    const list = violations(err);
    expect(list).toHaveLength(21);
    expect(list[19]).toEqual({
      field: "[19]",
      description: "Invalid input: expected number, received string",
    });
    expect(list[20]).toEqual({ field: "…", description: "…and 4980 more issues" });
    const exactly20 = failing(Array.from({ length: 20 }, (_, i) => ({ message: `m${i}`, path: [i] })));
    expect(
      violations(thrown(() => validate(exactly20, [])))
        .map((f) => f.field)
        .at(-1),
    ).toBe("[19]");
  });

  it("keeps the error small for many long keys (z.record with 5,000 keys of ~190 characters)", () => {
    const record: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) record[`${i}-${"k".repeat(185)}`] = "x";
    const err = thrown(() => validate(z.record(z.string(), z.number()), record));
    const list = violations(err);
    expect(list).toHaveLength(21);
    expect(list[0]?.field).toBe(`["0-${"k".repeat(97)}…"]`);
    expect(list[20]?.description).toBe("…and 4980 more issues");
    expect(JSON.stringify(err.details).length).toBeLessThan(21 * (300 + 200 + 40));
  });

  it("cuts a path longer than 300 characters, however many keys it has", () => {
    const schema = failing([{ message: "m", path: Array.from({ length: 10_000 }, () => "abcdefghij") }]);
    const err = thrown(() => validate(schema, {}));
    const field = violations(err)[0]?.field ?? "";
    expect(field).toHaveLength(300);
    expect(field.startsWith("abcdefghij.abcdefghij.")).toBe(true);
    expect(field.endsWith("…")).toBe(true);
    expect(err.message).toBe(`invalid request: ${field}: m`);
  });

  it("runs the schema exactly once per call", () => {
    const schema = failing([{ message: "nope" }]);
    thrown(() => validate(schema, 1));
    expect(schema.runs).toBe(1);
  });

  it("treats a falsy issues value as success", () => {
    const schema: StandardSchemaV1<unknown, number> = {
      "~standard": { version: 1, vendor: "test", validate: () => ({ value: 7, issues: undefined }) },
    };
    expect(validate(schema, "anything")).toBe(7);
  });

  it("does not catch an exception thrown by the schema itself", async () => {
    const throwing: StandardSchemaV1<unknown, string> = {
      "~standard": {
        version: 1,
        vendor: "test",
        validate: () => {
          throw new RangeError("bug in schema");
        },
      },
    };
    expect(() => validate(throwing, "x")).toThrow(RangeError);
    // zod retries a throwing schema asynchronously, so its bug arrives as a rejection.
    const refined = z.string().refine(() => {
      throw new RangeError("bug in refinement");
    });
    await expect(validate(refined, "x")).rejects.toThrow(RangeError);
  });

  it("infers output types with StandardSchemaV1.InferOutput and InferInput", () => {
    const schema = z.object({ n: z.string().transform(Number) });
    expectTypeOf<StandardSchemaV1.InferOutput<typeof schema>>().toEqualTypeOf<{ n: number }>();
    expectTypeOf<StandardSchemaV1.InferInput<typeof schema>>().toEqualTypeOf<{ n: string }>();
  });
});

describe("validate on a value nested deeper than a recursive schema can follow", () => {
  type Tree = { c?: Tree[] };
  const tree: z.ZodType<Tree> = z.lazy(() => z.object({ c: z.array(tree).optional() }));
  const vtree: v.GenericSchema<Tree> = v.lazy(() => v.object({ c: v.optional(v.array(vtree)) }));
  // Built as JSON and parsed (as a request body would be); JSON.parse itself copes with any depth.
  const deep = JSON.parse(`${'{"c":['.repeat(50_000)}{}${"]}".repeat(50_000)}`) as unknown;

  it("is INVALID_ARGUMENT, not the stack overflow (zod)", async () => {
    // zod's standard validate retries a throwing parse asynchronously, so the error comes as a rejection.
    const error = await Promise.resolve()
      .then(() => validate(tree, deep))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect((error as ServiceError).message).toBe("invalid request: nested too deeply to validate");
    expect((error as ServiceError).cause).toBeInstanceOf(RangeError);
  });

  it("is INVALID_ARGUMENT, not the stack overflow (valibot)", () => {
    const error = thrown(() => validate(vtree, deep));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe("invalid request: nested too deeply to validate");
  });

  it("is INVALID_ARGUMENT from an async schema too", async () => {
    const asyncTree: z.ZodType<Tree> = z.lazy(() =>
      z.object({ c: z.array(asyncTree).optional() }).refine(async () => true),
    );
    const error = await Promise.resolve()
      .then(() => validate(asyncTree, deep))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
  });

  it("leaves other errors a schema throws alone", () => {
    const broken: StandardSchemaV1<unknown, unknown> = {
      "~standard": {
        version: 1,
        vendor: "test",
        validate: () => {
          throw new RangeError("bad range");
        },
      },
    };
    expect(() => validate(broken, 1)).toThrow("bad range");
  });
});
