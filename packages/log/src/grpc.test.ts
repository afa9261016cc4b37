// The logging middleware on a real gRPC server and client (grpc-js, through @svckit/transport-grpc).
import { Code, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { type LogFields, type Logger, type LogLevel, logging } from "@svckit/log";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, jsonSumOverGrpc } from "../../transport-grpc/src/test-helpers.js";

interface SumRequest {
  a: number;
  b: number;
}

afterEach(closeAll);

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
    const remote = await jsonSumOverGrpc(logging({ logger, name: "sum", metadata: ["authorization"] })(sum));
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
