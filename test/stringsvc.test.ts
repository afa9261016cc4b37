// stringsvc end to end: the example's router on a real node:http server, driven over HTTP by the
// svckit client and by raw requests; then the built demo binary as a child process.

import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { readdir } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { Client, credentials, type ServiceError as GrpcError, Metadata, status } from "@grpc/grpc-js";
import {
  Code,
  type Context,
  chain,
  createContext,
  type Endpoint,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import {
  HEALTH_SERVICE_NAME,
  type HealthCheckResponse,
  healthCheckRequest,
  healthCheckResponse,
} from "@svckit/health";
import { createHttpClient, encodeJsonRequest, jsonResponseDecoder } from "@svckit/transport-http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  makeEndpoints,
  type StringEndpoints,
  type StringRequest,
  type UppercaseResponse,
} from "../examples/stringsvc/src/endpoints.js";
import { createStringService } from "../examples/stringsvc/src/service.js";
import { createStringsvcClient, createStringsvcRouter } from "../examples/stringsvc/src/transport.js";
import { createStringsvcGrpcClient, STRING_SERVICE } from "../examples/stringsvc/src/transport-grpc.js";
import {
  closeServers,
  freePort,
  listen,
  type RawResponse,
  send,
  startProcess,
  stopProcesses,
  type TestProcess,
  type TestServer,
  within,
} from "./support.js";

const JSON_TYPE = "application/json; charset=utf-8";
const MiB = 1 << 20;
const root = fileURLToPath(new URL("..", import.meta.url));

/** Asserts the answer is `status` with svckit's JSON error body, and returns that body. */
function expectJsonError(
  res: RawResponse,
  status: number,
): { code: string; message: string; details?: unknown } {
  expect(res.status).toBe(status);
  expect(res.headers["content-type"]).toBe(JSON_TYPE);
  const body = res.json() as { code: string; message: string; details?: unknown };
  expect(Object.keys(body).filter((k) => k !== "details")).toEqual(["code", "message"]);
  expect(typeof body.message).toBe("string");
  return body;
}

/** Resolves after `ms`, or rejects with the context's abort reason as soon as it is cancelled. */
function wait(ctx: Context, ms: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const signal = ctx.signal;
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(ctx.abortReason ?? new ServiceError(Code.CANCELLED));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}

