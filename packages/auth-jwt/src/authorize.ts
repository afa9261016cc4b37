import { Code, type Context, type Endpoint, type GenericMiddleware, ServiceError } from "@svckit/endpoint";
import { claimsKey } from "./authenticate.js";
import { checkRealm, permissionDenied, unauthenticated } from "./errors.js";
import type { JwtClaims } from "./verifier.js";

/**
 * Decides whether the caller with these verified claims may make this call. Only `true` allows.
 * Anything can plug in here: claim checks, a lookup, a call to a policy engine such as OPA.
 */
export type Policy<Req = unknown> = (
  claims: JwtClaims,
  ctx: Context,
  request: Req,
) => boolean | Promise<boolean>;

/** A middleware for endpoints of one request type and any response type, e.g. {@link authorize} with a request-aware policy. */
export type RequestMiddleware<Req> = <Res>(next: Endpoint<Req, Res>) => Endpoint<Req, Res>;

/** Options of {@link authorize}. */
export interface AuthorizeOptions {
  /** The `realm` of the `www-authenticate` challenges. */
  realm?: string;
  /** The message of the PERMISSION_DENIED error when the policy says no (built-in policies say what is missing). */
  message?: string;
}

/** Why a built-in policy refused: the message and the RFC 6750 `scope` to put in the challenge. */
interface Refusal {
  readonly message: string;
  readonly scope?: string | undefined;
}

/** How built-in policies explain a refusal; user policies have no entry and get the generic message. */
const explanations = new WeakMap<Policy<never>, (claims: JwtClaims) => Refusal>();

/**
 * What a policy that threw answers: a ServiceError unchanged; the call's own abort reason when the
 * call was cancelled or passed its deadline meanwhile (the policy most likely failed because of it);
 * anything else INTERNAL with the thrown value as `cause`. Not `ServiceError.from`, which would turn
 * the policy's own `AbortError` / `TimeoutError` into CANCELLED / DEADLINE_EXCEEDED.
 */
function policyFailure(err: unknown, ctx: Context): ServiceError {
  if (err instanceof ServiceError) return ServiceError.from(err); // rebuilds another copy's lookalike
  if (ctx.aborted && ctx.abortReason !== undefined) return ctx.abortReason;
  return new ServiceError(Code.INTERNAL, undefined, { cause: err });
}

/**
 * Middleware that runs `policy` on the verified claims ({@link authenticate} must run first) and
 * refuses the call unless it returns `true`:
 *
 * - no verified claims in the context → UNAUTHENTICATED (HTTP 401), challenge `Bearer`;
 * - the policy returns anything but `true` → PERMISSION_DENIED (HTTP 403) with
 *   `Bearer error="insufficient_scope"` in the error's metadata;
 * - the policy throws: a ServiceError it throws passes unchanged (a policy may refuse with its own
 *   message or report UNAVAILABLE), anything else becomes INTERNAL with a generic message, the error
 *   kept as `cause` for logs — also an `AbortError` or `TimeoutError` of the policy's own (an OPA fetch
 *   with `AbortSignal.timeout`): the policy's time limit is not the caller's deadline. Only when the
 *   call itself was cancelled or passed its deadline meanwhile is the answer its own CANCELLED or
 *   DEADLINE_EXCEEDED (`ctx.abortReason`). A broken policy is a server fault: never an allow, nor a
 *   misleading 403.
 *
 * @example
 * ```ts
 * const guarded = chain(authenticate(verifier), authorize(requireScopes("orders:write")))(createOrder);
 * const own = authorize<{ userId: string }>((claims, _ctx, req) => claims.sub === req.userId);
 * ```
 */
export function authorize(policy: Policy<unknown>, options?: AuthorizeOptions): GenericMiddleware;
/** The same for a policy that looks at a specific request type. */
export function authorize<Req>(policy: Policy<Req>, options?: AuthorizeOptions): RequestMiddleware<Req>;
export function authorize<Req>(policy: Policy<Req>, options: AuthorizeOptions = {}): GenericMiddleware {
  if (typeof policy !== "function") throw new TypeError("authorize: policy must be a function");
  const realm = checkRealm(options.realm, "authorize");
  const message = options.message ?? "permission denied";
  const explain = explanations.get(policy as Policy<never>);
  return function authorizeMiddleware<R, Res>(next: Endpoint<R, Res>): Endpoint<R, Res> {
    return async function authorized(ctx: Context, request: R): Promise<Res> {
      const claims = ctx.value(claimsKey);
      if (claims === undefined) throw unauthenticated("missing bearer token", realm, undefined);
      let allowed: boolean;
      try {
        allowed = await policy(claims, ctx, request as unknown as Req);
      } catch (err) {
        throw policyFailure(err, ctx);
      }
      if (allowed !== true) {
        const refusal = explain?.(claims);
        throw permissionDenied(refusal?.message ?? message, realm, refusal?.scope);
      }
      return next(ctx, request);
    };
  };
}

