import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createCircuitBreaker } from "@svckit/circuitbreaker";
import {
  Code,
  type CodeName,
  type Context,
  codeNames,
  createContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  type BreakerState,
  createMetrics,
  defaultBuckets,
  type MetricsRegistry,
  type ObservableBreaker,
} from "@svckit/metrics";
import { createRateLimiter } from "@svckit/ratelimit";
import {
  createHttpClient,
  createHttpHandler,
  createRouter,
  encodeJsonRequest,
  encodeJsonResponse,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import express from "express";
import fc from "fast-check";
import {
  AggregatorRegistry,
  Counter,
  type Gauge,
  Histogram,
  type OpenMetricsContentType,
  Registry,
  register,
} from "prom-client";
import { afterEach, describe, expect, it, vi } from "vitest";

// ---------------------------------------------------------------------------------------------------
// Helpers

interface Sample {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

/** Every sample of metric `name` (histograms: buckets, sum and count), read through prom-client. */
async function samples(registry: MetricsRegistry, name: string): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return [];
  const data = await metric.get();
  return data.values.map((v) => ({
    metricName: (v as { metricName?: string }).metricName ?? name,
    labels: { ...v.labels } as Record<string, string | number>,
    value: v.value,
  }));
}

/** The value of the sample of `metricName` whose labels are exactly `labels`. */
async function sample(
  registry: MetricsRegistry,
  name: string,
  labels: Record<string, string>,
  metricName = name,
): Promise<number | undefined> {
  const all = await samples(registry, name);
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = all.filter(
    (s) =>
      s.metricName === metricName &&
      JSON.stringify(
        Object.entries(s.labels)
          .map(([k, v]) => [k, String(v)])
          .sort(),
      ) === want,
  );
  expect(found.length).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

const httpCall = (method = "POST", route?: string): Context =>
  createContext({ callInfo: { transport: "http", method, route } });

const servers = new Set<http.Server>();
afterEach(async () => {
  vi.restoreAllMocks();
  vi.useRealTimers();
  await Promise.all(
    [...servers].map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
  servers.clear();
});

async function listen(listener: http.RequestListener): Promise<string> {
  const server = http.createServer(listener);
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A breaker as `@svckit/circuitbreaker` shapes it, driven by hand. */
function fakeBreaker(name: string, state: BreakerState = "closed") {
  const listeners = new Set<(state: BreakerState, previous: BreakerState) => void>();
  const breaker = {
    name,
    state,
    subscribe(listener: (state: BreakerState, previous: BreakerState) => void) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    move(next: BreakerState) {
      const previous = breaker.state;
      breaker.state = next;
      for (const l of listeners) l(next, previous);
    },
    listeners,
  };
  return breaker satisfies ObservableBreaker;
}

/** Runs `promtool check metrics` on `text`; `undefined` when promtool is not installed. */
function promtool(text: string): Promise<{ code: number | null; output: string } | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") resolve(undefined);
      else reject(err);
    });
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(text);
  });
}

const ok: Endpoint<unknown, string> = async () => "ok";

// ---------------------------------------------------------------------------------------------------

