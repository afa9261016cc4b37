// Key material in, Node KeyObjects and algorithm lists out. Everything here runs once, at setup: a key
// or an algorithm list that cannot work throws a TypeError before the first request.
import {
  createPrivateKey,
  createPublicKey,
  KeyObject,
  type JsonWebKey as NodeJsonWebKey,
  type webcrypto,
  X509Certificate,
} from "node:crypto";
import type { JWK } from "jose";

/**
 * A public key for verifying: a Node `KeyObject`, a Web Crypto `CryptoKey`, a JWK, or a PEM string
 * (`PUBLIC KEY`, `RSA PUBLIC KEY` or an X.509 `CERTIFICATE`).
 */
export type PublicKeyInput = KeyObject | webcrypto.CryptoKey | JWK | string;

/** A private key for signing: a Node `KeyObject`, a Web Crypto `CryptoKey`, a private JWK, or a PKCS#8/PKCS#1/SEC1 PEM string. */
export type PrivateKeyInput = KeyObject | webcrypto.CryptoKey | JWK | string;

/** A shared secret: its bytes, or a string taken as UTF-8. At least 32 bytes. */
export type SecretInput = string | Uint8Array;

/** The least secret length per HMAC algorithm: the hash size (RFC 7518 §3.2). */
const HMAC_MIN_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 };

const RSA_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] as const;
const EDDSA_ALGORITHMS = ["EdDSA", "Ed25519"] as const;
const EC_ALGORITHM_BY_CURVE: Readonly<Record<string, string>> = {
  prime256v1: "ES256",
  secp384r1: "ES384",
  secp521r1: "ES512",
};

/** Every public-key signature algorithm a key set may use (key sets never hold HMAC secrets). */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = [
  ...RSA_ALGORITHMS,
  "ES256",
  "ES384",
  "ES512",
  ...EDDSA_ALGORITHMS,
];

const MIN_RSA_BITS = 2048;

function isCryptoKey(value: unknown): value is webcrypto.CryptoKey {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === "CryptoKey"
  );
}

function isJwk(value: unknown): value is JWK {
  return typeof value === "object" && value !== null && typeof (value as { kty?: unknown }).kty === "string";
}

/**
 * The bytes of a secret, refused when shorter than the weakest HMAC allows. A `Uint8Array` is copied:
 * keys are imported lazily (per algorithm, on first use), so a caller that wipes or reuses its buffer
 * after setup (`secret.fill(0)`) must not change the key the verifier or signer uses.
 */
export function secretBytes(secret: SecretInput, where: string): Uint8Array {
  if (typeof secret !== "string" && !(secret instanceof Uint8Array))
    throw new TypeError(`${where}: secret must be a string or a Uint8Array`);
  const bytes = typeof secret === "string" ? new TextEncoder().encode(secret) : new Uint8Array(secret);
  if (bytes.byteLength < 32) {
    throw new TypeError(
      `${where}: secret must be at least 32 bytes (256 bits) for HS256, got ${bytes.byteLength}`,
    );
  }
  return bytes;
}

/** The HMAC algorithms a secret of this length may use. */
export function hmacAlgorithms(secret: Uint8Array): string[] {
  return Object.keys(HMAC_MIN_BYTES).filter((alg) => secret.byteLength >= (HMAC_MIN_BYTES[alg] as number));
}

/** A public key as a KeyObject; a private key given here has its public half taken. */
export function toPublicKey(input: PublicKeyInput, where: string): KeyObject {
  let key: KeyObject;
  if (input instanceof KeyObject) key = input;
  else if (isCryptoKey(input)) key = KeyObject.from(input);
  else if (typeof input === "string") {
    if (!input.includes("-----BEGIN ")) throw new TypeError(`${where}: a publicKey string must be PEM`);
    key = input.includes("-----BEGIN CERTIFICATE-----")
      ? new X509Certificate(input).publicKey
      : createPublicKey(input);
  } else if (isJwk(input)) {
    if (input.kty === "oct") throw new TypeError(`${where}: an "oct" JWK is a shared secret; use \`secret\``);
    key = createPublicKey({ key: input as NodeJsonWebKey, format: "jwk" });
  } else {
    throw new TypeError(`${where}: publicKey must be a KeyObject, CryptoKey, JWK or PEM string`);
  }
  if (key.type === "secret") throw new TypeError(`${where}: publicKey is a secret key; use \`secret\``);
  return key.type === "private" ? createPublicKey(key) : key;
}

/**
 * Whether `key` (a CryptoKey jose imported, e.g. from a remote key set) is an RSA key under 2048 bits,
 * which this package never verifies with: such a key cannot vouch for a token.
 */
export function isWeakRsaKey(key: unknown): boolean {
  const algorithm = (key as { algorithm?: { name?: unknown; modulusLength?: unknown } } | null)?.algorithm;
  return (
    typeof algorithm?.name === "string" &&
    algorithm.name.startsWith("RSA") &&
    typeof algorithm.modulusLength === "number" &&
    algorithm.modulusLength < MIN_RSA_BITS
  );
}

