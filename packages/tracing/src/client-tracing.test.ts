import {
  context,
  type Context as OtelContext,
  SpanKind,
  SpanStatusCode,
  type TextMapPropagator,
  trace,
} from "@opentelemetry/api";
import { AlwaysOffSampler } from "@opentelemetry/sdk-trace-base";
import {
  type CallInfo,
  Code,
  type CodeName,
  type Context,
  createContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  type ClientTracingOptions,
  clientTracing,
  otelContextKey,
  serverTracing,
  traceIdKey,
  withOtelContext,
} from "@svckit/tracing";
import { afterEach, describe, expect, it } from "vitest";
import {
  installOtel,
  PARENT_SPAN_ID,
  parseTraceparent,
  resetOtel,
  TRACE_ID,
  TRACEPARENT,
} from "./test-helpers.js";

afterEach(resetOtel);

/** A fake client transport: records the context it was called with, like svckit's clients read it. */
function transport(result: () => Promise<string> = async () => "ok"): {
  endpoint: Endpoint<string, string>;
  seen: Context[];
} {
  const seen: Context[] = [];
  return {
    seen,
    endpoint: async (ctx) => {
      seen.push(ctx);
      return result();
    },
  };
}

const HTTP: ClientTracingOptions = { transport: "http", method: "POST", url: "http://127.0.0.1:8080/sum" };
const GRPC: ClientTracingOptions = {
  transport: "grpc",
  method: "/pb.Add/Sum",
  serverAddress: "adder.internal",
  serverPort: 8082,
};

describe("clientTracing: options", () => {
  it.each<[string, unknown, string]>([
    ["no options", undefined, "clientTracing: options.transport must be a non-empty string"],
    ["no transport", { method: "POST" }, "clientTracing: options.transport must be a non-empty string"],
    [
      "empty transport",
      { transport: "", method: "POST" },
      "clientTracing: options.transport must be a non-empty string",
    ],
    ["no method", { transport: "http" }, "clientTracing: options.method must be a non-empty string"],
    [
      "empty method",
      { transport: "grpc", method: "" },
      "clientTracing: options.method must be a non-empty string",
    ],
  ])("rejects %s with a TypeError", (_, options, message) => {
    expect(() => clientTracing(options as ClientTracingOptions)).toThrow(new TypeError(message));
  });

  it("rejects a url that does not parse", () => {
    expect(() => clientTracing({ ...HTTP, url: "not a url" })).toThrow(
      new TypeError('clientTracing: url "not a url" is not a valid URL'),
    );
  });

  it.each([-1, 65536, 1.5, Number.NaN])("rejects serverPort %s with a RangeError", (port) => {
    expect(() => clientTracing({ ...GRPC, serverPort: port })).toThrow(
      new RangeError(`clientTracing: serverPort must be an integer from 0 to 65535, got ${port}`),
    );
  });
});

