// Statuses and metadata that node:http2 or grpc-js would refuse once the call is under way: a message
// with a lone UTF-16 surrogate (grpc-js's encodeURI throws) and repeated values of a header node:http2
// allows once. grpc-js sends a streaming call's trailers from a `wantTrailers` listener, where such a
// throw is an uncaught exception (the process exits); on the unary path it was an unhandled rejection.
import { type Metadata, status } from "@grpc/grpc-js";
import { Code, type Endpoint, ServiceError } from "@svckit/endpoint";
import { bindService, createGrpcHandler, type GrpcServerFinalizerInfo } from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import {
  type CountRequest,
  closeAll,
  collect,
  count,
  grpcClient,
  protos,
  SumReply,
  SumRequest,
  startServer,
  type Tick,
  unary,
} from "./test-helpers.js";

const crashes: unknown[] = [];
const onCrash = (err: unknown): void => {
  crashes.push(err);
};

afterEach(() => {
  closeAll();
  process.off("uncaughtException", onCrash);
  process.off("unhandledRejection", onCrash);
  crashes.length = 0;
});

/** Records uncaught exceptions and unhandled rejections (each would end a real server process). */
function watchCrashes(): void {
  process.on("uncaughtException", onCrash);
  process.on("unhandledRejection", onCrash);
}

