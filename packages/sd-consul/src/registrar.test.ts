// createConsulRegistrar against the fake Consul agent (test-helpers.ts; Consul itself is not installable
// here): what it sends, TTL reports, re-registration when the agent forgets it, errors and options.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, MAX_TIMER_MS, ServiceError } from "@svckit/endpoint";
import { type ConsulRegistrarOptions, createConsulInstancer, createConsulRegistrar } from "@svckit/sd-consul";
import { afterEach, describe, expect, it, vi } from "vitest";
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

async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}

describe("createConsulRegistrar", () => {
  it("registers with ID, Name, Address, Port, Tags, Meta, Weights and an HTTP check, and deregisters", async () => {
    const consul = await fake();
    const registrar = createConsulRegistrar({
      url: consul.url,
      name: "users",
      id: "users-1",
      address: "10.0.0.7",
      port: 8080,
      tags: ["v2", "eu"],
      meta: { zone: "eu-1" },
      weights: { passing: 10, warning: 2 },
      check: {
        http: "http://10.0.0.7:8080/health",
        interval: "10s",
        timeout: 1_500,
        method: "HEAD",
        tlsSkipVerify: true,
        deregisterCriticalServiceAfter: "1m",
      },
    });
    expect(registrar.id).toBe("users-1");
    expect(registrar.checkId).toBe("service:users-1");
    await registrar.register();
    expect(registrar.registered).toBe(true);
    const request = consul.requests.at(-1);
    expect(request?.method).toBe("PUT");
    expect(request?.path).toBe("/v1/agent/service/register");
    expect(request?.query.get("replace-existing-checks")).toBe("true");
    expect(request?.body).toEqual({
      ID: "users-1",
      Name: "users",
      Address: "10.0.0.7",
      Port: 8080,
      Tags: ["v2", "eu"],
      Meta: { zone: "eu-1" },
      Weights: { Passing: 10, Warning: 2 },
      Check: {
        CheckID: "service:users-1",
        Name: "Service 'users' check",
        HTTP: "http://10.0.0.7:8080/health",
        Interval: "10s",
        Timeout: "1500ms",
        Method: "HEAD",
        TLSSkipVerify: true,
        DeregisterCriticalServiceAfter: "1m",
      },
    });
    expect(consul.services.get("users-1")?.Tags).toEqual(["v2", "eu"]);

    await registrar.deregister();
    expect(registrar.registered).toBe(false);
    expect(consul.requests.at(-1)?.path).toBe("/v1/agent/service/deregister/users-1");
    expect(consul.services.size).toBe(0);
    const count = consul.requests.length;
    await registrar.deregister(); // not registered: nothing sent
    expect(consul.requests.length).toBe(count);
  });

  it("sends a minimal registration with a default id and no check", async () => {
    const consul = await fake();
    const registrar = createConsulRegistrar({
      url: consul.url,
      name: "users",
      address: "10.0.0.8",
      port: 81,
    });
    expect(registrar.id).toBe("users-10.0.0.8-81");
    expect(registrar.checkId).toBeUndefined();
    await registrar.register();
    expect(consul.requests.at(-1)?.body).toEqual({
      ID: "users-10.0.0.8-81",
      Name: "users",
      Address: "10.0.0.8",
      Port: 81,
    });
  });

  it("is listed once its HTTP check passes on the agent", async () => {
    const target = http.createServer((_req, res) => res.writeHead(200).end("ok"));
    cleanups.push(() => new Promise((resolve) => target.close(resolve)));
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const port = (target.address() as AddressInfo).port;
    const consul = await fake();
    const registrar = createConsulRegistrar({
      url: consul.url,
      name: "web",
      address: "127.0.0.1",
      port,
      check: { http: `http://127.0.0.1:${port}/health`, interval: 50 },
    });
    await registrar.register();
    const instancer = createConsulInstancer({ url: consul.url, service: "web", wait: 2_000 });
    cleanups.push(() => instancer.close());
    await expect
      .poll(() => instancer.current().instances.map((i) => i.address))
      .toEqual([`127.0.0.1:${port}`]);
  });

  it("keeps a TTL check passing by reporting it, and stops when deregistered", async () => {
    const consul = await fake();
    const registrar = createConsulRegistrar({
      url: consul.url,
      name: "web",
      id: "w1",
      port: 1,
      check: { ttl: "300ms", deregisterCriticalServiceAfter: "90s" },
    });
    await registrar.register();
    expect(consul.requests[0]?.body).toMatchObject({
      Check: {
        CheckID: "service:w1",
        TTL: "300ms",
        Status: "passing",
        DeregisterCriticalServiceAfter: "90s",
      },
    });
    expect(consul.checks.get("service:w1")?.Status).toBe("passing");
    // Well past the TTL: still passing thanks to the reports every 100 ms.
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(consul.checks.get("service:w1")?.Status).toBe("passing");
    const passes = consul.requests.filter((r) => r.path === "/v1/agent/check/pass/service:w1").length;
    expect(passes).toBeGreaterThanOrEqual(4);
    expect(passes).toBeLessThanOrEqual(8);
    await registrar.deregister();
    const after = consul.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(consul.requests.length).toBe(after);
  });

  it("registers again when the agent forgot the check, telling onError", async () => {
    const consul = await fake();
    const errors: ServiceError[] = [];
    const registrar = createConsulRegistrar({
      url: consul.url,
      name: "web",
      id: "w2",
      port: 1,
      check: { ttl: "1s", refresh: 50 },
      onError: (error) => errors.push(error),
    });
    await registrar.register();
    consul.deregister("w2"); // as an agent that lost its state would
    await expect.poll(() => consul.services.has("w2")).toBe(true);
    expect(errors[0]).toBeInstanceOf(ServiceError);
    expect(errors[0]?.code).toBe(Code.NOT_FOUND);
    expect(errors[0]?.message).toBe(
      'consul registrar: cannot report service:w2 passing: HTTP 404: Unknown check ID "service:w2". Ensure that the check ID is passed, not the check name.',
    );
    expect(consul.checks.get("service:w2")?.Status).toBe("passing");
    await registrar.deregister();
  });

  it("tells onError of failed TTL reports and keeps reporting", async () => {
    const consul = await fake();
    const errors: string[] = [];
    const registrar = createConsulRegistrar({
      url: consul.url,
      name: "web",
      id: "w3",
      port: 1,
      check: { ttl: "2s", refresh: 40 },
      onError: (error) => {
        errors.push(error.message);
        throw new Error("onError may throw");
      },
    });
    await registrar.register();
    consul.failNext(2);
    await expect.poll(() => errors.length).toBe(2);
    expect(errors[0]).toBe(
      "consul registrar: cannot report service:w3 passing: HTTP 500: rpc error: No cluster leader",
    );
    const count = consul.requests.length;
    await expect.poll(() => consul.requests.length).toBeGreaterThan(count);
    await registrar.deregister();
  });

  it("sends the ACL token and reports a refusal as PERMISSION_DENIED", async () => {
    const consul = await fake({ token: "s3cret" });
    const ok = createConsulRegistrar({ url: consul.url, token: "s3cret", name: "web", port: 1 });
    await ok.register();
    expect(consul.requests.at(-1)?.token).toBe("s3cret");
    const denied = createConsulRegistrar({ url: consul.url, token: "nope", name: "web", port: 1 });
    const error = await rejection(denied.register());
    expect(error.code).toBe(Code.PERMISSION_DENIED);
    expect(error.message).toBe("consul registrar: cannot register web-agent-1: HTTP 403: ACL not found");
    expect(denied.registered).toBe(false);
    const anonymous = createConsulRegistrar({ url: consul.url, name: "web", port: 1 });
    expect((await rejection(anonymous.register())).message).toBe(
      "consul registrar: cannot register web-agent-1: HTTP 403: Permission denied",
    );
  });

  it("rejects with UNAVAILABLE when the agent is unreachable and DEADLINE_EXCEEDED when it hangs", async () => {
    const consul = await fake();
    const url = consul.url;
    consul.freeze();
    const slow = createConsulRegistrar({ url, name: "web", port: 1, requestTimeout: 150 });
    const timeout = await rejection(slow.register());
    expect(timeout.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(timeout.message).toBe("consul registrar: cannot register web-agent-1: no answer within 150 ms");
    consul.thaw();
    await consul.close();

    const gone = createConsulRegistrar({ url, name: "web", port: 1 });
    const error = await rejection(gone.register());
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toMatch(
      /^consul registrar: cannot register web-agent-1: fetch failed \(.*ECONNREFUSED.*\)$/,
    );
  });

  it("maps Consul's answers to codes: 400 INVALID_ARGUMENT, 5xx UNAVAILABLE, and uses the injected fetch", async () => {
    const calls: { url: string; init: RequestInit | undefined }[] = [];
    let status = 400;
    const fakeFetch: typeof fetch = async (input, init) => {
      calls.push({ url: String(input), init });
      return new Response(status === 200 ? "" : "Invalid check: TTL must be > 0", { status });
    };
    const registrar = createConsulRegistrar({
      url: "http://consul.test:8500/",
      fetch: fakeFetch,
      token: "t",
      name: "web",
      port: 1,
    });
    const invalid = await rejection(registrar.register());
    expect(invalid.code).toBe(Code.INVALID_ARGUMENT);
    expect(invalid.message).toBe(
      "consul registrar: cannot register web-agent-1: HTTP 400: Invalid check: TTL must be > 0",
    );
    expect(calls[0]?.url).toBe(
      "http://consul.test:8500/v1/agent/service/register?replace-existing-checks=true",
    );
    expect(calls[0]?.init?.method).toBe("PUT");
    expect(calls[0]?.init?.headers).toMatchObject({
      "x-consul-token": "t",
      "content-type": "application/json",
    });
    status = 503;
    expect((await rejection(registrar.register())).code).toBe(Code.UNAVAILABLE);
    status = 200;
    await registrar.register();
    status = 500;
    const error = await rejection(registrar.deregister());
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toBe(
      "consul registrar: cannot deregister web-agent-1: HTTP 500: Invalid check: TTL must be > 0",
    );
    expect(calls.at(-1)?.url).toBe("http://consul.test:8500/v1/agent/service/deregister/web-agent-1");
  });

  it("deregisters again after a failed deregister, and after a register whose answer was lost", async () => {
    const calls: string[] = [];
    const answers: number[] = [];
    const fakeFetch: typeof fetch = async (input) => {
      calls.push(new URL(String(input)).pathname);
      return new Response("", { status: answers.shift() ?? 200 });
    };
    const registrar = createConsulRegistrar({
      url: "http://consul.test:8500/",
      fetch: fakeFetch,
      name: "web",
      port: 1,
    });
    await registrar.register();
    answers.push(500);
    expect((await rejection(registrar.deregister())).code).toBe(Code.UNAVAILABLE);
    expect(registrar.registered).toBe(true);
    await registrar.deregister(); // was a no-op: the service stayed on the agent
    expect(registrar.registered).toBe(false);
    // A register the agent may have applied though its answer failed: deregister still asks.
    answers.push(503);
    expect((await rejection(registrar.register())).code).toBe(Code.UNAVAILABLE);
    await registrar.deregister();
    await registrar.deregister(); // nothing left to remove: no request
    expect(calls).toEqual([
      "/v1/agent/service/register",
      "/v1/agent/service/deregister/web-agent-1",
      "/v1/agent/service/deregister/web-agent-1",
      "/v1/agent/service/register",
      "/v1/agent/service/deregister/web-agent-1",
    ]);
  });

  it("deregisters a service the agent already reaped: its 404 counts as done", async () => {
    const consul = await fake();
    const registrar = createConsulRegistrar({
      url: consul.url,
      name: "web",
      id: "w4",
      port: 1,
      check: { http: "http://127.0.0.1:1/health", interval: "1h", deregisterCriticalServiceAfter: "1m" },
    });
    await registrar.register();
    consul.deregister("w4"); // as the agent's reaper does once the check was critical for a minute
    await registrar.deregister();
    expect(registrar.registered).toBe(false);
    expect(consul.requests.at(-1)?.path).toBe("/v1/agent/service/deregister/w4");
    const count = consul.requests.length;
    await registrar.deregister(); // nothing left to remove: no request
    expect(consul.requests.length).toBe(count);
  });

  it.each([
    [400, "Invalid check: TTL must be > 0 for TTL checks", Code.INVALID_ARGUMENT],
    [403, "Permission denied", Code.PERMISSION_DENIED],
  ])(
    "deregisters after a register the agent refused with %i: its 404 counts as done",
    async (status, body, code) => {
      const consul = await fake();
      const registrar = createConsulRegistrar({ url: consul.url, name: "web", id: "w5", port: 1 });
      consul.failNext(1, status, body);
      expect((await rejection(registrar.register())).code).toBe(code);
      await registrar.deregister();
      expect(registrar.registered).toBe(false);
      expect(consul.requests.map((r) => r.path)).toEqual(["/v1/agent/service/deregister/w5"]);
      await registrar.deregister();
      expect(consul.requests).toHaveLength(1);
    },
  );

  it("still rejects a deregister the agent refuses for another reason (403)", async () => {
    const calls: string[] = [];
    const fakeFetch: typeof fetch = async (input) => {
      calls.push(new URL(String(input)).pathname);
      return calls.length === 1 ? new Response("") : new Response("ACL not found", { status: 403 });
    };
    const registrar = createConsulRegistrar({
      url: "http://consul.test",
      fetch: fakeFetch,
      name: "web",
      port: 1,
    });
    await registrar.register();
    expect((await rejection(registrar.deregister())).code).toBe(Code.PERMISSION_DENIED);
    expect(registrar.registered).toBe(true);
  });

  it("still rejects a 404 that is not the agent's unknown-service answer (a proxy, a wrong base path)", async () => {
    const calls: string[] = [];
    const fakeFetch: typeof fetch = async (input) => {
      calls.push(new URL(String(input)).pathname);
      return calls.length === 1
        ? new Response("")
        : new Response("<html><body><h1>404 Not Found</h1>nginx</body></html>", { status: 404 });
    };
    const registrar = createConsulRegistrar({
      url: "http://consul.test",
      fetch: fakeFetch,
      name: "web",
      port: 1,
    });
    await registrar.register();
    expect((await rejection(registrar.deregister())).code).toBe(Code.NOT_FOUND);
    expect(registrar.registered).toBe(true);
    await rejection(registrar.deregister()); // tried again, not forgotten
    expect(calls).toHaveLength(3);
  });

  it("caps the default TTL refresh (ttl / 3) at MAX_TIMER_MS instead of reporting every 1 ms", async () => {
    vi.useFakeTimers();
    try {
      const passes: string[] = [];
      const fakeFetch: typeof fetch = async (input) => {
        const path = decodeURIComponent(new URL(String(input)).pathname);
        if (path.startsWith("/v1/agent/check/pass/")) passes.push(path);
        return new Response("");
      };
      const registrar = createConsulRegistrar({
        url: "http://consul.test",
        fetch: fakeFetch,
        name: "web",
        id: "w6",
        port: 1,
        check: { ttl: "2000h" }, // a third is 2.4e9 ms, more than a timer can wait
      });
      await registrar.register();
      // Node (and the fake clock) fire a timer longer than MAX_TIMER_MS after 1 ms.
      await vi.advanceTimersByTimeAsync(200);
      expect(passes).toEqual([]);
      await vi.advanceTimersByTimeAsync(MAX_TIMER_MS - 200);
      expect(passes).toEqual(["/v1/agent/check/pass/service:w6"]);
      await registrar.deregister();
    } finally {
      vi.useRealTimers();
    }
  });

  const base: ConsulRegistrarOptions = { name: "web", port: 1 };
  it.each([
    [{ ...base, name: "" }, TypeError, 'createConsulRegistrar: name must be a non-empty string, got ""'],
    [{ ...base, id: "" }, TypeError, 'createConsulRegistrar: id must be a non-empty string, got ""'],
    [
      { ...base, url: "consul:8500" },
      TypeError,
      'createConsulRegistrar: url must be an http(s) URL, got "consul:8500"',
    ],
    [
      { ...base, url: "not a url" },
      TypeError,
      'createConsulRegistrar: url must be an http(s) URL, got "not a url"',
    ],
    [
      { ...base, port: 70_000 },
      RangeError,
      "createConsulRegistrar: port must be a whole number from 0 to 65535, got 70000",
    ],
    [
      { ...base, tags: ["a", ""] },
      TypeError,
      "createConsulRegistrar: tags must be an array of non-empty strings",
    ],
    [
      { ...base, meta: { a: 1 } },
      TypeError,
      'createConsulRegistrar: meta must be an object of strings, but "a" is number',
    ],
    [
      { ...base, weights: { passing: 0 } },
      RangeError,
      "createConsulRegistrar: weights.passing must be a whole number >= 1, got 0",
    ],
    [
      { ...base, requestTimeout: 0 },
      RangeError,
      "createConsulRegistrar: requestTimeout must be a finite number > 0, got 0",
    ],
    [
      { ...base, check: {} },
      TypeError,
      "createConsulRegistrar: check needs http (an HTTP check) or ttl (a TTL check)",
    ],
    [
      { ...base, check: { ttl: "10s", http: "http://x/" } },
      TypeError,
      "createConsulRegistrar: check has both http and ttl: pick one",
    ],
    [
      { ...base, check: { ttl: "10 seconds" } },
      RangeError,
      'createConsulRegistrar: check.ttl must be a number of ms > 0 or a duration such as "10s", got "10 seconds"',
    ],
    [
      { ...base, check: { ttl: "10s", refresh: "10s" } },
      RangeError,
      "createConsulRegistrar: check.refresh (10000 ms) must be shorter than check.ttl (10000 ms)",
    ],
    [
      { ...base, check: { ttl: "2000h", refresh: "700h" } },
      RangeError,
      "createConsulRegistrar: check.refresh must be at most 2147483647 ms (24.8 days), got 2520000000",
    ],
    [
      { ...base, check: { http: "ftp://x/" } },
      TypeError,
      'createConsulRegistrar: check.http must be an http(s) URL, got "ftp://x/"',
    ],
    [
      { ...base, check: { http: "http://x/", interval: -5 } },
      RangeError,
      'createConsulRegistrar: check.interval must be a number of ms > 0 or a duration such as "10s", got -5',
    ],
  ])("rejects bad options: %j", (options, type, message) => {
    const create = () => createConsulRegistrar(options as ConsulRegistrarOptions);
    expect(create).toThrow(type);
    expect(create).toThrow(message);
  });

  it("rejects missing options", () => {
    expect(() => createConsulRegistrar(undefined as never)).toThrow(
      new TypeError("createConsulRegistrar: options are required"),
    );
  });
});