/** The curves of the EC and OKP keys a verification with the allowed algorithms can pick. */
const VERIFYING_CURVES: ReadonlySet<unknown> = new Set(["P-256", "P-384", "P-521", "Ed25519"]);

/**
 * Checks, at setup, every key of a local JSON Web Key Set that a signature check could pick (RSA, and
 * EC / OKP keys on a curve of the allowed algorithms, not marked for another `use` or without `verify`
 * in `key_ops`): it must be public, import, and be usable (RSA: at least 2048 bits). jose imports a local
 * set's keys only when a token names one, so a broken key would otherwise fail those tokens with a
 * server fault, each time. Keys no verification picks (encryption keys, other curves) are left alone.
 */
export function checkKeySet(jwks: unknown, where: string): void {
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return; // jose's createLocalJWKSet refuses a set that is not one
  keys.forEach((entry: unknown, index) => {
    if (!isJwk(entry)) return;
    const jwk = entry as JWK & { use?: unknown; key_ops?: unknown };
    if (jwk.use !== undefined && jwk.use !== "sig") return;
    if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes("verify")) return;
    if (jwk.kty !== "RSA" && !((jwk.kty === "EC" || jwk.kty === "OKP") && VERIFYING_CURVES.has(jwk.crv)))
      return;
    const at = `${where}: jwks.keys[${index}]${typeof jwk.kid === "string" ? ` (kid ${JSON.stringify(jwk.kid)})` : ""}`;
    if (jwk.d !== undefined)
      throw new TypeError(`${at} is a private key; a key set to verify with holds public keys`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk as NodeJsonWebKey, format: "jwk" });
    } catch (error) {
      throw new TypeError(`${at} cannot be imported: ${(error as Error).message}`, { cause: error });
    }
    asymmetricAlgorithms(key, at);
  });
}

/** A private key as a KeyObject. */
export function toPrivateKey(input: PrivateKeyInput, where: string): KeyObject {
  let key: KeyObject;
  if (input instanceof KeyObject) key = input;
  else if (isCryptoKey(input)) key = KeyObject.from(input);
  else if (typeof input === "string") {
    if (!input.includes("-----BEGIN ")) throw new TypeError(`${where}: a privateKey string must be PEM`);
    key = createPrivateKey(input);
  } else if (isJwk(input)) {
    if (input.kty === "oct") throw new TypeError(`${where}: an "oct" JWK is a shared secret; use \`secret\``);
    key = createPrivateKey({ key: input as NodeJsonWebKey, format: "jwk" });
  } else {
    throw new TypeError(`${where}: privateKey must be a KeyObject, CryptoKey, JWK or PEM string`);
  }
  if (key.type !== "private")
    throw new TypeError(`${where}: privateKey must be a private key, got ${key.type}`);
  return key;
}

/** The signature algorithms an asymmetric key can verify or make, strongest-compatible first. */
export function asymmetricAlgorithms(key: KeyObject, where: string): string[] {
  switch (key.asymmetricKeyType) {
    case "rsa": {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) {
        throw new TypeError(`${where}: RSA keys must have at least ${MIN_RSA_BITS} bits, got ${bits}`);
      }
      return [...RSA_ALGORITHMS];
    }
    case "rsa-pss":
      // Node cannot export an RSASSA-PSS key as a JWK, which jose needs; a plain RSA key signs PS* too.
      throw new TypeError(
        `${where}: RSASSA-PSS key objects are not supported; use an "rsa" key (it does PS256 too)`,
      );
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? "";
      const alg = EC_ALGORITHM_BY_CURVE[curve];
      if (alg === undefined) throw new TypeError(`${where}: unsupported EC curve ${curve}`);
      return [alg];
    }
    case "ed25519":
      return [...EDDSA_ALGORITHMS];
    default:
      throw new TypeError(`${where}: unsupported key type ${String(key.asymmetricKeyType)}`);
  }
}

/**
 * The allow-list: `requested` when given (every entry must fit the key: never `none`, never an HMAC
 * algorithm for a public key or a public-key algorithm for a secret), else every algorithm the key fits.
 */
export function allowList(
  fitting: readonly string[],
  requested: readonly string[] | undefined,
  where: string,
  keyKind: string,
): string[] {
  if (requested === undefined) return [...fitting];
  if (!Array.isArray(requested) || requested.length === 0) {
    throw new TypeError(`${where}: algorithms must be a non-empty array`);
  }
  for (const alg of requested) {
    if (typeof alg !== "string" || alg.toLowerCase() === "none") {
      throw new TypeError(`${where}: algorithm ${String(alg)} is never allowed`);
    }
    if (!fitting.includes(alg)) {
      const hint =
        HMAC_MIN_BYTES[alg] === undefined ? "" : ` (it needs a secret of ${HMAC_MIN_BYTES[alg]} bytes)`;
      throw new TypeError(`${where}: algorithm ${alg} does not fit the ${keyKind}${hint}`);
    }
  }
  return [...new Set(requested)];
}
