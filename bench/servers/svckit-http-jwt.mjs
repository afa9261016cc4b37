// svckit on node:http (as servers/svckit-http.mjs) with @svckit/auth-jwt's `authenticate` in front of
// the endpoint: every request must carry `authorization: Bearer <token>`, verified with issuer and
// audience checks. The first argument picks the algorithm and the verified-token cache:
//   hs256, es256                  the verifier's default cache (on): every request after the first is a hit
//   hs256-nocache, es256-nocache  cache: false: every request checks the signature through jose
// The keys and the token the harness sends come from ../auth.mjs (benchAuthorization), so both agree.
import http from "node:http";
import { authenticate, createJwtVerifier } from "@svckit/auth-jwt";
import {
  createHttpHandler,
  createRouter,
  encodeJsonResponse,
  jsonRequestDecoder,
} from "@svckit/transport-http";
import { BENCH_AUDIENCE, BENCH_EC_PUBLIC_KEY, BENCH_ISSUER, BENCH_SECRET } from "../auth.mjs";
import { serve } from "./common.mjs";

const mode = process.argv[2] ?? "";
const m = /^(hs256|es256)(-nocache)?$/.exec(mode);
if (m === null) throw new Error(`unknown mode "${mode}" (hs256, es256, hs256-nocache, es256-nocache)`);
const key = m[1] === "hs256" ? { secret: BENCH_SECRET } : { publicKey: BENCH_EC_PUBLIC_KEY };
const verifier = createJwtVerifier({
  ...key,
  issuer: BENCH_ISSUER,
  audience: BENCH_AUDIENCE,
  ...(m[2] === undefined ? {} : { cache: false }),
});

const sum = async (_ctx, req) => ({ v: req.a + req.b });
const handler = createHttpHandler(authenticate(verifier)(sum), jsonRequestDecoder(), encodeJsonResponse);
const router = createRouter();
router.post("/sum", handler);

serve(http.createServer(router.handle));
