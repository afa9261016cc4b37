import { Code, ServiceError } from "@svckit/endpoint";

const encodeFailed = "response could not be encoded as JSON";

/**
 * `JSON.stringify` for responses: the same output, but it never throws anything other than a
 * {@link ServiceError} with {@link Code.INTERNAL} and the message
 * `"response could not be encoded as JSON"`, the original error kept as `cause` (for logs, never sent
 * to clients). That covers a `BigInt`, a cycle, nesting too deep for the stack, and a `toJSON` or
 * getter that throws.
 *
 * A top-level value that JSON cannot represent (`undefined`, a function, a symbol), for which
 * `JSON.stringify` returns `undefined` instead of text, encodes as `"null"` - the same thing JSON
 * does with such values inside arrays - so an endpoint that returns nothing still yields a valid
 * JSON body. Inside objects such properties are left out, as usual.
 *
 * @param value - the value to encode.
 * @returns the JSON text.
 * @throws ServiceError INTERNAL when the value cannot be encoded.
 *
 * @example
 * ```ts
 * encodeJson({ v: 3 }); // '{"v":3}'
 * encodeJson(undefined); // "null"
 * encodeJson({ n: 1n }); // throws ServiceError INTERNAL "response could not be encoded as JSON"
 * ```
 */
export function encodeJson(value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (cause) {
    throw new ServiceError(Code.INTERNAL, encodeFailed, { cause });
  }
  return json === undefined ? "null" : json;
}

/**
 * A `JSON.stringify` replacer: a function called for every key and value (its return value is
 * written instead), or a list of the property names to keep.
 *
 * @example
 * ```ts
 * const hideSecrets: JsonReplacer = (key, value) => (key === "password" ? undefined : value);
 * const onlyIds: JsonReplacer = ["id", "items"];
 * ```
 */
export type JsonReplacer =
  | ((this: unknown, key: string, value: unknown) => unknown)
  | readonly (string | number)[];

/**
 * Options of {@link createJsonEncoder}.
 *
 * @example
 * ```ts
 * const options: JsonEncoderOptions = { space: 2, replacer: (key, value) => value };
 * ```
 */
export interface JsonEncoderOptions {
  /** Passed to `JSON.stringify`; a list is copied, so changing it later has no effect. */
  replacer?: JsonReplacer;
  /** Indentation passed to `JSON.stringify` (at most 10); none by default, the compact form. */
  space?: number;
}

/**
 * Makes a response encoder: a value in, JSON text out, with the guarantees of {@link encodeJson}
 * (only `ServiceError` INTERNAL is thrown; a top-level `undefined` encodes as `"null"`). Without
 * options it returns `encodeJson` itself.
 *
 * @typeParam T - the type of the values it encodes (only checked at compile time).
 * @param options - an optional `replacer` and `space`, as for `JSON.stringify`.
 * @returns a function `(value: T) => string`.
 *
 * @example
 * ```ts
 * const encodeSum = createJsonEncoder<{ v: number }>();
 * encodeSum({ v: 3 }); // '{"v":3}'
 * const pretty = createJsonEncoder({ space: 2 });
 * pretty({ a: 1 }); // '{\n  "a": 1\n}'
 * ```
 */
export function createJsonEncoder<T = unknown>(options?: JsonEncoderOptions): (value: T) => string {
  const replacer = options?.replacer;
  const space = options?.space;
  if (replacer === undefined && space === undefined) return encodeJson;
  if (typeof replacer === "function") {
    return function encodeJsonWithReplacer(value: T): string {
      let json: string | undefined;
      try {
        json = JSON.stringify(value, replacer, space);
      } catch (cause) {
        throw new ServiceError(Code.INTERNAL, encodeFailed, { cause });
      }
      return json === undefined ? "null" : json;
    };
  }
  const keep = replacer === undefined ? null : [...replacer];
  return function encodeJsonWithOptions(value: T): string {
    let json: string | undefined;
    try {
      json = JSON.stringify(value, keep, space);
    } catch (cause) {
      throw new ServiceError(Code.INTERNAL, encodeFailed, { cause });
    }
    return json === undefined ? "null" : json;
  };
}
