// examples/apigateway end to end. The built binary in front of real addsvc and stringsvc child
// processes (routing, the token cases at the edge, upstream errors, health, SIGTERM, the command
// line) and the failover run: two addsvc instances, a steady load through the gateway, one instance
// SIGKILLed mid-load, and not one failed gateway call. The gateway set up in this process
// (createApigateway on its sources) in front of small svckit upstreams started here: the identity
// they see (forwarded and reissued), bodies passed through byte for byte, error and status
// passthrough, retries, deadlines, unknown routes, no instances, and discovery through a real etcd.
import http from "node:http";
import {
  authenticate,
  claimsFrom,
  createJwtSigner,
  IDENTITY_HEADER,
  trustedIdentity,
} from "@svckit/auth-jwt";
import type { Endpoint } from "@svckit/endpoint";
import type { LogFields, Logger, LogLevel } from "@svckit/log";
import { createEtcdClient, createEtcdRegistrar } from "@svckit/sd-etcd";
import {
  createHttpHandler,
  createRouter,
  encodeJsonResponse,
  type HttpRequest,
  type HttpResponseInit,
} from "@svckit/transport-http";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parseCommandLine } from "../examples/apigateway/src/flags.js";
import {
  type Apigateway,
  createApigateway,
  INTERNAL_AUDIENCE,
  INTERNAL_ISSUER,
} from "../examples/apigateway/src/gateway.js";
import {
  jsonLines,
  portOf,
  type RunningAddsvc,
  root,
  servedCalls,
  startAddsvcHttp,
} from "./fixtures/addsvc-helpers.js";
import {
  ensureBuilt,
  gatewayJs,
  startGateway,
  startStringsvc,
  tokenJs,
} from "./fixtures/apigateway-helpers.js";
import { type EtcdServer, skipWithoutEtcd, startEtcd } from "./support/etcd-server.js";
import {
  closeServers,
  listen,
  type RawResponse,
  send,
  startProcess,
  stopProcesses,
  type TestServer,
} from "./support.js";

const JSON_TYPE = "application/json; charset=utf-8";
const SECRET = "gateway-test-secret-0123456789abcdef";
const INTERNAL_SECRET = "internal-test-secret-0123456789abcdef";

// ---------------------------------------------------------------------------------------------------
// Helpers.

/** A token the gateway accepts (signed with SECRET), with `claims` on top of sub=alice. */
function token(claims: Record<string, unknown> = {}, secret = SECRET): Promise<string> {
  return createJwtSigner({ secret, subject: "alice", expiresIn: 60_000 }).sign(claims);
}

/** POST `body` to the gateway on `port`, with a bearer token when given. */
function post(
  port: number,
  path: string,
  body: string | Uint8Array,
  options: { token?: string; headers?: http.OutgoingHttpHeaders; agent?: http.Agent } = {},
): Promise<RawResponse> {
  return send(port, {
    path,
    body,
    headers: {
      "content-type": "application/json",
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      ...options.headers,
    },
    ...(options.agent === undefined ? {} : { agent: options.agent }),
  });
}

/** A svckit error answer: `status`, JSON, `{code, message}`. */
function expectError(res: RawResponse, status: number, code: string, message: string | RegExp): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers["content-type"]).toBe(JSON_TYPE);
  const body = res.json() as { code: string; message: string };
  expect(body.code).toBe(code);
  if (typeof message === "string") expect(body.message).toBe(message);
  else expect(body.message).toMatch(message);
}

/** A logger that keeps its lines. */
function memoryLogger(): Logger & { lines: { level: LogLevel; message: string; fields: LogFields }[] } {
  const lines: { level: LogLevel; message: string; fields: LogFields }[] = [];
  return { lines, log: (level, message, fields) => lines.push({ level, message, fields }) };
}

const gateways: Apigateway[] = [];

/** createApigateway from the sources with `args`, on a free port, started; stopped after the test. */
async function inProcessGateway(
  args: readonly string[],
  logger: Logger = memoryLogger(),
): Promise<{ gateway: Apigateway; port: number }> {
  const cl = parseCommandLine(["--http-addr", "127.0.0.1:0", ...args], {});
  if (cl.help) throw new Error("help");
  const gateway = await createApigateway(cl.config, { logger, signals: [], drainTimeout: 1_000 });
  gateways.push(gateway);
  await gateway.app.start();
  return { gateway, port: portOf(gateway.server.address) };
}

