import {
  authenticate,
  claimsFrom,
  claimsKey,
  createJwtSigner,
  createJwtVerifier,
  tokenFrom,
} from "@svckit/auth-jwt";
import { Code, type Context, chain, createContext, type Endpoint, type MetadataInit } from "@svckit/endpoint";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { craft, ecKeys, fixedClock, NOW_S, SECRET, serviceRejection, validClaims } from "./test-helpers.js";

const verifier = createJwtVerifier({ secret: SECRET, clock: fixedClock, realm: "api" });
const token = craft({ alg: "HS256", typ: "JWT" }, validClaims({ scope: "read" }), SECRET);

/** An endpoint that reports what authenticate left in the context. */
const whoami: Endpoint<string, { sub: unknown; token: string | undefined; claims: boolean }> = async (
  ctx,
) => ({
  sub: claimsFrom(ctx)?.sub,
  token: tokenFrom(ctx),
  claims: ctx.value(claimsKey) !== undefined,
});

const guarded = authenticate(verifier)(whoami);
const call = (metadata?: MetadataInit, e = guarded) => e(createContext({ metadata }), "req");

async function refused(metadata: MetadataInit | undefined, e = guarded) {
  const err = await serviceRejection(call(metadata, e));
  expect(err.code).toBe(Code.UNAUTHENTICATED);
  return { message: err.message, challenge: err.metadata.get("www-authenticate") };
}