describe("stringsvc over HTTP", () => {
  let server: TestServer;
  let client: StringEndpoints;

  beforeAll(async () => {
    server = await listen(createStringsvcRouter(makeEndpoints(createStringService())).handle);
    client = createStringsvcClient(server.origin);
  });
  afterAll(closeServers);

  describe("through the svckit client", () => {
    it("uppercase abc returns ABC", async () => {
      expect(await client.uppercase(createContext({ timeout: 5_000 }), { s: "abc" })).toEqual({ v: "ABC" });
    });

    it("count abcd returns 4", async () => {
      expect(await client.count(createContext({ timeout: 5_000 }), { s: "abcd" })).toEqual({ v: 4 });
    });

    it("count of a non-ASCII string counts code points, not UTF-16 units or bytes", async () => {
      const ctx = createContext({ timeout: 5_000 });
      expect(await client.count(ctx, { s: "héllo wörld" })).toEqual({ v: 11 });
      expect(await client.count(ctx, { s: "日本語" })).toEqual({ v: 3 });
      // U+1F600 is two UTF-16 units and four UTF-8 bytes: 3 code points, length 4, 6 bytes.
      expect(await client.count(ctx, { s: "a😀b" })).toEqual({ v: 3 });
    });

    it("count of an empty string is 0", async () => {
      expect(await client.count(createContext({ timeout: 5_000 }), { s: "" })).toEqual({ v: 0 });
    });

    it("uppercase of a non-ASCII string uses full Unicode case mapping", async () => {
      const ctx = createContext({ timeout: 5_000 });
      expect(await client.uppercase(ctx, { s: "straße ǆ ὀδυσσεύς" })).toEqual({ v: "STRASSE Ǆ ὈΔΥΣΣΕΎΣ" });
    });

    it('uppercase "" fails with ServiceError INVALID_ARGUMENT "empty string"', async () => {
      const failure = await client.uppercase(createContext({ timeout: 5_000 }), { s: "" }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(ServiceError);
      expect(failure).toMatchObject({ code: Code.INVALID_ARGUMENT, message: "empty string" });
    });

    it("a client for a path the server does not route fails with NOT_FOUND and the server's message", async () => {
      const nope = createHttpClient<StringRequest, UppercaseResponse>(
        new URL("/nope", server.origin),
        "POST",
        encodeJsonRequest,
        jsonResponseDecoder<UppercaseResponse>(),
      );
      const failure = await nope(createContext({ timeout: 5_000 }), { s: "a" }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(ServiceError);
      expect(failure).toMatchObject({ code: Code.NOT_FOUND, message: "no route for POST /nope" });
    });

    it("a client whose base URL has a path calls <path>/uppercase and <path>/count", async () => {
      const router = createStringsvcRouter(makeEndpoints(createStringService()));
      const paths: string[] = [];
      const mounted = await listen((req, res) => {
        paths.push(req.url ?? "");
        req.url = (req.url ?? "/").replace(/^\/api(?=\/)/, "");
        router.handle(req, res);
      });
      for (const base of [`${mounted.origin}/api`, `${mounted.origin}/api/`]) {
        const api = createStringsvcClient(base);
        const ctx = createContext({ timeout: 5_000 });
        expect(await api.uppercase(ctx, { s: "abc" })).toEqual({ v: "ABC" });
        expect(await api.count(ctx, { s: "abc" })).toEqual({ v: 3 });
      }
      expect(paths).toEqual(["/api/uppercase", "/api/count", "/api/uppercase", "/api/count"]);
    });

    it("a call to a port nothing listens on fails with UNAVAILABLE", async () => {
      const port = await freePort();
      const gone = createStringsvcClient(`http://127.0.0.1:${port}`);
      const failure = await gone.count(createContext({ timeout: 5_000 }), { s: "a" }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(ServiceError);
      expect(failure).toMatchObject({ code: Code.UNAVAILABLE });
    });
  });

  describe("raw HTTP", () => {
    it('uppercase "" answers 400 with exactly {"code":"INVALID_ARGUMENT","message":"empty string"}', async () => {
      const res = await fetch(`${server.origin}/uppercase`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"s":""}',
      });
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toBe(JSON_TYPE);
      expect(await res.text()).toBe('{"code":"INVALID_ARGUMENT","message":"empty string"}');
    });

    it("a body without s is Go's zero value: uppercase 400 empty string, count 0", async () => {
      const headers = { "content-type": "application/json" };
      const upper = await send(server.port, { path: "/uppercase", headers, body: "{}" });
      expect(expectJsonError(upper, 400)).toEqual({ code: "INVALID_ARGUMENT", message: "empty string" });
      const count = await send(server.port, { path: "/count", headers, body: "{}" });
      expect(count.status).toBe(200);
      expect(count.headers["content-type"]).toBe(JSON_TYPE);
      expect(count.text).toBe('{"v":0}');
    });

    it("malformed JSON answers 400 INVALID_ARGUMENT with the line and column of the error", async () => {
      const res = await send(server.port, {
        path: "/uppercase",
        headers: { "content-type": "application/json" },
        body: '{"s":"a",}',
      });
      const body = expectJsonError(res, 400);
      expect(body.code).toBe("INVALID_ARGUMENT");
      expect(body.message).toMatch(/^malformed JSON: .+ at line 1, column 10$/);
    });

    it("malformed JSON on a later line names that line", async () => {
      const res = await send(server.port, {
        path: "/count",
        headers: { "content-type": "application/json" },
        body: '{\n  "s": "a"\n  "t": 1\n}',
      });
      const body = expectJsonError(res, 400);
      expect(body.code).toBe("INVALID_ARGUMENT");
      expect(body.message).toMatch(/^malformed JSON: .+ at line 3, column 3$/);
    });

    it('{"s":1} answers 400 INVALID_ARGUMENT naming field s', async () => {
      const res = await send(server.port, {
        path: "/uppercase",
        headers: { "content-type": "application/json" },
        body: '{"s":1}',
      });
      const body = expectJsonError(res, 400);
      expect(body.code).toBe("INVALID_ARGUMENT");
      expect(body.message).toMatch(/^invalid request: s: /);
      expect(body.details).toEqual([
        {
          type: "google.rpc.BadRequest",
          value: { fieldViolations: [expect.objectContaining({ field: "s" })] },
        },
      ]);
    });

    it("a JSON body that is not an object answers 400 INVALID_ARGUMENT about the root", async () => {
      for (const json of ["null", "[]", '"abc"', "42"]) {
        const res = await send(server.port, {
          path: "/count",
          headers: { "content-type": "application/json" },
          body: json,
        });
        const body = expectJsonError(res, 400);
        expect(body.code).toBe("INVALID_ARGUMENT");
        expect(body.message).toMatch(/^invalid request: \(root\): /);
      }
    });

    it("an empty body answers 400 INVALID_ARGUMENT", async () => {
      const res = await send(server.port, {
        path: "/uppercase",
        headers: { "content-type": "application/json" },
        body: "",
      });
      const body = expectJsonError(res, 400);
      expect(body.code).toBe("INVALID_ARGUMENT");
      expect(body.message).toMatch(/empty body/);
    });

    it("a body that is not UTF-8 answers 400 INVALID_ARGUMENT", async () => {
      const res = await send(server.port, {
        path: "/uppercase",
        headers: { "content-type": "application/json" },
        body: Uint8Array.of(0x7b, 0x22, 0x73, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d), // {"s":"\xff"}
      });
      const body = expectJsonError(res, 400);
      expect(body.code).toBe("INVALID_ARGUMENT");
      expect(body.message).toMatch(/UTF-8/);
    });

    it("a text/plain body answers 415 INVALID_ARGUMENT naming the content type", async () => {
      const res = await fetch(`${server.origin}/uppercase`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: '{"s":"abc"}',
      });
      expect(res.status).toBe(415);
      expect(res.headers.get("content-type")).toBe(JSON_TYPE);
      expect(await res.json()).toEqual({
        code: "INVALID_ARGUMENT",
        message: 'unsupported content type "text/plain": expected application/json',
      });
    });

    it("a declared body over 1 MiB answers 413 RESOURCE_EXHAUSTED", async () => {
      const res = await fetch(`${server.origin}/uppercase`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: new Uint8Array(MiB + 1).fill(0x20),
      });
      expect(res.status).toBe(413);
      expect(res.headers.get("content-type")).toBe(JSON_TYPE);
      expect(await res.json()).toEqual({
        code: "RESOURCE_EXHAUSTED",
        message: "request body exceeds the limit of 1048576 bytes",
      });
    });

    it("a chunked body that grows over 1 MiB answers 413 RESOURCE_EXHAUSTED", async () => {
      const res = await send(server.port, {
        path: "/count",
        headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
        streamBytes: 2 * MiB,
      });
      expect(expectJsonError(res, 413)).toEqual({
        code: "RESOURCE_EXHAUSTED",
        message: "request body exceeds the limit of 1048576 bytes",
      });
    });

    it("a body of exactly 1 MiB is read (and parsed)", async () => {
      const s = "x".repeat(MiB - 8);
      const json = `{"s":"${s}"}`;
      expect(Buffer.byteLength(json)).toBe(MiB);
      const res = await send(server.port, {
        path: "/count",
        headers: { "content-type": "application/json" },
        body: json,
      });
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ v: MiB - 8 });
    });

    it("an unknown path /nope answers 404 NOT_FOUND", async () => {
      const res = await send(server.port, {
        path: "/nope",
        headers: { "content-type": "application/json" },
        body: '{"s":"a"}',
      });
      expect(expectJsonError(res, 404)).toEqual({ code: "NOT_FOUND", message: "no route for POST /nope" });
    });

    it("/uppercase/ with a trailing slash answers 404 NOT_FOUND", async () => {
      const res = await send(server.port, {
        path: "/uppercase/",
        headers: { "content-type": "application/json" },
        body: '{"s":"a"}',
      });
      expect(expectJsonError(res, 404)).toEqual({
        code: "NOT_FOUND",
        message: "no route for POST /uppercase/",
      });
    });

    it("GET /uppercase answers 405 with Allow: POST", async () => {
      const res = await fetch(`${server.origin}/uppercase`);
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("POST");
      expect(res.headers.get("content-type")).toBe(JSON_TYPE);
      expect(await res.json()).toEqual({
        code: "UNIMPLEMENTED",
        message: "method GET is not allowed on /uppercase",
      });
    });

    it("an x-request-timeout header that is not whole milliseconds answers 400 INVALID_ARGUMENT", async () => {
      for (const value of ["soon", "-1", "1.5", "1e3", ""]) {
        const res = await send(server.port, {
          path: "/uppercase",
          headers: { "content-type": "application/json", "x-request-timeout": value },
          body: '{"s":"a"}',
        });
        expect(expectJsonError(res, 400)).toEqual({
          code: "INVALID_ARGUMENT",
          message: "invalid x-request-timeout header: expected a whole number of milliseconds",
        });
      }
    });

    it("the query string is ignored when routing", async () => {
      const res = await send(server.port, {
        path: "/uppercase?debug=1",
        headers: { "content-type": "application/json" },
        body: '{"s":"q"}',
      });
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ v: "Q" });
    });

    it("a bad request does not spoil its kept-alive connection: the next request on it is answered", async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const bad = await send(server.port, {
          path: "/count",
          headers: { "content-type": "application/json" },
          body: "{",
          agent,
        });
        expectJsonError(bad, 400);
        const good = await send(server.port, {
          path: "/count",
          headers: { "content-type": "application/json" },
          body: '{"s":"still here"}',
          agent,
        });
        expect(good.status).toBe(200);
        expect(good.json()).toEqual({ v: 10 });
      } finally {
        agent.destroy();
      }
    });
  });
});

