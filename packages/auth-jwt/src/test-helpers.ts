// Shared by the tests of this package (and test/auth-jwt-*.test.ts): excluded from the build (see
// tsconfig.json), never exported. Tokens are crafted by hand with node:crypto where the package's own
// signer would refuse to make them (alg none, HMAC with a public key, broken parts).
import { createHmac, generateKeyPairSync, type KeyObject } from "node:crypto";
import { ServiceError } from "@svckit/endpoint";

/** The fixed "now" of the tests' clocks, in epoch ms. */
export const NOW = Date.UTC(2030, 0, 1);
/** {@link NOW} in JWT seconds. */
export const NOW_S = NOW / 1000;
/** A clock stuck at {@link NOW}. */
export const fixedClock = (): number => NOW;

/** A 32-byte HS256 secret. */
export const SECRET = "0123456789abcdef0123456789abcdef";
/** Another one, for wrong signatures. */
export const OTHER_SECRET = "fedcba9876543210fedcba9876543210";

/** A key pair of one type. */
export interface KeyPair {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

let ec: KeyPair | undefined;
let rsa: KeyPair | undefined;

/** An EC P-256 key pair (made once per test file). */
export function ecKeys(): KeyPair {
  ec ??= generateKeyPairSync("ec", { namedCurve: "P-256" });
  return ec;
}

/** A fresh EC P-256 key pair. */
export function newEcKeys(): KeyPair {
  return generateKeyPairSync("ec", { namedCurve: "P-256" });
}

/** The body of a JWKS endpoint serving `keys` (`[kid, public key]`) as ES256 signing keys. */
export function es256KeySet(keys: readonly (readonly [string, KeyObject])[]): string {
  return JSON.stringify({
    keys: keys.map(([kid, key]) => ({ ...key.export({ format: "jwk" }), kid, use: "sig", alg: "ES256" })),
  });
}

/** An RSA-2048 key pair (made once per test file). */
export function rsaKeys(): KeyPair {
  rsa ??= generateKeyPairSync("rsa", { modulusLength: 2048 });
  return rsa;
}

/** base64url of a JSON value or of raw text. */
export function b64(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/**
 * A compact JWS with the given header and payload (JSON values, or raw text for broken parts), HMAC-
 * signed with `hmacKey` (any bytes: also a PEM public key, for the algorithm-confusion attack), or with
 * an empty signature.
 */
export function craft(header: unknown, payload: unknown, hmacKey?: string | Uint8Array): string {
  const input = `${b64(header)}.${b64(payload)}`;
  if (hmacKey === undefined) return `${input}.`;
  return `${input}.${createHmac("sha256", hmacKey).update(input).digest("base64url")}`;
}

/** Claims valid at {@link NOW} for 5 minutes. */
export function validClaims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: "ada", iat: NOW_S, exp: NOW_S + 300, ...extra };
}

/** The rejection of `promise` as a ServiceError; fails the test otherwise. */
export async function serviceRejection(promise: Promise<unknown>): Promise<ServiceError> {
  let err: unknown;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  if (err === undefined) throw new Error("expected a rejection");
  if (!(err instanceof ServiceError)) throw new Error(`expected a ServiceError, got ${String(err)}`);
  return err;
}

/** A self-signed X.509 certificate (EC P-256, CN=svckit-test) and its private key. */
export const CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIBgTCCASegAwIBAgIUMVmxaMtTMAp9SFYMDjqfD1LgMHowCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLc3Zja2l0LXRlc3QwHhcNMjYxMjAxMjIxNzQwWhcNMzYxMTI4
MjIxNzQwWjAWMRQwEgYDVQQDDAtzdmNraXQtdGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABDnHRsTnMgYhCP7e0Edd9h1zSNu/u/mK8BwTvfuy2gZcyd+Ztc8j
QEW6r1fwSBOIguXK9x0oPhMARpW1+0PV7XujUzBRMB0GA1UdDgQWBBTqeevihYaW
1o6rULOjgjnYuo3r1zAfBgNVHSMEGDAWgBTqeevihYaW1o6rULOjgjnYuo3r1zAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIEP/uyXBbNPJnccwqczh
Duqqg8Y0xacMCIjcF3Ed0aaEAiEAvgV9XihBdfKsQP5hAscnP+aweiJf7a8n09aj
velw0nE=
-----END CERTIFICATE-----
`;
export const CERT_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkrXl3dzuHIoVCoIt
5bJdeNpcvvk1Us9cVQ6h7NenQouhRANCAAQ5x0bE5zIGIQj+3tBHXfYdc0jbv7v5
ivAcE737stoGXMnfmbXPI0BFuq9X8EgTiILlyvcdKD4TAEaVtftD1e17
-----END PRIVATE KEY-----
`;
