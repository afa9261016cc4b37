import { type KeyObject, webcrypto } from "node:crypto";
import { Code, ServiceError } from "@svckit/endpoint";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  type FetchImplementation,
  importJWK,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
} from "jose";
import { checkRealm, unauthenticated } from "./errors.js";
import {
  ASYMMETRIC_ALGORITHMS,
  allowList,
  asymmetricAlgorithms,
  checkKeySet,
  hmacAlgorithms,
  isWeakRsaKey,
  type PublicKeyInput,
  type SecretInput,
  secretBytes,
  toPublicKey,
} from "./keys.js";
import { cacheSettings, deepFreeze, type JwtCacheOptions, TokenCache } from "./token-cache.js";

/** The claims of a verified token (jose's `JWTPayload`: registered claims plus any others). */
export type JwtClaims = JWTPayload;

/** What {@link JwtVerifier.verify} returns. */
export interface VerifiedJwt {
  /** The verified claims. */
  readonly claims: JwtClaims;
  /** The token's protected header (`alg`, `kid`, `typ`, ...). */
  readonly header: JWSHeaderParameters;
}

/** Options of a remote key set (`jwksUrl`); every duration is in milliseconds. */
export interface JwksOptions {
  /** After a fetch, how long a token with an unknown `kid` does not cause another fetch (default 30 000). */
  cooldown?: number;
  /** How long fetched keys are used before they are fetched again (default 600 000; `Infinity`: never). */
  cacheMaxAge?: number;
  /** How long one fetch may take (default 5 000). */
  timeout?: number;
  /** Headers sent with each fetch. */
  headers?: Record<string, string>;
  /** The fetch implementation (default: the global `fetch`). */
  fetch?: FetchImplementation;
}

/**
 * Options of {@link createJwtVerifier}. Give exactly one key source: `secret`, `publicKey`, `jwks` or
 * `jwksUrl`. Durations are in milliseconds.
 */
export interface JwtVerifierOptions {
  /** A shared HMAC secret (at least 32 bytes; a string is taken as UTF-8). Allows HS256/384/512 as its length permits. */
  secret?: SecretInput;
  /** A public key: `KeyObject`, `CryptoKey`, JWK or PEM (SPKI, PKCS#1 or an X.509 certificate). */
  publicKey?: PublicKeyInput;
  /**
   * A local JSON Web Key Set (`{ keys: [...] }`) of public keys, chosen by the token's `kid`. Every key a
   * signature check could pick is checked at setup: a private key, one that does not import or an RSA key
   * under 2048 bits throws a TypeError naming it. Keys no check picks (`use: "enc"`, other curves) are kept.
   */
  jwks?: JSONWebKeySet;
  /** The URL of a remote JSON Web Key Set, fetched, cached and refetched on key rotation. */
  jwksUrl?: string | URL;
  /** Cache and fetch settings for `jwksUrl`. */
  jwksOptions?: JwksOptions;
  /**
   * The algorithms a token may use. Default: every algorithm the key fits (the HMAC ones the secret is
   * long enough for; RS*\/PS* for an RSA key; the curve's ES* for an EC key; EdDSA for Ed25519; every
   * public-key algorithm for a key set). `none` is never allowed, and an entry that does not fit the
   * key throws at setup, so an HMAC token is refused whenever a public key is configured.
   */
  algorithms?: readonly string[];
  /** The accepted `iss` value(s); the claim is then required. */
  issuer?: string | readonly string[];
  /** The accepted `aud` value(s) (one match is enough); the claim is then required. */
  audience?: string | readonly string[];
  /** The required `sub` value. */
  subject?: string;
  /** The required `typ` header (e.g. `"at+jwt"`, RFC 9068). */
  typ?: string;
  /** Tolerance for `exp`, `nbf` and `iat` between clocks, in ms (default 5 000). */
  clockSkew?: number;
  /** Whether a token without `exp` is refused (default true). */
  requireExp?: boolean;
  /** More claims that must be present. */
  requiredClaims?: readonly string[];
  /** The oldest `iat` accepted, in ms before now; the claim is then required. */
  maxTokenAge?: number;
  /** The longest token accepted, in bytes, checked before anything is parsed (default 8 192). */
  maxTokenSize?: number;
  /** The `realm` of the `WWW-Authenticate` challenges. */
  realm?: string;
  /**
   * The clock, in epoch ms (default `Date.now`); give a fixed one in tests. A clock that throws or returns
   * anything but a finite number fails every verification with INTERNAL (never accepting a cached token).
   */
  clock?: () => number;
  /**
   * The verified-token cache (default on: `{ max: 1000, ttl: 60000 }`; `false` turns it off). A token
   * verified once is not verified again for `ttl` ms: its claims and header are reused, after checking
   * `exp`, `nbf` and `maxTokenAge` again with the current clock. Failures are never cached. With a remote
   * key set a hit counts only while the set it was verified with is still the current, fresh one, so the
   * cache accepts exactly the tokens a verifier without it would. Results are frozen while it is on.
   */
  cache?: boolean | JwtCacheOptions;
}