describe("stringsvc deadlines", () => {
  afterEach(closeServers);

  /** The stringsvc router with `uppercase` replaced. */
  async function serveWith(uppercase: Endpoint<StringRequest, UppercaseResponse>): Promise<TestServer> {
    const endpoints = { ...makeEndpoints(createStringService()), uppercase };
    return listen(createStringsvcRouter(endpoints).handle);
  }

  it("a client call with createContext({ timeout: 50 }) to a slow endpoint fails with DEADLINE_EXCEEDED", async () => {
    const slow: Endpoint<StringRequest, UppercaseResponse> = async (ctx, req) => {
      await wait(ctx, 10_000);
      return { v: req.s.toUpperCase() };
    };
    const server = await serveWith(slow);
    const client = createStringsvcClient(server.origin);
    const failure = await client.uppercase(createContext({ timeout: 50 }), { s: "abc" }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ServiceError);
    expect(failure).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });

  it("the client's deadline reaches the server endpoint's context through x-request-timeout", async () => {
    const seen: (number | undefined)[] = [];
    const server = await serveWith(async (ctx, req) => {
      seen.push(ctx.timeRemaining());
      return { v: req.s.toUpperCase() };
    });
    const client = createStringsvcClient(server.origin);
    expect(await client.uppercase(createContext({ timeout: 5_000 }), { s: "abc" })).toEqual({ v: "ABC" });
    expect(await client.uppercase(createContext(), { s: "abc" })).toEqual({ v: "ABC" });
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBeGreaterThan(0);
    expect(seen[0]).toBeLessThanOrEqual(5_000);
    expect(seen[1]).toBeUndefined();
  });

  it("a raw request with x-request-timeout: 50 to an endpoint that honours ctx.signal answers 504 DEADLINE_EXCEEDED", async () => {
    const server = await serveWith(async (ctx, req) => {
      await wait(ctx, 10_000);
      return { v: req.s.toUpperCase() };
    });
    const res = await send(server.port, {
      path: "/uppercase",
      headers: { "content-type": "application/json", "x-request-timeout": "50" },
      body: '{"s":"abc"}',
    });
    expect(expectJsonError(res, 504)).toEqual({ code: "DEADLINE_EXCEEDED", message: "deadline exceeded" });
  });

  it("the timeout middleware on the server turns a slow endpoint into DEADLINE_EXCEEDED at the client", async () => {
    let release: () => void = () => {};
    const stuck = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Ignores its context on purpose: the middleware must answer anyway.
    const ignoring: Endpoint<StringRequest, UppercaseResponse> = async (_ctx, req) => {
      await stuck;
      return { v: req.s.toUpperCase() };
    };
    const server = await serveWith(chain(timeout<StringRequest, UppercaseResponse>(50))(ignoring));
    try {
      const client = createStringsvcClient(server.origin);
      const failure = await client.uppercase(createContext(), { s: "abc" }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(ServiceError);
      expect(failure).toMatchObject({ code: Code.DEADLINE_EXCEEDED, message: "deadline exceeded" });
    } finally {
      release();
    }
  });
});

/** grpc.health.v1 messages, with the codecs `@svckit/health` exports for clients. */
const encodeHealthRequest = (request: { service: string }): Buffer =>
  Buffer.from(healthCheckRequest.encode(request));
const decodeHealthResponse = (bytes: Buffer): HealthCheckResponse => healthCheckResponse.decode(bytes);

/** `grpc.health.v1.Health/Check` of `service` with a plain grpc-js client. */
function healthCheck(client: Client, service: string): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      `/${HEALTH_SERVICE_NAME}/Check`,
      encodeHealthRequest,
      decodeHealthResponse,
      { service },
      new Metadata(),
      { deadline: Date.now() + 5_000 },
      (err: GrpcError | null, value?: HealthCheckResponse) => {
        if (err !== null) reject(err);
        else resolve(value as HealthCheckResponse);
      },
    );
  });
}