describe("clientTracing: propagation", () => {
  it("injects a traceparent naming the client span into the outgoing metadata", async () => {
    const otel = installOtel();
    const { endpoint, seen } = transport();
    await expect(clientTracing(HTTP)(endpoint)(createContext(), "x")).resolves.toBe("ok");
    const span = otel.span("POST");
    const sent = parseTraceparent(seen[0]?.outgoingMetadata.get("traceparent"));
    expect(sent).toEqual({
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
      flags: "01",
    });
    expect(span.kind).toBe(SpanKind.CLIENT);
    expect(span.parentSpanContext).toBeUndefined(); // no caller span: a new trace
    expect(seen[0]?.value(traceIdKey)).toBe(span.spanContext().traceId);
  });

  it("keeps the other outgoing metadata and replaces a stale traceparent", async () => {
    installOtel();
    const { endpoint, seen } = transport();
    const ctx = createContext({ outgoingMetadata: { "x-tenant": "acme", traceparent: TRACEPARENT } });
    await clientTracing(HTTP)(endpoint)(ctx, "x");
    const out = seen[0]?.outgoingMetadata;
    expect(out?.get("x-tenant")).toBe("acme");
    expect(out?.getAll("traceparent")).toHaveLength(1);
    expect(parseTraceparent(out?.get("traceparent")).spanId).not.toBe(PARENT_SPAN_ID);
    expect(ctx.outgoingMetadata.get("traceparent")).toBe(TRACEPARENT); // the caller's context is untouched
  });

  it("sends the caller's tracestate on", async () => {
    installOtel();
    const { endpoint, seen } = transport();
    const server = serverTracing()(async (ctx: Context, _req: string) =>
      clientTracing(HTTP)(endpoint)(ctx, "x"),
    );
    await server(
      createContext({ metadata: { traceparent: TRACEPARENT, tracestate: "congo=t61rcWkgMzE" } }),
      "x",
    );
    expect(seen[0]?.outgoingMetadata.get("tracestate")).toBe("congo=t61rcWkgMzE");
  });

  it("injects with the propagator given in the options", async () => {
    installOtel();
    const toy: TextMapPropagator = {
      fields: () => ["x-trace"],
      extract: (ctx) => ctx,
      inject(ctx, carrier, setter) {
        const sc = trace.getSpanContext(ctx);
        if (sc !== undefined) setter.set(carrier, "X-Trace", `${sc.traceId}:${sc.spanId}`);
      },
    };
    const { endpoint, seen } = transport();
    await clientTracing({ ...HTTP, propagator: toy })(endpoint)(createContext(), "x");
    expect(seen[0]?.outgoingMetadata.get("x-trace")).toMatch(/^[0-9a-f]{32}:[0-9a-f]{16}$/);
    expect(seen[0]?.outgoingMetadata.has("traceparent")).toBe(false);
  });

  it("ends its span with the error when the propagator throws, and never calls the client", async () => {
    const otel = installOtel();
    const broken: TextMapPropagator = {
      fields: () => [],
      extract: (ctx) => ctx,
      inject() {
        throw new TypeError("propagator broke");
      },
    };
    let called = false;
    const endpoint: Endpoint<string, string> = async () => {
      called = true;
      return "ok";
    };
    await expect(
      clientTracing({ ...HTTP, propagator: broken })(endpoint)(createContext(), "x"),
    ).rejects.toThrow("propagator broke");
    expect(called).toBe(false);
    const [span] = otel.spans();
    expect(otel.spans()).toHaveLength(1);
    expect(span?.ended).toBe(true);
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: "propagator broke" });
    expect(span?.events[0]?.attributes).toMatchObject({ "exception.type": "TypeError" });
  });

  it("turns a client that throws instead of rejecting into a rejection, and ends its span", async () => {
    const otel = installOtel();
    const endpoint = ((): Promise<string> => {
      throw new ServiceError(Code.UNAVAILABLE, "no instances");
    }) as Endpoint<string, string>;
    const call = clientTracing(GRPC)(endpoint)(createContext(), "x");
    expect(call).toBeInstanceOf(Promise);
    await expect(call).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(otel.spans()).toHaveLength(1);
    expect(otel.spans()[0]?.attributes).toMatchObject({ "svckit.code": "UNAVAILABLE" });
  });

  it("sends nothing and adds no outgoing metadata without a propagator", async () => {
    const otel = installOtel({ global: false });
    const { endpoint, seen } = transport();
    const ctx = createContext({ outgoingMetadata: { "x-tenant": "acme" } });
    await clientTracing({ ...HTTP, tracerProvider: otel.provider })(endpoint)(ctx, "x");
    expect(seen[0]?.outgoingMetadata).toBe(ctx.outgoingMetadata);
    expect(otel.spans()).toHaveLength(1);
  });

  it("propagates a dropped (unsampled) caller with the sampled flag off and records nothing", async () => {
    const otel = installOtel();
    const { endpoint, seen } = transport();
    const server = serverTracing()(async (ctx: Context, _req: string) =>
      clientTracing(GRPC)(endpoint)(ctx, "x"),
    );
    await server(createContext({ metadata: { traceparent: `00-${TRACE_ID}-${PARENT_SPAN_ID}-00` } }), "x");
    expect(otel.spans()).toEqual([]);
    const sent = parseTraceparent(seen[0]?.outgoingMetadata.get("traceparent"));
    expect(sent.traceId).toBe(TRACE_ID);
    expect(sent.flags).toBe("00");
  });

  it("runs without an SDK or propagator: the call goes through, nothing is sent", async () => {
    const { endpoint, seen } = transport();
    await expect(clientTracing(HTTP)(endpoint)(createContext(), "x")).resolves.toBe("ok");
    expect(seen[0]?.outgoingMetadata.size).toBe(0);
    expect(seen[0]?.value(traceIdKey)).toBeUndefined();
  });
});

