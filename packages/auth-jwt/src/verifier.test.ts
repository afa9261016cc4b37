import { createHmac, createSign, generateKeyPairSync, type KeyObject } from "node:crypto";
import {
  createJwtSigner,
  createJwtVerifier,
  type JwtVerifierOptions,
  type PrivateKeyInput,
  type PublicKeyInput,
} from "@svckit/auth-jwt";
import { Code, type ServiceError } from "@svckit/endpoint";
import fc from "fast-check";
import { errors as joseErrors } from "jose";
import { describe, expect, it, vi } from "vitest";
import {
  b64,
  CERT_KEY_PEM,
  CERT_PEM,
  craft,
  ecKeys,
  fixedClock,
  NOW,
  NOW_S,
  OTHER_SECRET,
  rsaKeys,
  SECRET,
  serviceRejection,
  validClaims,
} from "./test-helpers.js";

const hs = (extra: Record<string, unknown> = {}, secret: string | Uint8Array = SECRET): string =>
  craft({ alg: "HS256", typ: "JWT" }, validClaims(extra), secret);

const pem = (key: KeyObject, type: "spki" | "pkcs1"): string => key.export({ type, format: "pem" }) as string;

function verifier(options: Partial<JwtVerifierOptions> = {}) {
  return createJwtVerifier({ secret: SECRET, clock: fixedClock, ...options } as JwtVerifierOptions);
}

/** Verifies and returns the UNAUTHENTICATED message, checking code and challenge on the way. */
async function refusal(token: string, options: Partial<JwtVerifierOptions> = {}): Promise<string> {
  const err = await serviceRejection(verifier(options).verify(token));
  expect(err.code).toBe(Code.UNAUTHENTICATED);
  expect(err.metadata.get("www-authenticate")).toBe(
    `Bearer error="invalid_token", error_description="${err.message}"`,
  );
  return err.message;
}

/**
 * The rejection of `promise`, checked to be a fault of the server's: `code` and `message`, and no
 * `www-authenticate` challenge (nothing tells the client to drop its token). Returns it for the cause.
 */
async function serverFault(
  promise: Promise<unknown>,
  code: Code = Code.INTERNAL,
  message = "token verification failed",
): Promise<ServiceError> {
  const err = await serviceRejection(promise);
  expect({ code: err.code, message: err.message }).toEqual({ code, message });
  expect(err.metadata.has("www-authenticate")).toBe(false);
  return err;
}

/** A JWK of `key` with `extra` members. */
const jwkOf = (key: KeyObject, extra: Record<string, unknown> = {}) => ({
  ...key.export({ format: "jwk" }),
  ...extra,
});

/** An ES256 token signed with the shared EC key, with `kid` when given. */
const es256 = (kid?: string): Promise<string> =>
  createJwtSigner({
    privateKey: ecKeys().privateKey,
    clock: fixedClock,
    ...(kid === undefined ? {} : { kid }),
  }).sign();

/** An RS256 token made by hand: jose will not sign with an RSA key under 2048 bits. */
function rs256(privateKey: KeyObject, kid: string | undefined): string {
  const input = `${b64(kid === undefined ? { alg: "RS256" } : { alg: "RS256", kid })}.${b64(validClaims())}`;
  return `${input}.${createSign("RSA-SHA256").update(input).sign(privateKey).toString("base64url")}`;
}

