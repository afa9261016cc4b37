// The same cases against grpc-js's own Server and this engine, both driven by @svckit/transport-grpc's
// bindService and called with a plain grpc-js client: what passes on grpc-js must pass here.
import {
  type Client,
  type ClientDuplexStream,
  type ClientWritableStream,
  type ServiceError as GrpcServiceError,
  Metadata,
  type ServerDuplexStream,
  type ServerReadableStream,
  type StatusObject,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
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
  sleep,
  startServer,
  Tick,
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

// ---- client streaming and bidi ----

const CountReply = protos.messageType<CountRequest>("counter.CountRequest");
const tick = (n: bigint, payloadSize = 0): Tick => ({ n, payload: new Uint8Array(payloadSize).fill(7) });
/** What the test clients send: a tick, or bytes that are not a Tick. */
type Outgoing = Tick | { bad: Uint8Array };
const serializeOutgoing = (m: Outgoing): Buffer =>
  "bad" in m ? Buffer.from(m.bad) : Buffer.from(Tick.encode(m));
/** A length-delimited field 2 that claims 100 bytes and has 1: truncated. */
const TRUNCATED = { bad: new Uint8Array([0x12, 100, 1]) };

interface TotalCall {
  readonly stream: ClientWritableStream<Outgoing>;
  readonly result: Promise<{
    error: GrpcServiceError | null;
    value: CountRequest | undefined;
    status: StatusObject;
    header: Metadata | undefined;
  }>;
}

/** Starts `/counter.Counter/Total` (client streaming) with a plain grpc-js client. */
function total(
  client: Client,
  options: { metadata?: Metadata; deadline?: number; path?: string } = {},
): TotalCall {
  let error: GrpcServiceError | null = null;
  let value: CountRequest | undefined;
  let header: Metadata | undefined;
  const stream = client.makeClientStreamRequest(
    options.path ?? "/counter.Counter/Total",
    serializeOutgoing,
    (b: Buffer) => CountReply.decode(b),
    options.metadata ?? new Metadata(),
    options.deadline === undefined ? {} : { deadline: options.deadline },
    (err, reply) => {
      error = err;
      value = reply;
    },
  );
  stream.on("metadata", (md: Metadata) => {
    header = md;
  });
  const result = new Promise<Awaited<TotalCall["result"]>>((resolve) =>
    stream.on("status", (s: StatusObject) =>
      setImmediate(() => resolve({ error, value, status: s, header })),
    ),
  );
  return { stream, result };
}

/** Starts `/counter.Counter/Echo` (bidi) with a plain grpc-js client. */
function echo(
  client: Client,
  options: { metadata?: Metadata; deadline?: number; path?: string } = {},
): ClientDuplexStream<Outgoing, Tick> {
  return client.makeBidiStreamRequest(
    options.path ?? "/counter.Counter/Echo",
    serializeOutgoing,
    (b: Buffer) => Tick.decode(b),
    options.metadata ?? new Metadata(),
    options.deadline === undefined ? {} : { deadline: options.deadline },
  );
}

/** Sums the ticks: `start` = Σ n, `count` = how many. */
const totalEndpoint: Endpoint<AsyncIterable<Tick>, CountRequest> = async (_ctx, ticks) => {
  let start = 0n;
  let count = 0;
  for await (const t of ticks) {
    start += t.n;
    count++;
  }
  return { start, count, payloadSize: 0 };
};

/** Answers each tick with n + 1000 and the same payload. */
const echoEndpoint: Endpoint<AsyncIterable<Tick>, AsyncIterable<Tick>> = async (_ctx, ticks) =>
  (async function* () {
    for await (const t of ticks) yield { n: t.n + 1000n, payload: t.payload };
  })();

function totalHandler(
  endpoint: Endpoint<AsyncIterable<Tick>, CountRequest> = totalEndpoint,
  options?: GrpcServerOptions,
) {
  return createGrpcHandler(
    endpoint,
    (_ctx, msg: Tick) => msg,
    (_ctx, res: CountRequest) => res,
    options,
  );
}

function echoHandler(
  endpoint: Endpoint<AsyncIterable<Tick>, AsyncIterable<Tick>> = echoEndpoint,
  options?: GrpcServerOptions,
) {
  return createGrpcHandler(
    endpoint,
    (_ctx, msg: Tick) => msg,
    (_ctx, t: Tick) => t,
    options,
  );
}

/** Everything a bidi call received, once its status came (never rejects). */
function drain(stream: ClientDuplexStream<Outgoing, Tick>, onItem?: (t: Tick) => void) {
  const items: Tick[] = [];
  let header: Metadata | undefined;
  stream.on("data", (t: Tick) => {
    items.push(t);
    onItem?.(t);
  });
  stream.on("error", () => undefined);
  stream.on("metadata", (md: Metadata) => {
    header = md;
  });
  return new Promise<{ items: Tick[]; status: StatusObject; header: Metadata | undefined }>((resolve) =>
    stream.on("status", (s: StatusObject) => setImmediate(() => resolve({ items, status: s, header }))),
  );
}

function finalizers(): { codes: number[]; options: GrpcServerOptions } {
  const codes: number[] = [];
  return { codes, options: { finalizer: (_ctx, info) => codes.push(info.code) } };
}

const counterService = protos.service("counter.Counter");
const identityBytes = (b: Buffer): Buffer => b;

/** A raw grpc-js service definition: `/raw.R/Up` (client streaming) and `/raw.R/Chat` (bidi), bytes as they are. */
const rawDefinition = {
  Up: {
    path: "/raw.R/Up",
    requestStream: true,
    responseStream: false,
    requestSerialize: identityBytes,
    requestDeserialize: (b: Buffer): string => {
      if (b.length > 0 && b[0] === 0xff) throw new Error("not text");
      return b.toString();
    },
    responseSerialize: (v: string): Buffer => Buffer.from(v),
    responseDeserialize: identityBytes,
  },
  Chat: {
    path: "/raw.R/Chat",
    requestStream: true,
    responseStream: true,
    requestSerialize: identityBytes,
    requestDeserialize: (b: Buffer): string => {
      if (b.length > 0 && b[0] === 0xff) throw new Error("not text");
      return b.toString();
    },
    responseSerialize: (v: string): Buffer => Buffer.from(v),
    responseDeserialize: identityBytes,
  },
};

type UpFn = (call: ServerReadableStream<string, string>, callback: sendUnaryData<string>) => void;
type ChatFn = (call: ServerDuplexStream<string, string>) => void;

function rawUp(client: Client, options: { deadline?: number; metadata?: Metadata } = {}) {
  let error: GrpcServiceError | null = null;
  let value: string | undefined;
  const stream = client.makeClientStreamRequest(
    "/raw.R/Up",
    (s: string | Buffer) => Buffer.from(s),
    (b: Buffer) => b.toString(),
    options.metadata ?? new Metadata(),
    options.deadline === undefined ? {} : { deadline: options.deadline },
    (err, reply) => {
      error = err;
      value = reply;
    },
  );
  const result = new Promise<{
    error: GrpcServiceError | null;
    value: string | undefined;
    status: StatusObject;
  }>((resolve) =>
    stream.on("status", (s: StatusObject) => setImmediate(() => resolve({ error, value, status: s }))),
  );
  return { stream, result };
}

function rawChat(client: Client, options: { deadline?: number; metadata?: Metadata } = {}) {
  const stream = client.makeBidiStreamRequest(
    "/raw.R/Chat",
    (s: string | Buffer) => Buffer.from(s),
    (b: Buffer) => b.toString(),
    options.metadata ?? new Metadata(),
    options.deadline === undefined ? {} : { deadline: options.deadline },
  );
  const items: string[] = [];
  let header: Metadata | undefined;
  stream.on("data", (v: string) => items.push(v));
  stream.on("error", () => undefined);
  stream.on("metadata", (md: Metadata) => {
    header = md;
  });
  const result = new Promise<{ items: string[]; status: StatusObject; header: Metadata | undefined }>(
    (resolve) =>
      stream.on("status", (s: StatusObject) => setImmediate(() => resolve({ items, status: s, header }))),
  );
  return { stream, result };
}

describe.each(engines)("client streaming and bidi on $name", (engine: Engine) => {
  async function serve(
    handlers: { Total?: ReturnType<typeof totalHandler>; Echo?: ReturnType<typeof echoHandler> },
    engineOptions?: EngineOptions,
    clientOptions?: Record<string, number>,
  ): Promise<Client> {
    const { address } = await startServer(
      engine,
      (server) =>
        bindService(server, counterService, {
          Total: handlers.Total ?? totalHandler(),
          Echo: handlers.Echo ?? echoHandler(),
        }),
      engineOptions,
    );
    return grpcClient(address, clientOptions);
  }

  async function serveRaw(up: UpFn, chat: ChatFn = (call) => call.end()): Promise<Client> {
    const { address } = await startServer(engine, (server) =>
      server.addService(rawDefinition, { Up: up as never, Chat: chat as never }),
    );
    return grpcClient(address);
  }

  describe("client streaming through bindService", () => {
    it("hands the endpoint every message in order and answers with its one response", async () => {
      const call = total(await serve({}));
      for (const n of [1n, 2n, 2n ** 60n, 2n ** 60n]) call.stream.write(tick(n));
      call.stream.end();
      const { error, value } = await call.result;
      expect(error).toBeNull();
      expect(value).toEqual({ start: 2n ** 61n + 3n, count: 4, payloadSize: 0 });
    });

    it("gives an empty stream to the endpoint when the client sends nothing", async () => {
      const call = total(await serve({}));
      call.stream.end();
      expect((await call.result).value).toEqual({ start: 0n, count: 0, payloadSize: 0 });
    });

    it("reads 2000 messages of 4 KiB through HTTP/2 flow control", async () => {
      const call = total(await serve({}));
      for (let i = 1; i <= 2000; i++) call.stream.write(tick(BigInt(i), 4096));
      call.stream.end();
      expect((await call.result).value).toEqual({ start: 2001000n, count: 2000, payloadSize: 0 });
    });

    it("hands the metadata to before and sends after's header and trailer", async () => {
      const seen: string[] = [];
      const client = await serve({
        Total: totalHandler(totalEndpoint, {
          before: [
            (ctx, md) => {
              seen.push(String(md.get("x-tenant")[0]));
              return ctx;
            },
          ],
          after: [
            (ctx, header, trailer) => {
              header.set("x-header", "h");
              trailer.set("x-total", "done");
              return ctx;
            },
          ],
        }),
      });
      const metadata = new Metadata();
      metadata.set("x-tenant", "acme");
      const call = total(client, { metadata });
      call.stream.write(tick(4n));
      call.stream.end();
      const res = await call.result;
      expect(res.value?.start).toBe(4n);
      expect(seen).toEqual(["acme"]);
      expect(res.header?.get("x-header")).toEqual(["h"]);
      expect(res.status.metadata.get("x-total")).toEqual(["done"]);
    });

    it("answers a malformed message with INVALID_ARGUMENT and keeps serving", async () => {
      const { codes, options } = finalizers();
      const client = await serve({ Total: totalHandler(totalEndpoint, options) });
      const call = total(client);
      for (const m of [tick(1n), TRUNCATED, tick(3n)]) call.stream.write(m);
      call.stream.end();
      const { error } = await call.result;
      expect(error?.code).toBe(status.INVALID_ARGUMENT);
      expect(error?.details).toMatch(/^invalid counter\.Tick message: /);
      expect(codes).toEqual([Code.INVALID_ARGUMENT]);
      const again = total(client);
      again.stream.write(tick(5n));
      again.stream.end();
      expect((await again.result).value?.start).toBe(5n);
    });

    it("sends the endpoint's error with its details; answers OK when it returns before the client ends", async () => {
      const failing = totalHandler(async (_ctx, ticks) => {
        for await (const t of ticks) {
          if (t.n > 10n) throw new ServiceError(Code.OUT_OF_RANGE, `tick ${t.n} is too large`);
        }
        return { start: 0n, count: 0, payloadSize: 0 };
      });
      const call = total(await serve({ Total: failing }));
      call.stream.write(tick(1n));
      call.stream.write(tick(11n));
      call.stream.end();
      const { error } = await call.result;
      expect([error?.code, error?.details]).toEqual([status.OUT_OF_RANGE, "tick 11 is too large"]);

      const firstOnly = totalHandler(async (_ctx, ticks) => {
        for await (const t of ticks) return { start: t.n, count: 1, payloadSize: 0 };
        return { start: -1n, count: 0, payloadSize: 0 };
      });
      const early = total(await serve({ Total: firstOnly }));
      early.stream.write(tick(7n));
      const res = await early.result;
      expect([res.status.code, res.value]).toEqual([status.OK, { start: 7n, count: 1, payloadSize: 0 }]);
      early.stream.end();
    });

    it("aborts the endpoint's context when the client cancels mid-stream", async () => {
      const { codes, options } = finalizers();
      const got = deferred<void>();
      const reason = deferred<unknown>();
      const client = await serve({
        Total: totalHandler(async (ctx, ticks) => {
          try {
            for await (const _ of ticks) got.resolve();
          } catch (err) {
            reason.resolve(err);
            throw err;
          }
          await aborted(ctx.signal);
          reason.resolve(ctx.signal.reason);
          throw ctx.signal.reason;
        }, options),
      });
      const call = total(client);
      call.stream.write(tick(1n));
      await got.promise;
      call.stream.cancel();
      expect((await call.result).status.code).toBe(status.CANCELLED);
      expect(((await reason.promise) as ServiceError).code).toBe(Code.CANCELLED);
      await expect.poll(() => codes).toEqual([Code.CANCELLED]);
    });

    it("ends with DEADLINE_EXCEEDED when the deadline passes while the endpoint waits for messages", async () => {
      const { codes, options } = finalizers();
      const call = total(await serve({ Total: totalHandler(totalEndpoint, options) }), {
        deadline: Date.now() + 150,
      });
      call.stream.write(tick(1n));
      expect((await call.result).status.code).toBe(status.DEADLINE_EXCEEDED);
      await expect.poll(() => codes).toEqual([Code.DEADLINE_EXCEEDED]);
    });

    it("refuses a message above maxReceiveMessageLength mid-stream with RESOURCE_EXHAUSTED", async () => {
      const call = total(await serve({}, { maxReceiveMessageLength: 1024 }));
      call.stream.write(tick(1n, 10));
      call.stream.write(tick(2n, 2000));
      call.stream.end();
      const { status: s } = await call.result;
      expect(s.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(s.details).toMatch(/^Received message larger than max \(\d+ vs 1024\)$/);
    });

    it.each([
      ["deflate", 1],
      ["gzip", 2],
    ])(
      "decompresses messages a client compresses with %s, and refuses one that inflates above the limit",
      async (_name, algorithm) => {
        const client = await serve(
          {},
          { maxReceiveMessageLength: 64 * 1024 },
          {
            "grpc.default_compression_algorithm": algorithm,
          },
        );
        const call = total(client);
        for (let i = 1; i <= 50; i++) call.stream.write(tick(BigInt(i), 20_000));
        call.stream.end();
        expect((await call.result).value).toEqual({ start: 1275n, count: 50, payloadSize: 0 });
        const big = total(client);
        big.stream.write(tick(1n));
        big.stream.write(tick(2n, 200 * 1024));
        big.stream.end();
        const { status: s } = await big.result;
        expect([s.code, s.details]).toEqual([
          status.RESOURCE_EXHAUSTED,
          "Received message that decompresses to a size larger than 65536",
        ]);
      },
    );
  });

  describe("bidi through bindService", () => {
    it("answers each message as it comes, before the client sends the next, then ends with OK", async () => {
      const stream = echo(await serve({}));
      const res = drain(stream, (t) => {
        if (t.n < 1005n) stream.write(tick(t.n - 1000n + 1n));
        else stream.end();
      });
      stream.write(tick(1n));
      const { items, status: s } = await res;
      expect(s.code).toBe(status.OK);
      expect(items.map((t) => t.n)).toEqual([1001n, 1002n, 1003n, 1004n, 1005n]);
    });

    it("carries 16 MiB each way in 64 KiB messages through flow control", async () => {
      const stream = echo(await serve({}));
      const res = drain(stream);
      for (let i = 0; i < 256; i++) stream.write(tick(BigInt(i), 64 * 1024));
      stream.end();
      const { items, status: s } = await res;
      expect(s.code).toBe(status.OK);
      expect(items.length).toBe(256);
      expect(items.every((t, i) => t.n === 1000n + BigInt(i) && t.payload.length === 64 * 1024)).toBe(true);
    });

    it("sends after's header before the first answer and its trailer with OK", async () => {
      const client = await serve({
        Echo: echoHandler(echoEndpoint, {
          after: [
            (ctx, header, trailer) => {
              header.set("x-stream", "yes");
              trailer.set("x-done", "1");
              return ctx;
            },
          ],
        }),
      });
      const stream = echo(client);
      const res = drain(stream);
      stream.write(tick(1n));
      stream.end();
      const { items, status: s, header } = await res;
      expect(items.map((t) => t.n)).toEqual([1001n]);
      expect(header?.get("x-stream")).toEqual(["yes"]);
      expect(s.metadata.get("x-done")).toEqual(["1"]);
    });

    it("sends an error thrown mid-stream as the status after the answers sent", async () => {
      const client = await serve({
        Echo: echoHandler(async (_ctx, ticks) =>
          (async function* () {
            for await (const t of ticks) {
              if (t.n === 3n) throw new ServiceError(Code.ABORTED, "stopped at 3");
              yield t;
            }
          })(),
        ),
      });
      const stream = echo(client);
      const res = drain(stream);
      for (const n of [1n, 2n, 3n, 4n]) stream.write(tick(n));
      stream.end();
      const { items, status: s } = await res;
      expect(items.map((t) => t.n)).toEqual([1n, 2n]);
      expect([s.code, s.details]).toEqual([status.ABORTED, "stopped at 3"]);
    });

    it("answers a malformed message with INVALID_ARGUMENT after the answers before it", async () => {
      const stream = echo(await serve({}));
      const res = drain(stream);
      for (const m of [tick(1n), TRUNCATED, tick(3n)]) stream.write(m);
      stream.end();
      const { items, status: s } = await res;
      expect(items.map((t) => t.n)).toEqual([1001n]);
      expect(s.code).toBe(status.INVALID_ARGUMENT);
    });

    it("aborts the endpoint's context when the client cancels mid-stream", async () => {
      const { codes, options } = finalizers();
      const reason = deferred<unknown>();
      const client = await serve({
        Echo: echoHandler(
          async (ctx, ticks) =>
            (async function* () {
              for await (const t of ticks) yield t;
              await aborted(ctx.signal);
              reason.resolve(ctx.signal.reason);
            })(),
          options,
        ),
      });
      const stream = echo(client);
      const res = drain(stream, () => stream.cancel());
      stream.write(tick(1n));
      expect((await res).status.code).toBe(status.CANCELLED);
      await expect.poll(() => codes).toEqual([Code.CANCELLED]);
    });

    it("ends with DEADLINE_EXCEEDED at the deadline, after the answers sent", async () => {
      const stream = echo(await serve({}), { deadline: Date.now() + 150 });
      const res = drain(stream);
      stream.write(tick(1n));
      const { items, status: s } = await res;
      expect(s.code).toBe(status.DEADLINE_EXCEEDED);
      expect(items.map((t) => t.n)).toEqual([1001n]);
    });
  });

  describe("grpc-js-style handlers", () => {
    it("client streaming: data events, end, then the callback with a value and trailer", async () => {
      const seen: Record<string, unknown> = {};
      const client = await serveRaw((call, callback) => {
        const parts: string[] = [];
        seen.tenant = call.metadata.get("x-tenant");
        seen.path = call.getPath();
        seen.deadline = call.getDeadline();
        call.on("data", (v: string) => parts.push(v));
        call.on("end", () => {
          const trailer = new Metadata();
          trailer.set("x-parts", String(parts.length));
          callback(null, parts.join("+"), trailer);
        });
      });
      const md = new Metadata();
      md.set("x-tenant", "acme");
      const { stream, result } = rawUp(client, { metadata: md });
      for (const p of ["a", "b", "c"]) stream.write(p);
      stream.end();
      const res = await result;
      expect([res.status.code, res.value]).toEqual([status.OK, "a+b+c"]);
      expect(res.status.metadata.get("x-parts")).toEqual(["3"]);
      expect(seen).toEqual({ tenant: ["acme"], path: "/raw.R/Up", deadline: Number.POSITIVE_INFINITY });
    });

    it("client streaming: an error in the callback, and a second answer, are sent as grpc-js sends them", async () => {
      const client = await serveRaw(async (call, callback) => {
        for await (const v of call) {
          if (v === "stop") {
            const md = new Metadata();
            md.set("x-why", "stop");
            callback({ code: status.FAILED_PRECONDITION, details: "told to stop", metadata: md });
            callback(null, "ignored");
            return;
          }
        }
        callback(null, "end");
      });
      const { stream, result } = rawUp(client);
      stream.write("go");
      stream.write("stop");
      const res = await result;
      expect([res.status.code, res.status.details]).toEqual([status.FAILED_PRECONDITION, "told to stop"]);
      expect(res.status.metadata.get("x-why")).toEqual(["stop"]);
      stream.end();
    });

    it("bidi: data events, write each answer, end(trailer) at the end with sendMetadata's header", async () => {
      const client = await serveRaw(
        () => undefined,
        (call) => {
          const header = new Metadata();
          header.set("x-h", "1");
          call.sendMetadata(header);
          call.on("data", (v: string) => call.write(`re:${v}`));
          call.on("end", () => {
            const trailer = new Metadata();
            trailer.set("x-t", "2");
            call.end(trailer);
          });
        },
      );
      const { stream, result } = rawChat(client);
      for (const p of ["a", "b"]) stream.write(p);
      stream.end();
      const res = await result;
      expect([res.status.code, res.items]).toEqual([status.OK, ["re:a", "re:b"]]);
      expect(res.header?.get("x-h")).toEqual(["1"]);
      expect(res.status.metadata.get("x-t")).toEqual(["2"]);
    });

    it("bidi: emit('error', status) ends the call with it after the answers sent", async () => {
      const client = await serveRaw(
        () => undefined,
        (call) => {
          call.on("data", (v: string) => {
            if (v === "bad") call.emit("error", { code: status.DATA_LOSS, details: "bad input" });
            else call.write(v);
          });
        },
      );
      const { stream, result } = rawChat(client);
      for (const p of ["x", "bad"]) stream.write(p);
      const res = await result;
      expect([res.status.code, res.status.details, res.items]).toEqual([
        status.DATA_LOSS,
        "bad input",
        ["x"],
      ]);
      stream.end();
    });

    it("answers UNKNOWN 'Unknown error' when a handler throws, INTERNAL when deserialize throws", async () => {
      const client = await serveRaw(
        () => {
          throw new Error("boom");
        },
        (call) => {
          call.on("data", (v: string) => call.write(v));
          call.on("end", () => call.end());
        },
      );
      const up = rawUp(client);
      up.stream.end();
      const thrown = await up.result;
      expect([thrown.status.code, thrown.status.details]).toEqual([status.UNKNOWN, "Unknown error"]);
      const chat = rawChat(client);
      chat.stream.write("ok");
      chat.stream.write(Buffer.from([0xff]));
      const bad = await chat.result;
      expect([bad.status.code, bad.status.details]).toEqual([status.INTERNAL, "Error deserializing request"]);
      chat.stream.end();
    });

    it("a client cancel marks the call cancelled, emits 'cancelled' and ends the handler's for await loop", async () => {
      const got = deferred<void>();
      const outcome = deferred<{ cancelled: boolean; event: boolean; loop: string }>();
      const client = await serveRaw(
        () => undefined,
        async (call) => {
          let event = false;
          call.on("cancelled", () => {
            event = true;
          });
          let loop = "ended";
          try {
            for await (const _ of call) got.resolve();
          } catch {
            loop = "threw";
          }
          // A grpc-js client half-closes before it resets: the loop may end before the cancel arrives.
          if (!call.cancelled) await new Promise((resolve) => call.once("cancelled", resolve));
          outcome.resolve({ cancelled: call.cancelled, event, loop });
          call.write("too late");
        },
      );
      const { stream, result } = rawChat(client);
      stream.write("one");
      await got.promise;
      stream.cancel();
      expect((await result).status.code).toBe(status.CANCELLED);
      const seen = await outcome.promise;
      expect([seen.cancelled, seen.event]).toEqual([true, true]);
      expect(["ended", "threw"]).toContain(seen.loop);
    });

    it("a handler that never answers ends at the deadline with DEADLINE_EXCEEDED and sees cancelled", async () => {
      const cancelled = deferred<boolean>();
      const client = await serveRaw(
        (call) => {
          call.on("cancelled", () => cancelled.resolve(call.cancelled));
        },
        () => undefined,
      );
      const { stream, result } = rawUp(client, { deadline: Date.now() + 150 });
      stream.write("a");
      stream.end();
      expect((await result).status.code).toBe(status.DEADLINE_EXCEEDED);
      expect(await cancelled.promise).toBe(true);
      await sleep(10);
    });
  });
});