describe("authenticate", () => {
  it("verifies the bearer token and puts claims and token in the context", async () => {
    expect(await call({ authorization: `Bearer ${token}` })).toEqual({ sub: "ada", token, claims: true });
  });

  it("accepts the scheme in any case and several spaces", async () => {
    expect((await call({ authorization: `bearer ${token}` })).sub).toBe("ada");
    expect((await call({ Authorization: `BEARER   ${token}` })).sub).toBe("ada");
  });

  it("refuses a call without a token with a bare challenge (RFC 6750 §3.1)", async () => {
    expect(await refused(undefined)).toEqual({
      message: "missing bearer token",
      challenge: 'Bearer realm="api"',
    });
    const noRealm = authenticate({ secret: SECRET })(whoami);
    expect(await refused({}, noRealm)).toEqual({ message: "missing bearer token", challenge: "Bearer" });
  });

  it("refuses another scheme without an error code", async () => {
    expect(await refused({ authorization: "Basic YWRhOnB3" })).toEqual({
      message: "authorization is not a bearer token",
      challenge: 'Bearer realm="api"',
    });
    expect((await refused({ authorization: `Bearer${token}` })).message).toBe(
      "authorization is not a bearer token",
    );
    expect((await refused({ authorization: "Bear" })).message).toBe("authorization is not a bearer token");
  });

  it("refuses an empty bearer token", async () => {
    expect(await refused({ authorization: "Bearer" })).toEqual({
      message: "malformed token: empty",
      challenge: 'Bearer realm="api", error="invalid_token", error_description="malformed token: empty"',
    });
    expect((await refused({ authorization: "Bearer    " })).message).toBe("malformed token: empty");
  });

  it("refuses more than one authorization value", async () => {
    expect(
      await refused([
        ["authorization", `Bearer ${token}`],
        ["authorization", `Bearer ${token}`],
      ]),
    ).toEqual({
      message: "more than one authorization value",
      challenge:
        'Bearer realm="api", error="invalid_request", error_description="more than one authorization value"',
    });
  });

  it("checks the size before the token is parsed", async () => {
    expect((await refused({ authorization: `Bearer ${"x".repeat(8193)}` })).message).toBe(
      "token too large: more than 8192 bytes",
    );
    const small = authenticate(createJwtVerifier({ secret: SECRET, maxTokenSize: 10 }))(whoami);
    expect((await refused({ authorization: `Bearer ${"x".repeat(11)}` }, small)).message).toBe(
      "token too large: more than 10 bytes",
    );
    expect((await refused({ authorization: `Bearer ${"x".repeat(10)}` }, small)).message).toBe(
      "malformed token: not a compact JWS (three base64url parts)",
    );
  });

  it("counts the token toward maxTokenSize, not the spaces after Bearer", async () => {
    const padded = craft({ alg: "HS256" }, validClaims({ pad: "p".repeat(180) }), SECRET);
    const limit = padded.length; // about 300
    const exact = authenticate(createJwtVerifier({ secret: SECRET, clock: fixedClock, maxTokenSize: limit }))(
      whoami,
    );
    expect((await call({ authorization: `Bearer ${padded}` }, exact)).sub).toBe("ada");
    expect((await call({ authorization: `Bearer  ${padded}` }, exact)).sub).toBe("ada");
    expect((await call({ authorization: `Bearer${" ".repeat(64)}${padded}` }, exact)).sub).toBe("ada");
    const over = `${padded}x`;
    for (const spaces of [1, 2, 64]) {
      expect((await refused({ authorization: `Bearer${" ".repeat(spaces)}${over}` }, exact)).message).toBe(
        `token too large: more than ${limit} bytes`,
      );
    }
    // A value longer than Bearer + 64 spaces + maxTokenSize is refused before the token is scanned, for
    // what it is: a run of spaces no client sends, not a token over the limit.
    expect((await refused({ authorization: `Bearer${" ".repeat(65)}${padded}` }, exact)).message).toBe(
      "more than 64 spaces after Bearer",
    );
    // A short token after many spaces is fine while the value stays within that bound.
    expect((await call({ authorization: `Bearer${" ".repeat(200)}${token}` })).sub).toBe("ada");
  });

  it("passes the verifier's refusal on, with the realm in the challenge", async () => {
    const expired = craft({ alg: "HS256" }, validClaims({ exp: NOW_S - 60 }), SECRET);
    expect(await refused({ authorization: `Bearer ${expired}` })).toEqual({
      message: "token expired",
      challenge: 'Bearer realm="api", error="invalid_token", error_description="token expired"',
    });
  });

  it("passes a fault of the server on without a 401 or a challenge, also when optional", async () => {
    const es = await createJwtSigner({ privateKey: ecKeys().privateKey, kid: "k", clock: fixedClock }).sign();
    const brokenClock = createJwtVerifier({ secret: SECRET, clock: () => Number.NaN, realm: "api" });
    const keySetDown = createJwtVerifier({
      jwksUrl: "http://127.0.0.1:9/jwks",
      jwksOptions: { fetch: () => Promise.reject(new TypeError("fetch failed")) },
      clock: fixedClock,
    });
    const cases = [
      [brokenClock, token, Code.INTERNAL, "token verification failed"],
      [keySetDown, es, Code.UNAVAILABLE, "signing keys unavailable"],
    ] as const;
    for (const [v, bearer, code, message] of cases) {
      for (const optional of [false, true]) {
        const err = await serviceRejection(
          call({ authorization: `Bearer ${bearer}` }, authenticate(v, { optional })(whoami)),
        );
        expect({ code: err.code, message: err.message, optional }).toEqual({ code, message, optional });
        expect(err.metadata.has("www-authenticate")).toBe(false);
      }
    }
    // Without a token, nothing reaches the verifier: still the caller's fault.
    expect(await refused({}, authenticate(brokenClock)(whoami))).toEqual({
      message: "missing bearer token",
      challenge: 'Bearer realm="api"',
    });
  });

  it("reads another metadata key when told", async () => {
    const custom = authenticate(verifier, { header: "X-Access-Token" })(whoami);
    expect((await call({ "x-access-token": `Bearer ${token}` }, custom)).sub).toBe("ada");
    expect((await refused({ authorization: `Bearer ${token}` }, custom)).message).toBe(
      "missing bearer token",
    );
  });

  it("lets calls without a token through when optional, but still checks a token that is there", async () => {
    const optional = authenticate(verifier, { optional: true })(whoami);
    expect(await call({}, optional)).toEqual({ sub: undefined, token: undefined, claims: false });
    expect((await call({ authorization: `Bearer ${token}` }, optional)).sub).toBe("ada");
    expect((await refused({ authorization: "Bearer nope" }, optional)).message).toBe(
      "malformed token: not a compact JWS (three base64url parts)",
    );
  });

  it("makes its verifier from options when given options", async () => {
    const e = authenticate({ secret: SECRET, clock: fixedClock })(whoami);
    expect((await call({ authorization: `Bearer ${token}` }, e)).sub).toBe("ada");
  });

  it("returns named functions and composes with chain", async () => {
    const mw = authenticate(verifier);
    expect(mw.name).toBe("authenticateMiddleware");
    expect(mw(whoami).name).toBe("authenticated");
    const seen: string[] = [];
    const outer = (next: Endpoint<string, unknown>) => async (ctx: Context, req: string) => {
      seen.push(`outer sees claims: ${claimsFrom(ctx) !== undefined}`);
      return next(ctx, req);
    };
    await chain<string, unknown>(outer, mw)(whoami)(
      createContext({ metadata: { authorization: `Bearer ${token}` } }),
      "r",
    );
    expect(seen).toEqual(["outer sees claims: false"]);
  });

  it("never crashes on random authorization values: always UNAUTHENTICATED", async () => {
    const anyToken = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.stringMatching(/^[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{1,60}\.[A-Za-z0-9_-]{0,60}$/),
      fc
        .tuple(fc.jsonValue(), fc.jsonValue(), fc.string({ maxLength: 40 }))
        .map(
          ([h, p, s]) =>
            `${Buffer.from(JSON.stringify(h) ?? "").toString("base64url")}.${Buffer.from(JSON.stringify(p) ?? "").toString("base64url")}.${Buffer.from(s).toString("base64url")}`,
        ),
      fc
        .record({
          alg: fc.constantFrom("HS256", "none", "RS256", "ES256", ""),
          kid: fc.string({ maxLength: 5 }),
        })
        .chain((h) => fc.jsonValue().map((p) => craft(h, p, SECRET))),
    );
    await fc.assert(
      fc.asyncProperty(anyToken, fc.boolean(), async (raw, withScheme) => {
        const value = withScheme ? `Bearer ${raw}` : raw;
        try {
          await call({ authorization: value });
        } catch (err) {
          expect((err as { code?: unknown }).code).toBe(Code.UNAUTHENTICATED);
          return;
        }
        throw new Error(`accepted ${JSON.stringify(value)}`);
      }),
      { numRuns: 400 },
    );
  });
});
