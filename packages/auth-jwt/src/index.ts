/**
 * JWT authentication and authorization for svckit endpoints, on jose — go-kit's `auth/jwt`, safe by
 * default. On servers, {@link authenticate} reads `Bearer <token>` from the call's metadata (HTTP
 * `Authorization` header or gRPC `authorization` metadata), verifies it with a {@link JwtVerifier}
 * (shared secret, public key, local or remote JWKS with caching and rotation; verified tokens are
 * cached, so a repeated token costs a map lookup instead of a signature check) and puts the claims in
 * the context ({@link claimsFrom}); {@link authorize} then runs a policy such as
 * {@link requireScopes} or {@link requireRoles}. On clients, {@link signToken} signs and
 * {@link forwardToken} passes the caller's token on. Gateways pass identity on with
 * {@link reissueIdentity} (a short-lived token signed by the gateway, recommended) or
 * {@link forwardIdentity} / {@link trustedIdentity} (an unsigned header, trusted network only).
 * Failures are ServiceErrors: UNAUTHENTICATED (401) and PERMISSION_DENIED (403) with RFC 6750
 * `www-authenticate` challenges in their metadata. Faults of the server are never reported as the
 * token's: a remote key set that cannot be fetched is UNAVAILABLE (503), a configured key or clock that
 * cannot be used is INTERNAL (500), both without a challenge.
 *
 * @packageDocumentation
 */

export type { AuthenticateOptions } from "./authenticate.js";
export { authenticate, claimsFrom, claimsKey, tokenFrom } from "./authenticate.js";
export type {
  AuthorizeOptions,
  Policy,
  RequestMiddleware,
  RequireOptions,
  RequireRolesOptions,
} from "./authorize.js";
export { authorize, requireRoles, requireScopes } from "./authorize.js";
export type { ForwardTokenOptions, SignTokenOptions } from "./client.js";
export { forwardToken, signToken } from "./client.js";
export type { BearerErrorCode } from "./errors.js";
export { bearerChallenge } from "./errors.js";
export type { ForwardIdentityOptions, ReissueIdentityOptions, TrustedIdentityOptions } from "./identity.js";
export { forwardIdentity, IDENTITY_HEADER, reissueIdentity, trustedIdentity } from "./identity.js";
export type { PrivateKeyInput, PublicKeyInput, SecretInput } from "./keys.js";
export type { JwtSigner, JwtSignerOptions } from "./signer.js";
export { createJwtSigner } from "./signer.js";
export type { JwtCacheOptions } from "./token-cache.js";
export type { JwksOptions, JwtClaims, JwtVerifier, JwtVerifierOptions, VerifiedJwt } from "./verifier.js";
export { createJwtVerifier } from "./verifier.js";