describe("createMetrics options", () => {
  it("uses a new registry by default, not prom-client's global one", async () => {
    const metrics = createMetrics();
    expect(metrics.registry).toBeInstanceOf(Registry);
    expect(metrics.registry).not.toBe(register);
    await metrics.middleware({ name: "sum" })(ok)(httpCall(), {});
    expect(register.getSingleMetric("svckit_requests_total")).toBeUndefined();
    expect(createMetrics().registry).not.toBe(metrics.registry);
  });

  it("registers in a given registry with a given prefix and buckets", async () => {
    const registry = new Registry();
    const metrics = createMetrics({ registry, prefix: "shop_", buckets: [0.1, 1] });
    expect(metrics.registry).toBe(registry);
    await metrics.middleware({ name: "sum" })(ok)(httpCall(), {});
    const text = await registry.metrics();
    expect(text).toContain('shop_requests_total{endpoint="sum",kind="server",transport="http",code="OK"} 1');
    expect(text).toContain('shop_request_duration_seconds_bucket{le="0.1",');
    expect(text).toContain('shop_request_duration_seconds_bucket{le="1",');
    expect(text).not.toContain('le="0.001"');
    expect(text).not.toContain("svckit_");
    expect(createMetrics({ prefix: "" }).registry.getSingleMetric("requests_total")).toBeDefined();
  });

  it("has sensible default buckets from 1 ms to 10 s", () => {
    expect(defaultBuckets[0]).toBe(0.001);
    expect(defaultBuckets.at(-1)).toBe(10);
    expect([...defaultBuckets]).toEqual([...defaultBuckets].sort((a, b) => a - b));
    expect(Object.isFrozen(defaultBuckets)).toBe(true);
  });

  it.each([
    [
      { prefix: "9bad" },
      TypeError,
      'createMetrics: prefix must be empty or match [a-zA-Z_:][a-zA-Z0-9_:]*, got "9bad"',
    ],
    [
      { prefix: "a-b" },
      TypeError,
      'createMetrics: prefix must be empty or match [a-zA-Z_:][a-zA-Z0-9_:]*, got "a-b"',
    ],
    [{ buckets: [] }, RangeError, "createMetrics: buckets must not be empty"],
    [{ buckets: [0.1, 0.1] }, RangeError, "createMetrics: buckets must be strictly increasing"],
    [{ buckets: [1, 0.5] }, RangeError, "createMetrics: buckets must be strictly increasing"],
    [{ buckets: [0, 1] }, RangeError, "createMetrics: buckets must be finite numbers > 0, got 0"],
    [
      { buckets: [1, Number.POSITIVE_INFINITY] },
      RangeError,
      "createMetrics: buckets must be finite numbers > 0, got Infinity",
    ],
    [{ buckets: [Number.NaN] }, RangeError, "createMetrics: buckets must be finite numbers > 0, got NaN"],
    [
      { registry: {} as Registry },
      TypeError,
      "createMetrics: registry must be a prom-client Registry (of the same prom-client copy)",
    ],
  ])("rejects %o", (options, type, message) => {
    expect(() => createMetrics(options)).toThrow(type);
    expect(() => createMetrics(options)).toThrow(message);
  });

  it("rejects bad middleware options", () => {
    const metrics = createMetrics();
    const bad = (options: unknown) => () => metrics.middleware(options as { name: string });
    expect(bad(undefined)).toThrow("metrics.middleware: options are required");
    expect(bad({})).toThrow("metrics.middleware: options.name must be a non-empty string");
    expect(bad({ name: "" })).toThrow("metrics.middleware: options.name must be a non-empty string");
    expect(bad({ name: "a", kind: "peer" })).toThrow(
      'metrics.middleware: options.kind must be "server" or "client", got peer',
    );
    expect(bad({ name: "a", transport: "" })).toThrow(
      "metrics.middleware: options.transport must be a non-empty string",
    );
    expect(bad({ name: "a", transport: 7 })).toThrow(TypeError);
  });

  it("shares a registry between two createMetrics with the same prefix, counting into one series", async () => {
    const registry = new Registry();
    const a = createMetrics({ registry });
    const b = createMetrics({ registry });
    await a.middleware({ name: "sum" })(ok)(httpCall(), {});
    await b.middleware({ name: "sum" })(ok)(httpCall(), {});
    const labels = { endpoint: "sum", kind: "server", transport: "http", code: "OK" };
    expect(await sample(registry, "svckit_requests_total", labels)).toBe(2);
    const duration = "svckit_request_duration_seconds";
    expect(await sample(registry, duration, labels, `${duration}_count`)).toBe(2);
    expect(await sample(registry, duration, { ...labels, le: "+Inf" }, `${duration}_bucket`)).toBe(2);
    const pending = deferred<void>();
    const slow = b.middleware({ name: "sum" })(async () => pending.promise);
    const call = slow(httpCall(), {});
    const inFlight = { endpoint: "sum", kind: "server", transport: "http" };
    expect(await sample(registry, "svckit_requests_in_flight", inFlight)).toBe(1);
    pending.resolve();
    await call;
    expect(await sample(registry, "svckit_requests_in_flight", inFlight)).toBe(0);
  });

  it("refuses a registry holding a metric of the same name it did not make", () => {
    const registry = new Registry();
    new Counter({ name: "svckit_requests_total", help: "someone else's", registers: [registry] });
    expect(() => createMetrics({ registry })).toThrow(
      'createMetrics: the registry already has a metric "svckit_requests_total" that this package did not make with the same type and labels; use another prefix or registry',
    );
    expect(() => createMetrics({ registry, prefix: "other_" })).not.toThrow();
  });
});