/**
 * Verifies bearer tokens: signature with an allowed algorithm, then `exp`, `nbf`, `iss`, `aud` and the
 * other configured checks. Make one per key source and share it: a remote key set is fetched and
 * cached per verifier.
 */
export interface JwtVerifier {
  /**
   * Verifies `token` (the compact JWT, without `Bearer `). Resolves to its claims and header; rejects
   * with a ServiceError: UNAUTHENTICATED (with a `www-authenticate` challenge in its metadata) for any
   * token that is not valid. Faults of the server are not blamed on the token and carry no challenge:
   * UNAVAILABLE (`signing keys unavailable`) when a remote key set cannot be fetched or its keys cannot
   * be imported; INTERNAL (`token verification failed`, the original error as `cause`) when a configured
   * key cannot be used, the `clock` fails, or jose fails in a way that is not a verdict on the token.
   * With the cache on (the default) a repeated token resolves to the same deep-frozen result without a
   * signature check.
   */
  verify(token: string): Promise<VerifiedJwt>;
  /** The algorithms tokens may use. */
  readonly algorithms: readonly string[];
  /** The challenge realm, if any. */
  readonly realm: string | undefined;
  /** The longest token accepted, in bytes. */
  readonly maxTokenSize: number;
}

const DEFAULT_MAX_TOKEN_SIZE = 8192;
const DEFAULT_CLOCK_SKEW = 5_000;
/** Three base64url parts; the signature may be empty (`alg: none`, refused later with a clear message). */
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const PRINTABLE_ALG = /^[A-Za-z0-9_+.-]{1,32}$/;
const HMAC_HASH: Readonly<Record<string, string>> = { HS256: "SHA-256", HS384: "SHA-384", HS512: "SHA-512" };

/**
 * Where the keys come from, and which version of them is in use: `epoch()` is -1 while the keys may be
 * changing (a remote set being fetched or past its max age) and otherwise changes whenever they may have.
 * A fixed key never changes.
 */
interface KeySource {
  readonly resolve: JWTVerifyGetKey;
  readonly epoch: () => number;
}

const FIXED_EPOCH = (): number => 0;

/**
 * A remote key set that could not be fetched, or whose keys could not be imported: the server's problem,
 * not the token's.
 */
class KeySetUnavailable extends Error {}

/** A key of the server's that could not be made ready for a token (import failed, refused by jose). */
class KeyUnusable extends Error {}

/**
 * The key a token names is one this package never verifies with (an RSA key under 2048 bits that a
 * remote set serves): the token cannot be accepted, which is a verdict on the token, not a fault.
 */
class KeyNotAcceptable extends Error {}
const NOT_ACCEPTABLE = "the token's signing key is not acceptable (RSA keys need at least 2048 bits)";

/** A key set the server needs is out of reach: UNAVAILABLE, without a challenge. */
function keysUnavailable(cause: unknown): ServiceError {
  return new ServiceError(Code.UNAVAILABLE, "signing keys unavailable", { cause });
}

/**
 * The server failed while verifying a token: INTERNAL, without a challenge (the token may be fine). The
 * message is fixed; the cause, which may describe keys or configuration, is for logs only.
 */
function internalError(cause: unknown): ServiceError {
  return new ServiceError(Code.INTERNAL, "token verification failed", { cause });
}

