// The verified-token cache of createJwtVerifier. jose's jwtVerify is wrapped in a counter, so a test can
// tell a hit (no jose call) from a verification; every clock is a variable the test moves.
import { generateKeyPairSync } from "node:crypto";
import {
  authenticate,
  claimsFrom,
  createJwtSigner,
  createJwtVerifier,
  type JwtVerifierOptions,
} from "@svckit/auth-jwt";
import { Code, createContext, type Endpoint } from "@svckit/endpoint";
import fc from "fast-check";
import * as jose from "jose";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { craft, NOW, NOW_S, OTHER_SECRET, SECRET, serviceRejection, validClaims } from "./test-helpers.js";
import { TokenCache } from "./token-cache.js";

vi.mock("jose", async (importOriginal) => {
  const actual = await importOriginal<typeof import("jose")>();
  return { ...actual, jwtVerify: vi.fn(actual.jwtVerify) };
});

const joseCalls = (): number => vi.mocked(jose.jwtVerify).mock.calls.length;

let now = NOW;
const clock = (): number => now;

beforeEach(() => {
  now = NOW;
  vi.mocked(jose.jwtVerify).mockClear();
});

const hs = (extra: Record<string, unknown> = {}, secret = SECRET): string =>
  craft({ alg: "HS256", typ: "JWT" }, validClaims(extra), secret);

function verifier(options: Partial<JwtVerifierOptions> = {}) {
  return createJwtVerifier({ secret: SECRET, clock, ...options } as JwtVerifierOptions);
}

/** The message of a refusal, checking it is UNAUTHENTICATED. */
async function refusal(promise: Promise<unknown>): Promise<string> {
  const err = await serviceRejection(promise);
  expect(err.code).toBe(Code.UNAUTHENTICATED);
  return err.message;
}

describe("verified-token cache: hits", () => {
  it("is on by default: a repeated token returns the same result without calling jose", async () => {
    const v = verifier();
    const token = hs({ scope: "a b" });
    const first = await v.verify(token);
    expect(joseCalls()).toBe(1);
    const second = await v.verify(token);
    expect(joseCalls()).toBe(1);
    expect(second).toBe(first);
    expect(second.claims).toEqual(validClaims({ scope: "a b" }));
    expect(second.header).toEqual({ alg: "HS256", typ: "JWT" });
  });

  it("freezes the shared result, deeply, so one caller cannot change what the next one sees", async () => {
    const v = verifier();
    const token = hs({ roles: ["admin"], org: { id: 7 } });
    const { claims, header } = await v.verify(token);
    expect(Object.isFrozen(claims)).toBe(true);
    expect(Object.isFrozen(claims.roles)).toBe(true);
    expect(Object.isFrozen(claims.org)).toBe(true);
    expect(Object.isFrozen(header)).toBe(true);
    expect(() => {
      (claims as Record<string, unknown>).sub = "mallory";
    }).toThrow(TypeError);
    expect(() => (claims.roles as string[]).push("root")).toThrow(TypeError);
    expect((await v.verify(token)).claims).toEqual(validClaims({ roles: ["admin"], org: { id: 7 } }));
  });

  it("serves authenticate from the cache", async () => {
    const v = verifier();
    const token = hs();
    const whoami: Endpoint<void, unknown> = async (ctx) => claimsFrom(ctx)?.sub;
    const e = authenticate(v)(whoami);
    const ctx = () => createContext({ metadata: { authorization: `Bearer ${token}` } });
    expect(await e(ctx())).toBe("ada");
    expect(await e(ctx())).toBe("ada");
    expect(joseCalls()).toBe(1);
  });

  it("caches public-key tokens too", async () => {
    const keys = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const token = await createJwtSigner({ privateKey: keys.privateKey, clock }).sign({ sub: "ada" });
    const v = verifier({ secret: undefined, publicKey: keys.publicKey });
    expect((await v.verify(token)).claims.sub).toBe("ada");
    expect((await v.verify(token)).claims.sub).toBe("ada");
    expect(joseCalls()).toBe(1);
  });
});