describe("clientTracing: parent span", () => {
  it("nests under the server span of the call in progress (no context manager needed)", async () => {
    const otel = installOtel();
    const backend = transport();
    const client = clientTracing(GRPC)(backend.endpoint);
    const server = serverTracing()(async (ctx: Context, req: string) => client(ctx, req));
    const info: CallInfo = { transport: "http", method: "POST", route: "/sum" };
    await server(createContext({ callInfo: info, metadata: { traceparent: TRACEPARENT } }), "x");
    const serverSpan = otel.span("POST /sum");
    const clientSpan = otel.span("pb.Add/Sum");
    expect(clientSpan.parentSpanContext?.spanId).toBe(serverSpan.spanContext().spanId);
    expect(clientSpan.spanContext().traceId).toBe(TRACE_ID);
    expect(serverSpan.parentSpanContext?.spanId).toBe(PARENT_SPAN_ID);
    const sent = parseTraceparent(backend.seen[0]?.outgoingMetadata.get("traceparent"));
    expect(sent).toEqual({ traceId: TRACE_ID, spanId: clientSpan.spanContext().spanId, flags: "01" });
    expect(otel.spans().map((s) => s.name)).toEqual(["pb.Add/Sum", "POST /sum"]); // client ends first
  });

  it("takes transport and method from its options, not from the caller's CallInfo", async () => {
    const otel = installOtel();
    const { endpoint } = transport();
    const ctx = createContext({ callInfo: { transport: "http", method: "GET", route: "/caller" } });
    await clientTracing(GRPC)(endpoint)(ctx, "x");
    expect(otel.spans().map((s) => s.name)).toEqual(["pb.Add/Sum"]);
  });

  it("nests under the OTel active span when the svckit context has none", async () => {
    const otel = installOtel({ contextManager: true });
    const { endpoint } = transport();
    const client = clientTracing(HTTP)(endpoint);
    await trace.getTracer("test").startActiveSpan("job", async (job) => {
      await client(createContext(), "x");
      job.end();
    });
    expect(otel.span("POST").parentSpanContext?.spanId).toBe(otel.span("job").spanContext().spanId);
  });

  it("prefers the svckit context's span over the active one; withOtelContext re-parents explicitly", async () => {
    const otel = installOtel({ contextManager: true });
    const { endpoint } = transport();
    const client = clientTracing({ ...HTTP, name: "call" })(endpoint);
    const tracer = trace.getTracer("test");
    const server = serverTracing({ name: "server" })(async (ctx: Context, _req: string) =>
      tracer.startActiveSpan("step", async (step) => {
        await client(ctx, "first"); // under the server span: explicit context wins
        await client(withOtelContext(ctx, context.active()), "second"); // under "step"
        step.end();
        return "done";
      }),
    );
    await server(createContext(), "x");
    const [first, second] = otel.spans().filter((s) => s.name === "call");
    expect(first?.parentSpanContext?.spanId).toBe(otel.span("server").spanContext().spanId);
    expect(second?.parentSpanContext?.spanId).toBe(otel.span("step").spanContext().spanId);
  });

  it("makes the client span active for the transport when a context manager is registered", async () => {
    const otel = installOtel({ contextManager: true });
    let active: string | undefined;
    await clientTracing(HTTP)(async () => {
      active = trace.getActiveSpan()?.spanContext().spanId;
      return "ok";
    })(createContext(), "x");
    expect(active).toBe(otel.span("POST").spanContext().spanId);
  });

  it("stores its own span for what runs below it (retries, balancers with traced clients)", async () => {
    const otel = installOtel();
    const attempt = clientTracing({ ...GRPC, name: "attempt" })(transport().endpoint);
    const logical = clientTracing({ ...GRPC, name: "logical" })(async (ctx: Context, req: string) => {
      await attempt(ctx, req);
      return attempt(ctx, req);
    });
    await logical(createContext(), "x");
    const parent = otel.span("logical").spanContext().spanId;
    const attempts = otel.spans().filter((s) => s.name === "attempt");
    expect(attempts.map((s) => s.parentSpanContext?.spanId)).toEqual([parent, parent]);
  });
});