/** Options of {@link requireScopes} and {@link requireRoles}. */
export interface RequireOptions {
  /** `"all"` (default): every one listed is needed; `"any"`: one is enough. */
  match?: "all" | "any";
}

/** Options of {@link requireRoles}. */
export interface RequireRolesOptions extends RequireOptions {
  /** The claim holding the roles (default `"roles"`); an array is a path into nested claims, e.g. `["realm_access", "roles"]`. */
  claim?: string | readonly string[];
}

function words(value: unknown): readonly string[] {
  if (typeof value === "string") return value.split(" ").filter((s) => s.length > 0);
  if (Array.isArray(value)) return value.filter((s): s is string => typeof s === "string");
  return [];
}

function checkNames(names: readonly unknown[], where: string): readonly string[] {
  if (names.length === 0) throw new TypeError(`${where}: name at least one`);
  for (const name of names) {
    if (typeof name !== "string" || name.length === 0 || /\s/.test(name)) {
      throw new TypeError(`${where}: ${JSON.stringify(name)} is not a valid name (non-empty, no spaces)`);
    }
  }
  return names as readonly string[];
}

function splitArgs<O extends object>(args: readonly (string | O)[]): [O, unknown[]] {
  const first = args[0];
  return typeof first === "object" && first !== null ? [first, args.slice(1)] : [{} as O, [...args]];
}

/** A policy that checks `names` against what `granted(claims)` holds, and explains what is missing. */
function requireNames(
  names: readonly string[],
  match: "all" | "any",
  granted: (claims: JwtClaims) => readonly string[],
  kind: string,
  scope: string | undefined,
): Policy<unknown> {
  const policy: Policy<unknown> =
    match === "all"
      ? function requireAll(claims) {
          const have = granted(claims);
          return names.every((n) => have.includes(n));
        }
      : function requireAny(claims) {
          const have = granted(claims);
          return names.some((n) => have.includes(n));
        };
  explanations.set(policy, (claims) => {
    if (match === "any") return { message: `needs one ${kind} of: ${names.join(" ")}`, scope };
    const have = granted(claims);
    const missing = names.filter((n) => !have.includes(n));
    return { message: `missing ${kind}${missing.length > 1 ? "s" : ""}: ${missing.join(" ")}`, scope };
  });
  return policy;
}

/**
 * A policy that needs OAuth scopes: from the `scope` claim (space-separated, RFC 8693 / RFC 9068) and
 * the `scp` claim (array or space-separated). All of them by default; pass `{ match: "any" }` first for
 * one of them. A refusal names the missing scopes and sends `scope="..."` in the challenge.
 *
 * @example
 * ```ts
 * authorize(requireScopes("orders:read", "orders:write"));
 * authorize(requireScopes({ match: "any" }, "admin", "orders:write"));
 * ```
 */
export function requireScopes(...scopes: string[]): Policy<unknown>;
/** The same with options. */
export function requireScopes(options: RequireOptions, ...scopes: string[]): Policy<unknown>;
export function requireScopes(...args: (string | RequireOptions)[]): Policy<unknown> {
  const [options, rest] = splitArgs<RequireOptions>(args);
  const scopes = checkNames(rest, "requireScopes");
  const granted = (claims: JwtClaims): readonly string[] => {
    const fromScope = words(claims.scope);
    return claims.scp === undefined ? fromScope : [...fromScope, ...words(claims.scp)];
  };
  return requireNames(scopes, options.match ?? "all", granted, "scope", scopes.join(" "));
}

/**
 * A policy that needs roles from a claim (`roles` by default: an array of strings, or space-separated).
 * All of them by default; pass `{ match: "any" }` first for one of them, `{ claim }` for another
 * claim, e.g. Keycloak's `{ claim: ["realm_access", "roles"] }` or Auth0's namespaced claim names.
 *
 * @example
 * ```ts
 * authorize(requireRoles("admin"));
 * authorize(requireRoles({ claim: "groups", match: "any" }, "ops", "sre"));
 * ```
 */
export function requireRoles(...roles: string[]): Policy<unknown>;
/** The same with options. */
export function requireRoles(options: RequireRolesOptions, ...roles: string[]): Policy<unknown>;
export function requireRoles(...args: (string | RequireRolesOptions)[]): Policy<unknown> {
  const [options, rest] = splitArgs<RequireRolesOptions>(args);
  const roles = checkNames(rest, "requireRoles");
  const path = typeof options.claim === "string" ? [options.claim] : [...(options.claim ?? ["roles"])];
  if (path.length === 0 || path.some((p) => typeof p !== "string" || p.length === 0)) {
    throw new TypeError("requireRoles: claim must be a non-empty name or path");
  }
  const granted = (claims: JwtClaims): readonly string[] => {
    let value: unknown = claims;
    for (const part of path) {
      if (typeof value !== "object" || value === null || !Object.hasOwn(value, part)) return [];
      value = (value as Record<string, unknown>)[part];
    }
    return words(value);
  };
  return requireNames(roles, options.match ?? "all", granted, "role", undefined);
}