describe("verified-token cache: time rules on a hit", () => {
  it("refuses an expired token on a hit with the clock of the call, as jose would", async () => {
    const v = verifier(); // clock skew 5 s
    const token = hs({ exp: NOW_S + 10 });
    await v.verify(token);
    now = NOW + 14_999; // exp + skew not yet reached
    await expect(v.verify(token)).resolves.toBeDefined();
    expect(joseCalls()).toBe(1);
    now = NOW + 15_000;
    expect(await refusal(v.verify(token))).toBe("token expired");
    expect(joseCalls()).toBe(2); // the refusal is jose's own
    expect(await refusal(v.verify(token))).toBe("token expired");
    expect(joseCalls()).toBe(3); // and is not cached
  });

  it("honours exp with a zero clock skew", async () => {
    const v = verifier({ clockSkew: 0 });
    const token = hs({ exp: NOW_S + 2 });
    await v.verify(token);
    now = NOW + 1_999;
    await expect(v.verify(token)).resolves.toBeDefined();
    now = NOW + 2_000;
    expect(await refusal(v.verify(token))).toBe("token expired");
  });

  it("checks maxTokenAge again on a hit", async () => {
    const v = verifier({ maxTokenAge: 60_000, cache: { ttl: 3_600_000 } });
    const token = hs({ iat: NOW_S, exp: NOW_S + 3_600 });
    await v.verify(token);
    now = NOW + 65_999; // age 65 s - 5 s skew <= 60 s
    await expect(v.verify(token)).resolves.toBeDefined();
    expect(joseCalls()).toBe(1);
    now = NOW + 66_000;
    expect(await refusal(v.verify(token))).toBe("token too old");
  });

  it("checks nbf again when the clock goes back", async () => {
    const v = verifier();
    const token = hs({ nbf: NOW_S });
    await v.verify(token);
    now = NOW - 6_000;
    expect(await refusal(v.verify(token))).toBe("token not yet valid");
    expect(joseCalls()).toBe(2);
  });

  it("verifies again when the clock goes back past the verification, even if the token still holds", async () => {
    const v = verifier();
    const token = hs();
    await v.verify(token);
    now = NOW - 1_000;
    await expect(v.verify(token)).resolves.toBeDefined();
    expect(joseCalls()).toBe(2);
  });
});

describe("verified-token cache: bounds", () => {
  it("reuses a verification for ttl ms from when it was made", async () => {
    const v = verifier({ cache: { ttl: 1_000 } });
    const token = hs();
    await v.verify(token);
    now = NOW + 999;
    await v.verify(token);
    expect(joseCalls()).toBe(1);
    now = NOW + 1_000;
    await v.verify(token);
    expect(joseCalls()).toBe(2);
    now = NOW + 1_999; // the new verification counts from NOW + 1000
    await v.verify(token);
    expect(joseCalls()).toBe(2);
  });

  it("keeps at most max tokens, dropping the least recently used", async () => {
    const v = verifier({ cache: { max: 2 } });
    const [t1, t2, t3] = ["one", "two", "three"].map((sub) => hs({ sub }));
    const verify = async (token: string) => (await v.verify(token as string)).claims.sub;
    expect([await verify(t1 as string), await verify(t2 as string)]).toEqual(["one", "two"]);
    expect(joseCalls()).toBe(2);
    expect(await verify(t1 as string)).toBe("one"); // hit: t1 is now the most recent
    expect(joseCalls()).toBe(2);
    expect(await verify(t3 as string)).toBe("three"); // evicts t2
    expect(joseCalls()).toBe(3);
    expect(await verify(t1 as string)).toBe("one");
    expect(joseCalls()).toBe(3);
    expect(await verify(t2 as string)).toBe("two"); // verified again, evicts t3
    expect(joseCalls()).toBe(4);
    expect(await verify(t3 as string)).toBe("three");
    expect(joseCalls()).toBe(5);
  });

  it("never caches a failure", async () => {
    const v = verifier();
    const bad = hs({}, OTHER_SECRET);
    expect(await refusal(v.verify(bad))).toBe("invalid signature");
    expect(await refusal(v.verify(bad))).toBe("invalid signature");
    expect(joseCalls()).toBe(2);
    expect(await refusal(v.verify("garbage"))).toBe(
      "malformed token: not a compact JWS (three base64url parts)",
    );
  });

  it("never looks up nor stores a token over maxTokenSize", async () => {
    const token = hs({ pad: "x".repeat(200) });
    const keys = [token, token.slice(-16)]; // the cache indexes by the tail
    const touched = async (v: ReturnType<typeof verifier>) => {
      const get = vi.spyOn(Map.prototype, "get");
      const set = vi.spyOn(Map.prototype, "set");
      try {
        await v.verify(token).catch(() => undefined);
        return [...get.mock.calls, ...set.mock.calls].some(([key]) => keys.includes(key as string));
      } finally {
        get.mockRestore();
        set.mockRestore();
      }
    };
    expect(await touched(verifier({ maxTokenSize: token.length }))).toBe(true); // the spy sees lookups
    const small = verifier({ maxTokenSize: token.length - 1 });
    expect(await touched(small)).toBe(false);
    expect(await refusal(small.verify(token))).toBe(`token too large: more than ${token.length - 1} bytes`);
    expect(joseCalls()).toBe(1);
  });
});

