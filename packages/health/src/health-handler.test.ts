import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code } from "@svckit/endpoint";
import { createHealth, createHealthHandler, type HealthHandlerOptions } from "@svckit/health";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";

const servers: http.Server[] = [];

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

async function listen(listener: http.RequestListener): Promise<number> {
  const server = http.createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
}

function request(port: number, path: string, method = "GET"): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("createHealthHandler", () => {
  it("GET /healthz and /readyz answer 200 with the JSON report", async () => {
    const health = createHealth({ liveness: { loop: () => undefined }, readiness: { db: () => undefined } });
    const port = await listen(createHealthHandler(health));
    const live = await request(port, "/healthz");
    expect(live.status).toBe(200);
    expect(live.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(live.headers["cache-control"]).toBe("no-store");
    expect(Number(live.headers["content-length"])).toBe(Buffer.byteLength(live.text));
    expect(JSON.parse(live.text)).toEqual({
      status: "passing",
      checks: { loop: { status: "passing", durationMs: expect.any(Number) } },
    });
    const ready = await request(port, "/readyz?verbose=1");
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({
      status: "passing",
      serving: true,
      checks: { db: { status: "passing", durationMs: expect.any(Number) } },
    });
  });

  it.each([
    [{}, "warning", 200],
    [{ warningStatus: 429 }, "warning", 429],
    [{}, "critical", 503],
    [{ warningStatus: 429 }, "passing", 200],
  ] as const)("with %o a %s report answers %i", async (options: HealthHandlerOptions, status, code) => {
    const health = createHealth({ readiness: { x: () => ({ status, message: `it is ${status}` }) } });
    const port = await listen(createHealthHandler(health, options));
    const answer = await request(port, "/readyz");
    expect(answer.status).toBe(code);
    expect(JSON.parse(answer.text)).toMatchObject({
      status,
      checks: { x: { status, message: `it is ${status}` } },
    });
  });

  it("readiness answers 503 once not serving (the app stopping), while liveness stays 200", async () => {
    const health = createHealth();
    const port = await listen(createHealthHandler(health));
    health.setServing(false);
    const ready = await request(port, "/readyz");
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.text)).toEqual({ status: "critical", serving: false, checks: {} });
    expect((await request(port, "/healthz")).status).toBe(200);
  });

  it("a failing check's body has its message only", async () => {
    const health = createHealth({
      readiness: {
        db: () => {
          const err = new Error("password authentication failed");
          err.stack = "Error: secret stack /srv/app/db.js:10";
          throw err;
        },
      },
    });
    const port = await listen(createHealthHandler(health));
    const answer = await request(port, "/readyz");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.text)).toEqual({
      status: "critical",
      serving: true,
      checks: {
        db: { status: "critical", message: "password authentication failed", durationMs: expect.any(Number) },
      },
    });
    expect(answer.text).not.toContain("/srv/app");
  });

  it("HEAD answers the same status and headers without a body", async () => {
    const health = createHealth({ liveness: { x: () => ({ status: "critical" }) } });
    const port = await listen(createHealthHandler(health));
    const answer = await request(port, "/healthz", "HEAD");
    expect(answer.status).toBe(503);
    expect(answer.text).toBe("");
    expect(Number(answer.headers["content-length"])).toBeGreaterThan(0);
  });

  it("other methods get 405 with Allow and a JSON error", async () => {
    const port = await listen(createHealthHandler(createHealth()));
    const answer = await request(port, "/readyz", "POST");
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe("GET, HEAD");
    expect(JSON.parse(answer.text)).toEqual({
      code: "UNIMPLEMENTED",
      message: "method POST is not allowed on /readyz",
    });
  });

  it("other paths get 404 on a bare node:http server", async () => {
    const port = await listen(createHealthHandler(createHealth()));
    const answer = await request(port, "/healthz/");
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.text)).toEqual({ code: "NOT_FOUND", message: "no route for GET /healthz/" });
  });

  it("configurable paths", async () => {
    const health = createHealth();
    const port = await listen(
      createHealthHandler(health, { livenessPath: "/live", readinessPath: "/ready" }),
    );
    expect((await request(port, "/live")).status).toBe(200);
    expect((await request(port, "/ready")).status).toBe(200);
    expect((await request(port, "/healthz")).status).toBe(404);
  });

  it("works as express middleware: its paths answered, the others passed on with next()", async () => {
    const app = express();
    app.use(createHealthHandler(createHealth()));
    app.get("/hello", (_req, res) => {
      res.send("world");
    });
    const mounted = express();
    mounted.use("/ops", createHealthHandler(createHealth({ serving: false })));
    const port = await listen(app);
    expect((await request(port, "/readyz")).status).toBe(200);
    expect(await request(port, "/hello")).toMatchObject({ status: 200, text: "world" });
    const mountedPort = await listen(mounted);
    expect((await request(mountedPort, "/ops/readyz")).status).toBe(503);
  });

  it("a report that cannot be produced answers 500 without details", async () => {
    const health = createHealth();
    const broken = { ...health, liveness: () => Promise.reject(new Error("bug")) } as typeof health;
    const port = await listen(createHealthHandler(broken));
    const answer = await request(port, "/healthz");
    expect(answer.status).toBe(500);
    expect(JSON.parse(answer.text)).toEqual({ code: "INTERNAL", message: "internal error" });
  });

  it.each([
    [
      { livenessPath: "healthz" },
      'invalid livenessPath "healthz": expected a path starting with "/" without query or spaces',
    ],
    [
      { readinessPath: "/ready?x" },
      'invalid readinessPath "/ready?x": expected a path starting with "/" without query or spaces',
    ],
    [
      { livenessPath: "/same", readinessPath: "/same" },
      'livenessPath and readinessPath are both "/same": they must differ',
    ],
    [{ warningStatus: 100 }, "invalid warningStatus 100: expected an HTTP status from 200 to 599"],
    [{ warningStatus: 429.5 }, "invalid warningStatus 429.5: expected an HTTP status from 200 to 599"],
  ])("refuses %o with INVALID_ARGUMENT", (options, message) => {
    expect(() => createHealthHandler(createHealth(), options)).toThrow(message);
    try {
      createHealthHandler(createHealth(), options);
    } catch (err) {
      expect(err).toMatchObject({ code: Code.INVALID_ARGUMENT });
    }
  });

  it("returns a named function", () => {
    expect(createHealthHandler(createHealth()).name).toBe("healthHandler");
  });
});
