/**
 * JSON codecs for svckit: {@link parseJson} and {@link createJsonDecoder} turn request bodies (text
 * or UTF-8 bytes) into values, optionally checked by any Standard Schema (zod, valibot, ArkType, ...)
 * through {@link validate}; {@link encodeJson} and {@link createJsonEncoder} turn responses back into
 * JSON text. They are pure functions with no I/O, no runtime dependency and no `node:` imports, as
 * fast as the built-in `JSON.parse` and `JSON.stringify` they wrap. Bad input is always a
 * `ServiceError` with `INVALID_ARGUMENT` and a message that says what was wrong and where; a response
 * that cannot be encoded is `INTERNAL`.
 *
 * @packageDocumentation
 */

export type { JsonEncoderOptions, JsonReplacer } from "./encode-json.js";
export { createJsonEncoder, encodeJson } from "./encode-json.js";
export type { JsonDecoderOptions } from "./json-decoder.js";
export { createJsonDecoder } from "./json-decoder.js";
export type { ParseJsonOptions } from "./parse-json.js";
export { checkJsonDepth, parseJson } from "./parse-json.js";
export type { StandardSchemaV1 } from "./standard-schema.js";
export { validate } from "./validate.js";
