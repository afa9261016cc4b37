#!/usr/bin/env node
// apigateway-token: prints a bearer token the gateway accepts when it runs with --jwt-secret, for
// trying it out with curl. A real deployment gets its tokens from an identity provider instead
// (and runs the gateway with --jwt-jwks-url, --jwt-issuer and --jwt-audience).
import { parseArgs } from "node:util";
import { createJwtSigner } from "@svckit/auth-jwt";
import { JWT_SECRET_ENV, parseDurationFlag } from "./flags.js";

const usage = `usage: apigateway-token [--jwt-secret s] [--sub subject] [--ttl d] [--claims json]
  --jwt-secret s  the gateway's --jwt-secret, >= 32 bytes (or $${JWT_SECRET_ENV})
  --sub subject   the token's sub (default alice)
  --ttl d         how long it is valid: 30s, 15m, ... (default 15m)
  --iss, --aud    the token's iss and aud, for a gateway run with --jwt-issuer / --jwt-audience
  --claims json   more claims, a JSON object, e.g. '{"scope":"add"}'
Prints the token on stdout.`;

function fail(message: string): never {
  console.error(`apigateway-token: ${message}\n${usage}`);
  process.exit(2);
}

try {
  const { values, positionals } = parseArgs({
    strict: true,
    allowPositionals: true,
    options: {
      "jwt-secret": { type: "string" },
      sub: { type: "string" },
      ttl: { type: "string" },
      iss: { type: "string" },
      aud: { type: "string" },
      claims: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) {
    console.log(usage);
    process.exit(0);
  }
  if (positionals.length > 0) fail(`unexpected argument "${positionals[0]}"`);
  const secret = values["jwt-secret"] ?? process.env[JWT_SECRET_ENV];
  if (secret === undefined || Buffer.byteLength(secret) < 32) {
    fail(`give --jwt-secret (or $${JWT_SECRET_ENV}) of at least 32 bytes`);
  }
  const expiresIn = parseDurationFlag("ttl", values.ttl ?? "15m");
  if (expiresIn === 0) fail("--ttl must be more than 0");
  let claims: Record<string, unknown> = {};
  if (values.claims !== undefined) {
    const parsed: unknown = JSON.parse(values.claims);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      fail("--claims must be a JSON object");
    }
    claims = parsed as Record<string, unknown>;
  }
  const signer = createJwtSigner({
    secret,
    expiresIn,
    subject: values.sub ?? "alice",
    ...(values.iss === undefined ? {} : { issuer: values.iss }),
    ...(values.aud === undefined ? {} : { audience: values.aud }),
  });
  console.log(await signer.sign(claims));
} catch (err) {
  fail((err as Error).message);
}
