// The middleware on a real gRPC server and client (grpc-js, through @svckit/transport-grpc).
import { Code, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { createMetrics } from "@svckit/metrics";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, jsonSumOverGrpc } from "../../transport-grpc/src/test-helpers.js";

interface SumRequest {
  a: number;
  b: number;
}

afterEach(closeAll);

describe("over real gRPC", () => {
  it("labels server calls with transport grpc and client calls as given, by code", async () => {
    const metrics = createMetrics();
    const sum: Endpoint<SumRequest, { v: number }> = async (_ctx, { a, b }) => {
      if (a > 100) throw new ServiceError(Code.OUT_OF_RANGE, "a is too large");
      return { v: a + b };
    };
    const remote = await jsonSumOverGrpc(metrics.middleware({ name: "sum" })(sum));
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