/**
 * jose's key-set answers that are about the token: no key has its `kid` (and fits its `alg`), or several
 * keys might (a token without `kid`: each is tried).
 */
function isKeyMiss(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ERR_JWKS_NO_MATCHING_KEY" || code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS";
}

/**
 * `resolve` with its failures sorted out: a key-set miss stays the token's, KeySetUnavailable stays as
 * it is, anything else becomes KeyUnusable. jose asks for the key only once the token's header has
 * passed its checks, so what fails here is the server's key; without this, a jose code such as
 * ERR_JOSE_NOT_SUPPORTED from importing a configured key would read as a verdict on the token.
 */
function guardKeys(resolve: JWTVerifyGetKey): JWTVerifyGetKey {
  return async function resolveKey(header, token) {
    try {
      return await resolve(header, token);
    } catch (err) {
      if (err instanceof KeySetUnavailable || err instanceof KeyNotAcceptable || isKeyMiss(err)) throw err;
      throw new KeyUnusable("the configured key could not be used", { cause: err });
    }
  };
}

const brand = Symbol("svckit.auth-jwt.verifier");

/** Whether `value` is a verifier made by {@link createJwtVerifier}. */
export function isJwtVerifier(value: unknown): value is JwtVerifier {
  return typeof value === "object" && value !== null && brand in value;
}

function nonNegative(value: number | undefined, fallback: number, name: string, finite = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value >= 0) || (finite && value === Number.POSITIVE_INFINITY)) {
    throw new TypeError(
      `createJwtVerifier: ${name} must be a ${finite ? "finite " : ""}non-negative number, got ${String(value)}`,
    );
  }
  return value;
}

/** A key resolver for one fixed key: one CryptoKey per algorithm, imported on first use. */
function fixedKeyResolver(
  importFor: (alg: string) => Promise<webcrypto.CryptoKey>,
  allowed: ReadonlySet<string>,
): JWTVerifyGetKey {
  const keys = new Map<string, Promise<webcrypto.CryptoKey>>();
  return function resolveKey(header) {
    const alg = header.alg as string; // jose checked it is an allowed string before asking
    let key = keys.get(alg);
    if (key === undefined) {
      if (!allowed.has(alg)) throw new TypeError(`no key for algorithm ${alg}`);
      key = importFor(alg);
      key.catch(() => keys.delete(alg));
      keys.set(alg, key);
    }
    return key;
  };
}