describe("createJwtVerifier: setup", () => {
  it.each([
    [{}, "give exactly one of secret, publicKey, jwks, jwksUrl (got none)"],
    [{ secret: SECRET, jwksUrl: "http://127.0.0.1/jwks" }, "(got secret, jwksUrl)"],
    [{ secret: "short" }, "secret must be at least 32 bytes (256 bits) for HS256, got 5"],
    [{ secret: SECRET, algorithms: ["none"] }, "algorithm none is never allowed"],
    [
      { secret: SECRET, algorithms: ["HS512"] },
      "algorithm HS512 does not fit the secret (it needs a secret of 64 bytes)",
    ],
    [{ secret: SECRET, algorithms: ["RS256"] }, "algorithm RS256 does not fit the secret"],
    [{ secret: SECRET, algorithms: [] }, "algorithms must be a non-empty array"],
    [{ secret: SECRET, realm: 'a"b' }, "realm must be a non-empty printable ASCII string"],
    [{ secret: SECRET, maxTokenSize: -1 }, "maxTokenSize must be a non-negative number, got -1"],
    [{ secret: SECRET, clockSkew: Number.NaN }, "clockSkew must be a finite non-negative number, got NaN"],
    // jose refuses Infinity on every verify: every token would be answered 401.
    [
      { secret: SECRET, clockSkew: Number.POSITIVE_INFINITY },
      "clockSkew must be a finite non-negative number, got Infinity",
    ],
    [
      { secret: SECRET, maxTokenAge: Number.POSITIVE_INFINITY },
      "maxTokenAge must be a finite non-negative number, got Infinity",
    ],
    [{ publicKey: "not a pem" }, "a publicKey string must be PEM"],
    [{ publicKey: { kty: "oct", k: "AAAA" } }, 'an "oct" JWK is a shared secret; use `secret`'],
    [{ jwks: { keys: [] }, algorithms: ["HS256"] }, "algorithm HS256 does not fit the key set"],
    [{ jwks: { nope: [] } }, "JSON Web Key Set malformed"],
  ])("refuses %j", (options, message) => {
    expect(() => createJwtVerifier(options as JwtVerifierOptions)).toThrow(message);
  });

  it("refuses an HMAC algorithm for a public key: no algorithm confusion by configuration", () => {
    expect(() => createJwtVerifier({ publicKey: rsaKeys().publicKey, algorithms: ["HS256"] })).toThrow(
      "algorithm HS256 does not fit the rsa key",
    );
    expect(() => createJwtVerifier({ publicKey: ecKeys().publicKey, algorithms: ["ES384"] })).toThrow(
      "algorithm ES384 does not fit the ec key",
    );
  });

  it("refuses a JWK whose alg does not fit its key", () => {
    const jwk = { ...ecKeys().publicKey.export({ format: "jwk" }), alg: "RS256" };
    expect(() => createJwtVerifier({ publicKey: jwk })).toThrow("the JWK's alg RS256 does not fit its key");
    const priv = { ...ecKeys().privateKey.export({ format: "jwk" }), alg: "ES384" };
    expect(() => createJwtSigner({ privateKey: priv })).toThrow("the JWK's alg ES384 does not fit its key");
  });

  it("refuses RSA keys under 2048 bits and curves Web Crypto lacks", () => {
    const weak = generateKeyPairSync("rsa", { modulusLength: 1024 });
    expect(() => createJwtVerifier({ publicKey: weak.publicKey })).toThrow(
      "RSA keys must have at least 2048 bits, got 1024",
    );
    const secp256k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
    expect(() => createJwtVerifier({ publicKey: secp256k1.publicKey })).toThrow(
      "unsupported EC curve secp256k1",
    );
  });

  it("derives the allow-list from the key", () => {
    expect(createJwtVerifier({ secret: SECRET }).algorithms).toEqual(["HS256"]);
    expect(createJwtVerifier({ secret: SECRET + SECRET }).algorithms).toEqual(["HS256", "HS384", "HS512"]);
    expect(createJwtVerifier({ publicKey: rsaKeys().publicKey }).algorithms).toEqual([
      "RS256",
      "RS384",
      "RS512",
      "PS256",
      "PS384",
      "PS512",
    ]);
    expect(createJwtVerifier({ publicKey: ecKeys().publicKey }).algorithms).toEqual(["ES256"]);
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
    expect(createJwtVerifier({ publicKey: p384.publicKey }).algorithms).toEqual(["ES384"]);
    const ed = generateKeyPairSync("ed25519");
    expect(createJwtVerifier({ publicKey: ed.publicKey }).algorithms).toEqual(["EdDSA", "Ed25519"]);
    const jwk = { ...rsaKeys().publicKey.export({ format: "jwk" }), alg: "PS384" };
    expect(createJwtVerifier({ publicKey: jwk }).algorithms).toEqual(["PS384"]);
    expect(createJwtVerifier({ jwks: { keys: [] } }).algorithms).not.toContain("HS256");
    expect(createJwtVerifier({ secret: SECRET, algorithms: ["HS256", "HS256"] }).algorithms).toEqual([
      "HS256",
    ]);
  });

  it("exposes its realm and size limit", () => {
    const v = createJwtVerifier({ secret: SECRET, realm: "api", maxTokenSize: 100 });
    expect(v.realm).toBe("api");
    expect(v.maxTokenSize).toBe(100);
    expect(createJwtVerifier({ secret: SECRET }).maxTokenSize).toBe(8192);
  });
});

