import {
  type Context,
  type ContextKey,
  createContextKey,
  type Endpoint,
  type GenericMiddleware,
} from "@svckit/endpoint";
import { unauthenticated } from "./errors.js";
import {
  createJwtVerifier,
  isJwtVerifier,
  type JwtClaims,
  type JwtVerifier,
  type JwtVerifierOptions,
} from "./verifier.js";

/**
 * The context key under which {@link authenticate} (and {@link trustedIdentity}) put the verified
 * claims. Shared across copies of this package (`Symbol.for("svckit:auth-jwt:claims")`).
 *
 * @example
 * ```ts
 * const claims = ctx.value(claimsKey); // JwtClaims | undefined
 * ```
 */
export const claimsKey: ContextKey<JwtClaims | undefined> = createContextKey<JwtClaims | undefined>(
  undefined,
  {
    description: "auth-jwt:claims",
    shared: true,
  },
);

/** The verified bearer token, for {@link forwardToken}. */
export const tokenKey: ContextKey<string | undefined> = createContextKey<string | undefined>(undefined, {
  description: "auth-jwt:token",
  shared: true,
});

/**
 * The verified claims of the call, or `undefined` when none were verified.
 *
 * @example
 * ```ts
 * const endpoint: Endpoint<void, string> = async (ctx) => `hello ${claimsFrom(ctx)?.sub}`;
 * ```
 */
export function claimsFrom(ctx: Context): JwtClaims | undefined {
  return ctx.value(claimsKey);
}

/**
 * The bearer token {@link authenticate} verified for this call, or `undefined`.
 *
 * @example
 * ```ts
 * const token = tokenFrom(ctx); // to pass on by hand; forwardToken() does it for client endpoints
 * ```
 */
export function tokenFrom(ctx: Context): string | undefined {
  return ctx.value(tokenKey);
}

/** Options of {@link authenticate}. */
export interface AuthenticateOptions {
  /** The metadata key (HTTP header / gRPC metadata) holding `Bearer <token>` (default `"authorization"`). */
  header?: string;
  /**
   * Let calls without any token through, without claims (default false): for endpoints that serve
   * anonymous callers too. A token that is present must still be valid (and a fault of the server
   * while verifying it still fails the call).
   */
  optional?: boolean;
}

const SCHEME = "bearer";
/**
 * The most spaces between `Bearer` and the token that a value of the largest accepted token may have:
 * a value longer than `Bearer` + this + `maxTokenSize` is refused as too large without being scanned.
 */
const MAX_SPACES = 64;

/**
 * Server middleware: reads `Bearer <token>` from the call's metadata (`authorization`: the HTTP header
 * or the gRPC metadata), verifies it and runs the endpoint with the claims in the context
 * ({@link claimsFrom}). A missing or invalid token fails with UNAUTHENTICATED (HTTP 401) and a
 * `www-authenticate` challenge in the error's metadata, which svckit's HTTP server sends as a header.
 * A fault of the server while verifying is not blamed on the token: UNAVAILABLE when a remote key set
 * cannot be fetched, INTERNAL when a configured key or the verifier's clock cannot be used (see
 * {@link JwtVerifier.verify}); neither carries a challenge, and neither lets the call through, even
 * with `optional`.
 * Any number of spaces may follow `Bearer`; only the token counts toward the verifier's `maxTokenSize`
 * (a value longer than `Bearer` + 64 spaces + `maxTokenSize` is refused as too large unscanned). More
 * than one value is refused (UNAUTHENTICATED, `invalid_request`) where the transport passes them all on
 * (HTTP/1, `@svckit/grpc-h2`); over a grpc-js server Node's HTTP/2 keeps only the first `authorization`
 * field, so only that one is seen.
 * Pass a shared {@link JwtVerifier} to reuse one key set across endpoints.
 *
 * @example
 * ```ts
 * const verifier = createJwtVerifier({ publicKey: pem, issuer: "https://issuer.example/", audience: "orders" });
 * const handler = createHttpHandler(authenticate(verifier)(orders), decode, encode);
 * ```
 */
export function authenticate(
  verifier: JwtVerifier | JwtVerifierOptions,
  options: AuthenticateOptions = {},
): GenericMiddleware {
  const v = isJwtVerifier(verifier) ? verifier : createJwtVerifier(verifier);
  const header = (options.header ?? "authorization").toLowerCase();
  const optional = options.optional === true;
  const realm = v.realm;
  const maxTokenSize = v.maxTokenSize;
  const maxHeaderLength = SCHEME.length + MAX_SPACES + maxTokenSize;
  const tooLarge = () =>
    unauthenticated(`token too large: more than ${maxTokenSize} bytes`, realm, "invalid_token");

  /** The token, `undefined` when there is none; throws for one that cannot be a bearer token. */
  function bearerToken(ctx: Context): string | undefined {
    const values = ctx.metadata.getAll(header);
    if (values.length === 0) return undefined;
    if (values.length > 1) {
      throw unauthenticated(`more than one ${header} value`, realm, "invalid_request");
    }
    const value = values[0] as string;
    if (value.length < SCHEME.length || value.slice(0, SCHEME.length).toLowerCase() !== SCHEME) {
      // RFC 6750 §3.1: another authentication scheme gets a challenge without an error code.
      throw unauthenticated(`${header} is not a bearer token`, realm, undefined);
    }
    // Bounds the scan below: a value this long holds a token over the limit or a run of spaces no
    // client sends; either way it is refused before it is scanned.
    if (value.length > maxHeaderLength) {
      // Over the limit or over MAX_SPACES: which one, tell from at most MAX_SPACES + 1 characters.
      const most = SCHEME.length + MAX_SPACES;
      let at = SCHEME.length;
      while (at <= most && value.charCodeAt(at) === 32) at++;
      if (at > most) {
        throw unauthenticated(`more than ${MAX_SPACES} spaces after Bearer`, realm, "invalid_request");
      }
      throw tooLarge();
    }
    let start = SCHEME.length;
    if (value.charCodeAt(start) !== 32) {
      if (start === value.length) return "";
      throw unauthenticated(`${header} is not a bearer token`, realm, undefined);
    }
    while (value.charCodeAt(start) === 32) start++;
    // The token alone counts toward the limit, not the spaces before it (RFC 6750: `Bearer 1*SP token`).
    if (value.length - start > maxTokenSize) throw tooLarge();
    return value.slice(start);
  }

  return function authenticateMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return async function authenticated(ctx: Context, request: Req): Promise<Res> {
      const token = bearerToken(ctx);
      if (token === undefined) {
        if (optional) return next(ctx, request);
        throw unauthenticated("missing bearer token", realm, undefined);
      }
      if (token.length === 0) throw unauthenticated("malformed token: empty", realm, "invalid_token");
      const { claims } = await v.verify(token);
      return next(ctx.with(claimsKey, claims).with(tokenKey, token), request);
    };
  };
}