/**
 * Creates a {@link JwtVerifier}: safe by default (an explicit or derived algorithm allow-list, never
 * `none`, `exp` required, 5 s clock skew, 8 KiB size limit before parsing) and fast on repeated tokens
 * (a bounded cache of verified tokens whose time rules are checked again on every hit; see
 * {@link JwtVerifierOptions.cache}). Throws a TypeError at setup for a key or option that cannot work.
 *
 * @example
 * ```ts
 * const verifier = createJwtVerifier({
 *   jwksUrl: "https://issuer.example/.well-known/jwks.json",
 *   issuer: "https://issuer.example/",
 *   audience: "orders-api",
 * });
 * const { claims } = await verifier.verify(token);
 * ```
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const where = "createJwtVerifier";
  const sources = (["secret", "publicKey", "jwks", "jwksUrl"] as const).filter(
    (k) => options[k] !== undefined,
  );
  if (sources.length !== 1) {
    throw new TypeError(
      `${where}: give exactly one of secret, publicKey, jwks, jwksUrl (got ${sources.length === 0 ? "none" : sources.join(", ")})`,
    );
  }
  const realm = checkRealm(options.realm, where);
  const maxTokenSize = nonNegative(options.maxTokenSize, DEFAULT_MAX_TOKEN_SIZE, "maxTokenSize");
  const clockSkew = nonNegative(options.clockSkew, DEFAULT_CLOCK_SKEW, "clockSkew", true);
  const clock = options.clock;
  const cacheOptions = cacheSettings(options.cache, where);

  let algorithms: string[];
  let resolver: JWTVerifyGetKey;
  let keyEpoch = FIXED_EPOCH;
  let remoteKeys = false;
  if (options.secret !== undefined) {
    const bytes = secretBytes(options.secret, where);
    algorithms = allowList(hmacAlgorithms(bytes), options.algorithms, where, "secret");
    resolver = fixedKeyResolver(
      (alg) =>
        webcrypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: HMAC_HASH[alg] as string }, false, [
          "verify",
        ]),
      new Set(algorithms),
    );
  } else if (options.publicKey !== undefined) {
    const key: KeyObject = toPublicKey(options.publicKey, where);
    let fitting = asymmetricAlgorithms(key, where);
    const jwkAlg = (options.publicKey as { alg?: unknown }).alg;
    if (typeof jwkAlg === "string") {
      fitting = fitting.filter((alg) => alg === jwkAlg);
      if (fitting.length === 0) throw new TypeError(`${where}: the JWK's alg ${jwkAlg} does not fit its key`);
    }
    algorithms = allowList(fitting, options.algorithms, where, `${key.asymmetricKeyType} key`);
    const jwk = key.export({ format: "jwk" });
    resolver = fixedKeyResolver(
      (alg) => importJWK({ ...jwk, alg }, alg) as Promise<webcrypto.CryptoKey>,
      new Set(algorithms),
    );
  } else if (options.jwks !== undefined) {
    algorithms = allowList(ASYMMETRIC_ALGORITHMS, options.algorithms, where, "key set");
    checkKeySet(options.jwks, where);
    resolver = createLocalJWKSet(options.jwks);
  } else {
    algorithms = allowList(ASYMMETRIC_ALGORITHMS, options.algorithms, where, "key set");
    const remote = remoteKeySource(new URL(options.jwksUrl as string | URL), options.jwksOptions ?? {});
    resolver = remote.resolve;
    keyEpoch = remote.epoch;
    remoteKeys = true;
  }
  resolver = guardKeys(resolver);

  const requiredClaims = [...(options.requiredClaims ?? [])];
  if (options.requireExp !== false && !requiredClaims.includes("exp")) requiredClaims.push("exp");
  const base: JWTVerifyOptions = {
    algorithms,
    clockTolerance: clockSkew / 1000,
    requiredClaims,
  };
  if (options.issuer !== undefined) base.issuer = toList(options.issuer);
  if (options.audience !== undefined) base.audience = toList(options.audience);
  if (options.subject !== undefined) base.subject = options.subject;
  if (options.typ !== undefined) base.typ = options.typ;
  const maxTokenAge =
    options.maxTokenAge === undefined
      ? undefined
      : nonNegative(options.maxTokenAge, 0, "maxTokenAge", true) / 1000;
  if (maxTokenAge !== undefined) base.maxTokenAge = maxTokenAge;
  const tolerance = clockSkew / 1000;
  const cache = cacheOptions === undefined ? undefined : new TokenCache(cacheOptions.max, cacheOptions.ttl);

  const fail = (message: string, cause?: unknown): ServiceError =>
    unauthenticated(message, realm, "invalid_token", cause);

  /** The clock's reading, in epoch ms; one that throws or is not a finite number is the server's fault. */
  function readClock(read: () => number): number {
    let ms: unknown;
    try {
      ms = read();
    } catch (err) {
      throw internalError(err);
    }
    if (typeof ms !== "number" || !Number.isFinite(ms)) {
      throw internalError(
        new TypeError(`createJwtVerifier: clock returned ${String(ms)}, not a finite number`),
      );
    }
    return ms;
  }

  /**
   * Whether the time rules still hold for claims jose accepted earlier, judged as jose does (whole
   * seconds, the same tolerance): `exp`, `nbf`, and `iat` against `maxTokenAge`. jose checked that these
   * claims are numbers when present.
   */
  function timeRulesHold(claims: JwtClaims, nowMs: number): boolean {
    const now = Math.floor(nowMs / 1000);
    const { exp, nbf, iat } = claims;
    if (exp !== undefined && exp <= now - tolerance) return false;
    if (nbf !== undefined && nbf > now + tolerance) return false;
    if (maxTokenAge !== undefined) {
      const age = now - (iat as number);
      if (age - tolerance > maxTokenAge || age < -tolerance) return false;
    }
    return true;
  }

  async function verify(token: string): Promise<VerifiedJwt> {
    if (typeof token !== "string") throw fail("malformed token: not a string");
    // Before the cache: a token over the limit is never hashed nor stored.
    if (token.length > maxTokenSize) throw fail(`token too large: more than ${maxTokenSize} bytes`);
    if (cache !== undefined) {
      // Checked before the cache: a clock reading NaN would make every time rule of a hit hold.
      const now = clock === undefined ? Date.now() : readClock(clock);
      const hit = cache.get(token, now, keyEpoch());
      if (hit !== undefined) {
        if (timeRulesHold(hit.claims, now)) return hit;
        // Verified again below, so the refusal is jose's own, the same as without the cache.
        cache.delete(token);
      }
      return verifyAndStore(token, now);
    }
    return verifyUncached(
      token,
      clock === undefined ? base : { ...base, currentDate: new Date(readClock(clock)) },
    );
  }

  /** A full verification; the result is kept only if the keys did not change while it ran. */
  async function verifyAndStore(token: string, now: number): Promise<VerifiedJwt> {
    const epoch = keyEpoch();
    const result = deepFreeze(
      await verifyUncached(token, clock === undefined ? base : { ...base, currentDate: new Date(now) }),
    );
    if (epoch >= 0 && epoch === keyEpoch()) (cache as TokenCache).set(token, result, now, epoch);
    return result;
  }

  async function verifyUncached(token: string, opts: JWTVerifyOptions): Promise<VerifiedJwt> {
    if (!COMPACT_JWT.test(token)) throw fail("malformed token: not a compact JWS (three base64url parts)");
    try {
      const { payload, protectedHeader } = await jwtVerify(token, resolver, opts);
      return { claims: payload, header: protectedHeader };
    } catch (err) {
      if (hasCandidates(err)) return verifyWithCandidates(token, err, opts);
      throw toServiceError(err, token);
    }
  }

  /**
   * A key set with several keys that fit a token without `kid`: try each (bounded by the set's size).
   * jose skips the keys it cannot import; when it can import none, that is the key set's fault.
   */
  async function verifyWithCandidates(
    token: string,
    candidates: AsyncIterable<webcrypto.CryptoKey>,
    opts: JWTVerifyOptions,
  ): Promise<VerifiedJwt> {
    let imported = 0;
    let judged = false;
    let refused = false;
    let unusable: ServiceError | undefined;
    for await (const key of candidates) {
      imported++;
      if (isWeakRsaKey(key)) {
        refused = true;
        continue;
      }
      try {
        const { payload, protectedHeader } = await jwtVerify(token, key, opts);
        return { claims: payload, header: protectedHeader };
      } catch (err) {
        if ((err as { code?: unknown }).code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") {
          judged = true;
          continue;
        }
        const error = toServiceError(err, token);
        // A verdict on the token (expired, a claim, malformed) ends the search; a key this server cannot
        // use (an RSA key under 2048 bits in a remote set) must not keep the other keys from trying.
        if (error.code === Code.UNAUTHENTICATED) throw error;
        unusable ??= error;
      }
    }
    // A key that could judge the signature refused it: the token's fault, whatever the others were.
    if (judged) throw fail("invalid signature");
    if (unusable !== undefined) throw unusable;
    if (refused) throw fail(NOT_ACCEPTABLE);
    if (imported === 0) {
      const cause = new Error("none of the keys that fit the token could be imported", { cause: candidates });
      throw remoteKeys ? keysUnavailable(cause) : internalError(cause);
    }
    throw fail("invalid signature");
  }

  /**
   * jose's verdicts on the token become UNAUTHENTICATED with an `invalid_token` challenge; everything
   * else is the server's: UNAVAILABLE for a remote key set it cannot use, INTERNAL otherwise (a key that
   * cannot be used, an option jose refuses, an error that is not one of jose's token codes).
   */
  function toServiceError(err: unknown, token: string): ServiceError {
    if (err instanceof ServiceError) return err;
    if (err instanceof KeySetUnavailable) return keysUnavailable(err.cause);
    if (err instanceof KeyUnusable) return internalError(err.cause);
    if (err instanceof KeyNotAcceptable) return fail(NOT_ACCEPTABLE, err);
    const { code, claim, reason } = err as { code?: unknown; claim?: unknown; reason?: unknown };
    switch (code) {
      case "ERR_JWT_EXPIRED":
        return fail(claim === "iat" ? "token too old" : "token expired", err);
      case "ERR_JWT_CLAIM_VALIDATION_FAILED":
        return fail(claimMessage(String(claim), String(reason)), err);
      case "ERR_JOSE_ALG_NOT_ALLOWED":
        return fail(algorithmMessage(token), err);
      case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
        return fail("invalid signature", err);
      case "ERR_JWKS_NO_MATCHING_KEY":
        return fail("no key matches the token (unknown kid)", err);
      case "ERR_JWS_INVALID":
      case "ERR_JWT_INVALID":
        return fail("malformed token", err);
      case "ERR_JOSE_NOT_SUPPORTED":
        // From the token's header (an unknown `crit` extension): key preparation is guarded (guardKeys).
        return fail("unsupported token", err);
      default:
        // Not a verdict on the token: ERR_JWKS_INVALID (a private key in `jwks`), a TypeError (an RSA key
        // under 2048 bits, an option jose refuses), a DOMException from Web Crypto, ERR_JWE_*, ...
        return internalError(err);
    }
  }

  return {
    [brand]: true,
    verify,
    algorithms: Object.freeze(algorithms),
    realm,
    maxTokenSize,
  } as JwtVerifier;
}

