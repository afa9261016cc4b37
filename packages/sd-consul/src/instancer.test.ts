// createConsulInstancer against the fake Consul agent (test-helpers.ts; Consul itself is not installable
// here) and against an injected fetch for answers a real agent rarely gives: blocking queries, index
// handling, filters, failures with the last good set kept, and close().
import { Code, ServiceError } from "@svckit/endpoint";
import type { InstancerState } from "@svckit/sd";
import { type ConsulInstancer, type ConsulInstancerOptions, createConsulInstancer } from "@svckit/sd-consul";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeConsul, startFakeConsul } from "./test-helpers.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fake(options?: Parameters<typeof startFakeConsul>[0]): Promise<FakeConsul> {
  const consul = await startFakeConsul(options);
  cleanups.push(() => consul.close());
  return consul;
}

function instancer(options: ConsulInstancerOptions): ConsulInstancer {
  const created = createConsulInstancer({ wait: 2_000, minBackoff: 10, maxBackoff: 40, ...options });
  cleanups.push(() => created.close());
  return created;
}

const addresses = (state: InstancerState): string[] => state.instances.map((i) => i.address);
const healthQueries = (consul: FakeConsul) => consul.requests.filter((r) => r.path.startsWith("/v1/health/"));

/** A fetch that answers health queries from `answer(n)` (n counts calls from 0) and records the URLs. */
function scripted(answer: (n: number, url: URL) => Response | Promise<Response>) {
  const urls: URL[] = [];
  const fetchFn: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    urls.push(url);
    const n = urls.length - 1;
    if (n > 50) {
      // Park the loop once the test has what it needs, until close() aborts it.
      return new Promise<Response>((_resolve, reject) =>
        init?.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
      );
    }
    return answer(n, url);
  };
  return { fetch: fetchFn, urls };
}

const entry = (id: string, port: number, extra: Record<string, unknown> = {}) => ({
  Node: { Node: "n1", Address: "10.9.0.1" },
  Service: { ID: id, Service: "web", Address: "", Port: port, Tags: [], Meta: {}, ...extra },
  Checks: [],
});
const json = (body: unknown, index: string | null, status = 200): Response =>
  new Response(JSON.stringify(body), { status, headers: index === null ? {} : { "x-consul-index": index } });