describe("createJwtVerifier: valid tokens", () => {
  it("verifies an HS256 token and returns its claims and header", async () => {
    const { claims, header } = await verifier().verify(hs({ scope: "a b" }));
    expect(claims).toEqual(validClaims({ scope: "a b" }));
    expect(header).toEqual({ alg: "HS256", typ: "JWT" });
  });

  it("keeps its own copy of a Uint8Array secret: wiping the caller's buffer after setup changes nothing", async () => {
    const bytes = new TextEncoder().encode(SECRET + SECRET); // 64 bytes: HS256 and HS512
    const original = Uint8Array.from(bytes);
    const zeros = new Uint8Array(bytes.byteLength);
    const hs512 = (key: Uint8Array): string => {
      const input = `${b64({ alg: "HS512" })}.${b64(validClaims())}`;
      return `${input}.${createHmac("sha512", key).update(input).digest("base64url")}`;
    };
    const v = createJwtVerifier({ secret: bytes, clock: fixedClock, cache: false });
    bytes.fill(0); // keys are imported on first use per algorithm, after this
    expect((await v.verify(hs({}, original))).claims.sub).toBe("ada");
    expect((await v.verify(hs512(original))).claims.sub).toBe("ada");
    for (const forged of [hs({}, zeros), hs512(zeros)]) {
      const err = await serviceRejection(v.verify(forged));
      expect({ code: err.code, message: err.message }).toEqual({
        code: Code.UNAUTHENTICATED,
        message: "invalid signature",
      });
    }
  });

  type KeyCase = [string, () => PrivateKeyInput, (() => PublicKeyInput) | undefined];
  const keyCases: KeyCase[] = [
    ["ES256 KeyObject", () => ecKeys().privateKey, () => ecKeys().publicKey],
    ["RS256 PEM", () => rsaKeys().privateKey, () => pem(rsaKeys().publicKey, "spki")],
    ["RS256 PKCS#1 PEM", () => rsaKeys().privateKey, () => pem(rsaKeys().publicKey, "pkcs1")],
    ["ES256 JWK", () => ecKeys().privateKey, () => ecKeys().publicKey.export({ format: "jwk" })],
    ["ES256 X.509 certificate", () => CERT_KEY_PEM, () => CERT_PEM],
    ["EdDSA private key given as public", () => generateKeyPairSync("ed25519").privateKey, undefined],
  ];
  it.each(keyCases)("verifies with a public key: %s", async (_name, privateKey, publicKey) => {
    const priv = privateKey();
    const signer = createJwtSigner({ privateKey: priv, clock: fixedClock });
    const pub = publicKey === undefined ? (priv as PublicKeyInput) : publicKey();
    const v = createJwtVerifier({ publicKey: pub, clock: fixedClock });
    const { claims } = await v.verify(await signer.sign({ sub: "ada" }));
    expect(claims.sub).toBe("ada");
  });

  it("verifies with a Web Crypto CryptoKey", async () => {
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ]);
    const signer = createJwtSigner({ privateKey: pair.privateKey, clock: fixedClock });
    const v = createJwtVerifier({ publicKey: pair.publicKey, clock: fixedClock });
    expect((await v.verify(await signer.sign({ sub: "ada" }))).claims.sub).toBe("ada");
  });

  it("verifies PS256 and RS512 tokens with one RSA key", async () => {
    const v = createJwtVerifier({ publicKey: rsaKeys().publicKey, clock: fixedClock });
    for (const algorithm of ["PS256", "RS512"]) {
      const signer = createJwtSigner({ privateKey: rsaKeys().privateKey, algorithm, clock: fixedClock });
      const { header } = await v.verify(await signer.sign());
      expect(header.alg).toBe(algorithm);
    }
  });

  it("accepts exp and nbf within the clock skew (5 s by default)", async () => {
    await expect(verifier().verify(hs({ exp: NOW_S - 4 }))).resolves.toBeDefined();
    await expect(verifier().verify(hs({ nbf: NOW_S + 4 }))).resolves.toBeDefined();
    await expect(
      verifier({ clockSkew: 0 }).verify(hs({ exp: NOW_S + 1, nbf: NOW_S })),
    ).resolves.toBeDefined();
  });

  it("checks issuer, audience (any match), subject, typ and max age when asked", async () => {
    const v = verifier({
      issuer: ["https://a.example/", "https://b.example/"],
      audience: "orders",
      subject: "ada",
      typ: "JWT",
      maxTokenAge: 60_000,
    });
    const { claims } = await v.verify(hs({ iss: "https://b.example/", aud: ["billing", "orders"] }));
    expect(claims.iss).toBe("https://b.example/");
  });

  it("accepts a token without exp when requireExp is false", async () => {
    const token = craft({ alg: "HS256" }, { sub: "ada" }, SECRET);
    await expect(verifier({ requireExp: false }).verify(token)).resolves.toBeDefined();
  });

  it("uses the real clock when none is given", async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = craft({ alg: "HS256" }, { sub: "ada", exp: now + 60 }, SECRET);
    await expect(createJwtVerifier({ secret: SECRET }).verify(token)).resolves.toBeDefined();
  });

  it("picks the key of a local JWKS by kid, and tries each key for a token without kid", async () => {
    const a = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const b = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwks = {
      keys: [
        { ...a.publicKey.export({ format: "jwk" }), kid: "a" },
        { ...b.publicKey.export({ format: "jwk" }), kid: "b" },
      ],
    };
    const v = createJwtVerifier({ jwks, clock: fixedClock });
    const withKid = createJwtSigner({ privateKey: b.privateKey, kid: "b", clock: fixedClock });
    expect((await v.verify(await withKid.sign({ sub: "b" }))).header.kid).toBe("b");
    const noKid = createJwtSigner({ privateKey: b.privateKey, clock: fixedClock });
    expect((await v.verify(await noKid.sign({ sub: "b" }))).claims.sub).toBe("b");

    const unknown = createJwtSigner({ privateKey: b.privateKey, kid: "c", clock: fixedClock });
    expect((await serviceRejection(v.verify(await unknown.sign()))).message).toBe(
      "no key matches the token (unknown kid)",
    );
    const stranger = createJwtSigner({ privateKey: ecKeys().privateKey, clock: fixedClock });
    expect((await serviceRejection(v.verify(await stranger.sign()))).message).toBe("invalid signature");
    const expired = createJwtSigner({ privateKey: a.privateKey, clock: () => NOW - 3_600_000 });
    expect((await serviceRejection(v.verify(await expired.sign()))).message).toBe("token expired");
  });
});