describe("verified-token cache: distinct tokens", () => {
  it("does not serve a token whose signature differs from a cached one", async () => {
    const v = verifier();
    const token = hs();
    await v.verify(token);
    const at = token.lastIndexOf(".") + 5;
    const flipped = `${token.slice(0, at)}${token[at] === "A" ? "B" : "A"}${token.slice(at + 1)}`;
    expect(await refusal(v.verify(flipped))).toBe("invalid signature");
    // Another spelling of the same signature (the unused low bits of the last base64url character) is a
    // different string: jose verifies it, the cache does not answer for it.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet[alphabet.indexOf(token.at(-1) as string) | 1];
    await expect(v.verify(`${token.slice(0, -1)}${last}`)).resolves.toBeDefined();
    // The same signature on another payload: same tail, different token.
    const otherPayload = token.replace(
      /\.[^.]+\./,
      `.${Buffer.from('{"sub":"eve"}').toString("base64url")}.`,
    );
    expect(await refusal(v.verify(otherPayload))).toBe("invalid signature");
    expect(joseCalls()).toBe(4); // every one of them went to jose
    expect((await v.verify(token)).claims.sub).toBe("ada"); // and the original is still cached
    expect(joseCalls()).toBe(4);
  });

  it("gives every token its own claims", async () => {
    const v = verifier({ cache: { max: 8 } });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ maxLength: 12 }), { minLength: 1, maxLength: 20 }),
        async (subs) => {
          for (const sub of subs) expect((await v.verify(hs({ sub }))).claims.sub).toBe(sub);
          for (const sub of [...subs].reverse()) expect((await v.verify(hs({ sub }))).claims.sub).toBe(sub);
        },
      ),
      { numRuns: 30 },
    );
  });

  it("lets tokens that share the indexed tail replace each other, never answer for each other", () => {
    const cache = new TokenCache(10, 60_000);
    const tail = "0123456789abcdef";
    const result = (sub: string) => ({ claims: { sub }, header: { alg: "HS256" } });
    cache.set(`a.b.x${tail}`, result("x"), NOW, 0);
    cache.set(`a.b.y${tail}`, result("y"), NOW, 0);
    expect(cache.get(`a.b.x${tail}`, NOW, 0)).toBeUndefined();
    expect(cache.get(`a.b.y${tail}`, NOW, 0)?.claims.sub).toBe("y");
    cache.delete(`a.b.x${tail}`); // not the stored token: leaves it
    expect(cache.get(`a.b.y${tail}`, NOW, 0)?.claims.sub).toBe("y");
    expect(cache.get(`a.b.y${tail}`, NOW, 1)).toBeUndefined(); // another key-set epoch drops everything
    expect(cache.get(`a.b.y${tail}`, NOW, 1)).toBeUndefined();
  });

  it("keeps one cache per verifier", async () => {
    const a = verifier();
    const b = verifier({ secret: OTHER_SECRET });
    const token = hs();
    await a.verify(token);
    expect(await refusal(b.verify(token))).toBe("invalid signature");
  });
});

