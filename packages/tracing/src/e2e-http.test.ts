// Over real HTTP: svckit's HTTP server and client carry the trace context with no code of their own.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { Code, type Context, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { clientTracing, serverTracing, traceIdKey } from "@svckit/tracing";
import {
  createHttpClient,
  createHttpHandler,
  createRouter,
  encodeJsonResponse,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterEach, describe, expect, it } from "vitest";
import {
  installOtel,
  PARENT_SPAN_ID,
  parseTraceparent,
  resetOtel,
  TRACE_ID,
  TRACEPARENT,
} from "./test-helpers.js";

const servers: http.Server[] = [];

afterEach(async () => {
  resetOtel();
  await Promise.all(
    servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
});

async function listen(listener: http.RequestListener): Promise<string> {
  const server = http.createServer(listener);
  servers.push(server);
  await once(server.listen(0, "127.0.0.1"), "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface Rename {
  id: string;
}

/** The backend: POST /users/:id, which answers what it saw of the trace. */
async function backend(): Promise<{ base: string; seen: Context[] }> {
  const seen: Context[] = [];
  const rename: Endpoint<Rename, { traceId: string | undefined; traceparent: string | undefined }> = async (
    ctx,
    req,
  ) => {
    seen.push(ctx);
    if (req.id === "missing") throw new ServiceError(Code.NOT_FOUND, "no user missing");
    if (req.id === "broken") throw new Error("database is down");
    return { traceId: ctx.value(traceIdKey), traceparent: ctx.metadata.get("traceparent") };
  };
  const router = createRouter().post(
    "/users/:id",
    createHttpHandler(
      serverTracing()(rename),
      async (_ctx, request) => ({ id: request.params.id ?? "" }),
      encodeJsonResponse,
    ),
  );
  return { base: await listen(router.handle), seen };
}

function renameClient(base: string): Endpoint<Rename, { traceId: string | undefined }> {
  const client = createHttpClient<Rename, { traceId: string | undefined }>(
    `${base}/users`,
    "POST",
    (_ctx, req) => ({ path: `/${req.id}` }),
    jsonResponseDecoder(),
  );
  return clientTracing({ transport: "http", method: "POST", route: "/users/:id", url: base })(client);
}

describe("tracing over svckit's HTTP transport", () => {
  it("carries the trace id across the wire: the server span is the child of the client span", async () => {
    const otel = installOtel();
    const { base } = await backend();
    const reply = await renameClient(base)(createContext({ timeout: 2_000 }), { id: "42" });
    expect(otel.spans()).toHaveLength(2);
    const clientSpan = otel.spans().find((s) => s.kind === SpanKind.CLIENT);
    const serverSpan = otel.spans().find((s) => s.kind === SpanKind.SERVER);
    if (clientSpan === undefined) throw new Error("no client span");
    expect(clientSpan.name).toBe("POST /users/:id");
    expect(serverSpan?.name).toBe("POST /users/:id");
    expect(serverSpan?.spanContext().traceId).toBe(clientSpan.spanContext().traceId);
    expect(serverSpan?.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId);
    expect(reply.traceId).toBe(clientSpan.spanContext().traceId); // the server's traceIdKey
    expect(serverSpan?.attributes).toMatchObject({
      "http.request.method": "POST",
      "http.route": "/users/:id",
      "http.response.status_code": 200,
    });
    expect(clientSpan.attributes).toMatchObject({
      "url.template": "/users/:id",
      "server.address": "127.0.0.1",
      "server.port": Number(new URL(base).port),
      "http.response.status_code": 200,
    });
  });

  it("puts gateway server → gateway client → backend server in one trace, from the caller's traceparent", async () => {
    const otel = installOtel();
    const { base: backendBase } = await backend();
    const client = renameClient(backendBase);
    const gateway: Endpoint<Rename, { traceId: string | undefined }> = async (ctx, req) => client(ctx, req);
    const router = createRouter().post(
      "/rename/:id",
      createHttpHandler(
        serverTracing()(gateway),
        async (_ctx, request) => ({ id: request.params.id ?? "" }),
        encodeJsonResponse,
      ),
    );
    const gatewayBase = await listen(router.handle);
    const res = await fetch(`${gatewayBase}/rename/7`, {
      method: "POST",
      headers: { traceparent: TRACEPARENT },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { traceId: string }).traceId).toBe(TRACE_ID);
    const gatewaySpan = otel.span("POST /rename/:id");
    const [clientSpan, backendSpan] = ["CLIENT", "SERVER"].map((kind) =>
      otel
        .spans()
        .find((s) => s.name === "POST /users/:id" && s.kind === SpanKind[kind as "CLIENT" | "SERVER"]),
    );
    expect(otel.spans()).toHaveLength(3);
    expect(otel.spans().map((s) => s.spanContext().traceId)).toEqual([TRACE_ID, TRACE_ID, TRACE_ID]);
    expect(gatewaySpan.parentSpanContext?.spanId).toBe(PARENT_SPAN_ID);
    expect(clientSpan?.parentSpanContext?.spanId).toBe(gatewaySpan.spanContext().spanId);
    expect(backendSpan?.parentSpanContext?.spanId).toBe(clientSpan?.spanContext().spanId);
  });

  it("records the traceparent the backend received: its parent id is the client span", async () => {
    const otel = installOtel();
    const { base, seen } = await backend();
    await renameClient(base)(createContext({ timeout: 2_000 }), { id: "1" });
    const sent = parseTraceparent(seen[0]?.metadata.get("traceparent"));
    expect(sent.spanId).toBe(
      otel
        .spans()
        .find((s) => s.kind === SpanKind.CLIENT)
        ?.spanContext().spanId,
    );
  });

  it("maps an error answer: server span 404 UNSET, client span 404 ERROR", async () => {
    const otel = installOtel();
    const { base } = await backend();
    await expect(
      renameClient(base)(createContext({ timeout: 2_000 }), { id: "missing" }),
    ).rejects.toMatchObject({
      code: Code.NOT_FOUND,
      message: "no user missing",
    });
    const server = otel.spans().find((s) => s.kind === SpanKind.SERVER);
    const client = otel.spans().find((s) => s.kind === SpanKind.CLIENT);
    expect(server?.attributes).toMatchObject({
      "http.response.status_code": 404,
      "svckit.code": "NOT_FOUND",
    });
    expect(server?.status.code).toBe(SpanStatusCode.UNSET);
    expect(client?.attributes).toMatchObject({
      "http.response.status_code": 404,
      "svckit.code": "NOT_FOUND",
      "error.type": "NOT_FOUND",
    });
    expect(client?.status).toEqual({ code: SpanStatusCode.ERROR, message: "no user missing" });
  });

  it("maps a server fault: the server span keeps the real message and exception, the client sees 500", async () => {
    const otel = installOtel();
    const { base } = await backend();
    await expect(
      renameClient(base)(createContext({ timeout: 2_000 }), { id: "broken" }),
    ).rejects.toMatchObject({
      code: Code.INTERNAL,
      message: "internal error",
    });
    const server = otel.spans().find((s) => s.kind === SpanKind.SERVER);
    const client = otel.spans().find((s) => s.kind === SpanKind.CLIENT);
    expect(server?.status).toEqual({ code: SpanStatusCode.ERROR, message: "database is down" });
    expect(server?.events[0]?.attributes).toMatchObject({ "exception.message": "database is down" });
    expect(client?.status).toEqual({ code: SpanStatusCode.ERROR, message: "internal error" });
    expect(client?.attributes["http.response.status_code"]).toBe(500);
  });

  it("records no status code when the connection fails", async () => {
    const otel = installOtel();
    const base = await listen(() => undefined);
    await new Promise<void>((resolve) => servers.pop()?.close(() => resolve()));
    await expect(renameClient(base)(createContext({ timeout: 2_000 }), { id: "1" })).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
    });
    const client = otel.span("POST /users/:id"); // only the client: no server answered
    expect(client.attributes["http.response.status_code"]).toBeUndefined();
    expect(client.attributes["error.type"]).toBe("UNAVAILABLE");
    expect(client.status.code).toBe(SpanStatusCode.ERROR);
  });
});
