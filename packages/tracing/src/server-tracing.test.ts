import { readFile } from "node:fs/promises";
import {
  context,
  type Context as OtelContext,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type TextMapPropagator,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  type CallInfo,
  Code,
  type CodeName,
  type Context,
  createContext,
  type Endpoint,
  type MetadataInit,
  ServiceError,
} from "@svckit/endpoint";
import { metadataGetter, otelContextKey, serverTracing, traceIdKey } from "@svckit/tracing";
import { afterEach, describe, expect, it } from "vitest";
import { installOtel, PARENT_SPAN_ID, resetOtel, TRACE_ID, TRACEPARENT } from "./test-helpers.js";

afterEach(resetOtel);

const HTTP_POST: CallInfo = { transport: "http", method: "POST", route: "/users/:id" };
const GRPC_SUM: CallInfo = { transport: "grpc", method: "/pb.Add/Sum" };

/** A context as a transport makes it: incoming metadata and a CallInfo (`null`: none). */
function incoming(metadata: MetadataInit = {}, callInfo: CallInfo | null = HTTP_POST): Context {
  return createContext({ metadata, ...(callInfo === null ? {} : { callInfo }) });
}

/** An endpoint that records the context it was called with. */
function recorder(): { endpoint: Endpoint<string, string>; seen: Context[] } {
  const seen: Context[] = [];
  return {
    seen,
    endpoint: async (ctx, req) => {
      seen.push(ctx);
      return req.toUpperCase();
    },
  };
}

function failing(error: unknown): Endpoint<string, string> {
  return async () => {
    throw error;
  };
}

