// examples/apigateway with Consul discovery and a remote JWKS, end to end.
// - `--sd consul`: the built gateway follows a FAKE Consul agent (sd-consul's test helper, the HTTP
//   endpoints Consul documents, blocking queries included) that lists two real addsvc processes: calls
//   reach both; while the agent answers 500s the gateway keeps the last set and keeps answering; an
//   instance whose check goes critical (or that is deregistered) stops getting calls, without a failed call.
// - `--jwt-jwks-url`: the built gateway verifies callers' ES256 tokens against a key set served here
//   (a token of the served key goes through to addsvc; another key, another kid, HS256 and a wrong
//   audience are 401). Key rotation runs on the gateway set up in this process from the same command
//   line, with `Date` faked: the gateway refetches the set for an unknown kid only once jose's 30 s
//   cooldown is over, and no gateway flag shortens it, so a child process would need a 30 s wait.
import type { KeyObject } from "node:crypto";
import { createJwtSigner } from "@svckit/auth-jwt";
import type { Logger } from "@svckit/log";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parseCommandLine } from "../examples/apigateway/src/flags.js";
import { type Apigateway, createApigateway } from "../examples/apigateway/src/gateway.js";
import { es256KeySet, newEcKeys } from "../packages/auth-jwt/src/test-helpers.js";
import { type FakeConsul, startFakeConsul } from "../packages/sd-consul/src/test-helpers.js";
import {
  jsonLines,
  portOf,
  type RunningAddsvc,
  servedCalls,
  startAddsvcHttp,
} from "./fixtures/addsvc-helpers.js";
import { ensureBuilt, startGateway } from "./fixtures/apigateway-helpers.js";
import { closeServers, listen, type RawResponse, send, stopProcesses, type TestProcess } from "./support.js";

const JSON_TYPE = "application/json; charset=utf-8";
const ISSUER = "https://idp.test/";
const AUDIENCE = "apigateway";

/** POST /addsvc/sum {a, b: 1} to the gateway on `port`, with a bearer token when given. */
function sum(port: number, a: number, token?: string): Promise<RawResponse> {
  return send(port, {
    path: "/addsvc/sum",
    body: JSON.stringify({ a, b: 1 }),
    headers: {
      "content-type": "application/json",
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
  });
}

/** The gateway's log lines whose message is `message`. */
function logged(proc: TestProcess, message: string): Record<string, unknown>[] {
  return jsonLines(proc).filter((l) => l.message === message);
}

/** A svckit error answer: `status`, JSON `{code, message}`. */
function expectError(res: RawResponse, status: number, code: string, message: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers["content-type"]).toBe(JSON_TYPE);
  expect(res.json()).toMatchObject({ code, message });
}

beforeAll(ensureBuilt, 180_000);

const gateways: Apigateway[] = [];
const consuls: FakeConsul[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(gateways.splice(0).map((g) => g.app.stop()));
  await Promise.all(consuls.splice(0).map((c) => c.close()));
  await stopProcesses();
  await closeServers();
});

// ---------------------------------------------------------------------------------------------------

