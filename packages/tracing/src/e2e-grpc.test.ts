// Over real gRPC: svckit's gRPC server and client carry the trace context as gRPC metadata.
import { createRequire } from "node:module";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { parseProto } from "@svckit/codec-protobuf";
import { Code, type Context, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { clientTracing, serverTracing, traceIdKey } from "@svckit/tracing";
import { bindService, createGrpcClient, createGrpcHandler } from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import { installOtel, parseTraceparent, resetOtel } from "./test-helpers.js";

// @grpc/grpc-js is a dependency of transport-grpc, not of this package: load the same copy from there.
type GrpcServer = Parameters<typeof bindService>[0];
type GrpcClient = Exclude<Parameters<typeof createGrpcClient>[0], string>;
const grpc = createRequire(new URL("../../transport-grpc/package.json", import.meta.url))(
  "@grpc/grpc-js",
) as {
  Server: new () => GrpcServer;
  Client: new (address: string, credentials: unknown) => GrpcClient;
  ServerCredentials: { createInsecure(): Parameters<GrpcServer["bindAsync"]>[1] };
  credentials: { createInsecure(): unknown };
};

const add = parseProto(`
  syntax = "proto3";
  package pb;
  service Add { rpc Sum (SumRequest) returns (SumReply) {} }
  message SumRequest { int64 a = 1; int64 b = 2; }
  message SumReply { int64 v = 1; string err = 2; }
`).service("pb.Add");

interface Sum {
  a: bigint;
  b: bigint;
}

const closers: (() => void)[] = [];

afterEach(() => {
  resetOtel();
  for (const close of closers.splice(0)) close();
});

async function serve(endpoint: Endpoint<Sum, bigint>): Promise<string> {
  const server = new grpc.Server();
  const asIs = <T>(_ctx: Context, message: T): T => message;
  bindService(server, add, {
    Sum: createGrpcHandler(serverTracing()(endpoint), asIs, (_ctx, v: bigint) => ({ v, err: "" })),
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err === null ? resolve(bound) : reject(err),
    );
  });
  closers.push(() => server.forceShutdown());
  return `127.0.0.1:${port}`;
}

function sumClient(address: string): Endpoint<Sum, bigint> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  closers.push(() => client.close());
  const [host, port] = address.split(":");
  return clientTracing({
    transport: "grpc",
    method: "/pb.Add/Sum",
    serverAddress: host as string,
    serverPort: Number(port),
  })(
    createGrpcClient(
      client,
      add,
      "Sum",
      (_ctx, req: Sum) => req,
      (_ctx, reply: { v: bigint }) => reply.v,
    ),
  );
}

describe("tracing over svckit's gRPC transport", () => {
  it("carries the trace id in gRPC metadata: the server span is the child of the client span", async () => {
    const otel = installOtel();
    const seen: Context[] = [];
    const address = await serve(async (ctx, { a, b }) => {
      seen.push(ctx);
      return a + b;
    });
    await expect(sumClient(address)(createContext({ timeout: 2_000 }), { a: 1n, b: 2n })).resolves.toBe(3n);
    expect(otel.spans()).toHaveLength(2);
    const client = otel.spans().find((s) => s.kind === SpanKind.CLIENT);
    const server = otel.spans().find((s) => s.kind === SpanKind.SERVER);
    expect(client?.name).toBe("pb.Add/Sum");
    expect(server?.name).toBe("pb.Add/Sum");
    expect(server?.spanContext().traceId).toBe(client?.spanContext().traceId);
    expect(server?.parentSpanContext?.spanId).toBe(client?.spanContext().spanId);
    expect(seen[0]?.value(traceIdKey)).toBe(client?.spanContext().traceId);
    expect(parseTraceparent(seen[0]?.metadata.get("traceparent")).spanId).toBe(client?.spanContext().spanId);
    const rpc = {
      "rpc.system": "grpc",
      "rpc.service": "pb.Add",
      "rpc.method": "Sum",
      "rpc.grpc.status_code": 0,
    };
    expect(server?.attributes).toEqual(rpc);
    expect(client?.attributes).toEqual({
      ...rpc,
      "server.address": "127.0.0.1",
      "server.port": Number(address.split(":")[1]),
    });
  });

  it.each<[keyof typeof Code, SpanStatusCode]>([
    ["INVALID_ARGUMENT", SpanStatusCode.UNSET],
    ["NOT_FOUND", SpanStatusCode.UNSET],
    ["UNAVAILABLE", SpanStatusCode.ERROR],
    ["INTERNAL", SpanStatusCode.ERROR],
  ])("maps %s: server span status per the RPC conventions, client span ERROR", async (name, serverStatus) => {
    const otel = installOtel();
    const address = await serve(async () => {
      throw new ServiceError(Code[name], `sum failed: ${name}`);
    });
    await expect(
      sumClient(address)(createContext({ timeout: 2_000 }), { a: 1n, b: 2n }),
    ).rejects.toMatchObject({
      code: Code[name],
    });
    const client = otel.spans().find((s) => s.kind === SpanKind.CLIENT);
    const server = otel.spans().find((s) => s.kind === SpanKind.SERVER);
    expect(server?.attributes["rpc.grpc.status_code"]).toBe(Code[name]);
    expect(server?.status.code).toBe(serverStatus);
    expect(client?.attributes).toMatchObject({ "rpc.grpc.status_code": Code[name], "error.type": name });
    expect(client?.status).toEqual({ code: SpanStatusCode.ERROR, message: `sum failed: ${name}` });
  });
});
