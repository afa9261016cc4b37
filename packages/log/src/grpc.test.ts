// The logging middleware on a real gRPC server and client (grpc-js, through @svckit/transport-grpc).
import { createRequire } from "node:module";
import { Code, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { type LogFields, type Logger, type LogLevel, logging } from "@svckit/log";
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

interface Line {
  level: LogLevel;
  message: string;
  fields: LogFields;
}

describe("over real gRPC", () => {
  it("logs the full method, no route, the trace id from the metadata, and both sides", async () => {
    const lines: Line[] = [];
    const logger: Logger = { log: (level, message, fields) => lines.push({ level, message, fields }) };
    const sum: Endpoint<SumRequest, { v: number }> = async (_ctx, { a, b }) => {
      if (a > 100) throw new ServiceError(Code.OUT_OF_RANGE, "a is too large");
      return { v: a + b };
    };
    const address = await serve(logging({ logger, name: "sum", metadata: ["authorization"] })(sum));
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const remote = createGrpcClient(
      client as unknown as Parameters<typeof createGrpcClient>[0],
      add,
      "Sum",
      (_ctx, req: SumRequest) => req,
      (_ctx, reply: { v: number }) => reply,
    );
    const call = logging({ logger, name: "sum", kind: "client", transport: "grpc", method: "/pb.Add/Sum" })(
      remote,
    );
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const ctx = createContext({
      timeout: 5_000,
      callInfo: { transport: "http", method: "POST", route: "/checkout" },
      outgoingMetadata: {
        traceparent: `00-${traceId}-b7ad6b7169203331-01`,
        authorization: "Bearer grpc-s3cr3t",
      },
    });

    expect(await call(ctx, { a: 1, b: 2 })).toEqual({ v: 3 });
    await expect(call(ctx, { a: 101, b: 0 })).rejects.toMatchObject({ code: Code.OUT_OF_RANGE });

    const summary = lines.map((l) => [
      l.level,
      l.message,
      l.fields.transport,
      l.fields.method,
      l.fields.route,
      l.fields.traceId,
    ]);
    expect(summary).toEqual([
      ["info", "served sum: OK", "grpc", "/pb.Add/Sum", undefined, traceId],
      ["info", "called sum: OK", "grpc", "/pb.Add/Sum", undefined, traceId],
      ["warn", "served sum: OUT_OF_RANGE", "grpc", "/pb.Add/Sum", undefined, traceId],
      ["warn", "called sum: OUT_OF_RANGE", "grpc", "/pb.Add/Sum", undefined, traceId],
    ]);
    expect(lines[0]?.fields.metadata).toEqual({ authorization: "[REDACTED]" });
    expect(lines[3]?.fields.error).toBe("a is too large");
    expect(JSON.stringify(lines)).not.toContain("s3cr3t");
  });
});
