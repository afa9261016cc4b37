import { type Context, callInfoKey } from "@svckit/endpoint";

/**
 * A key function that counts calls per value of one metadata entry (an HTTP header or gRPC metadata
 * key), e.g. per API key or per client id. Calls without it share the `fallback` key.
 *
 * @param name - the metadata key (any case).
 * @param fallback - the key of calls that lack it; default `""`.
 *
 * @example
 * ```ts
 * const perClient = createRateLimiter({ limit: 100, interval: 60_000, key: metadataKey("x-client-id") });
 * ```
 */
export function metadataKey(name: string, fallback = ""): (ctx: Context) => string {
  if (typeof name !== "string" || name.length === 0) {
    throw new TypeError("metadataKey: name must be a non-empty string");
  }
  const lower = name.toLowerCase();
  return function keyFromMetadata(ctx: Context): string {
    return ctx.metadata.get(lower) ?? fallback;
  };
}

/**
 * A key function that counts calls per route: the transport's method and route template as the server
 * transports put them in the context (`"POST /users/:id"`, or the gRPC method `"/pkg.Svc/Method"`).
 * Calls without that information share the key `""`.
 *
 * @example
 * ```ts
 * const perRoute = createRateLimiter({ limit: 1_000, interval: 1_000, key: routeKey });
 * ```
 */
export function routeKey(ctx: Context): string {
  const info = ctx.value(callInfoKey);
  if (info === undefined) return "";
  return info.route === undefined ? info.method : `${info.method} ${info.route}`;
}
