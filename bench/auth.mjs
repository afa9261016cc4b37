#!/usr/bin/env node
// Microbenchmark of bearer-token verification with @svckit/auth-jwt: what one `verifier.verify(token)`
// costs for HS256, ES256 and RS256 with the verified-token cache off (every call checks the signature
// through jose and Web Crypto), on a cache hit (the same token again), and on a cache miss (a new token
// every call, so the cost of storing is paid too); then `authenticate` in front of a no-op endpoint.
// Each case is an awaited loop; cases are interleaved round by round after a warm-up and the median
// round counts. Prints µs per call.
//
//   node bench/auth.mjs [--calls 4000] [--rounds 5] [--json out.json]
//
// Also the key material and tokens of the HTTP bench's auth variants (bench/http.mjs,
// servers/svckit-http-jwt.mjs): a fixed secret and EC key, and tokens signed with node:crypto at
// import time, so the harness and the server agree without talking. Benchmark-only keys: never reuse.
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { machineInfo, markdownTable, median, microBenchCli, microBenchOptions } from "./lib.mjs";

/** The HS256 secret of the auth benches (32 bytes). */
export const BENCH_SECRET = "svckit-bench-secret-0123456789ab";

/** The P-256 private key the ES256 bench tokens are signed with (made for the benchmark, public). */
export const BENCH_EC_PRIVATE_KEY = createPrivateKey(`-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwmON5+vLQ0vsexHP
BwYEGMWdh4EzxB5hG2nDmdwS5FuhRANCAATzwVv28jBFMBLKWbIdi11YaOiL6Ul0
t3s3gfMMLmQ8EDpJgAoxw8m5qaaLDVFhZbOxhjoSDWdXTZ5/RK5qBjHk
-----END PRIVATE KEY-----
`);
/** Its public half, what the ES256 servers verify with. */
export const BENCH_EC_PUBLIC_KEY = createPublicKey(BENCH_EC_PRIVATE_KEY);

export const BENCH_ISSUER = "https://issuer.bench.svckit/";
export const BENCH_AUDIENCE = "sum";
/** Claims of the bench tokens: a typical access token, valid until 2100. */
export const BENCH_CLAIMS = {
  iss: BENCH_ISSUER,
  aud: BENCH_AUDIENCE,
  sub: "bench-user",
  scope: "sum:read sum:write",
  iat: 1_767_225_600,
  exp: 4_102_444_800,
};

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");

/**
 * A compact JWS signed with node:crypto (synchronously): HS256 with {@link BENCH_SECRET}, ES256 with
 * `key` (default {@link BENCH_EC_PRIVATE_KEY}), RS256 with `key`.
 */
export function benchToken(alg, claims = BENCH_CLAIMS, key = BENCH_EC_PRIVATE_KEY) {
  const input = `${b64({ alg, typ: "JWT" })}.${b64(claims)}`;
  let signature;
  if (alg === "HS256") signature = createHmac("sha256", BENCH_SECRET).update(input).digest();
  else if (alg === "ES256")
    signature = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  else if (alg === "RS256") signature = sign("sha256", Buffer.from(input), key);
  else throw new Error(`benchToken: unknown algorithm ${alg}`);
  return `${input}.${signature.toString("base64url")}`;
}

/** The `authorization` header value the HTTP bench sends to a server verifying `alg` tokens. */
export function benchAuthorization(alg) {
  return `Bearer ${benchToken(alg)}`;
}

export const AUTH_OPTIONS = microBenchOptions(4_000);

/** Calls of a fast case (cache hit, bare endpoint) per call of a slow one. */
const FAST = 50;
let sink = 0;

