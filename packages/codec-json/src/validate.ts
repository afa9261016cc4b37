import { Code, type ErrorDetail, ServiceError } from "@svckit/endpoint";
import type { StandardSchemaV1 } from "./standard-schema.js";

/** Longest issue message or path key copied into an error; longer ones are cut and end with "…". */
const maxTextLength = 200;
const identifier = /^[A-Za-z_$][\w$]*$/;

/**
 * Validates a value with any Standard Schema (zod, valibot, ArkType, ...) and returns the schema's
 * output, which may differ from the input when the schema transforms or strips it.
 *
 * The result is synchronous when the schema validates synchronously, and a Promise only when the
 * schema itself returns one (e.g. zod with an async refinement): check with `instanceof Promise` or
 * simply `await` it. The schema runs exactly once.
 *
 * When validation fails it throws (or the Promise rejects with) a {@link ServiceError} with
 * {@link Code.INVALID_ARGUMENT}:
 * - message `"invalid request: <path>: <message>"` for the first issue, e.g.
 *   `"invalid request: s: Invalid input: expected string, received number"`; paths look like
 *   `a.b[0]` or `items[2]["odd key"]`, and an issue about the value as a whole says `(root)`;
 * - one `details` entry `{ type: "google.rpc.BadRequest", value: { fieldViolations } }` listing every
 *   issue as `{ field, description }` (`field` is the path, `""` for the root).
 *
 * Issue messages and path keys longer than 200 characters are shortened, so an error never carries a
 * large piece of the request. An exception thrown by the schema itself is not caught.
 *
 * @param schema - any object implementing Standard Schema v1.
 * @param value - the value to check, typically the output of `parseJson`.
 * @returns the validated output, or a Promise of it for asynchronous schemas.
 * @throws ServiceError INVALID_ARGUMENT when the value does not match the schema.
 *
 * @example
 * ```ts
 * const Sum = z.object({ a: z.number(), b: z.number() });
 * validate(Sum, { a: 1, b: 2 }); // { a: 1, b: 2 }
 * validate(Sum, { a: 1, b: "2" }); // throws ServiceError INVALID_ARGUMENT
 * //   "invalid request: b: Invalid input: expected number, received string"
 * ```
 */
export function validate<T>(schema: StandardSchemaV1<unknown, T>, value: unknown): T | Promise<T> {
  return validateWith(schema["~standard"], value);
}

/**
 * {@link validate} for the already-read `"~standard"` properties of a schema, so a decoder reads them
 * once at setup (valibot builds a fresh object on every read).
 *
 * @internal
 */
export function validateWith<T>(props: StandardSchemaV1.Props<unknown, T>, value: unknown): T | Promise<T> {
  let result: StandardSchemaV1.Result<T> | Promise<StandardSchemaV1.Result<T>>;
  try {
    result = props.validate(value);
  } catch (err) {
    throw tooDeep(err) ?? err;
  }
  if (isPromiseLike(result)) return Promise.resolve(result).then(unwrapResult, rethrowTooDeep);
  return unwrapResult(result);
}

/**
 * A recursive schema (`z.lazy`, `v.lazy`) recurses as deep as the value does, so a request nested a few
 * thousand levels deep (well inside a body limit) overflows the stack. That is the request's fault:
 * INVALID_ARGUMENT, not a 500.
 */
function tooDeep(err: unknown): ServiceError | undefined {
  return err instanceof RangeError && /call stack/i.test(err.message)
    ? new ServiceError(Code.INVALID_ARGUMENT, "invalid request: nested too deeply to validate", {
        cause: err,
      })
    : undefined;
}

function rethrowTooDeep(err: unknown): never {
  throw tooDeep(err) ?? err;
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as Partial<PromiseLike<T>>).then === "function";
}

function unwrapResult<T>(result: StandardSchemaV1.Result<T>): T {
  if (result.issues) throw invalidRequest(result.issues);
  return result.value;
}

function invalidRequest(issues: ReadonlyArray<StandardSchemaV1.Issue>): ServiceError {
  const fieldViolations: { field: string; description: string }[] = [];
  for (const issue of issues) {
    fieldViolations.push({ field: formatPath(issue.path), description: shorten(String(issue.message)) });
  }
  const first = fieldViolations[0];
  const message =
    first === undefined
      ? "invalid request"
      : `invalid request: ${first.field === "" ? "(root)" : first.field}: ${first.description}`;
  const details: ErrorDetail[] = [{ type: "google.rpc.BadRequest", value: { fieldViolations } }];
  return new ServiceError(Code.INVALID_ARGUMENT, message, { details });
}

/** `a.b[0]["odd key"][Symbol(s)]`; the empty string for the root. */
function formatPath(path: StandardSchemaV1.Issue["path"]): string {
  if (!path) return "";
  let out = "";
  for (const segment of path) {
    const key = typeof segment === "object" && segment !== null ? segment.key : segment;
    if (typeof key === "number") {
      out += `[${key}]`;
    } else if (typeof key === "symbol") {
      out += `[${shorten(key.toString())}]`;
    } else {
      const name = shorten(String(key));
      out += identifier.test(name) ? (out === "" ? name : `.${name}`) : `[${JSON.stringify(name)}]`;
    }
  }
  return out;
}

function shorten(text: string): string {
  return text.length > maxTextLength ? `${text.slice(0, maxTextLength - 1)}…` : text;
}
