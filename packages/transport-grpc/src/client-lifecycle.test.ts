// The client side's channel and deadline edges: calls on a closed grpc-js Client, the close() of an
// endpoint that made its own Client, and deadlines too far away for a grpc-js server's 32-bit timer.
import { Client, credentials } from "@grpc/grpc-js";
import { Code, createContext, ServiceError } from "@svckit/endpoint";
import {
  bindService,
  createGrpcBidiClient,
  createGrpcClient,
  createGrpcClientStreamClient,
  createGrpcHandler,
  createGrpcStreamClient,
  type GrpcClientFinalizerInfo,
} from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import {
  closeAll,
  deferred,
  freePort,
  protos,
  type SumReply,
  type SumRequest,
  startServer,
  type Tick,
} from "./test-helpers.js";

afterEach(closeAll);

const add = protos.service("pb.Add");
const counter = protos.service("counter.Counter");

const encodeSum = (_ctx: unknown, req: { a: number; b: number }): SumRequest => ({
  a: BigInt(req.a),
  b: BigInt(req.b),
});
const decodeSum = (_ctx: unknown, reply: SumReply): number => Number(reply.v);
const encodeTick = (_ctx: unknown, n: number) => ({ n: BigInt(n), payload: new Uint8Array(0) });
const decodeTick = (_ctx: unknown, tick: Tick): number => Number(tick.n);

/** A grpc-js Client to a port nothing listens on, closed already. */
async function closedClient(): Promise<Client> {
  const client = new Client(`127.0.0.1:${await freePort()}`, credentials.createInsecure());
  client.close();
  return client;
}

function expectChannelClosed(err: unknown, path: string): void {
  expect(err).toBeInstanceOf(ServiceError);
  const error = err as ServiceError;
  expect([error.code, error.message]).toEqual([
    Code.UNAVAILABLE,
    `channel closed: ${path} could not be started`,
  ]);
  expect(error.cause).toBeInstanceOf(Error);
}