describe("middleware", () => {
  it("counts calls per code, a thrown non-ServiceError as INTERNAL, and rethrows the original", async () => {
    const metrics = createMetrics();
    const boom = new Error("db down");
    const endpoint = metrics.middleware({ name: "sum" })(async (_ctx, req: { fail?: unknown }) => {
      if (req.fail !== undefined) throw req.fail;
      return "ok";
    });
    await endpoint(httpCall(), {});
    await endpoint(httpCall(), {});
    await expect(endpoint(httpCall(), { fail: new ServiceError(Code.NOT_FOUND, "no") })).rejects.toThrow(
      "no",
    );
    await expect(endpoint(httpCall(), { fail: boom })).rejects.toBe(boom);
    await expect(endpoint(httpCall(), { fail: "a string" })).rejects.toBe("a string");
    const count = (code: CodeName) =>
      sample(metrics.registry, "svckit_requests_total", {
        endpoint: "sum",
        kind: "server",
        transport: "http",
        code,
      });
    expect(await count("OK")).toBe(2);
    expect(await count("NOT_FOUND")).toBe(1);
    expect(await count("INTERNAL")).toBe(2);
    expect(await count("UNKNOWN")).toBeUndefined();
    const codes = (await samples(metrics.registry, "svckit_requests_total")).map((s) => s.labels.code);
    expect(codes.sort()).toEqual(["INTERNAL", "NOT_FOUND", "OK"]);
  });

  it("counts aborts and timeouts as CANCELLED and DEADLINE_EXCEEDED", async () => {
    const metrics = createMetrics();
    const endpoint = metrics.middleware({ name: "e" })(async (_ctx, name: string) => {
      throw new DOMException("stop", name);
    });
    await expect(endpoint(httpCall(), "AbortError")).rejects.toThrow("stop");
    await expect(endpoint(httpCall(), "TimeoutError")).rejects.toThrow("stop");
    const codes = (await samples(metrics.registry, "svckit_requests_total")).map((s) => s.labels.code);
    expect(codes.sort()).toEqual(["CANCELLED", "DEADLINE_EXCEEDED"]);
  });

  it("times calls in seconds into the histogram", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "performance"] });
    const metrics = createMetrics();
    const endpoint = metrics.middleware({ name: "slow" })(
      () => new Promise<string>((resolve) => setTimeout(() => resolve("done"), 30)),
    );
    const call = endpoint(httpCall(), {});
    await vi.advanceTimersByTimeAsync(30);
    await expect(call).resolves.toBe("done");
    const labels = { endpoint: "slow", kind: "server", transport: "http", code: "OK" };
    const name = "svckit_request_duration_seconds";
    expect(await sample(metrics.registry, name, labels, `${name}_count`)).toBe(1);
    expect(await sample(metrics.registry, name, labels, `${name}_sum`)).toBeCloseTo(0.03, 6);
    expect(await sample(metrics.registry, name, { ...labels, le: "0.025" }, `${name}_bucket`)).toBe(0);
    expect(await sample(metrics.registry, name, { ...labels, le: "0.05" }, `${name}_bucket`)).toBe(1);
  });

  it("tracks calls in flight", async () => {
    const metrics = createMetrics();
    const gates = [deferred<string>(), deferred<string>()];
    let i = 0;
    const endpoint = metrics.middleware({ name: "wait" })(
      () => (gates[i++] as { promise: Promise<string> }).promise,
    );
    const labels = { endpoint: "wait", kind: "server", transport: "http" };
    const first = endpoint(httpCall(), {});
    const second = endpoint(httpCall(), {});
    expect(await sample(metrics.registry, "svckit_requests_in_flight", labels)).toBe(2);
    gates[0]?.resolve("a");
    await first;
    expect(await sample(metrics.registry, "svckit_requests_in_flight", labels)).toBe(1);
    gates[1]?.resolve("b");
    await second;
    expect(await sample(metrics.registry, "svckit_requests_in_flight", labels)).toBe(0);
  });

  it("takes a server's transport from the CallInfo, or options, or says none", async () => {
    const metrics = createMetrics();
    const fromInfo = metrics.middleware({ name: "a" })(ok);
    await fromInfo(createContext({ callInfo: { transport: "grpc", method: "/pb.Add/Sum" } }), {});
    await fromInfo(httpCall(), {});
    await fromInfo(createContext(), {});
    const given = metrics.middleware({ name: "b", transport: "nats" })(ok);
    await given(httpCall(), {});
    const series = (await samples(metrics.registry, "svckit_requests_total")).map(
      (s) => `${s.labels.endpoint}/${s.labels.kind}/${s.labels.transport}`,
    );
    expect(series.sort()).toEqual(["a/server/grpc", "a/server/http", "a/server/none", "b/server/nats"]);
  });

  it("takes a client's transport from options only, never from the caller's CallInfo", async () => {
    const metrics = createMetrics();
    const callerCtx = httpCall("POST", "/checkout");
    await metrics.middleware({ name: "users.get", kind: "client", transport: "grpc" })(ok)(callerCtx, {});
    await metrics.middleware({ name: "prices.get", kind: "client" })(ok)(callerCtx, {});
    const series = (await samples(metrics.registry, "svckit_requests_total")).map(
      (s) => `${s.labels.endpoint}/${s.labels.kind}/${s.labels.transport}`,
    );
    expect(series.sort()).toEqual(["prices.get/client/none", "users.get/client/grpc"]);
  });

  it("touches no prom-client object per call and hands the counts over when the metrics are read", async () => {
    const labels = vi.spyOn(Histogram.prototype, "labels");
    const metrics = createMetrics();
    const requests = metrics.registry.getSingleMetric("svckit_requests_total") as Counter;
    const gauge = metrics.registry.getSingleMetric("svckit_requests_in_flight") as Gauge;
    const inc = vi.spyOn(requests, "inc");
    const set = vi.spyOn(gauge, "set");
    const endpoint = metrics.middleware({ name: "sum" })(async (_ctx, fail: boolean) => {
      if (fail) throw new ServiceError(Code.INVALID_ARGUMENT, "bad");
      return 1;
    });
    for (let i = 0; i < 100; i++) await endpoint(httpCall(), false);
    for (let i = 0; i < 100; i++) await endpoint(httpCall(), true).catch(() => undefined);
    for (let i = 0; i < 10; i++)
      await endpoint(createContext({ callInfo: { transport: "grpc", method: "/x" } }), false);
    expect(labels).not.toHaveBeenCalled();
    expect(metrics.registry.getSingleMetric("svckit_request_duration_seconds")).not.toBeInstanceOf(Histogram);
    expect(inc).not.toHaveBeenCalled();
    expect(set).not.toHaveBeenCalled();
    // Reading: one inc per (series, code) with new calls, one set per series.
    await metrics.registry.metrics();
    expect(inc).toHaveBeenCalledTimes(3);
    expect(set).toHaveBeenCalledTimes(2);
    await metrics.registry.metrics();
    expect(inc).toHaveBeenCalledTimes(3);
    const invalid = { endpoint: "sum", kind: "server", transport: "http", code: "INVALID_ARGUMENT" };
    expect(await sample(metrics.registry, "svckit_requests_total", invalid)).toBe(100);
    const name = "svckit_request_duration_seconds";
    expect(await sample(metrics.registry, name, invalid, `${name}_count`)).toBe(100);
    expect(labels).not.toHaveBeenCalled();
  });

  it("counts a synchronous throw of the next endpoint and turns it into a rejection", async () => {
    const metrics = createMetrics();
    const boom = new ServiceError(Code.UNAVAILABLE, "sync");
    const endpoint = metrics.middleware({ name: "sync" })((() => {
      throw boom;
    }) as Endpoint<unknown, string>);
    const call = endpoint(httpCall(), {});
    expect(call).toBeInstanceOf(Promise);
    await expect(call).rejects.toBe(boom);
    const labels = { endpoint: "sync", kind: "server", transport: "http" };
    expect(await sample(metrics.registry, "svckit_requests_total", { ...labels, code: "UNAVAILABLE" })).toBe(
      1,
    );
    expect(await sample(metrics.registry, "svckit_requests_in_flight", labels)).toBe(0);
  });

  it("accepts a next endpoint returning a plain value or a foreign thenable", async () => {
    const metrics = createMetrics();
    const plain = metrics.middleware({ name: "plain" })((() => 7) as unknown as Endpoint<unknown, number>);
    await expect(plain(httpCall(), {})).resolves.toBe(7);
    const thenable = metrics.middleware({ name: "thenable" })((() => ({
      // biome-ignore lint/suspicious/noThenProperty: a foreign thenable is what is tested
      then: (_ok: unknown, fail: (reason: unknown) => void) => fail(new ServiceError(Code.ABORTED, "x")),
    })) as unknown as Endpoint<unknown, number>);
    await expect(thenable(httpCall(), {})).rejects.toMatchObject({ code: Code.ABORTED });
    const codes = (await samples(metrics.registry, "svckit_requests_total")).map(
      (s) => `${s.labels.endpoint}:${s.labels.code}`,
    );
    expect(codes.sort()).toEqual(["plain:OK", "thenable:ABORTED"]);
  });

  it("keeps counting after the registry's metrics are reset", async () => {
    const metrics = createMetrics();
    const endpoint = metrics.middleware({ name: "sum" })(ok);
    const labels = { endpoint: "sum", kind: "server", transport: "http", code: "OK" };
    await endpoint(httpCall(), {});
    expect(await sample(metrics.registry, "svckit_requests_total", labels)).toBe(1);
    metrics.registry.resetMetrics();
    await endpoint(httpCall(), {});
    await endpoint(httpCall(), {});
    expect(await sample(metrics.registry, "svckit_requests_total", labels)).toBe(2);
  });

  it("is a named function that keeps the endpoint's types", async () => {
    const metrics = createMetrics();
    const mw = metrics.middleware({ name: "sum" });
    expect(mw.name).toBe("metricsMiddleware");
    const typed: Endpoint<{ a: number; b: number }, number> = async (_ctx, { a, b }) => a + b;
    const wrapped = mw(typed);
    expect(wrapped.name).toBe("metricsEndpoint");
    const result: number = await wrapped(createContext(), { a: 1, b: 2 });
    expect(result).toBe(3);
  });
});