function toList(value: string | readonly string[]): string[] {
  return typeof value === "string" ? [value] : [...value];
}

function hasCandidates(err: unknown): err is Error & AsyncIterable<webcrypto.CryptoKey> {
  return (
    (err as { code?: unknown } | null)?.code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS" &&
    typeof (err as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === "function"
  );
}

function claimMessage(claim: string, reason: string): string {
  if (reason === "missing") return `missing claim: ${claim}`;
  if (reason === "invalid") return `invalid claim: ${claim}`;
  switch (claim) {
    case "nbf":
      return "token not yet valid";
    case "iss":
      return "wrong issuer";
    case "aud":
      return "wrong audience";
    case "sub":
      return "wrong subject";
    case "typ":
      return "wrong token type";
    case "iat":
      return "token issued in the future";
    default:
      return `claim check failed: ${claim}`;
  }
}

/** Names the refused algorithm when it is a short printable name (it comes from the token). */
function algorithmMessage(token: string): string {
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    alg = undefined;
  }
  return typeof alg === "string" && PRINTABLE_ALG.test(alg)
    ? `algorithm ${alg} is not allowed`
    : "algorithm is not allowed";
}

/**
 * jose's remote key set, its failures (fetch, parse, key import: KeySetUnavailable) told apart from
 * tokens it has no key for. Its epoch counts the fetches it starts (every fetch may bring other keys)
 * and is -1 while one is in flight or the set is past `cacheMaxAge` (the next verification fetches it
 * again).
 */