async function drain(stream: AsyncIterable<unknown>): Promise<unknown> {
  try {
    for await (const _ of stream) {
      // nothing is expected
    }
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("calls on a closed grpc-js Client (regression: INTERNAL, or a raw Error without finalizer)", () => {
  it("unary: UNAVAILABLE 'channel closed', finalizer once", async () => {
    const finalized: GrpcClientFinalizerInfo[] = [];
    const sum = createGrpcClient(await closedClient(), add, "Sum", encodeSum, decodeSum, {
      finalizer: (_ctx, info) => finalized.push(info),
    });
    const err = await sum(createContext(), { a: 1, b: 2 }).catch((e: unknown) => e);
    expectChannelClosed(err, "/pb.Add/Sum");
    expect(finalized.map((f) => [f.method, f.code])).toEqual([["/pb.Add/Sum", Code.UNAVAILABLE]]);
  });

  it("client streaming: UNAVAILABLE 'channel closed', finalizer once", async () => {
    const finalized: GrpcClientFinalizerInfo[] = [];
    const total = createGrpcClientStreamClient(
      await closedClient(),
      counter,
      "Total",
      encodeTick,
      decodeTick,
      {
        finalizer: (_ctx, info) => finalized.push(info),
      },
    );
    const err = await total(createContext(), [1, 2]).catch((e: unknown) => e);
    expectChannelClosed(err, "/counter.Counter/Total");
    expect(finalized.map((f) => f.code)).toEqual([Code.UNAVAILABLE]);
  });

  it("server streaming: the stream throws UNAVAILABLE 'channel closed', finalizer once", async () => {
    const finalized: GrpcClientFinalizerInfo[] = [];
    const countTicks = createGrpcStreamClient(
      await closedClient(),
      counter,
      "Count",
      (_ctx, n: number) => ({ start: 0n, count: n, payloadSize: 0 }),
      decodeTick,
      { finalizer: (_ctx, info) => finalized.push(info) },
    );
    const err = await drain(await countTicks(createContext(), 3));
    expectChannelClosed(err, "/counter.Counter/Count");
    expect(finalized.map((f) => f.code)).toEqual([Code.UNAVAILABLE]);
  });

  it("bidi: the stream throws UNAVAILABLE 'channel closed', finalizer once", async () => {
    const finalized: GrpcClientFinalizerInfo[] = [];
    const echo = createGrpcBidiClient(await closedClient(), counter, "Echo", encodeTick, decodeTick, {
      finalizer: (_ctx, info) => finalized.push(info),
    });
    const err = await drain(await echo(createContext(), [1, 2]));
    expectChannelClosed(err, "/counter.Counter/Echo");
    expect(finalized.map((f) => f.code)).toEqual([Code.UNAVAILABLE]);
  });
});

async function serveSum(deadlines: (number | undefined)[]): Promise<string> {
  const handler = createGrpcHandler(
    async (ctx, req: SumRequest): Promise<SumReply> => {
      deadlines.push(ctx.deadline);
      return { v: req.a + req.b, err: "" };
    },
    (_ctx, msg: SumRequest) => msg,
    (_ctx, res: SumReply) => res,
  );
  const { address } = await startServer((server) => bindService(server, add, { Sum: handler }));
  return address;
}

describe("close() of a client endpoint", () => {
  it("closes the Client the endpoint made for an address: later calls are UNAVAILABLE", async () => {
    const sum = createGrpcClient(await serveSum([]), add, "Sum", encodeSum, decodeSum);
    expect(await sum(createContext({ timeout: 5_000 }), { a: 1, b: 2 })).toBe(3);
    sum.close();
    sum.close(); // twice is fine
    expectChannelClosed(await sum(createContext(), { a: 1, b: 2 }).catch((e: unknown) => e), "/pb.Add/Sum");
  });

  it("leaves a Client that was passed in open", async () => {
    const client = new Client(await serveSum([]), credentials.createInsecure());
    try {
      const sum = createGrpcClient(client, add, "Sum", encodeSum, decodeSum);
      const stream = createGrpcStreamClient(client, counter, "Count", encodeTick, decodeTick);
      sum.close();
      stream.close();
      expect(await sum(createContext({ timeout: 5_000 }), { a: 1, b: 2 })).toBe(3);
    } finally {
      client.close();
    }
  });
});

describe("deadlines past a grpc-js server's 32-bit grpc-timeout (regression: DEADLINE_EXCEEDED at once)", () => {
  const day = 86_400_000;

  it.each([25, 100])("a deadline %i days away is not sent; the call succeeds", async (days) => {
    const deadlines: (number | undefined)[] = [];
    const sum = createGrpcClient(await serveSum(deadlines), add, "Sum", encodeSum, decodeSum);
    try {
      const ctx = createContext({ deadline: Date.now() + days * day });
      expect(await sum(ctx, { a: 1, b: 2 })).toBe(3);
      expect(deadlines).toEqual([undefined]);
    } finally {
      sum.close();
    }
  });

  it("a deadline 24 days away is still sent", async () => {
    const deadlines: (number | undefined)[] = [];
    const sum = createGrpcClient(await serveSum(deadlines), add, "Sum", encodeSum, decodeSum);
    try {
      const at = Date.now() + 24 * day;
      expect(await sum(createContext({ deadline: at }), { a: 1, b: 2 })).toBe(3);
      expect(deadlines).toHaveLength(1);
      expect(Math.abs((deadlines[0] as number) - at)).toBeLessThan(2_000);
    } finally {
      sum.close();
    }
  });

  it("a call whose far deadline was not sent still ends when its context is aborted (as at its deadline)", async () => {
    const arrived = deferred<void>();
    const handler = createGrpcHandler(
      (ctx) =>
        new Promise<SumReply>((_resolve, reject) => {
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
          arrived.resolve();
        }),
      (_ctx, msg: SumRequest) => msg,
      (_ctx, res: SumReply) => res,
    );
    const { address } = await startServer((server) => bindService(server, add, { Sum: handler }));
    const sum = createGrpcClient(address, add, "Sum", encodeSum, decodeSum);
    try {
      const controller = new AbortController();
      const ctx = createContext({ deadline: Date.now() + 30 * day, signal: controller.signal });
      const pending = sum(ctx, { a: 1, b: 2 }).catch((e: unknown) => e);
      await arrived.promise;
      controller.abort(new ServiceError(Code.DEADLINE_EXCEEDED, "deadline exceeded"));
      const err = (await pending) as ServiceError;
      expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    } finally {
      sum.close();
    }
  });
});

describe("outgoing metadata", () => {
  it("fails a call whose metadata holds two values of a header HTTP/2 allows once, naming it (regression: one token was sent silently)", async () => {
    const seen: (string | undefined)[] = [];
    const handler = createGrpcHandler(
      async (ctx, req: SumRequest): Promise<SumReply> => {
        seen.push(ctx.metadata.get("authorization"));
        return { v: req.a + req.b, err: "" };
      },
      (_ctx, msg: SumRequest) => msg,
      (_ctx, res: SumReply) => res,
    );
    const { address } = await startServer((server) => bindService(server, add, { Sum: handler }));
    const sum = createGrpcClient(address, add, "Sum", encodeSum, decodeSum);
    try {
      const err = await sum(
        createContext({
          timeout: 5_000,
          outgoingMetadata: { authorization: ["Bearer user", "Bearer service"] },
        }),
        { a: 1, b: 2 },
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServiceError);
      expect([(err as ServiceError).code, (err as ServiceError).message]).toEqual([
        Code.INVALID_ARGUMENT,
        'outgoing metadata "authorization" has 2 values: HTTP/2 allows one',
      ]);
      expect(seen).toEqual([]);
      const ok = createContext({ timeout: 5_000, outgoingMetadata: { authorization: "Bearer user" } });
      expect(await sum(ok, { a: 1, b: 2 })).toBe(3);
      expect(seen).toEqual(["Bearer user"]);
    } finally {
      sum.close();
    }
  });
});