describe("over real HTTP", () => {
  it("gives 1000 different ids on one route one label set", async () => {
    const metrics = createMetrics();
    const getUser: Endpoint<string, { id: string }> = async (_ctx, id) => {
      if (id.endsWith("7")) throw new ServiceError(Code.NOT_FOUND, `no user ${id}`);
      return { id };
    };
    const router = createRouter().get(
      "/users/:id",
      createHttpHandler(
        metrics.middleware({ name: "getUser" })(getUser),
        (_ctx, req) => req.params.id as string,
        encodeJsonResponse,
      ),
    );
    const origin = await listen(router.handle);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get(`${origin}${path}`, { agent }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          })
          .on("error", reject);
      });
    const statuses: number[] = [];
    for (let batch = 0; batch < 1000; batch += 50) {
      const ids = Array.from({ length: 50 }, (_, i) => `${batch + i}-${Math.random().toString(36).slice(2)}`);
      statuses.push(...(await Promise.all(ids.map((id) => get(`/users/${id}?q=${id}`)))));
    }
    agent.destroy();
    const notFound = statuses.filter((s) => s === 404).length;
    expect(statuses.filter((s) => s === 200).length + notFound).toBe(1000);

    const total = await samples(metrics.registry, "svckit_requests_total");
    expect(total).toEqual([
      {
        metricName: "svckit_requests_total",
        labels: { endpoint: "getUser", kind: "server", transport: "http", code: "OK" },
        value: 1000 - notFound,
      },
      ...(notFound > 0
        ? [
            {
              metricName: "svckit_requests_total",
              labels: { endpoint: "getUser", kind: "server", transport: "http", code: "NOT_FOUND" },
              value: notFound,
            },
          ]
        : []),
    ]);
    const text = await metrics.registry.metrics();
    const series = new Set(
      text
        .split("\n")
        .filter((line) => line !== "" && !line.startsWith("#"))
        .map((line) => line.slice(0, line.lastIndexOf(" ")).replace(/le="[^"]*",?/, "")),
    );
    // requests_total and the histogram's buckets, sum and count per code, and in flight.
    expect(series.size).toBeLessThanOrEqual(2 * 3 + 1 + 2);
    expect(text).not.toMatch(/users\/|-[a-z0-9]{6,}/);
  });

  it("serves GET with the registry's content type and the metrics", async () => {
    const metrics = createMetrics();
    await metrics.middleware({ name: "sum" })(ok)(httpCall(), {});
    const origin = await listen(metrics.handler);
    const res = await fetch(`${origin}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = await res.text();
    expect(body).toBe(await metrics.registry.metrics());
    expect(res.headers.get("content-length")).toBe(String(Buffer.byteLength(body)));
    expect(body).toContain(
      'svckit_requests_total{endpoint="sum",kind="server",transport="http",code="OK"} 1',
    );
  });

  it("serves the OpenMetrics format when the registry uses it", async () => {
    const registry = new Registry<OpenMetricsContentType>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const metrics = createMetrics({ registry });
    await metrics.middleware({ name: "sum" })(ok)(httpCall(), {});
    const res = await fetch(await listen(metrics.handler));
    expect(res.headers.get("content-type")).toBe(
      "application/openmetrics-text; version=1.0.0; charset=utf-8",
    );
    expect(await res.text()).toMatch(/# EOF\n$/);
  });

  it("answers HEAD with the headers and no body", async () => {
    const metrics = createMetrics();
    await metrics.middleware({ name: "sum" })(ok)(httpCall(), {});
    const res = await fetch(await listen(metrics.handler), { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(metrics.registry.contentType);
    expect(Number(res.headers.get("content-length"))).toBeGreaterThan(100);
    expect(await res.text()).toBe("");
  });

  it.each(["POST", "PUT", "DELETE", "OPTIONS"])("answers %s with 405 and Allow", async (method) => {
    const res = await fetch(await listen(createMetrics().handler), { method });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await res.json()).toEqual({
      code: "UNIMPLEMENTED",
      message: `method ${method} is not allowed: the metrics endpoint answers GET and HEAD`,
    });
  });

  it("answers 500 without details when collecting fails", async () => {
    const metrics = createMetrics();
    new Counter({
      name: "broken_total",
      help: "a metric whose collect throws",
      registers: [metrics.registry],
      collect() {
        throw new Error("secret connection string");
      },
    });
    const res = await fetch(await listen(metrics.handler));
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ code: "INTERNAL", message: "collecting the metrics failed" });
    expect(text).not.toContain("secret");
  });

  it("works as a createRouter route and an express handler", async () => {
    const metrics = createMetrics();
    const sum: Endpoint<{ a: number; b: number }, { v: number }> = async (_ctx, { a, b }) => ({ v: a + b });
    const router = createRouter()
      .post(
        "/sum",
        createHttpHandler(metrics.middleware({ name: "sum" })(sum), jsonRequestDecoder(), encodeJsonResponse),
      )
      .get("/metrics", metrics.handler);
    const origin = await listen(router.handle);
    const client = createHttpClient(
      `${origin}/sum`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder<{ v: number }>(),
    );
    const wrappedClient = metrics.middleware({ name: "sum", kind: "client", transport: "http" })(client);
    expect(await wrappedClient(createContext(), { a: 1, b: 2 })).toEqual({ v: 3 });
    const viaRouter = await (await fetch(`${origin}/metrics`)).text();
    expect(viaRouter).toContain(
      'svckit_requests_total{endpoint="sum",kind="server",transport="http",code="OK"} 1',
    );
    expect(viaRouter).toContain(
      'svckit_requests_total{endpoint="sum",kind="client",transport="http",code="OK"} 1',
    );
    expect((await fetch(`${origin}/metrics`, { method: "POST" })).status).toBe(405);

    const app = express();
    app.get("/metrics", metrics.handler);
    const viaExpress = await fetch(`${await listen(app)}/metrics`);
    expect(viaExpress.status).toBe(200);
    expect(await viaExpress.text()).toContain('kind="client"');
  });
});

describe("duration histogram", () => {
  const NAME = "svckit_request_duration_seconds";

  /** One call through the middleware that takes exactly `ms` milliseconds and ends with `code`. */
  interface Observation {
    readonly endpoint: string;
    readonly kind: "server" | "client";
    readonly transport: string;
    readonly code: Code;
    readonly ms: number;
  }

  /**
   * Runs `observations` through svckit's middleware (with a clock that makes each call last exactly
   * `ms`) and into a prom-client Histogram of the same name, help, labels and buckets; `"reset"` resets
   * both registries.
   */
  async function record(
    steps: readonly (Observation | "reset")[],
    options: {
      buckets?: readonly number[];
      openMetrics?: boolean;
      defaultLabels?: Record<string, string>;
    } = {},
  ): Promise<{ ours: MetricsRegistry; reference: MetricsRegistry }> {
    const ours = new Registry();
    const reference = new Registry();
    for (const registry of [ours, reference]) {
      if (options.openMetrics) registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as never);
      if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
    }
    const metrics = createMetrics({ registry: ours, buckets: options.buckets });
    const histogram = new Histogram({
      name: NAME,
      help: (ours.getSingleMetric(NAME) as unknown as { help: string }).help,
      labelNames: ["endpoint", "kind", "transport", "code"],
      buckets: [...(options.buckets ?? defaultBuckets)],
      registers: [reference],
    });
    let clock = 0;
    vi.spyOn(performance, "now").mockImplementation(() => clock);
    const endpoints = new Map<string, Endpoint<Observation, string>>();
    for (const step of steps) {
      if (step === "reset") {
        ours.resetMetrics();
        reference.resetMetrics();
        continue;
      }
      const { endpoint, kind, transport, code, ms } = step;
      const key = `${endpoint}/${kind}/${transport}`;
      let wrapped = endpoints.get(key);
      if (wrapped === undefined) {
        wrapped = metrics.middleware({ name: endpoint, kind, transport })(async (_ctx, o) => {
          clock = o.ms;
          if (o.code !== Code.OK) throw new ServiceError(o.code, "failed");
          return "ok";
        });
        endpoints.set(key, wrapped);
      }
      clock = 0;
      await wrapped(createContext(), step).catch(() => undefined);
      // What the middleware computes: (end - start) / 1000 with start 0.
      histogram.observe({ endpoint, kind, transport, code: codeNames[code] }, (ms - 0) / 1000);
    }
    vi.mocked(performance.now).mockRestore();
    return { ours, reference };
  }

  async function expectSameOutput(ours: MetricsRegistry, reference: MetricsRegistry): Promise<void> {
    expect(await ours.getSingleMetricAsString(NAME)).toBe(await reference.getSingleMetricAsString(NAME));
    const json = async (registry: MetricsRegistry) =>
      (await registry.getMetricsAsJSON()).find((m) => m.name === NAME);
    expect(await json(ours)).toStrictEqual(await json(reference));
    const metric = (registry: MetricsRegistry) =>
      registry.getSingleMetric(NAME) as { get(): Promise<unknown> };
    expect(await metric(ours).get()).toStrictEqual(await metric(reference).get());
  }

  const obs = (endpoint: string, code: Code, ms: number, transport = "http"): Observation => ({
    endpoint,
    kind: "server",
    transport,
    code,
    ms,
  });

  it("prints buckets (bounds inclusive, cumulative, +Inf), sum and count per series and code", async () => {
    const { ours, reference } = await record(
      [
        obs("sum", Code.OK, 1), // exactly on the 1 ms bound
        obs("sum", Code.OK, 3),
        obs("sum", Code.NOT_FOUND, 0),
        obs("concat", Code.OK, 20_000), // above every bound
        obs("sum", Code.OK, 10_000), // exactly on the last bound
      ],
      { buckets: [0.001, 0.005, 10] },
    );
    const text = await ours.getSingleMetricAsString(NAME);
    const sum = 'endpoint="sum",kind="server",transport="http",code="OK"';
    const notFound = 'endpoint="sum",kind="server",transport="http",code="NOT_FOUND"';
    const concat = 'endpoint="concat",kind="server",transport="http",code="OK"';
    expect(text).toBe(
      [
        `# HELP ${NAME} Duration of calls of svckit endpoints in seconds, by endpoint, kind, transport and code.`,
        `# TYPE ${NAME} histogram`,
        `${NAME}_bucket{le="0.001",${sum}} 1`,
        `${NAME}_bucket{le="0.005",${sum}} 2`,
        `${NAME}_bucket{le="10",${sum}} 3`,
        `${NAME}_bucket{le="+Inf",${sum}} 3`,
        `${NAME}_sum{${sum}} 10.004`,
        `${NAME}_count{${sum}} 3`,
        `${NAME}_bucket{le="0.001",${notFound}} 1`,
        `${NAME}_bucket{le="0.005",${notFound}} 1`,
        `${NAME}_bucket{le="10",${notFound}} 1`,
        `${NAME}_bucket{le="+Inf",${notFound}} 1`,
        `${NAME}_sum{${notFound}} 0`,
        `${NAME}_count{${notFound}} 1`,
        `${NAME}_bucket{le="0.001",${concat}} 0`,
        `${NAME}_bucket{le="0.005",${concat}} 0`,
        `${NAME}_bucket{le="10",${concat}} 0`,
        `${NAME}_bucket{le="+Inf",${concat}} 1`,
        `${NAME}_sum{${concat}} 20`,
        `${NAME}_count{${concat}} 1`,
      ].join("\n"),
    );
    await expectSameOutput(ours, reference);
  });

  it.each([
    ["Prometheus text", false],
    ["OpenMetrics", true],
  ])(
    "matches prom-client's own Histogram for any observations and resets (%s)",
    async (_format, openMetrics) => {
      const step = fc.oneof(
        {
          weight: 20,
          arbitrary: fc.record({
            endpoint: fc.constantFrom("sum", "concat", "users.get"),
            kind: fc.constantFrom("server" as const, "client" as const),
            transport: fc.constantFrom("http", "grpc"),
            code: fc.constantFrom(
              Code.OK,
              Code.NOT_FOUND,
              Code.INTERNAL,
              Code.DEADLINE_EXCEEDED,
              Code.UNAUTHENTICATED,
            ),
            ms: fc.oneof(
              fc.constantFrom(0, ...defaultBuckets.map((b) => b * 1000), 60_000),
              fc.double({ min: 0, max: 20_000, noNaN: true }),
            ),
          }),
        },
        { weight: 1, arbitrary: fc.constant("reset" as const) },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(step, { maxLength: 40 }),
          fc.boolean(),
          async (steps, withDefaultLabels) => {
            const { ours, reference } = await record(steps, {
              openMetrics,
              defaultLabels: withDefaultLabels ? { region: "eu" } : undefined,
            });
            await expectSameOutput(ours, reference);
            if (openMetrics) {
              const text = await ours.metrics();
              expect(ours.contentType).toBe(Registry.OPENMETRICS_CONTENT_TYPE);
              expect(text).toMatch(/# EOF\n$/);
              expect(text).toContain(await reference.getSingleMetricAsString(NAME));
            }
          },
        ),
        { numRuns: 60 },
      );
    },
  );

  it("forgets observations on resetMetrics while requests_total keeps counting", async () => {
    const { ours, reference } = await record([
      obs("sum", Code.OK, 2),
      obs("sum", Code.NOT_FOUND, 2),
      "reset",
      obs("sum", Code.NOT_FOUND, 7),
      obs("concat", Code.OK, 1),
    ]);
    await expectSameOutput(ours, reference);
    const text = await ours.getSingleMetricAsString(NAME);
    expect(text).not.toContain('endpoint="sum",kind="server",transport="http",code="OK"');
    expect(text).toContain(`${NAME}_count{endpoint="sum",kind="server",transport="http",code="NOT_FOUND"} 1`);
    const total = { endpoint: "sum", kind: "server", transport: "http", code: "NOT_FOUND" };
    expect(await sample(ours, "svckit_requests_total", total)).toBe(2);
  });

  it("aggregates across cluster workers like prom-client's Histogram", async () => {
    const first = await record([obs("sum", Code.OK, 3), obs("sum", Code.INTERNAL, 30)]);
    const second = await record([obs("sum", Code.OK, 300), obs("concat", Code.OK, 3)]);
    const aggregate = async (a: MetricsRegistry, b: MetricsRegistry) =>
      AggregatorRegistry.aggregate([
        await a.getMetricsAsJSON(),
        await b.getMetricsAsJSON(),
      ]).getSingleMetricAsString(NAME);
    const ours = await aggregate(first.ours, second.ours);
    expect(ours).toBe(await aggregate(first.reference, second.reference));
    expect(ours).toContain(`${NAME}_count{endpoint="sum",kind="server",transport="http",code="OK"} 2`);
  });

  it("is registered as a histogram, reused by a second createMetrics, refused if someone else's", async () => {
    const registry = new Registry();
    createMetrics({ registry, buckets: [1] });
    const metric = registry.getSingleMetric(NAME) as unknown as Record<string, unknown>;
    expect(metric).toMatchObject({ name: NAME, type: "histogram", aggregator: "sum" });
    expect(metric.labelNames).toEqual(["endpoint", "kind", "transport", "code"]);
    createMetrics({ registry, buckets: [2] });
    expect(registry.getSingleMetric(NAME)).toBe(metric);
    await createMetrics({ registry }).middleware({ name: "sum" })(ok)(httpCall(), {});
    expect(await registry.getSingleMetricAsString(NAME)).toContain('le="1"');
    expect(await registry.getSingleMetricAsString(NAME)).not.toContain('le="2"');

    const other = new Registry();
    new Histogram({
      name: NAME,
      help: "theirs",
      labelNames: ["endpoint", "kind", "transport", "code"],
      registers: [other],
    });
    expect(() => createMetrics({ registry: other, prefix: "svckit_" })).toThrow(
      `createMetrics: the registry already has a metric "${NAME}" that this package did not make with the same type and labels; use another prefix or registry`,
    );
  });
});