describe("createJwtVerifier: refusals", () => {
  it.each([
    ["garbage", "garbage", "malformed token: not a compact JWS (three base64url parts)"],
    ["two parts", "abc.def", "malformed token: not a compact JWS (three base64url parts)"],
    ["bad characters", "a b.c.d", "malformed token: not a compact JWS (three base64url parts)"],
    ["header not JSON", `${Buffer.from("{nope").toString("base64url")}.e30.sig`, "malformed token"],
    ["payload not JSON", craft({ alg: "HS256" }, "{nope", SECRET), "malformed token"],
    ["payload an array", craft({ alg: "HS256" }, [1, 2], SECRET), "malformed token"],
    ["no alg", craft({ typ: "JWT" }, validClaims(), SECRET), "malformed token"],
    ["wrong signature", hs({}, OTHER_SECRET), "invalid signature"],
    ["signature cut", hs().slice(0, -5), "invalid signature"],
    ["expired", hs({ exp: NOW_S - 6 }), "token expired"],
    ["not yet valid", hs({ nbf: NOW_S + 6 }), "token not yet valid"],
    ["no exp", craft({ alg: "HS256" }, { sub: "ada" }, SECRET), "missing claim: exp"],
    ["exp not a number", hs({ exp: "tomorrow" }), "invalid claim: exp"],
    ["alg none", craft({ alg: "none", typ: "JWT" }, validClaims()), "algorithm none is not allowed"],
    ["alg None", craft({ alg: "None" }, validClaims(), SECRET), "algorithm None is not allowed"],
    ["alg HS384", craft({ alg: "HS384" }, validClaims(), SECRET), "algorithm HS384 is not allowed"],
    ["unprintable alg", craft({ alg: 'x"y' }, validClaims(), SECRET), "algorithm is not allowed"],
    [
      "unknown crit",
      craft({ alg: "HS256", crit: ["zz"], zz: 1 }, validClaims(), SECRET),
      "unsupported token",
    ],
  ])("%s", async (_name, token, message) => {
    expect(await refusal(token)).toBe(message);
  });

  it("refuses HS256 signed with the RSA public key as secret (algorithm confusion)", async () => {
    const pem = rsaKeys().publicKey.export({ type: "spki", format: "pem" }) as string;
    const forged = craft({ alg: "HS256", typ: "JWT" }, validClaims(), pem);
    expect(await refusal(forged, { secret: undefined, publicKey: pem })).toBe(
      "algorithm HS256 is not allowed",
    );
    const ecPem = ecKeys().publicKey.export({ type: "spki", format: "pem" }) as string;
    expect(
      await refusal(craft({ alg: "HS256" }, validClaims(), ecPem), { secret: undefined, publicKey: ecPem }),
    ).toBe("algorithm HS256 is not allowed");
  });

  it("refuses an RS token when only ES256 fits, and an ES token on an RSA key", async () => {
    const rs = await createJwtSigner({ privateKey: rsaKeys().privateKey, clock: fixedClock }).sign();
    expect(await refusal(rs, { secret: undefined, publicKey: ecKeys().publicKey })).toBe(
      "algorithm RS256 is not allowed",
    );
    const es = await createJwtSigner({ privateKey: ecKeys().privateKey, clock: fixedClock }).sign();
    expect(await refusal(es, { secret: undefined, publicKey: rsaKeys().publicKey })).toBe(
      "algorithm ES256 is not allowed",
    );
  });

  it("refuses what the allow-list leaves out even if the key fits", async () => {
    const signer = createJwtSigner({
      privateKey: rsaKeys().privateKey,
      algorithm: "PS256",
      clock: fixedClock,
    });
    const token = await signer.sign();
    expect(
      await refusal(token, { secret: undefined, publicKey: rsaKeys().publicKey, algorithms: ["RS256"] }),
    ).toBe("algorithm PS256 is not allowed");
  });

  it.each([
    ["wrong issuer", { iss: "https://evil.example/" }, { issuer: "https://a.example/" }, "wrong issuer"],
    ["missing issuer", {}, { issuer: "https://a.example/" }, "missing claim: iss"],
    ["wrong audience", { aud: ["billing"] }, { audience: ["orders", "stock"] }, "wrong audience"],
    ["missing audience", {}, { audience: "orders" }, "missing claim: aud"],
    ["wrong subject", {}, { subject: "bob" }, "wrong subject"],
    ["too old", { iat: NOW_S - 120 }, { maxTokenAge: 60_000 }, "token too old"],
    ["issued in the future", { iat: NOW_S + 60 }, { maxTokenAge: 60_000 }, "token issued in the future"],
    ["missing required claim", {}, { requiredClaims: ["tenant"] }, "missing claim: tenant"],
  ] as const)("%s", async (_name, extra, options, message) => {
    expect(await refusal(hs(extra), options)).toBe(message);
  });

  it("refuses a wrong typ", async () => {
    expect(await refusal(hs(), { typ: "at+jwt" })).toBe("wrong token type");
  });

  it("checks the size before parsing anything", async () => {
    const token = hs({ pad: "x".repeat(9000) });
    expect(await refusal(token)).toBe("token too large: more than 8192 bytes");
    expect(await refusal("!".repeat(8193))).toBe("token too large: more than 8192 bytes");
    await expect(verifier({ maxTokenSize: token.length }).verify(token)).resolves.toBeDefined();
    expect(await refusal(token, { maxTokenSize: token.length - 1 })).toBe(
      `token too large: more than ${token.length - 1} bytes`,
    );
  });

  it("never echoes the token in the message", async () => {
    const token = hs({ secret: "hunter2" }, OTHER_SECRET);
    const message = await refusal(token);
    expect(message).not.toContain(token.split(".")[1]);
  });

  it("refuses a non-string token", async () => {
    expect(await refusal(42 as unknown as string)).toBe("malformed token: not a string");
  });

  it("puts the realm in the challenge", async () => {
    const err = await serviceRejection(verifier({ realm: "orders" }).verify(hs({ exp: NOW_S - 60 })));
    expect(err.metadata.get("www-authenticate")).toBe(
      'Bearer realm="orders", error="invalid_token", error_description="token expired"',
    );
  });

  it("keeps jose's error as the cause, for logs", async () => {
    const err = await serviceRejection(verifier().verify(hs({ exp: NOW_S - 60 })));
    expect((err.cause as { code?: string }).code).toBe("ERR_JWT_EXPIRED");
  });
});

