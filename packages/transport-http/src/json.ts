import { checkJsonDepth, encodeJson, parseJson, type StandardSchemaV1, validate } from "@svckit/codec-json";
import { Code, type Context, ServiceError } from "@svckit/endpoint";
import {
  DEFAULT_RESPONSE_LIMIT,
  type DecodeResponseFunc,
  type EncodeRequestFunc,
  type HttpClientRequest,
  readResponse,
  transportError,
} from "./client.js";
import { HttpError } from "./http-error.js";
import {
  type DecodeRequestFunc,
  type EncodeResponseFunc,
  type HttpRequest,
  JSON_CONTENT_TYPE,
} from "./server.js";

/** Options of {@link jsonRequestDecoder}. */
export interface JsonRequestDecoderOptions<T> {
  /** A Standard Schema (zod, valibot, arktype, ...) the parsed body must satisfy; its output is the request. */
  schema?: StandardSchemaV1<unknown, T>;
  /**
   * Which `content-type`s are accepted: `"json"` (default) takes `application/json`, any
   * `application/*+json` and a request without a content type; `"any"` skips the check (for clients
   * such as `curl -d` that send `application/x-www-form-urlencoded` with a JSON body). A body a
   * framework already parsed (`request.parsedBody`) is taken as the JSON value only when the request
   * says it is JSON; under another content type it is 415, since what the middleware made of it (the
   * JSON value behind `express.json({ type: "*\/*" })`, form fields behind `express.urlencoded()`)
   * cannot be told apart, and the bytes are gone.
   */
  contentTypes?: "json" | "any";
  /**
   * How deep arrays and objects may nest in a body this decoder parses (`parseJson`'s `maxDepth`):
   * a deeper body is 400 INVALID_ARGUMENT. A positive integer or `Infinity`. Default 1000.
   */
  maxDepth?: number;
}

