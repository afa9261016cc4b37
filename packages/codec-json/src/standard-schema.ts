/**
 * A validator that follows version 1 of the Standard Schema interface (https://standardschema.dev).
 * zod (3.24+ and 4), valibot (1.x), ArkType, Effect Schema and others implement it, so
 * `validate` and `createJsonDecoder` accept a schema from any of them without an adapter
 * or a dependency. Written here from the spec, as the spec asks of libraries that consume it.
 *
 * @typeParam Input - the type the schema accepts.
 * @typeParam Output - the type it produces (after transforms).
 *
 * @example
 * ```ts
 * // A hand-written schema: any object with a conforming "~standard" property works.
 * const positive: StandardSchemaV1<unknown, number> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (value) =>
 *       typeof value === "number" && value > 0
 *         ? { value }
 *         : { issues: [{ message: "expected a positive number" }] },
 *   },
 * };
 * ```
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The Standard Schema properties, under a key that does not clash with a library's own API. */
  readonly "~standard": StandardSchemaV1.Props<Input, Output>;
}

/**
 * The parts of {@link StandardSchemaV1}: its properties, validation results, issues and type helpers.
 *
 * @example
 * ```ts
 * const schema = z.object({ s: z.string() });
 * type Req = StandardSchemaV1.InferOutput<typeof schema>; // { s: string }
 * ```
 */
export declare namespace StandardSchemaV1 {
  /** What a schema exposes under `"~standard"`. */
  export interface Props<Input = unknown, Output = Input> {
    /** The version of the Standard Schema interface: always `1`. */
    readonly version: 1;
    /** The name of the library that made the schema, e.g. `"zod"` or `"valibot"`. */
    readonly vendor: string;
    /**
     * Checks an unknown value. Returns the result, or a Promise of it when the schema has asynchronous
     * parts (e.g. an async refinement). Never throws for invalid input: problems are issues.
     */
    readonly validate: (
      value: unknown,
      options?: Options | undefined,
    ) => Result<Output> | Promise<Result<Output>>;
    /** Type-level only: the input and output types, for {@link InferInput} and {@link InferOutput}. */
    readonly types?: Types<Input, Output> | undefined;
  }

  /** Options a caller may pass to {@link Props.validate}. */
  export interface Options {
    /** Settings specific to the schema library, passed through untouched. */
    readonly libraryOptions?: Record<string, unknown> | undefined;
  }

  /** The outcome of {@link Props.validate}: a value or a list of issues. */
  export type Result<Output> = SuccessResult<Output> | FailureResult;

  /** Validation passed: `value` is the (possibly transformed) output. */
  export interface SuccessResult<Output> {
    /** The validated output. */
    readonly value: Output;
    /** Absent (or another falsy value) on success. */
    readonly issues?: undefined;
  }

  /** Validation failed: at least one issue says why. */
  export interface FailureResult {
    /** What was wrong, in the order the schema found it. */
    readonly issues: ReadonlyArray<Issue>;
  }

  /** One problem found by a schema. */
  export interface Issue {
    /** A human-readable description of the problem. */
    readonly message: string;
    /** Where in the value the problem is: keys and indices from the root; absent or empty for the root. */
    readonly path?: ReadonlyArray<PropertyKey | PathSegment> | undefined;
  }

  /** A path element given as an object (valibot does this) rather than a bare key. */
  export interface PathSegment {
    /** The property key or array index of this step. */
    readonly key: PropertyKey;
  }

  /** The input and output types of a schema (type-level only). */
  export interface Types<Input = unknown, Output = Input> {
    /** The type the schema accepts. */
    readonly input: Input;
    /** The type the schema produces. */
    readonly output: Output;
  }

  /** The input type of a schema. */
  export type InferInput<Schema extends StandardSchemaV1> = NonNullable<
    Schema["~standard"]["types"]
  >["input"];

  /** The output type of a schema: what `validate` returns for it. */
  export type InferOutput<Schema extends StandardSchemaV1> = NonNullable<
    Schema["~standard"]["types"]
  >["output"];
}
