// The same cases against grpc-js's own Server and this engine, both driven by @svckit/transport-grpc's
// bindService and called with a plain grpc-js client: what passes on grpc-js must pass here.
import { type Client, Metadata, status } from "@grpc/grpc-js";
import { Code, type Context, codeNames, type Endpoint, ServiceError } from "@svckit/endpoint";
import {
  bindService,
  createGrpcHandler,
  decodeStatusDetails,
  type GrpcServerOptions,
  STATUS_DETAILS_KEY,
} from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import {
  aborted,
  type ConcatReply,
  ConcatRequest,
  type CountRequest,
  callSum,
  closeAll,
  collect,
  count,
  deferred,
  type Engine,
  type EngineOptions,
  engines,
  grpcClient,
  protos,
  rawBytes,
  type SumReply,
  type SumRequest,
  startServer,
  type Tick,
  unary,
} from "./test-helpers.js";

afterEach(closeAll);

const add = protos.service("pb.Add");
const counter = protos.service("counter.Counter");

const sumEndpoint: Endpoint<SumRequest, bigint> = async (_ctx, { a, b }) => a + b;

function sumHandler(endpoint: Endpoint<SumRequest, bigint> = sumEndpoint, options?: GrpcServerOptions) {
  return createGrpcHandler(
    endpoint,
    (_ctx, msg: SumRequest) => msg,
    (_ctx, v: bigint): SumReply => ({ v, err: "" }),
    options,
  );
}

function concatHandler(endpoint: Endpoint<ConcatRequest, string> = async (_ctx, { a, b }) => a + b) {
  return createGrpcHandler(
    endpoint,
    (_ctx, msg: ConcatRequest) => msg,
    (_ctx, v: string): ConcatReply => ({ v, err: "" }),
  );
}

async function* ticks(req: CountRequest): AsyncGenerator<Tick> {
  for (let i = 0; i < req.count; i++) {
    const n = req.start + BigInt(i);
    yield { n, payload: new Uint8Array(req.payloadSize).fill(Number(n % 256n)) };
  }
}

function countHandler(
  endpoint: Endpoint<CountRequest, AsyncIterable<Tick>> = async (_ctx, req) => ticks(req),
  options?: GrpcServerOptions,
) {
  return createGrpcHandler(
    endpoint,
    (_ctx, msg: CountRequest) => msg,
    (_ctx, tick: Tick) => tick,
    options,
  );
}

const BIG = 5 * 1024 * 1024;
const unlimitedClient = { "grpc.max_receive_message_length": -1, "grpc.max_send_message_length": -1 };

