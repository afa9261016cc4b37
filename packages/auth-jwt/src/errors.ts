// The errors this package raises and the RFC 6750 `WWW-Authenticate` challenges they carry.
import { Code, ServiceError } from "@svckit/endpoint";

/** The metadata key (HTTP header) of the challenge. */
export const WWW_AUTHENTICATE = "www-authenticate";

/** RFC 6750 §3.1 error codes. */
export type BearerErrorCode = "invalid_request" | "invalid_token" | "insufficient_scope";

/** RFC 6750 quoted-string values may not hold `"`, `\` or control characters; anything else is dropped. */
function quotable(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return value.replace(/["\\\u0000-\u001f\u007f-\uffff]/g, "");
}

/** Checks a realm at setup: it is sent verbatim in a quoted string. */
export function checkRealm(realm: string | undefined, where: string): string | undefined {
  if (realm === undefined) return undefined;
  if (typeof realm !== "string" || realm.length === 0 || quotable(realm) !== realm) {
    throw new TypeError(`${where}: realm must be a non-empty printable ASCII string without " or \\`);
  }
  return realm;
}

/**
 * Builds a `WWW-Authenticate` Bearer challenge (RFC 6750 §3): `Bearer` alone, or with `realm`,
 * `error`, `error_description` and `scope` attributes.
 *
 * @example
 * ```ts
 * bearerChallenge({ realm: "api", error: "invalid_token", description: "token expired" });
 * // 'Bearer realm="api", error="invalid_token", error_description="token expired"'
 * ```
 */
export function bearerChallenge(params: {
  realm?: string | undefined;
  error?: BearerErrorCode | undefined;
  description?: string | undefined;
  scope?: string | undefined;
}): string {
  const parts: string[] = [];
  if (params.realm !== undefined) parts.push(`realm="${quotable(params.realm)}"`);
  if (params.error !== undefined) {
    parts.push(`error="${params.error}"`);
    if (params.description !== undefined) parts.push(`error_description="${quotable(params.description)}"`);
  }
  if (params.scope !== undefined) parts.push(`scope="${quotable(params.scope)}"`);
  return parts.length === 0 ? "Bearer" : `Bearer ${parts.join(", ")}`;
}

/**
 * UNAUTHENTICATED with its challenge in the metadata. `error` is left out when the request carried no
 * token at all (RFC 6750 §3.1: no error code for a request without authentication information).
 */
export function unauthenticated(
  message: string,
  realm: string | undefined,
  error: BearerErrorCode | undefined,
  cause?: unknown,
): ServiceError {
  return new ServiceError(Code.UNAUTHENTICATED, message, {
    cause,
    metadata: { [WWW_AUTHENTICATE]: bearerChallenge({ realm, error, description: message }) },
  });
}

/** PERMISSION_DENIED with an `insufficient_scope` challenge in the metadata. */
export function permissionDenied(
  message: string,
  realm: string | undefined,
  scope: string | undefined,
): ServiceError {
  return new ServiceError(Code.PERMISSION_DENIED, message, {
    metadata: {
      [WWW_AUTHENTICATE]: bearerChallenge({
        realm,
        error: "insufficient_scope",
        description: message,
        scope,
      }),
    },
  });
}