/** What the echo upstream saw of a call. */
interface Seen {
  readonly path: string;
  readonly contentType: string | null;
  readonly body: Buffer;
  readonly identityHeader: string | null;
  readonly authorization: string | null;
  readonly timeout: string | null;
  readonly claims: Record<string, unknown> | null;
}

const rawRequest = (_ctx: unknown, request: HttpRequest): HttpRequest => request;

/**
 * A small svckit upstream that plays addsvc and stringsvc: it records what it sees and answers as
 * `answer(path, seen)` says (default: a JSON echo of the identity it saw). `/sum` reads the
 * identity with `trustedIdentity` (what a service behind `--identity forward` does), `/concat` with
 * `authenticate` against the gateway's internal key (behind `--identity reissue`).
 */
async function echoUpstream(
  answer?: (path: string, seen: Seen) => HttpResponseInit | Promise<HttpResponseInit>,
): Promise<{ server: TestServer; seen: Seen[]; base: string }> {
  const seen: Seen[] = [];
  const handle =
    (path: string): Endpoint<HttpRequest, HttpResponseInit> =>
    async (ctx, request) => {
      const one: Seen = {
        path,
        contentType: ctx.metadata.get("content-type") ?? null,
        body: Buffer.from(request.body),
        identityHeader: ctx.metadata.get(IDENTITY_HEADER) ?? null,
        authorization: ctx.metadata.get("authorization") ?? null,
        timeout: ctx.metadata.get("x-request-timeout") ?? null,
        claims: (claimsFrom(ctx) as Record<string, unknown> | undefined) ?? null,
      };
      seen.push(one);
      if (answer !== undefined) return answer(path, one);
      return encodeJsonResponse(ctx, { claims: one.claims });
    };
  const identity = trustedIdentity({ optional: true });
  const internal = authenticate(
    { secret: INTERNAL_SECRET, issuer: INTERNAL_ISSUER, audience: INTERNAL_AUDIENCE },
    { optional: true },
  );
  const passThrough = (_ctx: unknown, out: HttpResponseInit): HttpResponseInit => out;
  const router = createRouter();
  router.post("/sum", createHttpHandler(identity(handle("/sum")), rawRequest, passThrough));
  router.post("/concat", createHttpHandler(internal(handle("/concat")), rawRequest, passThrough));
  for (const path of ["/uppercase", "/count"]) {
    router.post(path, createHttpHandler(handle(path), rawRequest, passThrough));
  }
  const server = await listen(router.handle);
  return { server, seen, base: server.origin };
}

beforeAll(ensureBuilt, 180_000);
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.app.stop()));
  await stopProcesses();
  await closeServers();
});

// ---------------------------------------------------------------------------------------------------