describe.each(engines)("on $name", (engine: Engine) => {
  async function serve(
    sum?: Endpoint<SumRequest, bigint>,
    options?: GrpcServerOptions,
    engineOptions?: EngineOptions,
    clientOptions?: Record<string, number>,
  ): Promise<Client> {
    const { address } = await startServer(
      engine,
      (server) => {
        bindService(server, add, { Sum: sumHandler(sum, options), Concat: concatHandler() });
        bindService(server, counter, { Count: countHandler() });
      },
      engineOptions,
    );
    return grpcClient(address, clientOptions);
  }

  describe("unary", () => {
    it("answers Sum and Concat", async () => {
      const client = await serve();
      const sum = await callSum(client, { a: 2n ** 62n, b: 5n });
      expect([sum.status.code, sum.value]).toEqual([status.OK, { v: 2n ** 62n + 5n, err: "" }]);
      const concat = await unary(
        client,
        "/pb.Add/Concat",
        ConcatRequest,
        protos.messageType<ConcatReply>("pb.ConcatReply"),
        {
          a: "ab",
          b: "cd",
        },
      );
      expect(concat.value).toEqual({ v: "abcd", err: "" });
    });

    it("answers many concurrent calls on one connection", async () => {
      const client = await serve();
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => callSum(client, { a: BigInt(i), b: 1n })),
      );
      expect(results.map((r) => r.value?.v)).toEqual(Array.from({ length: 200 }, (_, i) => BigInt(i) + 1n));
    });

    it("hands the request metadata to before and to ctx.metadata (lower-case keys, -bin as base64, no protocol headers)", async () => {
      const seen: { before?: Record<string, unknown>; ctx?: Record<string, string | string[]> } = {};
      const client = await serve(
        async (ctx, { a, b }) => {
          seen.ctx = ctx.metadata.toRecord();
          return a + b;
        },
        {
          before: [
            (ctx, md) => {
              seen.before = { tenant: md.get("x-tenant"), trace: md.get("trace-bin") };
              return ctx;
            },
          ],
        },
      );
      const md = new Metadata();
      md.set("X-Tenant", "acme");
      md.add("x-multi", "one");
      md.add("x-multi", "two");
      md.set("trace-bin", Buffer.from([0, 1, 2, 250]));
      const res = await callSum(client, { a: 1n, b: 2n }, { metadata: md, deadline: Date.now() + 5_000 });
      expect(res.status.code).toBe(status.OK);
      expect(seen.before).toEqual({ tenant: ["acme"], trace: [Buffer.from([0, 1, 2, 250])] });
      const { "user-agent": agent, ...rest } = seen.ctx ?? {};
      expect(agent).toMatch(/^grpc-node-js\//);
      expect(rest).toEqual({
        "x-tenant": "acme",
        "x-multi": "one, two",
        "trace-bin": Buffer.from([0, 1, 2, 250]).toString("base64"),
      });
    });

    it("sends the header and trailer metadata that after adds", async () => {
      const client = await serve(undefined, {
        after: [
          (ctx, header, trailer) => {
            header.set("x-header", "h");
            header.set("h-bin", Buffer.from([9, 8]));
            trailer.set("x-trailer", "t");
            trailer.set("t-bin", Buffer.from([7]));
            return ctx;
          },
        ],
      });
      const res = await callSum(client, { a: 1n, b: 1n });
      expect(res.status.code).toBe(status.OK);
      expect(res.header?.get("x-header")).toEqual(["h"]);
      expect(res.header?.get("h-bin")).toEqual([Buffer.from([9, 8])]);
      expect(res.status.metadata.get("x-trailer")).toEqual(["t"]);
      expect(res.status.metadata.get("t-bin")).toEqual([Buffer.from([7])]);
    });

    const failing = (Object.keys(Code) as (keyof typeof Code)[]).filter((name) => name !== "OK");
    it.each(failing)("sends %s with its message, trailers and details", async (name) => {
      const detail = { type: "test.Detail", value: Uint8Array.of(1, 2, 3) };
      const message = `${name}: 100% café\nline`;
      const client = await serve(async () => {
        throw new ServiceError(Code[name], message, { details: [detail], metadata: { "x-why": "because" } });
      });
      const res = await callSum(client, { a: 1n, b: 2n });
      expect(res.status.code).toBe(Code[name]);
      expect(codeNames[res.status.code as Code]).toBe(name);
      expect(res.status.details).toBe(message);
      expect(res.status.metadata.get("x-why")).toEqual(["because"]);
      const raw = res.status.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer;
      expect(decodeStatusDetails(raw)).toEqual({ code: Code[name], message, details: [detail] });
    });

    it("hides a plain Error as INTERNAL 'internal error'", async () => {
      const client = await serve(async () => {
        throw new Error("secret");
      });
      const res = await callSum(client, { a: 1n, b: 2n });
      expect([res.status.code, res.status.details]).toEqual([status.INTERNAL, "internal error"]);
    });

    it("answers INVALID_ARGUMENT to a request that is not the message", async () => {
      const client = await serve();
      const res = await unary(client, "/pb.Add/Sum", rawBytes, rawBytes, Buffer.from([0x0a, 0xff]));
      expect(res.status.code).toBe(status.INVALID_ARGUMENT);
      expect(res.status.details).toMatch(/^invalid pb\.SumRequest message: truncated data/);
    });

    it("answers UNIMPLEMENTED to an unknown method", async () => {
      const client = await serve();
      const res = await unary(client, "/pb.Add/Nope", rawBytes, rawBytes, Buffer.alloc(0));
      expect(res.status.code).toBe(status.UNIMPLEMENTED);
      expect(res.status.details).toContain("/pb.Add/Nope");
    });
  });

  describe("deadlines and cancellation", () => {
    it("puts the client's deadline in ctx.deadline", async () => {
      let deadline: number | undefined;
      const client = await serve(async (ctx, { a, b }) => {
        deadline = ctx.deadline;
        return a + b;
      });
      const at = Date.now() + 3_000;
      await callSum(client, { a: 1n, b: 2n }, { deadline: at });
      expect(deadline).toBeGreaterThan(at - 500);
      expect(deadline).toBeLessThanOrEqual(at + 50);
      await callSum(client, { a: 1n, b: 2n });
      expect(deadline).toBeUndefined();
    });

    it("aborts ctx.signal with DEADLINE_EXCEEDED when the deadline passes; the client gets DEADLINE_EXCEEDED", async () => {
      const reason = deferred<unknown>();
      const client = await serve(async (ctx) => {
        await aborted(ctx.signal);
        reason.resolve(ctx.signal.reason);
        throw ctx.signal.reason;
      });
      const res = await callSum(client, { a: 1n, b: 2n }, { deadline: Date.now() + 150 });
      expect(res.status.code).toBe(status.DEADLINE_EXCEEDED);
      const why = (await reason.promise) as ServiceError;
      expect(why).toBeInstanceOf(ServiceError);
      expect(why.code).toBe(Code.DEADLINE_EXCEEDED);
    });

    it("aborts ctx.signal with CANCELLED when the client cancels", async () => {
      const started = deferred<void>();
      const reason = deferred<unknown>();
      const client = await serve(async (ctx) => {
        started.resolve();
        await aborted(ctx.signal);
        reason.resolve(ctx.signal.reason);
        throw ctx.signal.reason;
      });
      const res = callSum(
        client,
        { a: 1n, b: 2n },
        {
          onCall: (call) => {
            started.promise.then(() => call.cancel());
          },
        },
      );
      expect((await res).status.code).toBe(status.CANCELLED);
      const why = (await reason.promise) as ServiceError;
      expect([why.code, why.message]).toEqual([Code.CANCELLED, "call cancelled by the client"]);
    });

    it("reports a cancelled call to ctx.aborted without anyone having asked for the signal", async () => {
      const started = deferred<void>();
      const release = deferred<void>();
      const seen = deferred<boolean>();
      const client = await serve(async (ctx, { a, b }) => {
        started.resolve();
        await release.promise;
        seen.resolve(ctx.aborted);
        return a + b;
      });
      const res = callSum(
        client,
        { a: 1n, b: 2n },
        {
          onCall: (call) => {
            started.promise.then(() => {
              call.cancel();
              setTimeout(() => release.resolve(), 50);
            });
          },
        },
      );
      expect((await res).status.code).toBe(status.CANCELLED);
      expect(await seen.promise).toBe(true);
    });
  });

  describe("message sizes and compression", () => {
    it(`carries ${BIG} B messages both ways when both sides allow them`, async () => {
      const client = await serve(
        undefined,
        undefined,
        { maxReceiveMessageLength: 8 * 1024 * 1024 },
        unlimitedClient,
      );
      const a = "a".repeat(BIG);
      const res = await unary(
        client,
        "/pb.Add/Concat",
        ConcatRequest,
        protos.messageType<ConcatReply>("pb.ConcatReply"),
        {
          a,
          b: "z",
        },
      );
      expect(res.status.code).toBe(status.OK);
      expect(res.value?.v.length).toBe(BIG + 1);
      expect(res.value?.v.endsWith("az")).toBe(true);
    });

    it("refuses a request above the default 4 MiB limit with RESOURCE_EXHAUSTED", async () => {
      const client = await serve(undefined, undefined, undefined, unlimitedClient);
      const res = await unary(
        client,
        "/pb.Add/Concat",
        ConcatRequest,
        protos.messageType<ConcatReply>("pb.ConcatReply"),
        {
          a: "a".repeat(4 * 1024 * 1024 + 1),
          b: "",
        },
      );
      expect(res.status.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(res.status.details).toMatch(/^Received message larger than max \(\d+ vs 4194304\)$/);
    });

    it("refuses to send a response above maxSendMessageLength with RESOURCE_EXHAUSTED", async () => {
      const client = await serve(undefined, undefined, { maxSendMessageLength: 16 });
      const ok = await unary(
        client,
        "/pb.Add/Concat",
        ConcatRequest,
        protos.messageType<ConcatReply>("pb.ConcatReply"),
        {
          a: "ab",
          b: "",
        },
      );
      expect(ok.status.code).toBe(status.OK);
      const res = await unary(
        client,
        "/pb.Add/Concat",
        ConcatRequest,
        protos.messageType<ConcatReply>("pb.ConcatReply"),
        {
          a: "x".repeat(100),
          b: "",
        },
      );
      expect(res.status.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(res.status.details).toMatch(/^Sent message larger than max/);
    });

    it.each([
      ["deflate", 1],
      ["gzip", 2],
    ])("decompresses requests a client compresses with %s", async (_name, algorithm) => {
      const client = await serve(undefined, undefined, undefined, {
        "grpc.default_compression_algorithm": algorithm,
        ...unlimitedClient,
      });
      const sum = await callSum(client, { a: 40n, b: 2n });
      expect(sum.value?.v).toBe(42n);
      const long = "xy".repeat(100_000);
      const res = await unary(
        client,
        "/pb.Add/Concat",
        ConcatRequest,
        protos.messageType<ConcatReply>("pb.ConcatReply"),
        {
          a: long,
          b: "!",
        },
      );
      expect(res.value?.v).toBe(`${long}!`);
    });

    it("refuses a compressed request that decompresses above the limit with RESOURCE_EXHAUSTED", async () => {
      const client = await serve(
        undefined,
        undefined,
        { maxReceiveMessageLength: 64 * 1024 },
        {
          "grpc.default_compression_algorithm": 2,
        },
      );
      const res = await unary(
        client,
        "/pb.Add/Concat",
        ConcatRequest,
        protos.messageType<ConcatReply>("pb.ConcatReply"),
        {
          a: "a".repeat(200 * 1024),
          b: "",
        },
      );
      expect(res.status.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(res.status.details).toBe("Received message that decompresses to a size larger than 65536");
    });
  });

  describe("server streaming", () => {
    it("sends every item in order, then OK", async () => {
      const client = await serve();
      const res = await collect(count(client, { start: 5n, count: 100 }));
      expect(res.status.code).toBe(status.OK);
      expect(res.items.map((t) => t.n)).toEqual(Array.from({ length: 100 }, (_, i) => 5n + BigInt(i)));
    });

    it("ends an empty stream with OK", async () => {
      const client = await serve();
      const res = await collect(count(client, { count: 0 }));
      expect([res.status.code, res.items]).toEqual([status.OK, []]);
    });

    it("streams 32 MiB in 1 MiB messages through HTTP/2 flow control", async () => {
      const client = await serve(undefined, undefined, undefined, unlimitedClient);
      const res = await collect(count(client, { start: 0n, count: 32, payloadSize: 1024 * 1024 }));
      expect(res.status.code).toBe(status.OK);
      expect(res.items.length).toBe(32);
      expect(
        res.items.every((t) => t.payload.length === 1024 * 1024 && t.payload[7] === Number(t.n % 256n)),
      ).toBe(true);
    });

    it("sends an error thrown mid-stream as the status after the items sent", async () => {
      const detail = { type: "counter.Stopped", value: Uint8Array.of(8, 3) };
      const { address } = await startServer(engine, (server) =>
        bindService(server, counter, {
          Count: countHandler(async (_ctx, req) =>
            (async function* () {
              yield* ticks({ ...req, count: 3 });
              throw new ServiceError(Code.ABORTED, "stopped at 3", { details: [detail] });
            })(),
          ),
        }),
      );
      const res = await collect(count(grpcClient(address), { start: 0n, count: 10 }));
      expect(res.items.map((t) => t.n)).toEqual([0n, 1n, 2n]);
      expect([res.status.code, res.status.details]).toEqual([status.ABORTED, "stopped at 3"]);
      const raw = res.status.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer;
      expect(decodeStatusDetails(raw)?.details).toEqual([detail]);
    });

    it("sends after's header before the first item and its trailer with OK", async () => {
      const { address } = await startServer(engine, (server) =>
        bindService(server, counter, {
          Count: countHandler(undefined, {
            after: [
              (ctx, header, trailer) => {
                header.set("x-stream", "yes");
                trailer.set("x-count", "2");
                return ctx;
              },
            ],
          }),
        }),
      );
      const res = await collect(count(grpcClient(address), { count: 2 }));
      expect(res.header?.get("x-stream")).toEqual(["yes"]);
      expect(res.status.metadata.get("x-count")).toEqual(["2"]);
      expect(res.items.length).toBe(2);
    });

    it("aborts the endpoint's ctx.signal when the client cancels mid-stream", async () => {
      const reason = deferred<unknown>();
      const { address } = await startServer(engine, (server) =>
        bindService(server, counter, {
          Count: countHandler(async (ctx: Context) =>
            (async function* () {
              for (let n = 0n; ; n++) {
                yield { n, payload: new Uint8Array(0) };
                if (n === 2n) {
                  await aborted(ctx.signal);
                  reason.resolve(ctx.signal.reason);
                  return;
                }
              }
            })(),
          ),
        }),
      );
      const stream = count(grpcClient(address), { count: 1 });
      const res = collect(stream, (tick) => {
        if (tick.n === 2n) stream.cancel();
      });
      expect((await res).status.code).toBe(status.CANCELLED);
      expect(((await reason.promise) as ServiceError).code).toBe(Code.CANCELLED);
    });

    it("ends a stream with DEADLINE_EXCEEDED at its deadline", async () => {
      const { address } = await startServer(engine, (server) =>
        bindService(server, counter, {
          Count: countHandler(async (ctx: Context) =>
            (async function* () {
              yield { n: 1n, payload: new Uint8Array(0) };
              await aborted(ctx.signal);
            })(),
          ),
        }),
      );
      const res = await collect(count(grpcClient(address), { count: 1 }, { deadline: Date.now() + 150 }));
      expect(res.status.code).toBe(status.DEADLINE_EXCEEDED);
      expect(res.items.map((t) => t.n)).toEqual([1n]);
    });

    it("ends a stream cut short by the server's own deadline with DEADLINE_EXCEEDED, not OK", async () => {
      // The server's context gets a 100 ms deadline (a `before`); the caller's is 10 s. The endpoint's
      // stream stops when its context aborts and returns normally: it was cut short all the same.
      const { address } = await startServer(engine, (server) =>
        bindService(server, counter, {
          Count: countHandler(
            async (ctx: Context) =>
              (async function* () {
                yield { n: 1n, payload: new Uint8Array(0) };
                await aborted(ctx.signal);
              })(),
            { before: [(ctx) => ctx.withTimeout(100).context] },
          ),
        }),
      );
      const res = await collect(count(grpcClient(address), { count: 1 }, { deadline: Date.now() + 10_000 }));
      expect(res.status.code).toBe(status.DEADLINE_EXCEEDED);
      expect(res.items.map((t) => t.n)).toEqual([1n]);
    });
  });

  describe("graceful shutdown", () => {
    it("lets calls in flight finish, refuses new ones, then calls back", async () => {
      const started = deferred<void>();
      const release = deferred<void>();
      const { server, address } = await startServer(engine, (s) =>
        bindService(s, add, {
          Sum: sumHandler(async (_ctx, { a, b }) => {
            started.resolve();
            await release.promise;
            return a + b;
          }),
        }),
      );
      const first = callSum(grpcClient(address), { a: 1n, b: 2n });
      await started.promise;
      const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const late = await callSum(grpcClient(address), { a: 1n, b: 1n }, { deadline: Date.now() + 2_000 });
      expect(late.status.code).toBe(status.UNAVAILABLE);
      release.resolve();
      expect((await first).value?.v).toBe(3n);
      await closed;
    });

    it("forceShutdown cancels calls in flight", async () => {
      const started = deferred<void>();
      const reason = deferred<unknown>();
      const { server, address } = await startServer(engine, (s) =>
        bindService(s, add, {
          Sum: sumHandler(async (ctx) => {
            started.resolve();
            await aborted(ctx.signal);
            reason.resolve(ctx.signal.reason);
            throw ctx.signal.reason;
          }),
        }),
      );
      const call = callSum(grpcClient(address), { a: 1n, b: 2n });
      await started.promise;
      server.forceShutdown();
      expect(((await reason.promise) as ServiceError).code).toBe(Code.CANCELLED);
      // grpc-js resets the streams (CANCELLED), this engine drops the connection (UNAVAILABLE): both end the call.
      expect([status.CANCELLED, status.UNAVAILABLE]).toContain((await call).status.code);
    });
  });
});
