import { generateKeyPairSync } from "node:crypto";
import {
  authenticate,
  claimsFrom,
  createJwtSigner,
  createJwtVerifier,
  forwardToken,
  type JwtSignerOptions,
  signToken,
} from "@svckit/auth-jwt";
import { type Context, createContext, type Endpoint } from "@svckit/endpoint";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { describe, expect, it } from "vitest";
import { craft, ecKeys, fixedClock, NOW, NOW_S, rsaKeys, SECRET, validClaims } from "./test-helpers.js";

describe("createJwtSigner", () => {
  it.each([
    ["HS256 for a secret", { secret: SECRET }, "HS256"],
    ["RS256 for RSA", { privateKey: rsaKeys().privateKey }, "RS256"],
    ["PS256 when asked", { privateKey: rsaKeys().privateKey, algorithm: "PS256" }, "PS256"],
    ["ES256 for P-256", { privateKey: ecKeys().privateKey }, "ES256"],
    [
      "ES512 for P-521",
      { privateKey: generateKeyPairSync("ec", { namedCurve: "P-521" }).privateKey },
      "ES512",
    ],
    ["EdDSA for Ed25519", { privateKey: generateKeyPairSync("ed25519").privateKey }, "EdDSA"],
    [
      "the JWK's alg",
      { privateKey: { ...rsaKeys().privateKey.export({ format: "jwk" }), alg: "RS384" } },
      "RS384",
    ],
    [
      "a PEM private key",
      { privateKey: ecKeys().privateKey.export({ type: "pkcs8", format: "pem" }) as string },
      "ES256",
    ],
    ["a given algorithm", { secret: SECRET + SECRET, algorithm: "HS512" }, "HS512"],
  ] as [string, JwtSignerOptions, string][])("derives %s", async (_name, options, alg) => {
    const signer = createJwtSigner({ ...options, clock: fixedClock });
    expect(signer.algorithm).toBe(alg);
    const token = await signer.sign({ sub: "ada" });
    expect(decodeProtectedHeader(token)).toEqual({ alg, typ: "JWT" });
  });

  it.each([
    [{}, "give exactly one of secret, privateKey"],
    [{ secret: SECRET, privateKey: ecKeys().privateKey }, "give exactly one of secret, privateKey"],
    [{ secret: SECRET, algorithm: "none" }, "algorithm none is never allowed"],
    [{ secret: SECRET, algorithm: "HS384" }, "algorithm HS384 does not fit the secret"],
    [{ privateKey: ecKeys().privateKey, algorithm: "HS256" }, "algorithm HS256 does not fit the ec key"],
    [{ privateKey: ecKeys().publicKey }, "privateKey must be a private key, got public"],
    [{ privateKey: "nope" }, "a privateKey string must be PEM"],
    [{ secret: SECRET, expiresIn: 10 }, "expiresIn must be at least 1000 ms, got 10"],
    [
      { privateKey: generateKeyPairSync("rsa-pss", { modulusLength: 2048 }).privateKey },
      'RSASSA-PSS key objects are not supported; use an "rsa" key',
    ],
  ] as [JwtSignerOptions, string][])("refuses %j", (options, message) => {
    expect(() => createJwtSigner(options)).toThrow(message);
  });

  it("sets iat, exp, iss, aud, sub, kid, typ and the fixed claims", async () => {
    const signer = createJwtSigner({
      secret: SECRET,
      kid: "k1",
      issuer: "billing",
      audience: ["orders", "stock"],
      subject: "svc-billing",
      claims: { scope: "orders:read", iss: "ignored" },
      expiresIn: 120_000,
      typ: "at+jwt",
      clock: fixedClock,
    });
    const token = await signer.sign({ tenant: "acme" });
    expect(decodeProtectedHeader(token)).toEqual({ alg: "HS256", typ: "at+jwt", kid: "k1" });
    expect(decodeJwt(token)).toEqual({
      scope: "orders:read",
      tenant: "acme",
      iss: "billing",
      aud: ["orders", "stock"],
      sub: "svc-billing",
      iat: NOW_S,
      exp: NOW_S + 120,
    });
    expect(decodeJwt(await signer.sign({ sub: "ada" })).sub).toBe("ada");
  });

  it("makes tokens its verifier accepts", async () => {
    const signer = createJwtSigner({
      privateKey: ecKeys().privateKey,
      issuer: "a",
      audience: "b",
      clock: fixedClock,
    });
    const verifier = createJwtVerifier({
      publicKey: ecKeys().publicKey,
      issuer: "a",
      audience: "b",
      clock: fixedClock,
    });
    expect((await verifier.verify(await signer.sign({ sub: "ada" }))).claims.sub).toBe("ada");
  });

  it("keeps its own copy of a Uint8Array secret: wiping the caller's buffer after setup changes nothing", async () => {
    const bytes = new TextEncoder().encode(SECRET);
    const signer = createJwtSigner({ secret: bytes, clock: fixedClock });
    bytes.fill(0);
    const token = await signer.sign({ sub: "ada" });
    const verifier = createJwtVerifier({ secret: SECRET, clock: fixedClock });
    expect((await verifier.verify(token)).claims.sub).toBe("ada");
  });

  it("reuses the token without claims while more than half its lifetime is left", async () => {
    let now = NOW;
    const signer = createJwtSigner({ secret: SECRET, expiresIn: 60_000, clock: () => now });
    const first = await signer.sign();
    now += 29_000;
    expect(await signer.sign()).toBe(first);
    now += 2_000;
    const second = await signer.sign();
    expect(second).not.toBe(first);
    expect(decodeJwt(second).iat).toBe(NOW_S + 31);
    expect(await signer.sign({ a: 1 })).not.toBe(second);
  });

  it("uses the real clock by default", async () => {
    const token = await createJwtSigner({ secret: SECRET }).sign();
    expect(Math.abs((decodeJwt(token).iat ?? 0) - Date.now() / 1000)).toBeLessThan(5);
  });
});