describe("verified-token cache: off", () => {
  it("verifies every call with cache: false, and leaves the results unfrozen", async () => {
    const v = verifier({ cache: false });
    const token = hs({ roles: ["admin"] });
    const first = await v.verify(token);
    const second = await v.verify(token);
    expect(joseCalls()).toBe(2);
    expect(second).not.toBe(first);
    expect(second).toEqual(first);
    expect(Object.isFrozen(first.claims)).toBe(false);
    now = NOW + 3_600_000;
    expect(await refusal(v.verify(token))).toBe("token expired");
  });

  it.each([
    [{ max: 0 }, "cache.max must be a positive integer, got 0"],
    [{ max: 1.5 }, "cache.max must be a positive integer, got 1.5"],
    [{ ttl: 0 }, "cache.ttl must be a positive number of ms, got 0"],
    [{ ttl: Number.NaN }, "cache.ttl must be a positive number of ms, got NaN"],
    ["yes", "cache must be a boolean or { max, ttl }, got yes"],
    [null, "cache must be a boolean or { max, ttl }, got null"],
  ])("refuses cache %j at setup", (cache, message) => {
    expect(() => verifier({ cache: cache as JwtVerifierOptions["cache"] })).toThrow(
      `createJwtVerifier: ${message}`,
    );
  });
});

describe("verified-token cache: remote key sets", () => {
  const a = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const b = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = (kid: string, key: typeof a) => ({ ...key.publicKey.export({ format: "jwk" }), kid });
  const sign = (kid: string, key: typeof a) =>
    createJwtSigner({ privateKey: key.privateKey, kid, clock }).sign();

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] }); // jose's key-set clock
    vi.setSystemTime(NOW);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function remote(jwksOptions: JwtVerifierOptions["jwksOptions"] = {}) {
    const state = { keys: [jwk("a", a)], fetches: 0 };
    const v = createJwtVerifier({
      jwksUrl: "http://127.0.0.1:9/jwks",
      jwksOptions: {
        cooldown: 0,
        cacheMaxAge: 60_000,
        fetch: async () => {
          state.fetches++;
          return Response.json({ keys: state.keys });
        },
        ...jwksOptions,
      },
      clock,
    });
    return { state, v };
  }

  it("caches while the key set is unchanged, and drops every entry once it is fetched again", async () => {
    const { state, v } = remote();
    const tokenA = await sign("a", a);
    await v.verify(tokenA); // fetches the set; not stored (the set was loading)
    await v.verify(tokenA); // stored
    await v.verify(tokenA); // hit
    expect([joseCalls(), state.fetches]).toEqual([2, 1]);

    // a is revoked and b published; a token with the new kid makes the verifier fetch the set again.
    state.keys = [jwk("b", b)];
    await v.verify(await sign("b", b));
    expect(state.fetches).toBe(2);
    expect(await refusal(v.verify(tokenA))).toBe("no key matches the token (unknown kid)");
  });

  it("does not use a hit once the key set is older than cacheMaxAge", async () => {
    const { state, v } = remote({ cacheMaxAge: 60_000, cooldown: 30_000 });
    const tokenA = await sign("a", a);
    await v.verify(tokenA);
    await v.verify(tokenA);
    state.keys = [jwk("b", b)];
    vi.setSystemTime(NOW + 30_000);
    await expect(v.verify(tokenA)).resolves.toBeDefined(); // the set is fresh: a hit, as jose would accept
    expect(joseCalls()).toBe(2);
    vi.setSystemTime(NOW + 61_000);
    expect(await refusal(v.verify(tokenA))).toBe("no key matches the token (unknown kid)");
    expect(state.fetches).toBe(2);
  });

  it("does not store a verification that overlapped a fetch of the set", async () => {
    const { state, v } = remote();
    const tokenA = await sign("a", a);
    await v.verify(tokenA);
    // Both run at once: the unknown kid starts a fetch while tokenA is being verified.
    const unknownKid = await sign("x", b);
    await Promise.allSettled([v.verify(tokenA), v.verify(unknownKid)]);
    expect(state.fetches).toBe(2);
    const calls = joseCalls();
    await v.verify(tokenA); // verified again, not a hit
    expect(joseCalls()).toBe(calls + 1);
    await v.verify(tokenA);
    expect(joseCalls()).toBe(calls + 1);
  });
});