describe("the built stringsvc demo", () => {
  const main = `${root}examples/stringsvc/dist/main.js`;

  beforeAll(async () => {
    // Build when dist is missing or older than the sources; `tsc -b` is incremental.
    const src = `${root}examples/stringsvc/src`;
    const sources = (await readdir(src))
      .filter((f) => f.endsWith(".ts"))
      .map((f) => statSync(`${src}/${f}`).mtimeMs);
    const libs = [
      "endpoint",
      "codec-json",
      "codec-protobuf",
      "transport-http",
      "transport-grpc",
      "app",
      "health",
    ].map((p) => `${root}packages/${p}/dist/index.js`);
    const stale =
      !existsSync(main) || statSync(main).mtimeMs < Math.max(...sources) || !libs.every(existsSync);
    if (stale) execFileSync("pnpm", ["exec", "tsc", "-b"], { cwd: root, stdio: "pipe", timeout: 25_000 });
    expect(existsSync(main)).toBe(true);
  }, 30_000);
  afterEach(stopProcesses);

  /** The JSON log lines the demo printed so far with this `msg`. */
  function logLines(demo: TestProcess, msg: string): Record<string, unknown>[] {
    return demo
      .stdout()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === msg);
  }

  it('with --grpc-addr off: HTTP only, as before: one "listening" line, answers /uppercase, exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const demo = startProcess(
      process.execPath,
      [main, "--http-addr", `127.0.0.1:${port}`, "--grpc-addr", "off"],
      root,
    );
    const listening = await demo.line((l) => l.includes('"listening"'), 10_000);
    expect(JSON.parse(listening)).toEqual({
      level: "info",
      msg: "listening",
      transport: "HTTP",
      addr: `127.0.0.1:${port}`,
    });

    const res = await fetch(`http://127.0.0.1:${port}/uppercase`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"s":"hello"}',
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"v":"HELLO"}');
    const client = createStringsvcClient(`http://127.0.0.1:${port}`);
    expect(await client.count(createContext({ timeout: 5_000 }), { s: "hello" })).toEqual({ v: 5 });

    process.kill(demo.pid, "SIGTERM");
    expect(await demo.exited(5_000)).toEqual({ code: 0, signal: null });
    expect(demo.stdout()).toContain('"msg":"shutting down","signal":"SIGTERM"');
    expect(logLines(demo, "listening")).toHaveLength(1);
    expect(demo.stderr()).toBe("");
  });

  it("with both addresses: logs two listening lines, answers on HTTP and gRPC through one chain, exits 0 on SIGTERM", async () => {
    const httpPort = await freePort();
    let grpcPort = await freePort();
    while (grpcPort === httpPort) grpcPort = await freePort();
    const demo = startProcess(
      process.execPath,
      [main, "--http-addr", `127.0.0.1:${httpPort}`, "--grpc-addr", `127.0.0.1:${grpcPort}`],
      root,
    );
    await demo.line((l) => l.includes('"listening"') && l.includes('"HTTP"'), 10_000);
    await demo.line((l) => l.includes('"listening"') && l.includes('"gRPC"'), 10_000);
    expect(logLines(demo, "listening")).toEqual(
      expect.arrayContaining([
        { level: "info", msg: "listening", transport: "HTTP", addr: `127.0.0.1:${httpPort}` },
        { level: "info", msg: "listening", transport: "gRPC", addr: `127.0.0.1:${grpcPort}` },
      ]),
    );
    expect(logLines(demo, "listening")).toHaveLength(2);

    const ctx = createContext({ timeout: 5_000 });
    const http = createStringsvcClient(`http://127.0.0.1:${httpPort}`);
    const grpc = createStringsvcGrpcClient(`127.0.0.1:${grpcPort}`);
    try {
      expect(await http.uppercase(ctx, { s: "hello" })).toEqual({ v: "HELLO" });
      expect(await grpc.uppercase(ctx, { s: "hello" })).toEqual({ v: "HELLO" });
      expect(await grpc.count(ctx, { s: "héllo 👋" })).toEqual({ v: 7 });
      const empty = await grpc.uppercase(ctx, { s: "" }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(empty).toBeInstanceOf(ServiceError);
      expect(empty).toMatchObject({ code: Code.INVALID_ARGUMENT, message: "empty string" });
      // Requests are limited to 1 MiB on gRPC too (the HTTP body limit answers 413).
      const large = await grpc.count(ctx, { s: "x".repeat(1 << 20) }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(large).toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
      expect(await grpc.count(ctx, { s: "still serving" })).toEqual({ v: 13 });

      // SIGTERM with the gRPC client's connection still open.
      process.kill(demo.pid, "SIGTERM");
      // Lines arrive in order: once "shutting down" is in, so are the call lines before it.
      await demo.line((l) => l.includes('"shutting down"'), 5_000);
      // The shared logging middleware wrote one line per call that reached the endpoints.
      const calls = logLines(demo, "call").map(
        ({ method, transport, code }) => `${transport} ${method} ${code}`,
      );
      expect(calls).toEqual([
        "HTTP uppercase OK",
        "gRPC uppercase OK",
        "gRPC count OK",
        "gRPC uppercase INVALID_ARGUMENT",
        "gRPC count OK",
      ]);

      expect(await demo.exited(5_000)).toEqual({ code: 0, signal: null });
    } finally {
      grpc.close();
    }
    expect(demo.stdout()).toContain('"msg":"shutting down","signal":"SIGTERM"');
    expect(demo.stderr()).toBe("");
  });

  it("with --http-addr off: gRPC only, one listening line, exits 0 on SIGTERM", async () => {
    const grpcPort = await freePort();
    const demo = startProcess(
      process.execPath,
      [main, "--http-addr", "off", "--grpc-addr", `127.0.0.1:${grpcPort}`],
      root,
    );
    await demo.line((l) => l.includes('"listening"'), 10_000);
    const grpc = createStringsvcGrpcClient(`127.0.0.1:${grpcPort}`);
    try {
      expect(await grpc.count(createContext({ timeout: 5_000 }), { s: "hello" })).toEqual({ v: 5 });
    } finally {
      grpc.close();
    }
    expect(logLines(demo, "listening")).toEqual([
      { level: "info", msg: "listening", transport: "gRPC", addr: `127.0.0.1:${grpcPort}` },
    ]);
    process.kill(demo.pid, "SIGTERM");
    expect(await demo.exited(5_000)).toEqual({ code: 0, signal: null });
    expect(demo.stderr()).toBe("");
  });

  it('--http-addr "" and --grpc-addr off together exit 2: nothing to serve', async () => {
    const demo = startProcess(process.execPath, [main, "--http-addr", "", "--grpc-addr", "off"], root);
    expect(await demo.exited(10_000)).toEqual({ code: 2, signal: null });
    expect(demo.stderr()).toContain("--http-addr and --grpc-addr are both off");
    expect(demo.stdout()).toBe("");
  });

  it("a --grpc-addr already in use exits 1 with a message", async () => {
    const taken = await listen((_req, res) => res.end());
    try {
      const demo = startProcess(
        process.execPath,
        [main, "--http-addr", "off", "--grpc-addr", `127.0.0.1:${taken.port}`],
        root,
      );
      expect(await demo.exited(10_000)).toEqual({ code: 1, signal: null });
      expect(demo.stderr()).toMatch(/stringsvc: gRPC: .*EADDRINUSE/);
      expect(demo.stdout()).toBe("");
    } finally {
      await taken.close();
    }
  });

  it("a request in flight when SIGTERM arrives is answered with connection: close, then the demo exits 0", async () => {
    const port = await freePort();
    const demo = startProcess(
      process.execPath,
      [main, "--http-addr", `127.0.0.1:${port}`, "--grpc-addr", "off"],
      root,
    );
    await demo.line((l) => l.includes('"listening"'), 10_000);
    const agent = new http.Agent({ keepAlive: true });
    try {
      const body = '{"s":"abc"}';
      const answer = new Promise<{ status: number; connection: string | undefined; text: string }>(
        (resolve, reject) => {
          const req = http.request(
            {
              host: "127.0.0.1",
              port,
              method: "POST",
              path: "/uppercase",
              agent,
              // With 100-continue the server answers "100 Continue" once it has taken the request: from
              // then on the call is in flight, and the body is sent only after the shutdown began.
              headers: {
                "content-type": "application/json",
                "content-length": body.length,
                expect: "100-continue",
              },
            },
            (res) => {
              let text = "";
              res.setEncoding("utf8");
              res.on("data", (s: string) => {
                text += s;
              });
              res.on("end", () =>
                resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, text }),
              );
            },
          );
          req.on("error", reject);
          req.on("continue", () => {
            process.kill(demo.pid, "SIGTERM");
            demo.line((l) => l.includes('"shutting down"'), 5_000).then(() => req.end(body), reject);
          });
          req.flushHeaders();
        },
      );
      expect(await answer).toEqual({ status: 200, connection: "close", text: '{"v":"ABC"}' });
      expect(await demo.exited(5_000)).toEqual({ code: 0, signal: null });
    } finally {
      agent.destroy();
    }
  });

  it.each(
    ["--http-addr", "--grpc-addr"].flatMap((flag) =>
      ["nonsense", "127.0.0.1:99999", "127.0.0.1:0x50", "127.0.0.1:", "127.0.0.1:8080x"].map((addr) => [
        flag,
        addr,
      ]),
    ),
  )("%s %j exits 2 with a usage message", async (flag, addr) => {
    const demo = startProcess(process.execPath, [main, flag, addr], root);
    expect(await demo.exited(10_000)).toEqual({ code: 2, signal: null });
    expect(demo.stderr()).toContain(`invalid address "${addr}"`);
    expect(demo.stderr()).toContain("usage: stringsvc [--http-addr host:port]");
    expect(demo.stdout()).toBe("");
  });

  it("an unknown flag exits 2 with a usage message", async () => {
    const demo = startProcess(process.execPath, [main, "--port", "8080"], root);
    expect(await demo.exited(10_000)).toEqual({ code: 2, signal: null });
    expect(demo.stderr()).toMatch(/^stringsvc: .*--port/);
    expect(demo.stderr()).toContain("usage: stringsvc [--http-addr host:port]");
  });

  /** Starts the demo with `args` (port 0 picks free ports) and returns the ports its listening lines name. */
  async function startDemo(
    args: readonly string[],
  ): Promise<{ demo: TestProcess; ports: Partial<Record<"HTTP" | "gRPC", number>> }> {
    const demo = startProcess(process.execPath, [main, ...args], root);
    const ports: Partial<Record<"HTTP" | "gRPC", number>> = {};
    for (const [transport, flag] of [
      ["HTTP", "--http-addr"],
      ["gRPC", "--grpc-addr"],
    ] as const) {
      if (args[args.indexOf(flag) + 1] === "off") continue;
      const line = await demo.line(
        (l) => l.includes('"listening"') && l.includes(`"transport":"${transport}"`) && l.endsWith("}"),
        10_000,
      );
      ports[transport] = Number((JSON.parse(line) as { addr: string }).addr.split(":").at(-1));
    }
    return { demo, ports };
  }

  it("answers GET /healthz and /readyz with JSON reports and grpc.health.v1 Check with SERVING, without logging calls", async () => {
    const { demo, ports } = await startDemo(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"]);
    const httpPort = ports.HTTP as number;

    const live = await send(httpPort, { method: "GET", path: "/healthz" });
    expect(live.status).toBe(200);
    expect(live.headers["content-type"]).toBe(JSON_TYPE);
    expect(live.headers["cache-control"]).toBe("no-store");
    expect(live.json()).toEqual({ status: "passing", checks: {} });

    const ready = await send(httpPort, { method: "GET", path: "/readyz?verbose=1" });
    expect(ready.status).toBe(200);
    expect(ready.headers["content-type"]).toBe(JSON_TYPE);
    expect(ready.headers["cache-control"]).toBe("no-store");
    expect(ready.json()).toEqual({ status: "passing", serving: true, checks: {} });

    const head = await send(httpPort, { method: "HEAD", path: "/readyz" });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");

    const post = await send(httpPort, { method: "POST", path: "/readyz", body: "{}" });
    expect(expectJsonError(post, 405)).toEqual({
      code: "UNIMPLEMENTED",
      message: "method POST is not allowed on /readyz",
    });
    expect(post.headers.allow).toBe("GET, HEAD");

    const client = new Client(`127.0.0.1:${ports.gRPC}`, credentials.createInsecure());
    try {
      expect(await healthCheck(client, "")).toEqual({ status: "SERVING" });
      expect(await healthCheck(client, STRING_SERVICE)).toEqual({ status: "SERVING" });
      const unknown = await healthCheck(client, "stringsvc.v1.Nope").then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(unknown).toMatchObject({
        code: status.NOT_FOUND,
        details: 'unknown service "stringsvc.v1.Nope"',
      });
    } finally {
      client.close();
    }

    // Probes are not calls of the service: the logging middleware never saw them.
    expect(logLines(demo, "call")).toEqual([]);
    process.kill(demo.pid, "SIGTERM");
    expect(await demo.exited(5_000)).toEqual({ code: 0, signal: null });
    expect(demo.stderr()).toBe("");
  });

  it('on SIGTERM a grpc.health.v1 Watch of "" sees NOT_SERVING and ends UNAVAILABLE, and the open watch does not hold the exit up', async () => {
    const { demo, ports } = await startDemo(["--http-addr", "off", "--grpc-addr", "127.0.0.1:0"]);
    const client = new Client(`127.0.0.1:${ports.gRPC}`, credentials.createInsecure());
    try {
      const statuses: string[] = [];
      const call = client.makeServerStreamRequest(
        `/${HEALTH_SERVICE_NAME}/Watch`,
        encodeHealthRequest,
        decodeHealthResponse,
        { service: "" },
        new Metadata(),
        {},
      );
      const first = new Promise<void>((resolve) => call.once("data", () => resolve()));
      call.on("data", (response: HealthCheckResponse) => statuses.push(response.status));
      const ended = new Promise<GrpcError>((resolve) => call.on("error", resolve));
      await within(first, 5_000, "no status from Watch");
      expect(statuses).toEqual(["SERVING"]);

      process.kill(demo.pid, "SIGTERM");
      const error = await within(ended, 5_000, "the Watch did not end");
      expect(error).toMatchObject({ code: status.UNAVAILABLE, details: "the server is shutting down" });
      expect(statuses).toEqual(["SERVING", "NOT_SERVING"]);
      // Well within the 10 s drain timeout: the watch was ended, not waited for.
      expect(await demo.exited(5_000)).toEqual({ code: 0, signal: null });
    } finally {
      client.close();
    }
    expect(logLines(demo, "drain timeout")).toEqual([]);
    expect(demo.stderr()).toBe("");
  });

  it("a /readyz request begun before SIGTERM and completed after it is answered 503 not serving, with connection: close", async () => {
    const { demo, ports } = await startDemo(["--http-addr", "127.0.0.1:0", "--grpc-addr", "off"]);
    const port = ports.HTTP as number;
    const socket = net.connect(port, "127.0.0.1");
    try {
      let raw = "";
      socket.setEncoding("utf8");
      socket.on("data", (s: string) => {
        raw += s;
      });
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", reject);
      });
      // Headers not finished: the connection is busy with a request, so the shutdown does not close
      // it as idle but waits for its answer.
      socket.write("GET /readyz HTTP/1.1\r\nhost: 127.0.0.1\r\n");
      // Answered only after the server has read the bytes above (loopback delivered them first).
      expect((await send(port, { method: "GET", path: "/readyz" })).status).toBe(200);

      process.kill(demo.pid, "SIGTERM");
      await demo.line((l) => l.includes('"shutting down"'), 5_000);
      socket.write("\r\n");
      await within(closed, 5_000, `the connection stayed open; got ${JSON.stringify(raw)}`);

      const [head = "", body] = raw.split("\r\n\r\n");
      const [statusLine, ...headerLines] = head.split("\r\n");
      expect(statusLine).toBe("HTTP/1.1 503 Service Unavailable");
      expect(headerLines.map((l) => l.toLowerCase())).toEqual(
        expect.arrayContaining(["connection: close", `content-type: ${JSON_TYPE}`]),
      );
      expect(JSON.parse(body ?? "")).toEqual({ status: "critical", serving: false, checks: {} });
      expect(await demo.exited(5_000)).toEqual({ code: 0, signal: null });
    } finally {
      socket.destroy();
    }
    expect(demo.stderr()).toBe("");
  });

  it("--help prints the usage and exits 0", async () => {
    const demo = startProcess(process.execPath, [main, "--help"], root);
    expect(await demo.exited(10_000)).toEqual({ code: 0, signal: null });
    expect(demo.stdout()).toContain("usage: stringsvc [--http-addr host:port]");
  });
});
