import { type KeyObject, webcrypto } from "node:crypto";
import { SignJWT } from "jose";
import {
  allowList,
  asymmetricAlgorithms,
  hmacAlgorithms,
  type PrivateKeyInput,
  type SecretInput,
  secretBytes,
  toPrivateKey,
} from "./keys.js";
import type { JwtClaims } from "./verifier.js";

/** Options of {@link createJwtSigner}. Give exactly one of `secret` and `privateKey`. Durations are in ms. */
export interface JwtSignerOptions {
  /** A shared HMAC secret (at least 32 bytes; a string is taken as UTF-8). */
  secret?: SecretInput;
  /** A private key: `KeyObject`, `CryptoKey`, private JWK or PEM. */
  privateKey?: PrivateKeyInput;
  /** The algorithm. Default: HS256 for a secret, RS256 / PS256 / ES256 / ES384 / ES512 / EdDSA by key type. */
  algorithm?: string;
  /** The `kid` header, so verifiers with a key set pick the right key. */
  kid?: string;
  /** The `iss` claim set on every token. */
  issuer?: string;
  /** The `aud` claim set on every token. */
  audience?: string | readonly string[];
  /** The `sub` claim, unless the claims given to `sign` have one. */
  subject?: string;
  /** Claims added to every token. */
  claims?: JwtClaims;
  /** Token lifetime in ms (default 60 000): `exp` is `iat` + this. */
  expiresIn?: number;
  /** The `typ` header (default `"JWT"`). */
  typ?: string;
  /** The clock, in epoch ms (default `Date.now`). */
  clock?: () => number;
}

/** Signs tokens with one key. */
export interface JwtSigner {
  /**
   * Signs a token with the configured claims plus `claims`, `iat` = now and `exp` = now + `expiresIn`.
   * Called without `claims`, it reuses the last such token while more than half its lifetime is left.
   */
  sign(claims?: JwtClaims): Promise<string>;
  /** The algorithm it signs with. */
  readonly algorithm: string;
}

const HMAC_HASH: Readonly<Record<string, string>> = { HS256: "SHA-256", HS384: "SHA-384", HS512: "SHA-512" };

const brand = Symbol("svckit.auth-jwt.signer");

/** Whether `value` is a signer made by {@link createJwtSigner}. */
export function isJwtSigner(value: unknown): value is JwtSigner {
  return typeof value === "object" && value !== null && brand in value;
}

/**
 * Creates a {@link JwtSigner} for client calls and gateways. The algorithm is derived from the key
 * unless given, and must fit it; tokens are short-lived (60 s) by default.
 *
 * @example
 * ```ts
 * const signer = createJwtSigner({ privateKey: pem, kid: "2024-06", issuer: "billing", audience: "orders" });
 * const token = await signer.sign({ scope: "orders:read" });
 * ```
 */
export function createJwtSigner(options: JwtSignerOptions): JwtSigner {
  const where = "createJwtSigner";
  if ((options.secret === undefined) === (options.privateKey === undefined)) {
    throw new TypeError(`${where}: give exactly one of secret, privateKey`);
  }
  const expiresIn = options.expiresIn ?? 60_000;
  if (typeof expiresIn !== "number" || !(expiresIn >= 1000) || !Number.isFinite(expiresIn)) {
    throw new TypeError(`${where}: expiresIn must be at least 1000 ms, got ${String(expiresIn)}`);
  }
  const clock = options.clock ?? Date.now;
  const requested = options.algorithm === undefined ? undefined : [options.algorithm];

  let algorithm: string;
  let key: Promise<webcrypto.CryptoKey> | KeyObject;
  if (options.secret !== undefined) {
    const bytes = secretBytes(options.secret, where);
    algorithm = allowList(hmacAlgorithms(bytes), requested, where, "secret")[0] as string;
    const imported = webcrypto.subtle.importKey(
      "raw",
      bytes,
      { name: "HMAC", hash: HMAC_HASH[algorithm] as string },
      false,
      ["sign"],
    );
    imported.catch(() => undefined); // a failure surfaces from `sign`, never as an unhandled rejection
    key = imported;
  } else {
    const privateKey = toPrivateKey(options.privateKey as PrivateKeyInput, where);
    let fitting = asymmetricAlgorithms(privateKey, where);
    const jwkAlg = (options.privateKey as { alg?: unknown }).alg;
    if (typeof jwkAlg === "string") {
      fitting = fitting.filter((alg) => alg === jwkAlg);
      if (fitting.length === 0) throw new TypeError(`${where}: the JWK's alg ${jwkAlg} does not fit its key`);
    }
    algorithm = allowList(fitting, requested, where, `${privateKey.asymmetricKeyType} key`)[0] as string;
    key = privateKey;
  }

  const header: { alg: string; typ: string; kid?: string } = { alg: algorithm, typ: options.typ ?? "JWT" };
  if (options.kid !== undefined) header.kid = options.kid;
  const fixed: JwtClaims = { ...options.claims };
  const audience = options.audience === undefined ? undefined : toAudience(options.audience);

  let cached: { token: Promise<string>; renewAt: number } | undefined;

  async function signNow(claims: JwtClaims | undefined, now: number): Promise<string> {
    const payload: JwtClaims = { ...fixed, ...claims };
    if (options.subject !== undefined && payload.sub === undefined) payload.sub = options.subject;
    if (options.issuer !== undefined) payload.iss = options.issuer;
    if (audience !== undefined) payload.aud = audience;
    const iat = Math.floor(now / 1000);
    payload.iat = iat;
    payload.exp = Math.floor((now + expiresIn) / 1000);
    return new SignJWT(payload).setProtectedHeader(header).sign(await key);
  }

  function sign(claims?: JwtClaims): Promise<string> {
    const now = clock();
    if (claims !== undefined) return signNow(claims, now);
    if (cached === undefined || now >= cached.renewAt) {
      const token = signNow(undefined, now);
      const entry = { token, renewAt: now + expiresIn / 2 };
      cached = entry;
      token.catch(() => {
        if (cached === entry) cached = undefined;
      });
    }
    return cached.token;
  }

  return { [brand]: true, sign, algorithm } as JwtSigner;
}

function toAudience(value: string | readonly string[]): string | string[] {
  return typeof value === "string" ? value : [...value];
}