/** Resolves after the pending I/O callbacks and the rejection tracking of this turn ran. */
function settled(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

const add = protos.service("pb.Add");
const counter = protos.service("counter.Counter");

/** "a is too long: abcd" and the first half of 😀: a lone high surrogate, as `slice` leaves it. */
const cutMessage = `a is too long: ${"abcd😀".slice(0, 5)}…`;
const repaired = "a is too long: abcd\uFFFD…";

async function serveSum(endpoint: Endpoint<SumRequest, SumReply>, finalized: GrpcServerFinalizerInfo[]) {
  const handler = createGrpcHandler(
    endpoint,
    (_ctx, msg: SumRequest) => msg,
    (_ctx, res: SumReply) => res,
    { finalizer: (_ctx, info) => finalized.push(info) },
  );
  const { address } = await startServer((server) => bindService(server, add, { Sum: handler }));
  return grpcClient(address);
}

async function serveCount(
  endpoint: Endpoint<CountRequest, AsyncIterable<Tick>>,
  finalized: GrpcServerFinalizerInfo[],
  after?: (trailer: Metadata) => void,
) {
  const handler = createGrpcHandler(
    endpoint,
    (_ctx, msg: CountRequest) => msg,
    (_ctx, tick: Tick) => tick,
    {
      finalizer: (_ctx, info) => finalized.push(info),
      after: after === undefined ? undefined : [(_ctx, _header, trailer) => void after(trailer)],
    },
  );
  const { address } = await startServer((server) => bindService(server, counter, { Count: handler }));
  return grpcClient(address);
}

const oneTickThen = (error: ServiceError): Endpoint<CountRequest, AsyncIterable<Tick>> =>
  async function oneTick() {
    return (async function* () {
      yield { n: 1n, payload: new Uint8Array(0) };
      throw error;
    })();
  };

describe("a status message with a lone UTF-16 surrogate (regression: grpc-js's encodeURI threw)", () => {
  it("unary: the client gets the code and the message with U+FFFD, the server does not crash", async () => {
    watchCrashes();
    const finalized: GrpcServerFinalizerInfo[] = [];
    const client = await serveSum(async () => {
      throw new ServiceError(Code.INVALID_ARGUMENT, cutMessage);
    }, finalized);
    const res = await unary(
      client,
      "/pb.Add/Sum",
      SumRequest,
      SumReply,
      { a: 1n, b: 2n },
      {
        deadline: Date.now() + 5_000,
      },
    );
    await settled();
    expect(crashes).toEqual([]);
    expect([res.status.code, res.status.details]).toEqual([status.INVALID_ARGUMENT, repaired]);
    // The finalizer and error handler see the error as thrown.
    expect(finalized.map((f) => [f.code, f.error?.message])).toEqual([[Code.INVALID_ARGUMENT, cutMessage]]);
  });

  it("server streaming, after an item: the status arrives, the process does not crash", async () => {
    watchCrashes();
    const finalized: GrpcServerFinalizerInfo[] = [];
    const client = await serveCount(
      oneTickThen(new ServiceError(Code.INVALID_ARGUMENT, cutMessage)),
      finalized,
    );
    const res = await collect(count(client, { count: 1 }, { deadline: Date.now() + 5_000 }));
    await settled();
    expect(crashes).toEqual([]);
    expect(res.items.map((t) => t.n)).toEqual([1n]);
    expect([res.status.code, res.status.details]).toEqual([status.INVALID_ARGUMENT, repaired]);
    expect(finalized.map((f) => f.code)).toEqual([Code.INVALID_ARGUMENT]);
  });
});

describe("repeated values of a header node:http2 allows once (regression: ERR_HTTP2_HEADER_SINGLE_VALUE)", () => {
  it("server streaming: an error's retry-after ['1', '2'] goes as its first value; no crash", async () => {
    watchCrashes();
    const finalized: GrpcServerFinalizerInfo[] = [];
    const busy = new ServiceError(Code.UNAVAILABLE, "busy", {
      metadata: { "retry-after": ["1", "2"], "x-many": ["a", "b"] },
    });
    const client = await serveCount(oneTickThen(busy), finalized);
    const res = await collect(count(client, { count: 1 }, { deadline: Date.now() + 5_000 }));
    await settled();
    expect(crashes).toEqual([]);
    expect(res.items.map((t) => t.n)).toEqual([1n]);
    expect([res.status.code, res.status.details]).toEqual([status.UNAVAILABLE, "busy"]);
    expect(res.status.metadata.get("retry-after")).toEqual(["1"]);
    // Headers HTTP/2 allows repeated keep every value (node:http2 hands the client them joined).
    expect(res.status.metadata.get("x-many")).toEqual(["a, b"]);
    expect(finalized.map((f) => f.code)).toEqual([Code.UNAVAILABLE]);
  });

  it("unary: the error's trailers keep the first retry-after instead of being dropped", async () => {
    watchCrashes();
    const client = await serveSum(async () => {
      throw new ServiceError(Code.UNAVAILABLE, "busy", { metadata: { "retry-after": ["1", "2"] } });
    }, []);
    const res = await unary(client, "/pb.Add/Sum", SumRequest, SumReply, { a: 1n, b: 2n });
    await settled();
    expect(crashes).toEqual([]);
    expect([res.status.code, res.status.details]).toEqual([status.UNAVAILABLE, "busy"]);
    expect(res.status.metadata.get("retry-after")).toEqual(["1"]);
  });

  it("server streaming: an `after` trailer with two retry-after values and a connection header ends OK", async () => {
    watchCrashes();
    const finalized: GrpcServerFinalizerInfo[] = [];
    const client = await serveCount(
      async function twoTicks() {
        return (async function* () {
          yield { n: 1n, payload: new Uint8Array(0) };
          yield { n: 2n, payload: new Uint8Array(0) };
        })();
      },
      finalized,
      (trailer) => {
        trailer.add("retry-after", "5");
        trailer.add("retry-after", "6");
        trailer.add("connection", "close");
        trailer.add("x-kept", "yes");
      },
    );
    const res = await collect(count(client, { count: 2 }, { deadline: Date.now() + 5_000 }));
    await settled();
    expect(crashes).toEqual([]);
    expect(res.items.map((t) => t.n)).toEqual([1n, 2n]);
    expect(res.status.code).toBe(status.OK);
    expect(res.status.metadata.get("retry-after")).toEqual(["5"]);
    expect(res.status.metadata.get("connection")).toEqual([]);
    expect(res.status.metadata.get("x-kept")).toEqual(["yes"]);
    expect(finalized.map((f) => f.code)).toEqual([Code.OK]);
  });
});