describe("createJwtVerifier: remote key set failures", () => {
  const es = () => createJwtSigner({ privateKey: ecKeys().privateKey, kid: "k", clock: fixedClock }).sign();

  it.each([
    ["connection refused", () => Promise.reject(new TypeError("fetch failed"))],
    ["HTTP 500", async () => new Response("oops", { status: 500 })],
    ["not JSON", async () => new Response("<html>", { status: 200 })],
    ["not a key set", async () => Response.json({ hello: "world" })],
    [
      "a custom fetch that throws synchronously",
      () => {
        throw new TypeError("fetch is not configured");
      },
    ],
    [
      "a key that does not import",
      async () => Response.json({ keys: [jwkOf(ecKeys().publicKey, { kid: "k", x: "AAAA" })] }),
    ],
    ["a private key", async () => Response.json({ keys: [jwkOf(ecKeys().privateKey, { kid: "k" })] })],
  ])("answers UNAVAILABLE when the key set cannot be fetched or used: %s", async (_name, fetch) => {
    const v = createJwtVerifier({
      jwksUrl: "http://127.0.0.1:9/jwks",
      jwksOptions: { fetch },
      clock: fixedClock,
    });
    const err = await serviceRejection(v.verify(await es()));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toBe("signing keys unavailable");
    expect(err.metadata.has("www-authenticate")).toBe(false);
  });

  it("validates jwksOptions at setup", () => {
    expect(() =>
      createJwtVerifier({ jwksUrl: "http://127.0.0.1/jwks", jwksOptions: { cooldown: -1 } }),
    ).toThrow("jwksOptions.cooldown must be a non-negative number, got -1");
    expect(() => createJwtVerifier({ jwksUrl: "not a url" })).toThrow();
  });

  it("sends the configured headers and uses the fetched keys", async () => {
    const seen: string[] = [];
    const jwk = { ...ecKeys().publicKey.export({ format: "jwk" }), kid: "k" };
    const v = createJwtVerifier({
      jwksUrl: new URL("http://127.0.0.1:9/jwks"),
      jwksOptions: {
        headers: { "x-api-key": "k1" },
        fetch: async (_url, init) => {
          seen.push(init.headers.get("x-api-key") ?? "");
          return Response.json({ keys: [jwk] });
        },
      },
      clock: fixedClock,
    });
    await v.verify(await es());
    await v.verify(await es());
    expect(seen).toEqual(["k1"]); // fetched once, then cached
  });
});