/** Builds the cases (the packages are imported here, so http.mjs can import the key material alone). */
async function buildCases() {
  const { authenticate, createJwtVerifier } = await import("@svckit/auth-jwt");
  const { createContext } = await import("@svckit/endpoint");
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keys = {
    HS256: { secret: BENCH_SECRET },
    ES256: { publicKey: BENCH_EC_PUBLIC_KEY },
    RS256: { publicKey: rsa.publicKey },
  };
  const tokens = {
    HS256: benchToken("HS256"),
    ES256: benchToken("ES256"),
    RS256: benchToken("RS256", BENCH_CLAIMS, rsa.privateKey),
  };
  const verifier = (alg, cache) =>
    createJwtVerifier({ ...keys[alg], issuer: BENCH_ISSUER, audience: BENCH_AUDIENCE, cache });

  // A new token every call (distinct `jti`), signed before the timing starts; the cache (max 1000) is full
  // and drops its least recently used entry on every store.
  const fresh = [];
  const freshToken = (i) => fresh[i % fresh.length];

  const cases = [];
  for (const alg of ["HS256", "ES256", "RS256"]) {
    const v = verifier(alg, false);
    cases.push({ name: `verify ${alg}, cache off`, fast: false, call: () => v.verify(tokens[alg]) });
  }
  for (const alg of ["HS256", "ES256", "RS256"]) {
    const v = verifier(alg, true);
    cases.push({ name: `verify ${alg}, cache hit`, fast: true, call: () => v.verify(tokens[alg]) });
  }
  for (const cache of [false, true]) {
    const v = verifier("HS256", cache);
    cases.push({
      name: `verify HS256, new token each call, cache ${cache ? "miss" : "off"}`,
      fast: false,
      call: (i) => v.verify(freshToken(i)),
    });
  }

  const noop = async () => 1;
  const withToken = (alg) => createContext({ metadata: { authorization: `Bearer ${tokens[alg]}` } });
  const ctxs = { HS256: withToken("HS256"), ES256: withToken("ES256") };
  const bare = createContext();
  cases.push({ name: "no-op endpoint (bare)", fast: true, call: () => noop(bare) });
  for (const [alg, cache] of [
    ["HS256", false],
    ["ES256", false],
    ["HS256", true],
    ["ES256", true],
  ]) {
    const e = authenticate(verifier(alg, cache))(noop);
    cases.push({
      name: `authenticate ${alg} + no-op, cache ${cache ? "hit" : "off"}`,
      fast: cache,
      call: () => e(ctxs[alg], undefined),
    });
  }
  return { cases, fresh };
}

async function time(c, n, offset) {
  const t0 = process.hrtime.bigint();
  let s = 0;
  for (let i = 0; i < n; i++) {
    const r = await c.call(offset + i);
    s += r === undefined ? 0 : 1;
  }
  sink += s;
  return Number(process.hrtime.bigint() - t0) / n;
}

/** Runs every case and returns ns per call (median of rounds). */
export async function runAuth({ calls, rounds }, log = console.log) {
  const { cases, fresh } = await buildCases();
  // Enough distinct tokens that no round sees one again: warm-up + rounds × calls.
  const needed = calls * (rounds + 1) + 1;
  for (let i = 0; i < needed; i++) fresh.push(benchToken("HS256", { ...BENCH_CLAIMS, jti: `t${i}` }));
  for (const c of cases) await c.call(0); // every case must succeed before it is timed
  log(
    `auth bench: node ${process.version}, ${calls.toLocaleString("en-US")} awaited calls (× ${FAST} for cache hits and the bare endpoint) × ${rounds} rounds per case`,
  );
  let offset = 1;
  const n = (c, count) => (c.fast ? count * FAST : count);
  for (const c of cases) await time(c, n(c, Math.min(calls, 1_000)), offset);
  offset += Math.min(calls, 1_000);
  const samples = cases.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < cases.length; i++) samples[i].push(await time(cases[i], n(cases[i], calls), offset));
    offset += calls;
  }
  return {
    bench: "auth",
    node: process.version,
    machine: machineInfo(),
    calls,
    rounds,
    cases: cases.map((c, i) => ({
      name: c.name,
      calls: n(c, calls),
      nsPerCall: median(samples[i]),
      samples: samples[i],
    })),
    sink,
  };
}

const fmt = (ns) =>
  ns >= 10_000
    ? `${(ns / 1000).toFixed(0)} µs`
    : ns >= 1_000
      ? `${(ns / 1000).toFixed(1)} µs`
      : `${ns.toFixed(0)} ns`;

export function formatAuth(result) {
  const uncached = Object.fromEntries(
    result.cases
      .filter((c) => c.name.endsWith("cache off"))
      .map((c) => [c.name.replace(", cache off", ""), c.nsPerCall]),
  );
  const rows = result.cases.map((c) => {
    const off = uncached[c.name.replace(/, cache (hit|off)$/, "")];
    const vs =
      c.name.endsWith("cache hit") && off !== undefined
        ? `${(off / c.nsPerCall).toFixed(0)}× faster than cache off`
        : "";
    return [c.name, fmt(c.nsPerCall), vs];
  });
  return markdownTable(["case", "per call", ""], rows, ["left", "right", "left"]);
}

microBenchCli(import.meta.url, { file: "auth.mjs", options: AUTH_OPTIONS, run: runAuth, format: formatAuth });
