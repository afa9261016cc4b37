// Passing a verified identity from a gateway to the services behind it.
import { Code, type Context, type Endpoint, type GenericMiddleware, ServiceError } from "@svckit/endpoint";
import { claimsKey } from "./authenticate.js";
import { createJwtSigner, isJwtSigner, type JwtSigner, type JwtSignerOptions } from "./signer.js";
import type { JwtClaims } from "./verifier.js";

/** The default metadata key of {@link forwardIdentity} and {@link trustedIdentity}. */
export const IDENTITY_HEADER = "x-svckit-identity";

const REGISTERED_TIME_CLAIMS = new Set(["iss", "aud", "exp", "nbf", "iat", "jti"]);

/** The verified claims minus the ones that belong to the original token (`iss`, `aud`, `exp`, `nbf`, `iat`, `jti`). */
function identityClaims(claims: JwtClaims): JwtClaims {
  const out: JwtClaims = {};
  for (const key of Object.keys(claims)) {
    if (REGISTERED_TIME_CLAIMS.has(key)) continue;
    // `out.__proto__ = x` would set the prototype instead of copying the claim.
    Object.defineProperty(out, key, {
      value: claims[key],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function metadataKey(header: string | undefined, fallback: string, where: string): string {
  const key = (header ?? fallback).toLowerCase();
  if (!/^[0-9a-z_.-]+$/.test(key))
    throw new TypeError(`${where}: header ${JSON.stringify(header)} is not valid`);
  return key;
}

/** Options of {@link reissueIdentity}. */
export interface ReissueIdentityOptions {
  /**
   * The claims of the internal token, from the caller's verified claims. Default: all of them except
   * `iss`, `aud`, `exp`, `nbf`, `iat` and `jti`, which the signer sets anew.
   */
  claims?: (claims: JwtClaims, ctx: Context) => JwtClaims;
  /** The outgoing metadata key (default `"authorization"`); the value is `Bearer <token>`. */
  header?: string;
}

/**
 * Gateway client middleware (the recommended way to pass identity on): signs a short-lived internal
 * token with the gateway's own key, carrying the caller's verified claims, and sends it as
 * `authorization: Bearer <token>`. Services verify it with an ordinary {@link authenticate} that
 * trusts only the gateway's key (and `issuer`/`audience`), so a forged or replayed header is refused
 * wherever it comes from. A call without verified claims is sent unchanged.
 *
 * @example
 * ```ts
 * const internal = createJwtSigner({ privateKey: gatewayKey, kid: "gw-1", issuer: "gateway", audience: "internal" });
 * const orders = reissueIdentity(internal)(createHttpClient(ordersUrl, "POST", encode, decode));
 * ```
 */
export function reissueIdentity(
  signer: JwtSigner | JwtSignerOptions,
  options: ReissueIdentityOptions = {},
): GenericMiddleware {
  const s = isJwtSigner(signer) ? signer : createJwtSigner(signer);
  const header = metadataKey(options.header, "authorization", "reissueIdentity");
  const pick = options.claims;
  return function reissueIdentityMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return async function reissuedCall(ctx: Context, request: Req): Promise<Res> {
      const claims = ctx.value(claimsKey);
      if (claims === undefined) return next(ctx, request);
      const token = await s.sign(pick === undefined ? identityClaims(claims) : pick(claims, ctx));
      return next(ctx.withOutgoingMetadata({ [header]: `Bearer ${token}` }), request);
    };
  };
}

/** Options of {@link forwardIdentity}. */
export interface ForwardIdentityOptions {
  /** The outgoing metadata key (default `"x-svckit-identity"`). */
  header?: string;
  /** The claims to send (default: all verified claims except `iss`, `aud`, `exp`, `nbf`, `iat`, `jti`). */
  claims?: (claims: JwtClaims, ctx: Context) => JwtClaims;
}

/**
 * Gateway client middleware: sends the caller's verified claims as unsigned base64url JSON in
 * `x-svckit-identity`. Anyone who can reach a service can send that header too, so use it only where
 * services are reachable from the gateway alone (network policy, mTLS); prefer {@link reissueIdentity}.
 * A call without verified claims is sent unchanged.
 *
 * @example
 * ```ts
 * const orders = forwardIdentity()(createHttpClient(ordersUrl, "POST", encode, decode));
 * ```
 */
export function forwardIdentity(options: ForwardIdentityOptions = {}): GenericMiddleware {
  const header = metadataKey(options.header, IDENTITY_HEADER, "forwardIdentity");
  const pick = options.claims;
  return function forwardIdentityMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return function identifiedCall(ctx: Context, request: Req): Promise<Res> {
      const claims = ctx.value(claimsKey);
      if (claims === undefined) return next(ctx, request);
      const json = JSON.stringify(pick === undefined ? identityClaims(claims) : pick(claims, ctx));
      return next(ctx.withOutgoingMetadata({ [header]: Buffer.from(json).toString("base64url") }), request);
    };
  };
}

/** Options of {@link trustedIdentity}. */
export interface TrustedIdentityOptions {
  /** The incoming metadata key (default `"x-svckit-identity"`). */
  header?: string;
  /** The longest header value accepted, in bytes (default 8 192). */
  maxSize?: number;
  /** Let calls without the header through, without claims (default false). */
  optional?: boolean;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function identityError(message: string): ServiceError {
  return new ServiceError(Code.UNAUTHENTICATED, message);
}

/**
 * Server middleware for services behind a gateway that uses {@link forwardIdentity}: reads the
 * claims from `x-svckit-identity` and puts them in the context ({@link claimsFrom}), so
 * {@link authorize} works as after {@link authenticate}. Nothing is verified: **trust it only from
 * the gateway** (services unreachable except through it, or mTLS); otherwise any client can claim
 * to be anyone. Prefer {@link reissueIdentity} at the gateway and {@link authenticate} here.
 * A missing or malformed header fails with UNAUTHENTICATED.
 *
 * @example
 * ```ts
 * const handler = createHttpHandler(trustedIdentity()(orders), decode, encode);
 * ```
 */
export function trustedIdentity(options: TrustedIdentityOptions = {}): GenericMiddleware {
  const header = metadataKey(options.header, IDENTITY_HEADER, "trustedIdentity");
  const maxSize = options.maxSize ?? 8192;
  if (typeof maxSize !== "number" || !(maxSize >= 0)) {
    throw new TypeError(`trustedIdentity: maxSize must be a non-negative number, got ${String(maxSize)}`);
  }
  const optional = options.optional === true;

  function readIdentity(ctx: Context): JwtClaims | undefined {
    const values = ctx.metadata.getAll(header);
    if (values.length === 0) return undefined;
    if (values.length > 1) throw identityError(`more than one ${header} value`);
    const value = values[0] as string;
    if (value.length > maxSize) throw identityError(`${header} too large: more than ${maxSize} bytes`);
    if (!BASE64URL.test(value)) throw identityError(`malformed ${header}: not base64url`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
    } catch {
      throw identityError(`malformed ${header}: not JSON`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw identityError(`malformed ${header}: not a JSON object`);
    }
    return parsed as JwtClaims;
  }

  return function trustedIdentityMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return async function identified(ctx: Context, request: Req): Promise<Res> {
      const claims = readIdentity(ctx);
      if (claims === undefined) {
        if (optional) return next(ctx, request);
        throw identityError(`missing ${header}`);
      }
      return next(ctx.with(claimsKey, claims), request);
    };
  };
}