describe("signToken", () => {
  const echo: Endpoint<unknown, string | undefined> = async (ctx) =>
    ctx.outgoingMetadata.get("authorization");

  it("sends Bearer <token> in the outgoing metadata", async () => {
    const client = signToken({ secret: SECRET, issuer: "billing", clock: fixedClock })(echo);
    const header = (await client(createContext(), undefined)) ?? "";
    expect(header.startsWith("Bearer ")).toBe(true);
    expect(decodeJwt(header.slice(7)).iss).toBe("billing");
  });

  it("signs per call with claims from the context, under another key when told", async () => {
    const signer = createJwtSigner({ secret: SECRET, clock: fixedClock });
    const client = signToken(signer, {
      header: "X-Internal-Token",
      claims: (ctx: Context) => ({ tenant: ctx.metadata.get("x-tenant") }),
    })(async (ctx) => ctx.outgoingMetadata.get("x-internal-token"));
    const header = (await client(createContext({ metadata: { "x-tenant": "acme" } }), undefined)) ?? "";
    expect(decodeJwt(header.slice(7)).tenant).toBe("acme");
  });

  it("reuses one token across calls without claims", async () => {
    const client = signToken({ secret: SECRET, clock: fixedClock })(echo);
    expect(await client(createContext(), undefined)).toBe(await client(createContext(), undefined));
  });

  it("refuses an invalid header name and returns named functions", () => {
    expect(() => signToken({ secret: SECRET }, { header: "bad header" })).toThrow(
      'header "bad header" is not valid',
    );
    const mw = signToken({ secret: SECRET });
    expect(mw.name).toBe("signTokenMiddleware");
    expect(mw(echo).name).toBe("signedCall");
  });
});

describe("forwardToken", () => {
  const token = craft({ alg: "HS256" }, validClaims(), SECRET);
  const outgoing: Endpoint<unknown, string | undefined> = async (ctx) =>
    ctx.outgoingMetadata.get("authorization");

  it("forwards the token authenticate verified", async () => {
    const client = forwardToken()(outgoing);
    const server = authenticate({ secret: SECRET, clock: fixedClock })(async (ctx) => {
      expect(claimsFrom(ctx)?.sub).toBe("ada");
      return client(ctx, undefined);
    });
    expect(await server(createContext({ metadata: { authorization: `Bearer ${token}` } }), undefined)).toBe(
      `Bearer ${token}`,
    );
  });

  it("never forwards an unverified incoming token; sends the call unchanged", async () => {
    const client = forwardToken({ header: "x-token" })(async (ctx) => ctx.outgoingMetadata.toRecord());
    expect(
      await client(createContext({ metadata: { authorization: `Bearer ${token}` } }), undefined),
    ).toEqual({});
    expect(forwardToken().name).toBe("forwardTokenMiddleware");
  });
});