describe("the apigateway binary with --sd consul", () => {
  it("routes to the passing instances, keeps them while Consul fails, and drops one that goes critical or leaves", async () => {
    const consul = await startFakeConsul();
    consuls.push(consul);
    const [a, b] = (await Promise.all([startAddsvcHttp(), startAddsvcHttp()])) as [
      RunningAddsvc,
      RunningAddsvc,
    ];
    const addrA = a.http as string;
    const addrB = b.http as string;
    // Registered as another agent of the cluster would, each with a TTL check that is passing.
    for (const [id, svc] of [
      ["addsvc-a", a],
      ["addsvc-b", b],
    ] as const) {
      consul.register({
        ID: id,
        Name: "addsvc",
        Address: "127.0.0.1",
        Port: portOf(svc.http),
        Check: { TTL: "10m", Status: "passing" },
      });
    }
    const { proc: gateway, port } = await startGateway([
      "--auth",
      "none",
      "--sd",
      "consul",
      "--consul-addr",
      consul.url,
      "--balancer",
      "round-robin",
      // A roomy call limit: this test is about the instance set, not latency on a busy machine.
      "--retry-timeout",
      "10s",
    ]);
    const failures: string[] = [];
    let n = 0;
    /** `count` calls in a row; a wrong answer is noted in `failures`. */
    const calls = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const x = ++n;
        const res = await sum(port, x);
        if (res.status !== 200 || res.text !== `{"v":${x + 1}}`)
          failures.push(`#${x}: ${res.status} ${res.text}`);
      }
    };
    /** Waits until both instances have logged `served` calls in all (their stdout lags the answers). */
    const served = async (expected: number): Promise<[number, number]> => {
      await vi.waitFor(() => expect(servedCalls(a) + servedCalls(b)).toBe(expected), { timeout: 5_000 });
      return [servedCalls(a), servedCalls(b)];
    };

    // The first listing is in before the gateway listens: both instances, and round robin reaches both.
    expect(logged(gateway, "addsvc: 2 instances")).toEqual([
      expect.objectContaining({ instances: expect.arrayContaining([addrA, addrB]) }),
    ]);
    await calls(10);
    expect(failures).toEqual([]);
    expect(await served(10)).toEqual([5, 5]);
    // The gateway follows the service with blocking queries (index + wait) on the health endpoint.
    await vi.waitFor(() => expect(consul.waiting).toBeGreaterThanOrEqual(1), { timeout: 5_000 });
    const healthQueries = consul.requests.filter((r) => r.path === "/v1/health/service/addsvc");
    expect(healthQueries[0]?.query.get("passing")).not.toBeNull();
    expect(healthQueries.some((r) => Number(r.query.get("index")) > 0 && r.query.has("wait"))).toBe(true);

    // Consul fails (500, no leader) until told otherwise: the queries in flight are woken with the same
    // set, every later one fails (retried with backoff), and the gateway keeps both instances and keeps
    // answering through it.
    consul.failNext(1_000, 500, "rpc error: No cluster leader");
    consul.resetIndex(consul.index);
    const failed = () => logged(gateway, "addsvc: discovery failed, keeping 2 instances");
    await vi.waitFor(() => expect(failed()).not.toEqual([]), { timeout: 5_000 });
    await calls(10);
    expect(failures).toEqual([]);
    const [duringA, duringB] = await served(20);
    expect(duringA).toBeGreaterThan(5);
    expect(duringB).toBeGreaterThan(5);
    expect(failed()[0]).toMatchObject({
      level: "warn",
      error: expect.stringContaining("HTTP 500: rpc error: No cluster leader"),
    });
    // Still failing: no query has been answered since (none is waiting on the agent).
    expect(consul.waiting).toBe(0);
    expect(logged(gateway, "addsvc: 2 instances")).toHaveLength(1);
    // The agent is back: both instancers return to a blocking query (after their current backoff).
    consul.failNext(0);
    await vi.waitFor(() => expect(consul.waiting).toBe(2), { timeout: 10_000 });

    // b's check goes critical while calls keep coming: the blocking query returns the change, b gets no
    // more calls, and no call fails on the way.
    let loading = true;
    const load = (async () => {
      while (loading) await calls(1);
    })();
    consul.setCheck("service:addsvc-b", "critical");
    await vi.waitFor(() => expect(logged(gateway, "addsvc: 1 instance")).toHaveLength(1), { timeout: 5_000 });
    loading = false;
    await load;
    expect(logged(gateway, "addsvc: 1 instance")[0]).toMatchObject({ instances: [addrA] });
    const [beforeA, beforeB] = await served(n);
    await calls(10);
    expect(await served(n)).toEqual([beforeA + 10, beforeB]);

    // Passing again: back in the set; then deregistered: out for good.
    consul.setCheck("service:addsvc-b", "passing");
    await vi.waitFor(() => expect(logged(gateway, "addsvc: 2 instances")).toHaveLength(2), {
      timeout: 5_000,
    });
    await calls(10);
    const [backA, backB] = await served(n);
    expect(backB).toBeGreaterThan(beforeB);
    consul.deregister("addsvc-b");
    await vi.waitFor(() => expect(logged(gateway, "addsvc: 1 instance")).toHaveLength(2), { timeout: 5_000 });
    await calls(10);
    expect(await served(n)).toEqual([backA + 10, backB]);
    expect(failures).toEqual([]);
    // Every gateway call was answered by addsvc: none was retried, none failed.
    const gatewayCalls = jsonLines(gateway).filter((l) => l.endpoint === "addsvc/sum");
    expect(gatewayCalls.filter((l) => l.code !== "OK")).toEqual([]);
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------------

interface KeySetServer {
  readonly url: string;
  /** The keys served now, as [kid, public key]. */
  keys: [string, KeyObject][];
  /** Requests served. */
  fetches: number;
}

/** A JWKS on 127.0.0.1 at /jwks.json serving `keys` (ES256 public JWKs). */
async function keySetServer(keys: [string, KeyObject][]): Promise<KeySetServer> {
  let url = "";
  const state = {
    keys,
    fetches: 0,
    get url() {
      return url;
    },
  };
  const server = await listen((req, res) => {
    state.fetches++;
    if (req.url !== "/jwks.json") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/jwk-set+json" }).end(es256KeySet(state.keys));
  });
  url = `${server.origin}/jwks.json`;
  return state;
}

/** An ES256 token for sub=alice with the gateway's iss and aud (unless overridden), valid for a minute. */
function esToken(kid: string, privateKey: KeyObject, audience = AUDIENCE): Promise<string> {
  return createJwtSigner({
    privateKey,
    kid,
    issuer: ISSUER,
    audience,
    subject: "alice",
    expiresIn: 60_000,
  }).sign();
}

const jwksArgs = (url: string, addsvc: RunningAddsvc): string[] => [
  "--jwt-jwks-url",
  url,
  "--jwt-issuer",
  ISSUER,
  "--jwt-audience",
  AUDIENCE,
  "--addsvc",
  addsvc.http as string,
  "--stringsvc",
  "",
];

describe("the apigateway with --jwt-jwks-url", () => {
  it("the binary accepts tokens of the served key and refuses another key, an unknown kid, HS256 and a wrong audience", async () => {
    const addsvc = await startAddsvcHttp();
    const current = newEcKeys();
    const jwks = await keySetServer([["k1", current.publicKey]]);
    const { port } = await startGateway(jwksArgs(jwks.url, addsvc));

    const ok = await sum(port, 2, await esToken("k1", current.privateKey));
    expect([ok.status, ok.text]).toEqual([200, '{"v":3}']);
    expect(jwks.fetches).toBe(1);

    const other = newEcKeys();
    expectError(
      await sum(port, 2, await esToken("k1", other.privateKey)),
      401,
      "UNAUTHENTICATED",
      "invalid signature",
    );
    expectError(
      await sum(port, 2, await esToken("k2", other.privateKey)),
      401,
      "UNAUTHENTICATED",
      "no key matches the token (unknown kid)",
    );
    const hs256 = await createJwtSigner({
      secret: "an-hmac-secret-of-32-bytes-or-more!!",
      issuer: ISSUER,
      audience: AUDIENCE,
      subject: "alice",
      expiresIn: 60_000,
    }).sign();
    expectError(await sum(port, 2, hs256), 401, "UNAUTHENTICATED", "algorithm HS256 is not allowed");
    expectError(
      await sum(port, 2, await esToken("k1", current.privateKey, "another-api")),
      401,
      "UNAUTHENTICATED",
      "wrong audience",
    );
    // The refused tokens never reached addsvc; the unknown kid came within the cooldown: no refetch.
    await vi.waitFor(() => expect(servedCalls(addsvc)).toBe(1));
    expect(jwks.fetches).toBe(1);
  }, 30_000);

  it("after a rotation (new key served, old one removed) accepts the new key once the cooldown allows a refetch", async () => {
    const addsvc = await startAddsvcHttp();
    const oldKey = newEcKeys();
    const newKey = newEcKeys();
    const jwks = await keySetServer([["old", oldKey.publicKey]]);
    const logger: Logger = { log: () => {} };
    const cl = parseCommandLine(["--http-addr", "127.0.0.1:0", ...jwksArgs(jwks.url, addsvc)], {});
    if (cl.help) throw new Error("help");
    const gateway = await createApigateway(cl.config, { logger, signals: [], drainTimeout: 1_000 });
    gateways.push(gateway);
    await gateway.app.start();
    const port = portOf(gateway.server.address);

    // Only Date is faked: jose's key set cache and cooldown read Date.now(); sockets and timers are real.
    const t0 = Date.now();
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(t0);
    const oldToken = await esToken("old", oldKey.privateKey);
    expect((await sum(port, 1, oldToken)).status).toBe(200);
    expect(jwks.fetches).toBe(1);

    // The issuer rotates: only the new key is served, and it signs with it.
    jwks.keys = [["new", newKey.publicKey]];
    const newToken = await esToken("new", newKey.privateKey);
    // Within the 30 s cooldown an unknown kid fetches nothing (random kids cannot hammer the issuer).
    vi.setSystemTime(t0 + 10_000);
    expectError(
      await sum(port, 1, newToken),
      401,
      "UNAUTHENTICATED",
      "no key matches the token (unknown kid)",
    );
    expect(jwks.fetches).toBe(1);

    // After it, the unknown kid makes the gateway fetch the set again: the new key works, the old is gone.
    vi.setSystemTime(t0 + 31_000);
    const rotated = await sum(port, 41, newToken);
    expect([rotated.status, rotated.text]).toEqual([200, '{"v":42}']);
    expect(jwks.fetches).toBe(2);
    expectError(
      await sum(port, 1, oldToken),
      401,
      "UNAUTHENTICATED",
      "no key matches the token (unknown kid)",
    );
    expect((await sum(port, 1, newToken)).status).toBe(200);
    expect(jwks.fetches).toBe(2);
    vi.useRealTimers();
    await vi.waitFor(() => expect(servedCalls(addsvc)).toBe(3));
  }, 30_000);
});
