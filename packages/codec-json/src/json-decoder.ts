import { checkMaxDepth, parseJson, parseJsonWith } from "./parse-json.js";
import type { StandardSchemaV1 } from "./standard-schema.js";
import { validateWith } from "./validate.js";

/**
 * Options of {@link createJsonDecoder}.
 *
 * @example
 * ```ts
 * const options: JsonDecoderOptions<{ s: string }> = { schema: z.object({ s: z.string() }) };
 * ```
 */
export interface JsonDecoderOptions<T> {
  /**
   * A Standard Schema (zod, valibot, ...) the parsed value must match; the decoder returns the
   * schema's output. Without one the parsed value is returned as it is, and `T` is only an assertion.
   */
  schema?: StandardSchemaV1<unknown, T>;
  /**
   * The most arrays and objects a request may have nested inside each other; a deeper one is refused
   * with INVALID_ARGUMENT `"JSON nested too deeply (more than N levels) at line L, column C"`.
   * 1000 by default (see `parseJson`); `Infinity` turns the check off.
   */
  maxDepth?: number;
}

/**
 * Makes a request decoder: JSON text or UTF-8 bytes in, the parsed and (with a `schema`) validated
 * value out. Everything that can be prepared is prepared here, so each call does only
 * {@link parseJson} and one run of the schema.
 *
 * The decoder returns synchronously when there is no schema or the schema is synchronous, and a
 * Promise only for an asynchronous schema. Bad JSON always throws synchronously; a failed async
 * validation rejects. Either way the error is a `ServiceError` with `INVALID_ARGUMENT`, as
 * described for {@link parseJson} and `validate`; `await` inside `try` covers both.
 *
 * @typeParam T - the decoded type, inferred from the schema.
 * @param options - an optional `schema` and `maxDepth`.
 * @returns a function `(input: string | Uint8Array) => T | Promise<T>`.
 * @throws TypeError when `maxDepth` is not a positive integer or `Infinity`.
 *
 * @example
 * ```ts
 * const decodeSum = createJsonDecoder({ schema: z.object({ a: z.number(), b: z.number() }) });
 * decodeSum('{"a":1,"b":2}'); // { a: 1, b: 2 }, typed { a: number; b: number } | Promise<...>
 * decodeSum("{}"); // throws ServiceError INVALID_ARGUMENT "invalid request: a: Invalid input: ..."
 * ```
 */
export function createJsonDecoder<T = unknown>(
  options?: JsonDecoderOptions<T>,
): (input: string | Uint8Array) => T | Promise<T> {
  const schema = options?.schema;
  const maxDepth = checkMaxDepth(options?.maxDepth);
  if (schema === undefined) {
    if (options?.maxDepth === undefined) return parseJson as (input: string | Uint8Array) => T;
    return function decodeJsonWithDepth(input: string | Uint8Array): T {
      return parseJsonWith(input, maxDepth) as T;
    };
  }
  const props = schema["~standard"];
  return function decodeJson(input: string | Uint8Array): T | Promise<T> {
    return validateWith(props, parseJsonWith(input, maxDepth));
  };
}