function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined || header === "") return true;
  const semi = header.indexOf(";");
  const type = (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/**
 * A request decoder for JSON bodies: checks the content type (415 otherwise), parses the body
 * (400 with the position on malformed JSON, 400 on an empty body) and validates it with the schema
 * when one is given (400 naming the failing field). A body a framework parsed before (`express.json()`)
 * is used as it is when the request says it is JSON; under another content type (with
 * `contentTypes: "any"`) a parsed body is refused with 415, since what a middleware made of it cannot be
 * told from the JSON value (a form parser turns `{"a":1}` into `{ '{"a":1}': '' }`), and the bytes
 * cannot be read again (see {@link JsonRequestDecoderOptions.contentTypes}).
 *
 * @example
 * ```ts
 * const decode = jsonRequestDecoder({ schema: z.object({ s: z.string() }) });
 * const handler = createHttpHandler(uppercase, decode, encodeJsonResponse);
 * ```
 */
export function jsonRequestDecoder<T = unknown>(
  options: JsonRequestDecoderOptions<T> = {},
): DecodeRequestFunc<T> {
  const schema = options.schema;
  const checkType = options.contentTypes !== "any";
  const parseOptions = options.maxDepth === undefined ? undefined : { maxDepth: options.maxDepth };
  // Checks maxDepth now (a TypeError at setup), not on the first request.
  if (parseOptions !== undefined) parseJson("0", parseOptions);
  return function decodeJsonRequest(_ctx: Context, request: HttpRequest): T | Promise<T> {
    const type = request.headers["content-type"];
    if (checkType && !isJsonContentType(type)) {
      throw new HttpError(
        415,
        Code.INVALID_ARGUMENT,
        `unsupported content type "${String(type).slice(0, 100)}": expected application/json`,
      );
    }
    const parsed = request.parsedBody;
    let value: unknown;
    if (parsed === undefined) value = parseJson(request.body, parseOptions);
    else if (checkType || isJsonContentType(type)) {
      // The framework's parser has no depth limit: the value is checked here as a body parsed here would be.
      checkJsonDepth(parsed, options.maxDepth);
      value = parsed;
    } else {
      // A middleware parsed a body that did not say it is JSON: whether it made the JSON value of it
      // (express.json({ type: "*/*" })) or form fields (express.urlencoded()) cannot be told from the
      // result, and the bytes cannot be read again.
      throw new HttpError(
        415,
        Code.INVALID_ARGUMENT,
        `unsupported content type "${String(type).slice(0, 100)}": a middleware that ran first already parsed the body, which cannot be read as JSON here; send application/json, or mount the route before that middleware`,
      );
    }
    return schema === undefined ? (value as T) : validate(schema, value);
  };
}

/**
 * A response encoder writing the endpoint's response as JSON with status 200 and
 * `content-type: application/json; charset=utf-8`.
 *
 * @example
 * ```ts
 * createHttpHandler(endpoint, jsonRequestDecoder(), encodeJsonResponse);
 * ```
 */
export const encodeJsonResponse: EncodeResponseFunc<unknown> = function encodeJsonResponse(_ctx, response) {
  return { contentType: JSON_CONTENT_TYPE, body: encodeJson(response) };
};

/**
 * A client request encoder sending the request as a JSON body.
 *
 * @example
 * ```ts
 * const client = createHttpClient("http://127.0.0.1:8080/sum", "POST", encodeJsonRequest, jsonResponseDecoder());
 * ```
 */
export const encodeJsonRequest: EncodeRequestFunc<unknown> = function encodeJsonRequest(
  _ctx,
  request,
): HttpClientRequest {
  return { headers: { "content-type": JSON_CONTENT_TYPE }, body: encodeJson(request) };
};

/** Options of {@link jsonResponseDecoder}. */
export interface JsonResponseDecoderOptions<T> {
  /** A Standard Schema the response must satisfy. */
  schema?: StandardSchemaV1<unknown, T>;
  /**
   * The largest response body in bytes, counted after decompression (default 16 MiB). A longer one is
   * not read further and the call fails with RESOURCE_EXHAUSTED, so a server that answers too much (or
   * a compressed body that inflates) cannot take the client's memory.
   */
  bodyLimit?: number;
  /**
   * How deep arrays and objects may nest in the response (`parseJson`'s `maxDepth`); a deeper one fails
   * the call with INTERNAL. A positive integer or `Infinity` (default: no limit, the server is trusted
   * as far as its body size).
   */
  maxDepth?: number;
}

/**
 * A client response decoder for JSON bodies (used for 2xx answers; errors are decoded by the client).
 * A body that is not JSON, or fails the schema, is an INTERNAL error: the server broke its contract; a
 * body longer than `bodyLimit` is RESOURCE_EXHAUSTED, read no further.
 *
 * @example
 * ```ts
 * const decode = jsonResponseDecoder<{ v: number }>();
 * ```
 */
export function jsonResponseDecoder<T = unknown>(
  options: JsonResponseDecoderOptions<T> = {},
): DecodeResponseFunc<T> {
  const schema = options.schema;
  const limit = options.bodyLimit ?? DEFAULT_RESPONSE_LIMIT;
  if (!(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new RangeError(`jsonResponseDecoder: bodyLimit must be a whole number of bytes ≥ 0, got ${limit}`);
  }
  const responseParse = { maxDepth: options.maxDepth ?? Number.POSITIVE_INFINITY };
  parseJson("0", responseParse); // checks maxDepth now (a TypeError at setup)
  return async function decodeJsonResponse(ctx: Context, response: Response): Promise<T> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readResponse(response, limit);
    } catch (err) {
      // Cut off on the way (connection reset, the caller's deadline): not the server's contract.
      throw transportError(err, ctx, "response");
    }
    if (bytes === undefined) {
      throw new ServiceError(Code.RESOURCE_EXHAUSTED, `response body exceeds the limit of ${limit} bytes`);
    }
    try {
      const value = parseJson(bytes, responseParse);
      return schema === undefined ? (value as T) : await validate(schema, value);
    } catch (err) {
      const reason = err instanceof ServiceError ? err.message : "unreadable body";
      throw new ServiceError(Code.INTERNAL, `invalid response from server: ${reason}`, { cause: err });
    }
  };
}