describe("withOtelContext", () => {
  it("stores the OTel context and the trace id of its span", () => {
    const otel = installOtel();
    const span = otel.provider.getTracer("t").startSpan("s");
    const otelCtx = trace.setSpan(context.active(), span);
    const ctx = withOtelContext(createContext(), otelCtx);
    expect(ctx.value(otelContextKey)).toBe(otelCtx);
    expect(ctx.value(traceIdKey)).toBe(span.spanContext().traceId);
    span.end();
  });

  it("stores no trace id for a context without a valid span", () => {
    const otelCtx: OtelContext = context.active();
    const ctx = withOtelContext(createContext(), otelCtx);
    expect(ctx.value(otelContextKey)).toBe(otelCtx);
    expect(ctx.value(traceIdKey)).toBeUndefined();
  });

  it("uses keys shared across copies of the package", () => {
    expect(traceIdKey.id).toBe(Symbol.for("svckit:traceId"));
    expect(otelContextKey.id).toBe(Symbol.for("svckit:otelContext"));
  });
});

describe("clientTracing: span names and attributes", () => {
  async function spanOf(options: ClientTracingOptions) {
    const otel = installOtel();
    await clientTracing(options)(transport().endpoint)(createContext(), "x");
    expect(otel.spans()).toHaveLength(1);
    return otel.spans()[0] as NonNullable<ReturnType<typeof otel.spans>[number]>;
  }

  it("HTTP: names the span after the method, with the peer from the url", async () => {
    const span = await spanOf(HTTP);
    expect(span.name).toBe("POST");
    expect(span.attributes).toEqual({
      "http.request.method": "POST",
      "url.full": "http://127.0.0.1:8080/sum",
      "server.address": "127.0.0.1",
      "server.port": 8080,
      "http.response.status_code": 200,
    });
  });

  it("HTTP: adds the route template to the name and as url.template", async () => {
    const span = await spanOf({ transport: "http", method: "GET", route: "/users/:id" });
    expect(span.name).toBe("GET /users/:id");
    expect(span.attributes).toEqual({
      "http.request.method": "GET",
      "url.template": "/users/:id",
      "http.response.status_code": 200,
    });
  });

  it("HTTP: redacts credentials in the url and takes the scheme's default port", async () => {
    const span = await spanOf({
      transport: "http",
      method: "GET",
      url: "https://ada:secret@api.example.com/v1",
    });
    expect(span.attributes).toMatchObject({
      "url.full": "https://REDACTED:REDACTED@api.example.com/v1",
      "server.address": "api.example.com",
      "server.port": 443,
    });
    const plain = await spanOf({ transport: "http", method: "GET", url: new URL("http://svc/") });
    expect(plain.attributes).toMatchObject({ "server.address": "svc", "server.port": 80 });
  });

  it("HTTP: writes an IPv6 address without brackets; serverAddress and serverPort win over the url", async () => {
    const v6 = await spanOf({ transport: "http", method: "GET", url: "http://[::1]:9000/" });
    expect(v6.attributes).toMatchObject({ "server.address": "::1", "server.port": 9000 });
    const over = await spanOf({ ...HTTP, serverAddress: "lb.internal", serverPort: 443 });
    expect(over.attributes).toMatchObject({
      "url.full": "http://127.0.0.1:8080/sum",
      "server.address": "lb.internal",
      "server.port": 443,
    });
  });

  it("HTTP: records an unknown method as _OTHER", async () => {
    const span = await spanOf({ transport: "http", method: "PURGE" });
    expect(span.name).toBe("HTTP");
    expect(span.attributes).toMatchObject({
      "http.request.method": "_OTHER",
      "http.request.method_original": "PURGE",
    });
  });

  it("gRPC: names the span service/method, with the RPC and peer attributes", async () => {
    const span = await spanOf(GRPC);
    expect(span.name).toBe("pb.Add/Sum");
    expect(span.kind).toBe(SpanKind.CLIENT);
    expect(span.attributes).toEqual({
      "rpc.system": "grpc",
      "rpc.service": "pb.Add",
      "rpc.method": "Sum",
      "server.address": "adder.internal",
      "server.port": 8082,
      "rpc.grpc.status_code": 0,
    });
  });

  it("other transports: rpc.system is the transport, the name the method", async () => {
    const span = await spanOf({
      transport: "nats",
      method: "orders.create",
      attributes: { "peer.service": "orders" },
    });
    expect(span.name).toBe("orders.create");
    expect(span.attributes).toEqual({
      "rpc.system": "nats",
      "rpc.method": "orders.create",
      "peer.service": "orders",
    });
  });

  it("takes the name option", async () => {
    expect((await spanOf({ ...GRPC, name: "add" })).name).toBe("add");
  });

  it("records nothing when the sampler drops the span, and the call still succeeds", async () => {
    const otel = installOtel({ global: false, sampler: new AlwaysOffSampler() });
    const { endpoint } = transport();
    await expect(
      clientTracing({ ...GRPC, tracerProvider: otel.provider })(endpoint)(createContext(), "x"),
    ).resolves.toBe("ok");
    expect(otel.spans()).toEqual([]);
  });
});

