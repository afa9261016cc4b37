import {
  authenticate,
  authorize,
  claimsFrom,
  claimsKey,
  createJwtSigner,
  forwardIdentity,
  IDENTITY_HEADER,
  type JwtClaims,
  reissueIdentity,
  requireScopes,
  trustedIdentity,
} from "@svckit/auth-jwt";
import { Code, type Context, chain, createContext, type Endpoint, type MetadataInit } from "@svckit/endpoint";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { b64, ecKeys, fixedClock, NOW_S, serviceRejection } from "./test-helpers.js";

const verified: JwtClaims = {
  iss: "https://idp.example/",
  aud: "gateway",
  sub: "ada",
  scope: "orders:read",
  iat: NOW_S - 10,
  exp: NOW_S + 300,
  jti: "abc",
  tenant: "acme",
};
const asCaller = (claims: JwtClaims | undefined): Context => createContext().with(claimsKey, claims);
const outgoing: Endpoint<unknown, Record<string, string | string[]>> = async (ctx) =>
  ctx.outgoingMetadata.toRecord();

describe("forwardIdentity + trustedIdentity", () => {
  it("sends the verified claims as base64url JSON, without the original token's time and audience claims", async () => {
    const md = await forwardIdentity()(outgoing)(asCaller(verified), undefined);
    const value = md[IDENTITY_HEADER] as string;
    expect(value).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(JSON.parse(Buffer.from(value, "base64url").toString())).toEqual({
      sub: "ada",
      scope: "orders:read",
      tenant: "acme",
    });
  });

  it("round-trips through trustedIdentity so authorize works behind the gateway", async () => {
    const gatewaySide = forwardIdentity({ claims: (c) => ({ sub: c.sub, scope: c.scope }) })(outgoing);
    const md = await gatewaySide(asCaller(verified), undefined);
    const service = chain<unknown, unknown>(
      trustedIdentity(),
      authorize(requireScopes("orders:read")),
    )(async (ctx) => claimsFrom(ctx));
    expect(await service(createContext({ metadata: md }), undefined)).toEqual({
      sub: "ada",
      scope: "orders:read",
    });
  });

  it("keeps a __proto__ claim as data", async () => {
    const claims = JSON.parse('{"sub":"ada","__proto__":{"admin":true}}') as JwtClaims;
    const md = await forwardIdentity()(outgoing)(asCaller(claims), undefined);
    const back = await trustedIdentity()(async (ctx) => claimsFrom(ctx))(
      createContext({ metadata: md }),
      undefined,
    );
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(JSON.stringify(back)).toBe('{"sub":"ada","__proto__":{"admin":true}}');
  });

  it("sends nothing of its own for a call without verified claims", async () => {
    expect(await forwardIdentity({ header: "x-id" })(outgoing)(asCaller(undefined), undefined)).toEqual({});
  });

  it.each([
    [undefined, "missing x-svckit-identity"],
    [{ [IDENTITY_HEADER]: "not base64url!" }, "malformed x-svckit-identity: not base64url"],
    [{ [IDENTITY_HEADER]: b64("{nope") }, "malformed x-svckit-identity: not JSON"],
    [{ [IDENTITY_HEADER]: b64([1, 2]) }, "malformed x-svckit-identity: not a JSON object"],
    [{ [IDENTITY_HEADER]: b64("null") }, "malformed x-svckit-identity: not a JSON object"],
    [{ [IDENTITY_HEADER]: "" }, "malformed x-svckit-identity: not JSON"],
    [{ [IDENTITY_HEADER]: "A".repeat(8193) }, "x-svckit-identity too large: more than 8192 bytes"],
    [
      [
        [IDENTITY_HEADER, b64({})],
        [IDENTITY_HEADER, b64({})],
      ],
      "more than one x-svckit-identity value",
    ],
  ] as [MetadataInit | undefined, string][])("trustedIdentity refuses %j", async (metadata, message) => {
    const err = await serviceRejection(trustedIdentity()(outgoing)(createContext({ metadata }), undefined));
    expect(err.code).toBe(Code.UNAUTHENTICATED);
    expect(err.message).toBe(message);
  });

  it("trustedIdentity: optional, another header, a smaller limit", async () => {
    const e = trustedIdentity({ header: "X-User", maxSize: 20, optional: true })(async (ctx) =>
      claimsFrom(ctx),
    );
    expect(await e(createContext(), undefined)).toBeUndefined();
    expect(await e(createContext({ metadata: { "x-user": b64({ sub: "a" }) } }), undefined)).toEqual({
      sub: "a",
    });
    const err = await serviceRejection(
      e(createContext({ metadata: { "x-user": b64({ sub: "a".repeat(20) }) } }), undefined),
    );
    expect(err.message).toBe("x-user too large: more than 20 bytes");
    expect(() => trustedIdentity({ maxSize: -1 })).toThrow("maxSize must be a non-negative number, got -1");
    expect(() => forwardIdentity({ header: "a b" })).toThrow('header "a b" is not valid');
  });
});

describe("reissueIdentity", () => {
  const gatewayKey = ecKeys();
  const internal = createJwtSigner({
    privateKey: gatewayKey.privateKey,
    kid: "gw-1",
    issuer: "gateway",
    audience: "internal",
    expiresIn: 30_000,
    clock: fixedClock,
  });

  it("signs a short-lived internal token with the caller's claims, which services verify as usual", async () => {
    const md = await reissueIdentity(internal)(outgoing)(asCaller(verified), undefined);
    const token = (md.authorization as string).slice("Bearer ".length);
    expect(decodeJwt(token)).toEqual({
      sub: "ada",
      scope: "orders:read",
      tenant: "acme",
      iss: "gateway",
      aud: "internal",
      iat: NOW_S,
      exp: NOW_S + 30,
    });
    const service = chain<unknown, unknown>(
      authenticate({
        publicKey: gatewayKey.publicKey,
        issuer: "gateway",
        audience: "internal",
        clock: fixedClock,
      }),
      authorize(requireScopes("orders:read")),
    )(async (ctx) => claimsFrom(ctx)?.sub);
    expect(await service(createContext({ metadata: md }), undefined)).toBe("ada");
  });

  it("picks claims and a header when told; sends a call without claims unchanged", async () => {
    const mw = reissueIdentity(
      { secret: "0123456789abcdef0123456789abcdef", clock: fixedClock },
      { header: "x-internal", claims: (c, ctx) => ({ sub: c.sub, via: ctx.metadata.get("x-via") }) },
    );
    const md = await mw(outgoing)(asCaller(verified).withMetadata({ "x-via": "edge" }), undefined);
    const claims = decodeJwt((md["x-internal"] as string).slice(7));
    expect(claims.sub).toBe("ada");
    expect(claims.via).toBe("edge");
    expect(claims.scope).toBeUndefined();
    expect(await mw(outgoing)(asCaller(undefined), undefined)).toEqual({});
    expect(mw.name).toBe("reissueIdentityMiddleware");
  });
});