describe("the apigateway binary", () => {
  it("routes to addsvc and stringsvc, authenticates at the edge, passes upstream errors on as 4xx, and stops on SIGTERM", async () => {
    const [addsvc, stringsvc] = await Promise.all([startAddsvcHttp(), startStringsvc()]);
    const { proc, port } = await startGateway([
      "--jwt-secret",
      SECRET,
      "--addsvc",
      addsvc.http as string,
      "--stringsvc",
      stringsvc.http,
    ]);
    // One log line for the listener, with where it listens.
    const listening = jsonLines(proc).filter((l) => String(l.message).includes(" listening on "));
    expect(listening).toEqual([
      expect.objectContaining({
        level: "info",
        message: `HTTP listening on 127.0.0.1:${port}`,
        transport: "HTTP",
        addr: `127.0.0.1:${port}`,
        sd: "static",
        auth: "jwt",
        identity: "forward",
      }),
    ]);

    const valid = await token();
    // No token: 401 with a challenge; a bad one: 401 saying why; the upstream sees neither.
    const none = await post(port, "/addsvc/sum", '{"a":1,"b":2}');
    expectError(none, 401, "UNAUTHENTICATED", "missing bearer token");
    expect(none.headers["www-authenticate"]).toBe('Bearer realm="apigateway"');
    const forged = await post(port, "/addsvc/sum", '{"a":1,"b":2}', {
      token: await token({}, "some-other-secret-0123456789abcdef"),
    });
    expectError(forged, 401, "UNAUTHENTICATED", "invalid signature");
    expect(forged.headers["www-authenticate"]).toMatch(/^Bearer realm="apigateway", error="invalid_token"/);
    const garbage = await post(port, "/addsvc/sum", '{"a":1,"b":2}', { token: "x.y.z" });
    expectError(garbage, 401, "UNAUTHENTICATED", "malformed token");
    expect(servedCalls(addsvc)).toBe(0);

    // A valid token: both services answer through the gateway, bodies as the services wrote them.
    const sum = await post(port, "/addsvc/sum", '{"a":1,"b":2}', { token: valid });
    expect([sum.status, sum.headers["content-type"], sum.text]).toEqual([200, JSON_TYPE, '{"v":3}']);
    const concat = await post(port, "/addsvc/concat", '{"a":"ab","b":"cd"}', { token: valid });
    expect([concat.status, concat.text]).toEqual([200, '{"v":"abcd"}']);
    const upper = await post(port, "/stringsvc/uppercase", '{"s":"straße"}', { token: valid });
    expect([upper.status, upper.text]).toEqual([200, '{"v":"STRASSE"}']);
    const count = await post(port, "/stringsvc/count", '{"s":"héllo 👋"}', { token: valid });
    expect([count.status, count.text]).toEqual([200, '{"v":7}']);

    // addsvc's 400 {"error": ...}: a 4xx with its message, tried once (not retried).
    const before = servedCalls(addsvc);
    const zero = await post(port, "/addsvc/sum", '{"a":0,"b":0}', { token: valid });
    expectError(zero, 400, "INVALID_ARGUMENT", "can't sum two zeroes");
    await vi.waitFor(() => expect(servedCalls(addsvc)).toBe(before + 1));
    // stringsvc's 415 keeps its status; its 400s their message.
    const form = await post(port, "/stringsvc/count", '{"s":"x"}', {
      token: valid,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expectError(form, 415, "INVALID_ARGUMENT", /^unsupported content type/);
    const empty = await post(port, "/stringsvc/uppercase", '{"s":""}', { token: valid });
    expectError(empty, 400, "INVALID_ARGUMENT", "empty string");
    // Unknown routes are 404 before any token is looked at.
    expectError(
      await post(port, "/addsvc/mul", "{}"),
      404,
      "NOT_FOUND",
      'unknown method "mul" of addsvc: expected sum or concat',
    );

    // Health on the same listener.
    const healthz = await send(port, { method: "GET", path: "/healthz" });
    expect([healthz.status, healthz.json()]).toEqual([200, { status: "passing", checks: {} }]);
    const readyz = await send(port, { method: "GET", path: "/readyz" });
    expect(readyz.status).toBe(200);
    expect(readyz.json()).toMatchObject({
      status: "passing",
      serving: true,
      checks: { addsvc: { status: "passing" }, stringsvc: { status: "passing" } },
    });

    // One structured line per call, the refused ones included.
    const calls = jsonLines(proc).filter((l) => typeof l.endpoint === "string");
    expect(calls.map((l) => `${l.endpoint} ${l.code}`)).toEqual([
      "addsvc/sum UNAUTHENTICATED",
      "addsvc/sum UNAUTHENTICATED",
      "addsvc/sum UNAUTHENTICATED",
      "addsvc/sum OK",
      "addsvc/concat OK",
      "stringsvc/uppercase OK",
      "stringsvc/count OK",
      "addsvc/sum INVALID_ARGUMENT",
      "stringsvc/count INVALID_ARGUMENT",
      "stringsvc/uppercase INVALID_ARGUMENT",
    ]);
    // A refused token's line says why, without jose's stack (nor the token).
    expect(calls[2]).toMatchObject({ error: "malformed token" });
    expect(calls[2]).not.toHaveProperty("cause");

    process.kill(proc.pid, "SIGTERM");
    expect(await proc.exited(10_000)).toEqual({ code: 0, signal: null });
    expect(jsonLines(proc).at(-1)).toMatchObject({ message: "shutting down", signal: "SIGTERM" });
  });

  it("answers a bad command line with a message on stderr and exit code 2, --help with 0", async () => {
    const cases: [string[], RegExp][] = [
      [["--bogus"], /^apigateway: unknown flag --bogus\nusage: apigateway/],
      [[], /^apigateway: --auth jwt \(the default\) needs --jwt-secret/],
      [["--auth", "none", "--balancer", "fastest"], /^apigateway: --balancer: unknown value "fastest"/],
      [
        ["--auth", "none", "--retry-timeout", "soon"],
        /^apigateway: --retry-timeout: invalid duration "soon"/,
      ],
      [["--auth", "none", "--http-addr", "nowhere"], /^apigateway: --http-addr: invalid address "nowhere"/],
    ];
    for (const [args, message] of cases) {
      const proc = startProcess(process.execPath, [gatewayJs, ...args], root);
      expect(await proc.exited(10_000)).toEqual({ code: 2, signal: null });
      expect(proc.stderr()).toMatch(message);
      expect(proc.stdout()).toBe("");
    }
    const help = startProcess(process.execPath, [gatewayJs, "--help"], root);
    expect(await help.exited(10_000)).toEqual({ code: 0, signal: null });
    expect(help.stdout()).toMatch(/^usage: apigateway \[flags\]/);

    // The token tool signs what the gateway with the same secret accepts.
    const tool = startProcess(process.execPath, [tokenJs, "--jwt-secret", SECRET, "--sub", "bob"], root);
    expect(await tool.exited(10_000)).toEqual({ code: 0, signal: null });
    const printed = tool.stdout().trim();
    const echo = await echoUpstream();
    const { port } = await inProcessGateway(["--jwt-secret", SECRET, "--addsvc", echo.base]);
    const res = await post(port, "/addsvc/sum", "{}", { token: printed });
    expect(res.status, res.text).toBe(200);
    expect(res.json()).toMatchObject({ claims: { sub: "bob" } });
  });

  it("loses no call when one of two addsvc instances is killed mid-load", async () => {
    const instances = await Promise.all([startAddsvcHttp(), startAddsvcHttp()]);
    const [victim, survivor] = instances as [RunningAddsvc, RunningAddsvc];
    const { proc: gateway, port } = await startGateway([
      "--auth",
      "none",
      "--addsvc",
      instances.map((i) => i.http).join(","),
      "--stringsvc",
      "",
      // The default p2c balancer and 3 attempts; a roomy call limit so a slow, shared machine does not
      // turn a slow call into a failed one: this test is about instances dying, not latency.
      "--retry-timeout",
      "10s",
    ]);

    const TOTAL = 600;
    const CONCURRENCY = 6;
    const KILL_AT = 200;
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    let sent = 0;
    let ok = 0;
    const failures: string[] = [];
    let servedBeforeKill: [number, number] = [0, 0];
    let killed: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
    const worker = async (): Promise<void> => {
      while (sent < TOTAL) {
        const n = ++sent;
        if (n === KILL_AT) {
          servedBeforeKill = [servedCalls(victim), servedCalls(survivor)];
          process.kill(victim.proc.pid, "SIGKILL");
          killed = victim.proc.exited(5_000);
        }
        try {
          const res = await post(port, "/addsvc/sum", `{"a":${n},"b":1}`, { agent });
          if (res.status === 200 && res.text === `{"v":${n + 1}}`) ok++;
          else failures.push(`#${n}: ${res.status} ${res.text}`);
        } catch (err) {
          failures.push(`#${n}: ${(err as Error).message}`);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      agent.destroy();
    }
    expect(await killed).toEqual({ code: null, signal: "SIGKILL" });
    const retries = jsonLines(gateway).filter((l) => String(l.message).includes("retrying")).length;
    const survivorTotal = servedCalls(survivor);
    console.log(
      `apigateway failover: sent ${sent}, ok ${ok}, failed ${failures.length}; ` +
        `served before the kill: victim ${servedBeforeKill[0]}, survivor ${servedBeforeKill[1]}; ` +
        `survivor in all ${survivorTotal}; gateway retries ${retries}`,
    );
    expect(failures).toEqual([]);
    expect(ok).toBe(TOTAL);
    // Both instances took calls before the kill, and the kill did hit calls (retried elsewhere).
    expect(servedBeforeKill[0]).toBeGreaterThan(0);
    expect(servedBeforeKill[1]).toBeGreaterThan(0);
    expect(survivorTotal).toBeGreaterThan(servedBeforeKill[1]);
    expect(retries).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("the gateway in front of svckit upstreams", () => {
  it("forwards the verified identity in x-svckit-identity, never one the caller sent", async () => {
    const echo = await echoUpstream();
    const { port } = await inProcessGateway(["--jwt-secret", SECRET, "--addsvc", echo.base]);
    const forgedHeader = Buffer.from(JSON.stringify({ sub: "root" })).toString("base64url");
    const res = await post(port, "/addsvc/sum", "{}", {
      token: await token({ scope: "add", name: "Alice" }),
      headers: { [IDENTITY_HEADER]: forgedHeader },
    });
    expect(res.status, res.text).toBe(200);
    // The service's trustedIdentity() read the gateway's header: the token's claims minus iss/aud/exp/iat.
    expect(res.json()).toEqual({ claims: { sub: "alice", scope: "add", name: "Alice" } });
    const [seen] = echo.seen;
    expect(seen?.identityHeader).not.toBe(forgedHeader);
    // The caller's token stays at the edge.
    expect(seen?.authorization).toBeNull();

    // Without authentication there is no identity to pass on, and a caller's header is still dropped.
    const open = await inProcessGateway(["--auth", "none", "--addsvc", echo.base]);
    const anonymous = await post(open.port, "/addsvc/sum", "{}", {
      headers: { [IDENTITY_HEADER]: forgedHeader },
    });
    expect(anonymous.json()).toEqual({ claims: null });
    expect(echo.seen[1]?.identityHeader).toBeNull();
  });

  it("reissues the identity as a short-lived token signed with the gateway's own secret", async () => {
    const echo = await echoUpstream();
    const { port } = await inProcessGateway([
      "--jwt-secret",
      SECRET,
      "--identity",
      "reissue",
      "--identity-secret",
      INTERNAL_SECRET,
      "--addsvc",
      echo.base,
    ]);
    const callerToken = await token({ scope: "add" });
    const res = await post(port, "/addsvc/concat", "{}", { token: callerToken });
    expect(res.status, res.text).toBe(200);
    // The service's authenticate() (gateway key, iss, aud) verified it: the caller's claims, the gateway's iss/aud.
    const { claims } = res.json() as { claims: Record<string, unknown> };
    expect(claims).toMatchObject({
      sub: "alice",
      scope: "add",
      iss: INTERNAL_ISSUER,
      aud: INTERNAL_AUDIENCE,
    });
    expect((claims.exp as number) - (claims.iat as number)).toBe(60);
    const [seen] = echo.seen;
    expect(seen?.authorization).toMatch(/^Bearer /);
    expect(seen?.authorization).not.toBe(`Bearer ${callerToken}`);
    expect(seen?.identityHeader).toBeNull();
  });

  it("passes bodies through byte for byte, both ways, with the caller's content type and deadline", async () => {
    // 2^64 would not survive a JSON.parse in the gateway; odd spacing and non-ASCII would not survive a re-encode.
    const answer = '{ "v" : 18446744073709551616, "note": "naïve 👋" }';
    const echo = await echoUpstream(() => ({
      contentType: "application/vnd.test+json",
      body: Buffer.from(answer),
    }));
    const { port } = await inProcessGateway(["--auth", "none", "--stringsvc", echo.base]);
    const body = Buffer.from('{"s":"ünïcödé",  "n": 12345678901234567890}\n');
    const res = await post(port, "/stringsvc/count", body, {
      headers: { "content-type": "application/json; charset=utf-8", "x-request-timeout": "5000" },
    });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/vnd.test+json");
    expect(res.text).toBe(answer);
    const [seen] = echo.seen;
    expect(seen?.path).toBe("/count");
    expect(seen?.body.equals(body)).toBe(true);
    expect(seen?.contentType).toBe("application/json; charset=utf-8");
    // The caller's 5 s budget, already under the gateway's 1 s --retry-timeout, travels on.
    expect(Number(seen?.timeout)).toBeGreaterThan(0);
    expect(Number(seen?.timeout)).toBeLessThanOrEqual(1_000);
  });

  it("passes an instance's error status and message on, retries only what another attempt may fix", async () => {
    let failNext = 0;
    const echo = await echoUpstream((path) => {
      if (path === "/count") {
        return { status: 400, contentType: JSON_TYPE, body: '{"error":"boom"}' };
      }
      if (failNext > 0) {
        failNext--;
        return {
          status: 503,
          contentType: JSON_TYPE,
          headers: { connection: "close", "x-internal": "1" },
          body: '{"code":"UNAVAILABLE","message":"circuit breaker \\"uppercase\\" is open"}',
        };
      }
      return {
        status: 429,
        contentType: JSON_TYPE,
        headers: { "retry-after": "1" },
        body: '{"error":"slow down"}',
      };
    });
    const { port } = await inProcessGateway(["--auth", "none", "--stringsvc", echo.base]);
    const bad = await post(port, "/stringsvc/count", "{}");
    expectError(bad, 400, "INVALID_ARGUMENT", "boom");
    expect(echo.seen.length).toBe(1);

    const limited = await post(port, "/stringsvc/uppercase", "{}");
    expectError(limited, 429, "RESOURCE_EXHAUSTED", "slow down");
    expect(limited.headers["retry-after"]).toBe("1");
    expect(echo.seen.length).toBe(2);

    // UNAVAILABLE twice, then the 429: three attempts, the instance's hop-by-hop headers not passed on.
    failNext = 2;
    const res = await post(port, "/stringsvc/uppercase", "{}");
    expectError(res, 429, "RESOURCE_EXHAUSTED", "slow down");
    expect(echo.seen.length).toBe(5);
    failNext = 3;
    const down = await post(port, "/stringsvc/uppercase", "{}");
    expectError(down, 503, "UNAVAILABLE", 'circuit breaker "uppercase" is open');
    expect(down.headers["x-internal"]).toBeUndefined();
    expect(echo.seen.length).toBe(8);
  });

  it("answers an instance's redirect with 500 INTERNAL, not a redirect without its Location", async () => {
    const echo = await echoUpstream(() => ({
      status: 307,
      contentType: JSON_TYPE,
      headers: { location: "http://10.0.0.5:8080/internal/uppercase?token=abc" },
      body: "{}",
    }));
    const { port } = await inProcessGateway(["--auth", "none", "--stringsvc", echo.base]);
    const res = await post(port, "/stringsvc/uppercase", "{}");
    expectError(res, 500, "INTERNAL", /^HTTP 307 Temporary Redirect: /);
    expect(res.headers.location).toBeUndefined();
    expect(res.text).not.toContain("10.0.0.5");
    expect(echo.seen.length).toBe(1); // not followed, not retried
  });

  it("answers an instance's 405 with 501 UNIMPLEMENTED (the gateway's own route takes POST), not a 405 without Allow", async () => {
    const echo = await echoUpstream(() => ({
      status: 405,
      contentType: JSON_TYPE,
      headers: { allow: "GET, HEAD" },
      body: '{"code":"UNIMPLEMENTED","message":"method POST is not allowed on /uppercase"}',
    }));
    const { port } = await inProcessGateway(["--auth", "none", "--stringsvc", echo.base]);
    const res = await post(port, "/stringsvc/uppercase", "{}");
    expectError(res, 501, "UNIMPLEMENTED", "method POST is not allowed on /uppercase");
    expect(res.headers.allow).toBeUndefined();
  });

  it("answers 504 when the instances do not answer within --retry-timeout", async () => {
    const hung = await listen(() => {
      // Never answers; closeServers() ends the connection after the test.
    });
    const { port } = await inProcessGateway([
      "--auth",
      "none",
      "--addsvc",
      hung.origin,
      "--retry-timeout",
      "300ms",
    ]);
    expectError(await post(port, "/addsvc/sum", "{}"), 504, "DEADLINE_EXCEEDED", "deadline exceeded");
  });

  it("answers unknown routes 404 and other methods 405, with JSON that says what exists", async () => {
    const echo = await echoUpstream();
    const { port } = await inProcessGateway(["--jwt-secret", SECRET, "--addsvc", echo.base]);
    expectError(
      await post(port, "/mulsvc/mul", "{}"),
      404,
      "NOT_FOUND",
      'unknown service "mulsvc": the gateway routes /addsvc/<method> and /stringsvc/<method>',
    );
    expectError(
      await post(port, "/stringsvc/reverse", "{}"),
      404,
      "NOT_FOUND",
      'unknown method "reverse" of stringsvc: expected uppercase or count',
    );
    expectError(await post(port, "/addsvc/sum/x", "{}"), 404, "NOT_FOUND", "no route for POST /addsvc/sum/x");
    expectError(await post(port, "/sum", "{}"), 404, "NOT_FOUND", "no route for POST /sum");
    const get = await send(port, { method: "GET", path: "/addsvc/sum" });
    expectError(get, 405, "UNIMPLEMENTED", "method GET is not allowed on /addsvc/sum");
    expect(get.headers.allow).toBe("POST");
    expect(echo.seen).toEqual([]);
  });

  it("answers 503 UNAVAILABLE when a service has no instances, and says so in /readyz", async () => {
    const echo = await echoUpstream();
    const { port } = await inProcessGateway(["--auth", "none", "--addsvc", "", "--stringsvc", echo.base]);
    expectError(
      await post(port, "/addsvc/sum", '{"a":1,"b":2}'),
      503,
      "UNAVAILABLE",
      'no endpoints available for service "addsvc"',
    );
    expect((await post(port, "/stringsvc/count", "{}")).status).toBe(200);
    const readyz = await send(port, { method: "GET", path: "/readyz" });
    expect(readyz.status).toBe(200);
    expect(readyz.json()).toMatchObject({
      status: "warning",
      checks: {
        addsvc: { status: "warning", message: "no instances of addsvc" },
        stringsvc: { status: "passing" },
      },
    });
  });
});

// ---------------------------------------------------------------------------------------------------

const skipEtcd = skipWithoutEtcd("test/apigateway.test.ts (--sd etcd)");

describe.skipIf(skipEtcd)("the gateway with --sd etcd", () => {
  let etcd: EtcdServer | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
  }, 30_000);
  afterAll(async () => {
    await etcd?.stop();
  });

  it("follows the instances registered under <prefix><service>/ as they come and go", async () => {
    const url = (etcd as EtcdServer).url;
    const prefix = `/apigateway-test-${process.pid}/`;
    const [first, second] = await Promise.all([echoUpstream(), echoUpstream()]);
    const client = createEtcdClient(url);
    const register = (id: string, server: TestServer) =>
      createEtcdRegistrar(client, {
        prefix: `${prefix}addsvc/`,
        id,
        instance: `127.0.0.1:${server.port}`,
      });
    const one = register("one", first.server);
    const two = register("two", second.server);
    try {
      await one.register();
      const { port } = await inProcessGateway([
        "--auth",
        "none",
        "--sd",
        "etcd",
        "--etcd-endpoints",
        url,
        "--etcd-prefix",
        prefix,
      ]);
      // The first listing is in before the gateway listens.
      expect((await post(port, "/addsvc/sum", "{}")).status).toBe(200);
      expect(first.seen.length).toBe(1);
      expectError(
        await post(port, "/stringsvc/count", "{}"),
        503,
        "UNAVAILABLE",
        'no endpoints available for service "stringsvc"',
      );

      // A second instance registers and the first leaves: calls move over.
      await two.register();
      await one.deregister();
      await vi.waitFor(
        async () => {
          const before = second.seen.length;
          expect((await post(port, "/addsvc/sum", "{}")).status).toBe(200);
          expect(second.seen.length).toBe(before + 1);
        },
        { timeout: 10_000, interval: 50 },
      );
      const firstCalls = first.seen.length;
      for (let i = 0; i < 5; i++) expect((await post(port, "/addsvc/sum", "{}")).status).toBe(200);
      expect(first.seen.length).toBe(firstCalls);
    } finally {
      await Promise.all(gateways.splice(0).map((g) => g.app.stop()));
      await Promise.allSettled([one.deregister(), two.deregister()]);
      client.close();
    }
  });
});
