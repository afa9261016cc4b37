// Three hops with logging, metrics and tracing composed on each: an HTTP client → HTTP service A →
// gRPC client → gRPC service B. All spans share one trace id with the right parents, both services'
// metrics count the calls with the right codes, and every log line carries the trace id.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { propagation, SpanKind, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { parseProto } from "@svckit/codec-protobuf";
import { Code, chain, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { type LogFields, type LogLevel, logging } from "@svckit/log";
import { createMetrics, type Metrics } from "@svckit/metrics";
import { clientTracing, serverTracing } from "@svckit/tracing";
import { bindService, createGrpcClient, createGrpcHandler } from "@svckit/transport-grpc";
import {
  createHttpClient,
  createHttpHandler,
  createRouter,
  encodeJsonRequest,
  encodeJsonResponse,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeServers, listen } from "./support.js";

const add = parseProto(`
  syntax = "proto3";
  package pb;
  service Add { rpc Sum (SumRequest) returns (SumReply) {} }
  message SumRequest { int64 a = 1; int64 b = 2; }
  message SumReply { int64 v = 1; string err = 2; }
`).service("pb.Add");

interface SumRequest {
  a: number;
  b: number;
}
interface Line {
  service: string;
  level: LogLevel;
  message: string;
  fields: LogFields;
}

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const lines: Line[] = [];
const metricsA = createMetrics();
const metricsB = createMetrics();
let grpcServer: Server;
let callA: Endpoint<SumRequest, { v: number }>;

function memoryLogger(service: string) {
  return {
    log: (level: LogLevel, message: string, fields: LogFields) =>
      lines.push({ service, level, message, fields }),
  };
}

/** Tracing outermost, so logging and metrics see the call's trace id and the span covers them. */
function observed(service: string, name: string, metrics: Metrics) {
  return chain(
    serverTracing(),
    logging({ logger: memoryLogger(service), name }),
    metrics.middleware({ name }),
  );
}

beforeAll(async () => {
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());

  // Service B: gRPC pb.Add/Sum; negative operands are the caller's fault.
  const sumB: Endpoint<SumRequest, number> = async (_ctx, { a, b }) => {
    if (a < 0 || b < 0) throw new ServiceError(Code.INVALID_ARGUMENT, "operands must not be negative");
    return a + b;
  };
  grpcServer = new Server();
  bindService(grpcServer, add, {
    Sum: createGrpcHandler(
      observed("B", "sum", metricsB)(sumB),
      (_ctx, m: { a: bigint; b: bigint }) => ({ a: Number(m.a), b: Number(m.b) }),
      (_ctx, v: number) => ({ v: BigInt(v), err: "" }),
    ),
  });
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );

  // Service A: HTTP POST /sum, which asks B over gRPC.
  const toB = chain(
    clientTracing({ transport: "grpc", method: "/pb.Add/Sum" }),
    logging({
      logger: memoryLogger("A"),
      name: "b.sum",
      kind: "client",
      transport: "grpc",
      method: "/pb.Add/Sum",
    }),
    metricsA.middleware({ name: "b.sum", kind: "client", transport: "grpc" }),
  )(
    createGrpcClient(
      `127.0.0.1:${port}`,
      add,
      "Sum",
      (_ctx, r: SumRequest) => ({ a: BigInt(r.a), b: BigInt(r.b) }),
      (_ctx, m: { v: bigint }) => Number(m.v),
    ),
  );
  const sumA: Endpoint<SumRequest, { v: number }> = async (ctx, req) => ({ v: await toB(ctx, req) });
  const router = createRouter().post(
    "/sum",
    createHttpHandler(
      observed("A", "sum", metricsA)(sumA),
      jsonRequestDecoder<SumRequest>(),
      encodeJsonResponse,
    ),
  );
  const { origin } = await listen(router.handle);

  // The caller: an HTTP client with its own client span, the trace's root.
  callA = clientTracing({ transport: "http", method: "POST", route: "/sum" })(
    createHttpClient<SumRequest, { v: number }>(
      `${origin}/sum`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    ),
  );
});

afterAll(async () => {
  grpcServer?.forceShutdown();
  await closeServers();
  trace.disable();
  propagation.disable();
  await provider.shutdown();
});

