import { createJsonDecoder, parseJson, type StandardSchemaV1 } from "@svckit/codec-json";
import { Code, ServiceError } from "@svckit/endpoint";
import * as v from "valibot";
import { describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";

function thrown(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a ServiceError, nothing was thrown");
}

/** Wraps a schema so its runs are counted. */
function counted<T>(schema: StandardSchemaV1<unknown, T>): {
  schema: StandardSchemaV1<unknown, T>;
  runs: () => number;
} {
  let runs = 0;
  const props = schema["~standard"];
  return {
    schema: {
      "~standard": {
        version: 1,
        vendor: props.vendor,
        validate: (value) => {
          runs++;
          return props.validate(value);
        },
      },
    },
    runs: () => runs,
  };
}

describe("createJsonDecoder", () => {
  it("without a schema is parseJson itself: synchronous, unknown by default", () => {
    const decode = createJsonDecoder();
    expect(decode).toBe(parseJson);
    const out = decode('{"a":1}');
    expect(out).toEqual({ a: 1 });
    expectTypeOf(out).toEqualTypeOf<unknown>();
    expect(createJsonDecoder({})).toBe(parseJson);
  });

  it("with a sync zod schema returns the validated output synchronously, from text or bytes", () => {
    const decode = createJsonDecoder({ schema: z.object({ a: z.number(), b: z.number().default(10) }) });
    const out = decode('{"a":1}');
    expect(out).not.toBeInstanceOf(Promise);
    expect(out).toEqual({ a: 1, b: 10 });
    expect(decode(new TextEncoder().encode('{"a":2,"b":3}'))).toEqual({ a: 2, b: 3 });
    expectTypeOf(decode).toEqualTypeOf<
      (input: string | Uint8Array) => { a: number; b: number } | Promise<{ a: number; b: number }>
    >();
    expect(decode.name).toBe("decodeJson");
  });

  it("with a valibot schema returns valibot's output", () => {
    const decode = createJsonDecoder({ schema: v.object({ tags: v.array(v.pipe(v.string(), v.trim())) }) });
    expect(decode('{"tags":[" a ","b "]}')).toEqual({ tags: ["a", "b"] });
  });

  it("throws INVALID_ARGUMENT for bad JSON before running the schema", () => {
    const { schema, runs } = counted(z.object({ a: z.number() }));
    const decode = createJsonDecoder({ schema });
    const err = thrown(() => decode('{"a":'));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe("malformed JSON: unexpected end of input at line 1, column 6");
    expect(thrown(() => decode("")).message).toBe("empty body: expected a JSON value");
    expect(runs()).toBe(0);
  });

  it("throws INVALID_ARGUMENT with details for JSON that fails the schema, validating once", () => {
    const { schema, runs } = counted(z.object({ user: z.object({ name: z.string().min(1) }) }));
    const decode = createJsonDecoder({ schema });
    const err = thrown(() => decode('{"user":{"name":""}}'));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe("invalid request: user.name: Too small: expected string to have >=1 characters");
    expect(err.details).toEqual([
      {
        type: "google.rpc.BadRequest",
        value: {
          fieldViolations: [
            { field: "user.name", description: "Too small: expected string to have >=1 characters" },
          ],
        },
      },
    ]);
    expect(runs()).toBe(1);
    expect(decode('{"user":{"name":"ann"}}')).toEqual({ user: { name: "ann" } });
    expect(runs()).toBe(2);
  });

  it("with an async schema returns a Promise that resolves or rejects with INVALID_ARGUMENT", async () => {
    const decode = createJsonDecoder({
      schema: z.object({ s: z.string().refine(async (s) => s.length > 2, "too short") }),
    });
    const ok = decode('{"s":"long"}');
    expect(ok).toBeInstanceOf(Promise);
    await expect(ok).resolves.toEqual({ s: "long" });
    const bad = decode('{"s":"x"}');
    expect(bad).toBeInstanceOf(Promise);
    await expect(bad).rejects.toBeInstanceOf(ServiceError);
    await expect(bad).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
      message: "invalid request: s: too short",
    });
    // Malformed JSON is still reported synchronously.
    expect(thrown(() => decode("{")).code).toBe(Code.INVALID_ARGUMENT);
  });

  it("reads the schema's ~standard properties once, at setup", () => {
    let reads = 0;
    const props: StandardSchemaV1.Props<unknown, number> = {
      version: 1,
      vendor: "test",
      validate: (value) =>
        typeof value === "number" ? { value } : { issues: [{ message: "expected a number" }] },
    };
    const schema: StandardSchemaV1<unknown, number> = {
      get "~standard"() {
        reads++;
        return props;
      },
    };
    const decode = createJsonDecoder({ schema });
    expect(decode("1")).toBe(1);
    expect(decode("2")).toBe(2);
    expect(thrown(() => decode('"x"')).message).toBe("invalid request: (root): expected a number");
    expect(reads).toBe(1);
  });
});

describe("createJsonDecoder: maxDepth", () => {
  const nested = (depth: number): string => `${"[".repeat(depth)}${"]".repeat(depth)}`;

  it("refuses a body nested more than 1000 levels by default, with or without a schema", () => {
    const message = "JSON nested too deeply (more than 1000 levels) at line 1, column 1001";
    expect(thrown(() => createJsonDecoder()(nested(1001))).message).toBe(message);
    const decode = createJsonDecoder({ schema: z.unknown() });
    expect(decode(nested(1000))).toHaveLength(1);
    const err = thrown(() => decode(new TextEncoder().encode(nested(1001))));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe(message);
  });

  it("takes its own maxDepth, checked once at setup", () => {
    const shallow = createJsonDecoder({ maxDepth: 2 });
    expect(shallow("[[1]]")).toEqual([[1]]);
    expect(thrown(() => shallow('{"a":{"b":[]}}')).message).toBe(
      "JSON nested too deeply (more than 2 levels) at line 1, column 11",
    );
    const schema = z.object({ a: z.array(z.array(z.number())) });
    const withSchema = createJsonDecoder({ schema, maxDepth: 2 });
    expect(thrown(() => withSchema('{"a":[[1]]}')).message).toBe(
      "JSON nested too deeply (more than 2 levels) at line 1, column 7",
    );
    const unlimited = createJsonDecoder({ maxDepth: Number.POSITIVE_INFINITY });
    expect(unlimited(nested(5000))).toHaveLength(1);
    expect(() => createJsonDecoder({ maxDepth: 0 })).toThrow(
      new TypeError("maxDepth must be a positive integer or Infinity, got 0"),
    );
  });

  it("passes on a TypeError for a body that is not a string or bytes", () => {
    const decode = createJsonDecoder({ schema: z.object({ a: z.number() }) });
    expect(() => decode({ a: 1 } as unknown as string)).toThrow(TypeError);
  });
});