describe("serverTracing: trace context extraction", () => {
  it("continues the trace of an incoming traceparent: same trace id, parent is the caller's span", async () => {
    const otel = installOtel();
    const { endpoint, seen } = recorder();
    const traced = serverTracing()(endpoint);
    await expect(traced(incoming({ traceparent: TRACEPARENT }), "abc")).resolves.toBe("ABC");
    const span = otel.span("POST /users/:id");
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.spanContext().traceId).toBe(TRACE_ID);
    expect(span.parentSpanContext?.spanId).toBe(PARENT_SPAN_ID);
    expect(span.parentSpanContext?.isRemote).toBe(true);
    expect(span.spanContext().spanId).not.toBe(PARENT_SPAN_ID);
    expect(seen[0]?.value(traceIdKey)).toBe(TRACE_ID);
  });

  it("starts a new root trace without a traceparent", async () => {
    const otel = installOtel();
    const { endpoint, seen } = recorder();
    await serverTracing()(endpoint)(incoming(), "abc");
    const span = otel.span("POST /users/:id");
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(span.spanContext().traceId).not.toBe("0".repeat(32));
    expect(seen[0]?.value(traceIdKey)).toBe(span.spanContext().traceId);
  });

  it.each([
    ["not a traceparent", "garbage"],
    ["all-zero trace id", `00-${"0".repeat(32)}-${PARENT_SPAN_ID}-01`],
    ["all-zero span id", `00-${TRACE_ID}-${"0".repeat(16)}-01`],
    ["version ff", `ff-${TRACE_ID}-${PARENT_SPAN_ID}-01`],
    ["short trace id", `00-${TRACE_ID.slice(1)}-${PARENT_SPAN_ID}-01`],
    ["non-hex", `00-${"z".repeat(32)}-${PARENT_SPAN_ID}-01`],
    ["empty", ""],
    ["huge", "0".repeat(100_000)],
  ])(
    "starts a new root trace for a malformed traceparent (%s) without failing the call",
    async (_, value) => {
      const otel = installOtel();
      const { endpoint } = recorder();
      await expect(serverTracing()(endpoint)(incoming({ traceparent: value }), "ok")).resolves.toBe("OK");
      const span = otel.span("POST /users/:id");
      expect(span.parentSpanContext).toBeUndefined();
      expect(span.spanContext().traceId).not.toBe(TRACE_ID);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
    },
  );

  it("keeps the caller's tracestate", async () => {
    const otel = installOtel();
    await serverTracing()(recorder().endpoint)(
      incoming({ traceparent: TRACEPARENT, tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" }),
      "x",
    );
    const state = otel.span("POST /users/:id").spanContext().traceState;
    expect(state?.serialize()).toBe("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    expect(state?.get("congo")).toBe("t61rcWkgMzE");
  });

  it("joins a tracestate sent as several headers", async () => {
    const otel = installOtel();
    await serverTracing()(recorder().endpoint)(
      incoming([
        ["traceparent", TRACEPARENT],
        ["tracestate", "congo=t61rcWkgMzE"],
        ["tracestate", "rojo=00f067aa0ba902b7"],
      ]),
      "x",
    );
    expect(otel.span("POST /users/:id").spanContext().traceState?.serialize()).toBe(
      "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    );
  });

  it("reads the header case-insensitively (metadata keys are lower-cased)", async () => {
    const otel = installOtel();
    await serverTracing()(recorder().endpoint)(incoming({ TraceParent: TRACEPARENT }), "x");
    expect(otel.span("POST /users/:id").spanContext().traceId).toBe(TRACE_ID);
  });

  it("ignores the OTel active context: the parent is only what came over the wire", async () => {
    const otel = installOtel({ contextManager: true });
    const outer = trace.getTracer("test").startSpan("outer");
    await context.with(trace.setSpan(context.active(), outer), () =>
      serverTracing()(recorder().endpoint)(incoming(), "x"),
    );
    outer.end();
    expect(otel.span("POST /users/:id").parentSpanContext).toBeUndefined();
  });

  it("uses a propagator given in the options (any format plugs in)", async () => {
    const otel = installOtel();
    // A toy single-header format: "x-trace: <trace id>:<span id>".
    const w3c = new W3CTraceContextPropagator();
    const toy: TextMapPropagator = {
      fields: () => ["x-trace"],
      inject: () => undefined,
      extract(ctx, carrier, getter) {
        const raw = getter.get(carrier, "x-trace");
        const [traceId, spanId] = (typeof raw === "string" ? raw : "").split(":");
        return w3c.extract(
          ctx,
          { traceparent: `00-${traceId}-${spanId}-01` },
          {
            get: (c: Record<string, string>, k: string) => c[k],
            keys: (c: Record<string, string>) => Object.keys(c),
          },
        );
      },
    };
    await serverTracing({ propagator: toy })(recorder().endpoint)(
      incoming({
        "x-trace": `${TRACE_ID}:${PARENT_SPAN_ID}`,
        traceparent: `00-${"1".repeat(32)}-${"2".repeat(16)}-01`,
      }),
      "x",
    );
    const span = otel.span("POST /users/:id");
    expect(span.spanContext().traceId).toBe(TRACE_ID);
    expect(span.parentSpanContext?.spanId).toBe(PARENT_SPAN_ID);
  });

  it("uses the global propagator registered after the middleware was made", async () => {
    const otel = installOtel({ global: false });
    const traced = serverTracing({ tracerProvider: otel.provider })(recorder().endpoint);
    await traced(incoming({ traceparent: TRACEPARENT }), "x");
    expect(otel.spans()[0]?.spanContext().traceId).not.toBe(TRACE_ID); // no propagator: new trace
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    await traced(incoming({ traceparent: TRACEPARENT }), "x");
    expect(otel.spans()[1]?.spanContext().traceId).toBe(TRACE_ID);
  });
});

describe("serverTracing: span names and attributes", () => {
  async function spanFor(info: CallInfo | null, metadata: MetadataInit = {}) {
    const otel = installOtel();
    await serverTracing()(recorder().endpoint)(incoming(metadata, info), "x");
    expect(otel.spans()).toHaveLength(1);
    return otel.spans()[0] as NonNullable<ReturnType<typeof otel.spans>[number]>;
  }

  it("names an HTTP span after the method and route template, with the HTTP attributes", async () => {
    const span = await spanFor(HTTP_POST, { "user-agent": "curl/8.5.0" });
    expect(span.name).toBe("POST /users/:id");
    expect(span.attributes).toEqual({
      "http.request.method": "POST",
      "http.route": "/users/:id",
      "http.response.status_code": 200,
      "user_agent.original": "curl/8.5.0",
    });
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.ended).toBe(true);
  });

  it("names an HTTP span after the method alone without a route", async () => {
    const span = await spanFor({ transport: "http", method: "GET" });
    expect(span.name).toBe("GET");
    expect(span.attributes).toEqual({ "http.request.method": "GET", "http.response.status_code": 200 });
  });

  it("records a method the conventions do not know as _OTHER with the original", async () => {
    const span = await spanFor({ transport: "http", method: "PURGE", route: "/cache" });
    expect(span.name).toBe("HTTP /cache");
    expect(span.attributes).toMatchObject({
      "http.request.method": "_OTHER",
      "http.request.method_original": "PURGE",
      "http.route": "/cache",
    });
  });

  it("names a gRPC span service/method with the RPC attributes and status 0", async () => {
    const span = await spanFor(GRPC_SUM);
    expect(span.name).toBe("pb.Add/Sum");
    expect(span.attributes).toEqual({
      "rpc.system": "grpc",
      "rpc.service": "pb.Add",
      "rpc.method": "Sum",
      "rpc.grpc.status_code": 0,
    });
  });

  it("handles a gRPC method without a service part", async () => {
    const span = await spanFor({ transport: "grpc", method: "/Ping" });
    expect(span.name).toBe("Ping");
    expect(span.attributes).toEqual({
      "rpc.system": "grpc",
      "rpc.method": "Ping",
      "rpc.grpc.status_code": 0,
    });
  });

  it("uses the transport name as rpc.system for other transports", async () => {
    const span = await spanFor({ transport: "jsonrpc", method: "sum" });
    expect(span.name).toBe("sum");
    expect(span.attributes).toEqual({ "rpc.system": "jsonrpc", "rpc.method": "sum" });
  });

  it("names a span svckit.server when no transport described the call", async () => {
    const span = await spanFor(null);
    expect(span.name).toBe("svckit.server");
    expect(span.attributes).toEqual({});
    expect(span.kind).toBe(SpanKind.SERVER);
  });

  it("takes the name from a string option", async () => {
    const otel = installOtel();
    await serverTracing({ name: "users.rename" })(recorder().endpoint)(incoming(), "x");
    expect(otel.spans().map((s) => s.name)).toEqual(["users.rename"]);
  });

  it("takes the name from a function of the CallInfo, called once per distinct call description", async () => {
    const otel = installOtel();
    const asked: (CallInfo | undefined)[] = [];
    const traced = serverTracing({
      name: (info) => {
        asked.push(info);
        return info === undefined ? "none" : `svc ${info.method}`;
      },
    })(recorder().endpoint);
    await traced(incoming({}, GRPC_SUM), "x");
    await traced(incoming({}, { ...GRPC_SUM }), "x"); // an equal CallInfo, another object
    await traced(incoming({}, HTTP_POST), "x");
    await traced(incoming({}, null), "x");
    expect(otel.spans().map((s) => s.name)).toEqual([
      "svc /pb.Add/Sum",
      "svc /pb.Add/Sum",
      "svc POST",
      "none",
    ]);
    expect(asked).toEqual([GRPC_SUM, HTTP_POST, undefined]);
  });

  it("adds the attributes option on top of the computed ones", async () => {
    const otel = installOtel();
    await serverTracing({ attributes: { "service.tier": "gold", "http.route": "/u/{id}" } })(
      recorder().endpoint,
    )(incoming(), "x");
    expect(otel.span("POST /users/:id").attributes).toMatchObject({
      "service.tier": "gold",
      "http.route": "/u/{id}",
    });
  });

  it("uses the tracer option, else the provider option, with the package's scope name and version", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    const a = installOtel({ global: false });
    const b = installOtel({ global: false });
    await serverTracing({ tracerProvider: a.provider })(recorder().endpoint)(incoming(), "x");
    await serverTracing({ tracer: b.provider.getTracer("mine"), tracerProvider: a.provider })(
      recorder().endpoint,
    )(incoming(), "x");
    expect(a.spans()).toHaveLength(1);
    expect(a.spans()[0]?.instrumentationScope).toMatchObject({
      name: "@svckit/tracing",
      version: pkg.version,
    });
    expect(b.spans()).toHaveLength(1);
    expect(b.spans()[0]?.instrumentationScope.name).toBe("mine");
  });
});

describe("serverTracing: outcome", () => {
  async function failWith(info: CallInfo, error: unknown) {
    const otel = installOtel();
    const traced = serverTracing()(failing(error));
    const thrown = await traced(incoming({}, info), "x").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(thrown).toBe(error); // rethrown as it is
    expect(otel.spans()).toHaveLength(1);
    const span = otel.spans()[0] as NonNullable<ReturnType<typeof otel.spans>[number]>;
    expect(span.ended).toBe(true);
    return span;
  }

  // HTTP semconv: a server span is an error on 5xx only.
  it.each<[CodeName, number, boolean]>([
    ["CANCELLED", 499, false],
    ["INVALID_ARGUMENT", 400, false],
    ["NOT_FOUND", 404, false],
    ["ALREADY_EXISTS", 409, false],
    ["PERMISSION_DENIED", 403, false],
    ["RESOURCE_EXHAUSTED", 429, false],
    ["UNAUTHENTICATED", 401, false],
    ["UNKNOWN", 500, true],
    ["INTERNAL", 500, true],
    ["UNIMPLEMENTED", 501, true],
    ["UNAVAILABLE", 503, true],
    ["DEADLINE_EXCEEDED", 504, true],
    ["DATA_LOSS", 500, true],
  ])("HTTP server: %s → status %i, error %s", async (name, status, isError) => {
    const span = await failWith(HTTP_POST, new ServiceError(Code[name], `failed with ${name}`));
    expect(span.attributes["http.response.status_code"]).toBe(status);
    expect(span.attributes["svckit.code"]).toBe(name);
    expect(span.attributes["error.type"]).toBe(isError ? name : undefined);
    expect(span.status).toEqual(
      isError
        ? { code: SpanStatusCode.ERROR, message: `failed with ${name}` }
        : { code: SpanStatusCode.UNSET },
    );
    expect(span.events).toEqual([]); // a ServiceError is an outcome, not an exception
  });

  it("HTTP server: takes the status an error carries (HttpError)", async () => {
    const tooLarge = Object.assign(new ServiceError(Code.RESOURCE_EXHAUSTED, "body too large"), {
      status: 413,
    });
    const span = await failWith(HTTP_POST, tooLarge);
    expect(span.attributes["http.response.status_code"]).toBe(413);
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    const bad = Object.assign(new ServiceError(Code.UNAVAILABLE, "bad gateway"), { status: 502 });
    expect((await failWith(HTTP_POST, bad)).attributes["http.response.status_code"]).toBe(502);
  });

  it("HTTP server: ignores a status that is not an HTTP status", async () => {
    const odd = Object.assign(new ServiceError(Code.NOT_FOUND, "gone"), { status: 7 });
    expect((await failWith(HTTP_POST, odd)).attributes["http.response.status_code"]).toBe(404);
  });

  // RPC semconv for gRPC servers: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
  // DATA_LOSS are errors; every other code is the client's doing.
  it.each<[CodeName, boolean]>([
    ["CANCELLED", false],
    ["UNKNOWN", true],
    ["INVALID_ARGUMENT", false],
    ["DEADLINE_EXCEEDED", true],
    ["NOT_FOUND", false],
    ["ALREADY_EXISTS", false],
    ["PERMISSION_DENIED", false],
    ["RESOURCE_EXHAUSTED", false],
    ["FAILED_PRECONDITION", false],
    ["ABORTED", false],
    ["OUT_OF_RANGE", false],
    ["UNIMPLEMENTED", true],
    ["INTERNAL", true],
    ["UNAVAILABLE", true],
    ["DATA_LOSS", true],
    ["UNAUTHENTICATED", false],
  ])("gRPC server: %s → error %s", async (name, isError) => {
    const span = await failWith(GRPC_SUM, new ServiceError(Code[name], `no: ${name}`));
    expect(span.attributes["rpc.grpc.status_code"]).toBe(Code[name]);
    expect(span.attributes["svckit.code"]).toBe(name);
    expect(span.attributes["error.type"]).toBe(isError ? name : undefined);
    expect(span.status).toEqual(
      isError ? { code: SpanStatusCode.ERROR, message: `no: ${name}` } : { code: SpanStatusCode.UNSET },
    );
  });

  it("other transports follow the gRPC rule and set no status code attribute", async () => {
    const span = await failWith(
      { transport: "jsonrpc", method: "sum" },
      new ServiceError(Code.INTERNAL, "db"),
    );
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: "db" });
    expect(span.attributes).toEqual({
      "rpc.system": "jsonrpc",
      "rpc.method": "sum",
      "svckit.code": "INTERNAL",
      "error.type": "INTERNAL",
    });
    const client = await failWith({ transport: "jsonrpc", method: "sum" }, new ServiceError(Code.NOT_FOUND));
    expect(client.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("records an exception for a thrown Error, as INTERNAL with its message", async () => {
    const error = new Error("db password wrong");
    const span = await failWith(HTTP_POST, error);
    expect(span.attributes).toMatchObject({
      "http.response.status_code": 500,
      "svckit.code": "INTERNAL",
      "error.type": "INTERNAL",
    });
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: "db password wrong" });
    expect(span.events).toHaveLength(1);
    expect(span.events[0]?.name).toBe("exception");
    expect(span.events[0]?.attributes).toMatchObject({
      "exception.type": "Error",
      "exception.message": "db password wrong",
    });
    expect(span.events[0]?.attributes?.["exception.stacktrace"]).toContain("db password wrong");
  });

  it("records a thrown non-Error value as an exception message", async () => {
    const span = await failWith(GRPC_SUM, "boom");
    expect(span.events[0]?.attributes).toMatchObject({ "exception.message": "boom" });
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: "boom" });
    expect(span.attributes["rpc.grpc.status_code"]).toBe(Code.INTERNAL);
    const objectSpan = await failWith(GRPC_SUM, { message: "plain object" });
    expect(objectSpan.status).toEqual({ code: SpanStatusCode.ERROR, message: "plain object" });
    const nullSpan = await failWith(GRPC_SUM, null);
    expect(nullSpan.status).toEqual({ code: SpanStatusCode.ERROR, message: "null" });
  });

  it("maps an AbortError to CANCELLED (not an error on a server) but records the exception", async () => {
    const span = await failWith(HTTP_POST, new DOMException("gone", "AbortError"));
    expect(span.attributes).toMatchObject({ "http.response.status_code": 499, "svckit.code": "CANCELLED" });
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.events[0]?.attributes).toMatchObject({ "exception.message": "gone" });
  });

  it("ends the span once the endpoint settles, not before", async () => {
    const otel = installOtel();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const pending = serverTracing()(async () => {
      await gate;
      return "done";
    })(incoming(), "x");
    await new Promise((resolve) => setImmediate(resolve));
    expect(otel.spans()).toHaveLength(0);
    release();
    await expect(pending).resolves.toBe("done");
    expect(otel.spans()).toHaveLength(1);
  });
});