describe("createJwtVerifier: faults of the server are not the token's", () => {
  const remote = (keys: readonly object[]) =>
    createJwtVerifier({
      jwksUrl: "http://127.0.0.1:9/jwks",
      jwksOptions: { fetch: async () => Response.json({ keys }) },
      clock: fixedClock,
    });

  it("refuses at setup a local key set with a private key, or a key that does not import", () => {
    expect(() =>
      createJwtVerifier({ jwks: { keys: [jwkOf(ecKeys().privateKey, { kid: "k" })] }, clock: fixedClock }),
    ).toThrow(
      new TypeError(
        'createJwtVerifier: jwks.keys[0] (kid "k") is a private key; a key set to verify with holds public keys',
      ),
    );
    expect(() =>
      createJwtVerifier({
        jwks: { keys: [jwkOf(ecKeys().publicKey), jwkOf(ecKeys().publicKey, { kid: "k", x: "AAAA" })] },
      }),
    ).toThrow(/^createJwtVerifier: jwks\.keys\[1\] \(kid "k"\) cannot be imported: /);
  });

  it("refuses at setup an RSA key under 2048 bits in a local set; leaves keys no check picks alone", () => {
    const weak = generateKeyPairSync("rsa", { modulusLength: 1024 });
    expect(() => createJwtVerifier({ jwks: { keys: [jwkOf(weak.publicKey, { kid: "w" })] } })).toThrow(
      new TypeError(
        'createJwtVerifier: jwks.keys[0] (kid "w"): RSA keys must have at least 2048 bits, got 1024',
      ),
    );
    // An encryption key, a key without "verify" in key_ops, a curve no allowed algorithm uses.
    const v = createJwtVerifier({
      jwks: {
        keys: [
          jwkOf(weak.publicKey, { kid: "enc", use: "enc" }),
          jwkOf(weak.publicKey, { kid: "ops", key_ops: ["encrypt"] }),
          { kty: "OKP", crv: "X25519", x: "AAAA", kid: "x" },
          jwkOf(ecKeys().publicKey, { kid: "k" }),
        ],
      },
    });
    expect(v.algorithms.length).toBeGreaterThan(0);
  });

  it("answers UNAVAILABLE when no key of a remote set that fits a token without kid imports", async () => {
    const broken = [jwkOf(ecKeys().publicKey, { x: "AAAA" }), jwkOf(ecKeys().publicKey, { y: "AAAA" })];
    const err = await serverFault(
      remote(broken).verify(await es256()),
      Code.UNAVAILABLE,
      "signing keys unavailable",
    );
    expect((err.cause as Error).message).toBe("none of the keys that fit the token could be imported");
  });

  it("refuses a token whose kid names an RSA key under 2048 bits in a remote set: 401, not a fault", async () => {
    const weak = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const err = await serviceRejection(
      remote([jwkOf(weak.publicKey, { kid: "w" })]).verify(rs256(weak.privateKey, "w")),
    );
    expect({ code: err.code, message: err.message }).toEqual({
      code: Code.UNAUTHENTICATED,
      message: "the token's signing key is not acceptable (RSA keys need at least 2048 bits)",
    });
    expect(err.metadata.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("tries the other keys when one that fits a token without kid cannot be used", async () => {
    const weak = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const good = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const keys = [jwkOf(weak.publicKey), jwkOf(good.publicKey)];
    await expect(remote(keys).verify(rs256(good.privateKey, undefined))).resolves.toMatchObject({
      claims: { sub: "ada" },
    });
    // A good key refused the signature: the token's fault, whatever the weak key was.
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const err = await serviceRejection(remote(keys).verify(rs256(other.privateKey, undefined)));
    expect({ code: err.code, message: err.message }).toEqual({
      code: Code.UNAUTHENTICATED,
      message: "invalid signature",
    });
    // Only the weak key fits: the token cannot be accepted (401), not a fault of the server.
    const only = await serviceRejection(
      remote([jwkOf(weak.publicKey)]).verify(rs256(weak.privateKey, undefined)),
    );
    expect({ code: only.code, message: only.message }).toEqual({
      code: Code.UNAUTHENTICATED,
      message: "the token's signing key is not acceptable (RSA keys need at least 2048 bits)",
    });
    // Two weak keys fit a token without kid (jose offers both as candidates): the same.
    const twice = await serviceRejection(
      remote([
        jwkOf(weak.publicKey),
        jwkOf(generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey),
      ]).verify(rs256(weak.privateKey, undefined)),
    );
    expect(twice.code).toBe(Code.UNAUTHENTICATED);
  });

  it("answers INTERNAL when Web Crypto cannot import a configured public key, and imports it again next time", async () => {
    const v = createJwtVerifier({ publicKey: ecKeys().publicKey, clock: fixedClock, cache: false });
    const token = await es256();
    const failure = new DOMException("Unsupported key", "NotSupportedError");
    const importKey = vi.spyOn(crypto.subtle, "importKey").mockRejectedValueOnce(failure);
    try {
      expect((await serverFault(v.verify(token))).cause).toBe(failure);
    } finally {
      importKey.mockRestore();
    }
    expect((await v.verify(token)).header.alg).toBe("ES256");
  });

  it("tells ERR_JOSE_NOT_SUPPORTED from the configured key apart from one about the token", async () => {
    const token = hs();
    const failure = new joseErrors.JOSENotSupported("key type not supported");
    const importKey = vi.spyOn(crypto.subtle, "importKey").mockRejectedValueOnce(failure);
    try {
      expect((await serverFault(verifier({ cache: false }).verify(token))).cause).toBe(failure);
    } finally {
      importKey.mockRestore();
    }
    // An unknown critical header extension is the token's: still UNAUTHENTICATED.
    expect(await refusal(craft({ alg: "HS256", crit: ["zz"], zz: 1 }, validClaims(), SECRET))).toBe(
      "unsupported token",
    );
  });

  it("answers UNAVAILABLE when a remote set's key is refused by jose as not supported", async () => {
    const v = remote([jwkOf(ecKeys().publicKey, { kid: "k" })]);
    const token = await es256("k");
    const importKey = vi
      .spyOn(crypto.subtle, "importKey")
      .mockRejectedValueOnce(new joseErrors.JOSENotSupported("key type not supported"));
    try {
      await serverFault(v.verify(token), Code.UNAVAILABLE, "signing keys unavailable");
    } finally {
      importKey.mockRestore();
    }
  });

  it.each([
    ["returns NaN", () => Number.NaN],
    ["returns Infinity", () => Number.POSITIVE_INFINITY],
    [
      "throws",
      () => {
        throw new TypeError("clock source down");
      },
    ],
  ])("answers INTERNAL when the clock %s, with the cache on or off", async (_name, clock) => {
    for (const cache of [true, false]) {
      const err = await serverFault(verifier({ clock, cache }).verify(hs()));
      expect(err.cause).toBeInstanceOf(TypeError);
    }
  });

  it("never accepts a cached token while the clock is broken", async () => {
    let now = NOW;
    const v = verifier({ clock: () => now });
    const token = hs({ exp: NOW_S + 10 });
    await v.verify(token); // cached
    now = Number.NaN;
    await serverFault(v.verify(token));
    now = NOW + 60_000;
    expect(await refusal(token, { clock: () => now })).toBe("token expired");
  });

  it("still refuses a token whose alg the key set has no key for, as the token's fault", async () => {
    const v = createJwtVerifier({
      jwks: { keys: [jwkOf(ecKeys().publicKey, { kid: "k" })] },
      clock: fixedClock,
    });
    // RS256 is allowed for key sets, but key k is an EC key: no key fits the token.
    const rs = await createJwtSigner({
      privateKey: rsaKeys().privateKey,
      kid: "k",
      clock: fixedClock,
    }).sign();
    const err = await serviceRejection(v.verify(rs));
    expect([err.code, err.message]).toEqual([Code.UNAUTHENTICATED, "no key matches the token (unknown kid)"]);
    const hmac = await serviceRejection(v.verify(craft({ alg: "HS256", kid: "k" }, validClaims(), SECRET)));
    expect([hmac.code, hmac.message]).toEqual([Code.UNAUTHENTICATED, "algorithm HS256 is not allowed"]);
  });

  it("answers UNAUTHENTICATED, never INTERNAL, for random tokens against key sets", async () => {
    const ec = ecKeys();
    const keys = [
      jwkOf(ec.publicKey, { kid: "a" }),
      jwkOf(rsaKeys().publicKey, { kid: "r", alg: "RS256", use: "sig" }),
      jwkOf(generateKeyPairSync("ed25519").publicKey, { kid: "e" }),
      jwkOf(generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey),
      jwkOf(ec.publicKey),
    ];
    const verifiers = [createJwtVerifier({ jwks: { keys }, clock: fixedClock }), remote(keys), verifier()];
    const rare = <T>(arbitrary: fc.Arbitrary<T>) =>
      fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary });
    const odd = fc.oneof(
      fc.string({ maxLength: 4 }),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom(["b64"], ["zz"], []),
    );
    const header = fc
      .record({
        alg: fc.oneof(fc.constantFrom("ES256", "RS256", "PS256", "EdDSA", "HS256", "ES384", "none"), odd),
        kid: fc.oneof(fc.constantFrom(undefined, "a", "r", "e", "zz"), odd),
        crit: rare(odd),
        b64: rare(odd),
        zz: rare(odd),
      })
      .map((h) => Object.fromEntries(Object.entries(h).filter(([, value]) => value !== undefined)));
    const payload = fc.oneof(fc.jsonValue(), fc.constant(validClaims()));
    const sign = (input: string) =>
      createSign("SHA256")
        .update(input)
        .sign({ key: ec.privateKey, dsaEncoding: "ieee-p1363" })
        .toString("base64url");
    const token = fc
      .tuple(header, payload, fc.boolean())
      .map(([h, p, hmac]) =>
        hmac ? craft(h, p, SECRET) : `${b64(h)}.${b64(p)}.${sign(`${b64(h)}.${b64(p)}`)}`,
      );
    await fc.assert(
      fc.asyncProperty(token, fc.constantFrom(...verifiers), async (t, v) => {
        const err = await v.verify(t).then(
          () => undefined,
          (e: unknown) => e as ServiceError,
        );
        if (err !== undefined) expect([err.code, err.message]).toEqual([Code.UNAUTHENTICATED, err.message]);
      }),
      { numRuns: 300 },
    );
  });
});

describe("createJwtVerifier: a fixed clock", () => {
  it("judges exp by the given clock, not the real one", async () => {
    const token = hs({ exp: NOW_S + 10 });
    await expect(verifier({ clock: () => NOW }).verify(token)).resolves.toBeDefined();
    expect(await refusal(token, { clock: () => NOW + 16_000 })).toBe("token expired");
  });
});