describe("observeBreaker", () => {
  const state = (metrics: { registry: MetricsRegistry }, breaker: string) =>
    sample(metrics.registry, "svckit_circuit_breaker_state", { breaker });
  const transitions = (metrics: { registry: MetricsRegistry }, breaker: string, from: string, to: string) =>
    sample(metrics.registry, "svckit_circuit_breaker_transitions_total", { breaker, from, to });

  it("exports the state (0 closed, 1 half-open, 2 open) and counts transitions", async () => {
    const metrics = createMetrics();
    const breaker = fakeBreaker("users");
    metrics.observeBreaker(breaker);
    expect(await state(metrics, "users")).toBe(0);
    breaker.move("open");
    expect(await state(metrics, "users")).toBe(2);
    breaker.move("halfOpen");
    expect(await state(metrics, "users")).toBe(1);
    breaker.move("open");
    breaker.move("halfOpen");
    breaker.move("closed");
    expect(await state(metrics, "users")).toBe(0);
    expect(await transitions(metrics, "users", "closed", "open")).toBe(1);
    expect(await transitions(metrics, "users", "open", "halfOpen")).toBe(2);
    expect(await transitions(metrics, "users", "halfOpen", "open")).toBe(1);
    expect(await transitions(metrics, "users", "halfOpen", "closed")).toBe(1);
  });

  it("starts from the breaker's current state and exports nothing before a breaker is observed", async () => {
    const metrics = createMetrics();
    expect(metrics.registry.getSingleMetric("svckit_circuit_breaker_state")).toBeUndefined();
    metrics.observeBreaker(fakeBreaker("payments", "open"));
    expect(await state(metrics, "payments")).toBe(2);
  });

  it("stops observing: unsubscribes, drops the state series, allows observing again", async () => {
    const metrics = createMetrics();
    const breaker = fakeBreaker("users");
    const stop = metrics.observeBreaker(breaker);
    expect(stop.name).toBe("stopObserving");
    expect(breaker.listeners.size).toBe(1);
    stop();
    stop();
    expect(breaker.listeners.size).toBe(0);
    expect(await state(metrics, "users")).toBeUndefined();
    metrics.observeBreaker(breaker);
    breaker.move("open");
    expect(await state(metrics, "users")).toBe(2);
  });

  it("refuses a second breaker of the same name and malformed breakers", () => {
    const metrics = createMetrics();
    metrics.observeBreaker(fakeBreaker("users"));
    expect(() => metrics.observeBreaker(fakeBreaker("users"))).toThrow(
      'metrics.observeBreaker: a breaker named "users" is observed already; stop observing it first',
    );
    const bad = (breaker: unknown) => () => metrics.observeBreaker(breaker as ObservableBreaker);
    expect(bad(undefined)).toThrow(
      "metrics.observeBreaker: expected a breaker with name, state and subscribe",
    );
    expect(bad({ name: "x", state: "closed" })).toThrow(
      "metrics.observeBreaker: expected a breaker with name, state and subscribe",
    );
    expect(bad({ name: "", state: "closed", subscribe: () => () => undefined })).toThrow(
      "metrics.observeBreaker: the breaker's name must be a non-empty string",
    );
  });

  it("refuses the same breaker name from a second createMetrics sharing the registry (they share the series)", async () => {
    const registry = new Registry();
    const a = createMetrics({ registry });
    const b = createMetrics({ registry });
    const stopA = a.observeBreaker(fakeBreaker("users"));
    expect(() => b.observeBreaker(fakeBreaker("users"))).toThrow(
      'metrics.observeBreaker: a breaker named "users" is observed already; stop observing it first',
    );
    stopA();
    const breaker = fakeBreaker("users");
    b.observeBreaker(breaker);
    breaker.move("open");
    expect(await state(b, "users")).toBe(2);
    // Other registries keep their own names.
    expect(() => createMetrics().observeBreaker(fakeBreaker("users"))).not.toThrow();
  });

  it("ignores states it does not know", async () => {
    const metrics = createMetrics();
    const breaker = fakeBreaker("odd", "weird" as BreakerState);
    metrics.observeBreaker(breaker);
    expect(await state(metrics, "odd")).toBeUndefined();
    breaker.move("bogus" as BreakerState);
    expect(await samples(metrics.registry, "svckit_circuit_breaker_transitions_total")).toEqual([]);
  });
});