describe("serverTracing: context", () => {
  it("hands the endpoint a context carrying the span's OTel context, keeping the rest", async () => {
    const otel = installOtel();
    const { endpoint, seen } = recorder();
    const ctx = incoming({ traceparent: TRACEPARENT, "x-tenant": "acme" });
    await serverTracing()(endpoint)(ctx, "x");
    const inner = seen[0] as Context;
    const otelCtx = inner.value(otelContextKey) as OtelContext;
    const span = otel.span("POST /users/:id");
    expect(trace.getSpanContext(otelCtx)).toEqual(span.spanContext());
    expect(inner.metadata.get("x-tenant")).toBe("acme");
    expect(ctx.value(otelContextKey)).toBeUndefined(); // the caller's context is untouched
    expect(ctx.value(traceIdKey)).toBeUndefined();
  });

  it("makes the span active for the endpoint when a context manager is registered", async () => {
    const otel = installOtel({ contextManager: true });
    let before: string | undefined;
    let after: string | undefined;
    await serverTracing()(async () => {
      before = trace.getActiveSpan()?.spanContext().spanId;
      await new Promise((resolve) => setImmediate(resolve));
      after = trace.getActiveSpan()?.spanContext().spanId;
      return "x";
    })(incoming(), "x");
    const spanId = otel.span("POST /users/:id").spanContext().spanId;
    expect(before).toBe(spanId);
    expect(after).toBe(spanId);
    expect(trace.getActiveSpan()).toBeUndefined(); // and not once the call is over
  });

  it("has no active span without a context manager (the svckit context still carries it)", async () => {
    installOtel();
    const { seen } = recorder();
    let active: unknown = "unset";
    await serverTracing()(async (ctx) => {
      active = trace.getActiveSpan();
      seen.push(ctx);
      return "x";
    })(incoming(), "x");
    expect(active).toBeUndefined();
    expect(trace.getSpan(seen[0]?.value(otelContextKey) as OtelContext)).toBeDefined();
  });

  it("runs without an SDK: the call goes through and nothing is recorded", async () => {
    const { endpoint, seen } = recorder();
    await expect(serverTracing()(endpoint)(incoming({ traceparent: TRACEPARENT }), "abc")).resolves.toBe(
      "ABC",
    );
    // No propagator registered: the traceparent is not even read, and the no-op span has no trace id.
    expect(seen[0]?.value(traceIdKey)).toBeUndefined();
    expect(trace.getSpan(seen[0]?.value(otelContextKey) as OtelContext)?.isRecording()).toBe(false);
    await expect(serverTracing()(failing(new Error("x")))(incoming(), "x")).rejects.toThrow("x");
  });

  it("passes the caller's trace through with a propagator but no SDK", async () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const { endpoint, seen } = recorder();
    await serverTracing()(endpoint)(incoming({ traceparent: TRACEPARENT }), "abc");
    expect(seen[0]?.value(traceIdKey)).toBe(TRACE_ID);
  });

  it("does not record a span the sampler drops, but keeps its trace id", async () => {
    const otel = installOtel();
    const { endpoint, seen } = recorder();
    await serverTracing()(endpoint)(incoming({ traceparent: `00-${TRACE_ID}-${PARENT_SPAN_ID}-00` }), "x");
    expect(otel.spans()).toEqual([]);
    expect(seen[0]?.value(traceIdKey)).toBe(TRACE_ID);
  });
});

describe("metadataGetter", () => {
  it("reads one value, several values and the keys of svckit metadata", () => {
    const md = createContext({
      metadata: [
        ["a", "1"],
        ["b", "2"],
        ["b", "3"],
      ],
    }).metadata;
    expect(metadataGetter.get(md, "a")).toBe("1");
    expect(metadataGetter.get(md, "b")).toEqual(["2", "3"]);
    expect(metadataGetter.get(md, "c")).toBeUndefined();
    expect(metadataGetter.keys(md)).toEqual(["a", "b"]);
    expect(propagation.extract(ROOT_CONTEXT, md, metadataGetter)).toBe(ROOT_CONTEXT);
  });
});