/** The spans of one trace, by kind and name. */
function spansOf(traceId: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

function parentId(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

async function sample(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  const values = (await metric?.get())?.values ?? [];
  const found = values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return found.reduce((sum, v) => sum + v.value, 0);
}

describe("HTTP client → service A (HTTP) → gRPC client → service B (gRPC)", () => {
  it("shares one trace with the right parents, counts both services' calls, and logs the trace id", async () => {
    exporter.reset();
    lines.length = 0;
    expect(await callA(createContext({ timeout: 5_000 }), { a: 20, b: 22 })).toEqual({ v: 42 });

    const root = exporter
      .getFinishedSpans()
      .find((s) => s.kind === SpanKind.CLIENT && s.name === "POST /sum");
    expect(root).toBeDefined();
    const traceId = root?.spanContext().traceId as string;
    const spans = spansOf(traceId);
    const byName = (kind: SpanKind, name: string) => {
      const found = spans.filter((s) => s.kind === kind && s.name === name);
      expect(found, `${SpanKind[kind]} ${name}`).toHaveLength(1);
      return found[0] as ReadableSpan;
    };
    const serverA = byName(SpanKind.SERVER, "POST /sum");
    const clientB = byName(SpanKind.CLIENT, "pb.Add/Sum");
    const serverB = byName(SpanKind.SERVER, "pb.Add/Sum");
    expect(spans).toHaveLength(4);
    expect(parentId(root as ReadableSpan)).toBeUndefined();
    expect(parentId(serverA)).toBe(root?.spanContext().spanId);
    expect(parentId(clientB)).toBe(serverA.spanContext().spanId);
    expect(parentId(serverB)).toBe(clientB.spanContext().spanId);
    expect(serverA.attributes["http.route"]).toBe("/sum");
    expect(serverB.attributes["rpc.system"]).toBe("grpc");
    expect(serverB.attributes["rpc.method"]).toBe("Sum");

    // One line per call on each side, all with the trace id.
    expect(lines.map((l) => `${l.service} ${l.message}`).sort()).toEqual([
      "A called b.sum: OK",
      "A served sum: OK",
      "B served sum: OK",
    ]);
    for (const line of lines) expect(line.fields.traceId, `${line.service} ${line.message}`).toBe(traceId);
    const served = lines.find((l) => l.service === "A" && l.message === "served sum: OK");
    expect(served?.fields).toMatchObject({ transport: "http", method: "POST", route: "/sum", code: "OK" });

    expect(
      await sample(metricsA, "svckit_requests_total", {
        endpoint: "sum",
        kind: "server",
        transport: "http",
        code: "OK",
      }),
    ).toBe(1);
    expect(
      await sample(metricsA, "svckit_requests_total", {
        endpoint: "b.sum",
        kind: "client",
        transport: "grpc",
        code: "OK",
      }),
    ).toBe(1);
    expect(
      await sample(metricsB, "svckit_requests_total", {
        endpoint: "sum",
        kind: "server",
        transport: "grpc",
        code: "OK",
      }),
    ).toBe(1);
  });

  it("carries an error from B back through A with its code in spans, metrics and logs", async () => {
    exporter.reset();
    lines.length = 0;
    const err = await callA(createContext({ timeout: 5_000 }), { a: -1, b: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect((err as ServiceError).message).toBe("operands must not be negative");

    const traceIds = new Set(exporter.getFinishedSpans().map((s) => s.spanContext().traceId));
    expect(traceIds.size).toBe(1);
    const serverB = exporter
      .getFinishedSpans()
      .find((s) => s.kind === SpanKind.SERVER && s.name === "pb.Add/Sum");
    expect(serverB?.attributes["rpc.grpc.status_code"]).toBe(Code.INVALID_ARGUMENT);
    const serverA = exporter
      .getFinishedSpans()
      .find((s) => s.kind === SpanKind.SERVER && s.name === "POST /sum");
    expect(serverA?.attributes["http.response.status_code"]).toBe(400);

    const [traceId] = [...traceIds];
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line.fields.traceId).toBe(traceId);
      expect(line.fields.code).toBe("INVALID_ARGUMENT");
      expect(line.level).toBe("warn");
    }
    expect(
      await sample(metricsA, "svckit_requests_total", {
        endpoint: "sum",
        kind: "server",
        code: "INVALID_ARGUMENT",
      }),
    ).toBe(1);
    expect(
      await sample(metricsA, "svckit_requests_total", {
        endpoint: "b.sum",
        kind: "client",
        code: "INVALID_ARGUMENT",
      }),
    ).toBe(1);
    expect(
      await sample(metricsB, "svckit_requests_total", {
        endpoint: "sum",
        kind: "server",
        code: "INVALID_ARGUMENT",
      }),
    ).toBe(1);
  });
});
