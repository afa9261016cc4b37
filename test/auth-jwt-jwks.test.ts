// @svckit/auth-jwt with a remote JWKS: a key set server on 127.0.0.1 whose keys the test rotates, and a
// verifier that fetches it. A token with an unknown kid makes the verifier fetch again, but at most once
// per cooldown; keys expire from the cache after cacheMaxAge; concurrent misses share one fetch; a key
// set that cannot be fetched is UNAVAILABLE, not a client error. Only `Date` is faked (jose's cache
// clock); sockets and the verifier's own exp clock are real / fixed.
import type { KeyObject } from "node:crypto";
import { authenticate, claimsFrom, createJwtSigner, createJwtVerifier } from "@svckit/auth-jwt";
import { Code, createContext } from "@svckit/endpoint";
import {
  createHttpClient,
  createHttpHandler,
  encodeJsonRequest,
  encodeJsonResponse,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  es256KeySet,
  fixedClock,
  newEcKeys,
  serviceRejection,
} from "../packages/auth-jwt/src/test-helpers.js";
import { closeServers, listen } from "./support.js";

const T0 = Date.UTC(2031, 5, 1);

interface KeySetServer {
  url: string;
  /** The keys served now, as [kid, public key]. */
  keys: [string, KeyObject][];
  /** Requests served. */
  fetches: number;
  /** Answer 503 instead of the keys. */
  down: boolean;
}

async function keySetServer(): Promise<KeySetServer> {
  const state: KeySetServer = { url: "", keys: [], fetches: 0, down: false };
  const { origin } = await listen((req, res) => {
    state.fetches++;
    if (state.down || req.url !== "/.well-known/jwks.json") {
      res.writeHead(state.down ? 503 : 404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/jwk-set+json" }).end(es256KeySet(state.keys));
  });
  state.url = `${origin}/.well-known/jwks.json`;
  return state;
}

const signerFor = (kid: string, privateKey: KeyObject) =>
  createJwtSigner({ privateKey, kid, issuer: "https://idp.test/", clock: fixedClock });

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(T0);
});

afterEach(async () => {
  vi.useRealTimers();
  await closeServers();
});

const at = (ms: number) => vi.setSystemTime(T0 + ms);

describe("remote JWKS rotation", () => {
  it("picks up a new key after the cooldown, drops a retired one after cacheMaxAge", async () => {
    const server = await keySetServer();
    const a = newEcKeys();
    const b = newEcKeys();
    server.keys = [["a", a.publicKey]];
    const verifier = createJwtVerifier({
      jwksUrl: server.url,
      jwksOptions: { cooldown: 30_000, cacheMaxAge: 60_000 },
      issuer: "https://idp.test/",
      clock: fixedClock,
    });
    const tokenA = await signerFor("a", a.privateKey).sign({ sub: "with-a" });
    const tokenB = await signerFor("b", b.privateKey).sign({ sub: "with-b" });

    expect((await verifier.verify(tokenA)).claims.sub).toBe("with-a");
    expect(server.fetches).toBe(1);

    // The issuer publishes b and starts signing with it; within the cooldown the verifier does not refetch.
    server.keys = [
      ["a", a.publicKey],
      ["b", b.publicKey],
    ];
    at(10_000);
    const early = await serviceRejection(verifier.verify(tokenB));
    expect([early.code, early.message]).toEqual([
      Code.UNAUTHENTICATED,
      "no key matches the token (unknown kid)",
    ]);
    expect(server.fetches).toBe(1);

    // After the cooldown the unknown kid triggers one fetch, and b is known from then on.
    at(31_000);
    expect((await verifier.verify(tokenB)).claims.sub).toBe("with-b");
    expect((await verifier.verify(tokenA)).claims.sub).toBe("with-a");
    expect(server.fetches).toBe(2);

    // a is retired; once the cache is older than cacheMaxAge the set is fetched again and a is gone.
    server.keys = [["b", b.publicKey]];
    at(50_000);
    expect((await verifier.verify(tokenA)).claims.sub).toBe("with-a"); // still cached
    at(92_000);
    const retired = await serviceRejection(verifier.verify(tokenA));
    expect(retired.message).toBe("no key matches the token (unknown kid)");
    expect(server.fetches).toBe(3);
    expect((await verifier.verify(tokenB)).claims.sub).toBe("with-b");
    expect(server.fetches).toBe(3);
  });

  it("lets concurrent tokens with unknown kids cause one fetch, and none again within the cooldown", async () => {
    const server = await keySetServer();
    const a = newEcKeys();
    server.keys = [["a", a.publicKey]];
    const verifier = createJwtVerifier({
      jwksUrl: server.url,
      jwksOptions: { cooldown: 30_000 },
      clock: fixedClock,
    });
    await verifier.verify(await signerFor("a", a.privateKey).sign());
    expect(server.fetches).toBe(1);

    at(40_000);
    const forged = await Promise.all(
      Array.from({ length: 20 }, (_, i) => signerFor(`random-${i}`, newEcKeys().privateKey).sign()),
    );
    const results = await Promise.allSettled(forged.map((t) => verifier.verify(t)));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(server.fetches).toBe(2);
    at(50_000);
    await Promise.allSettled(forged.map((t) => verifier.verify(t)));
    expect(server.fetches).toBe(2);
  });

  it("answers UNAVAILABLE (HTTP 503) while the key set cannot be fetched, and recovers", async () => {
    const server = await keySetServer();
    const a = newEcKeys();
    server.keys = [["a", a.publicKey]];
    server.down = true;
    const verifier = createJwtVerifier({
      jwksUrl: server.url,
      jwksOptions: { cooldown: 0, cacheMaxAge: 60_000, timeout: 2_000 },
      clock: fixedClock,
    });
    const endpoint = authenticate(verifier)(async (ctx) => ({ sub: claimsFrom(ctx)?.sub }));
    const { origin } = await listen(createHttpHandler(endpoint, jsonRequestDecoder(), encodeJsonResponse));
    const client = createHttpClient(origin, "POST", encodeJsonRequest, jsonResponseDecoder());
    const token = await signerFor("a", a.privateKey).sign({ sub: "ada" });
    const ctx = createContext({ timeout: 5_000, outgoingMetadata: { authorization: `Bearer ${token}` } });

    const err = await serviceRejection(client(ctx, {}));
    expect([err.code, err.message]).toEqual([Code.UNAVAILABLE, "signing keys unavailable"]);

    server.down = false;
    expect(await client(ctx, {})).toEqual({ sub: "ada" });
  });
});