describe("recordRateLimitRejection", () => {
  it("counts rejections per limiter, never by key, and works detached", async () => {
    const metrics = createMetrics();
    expect(metrics.registry.getSingleMetric("svckit_ratelimit_rejections_total")).toBeUndefined();
    const onReject = metrics.recordRateLimitRejection;
    for (let i = 0; i < 50; i++) onReject({ limiter: "api", key: `user-${i}` });
    onReject({ limiter: "login" });
    const all = await samples(metrics.registry, "svckit_ratelimit_rejections_total");
    expect(all.map((s) => [s.labels, s.value])).toEqual([
      [{ limiter: "api" }, 50],
      [{ limiter: "login" }, 1],
    ]);
    expect(await metrics.registry.metrics()).not.toContain("user-");
  });

  it("takes @svckit/ratelimit's onReject events and @svckit/circuitbreaker's breakers as they are", async () => {
    const metrics = createMetrics();
    const limiter = createRateLimiter({
      name: "api",
      limit: 1,
      interval: 60_000,
      onReject: metrics.recordRateLimitRejection,
    });
    const breaker = createCircuitBreaker({ name: "users", volumeThreshold: 1, errorThresholdPercentage: 1 });
    const stop = metrics.observeBreaker(breaker);
    try {
      const limited = limiter.middleware(async () => "ok");
      await limited(createContext(), {});
      await expect(limited(createContext(), {})).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
      const failing = breaker.middleware(async () => {
        throw new ServiceError(Code.UNAVAILABLE, "down");
      });
      await expect(failing(createContext(), {})).rejects.toMatchObject({ message: "down" });
      expect(breaker.state).toBe("open");
      expect(await sample(metrics.registry, "svckit_ratelimit_rejections_total", { limiter: "api" })).toBe(1);
      expect(await sample(metrics.registry, "svckit_circuit_breaker_state", { breaker: "users" })).toBe(2);
    } finally {
      stop();
      breaker.shutdown();
      await limiter.close();
    }
  });

  it("never throws, counting malformed events as limiter unknown", async () => {
    const metrics = createMetrics();
    const onReject = metrics.recordRateLimitRejection as (event: unknown) => void;
    expect(() => onReject(undefined)).not.toThrow();
    expect(() => onReject({ limiter: 5 })).not.toThrow();
    expect(() => onReject({ limiter: "" })).not.toThrow();
    expect(await sample(metrics.registry, "svckit_ratelimit_rejections_total", { limiter: "unknown" })).toBe(
      3,
    );
  });
});

