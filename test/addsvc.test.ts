// The built addsvc binary: its four listeners on free ports and their log lines, one call over each
// transport through one middleware chain (seen in the call log lines and in /metrics on the debug
// listener), /healthz, /readyz and grpc.health.v1, graceful exit on SIGTERM and SIGINT, and its
// command line (single- and double-dash flags, off, bad values, an address in use, --help).
import { Client, credentials, type ServiceError as GrpcError, Metadata } from "@grpc/grpc-js";
import { createContext } from "@svckit/endpoint";
import {
  HEALTH_SERVICE_NAME,
  type HealthCheckResponse,
  healthCheckRequest,
  healthCheckResponse,
} from "@svckit/health";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createAddsvcGrpcClient } from "../examples/addsvc/src/transport-grpc.js";
import { createAddsvcHttpClient } from "../examples/addsvc/src/transport-http.js";
import { createAddsvcJsonRpcClient } from "../examples/addsvc/src/transport-jsonrpc.js";
import {
  ensureBuilt,
  JSON_TYPE,
  jsonLines,
  mainJs,
  ONLY_HTTP,
  portOf,
  root,
  runNode,
  startAddsvc,
} from "./fixtures/addsvc-helpers.js";
import { listen, send, startProcess, stopProcesses } from "./support.js";

