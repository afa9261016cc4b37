// The middleware on a real gRPC server and client (grpc-js, through @svckit/transport-grpc).
import { createRequire } from "node:module";
import { Code, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { createMetrics } from "@svckit/metrics";
import {
  bindService,
  createGrpcClient,
  createGrpcHandler,
  type GrpcMessageCodec,
  type GrpcService,
} from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";

// @grpc/grpc-js is transport-grpc's dependency, not this package's: load it from there.
interface GrpcServerLike {
  bindAsync(address: string, credentials: unknown, callback: (err: Error | null, port: number) => void): void;
  forceShutdown(): void;
}
interface GrpcClientLike {
  close(): void;
}
interface GrpcJs {
  Server: new () => GrpcServerLike;
  Client: new (address: string, credentials: unknown) => GrpcClientLike;
  ServerCredentials: { createInsecure(): unknown };
  credentials: { createInsecure(): unknown };
}
const grpc = createRequire(new URL("../../transport-grpc/package.json", import.meta.url))(
  "@grpc/grpc-js",
) as GrpcJs;

const json = <T>(): GrpcMessageCodec<T> => ({
  encode: (message) => Buffer.from(JSON.stringify(message)),
  decode: (bytes) => JSON.parse(Buffer.from(bytes).toString("utf8")) as T,
});

interface SumRequest {
  a: number;
  b: number;
}
const add: GrpcService = {
  name: "pb.Add",
  methods: {
    Sum: {
      name: "Sum",
      path: "/pb.Add/Sum",
      requestType: json(),
      responseType: json(),
      requestStream: false,
      responseStream: false,
    },
  },
};

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function serve(endpoint: Endpoint<SumRequest, { v: number }>): Promise<string> {
  const server = new grpc.Server();
  cleanups.push(() => server.forceShutdown());
  bindService(server as unknown as Parameters<typeof bindService>[0], add, {
    Sum: createGrpcHandler(
      endpoint,
      (_ctx, msg: SumRequest) => msg,
      (_ctx, res: { v: number }) => res,
    ),
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err === null ? resolve(bound) : reject(err),
    );
  });
  return `127.0.0.1:${port}`;
}

describe("over real gRPC", () => {
  it("labels server calls with transport grpc and client calls as given, by code", async () => {
    const metrics = createMetrics();
    const sum: Endpoint<SumRequest, { v: number }> = async (_ctx, { a, b }) => {
      if (a > 100) throw new ServiceError(Code.OUT_OF_RANGE, "a is too large");
      return { v: a + b };
    };
    const address = await serve(metrics.middleware({ name: "sum" })(sum));
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const remote = createGrpcClient(
      client as unknown as Parameters<typeof createGrpcClient>[0],
      add,
      "Sum",
      (_ctx, req: SumRequest) => req,
      (_ctx, reply: { v: number }) => reply,
    );
    const call = metrics.middleware({ name: "sum", kind: "client", transport: "grpc" })(remote);
    // The caller's own context says http: a client endpoint must not take it for its transport.
    const ctx = createContext({ timeout: 5_000, callInfo: { transport: "http", method: "POST" } });

    expect(await call(ctx, { a: 1, b: 2 })).toEqual({ v: 3 });
    expect(await call(ctx, { a: 2, b: 2 })).toEqual({ v: 4 });
    await expect(call(ctx, { a: 101, b: 0 })).rejects.toMatchObject({ code: Code.OUT_OF_RANGE });

    const text = await metrics.registry.metrics();
    const lines = text.split("\n").filter((l) => l.startsWith("svckit_requests_total"));
    expect(lines.sort()).toEqual(
      [
        'svckit_requests_total{endpoint="sum",kind="server",transport="grpc",code="OK"} 2',
        'svckit_requests_total{endpoint="sum",kind="server",transport="grpc",code="OUT_OF_RANGE"} 1',
        'svckit_requests_total{endpoint="sum",kind="client",transport="grpc",code="OK"} 2',
        'svckit_requests_total{endpoint="sum",kind="client",transport="grpc",code="OUT_OF_RANGE"} 1',
      ].sort(),
    );
    expect(text).not.toContain('transport="http"');
    expect(text).not.toContain("/pb.Add/Sum");
  });
});
