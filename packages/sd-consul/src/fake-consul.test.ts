// Pins the fake Consul agent (test-helpers.ts) to the behaviour Consul's HTTP API documents, so the
// package's tests exercise what a real agent would do. See test-helpers.ts for what is not imitated.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeConsul, parseGoDuration, startFakeConsul } from "./test-helpers.js";

const fakes: FakeConsul[] = [];
const servers: http.Server[] = [];
afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake.close();
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

async function fake(options?: Parameters<typeof startFakeConsul>[0]): Promise<FakeConsul> {
  const started = await startFakeConsul(options);
  fakes.push(started);
  return started;
}

async function put(consul: FakeConsul, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${consul.url}${path}`, {
    method: "PUT",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, text: await response.text() };
}

async function health(consul: FakeConsul, query = "", headers: Record<string, string> = {}) {
  const response = await fetch(`${consul.url}/v1/health/service/web${query}`, { headers });
  const text = await response.text();
  return {
    status: response.status,
    index: Number(response.headers.get("x-consul-index")),
    text,
    json: () =>
      JSON.parse(text) as { Service: { ID: string }; Checks: { CheckID: string; Status: string }[] }[],
  };
}

const ids = (entries: { Service: { ID: string } }[]): string[] => entries.map((e) => e.Service.ID);

describe("fake Consul agent", () => {
  it("parses Go durations", () => {
    expect(parseGoDuration("10s")).toBe(10_000);
    expect(parseGoDuration("1m30s")).toBe(90_000);
    expect(parseGoDuration("250ms")).toBe(250);
    expect(parseGoDuration("1.5h")).toBe(5_400_000);
    expect(parseGoDuration("10")).toBeUndefined();
    expect(parseGoDuration("ten s")).toBeUndefined();
  });

  it("registers a service (ID defaults to Name, Weights to 1/1, CheckID to service:<ID>) and lists it", async () => {
    const consul = await fake();
    const before = (await health(consul)).index;
    expect(before).toBeGreaterThan(0);
    expect(
      await put(consul, "/v1/agent/service/register", { Name: "web", Port: 80, Check: { TTL: "10s" } }),
    ).toEqual({
      status: 200,
      text: "",
    });
    const answer = await health(consul);
    expect(answer.status).toBe(200);
    expect(answer.index).toBeGreaterThan(before);
    expect(answer.json()).toEqual([
      {
        Node: { ID: expect.any(String), Node: "fake-node", Address: "127.0.0.1", Datacenter: "dc1" },
        Service: {
          ID: "web",
          Service: "web",
          Tags: [],
          Address: "",
          Port: 80,
          Meta: {},
          Weights: { Passing: 1, Warning: 1 },
        },
        Checks: [
          expect.objectContaining({ CheckID: "serfHealth", Status: "passing" }),
          expect.objectContaining({
            CheckID: "service:web",
            Status: "critical",
            ServiceID: "web",
            TTL: "10s",
          }),
        ],
      },
    ]);
  });

  it("answers 400 for a registration without a name or with a bad check", async () => {
    const consul = await fake();
    expect(await put(consul, "/v1/agent/service/register", { ID: "x" })).toEqual({
      status: 400,
      text: "Missing service name",
    });
    expect(
      await put(consul, "/v1/agent/service/register", { Name: "web", Check: { HTTP: "http://x/" } }),
    ).toEqual({
      status: 400,
      text: "Invalid check: Interval must be > 0 for Script, HTTP, or TCP checks",
    });
    expect((await put(consul, "/v1/agent/service/register", "{")).status).toBe(400);
  });

  it("filters ?passing on every check, the node's included, and ?tag on all given tags", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Tags: ["v1", "eu"], Port: 1 });
    consul.register({ ID: "b", Name: "web", Tags: ["v1"], Port: 2, Check: { TTL: "10s" } });
    consul.register({
      ID: "c",
      Name: "web",
      Tags: ["v2", "eu"],
      Port: 3,
      Check: { TTL: "10s", Status: "passing" },
    });
    expect(ids((await health(consul)).json())).toEqual(["a", "b", "c"]);
    expect(ids((await health(consul, "?passing")).json())).toEqual(["a", "c"]);
    expect(ids((await health(consul, "?passing=true")).json())).toEqual(["a", "c"]);
    expect(ids((await health(consul, "?passing=false")).json())).toEqual(["a", "b", "c"]);
    expect(ids((await health(consul, "?tag=eu")).json())).toEqual(["a", "c"]);
    expect(ids((await health(consul, "?tag=eu&tag=v1")).json())).toEqual(["a"]);
    consul.setCheck("service:c", "warning");
    expect(ids((await health(consul, "?passing")).json())).toEqual(["a"]);
    consul.setNodeHealth("critical");
    expect(ids((await health(consul, "?passing")).json())).toEqual([]);
  });

  it("blocks a query whose index is current until a change or the wait runs out", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1 });
    const { index } = await health(consul);

    let started = Date.now();
    const timedOut = await health(consul, `?index=${index}&wait=200ms`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(195);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(timedOut.index).toBe(index);

    started = Date.now();
    const pending = health(consul, `?index=${index}&wait=5s`);
    await expect.poll(() => consul.waiting).toBe(1);
    consul.register({ ID: "b", Name: "web", Port: 2 });
    const changed = await pending;
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(changed.index).toBeGreaterThan(index);
    expect(ids(changed.json())).toEqual(["a", "b"]);

    // An older index answers at once; a change to another service does not wake the query.
    expect((await health(consul, `?index=${index}&wait=5s`)).index).toBe(changed.index);
    const other = health(consul, `?index=${changed.index}&wait=300ms`);
    await expect.poll(() => consul.waiting).toBe(1);
    consul.register({ ID: "x", Name: "other", Port: 9 });
    expect((await other).index).toBe(changed.index);
    expect((await health(consul, "?index=1&wait=nonsense")).status).toBe(400);
  });

  it("wakes blocked queries with a lower index after resetIndex", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1 });
    const { index } = await health(consul);
    const pending = health(consul, `?index=${index}&wait=5s`);
    await expect.poll(() => consul.waiting).toBe(1);
    consul.resetIndex(2);
    expect((await pending).index).toBe(2);
  });

  it("turns a TTL check critical when no report comes in time, and passing on /check/pass", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1, Check: { TTL: "150ms", Status: "passing" } });
    expect(consul.checks.get("service:a")?.Status).toBe("passing");
    await expect.poll(() => consul.checks.get("service:a")?.Status, { timeout: 1_000 }).toBe("critical");
    expect(consul.checks.get("service:a")?.Output).toBe("TTL expired");
    expect(await put(consul, "/v1/agent/check/pass/service:a")).toEqual({ status: 200, text: "" });
    expect(consul.checks.get("service:a")?.Status).toBe("passing");
    expect((await put(consul, "/v1/agent/check/pass/service%3Aa")).status).toBe(200);
    expect(await put(consul, "/v1/agent/check/pass/nope")).toEqual({
      status: 404,
      text: 'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.',
    });
  });

  it("polls an HTTP check: 2xx passing, 429 warning, else critical", async () => {
    let status = 200;
    const target = http.createServer((_req, res) => res.writeHead(status).end());
    servers.push(target);
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(target.address() as AddressInfo).port}/health`;
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1, Check: { HTTP: url, Interval: "50ms" } });
    await expect.poll(() => consul.checks.get("service:a")?.Status).toBe("passing");
    status = 429;
    await expect.poll(() => consul.checks.get("service:a")?.Status).toBe("warning");
    status = 503;
    await expect.poll(() => consul.checks.get("service:a")?.Status).toBe("critical");
    expect(await put(consul, "/v1/agent/check/pass/service:a")).toEqual({
      status: 500,
      text: 'CheckID "service:a" does not have associated TTL',
    });
  });

  it("deregisters by id (404 for an unknown one) and wakes watchers", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1, Check: { TTL: "10s" } });
    const { index } = await health(consul);
    const pending = health(consul, `?index=${index}&wait=5s`);
    await expect.poll(() => consul.waiting).toBe(1);
    expect(await put(consul, "/v1/agent/service/deregister/a")).toEqual({ status: 200, text: "" });
    expect((await pending).json()).toEqual([]);
    expect(consul.checks.size).toBe(0);
    expect((await put(consul, "/v1/agent/service/deregister/a")).status).toBe(404);
  });

  it("enforces an ACL token from X-Consul-Token, a bearer header or ?token", async () => {
    const consul = await fake({ token: "s3cret" });
    expect(await health(consul).then((r) => [r.status, r.text])).toEqual([403, "Permission denied"]);
    expect(await health(consul, "", { "x-consul-token": "wrong" }).then((r) => [r.status, r.text])).toEqual([
      403,
      "ACL not found",
    ]);
    expect((await health(consul, "", { "x-consul-token": "s3cret" })).status).toBe(200);
    expect((await health(consul, "", { authorization: "Bearer s3cret" })).status).toBe(200);
    expect((await health(consul, "?token=s3cret")).status).toBe(200);
    expect(consul.requests.map((r) => r.token)).toEqual(["s3cret", "s3cret", "s3cret"]);
  });

  it("answers 405 for a wrong method and 404 for an unknown path", async () => {
    const consul = await fake();
    expect((await fetch(`${consul.url}/v1/agent/service/register`)).status).toBe(405);
    expect((await fetch(`${consul.url}/v1/nothing`)).status).toBe(404);
  });
});