/** `grpc.health.v1.Health/Check` of `service` with a plain grpc-js client. */
function healthCheck(address: string, service: string): Promise<HealthCheckResponse | { code: number }> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/${HEALTH_SERVICE_NAME}/Check`,
      (request: { service: string }) => Buffer.from(healthCheckRequest.encode(request)),
      (bytes: Buffer) => healthCheckResponse.decode(bytes),
      { service },
      new Metadata(),
      { deadline: Date.now() + 5_000 },
      (err: GrpcError | null, value?: HealthCheckResponse) => {
        client.close();
        resolve(err === null ? (value as HealthCheckResponse) : { code: err.code });
      },
    );
  });
}

/** The value of the metric line that starts with `series` (labels included), or undefined. */
function metric(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const requests = (endpoint: string, transport: string, code: string): string =>
  `svckit_requests_total{endpoint="${endpoint}",kind="server",transport="${transport}",code="${code}"}`;

beforeAll(ensureBuilt, 180_000);
afterEach(stopProcesses);

describe("the addsvc binary", () => {
  it("starts all four listeners on free ports, one JSON log line each, and serves every transport through one chain", async () => {
    const svc = await startAddsvc();
    const listening = jsonLines(svc.proc).filter((l) => String(l.message).includes(" listening on "));
    expect(
      listening.map(({ message, transport, addr, level }) => ({ message, transport, addr, level })),
    ).toEqual([
      { message: `HTTP listening on ${svc.http}`, transport: "HTTP", addr: svc.http, level: "info" },
      { message: `gRPC listening on ${svc.grpc}`, transport: "gRPC", addr: svc.grpc, level: "info" },
      {
        message: `JSON-RPC listening on ${svc.jsonrpc}`,
        transport: "JSON-RPC",
        addr: svc.jsonrpc,
        level: "info",
      },
      { message: `debug listening on ${svc.debug}`, transport: "debug", addr: svc.debug, level: "info" },
    ]);
    const ports = [svc.http, svc.grpc, svc.jsonrpc, svc.debug].map(portOf);
    expect(new Set(ports).size).toBe(4);
    for (const port of ports) expect(port).toBeGreaterThan(0);
    for (const line of listening) expect(typeof line.timestamp).toBe("string");

    const ctx = createContext({ timeout: 5_000 });
    const grpc = createAddsvcGrpcClient(svc.grpc as string);
    try {
      expect(await createAddsvcHttpClient(svc.http as string).sum(ctx, { a: 1n, b: 2n })).toEqual({ v: 3n });
      expect(await grpc.sum(ctx, { a: 3n, b: 4n })).toEqual({ v: 7n });
      expect(await grpc.concat(ctx, { a: "ab", b: "cd" })).toEqual({ v: "abcd" });
      expect(await createAddsvcJsonRpcClient(svc.jsonrpc as string).sum(ctx, { a: 5n, b: 6n })).toEqual({
        v: 11n,
      });
      await expect(grpc.sum(ctx, { a: 0n, b: 0n })).rejects.toMatchObject({
        message: "can't sum two zeroes",
      });
    } finally {
      grpc.close();
    }

    // One log line per call, whichever transport carried it, from the one logging middleware. The logger
    // writes its lines in batches, once per event-loop turn: a line may reach the pipe just after the
    // answer reached the client, so wait for all five.
    await vi.waitFor(
      () => expect(jsonLines(svc.proc).filter((l) => typeof l.endpoint === "string")).toHaveLength(5),
      { timeout: 5_000 },
    );
    const calls = jsonLines(svc.proc)
      .filter((l) => typeof l.endpoint === "string")
      .map((l) => `${l.transport} ${l.endpoint} ${l.code} ${l.level}`);
    expect(calls).toEqual([
      "http sum OK info",
      "grpc sum OK info",
      "grpc concat OK info",
      "jsonrpc sum OK info",
      "grpc sum INVALID_ARGUMENT warn",
    ]);
    const failed = jsonLines(svc.proc).find((l) => l.code === "INVALID_ARGUMENT");
    expect(failed).toMatchObject({ message: "served sum: INVALID_ARGUMENT", error: "can't sum two zeroes" });

    // The same calls in /metrics on the debug listener.
    const res = await send(portOf(svc.debug), { method: "GET", path: "/metrics" });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metric(res.text, requests("sum", "http", "OK"))).toBe(1);
    expect(metric(res.text, requests("sum", "grpc", "OK"))).toBe(1);
    expect(metric(res.text, requests("concat", "grpc", "OK"))).toBe(1);
    expect(metric(res.text, requests("sum", "jsonrpc", "OK"))).toBe(1);
    expect(metric(res.text, requests("sum", "grpc", "INVALID_ARGUMENT"))).toBe(1);
    expect(metric(res.text, 'svckit_circuit_breaker_state{breaker="sum"}')).toBe(0);
    expect(metric(res.text, 'svckit_circuit_breaker_state{breaker="concat"}')).toBe(0);
    expect(res.text).toContain(
      'svckit_request_duration_seconds_count{endpoint="sum",kind="server",transport="http",code="OK"} 1',
    );

    process.kill(svc.proc.pid, "SIGTERM");
    expect(await svc.proc.exited(10_000)).toEqual({ code: 0, signal: null });
    expect(jsonLines(svc.proc).at(-1)).toMatchObject({
      level: "info",
      message: "shutting down",
      signal: "SIGTERM",
    });
    expect(svc.proc.stderr()).toBe("");
  });

  it("serves /healthz and /readyz on the debug listener and grpc.health.v1 on gRPC; probes are not calls", async () => {
    const svc = await startAddsvc();
    const debug = portOf(svc.debug);
    const live = await send(debug, { method: "GET", path: "/healthz" });
    expect(live.status).toBe(200);
    expect(live.headers["content-type"]).toBe(JSON_TYPE);
    expect(live.headers["cache-control"]).toBe("no-store");
    expect(live.json()).toEqual({ status: "passing", checks: {} });
    const ready = await send(debug, { method: "GET", path: "/readyz" });
    expect(ready.status).toBe(200);
    expect(ready.json()).toEqual({ status: "passing", serving: true, checks: {} });
    expect((await send(debug, { method: "GET", path: "/nope" })).status).toBe(404);
    expect((await send(debug, { method: "POST", path: "/metrics", body: "" })).status).toBe(405);

    expect(await healthCheck(svc.grpc as string, "")).toEqual({ status: "SERVING" });
    expect(await healthCheck(svc.grpc as string, "pb.Add")).toEqual({ status: "SERVING" });
    expect(await healthCheck(svc.grpc as string, "pb.Nope")).toEqual({ code: 5 });

    expect(jsonLines(svc.proc).filter((l) => typeof l.endpoint === "string")).toEqual([]);
    process.kill(svc.proc.pid, "SIGINT");
    expect(await svc.proc.exited(10_000)).toEqual({ code: 0, signal: null });
    expect(jsonLines(svc.proc).at(-1)).toMatchObject({ message: "shutting down", signal: "SIGINT" });
  });

  it("/metrics counts rate-limit refusals and shows an open breaker", async () => {
    const svc = await startAddsvc([
      "--sum-rate",
      "1",
      "--breaker-calls",
      "3",
      "--grpc-addr",
      "off",
      "--jsonrpc-addr",
      "off",
    ]);
    const port = portOf(svc.http);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await send(port, {
        path: "/sum",
        headers: { "content-type": "application/json" },
        body: '{"a":1}',
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 429, 429, 503]);
    const text = (await send(portOf(svc.debug), { method: "GET", path: "/metrics" })).text;
    expect(metric(text, 'svckit_ratelimit_rejections_total{limiter="sum"}')).toBe(2);
    expect(metric(text, 'svckit_circuit_breaker_state{breaker="sum"}')).toBe(2);
    expect(
      metric(text, 'svckit_circuit_breaker_transitions_total{breaker="sum",from="closed",to="open"}'),
    ).toBe(1);
    expect(metric(text, requests("sum", "http", "RESOURCE_EXHAUSTED"))).toBe(2);
    expect(metric(text, requests("sum", "http", "UNAVAILABLE"))).toBe(1);
    await vi.waitFor(() => expect(jsonLines(svc.proc).filter((l) => l.endpoint === "sum")).toHaveLength(4), {
      timeout: 5_000,
    });
    const levels = jsonLines(svc.proc)
      .filter((l) => l.endpoint === "sum")
      .map((l) => `${l.code} ${l.level}`);
    expect(levels).toEqual([
      "OK info",
      "RESOURCE_EXHAUSTED warn",
      "RESOURCE_EXHAUSTED warn",
      "UNAVAILABLE error",
    ]);
  });

  it("takes Go-style single-dash flags with =value", async () => {
    const proc = startProcess(
      process.execPath,
      [
        mainJs,
        "-http-addr=127.0.0.1:0",
        "-grpc-addr=off",
        "-jsonrpc-addr",
        "off",
        "-debug-addr=",
        "-sum-rate=0",
        "-breaker-timeout=1m",
      ],
      root,
    );
    const line = await proc.line((l) => l.includes("listening on"), 15_000);
    const addr = (JSON.parse(line) as { addr: string }).addr;
    const res = await send(portOf(addr), { path: "/sum", headers: {}, body: '{"a":1,"b":2}' });
    expect(res.text).toBe('{"v":3}');
    expect(jsonLines(proc).filter((l) => String(l.message).includes("listening on"))).toHaveLength(1);
    process.kill(proc.pid, "SIGTERM");
    expect(await proc.exited(10_000)).toEqual({ code: 0, signal: null });
  });

  it("with only gRPC on, it logs one listener and serves gRPC", async () => {
    const svc = await startAddsvc(["--http-addr", "off", "--jsonrpc-addr", "off", "--debug-addr", "off"]);
    expect(jsonLines(svc.proc).map((l) => l.message)).toEqual([`gRPC listening on ${svc.grpc}`]);
    const grpc = createAddsvcGrpcClient(svc.grpc as string);
    try {
      expect(await grpc.concat(createContext({ timeout: 5_000 }), { a: "x", b: "y" })).toEqual({ v: "xy" });
    } finally {
      grpc.close();
    }
    process.kill(svc.proc.pid, "SIGTERM");
    expect(await svc.proc.exited(10_000)).toEqual({ code: 0, signal: null });
  });

  it("exits 1 with a message when an address is in use", async () => {
    const taken = await listen((_req, res) => res.end());
    try {
      const out = await runNode(mainJs, ["--http-addr", `127.0.0.1:${taken.port}`, ...ONLY_HTTP]);
      expect(out.code).toBe(1);
      expect(out.stderr).toMatch(
        new RegExp(`^addsvc: HTTP: cannot listen on 127\\.0\\.0\\.1:${taken.port}: .*EADDRINUSE`),
      );
      expect(out.stdout).toBe("");
    } finally {
      await taken.close();
    }
  });

  it("--help, -h and -help print the usage with the defaults and exit 0", async () => {
    for (const flag of ["--help", "-h", "-help"]) {
      const out = await runNode(mainJs, [flag]);
      expect(out.code).toBe(0);
      expect(out.stdout).toContain("usage: addsvc [flags]");
      for (const text of [
        "(default 127.0.0.1:8081)",
        "(default 127.0.0.1:8082)",
        "(default 127.0.0.1:8084)",
        "(default 127.0.0.1:8080)",
        "-sum-rate n",
        "(default 1)",
        "(default 100)",
        "-breaker-calls n",
        "(default 60s)",
      ]) {
        expect(out.stdout).toContain(text);
      }
    }
  });

  it.each([
    [["--port", "8080"], "addsvc: unknown flag --port"],
    [["-sum-rate", "fast"], 'addsvc: invalid value "fast" for -sum-rate: expected a whole number >= 0'],
    [["--concat-rate=-1"], 'addsvc: invalid value "-1" for -concat-rate: expected a whole number >= 0'],
    [
      ["--breaker-calls", "1.5"],
      'addsvc: invalid value "1.5" for -breaker-calls: expected a whole number >= 0',
    ],
    [
      ["--breaker-timeout", "60"],
      'addsvc: invalid duration "60" for -breaker-timeout: expected e.g. 500ms, 60s, 1m',
    ],
    [["--http-addr"], "addsvc: flag -http-addr needs a value"],
    [["serve"], 'addsvc: unexpected argument "serve"'],
    [["--http-addr", "off", "--grpc-addr", "off", "--jsonrpc-addr", ""], "all off: nothing to serve"],
    [["--http-addr", "nonsense"], 'invalid address "nonsense"'],
    [["--grpc-addr", "127.0.0.1:99999"], 'invalid address "127.0.0.1:99999"'],
  ])("%j exits 2 with a message and the usage", async (args, message) => {
    const out = await runNode(mainJs, args);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(message);
    expect(out.stderr).toContain("usage: addsvc [flags]");
    expect(out.stdout).toBe("");
  });
});
