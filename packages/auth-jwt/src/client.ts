import type { Context, Endpoint, GenericMiddleware } from "@svckit/endpoint";
import { tokenKey } from "./authenticate.js";
import { createJwtSigner, isJwtSigner, type JwtSigner, type JwtSignerOptions } from "./signer.js";
import type { JwtClaims } from "./verifier.js";

/** Options of {@link signToken}. */
export interface SignTokenOptions {
  /**
   * Claims per call, e.g. from the context. Without it every call sends the same token, re-signed once
   * half its lifetime has passed.
   */
  claims?: (ctx: Context) => JwtClaims | Promise<JwtClaims>;
  /** The outgoing metadata key (default `"authorization"`); the value is `Bearer <token>`. */
  header?: string;
}

function outgoingKey(header: string | undefined, where: string): string {
  const key = (header ?? "authorization").toLowerCase();
  if (!/^[0-9a-z_.-]+$/.test(key))
    throw new TypeError(`${where}: header ${JSON.stringify(header)} is not valid`);
  return key;
}

/**
 * Client middleware: signs a token and sends it as `authorization: Bearer <token>` in the outgoing
 * metadata, which svckit's HTTP and gRPC clients send as a header / gRPC metadata.
 *
 * @example
 * ```ts
 * const signer = createJwtSigner({ secret: process.env.JWT_SECRET ?? "", issuer: "billing", audience: "orders" });
 * const getOrder = signToken(signer)(createHttpClient(url, "GET", encode, decode));
 * ```
 */
export function signToken(
  signer: JwtSigner | JwtSignerOptions,
  options: SignTokenOptions = {},
): GenericMiddleware {
  const s = isJwtSigner(signer) ? signer : createJwtSigner(signer);
  const header = outgoingKey(options.header, "signToken");
  const claimsFor = options.claims;
  return function signTokenMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return async function signedCall(ctx: Context, request: Req): Promise<Res> {
      const token = await s.sign(claimsFor === undefined ? undefined : await claimsFor(ctx));
      return next(ctx.withOutgoingMetadata({ [header]: `Bearer ${token}` }), request);
    };
  };
}

/** Options of {@link forwardToken}. */
export interface ForwardTokenOptions {
  /** The outgoing metadata key (default `"authorization"`); the value is `Bearer <token>`. */
  header?: string;
}

/**
 * Client middleware: passes the caller's token on to the called service, as `authorization: Bearer
 * <token>`. Only a token that {@link authenticate} verified for this call is forwarded, never raw
 * incoming metadata; a call without one is sent unchanged.
 *
 * @example
 * ```ts
 * const inventory = forwardToken()(createGrpcClient(conn, service, "Reserve", encode, decode));
 * ```
 */
export function forwardToken(options: ForwardTokenOptions = {}): GenericMiddleware {
  const header = outgoingKey(options.header, "forwardToken");
  return function forwardTokenMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return function forwardedCall(ctx: Context, request: Req): Promise<Res> {
      const token = ctx.value(tokenKey);
      return next(
        token === undefined ? ctx : ctx.withOutgoingMetadata({ [header]: `Bearer ${token}` }),
        request,
      );
    };
  };
}
