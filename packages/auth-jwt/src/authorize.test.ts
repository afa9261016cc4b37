import {
  authorize,
  claimsKey,
  type JwtClaims,
  type Policy,
  requireRoles,
  requireScopes,
} from "@svckit/auth-jwt";
import { Code, chain, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";
import { serviceRejection } from "./test-helpers.js";

const ok: Endpoint<unknown, string> = async () => "ok";
const as = (claims: JwtClaims | undefined) => createContext().with(claimsKey, claims);

async function denied(
  policy: Policy<unknown>,
  claims: JwtClaims,
  options?: { realm?: string; message?: string },
) {
  const err = await serviceRejection(authorize(policy, options)(ok)(as(claims), undefined));
  expect(err.code).toBe(Code.PERMISSION_DENIED);
  return { message: err.message, challenge: err.metadata.get("www-authenticate") };
}

describe("authorize", () => {
  it("runs the endpoint when the policy returns true", async () => {
    const seen: unknown[] = [];
    const policy: Policy<unknown> = (claims, ctx, request) => {
      seen.push(claims.sub, ctx.value(claimsKey) === claims, request);
      return true;
    };
    await expect(authorize(policy)(ok)(as({ sub: "ada" }), "req")).resolves.toBe("ok");
    expect(seen).toEqual(["ada", true, "req"]);
  });

  it("awaits an async policy", async () => {
    await expect(authorize(async () => true)(ok)(as({}), undefined)).resolves.toBe("ok");
    expect((await denied(async () => false, {})).message).toBe("permission denied");
  });

  it("refuses with PERMISSION_DENIED and an insufficient_scope challenge", async () => {
    expect(await denied(() => false, { sub: "ada" })).toEqual({
      message: "permission denied",
      challenge: 'Bearer error="insufficient_scope", error_description="permission denied"',
    });
    expect(await denied(() => false, {}, { realm: "api", message: "only owners may do that" })).toEqual({
      message: "only owners may do that",
      challenge:
        'Bearer realm="api", error="insufficient_scope", error_description="only owners may do that"',
    });
  });

  it("allows only a literal true", async () => {
    const truthy = (() => "yes") as unknown as Policy<unknown>;
    expect((await denied(truthy, {})).message).toBe("permission denied");
  });

  it("refuses with UNAUTHENTICATED when no claims were verified", async () => {
    const err = await serviceRejection(authorize(() => true, { realm: "api" })(ok)(as(undefined), undefined));
    expect(err.code).toBe(Code.UNAUTHENTICATED);
    expect(err.message).toBe("missing bearer token");
    expect(err.metadata.get("www-authenticate")).toBe('Bearer realm="api"');
  });

  it("turns a throwing policy into INTERNAL with a generic message, the error kept as cause", async () => {
    const boom = new Error("opa at 10.0.0.7 said: connection refused");
    const err = await serviceRejection(
      authorize(() => {
        throw boom;
      })(ok)(as({}), undefined),
    );
    expect(err.code).toBe(Code.INTERNAL);
    expect(err.message).toBe("internal error");
    expect(err.cause).toBe(boom);
    const rejected = await serviceRejection(authorize(() => Promise.reject(boom))(ok)(as({}), undefined));
    expect(rejected.code).toBe(Code.INTERNAL);
  });

  it("turns a policy's own AbortError or TimeoutError into INTERNAL, not CANCELLED or DEADLINE_EXCEEDED", async () => {
    const timeout = new DOMException("The operation was aborted due to timeout", "TimeoutError");
    const abort = new DOMException("This operation was aborted", "AbortError");
    const named = Object.assign(new Error("aborted"), { name: "AbortError" });
    for (const thrown of [timeout, abort, named]) {
      const err = await serviceRejection(authorize(() => Promise.reject(thrown))(ok)(as({}), undefined));
      expect({ code: err.code, message: err.message, cause: err.cause }).toEqual({
        code: Code.INTERNAL,
        message: "internal error",
        cause: thrown,
      });
    }
  });

  it("answers the call's own abort reason when the call was cancelled or timed out during the policy", async () => {
    const call = as({}).withCancel();
    const policy: Policy<unknown> = () => {
      call.cancel();
      throw new DOMException("This operation was aborted", "AbortError");
    };
    const err = await serviceRejection(authorize(policy)(ok)(call.context, undefined));
    expect(err.code).toBe(Code.CANCELLED);
    expect(err).toBe(call.context.abortReason);

    const late = as({}).withDeadline(Date.now() - 1);
    const timedOut = await serviceRejection(
      authorize(() => Promise.reject(new Error("fetch failed")))(ok)(late.context, undefined),
    );
    expect(timedOut.code).toBe(Code.DEADLINE_EXCEEDED);
    late.release();
  });

  it("passes a ServiceError the policy throws unchanged", async () => {
    const own = new ServiceError(Code.UNAVAILABLE, "policy engine unavailable");
    const err = await serviceRejection(
      authorize(() => {
        throw own;
      })(ok)(as({}), undefined),
    );
    expect(err).toBe(own);
  });

  it("types a request-aware policy and passes the request", async () => {
    type Req = { owner: string };
    const own: Endpoint<Req, string> = async (_ctx, req) => req.owner;
    const mine = authorize<Req>((claims, _ctx, req) => claims.sub === req.owner);
    await expect(mine(own)(as({ sub: "ada" }), { owner: "ada" })).resolves.toBe("ada");
    const err = await serviceRejection(mine(own)(as({ sub: "ada" }), { owner: "bob" }));
    expect(err.code).toBe(Code.PERMISSION_DENIED);
  });

  it("does not call the endpoint when refusing", async () => {
    let called = false;
    const e: Endpoint<unknown, string> = async () => {
      called = true;
      return "x";
    };
    await serviceRejection(chain<unknown, string>(authorize(() => false))(e)(as({}), undefined));
    expect(called).toBe(false);
  });

  it("checks its arguments at setup and returns named functions", () => {
    expect(() => authorize(undefined as unknown as Policy<unknown>)).toThrow("policy must be a function");
    expect(() => authorize(() => true, { realm: "a\\b" })).toThrow("realm must be");
    const mw = authorize(() => true);
    expect(mw.name).toBe("authorizeMiddleware");
    expect(mw(ok).name).toBe("authorized");
  });
});

describe("requireScopes", () => {
  const allow = (policy: Policy<unknown>, claims: JwtClaims) => authorize(policy)(ok)(as(claims), undefined);

  it("reads the space-separated scope claim and the scp claim (array or string)", async () => {
    const policy = requireScopes("orders:read", "orders:write");
    await expect(allow(policy, { scope: "profile orders:read orders:write" })).resolves.toBe("ok");
    await expect(allow(policy, { scp: ["orders:write", "orders:read"] })).resolves.toBe("ok");
    await expect(allow(policy, { scp: "orders:read orders:write" })).resolves.toBe("ok");
    await expect(allow(policy, { scope: "orders:read", scp: ["orders:write"] })).resolves.toBe("ok");
  });

  it("names the missing scopes and sends the required ones in the challenge", async () => {
    const policy = requireScopes("orders:read", "orders:write", "admin");
    expect(await denied(policy, { scope: "orders:read" })).toEqual({
      message: "missing scopes: orders:write admin",
      challenge:
        'Bearer error="insufficient_scope", error_description="missing scopes: orders:write admin", scope="orders:read orders:write admin"',
    });
    expect((await denied(requireScopes("a"), {})).message).toBe("missing scope: a");
    expect((await denied(requireScopes("a"), { scope: 42 })).message).toBe("missing scope: a");
    expect((await denied(requireScopes("a"), { scope: "ab" })).message).toBe("missing scope: a");
  });

  it("needs one of them with match: any", async () => {
    const policy = requireScopes({ match: "any" }, "admin", "orders:write");
    await expect(allow(policy, { scope: "orders:write" })).resolves.toBe("ok");
    expect((await denied(policy, { scope: "orders:read" })).message).toBe(
      "needs one scope of: admin orders:write",
    );
  });

  it("checks its arguments at setup", () => {
    expect(() => requireScopes()).toThrow("requireScopes: name at least one");
    expect(() => requireScopes("a b")).toThrow('"a b" is not a valid name');
    expect(() => requireScopes("")).toThrow('"" is not a valid name');
  });
});

describe("requireRoles", () => {
  const allow = (policy: Policy<unknown>, claims: JwtClaims) => authorize(policy)(ok)(as(claims), undefined);

  it("reads the roles claim by default", async () => {
    await expect(allow(requireRoles("admin"), { roles: ["user", "admin"] })).resolves.toBe("ok");
    await expect(allow(requireRoles("admin"), { roles: "user admin" })).resolves.toBe("ok");
    expect(await denied(requireRoles("admin", "ops"), { roles: ["admin"] })).toEqual({
      message: "missing role: ops",
      challenge: 'Bearer error="insufficient_scope", error_description="missing role: ops"',
    });
    expect((await denied(requireRoles("admin"), { roles: { admin: true } })).message).toBe(
      "missing role: admin",
    );
  });

  it("reads another claim, or a path into nested claims", async () => {
    await expect(allow(requireRoles({ claim: "groups" }, "ops"), { groups: ["ops"] })).resolves.toBe("ok");
    const keycloak = requireRoles({ claim: ["realm_access", "roles"] }, "admin");
    await expect(allow(keycloak, { realm_access: { roles: ["admin"] } })).resolves.toBe("ok");
    expect((await denied(keycloak, { realm_access: null })).message).toBe("missing role: admin");
    expect((await denied(keycloak, { roles: ["admin"] })).message).toBe("missing role: admin");
    const auth0 = requireRoles({ claim: "https://example.com/roles" }, "admin");
    await expect(allow(auth0, { "https://example.com/roles": ["admin"] })).resolves.toBe("ok");
  });

  it("does not follow inherited properties", async () => {
    expect((await denied(requireRoles({ claim: ["constructor", "name"] }, "Object"), {})).message).toBe(
      "missing role: Object",
    );
  });

  it("needs one of them with match: any", async () => {
    const policy = requireRoles({ match: "any" }, "admin", "ops");
    await expect(allow(policy, { roles: ["ops"] })).resolves.toBe("ok");
    expect((await denied(policy, { roles: [] })).message).toBe("needs one role of: admin ops");
  });

  it("checks its arguments at setup", () => {
    expect(() => requireRoles({ claim: [] }, "a")).toThrow("claim must be a non-empty name or path");
    expect(() => requireRoles({ claim: "" }, "a")).toThrow("claim must be a non-empty name or path");
    expect(() => requireRoles({ claim: "roles" })).toThrow("requireRoles: name at least one");
  });
});