describe("createConsulInstancer", () => {
  it("lists passing instances, then follows changes with blocking queries", async () => {
    const consul = await fake();
    consul.register({
      ID: "a",
      Name: "web",
      Address: "10.0.0.1",
      Port: 80,
      Meta: { zone: "eu" },
      Weights: { Passing: 5 },
    });
    consul.register({ ID: "b", Name: "web", Port: 81 }); // no address: the node's
    consul.register({ ID: "c", Name: "web", Address: "10.0.0.3", Port: 82, Check: { TTL: "10s" } }); // critical
    const watcher = instancer({ url: consul.url, service: "web" });
    const state = await watcher.ready();
    expect(state.error).toBeUndefined();
    expect(state.instances).toEqual([
      { address: "10.0.0.1:80", metadata: { zone: "eu" }, weight: 5 },
      { address: "127.0.0.1:81", weight: 1 },
    ]);
    const seen: string[][] = [];
    watcher.subscribe((s) => seen.push(addresses(s)));

    await expect.poll(() => consul.waiting).toBe(1);
    consul.setCheck("service:c", "passing");
    await expect
      .poll(() => addresses(watcher.current()))
      .toEqual(["10.0.0.1:80", "127.0.0.1:81", "10.0.0.3:82"]);
    consul.deregister("a");
    await expect.poll(() => addresses(watcher.current())).toEqual(["127.0.0.1:81", "10.0.0.3:82"]);
    expect(seen).toEqual([
      ["10.0.0.1:80", "127.0.0.1:81"],
      ["10.0.0.1:80", "127.0.0.1:81", "10.0.0.3:82"],
      ["127.0.0.1:81", "10.0.0.3:82"],
    ]);

    const queries = healthQueries(consul);
    expect(queries[0]?.query.get("passing")).toBe("true");
    expect(queries[0]?.query.has("index")).toBe(false);
    expect(queries[0]?.query.has("wait")).toBe(false);
    expect(queries[1]?.query.get("index")).toBe(String(Number(queries[1]?.query.get("index"))));
    expect(Number(queries[1]?.query.get("index"))).toBeGreaterThan(0);
    expect(queries[1]?.query.get("wait")).toBe("2000ms");
  });

  it("with passingOnly: false lists every instance, weighing warning ones by Weights.Warning", async () => {
    const consul = await fake();
    consul.register({
      ID: "a",
      Name: "web",
      Port: 1,
      Weights: { Passing: 4, Warning: 1 },
      Check: { TTL: "10s", Status: "warning" },
    });
    consul.register({ ID: "b", Name: "web", Port: 2, Check: { TTL: "10s" } });
    const all = instancer({ url: consul.url, service: "web", passingOnly: false });
    expect((await all.ready()).instances).toEqual([
      { address: "127.0.0.1:1", weight: 1 },
      { address: "127.0.0.1:2", weight: 1 },
    ]);
    consul.setCheck("service:a", "passing");
    await expect.poll(() => all.current().instances[0]?.weight).toBe(4);
    expect(healthQueries(consul)[0]?.query.has("passing")).toBe(false);
    // The node going critical hides everything from ?passing queries.
    const passing = instancer({ url: consul.url, service: "web" });
    expect(addresses(await passing.ready())).toEqual(["127.0.0.1:1"]);
    consul.setNodeHealth("critical");
    await expect.poll(() => passing.current().instances).toEqual([]);
    expect(passing.current().error).toBeUndefined();
  });

  it("filters on every tag, in the query and on the answer, and asks the given datacenter", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1, Tags: ["v2", "eu"] });
    consul.register({ ID: "b", Name: "web", Port: 2, Tags: ["v2"] });
    const tagged = instancer({ url: consul.url, service: "web", tags: ["v2", "eu"], datacenter: "dc1" });
    expect(addresses(await tagged.ready())).toEqual(["127.0.0.1:1"]);
    expect(healthQueries(consul)[0]?.query.getAll("tag")).toEqual(["v2", "eu"]);
    expect(healthQueries(consul)[0]?.query.get("dc")).toBe("dc1");

    // An agent that ignores the tag parameter still gets filtered.
    const lax = scripted((n) =>
      n === 0
        ? json([entry("a", 1, { Tags: ["v2", "eu"] }), entry("b", 2, { Tags: ["eu"] })], "5")
        : json([], "6"),
    );
    const filtered = instancer({ url: "http://consul.test", fetch: lax.fetch, service: "web", tags: ["v2"] });
    expect(addresses(await filtered.ready())).toEqual(["10.9.0.1:1"]);
  });

  it("keeps the last good set on errors, reports them, backs off and recovers", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1 });
    const watcher = instancer({ url: consul.url, service: "web", wait: 150 });
    await watcher.ready();
    const states: InstancerState[] = [];
    watcher.subscribe((s) => states.push(s));
    consul.failNext(3);
    await expect.poll(() => watcher.current().error).toBeInstanceOf(ServiceError);
    const failed = watcher.current();
    expect(addresses(failed)).toEqual(["127.0.0.1:1"]);
    expect((failed.error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect(failed.error?.message).toBe(
      "consul instancer: health query for web failed: HTTP 500: rpc error: No cluster leader",
    );
    await expect.poll(() => watcher.current().error).toBeUndefined();
    expect(addresses(watcher.current())).toEqual(["127.0.0.1:1"]);
    // One error state (the repeated message is not told again), then the recovery.
    expect(states.map((s) => s.error?.message)).toEqual([
      undefined,
      "consul instancer: health query for web failed: HTTP 500: rpc error: No cluster leader",
      undefined,
    ]);
    expect(states.every((s) => s.instances.length === 1)).toBe(true);

    consul.dropNext(1);
    await expect
      .poll(() => watcher.current().error?.message)
      .toMatch(/^consul instancer: health query for web failed: fetch failed/);
    expect(addresses(watcher.current())).toEqual(["127.0.0.1:1"]);
    await expect.poll(() => watcher.current().error).toBeUndefined();
  });

  it("backs off between failures: minBackoff doubling up to maxBackoff", async () => {
    const stamps: number[] = [];
    const failing = scripted(() => {
      stamps.push(Date.now());
      return new Response("no leader", { status: 500 });
    });
    const watcher = instancer({
      url: "http://consul.test",
      fetch: failing.fetch,
      service: "web",
      minBackoff: 40,
      maxBackoff: 160,
    });
    await expect.poll(() => stamps.length, { timeout: 3_000 }).toBeGreaterThanOrEqual(6);
    watcher.close();
    const gaps = stamps.slice(1, 6).map((t, i) => t - (stamps[i] ?? 0));
    // Half jitter: each delay is between half and all of 40, 80, 160, 160, 160 ms.
    const ceilings = [40, 80, 160, 160, 160];
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual((ceilings[i] ?? 0) / 2 - 5);
      expect(gap).toBeLessThan((ceilings[i] ?? 0) + 60);
    });
  });

  it("resets the index to 0 when it goes backwards, and keeps following after", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1 });
    const watcher = instancer({ url: consul.url, service: "web" });
    await watcher.ready();
    await expect.poll(() => consul.waiting).toBe(1);
    const high = Number(healthQueries(consul).at(-1)?.query.get("index"));
    expect(high).toBeGreaterThan(2);
    consul.resetIndex(2);
    await expect.poll(() => consul.waiting).toBe(1);
    const indexes = healthQueries(consul).map((r) => r.query.get("index"));
    // ..., high (woken with index 2 < high) → a query without index → blocking on 2.
    expect(indexes.slice(-3)).toEqual([String(high), null, "2"]);
    consul.register({ ID: "b", Name: "web", Port: 2 });
    await expect.poll(() => addresses(watcher.current())).toEqual(["127.0.0.1:1", "127.0.0.1:2"]);
    expect(watcher.current().error).toBeUndefined();
  });

  it("treats an index that is not above 0 as 1", async () => {
    const script = scripted((n) => json([entry("a", 1)], n === 0 ? "0" : "7"));
    const watcher = instancer({ url: "http://consul.test", fetch: script.fetch, service: "web" });
    expect(addresses(await watcher.ready())).toEqual(["10.9.0.1:1"]);
    await expect.poll(() => script.urls.length).toBeGreaterThanOrEqual(3);
    expect(script.urls[0]?.searchParams.get("index")).toBeNull();
    expect(script.urls[1]?.searchParams.get("index")).toBe("1");
    expect(script.urls[2]?.searchParams.get("index")).toBe("7");
  });

  it.each([
    ["no X-Consul-Index", () => json([], null), "the answer has no valid X-Consul-Index header (got null)"],
    [
      "a bad X-Consul-Index",
      () => json([], "-3"),
      'the answer has no valid X-Consul-Index header (got "-3")',
    ],
    [
      "a body that is not JSON",
      () => new Response("<html>", { headers: { "x-consul-index": "3" } }),
      /^the answer is not JSON: /,
    ],
    ["a body that is not an array", () => json({ a: 1 }, "3"), "the answer is not a JSON array"],
  ])("reports an answer with %s as INTERNAL", async (_what, answer, message) => {
    const script = scripted(answer);
    const watcher = instancer({ url: "http://consul.test", fetch: script.fetch, service: "web" });
    const state = await watcher.ready();
    expect(state.error).toBeInstanceOf(ServiceError);
    expect((state.error as ServiceError).code).toBe(Code.INTERNAL);
    const text = state.error?.message.replace("consul instancer: health query for web failed: ", "");
    if (typeof message === "string") expect(text).toBe(message);
    else expect(text).toMatch(message);
  });

  it("skips malformed entries, telling onError, and formats IPv6 addresses", async () => {
    const errors: string[] = [];
    const script = scripted(() =>
      json(
        [
          entry("ok", 1),
          entry("v6", 2, { Address: "fd00::7" }),
          entry("noport", Number.NaN),
          { Node: {}, Service: { ID: "noaddr", Port: 3 } },
          { Node: {} },
        ],
        "3",
      ),
    );
    const watcher = createConsulInstancer({
      url: "http://consul.test",
      fetch: script.fetch,
      service: "web",
      onError: (error) => errors.push(error.message),
    });
    cleanups.push(() => watcher.close());
    expect(addresses(await watcher.ready())).toEqual(["10.9.0.1:1", "[fd00::7]:2"]);
    expect(errors).toEqual([
      "consul instancer: skipping an entry of web: service noport has no valid port (got null)",
      "consul instancer: skipping an entry of web: service noaddr has no address and neither has its node",
      "consul instancer: skipping an entry of web: it has no Service object",
    ]);
  });

  it("skips an entry with port 0 (a service registered without a port), telling onError", async () => {
    const consul = await fake();
    consul.register({ ID: "ok", Name: "web", Address: "10.0.0.1", Port: 80 });
    consul.register({ ID: "noport", Name: "web", Address: "10.0.0.2" }); // Consul stores and sends Port 0
    const errors: Error[] = [];
    const watcher = instancer({ url: consul.url, service: "web", onError: (error) => errors.push(error) });
    expect(addresses(await watcher.ready())).toEqual(["10.0.0.1:80"]);
    expect(errors.map((e) => e.message)).toEqual([
      "consul instancer: skipping an entry of web: service noport has no valid port (got 0)",
    ]);
    expect(errors[0]).toBeInstanceOf(ServiceError);
    expect((errors[0] as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
  });

  it("sends the ACL token; a refused token is PERMISSION_DENIED in the state", async () => {
    const consul = await fake({ token: "s3cret" });
    consul.register({ ID: "a", Name: "web", Port: 1 });
    const ok = instancer({ url: consul.url, token: "s3cret", service: "web" });
    expect(addresses(await ok.ready())).toEqual(["127.0.0.1:1"]);
    const denied = instancer({ url: consul.url, token: "wrong", service: "web" });
    const state = await denied.ready();
    expect((state.error as ServiceError).code).toBe(Code.PERMISSION_DENIED);
    expect(state.error?.message).toBe(
      "consul instancer: health query for web failed: HTTP 403: ACL not found",
    );
  });

  it("reports a hung agent as DEADLINE_EXCEEDED and an absent one as UNAVAILABLE", async () => {
    const consul = await fake();
    consul.freeze();
    const hung = instancer({ url: consul.url, service: "web", requestTimeout: 100 });
    const state = await hung.ready();
    expect((state.error as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(state.error?.message).toBe(
      "consul instancer: health query for web failed: no answer within 100 ms",
    );
    hung.close();
    consul.thaw();
    const url = consul.url;
    await consul.close();
    const absent = instancer({ url, service: "web" });
    const gone = await absent.ready();
    expect((gone.error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect(gone.error?.message).toMatch(
      /^consul instancer: health query for web failed: fetch failed \(.*ECONNREFUSED.*\)$/,
    );
    expect(gone.instances).toEqual([]);
  });

  it("close() aborts the blocking query and sends nothing more", async () => {
    const consul = await fake();
    consul.register({ ID: "a", Name: "web", Port: 1 });
    const watcher = createConsulInstancer({ url: consul.url, service: "web", wait: "5m" });
    await watcher.ready();
    await expect.poll(() => consul.waiting).toBe(1);
    watcher.close();
    await expect.poll(() => consul.waiting).toBe(0);
    const count = consul.requests.length;
    consul.register({ ID: "b", Name: "web", Port: 2 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(consul.requests.length).toBe(count);
    expect(addresses(watcher.current())).toEqual(["127.0.0.1:1"]);
    expect(await watcher.ready()).toEqual({ instances: [{ address: "127.0.0.1:1", weight: 1 }] });
  });

  it("close() during a backoff stops the loop; ready() resolves on close before any answer", async () => {
    const failing = scripted(() => new Response("x", { status: 500 }));
    const backingOff = createConsulInstancer({
      url: "http://c.test",
      fetch: failing.fetch,
      service: "web",
      minBackoff: 60_000,
      maxBackoff: 60_000,
    });
    await backingOff.ready();
    backingOff.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(failing.urls.length).toBe(1);

    const never = scripted(() => new Promise<Response>(() => undefined));
    const waiting = createConsulInstancer({ url: "http://c.test", fetch: never.fetch, service: "web" });
    waiting.close();
    expect(await waiting.ready()).toEqual({ instances: [] });
  });

  it("tells onError when a listener throws and keeps following", async () => {
    const consul = await fake();
    const errors: string[] = [];
    const watcher = createConsulInstancer({
      url: consul.url,
      service: "web",
      wait: 2_000,
      onError: (error) => errors.push(error.message),
    });
    cleanups.push(() => watcher.close());
    await watcher.ready();
    watcher.subscribe((s) => {
      if (s.instances.length === 1) throw new Error("listener broke");
    });
    await expect.poll(() => consul.waiting).toBe(1);
    consul.register({ ID: "a", Name: "web", Port: 1 });
    await expect.poll(() => errors).toEqual(["listener broke"]);
    consul.register({ ID: "b", Name: "web", Port: 2 });
    await expect.poll(() => watcher.current().instances.length).toBe(2);
  });

  const base = { service: "web" };
  it.each([
    [{ service: "" }, TypeError, 'createConsulInstancer: service must be a non-empty string, got ""'],
    [{ ...base, tags: "v2" }, TypeError, "createConsulInstancer: tags must be an array of non-empty strings"],
    [{ ...base, passingOnly: "yes" }, TypeError, "createConsulInstancer: passingOnly must be a boolean"],
    [
      { ...base, datacenter: "" },
      TypeError,
      'createConsulInstancer: datacenter must be a non-empty string, got ""',
    ],
    [
      { ...base, wait: "forever" },
      RangeError,
      'createConsulInstancer: wait must be a number of ms > 0 or a duration such as "10s", got "forever"',
    ],
    [
      { ...base, minBackoff: 0 },
      RangeError,
      "createConsulInstancer: minBackoff must be a finite number > 0, got 0",
    ],
    [
      { ...base, maxBackoff: 2 ** 31 },
      RangeError,
      "createConsulInstancer: maxBackoff must be at most 2147483647 ms (24.8 days), got 2147483648",
    ],
    [
      { ...base, minBackoff: 100, maxBackoff: 50 },
      RangeError,
      "createConsulInstancer: maxBackoff (50) must not be below minBackoff (100)",
    ],
    [{ ...base, fetch: "fetch" }, TypeError, "createConsulInstancer: fetch must be a function"],
    [{ ...base, token: 5 }, TypeError, "createConsulInstancer: token must be a string"],
  ])("rejects bad options: %j", (options, type, message) => {
    const create = () => createConsulInstancer(options as unknown as ConsulInstancerOptions);
    expect(create).toThrow(type);
    expect(create).toThrow(message);
  });

  it("asks at most once per minBackoff when the answers come at once with an unchanged index", async () => {
    const script = scripted(
      () =>
        new Response(JSON.stringify([entry("web-1", 8080)]), {
          status: 200,
          headers: { "x-consul-index": "42", "content-type": "application/json" },
        }),
    );
    const watcher = instancer({
      url: "http://consul.test",
      fetch: script.fetch,
      service: "web",
      wait: 60_000,
      minBackoff: 100,
      maxBackoff: 1_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 550));
    watcher.close();
    // Without pacing this loop made thousands of requests a second (the fetch parks it after 51).
    expect(script.urls.length).toBeGreaterThanOrEqual(2);
    expect(script.urls.length).toBeLessThanOrEqual(8);
  });
});