describe("clientTracing: outcome", () => {
  async function failWith(options: ClientTracingOptions, error: unknown) {
    const otel = installOtel();
    const thrown = await clientTracing(options)(
      transport(async () => {
        throw error;
      }).endpoint,
    )(createContext(), "x").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(thrown).toBe(error);
    expect(otel.spans()).toHaveLength(1);
    return otel.spans()[0] as NonNullable<ReturnType<typeof otel.spans>[number]>;
  }

  // A client span is an error on every failure (HTTP and RPC semconv alike).
  it.each<[CodeName, number]>([
    ["INVALID_ARGUMENT", 400],
    ["NOT_FOUND", 404],
    ["PERMISSION_DENIED", 403],
    ["RESOURCE_EXHAUSTED", 429],
    ["INTERNAL", 500],
    ["UNAVAILABLE", 503],
  ])("HTTP: %s decoded from a response → status %i, ERROR", async (name, status) => {
    // svckit's HTTP client puts the response headers on the errors it decodes from a response.
    const error = new ServiceError(Code[name], `answer ${name}`, {
      metadata: { "content-type": "application/json" },
    });
    const span = await failWith(HTTP, error);
    expect(span.attributes).toMatchObject({
      "http.response.status_code": status,
      "svckit.code": name,
      "error.type": name,
    });
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: `answer ${name}` });
    expect(span.events).toEqual([]);
  });

  it.each<[CodeName, string]>([
    ["UNAVAILABLE", "request failed: ECONNREFUSED"],
    ["DEADLINE_EXCEEDED", "deadline exceeded"],
    ["CANCELLED", "context cancelled"],
  ])("HTTP: %s without a response records no status code", async (name, message) => {
    const span = await failWith(HTTP, new ServiceError(Code[name], message));
    expect(span.attributes["http.response.status_code"]).toBeUndefined();
    expect(span.attributes).toMatchObject({ "svckit.code": name, "error.type": name });
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message });
  });

  it.each<CodeName>([
    "CANCELLED",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "UNAUTHENTICATED",
    "UNAVAILABLE",
    "INTERNAL",
  ])("gRPC: %s → rpc.grpc.status_code, ERROR", async (name) => {
    const span = await failWith(GRPC, new ServiceError(Code[name], `status ${name}`));
    expect(span.attributes).toMatchObject({
      "rpc.grpc.status_code": Code[name],
      "svckit.code": name,
      "error.type": name,
    });
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: `status ${name}` });
  });

  it("records an exception for a thrown value that is not a ServiceError", async () => {
    const span = await failWith(GRPC, new TypeError("fetch failed"));
    expect(span.events[0]?.attributes).toMatchObject({
      "exception.type": "TypeError",
      "exception.message": "fetch failed",
    });
    expect(span.attributes).toMatchObject({
      "rpc.grpc.status_code": Code.INTERNAL,
      "error.type": "INTERNAL",
    });
  });
});
