import { Code, type ErrorDetail, ServiceError } from "@svckit/endpoint";
import type { StandardSchemaV1 } from "./standard-schema.js";

/** Longest issue message copied into an error; a longer one is cut and ends with "…". */
const maxTextLength = 200;
/** Longest key in a path; a longer one is cut and ends with "…". */
const maxKeyLength = 100;
/** Longest path (`field`); a longer one is cut and ends with "…". */
const maxPathLength = 300;
/** Most issues listed in `fieldViolations`; the rest are counted in one last entry. */
const maxViolations = 20;
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
 * - one `details` entry `{ type: "google.rpc.BadRequest", value: { fieldViolations } }` listing the
 *   first 20 issues as `{ field, description }` (`field` is the path, `""` for the root); when there
 *   are more, a 21st entry `{ field: "…", description: "…and N more issues" }` counts the rest.
 *
 * Issue messages longer than 200 characters, path keys longer than 100 and paths longer than 300 are
 * cut (ending with "…"), so an error never carries a large piece of the request, however many issues
 * a big request has (a few KB at most). An exception thrown by the schema itself is not caught.
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
  const listed = Math.min(issues.length, maxViolations);
  for (let i = 0; i < listed; i++) {
    const issue = issues[i] as StandardSchemaV1.Issue;
    fieldViolations.push({
      field: formatPath(issue.path),
      description: shorten(String(issue.message), maxTextLength),
    });
  }
  if (issues.length > listed) {
    fieldViolations.push({ field: "…", description: `…and ${issues.length - listed} more issues` });
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
    // A path may be as long as the value is deep: stop once it is too long to show whole.
    if (out.length > maxPathLength) break;
    const key = typeof segment === "object" && segment !== null ? segment.key : segment;
    if (typeof key === "number") {
      out += `[${key}]`;
    } else if (typeof key === "symbol") {
      out += `[${shorten(key.toString(), maxKeyLength)}]`;
    } else {
      const name = shorten(String(key), maxKeyLength);
      out += identifier.test(name) ? (out === "" ? name : `.${name}`) : `[${JSON.stringify(name)}]`;
    }
  }
  return shorten(out, maxPathLength);
}

function shorten(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