function remoteKeySource(url: URL, options: JwksOptions): KeySource {
  const fetchKeys = options.fetch;
  let fetches = 0;
  const countingFetch: FetchImplementation = (input, init) => {
    fetches++;
    return fetchKeys === undefined ? fetch(input, init) : fetchKeys(input, init);
  };
  const remote = createRemoteJWKSet(url, {
    cooldownDuration: nonNegative(options.cooldown, 30_000, "jwksOptions.cooldown"),
    cacheMaxAge: nonNegative(options.cacheMaxAge, 600_000, "jwksOptions.cacheMaxAge"),
    timeoutDuration: Math.ceil(nonNegative(options.timeout, 5_000, "jwksOptions.timeout", true)),
    ...(options.headers === undefined ? {} : { headers: options.headers }),
    [customFetch]: countingFetch,
  });
  const epoch = (): number => (remote.reloading || !remote.fresh ? -1 : fetches);
  const resolve: JWTVerifyGetKey = async function resolveRemoteKey(header, token) {
    let key: Awaited<ReturnType<typeof remote>>;
    try {
      key = await remote(header, token);
    } catch (err) {
      if (isKeyMiss(err)) throw err;
      throw new KeySetUnavailable("signing keys unavailable", { cause: err });
    }
    // A local set refuses such a key at setup; a remote one is checked when a token names it.
    if (isWeakRsaKey(key)) throw new KeyNotAcceptable(NOT_ACCEPTABLE);
    return key;
  };
  return { resolve, epoch };
}