describe("promtool check metrics", () => {
  it("finds no problem in everything this package exports", async ({ skip }) => {
    const metrics = createMetrics();
    const endpoint = metrics.middleware({ name: "sum" })(async (_ctx, code: Code) => {
      if (code !== Code.OK) throw new ServiceError(code, "failed");
      return "ok";
    });
    for (const code of Object.values(Code)) {
      await endpoint(createContext({ callInfo: { transport: "grpc", method: "/pb.Add/Sum" } }), code).catch(
        () => undefined,
      );
    }
    await metrics.middleware({ name: "users.get", kind: "client", transport: "http" })(ok)(
      createContext(),
      {},
    );
    const breaker = fakeBreaker("users");
    metrics.observeBreaker(breaker);
    breaker.move("open");
    metrics.recordRateLimitRejection({ limiter: "api", key: "1.2.3.4" });
    const text = await metrics.registry.metrics();
    expect(text).toContain("svckit_circuit_breaker_transitions_total");
    expect(text).toContain("svckit_ratelimit_rejections_total");

    const result = await promtool(text);
    if (result === undefined) {
      const message =
        "promtool is not installed: `promtool check metrics` was NOT run (apt-get install prometheus)";
      if (process.env.CI === "true") throw new Error(`${message}; CI must have it`);
      console.warn(`\n${"!".repeat(100)}\n!!! ${message}\n${"!".repeat(100)}\n`);
      skip(message);
      return;
    }
    expect(result.output).toBe("");
    expect(result.code).toBe(0);
  });

  it("reports problems in a bad exposition (so the check above is real)", async ({ skip }) => {
    const result = await promtool("# HELP requests Some requests.\n# TYPE requests counter\nrequests 1\n");
    if (result === undefined) {
      if (process.env.CI === "true") throw new Error("promtool is not installed; CI must have it");
      skip("promtool is not installed");
      return;
    }
    expect(result.output).toContain('counter metrics should have "_total" suffix');
    expect(result.code).not.toBe(0);
  });
});
