// Server streaming: an endpoint returning an AsyncIterable, served to a plain grpc-js client.
import { type Client, Metadata, status } from "@grpc/grpc-js";
import { Code, createContextKey, type Endpoint, ServiceError } from "@svckit/endpoint";
import {
  bindService,
  createGrpcHandler,
  decodeStatusDetails,
  type GrpcServerFinalizerInfo,
  type GrpcServerOptions,
  STATUS_DETAILS_KEY,
} from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import {
  aborted,
  type CountRequest,
  closeAll,
  collect,
  count,
  deferred,
  grpcClient,
  protos,
  sleep,
  startServer,
  Tick,
} from "./test-helpers.js";

afterEach(closeAll);

const counter = protos.service("counter.Counter");

/** Yields `count` ticks from `start`, each with `payloadSize` bytes of payload (byte i = n mod 256). */
async function* ticks(req: CountRequest): AsyncGenerator<Tick> {
  for (let i = 0; i < req.count; i++) {
    const n = req.start + BigInt(i);
    yield { n, payload: new Uint8Array(req.payloadSize).fill(Number(n % 256n)) };
  }
}

const countEndpoint: Endpoint<CountRequest, AsyncIterable<Tick>> = async (_ctx, req) => ticks(req);

/** Serves counter.Counter/Count with `endpoint`; returns a plain grpc-js client. */
async function serveCount(
  endpoint: Endpoint<CountRequest, AsyncIterable<Tick>> = countEndpoint,
  options?: GrpcServerOptions,
): Promise<Client> {
  const handler = createGrpcHandler(
    endpoint,
    (_ctx, msg: CountRequest) => msg,
    (_ctx, tick: Tick) => tick,
    options,
  );
  const { address } = await startServer((server) => bindService(server, counter, { Count: handler }));
  return grpcClient(address);
}

const numbers = (items: readonly Tick[]): bigint[] => items.map((t) => t.n);

describe("server streaming", () => {
  it("sends every item in order, then OK", async () => {
    const client = await serveCount();
    const res = await collect(count(client, { start: 5n, count: 100 }));
    expect(res.status.code).toBe(status.OK);
    expect(res.error).toBeUndefined();
    expect(numbers(res.items)).toEqual(Array.from({ length: 100 }, (_, i) => 5n + BigInt(i)));
  });

  it("sends int64 values above 2^53 exactly", async () => {
    const client = await serveCount();
    const res = await collect(count(client, { start: 2n ** 62n, count: 3 }));
    expect(numbers(res.items)).toEqual([2n ** 62n, 2n ** 62n + 1n, 2n ** 62n + 2n]);
  });

  it("ends an empty stream with OK and no items", async () => {
    const client = await serveCount();
    const res = await collect(count(client, { count: 0 }));
    expect(res.status.code).toBe(status.OK);
    expect(res.items).toEqual([]);
  });

  it("applies encode to each item, sync or async", async () => {
    const handler = createGrpcHandler(
      async (_ctx, req: CountRequest) => ticks(req),
      (_ctx, msg: CountRequest) => msg,
      async (_ctx, tick: Tick): Promise<Tick> => ({ n: tick.n * 10n, payload: Uint8Array.of(1) }),
    );
    const { address } = await startServer((server) => bindService(server, counter, { Count: handler }));
    const res = await collect(count(grpcClient(address), { start: 1n, count: 3 }));
    expect(numbers(res.items)).toEqual([10n, 20n, 30n]);
    expect(res.items.map((t) => [...t.payload])).toEqual([[1], [1], [1]]);
  });

  it("sends an error thrown mid-stream as the status, after the items already sent", async () => {
    const detail = { type: "counter.Stopped", value: Uint8Array.of(8, 3) };
    const errors: ServiceError[] = [];
    const client = await serveCount(
      async (_ctx, req) =>
        (async function* () {
          yield* ticks({ ...req, count: 3 });
          throw new ServiceError(Code.ABORTED, "stopped at 3", { details: [detail] });
        })(),
      { errorHandler: (_ctx, err) => errors.push(err) },
    );
    const res = await collect(count(client, { start: 0n, count: 10 }));
    expect(numbers(res.items)).toEqual([0n, 1n, 2n]);
    expect(res.status.code).toBe(status.ABORTED);
    expect(res.status.details).toBe("stopped at 3");
    const raw = res.status.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer;
    expect(decodeStatusDetails(raw)?.details).toEqual([detail]);
    expect(errors.map((e) => e.code)).toEqual([Code.ABORTED]);
  });

  it("hides a plain Error thrown mid-stream as INTERNAL 'internal error'", async () => {
    const client = await serveCount(async (_ctx, req) =>
      (async function* () {
        yield* ticks({ ...req, count: 2 });
        throw new Error("secret stack details");
      })(),
    );
    const res = await collect(count(client, { start: 7n, count: 10 }));
    expect(numbers(res.items)).toEqual([7n, 8n]);
    expect([res.status.code, res.status.details]).toEqual([status.INTERNAL, "internal error"]);
  });

  it("answers with the status when the endpoint fails before streaming", async () => {
    const client = await serveCount(async () => {
      throw new ServiceError(Code.PERMISSION_DENIED, "not yours");
    });
    const res = await collect(count(client, { count: 3 }));
    expect(res.items).toEqual([]);
    expect([res.status.code, res.status.details]).toEqual([status.PERMISSION_DENIED, "not yours"]);
  });

  it("answers INTERNAL when a streaming endpoint returns something that is not an AsyncIterable", async () => {
    const client = await serveCount((async () => [
      { n: 1n, payload: new Uint8Array(0) },
    ]) as unknown as Endpoint<CountRequest, AsyncIterable<Tick>>);
    const res = await collect(count(client, { count: 3 }));
    expect(res.items).toEqual([]);
    expect(res.status.code).toBe(status.INTERNAL);
  });

  it("answers INTERNAL after the items sent when an item does not fit the message", async () => {
    const client = await serveCount(async () =>
      (async function* () {
        yield { n: 1n, payload: new Uint8Array(0) };
        yield { n: "not a number", payload: new Uint8Array(0) } as unknown as Tick;
      })(),
    );
    const res = await collect(count(client, { count: 3 }));
    expect(numbers(res.items)).toEqual([1n]);
    expect([res.status.code, res.status.details]).toEqual([
      status.INTERNAL,
      "response message could not be encoded",
    ]);
  });

  it("answers malformed request bytes with INVALID_ARGUMENT", async () => {
    const client = await serveCount();
    const stream = client.makeServerStreamRequest(
      "/counter.Counter/Count",
      (b: Buffer) => b,
      (b: Buffer) => Tick.decode(b),
      Buffer.from([0xff, 0xff]),
      new Metadata(),
    );
    const res = await collect(stream);
    expect(res.items).toEqual([]);
    expect(res.status.code).toBe(status.INVALID_ARGUMENT);
    expect(res.status.details).toMatch(/^invalid counter\.CountRequest message: /);
    expect((await collect(count(client, { count: 2 }))).items).toHaveLength(2);
  });

  it("stops the server's iteration when the client cancels: the generator's finally runs", async () => {
    const cleanedUp = deferred<void>();
    const reason = deferred<unknown>();
    const finalized = deferred<GrpcServerFinalizerInfo>();
    let produced = 0;
    const client = await serveCount(
      async (ctx) =>
        (async function* () {
          ctx.signal.addEventListener("abort", () => reason.resolve(ctx.signal.reason), { once: true });
          try {
            for (let n = 0n; ; n++) {
              produced++;
              yield { n, payload: new Uint8Array(0) };
              await sleep(2);
            }
          } finally {
            cleanedUp.resolve();
          }
        })(),
      { finalizer: (_ctx, info) => finalized.resolve(info) },
    );
    const stream = count(client, {});
    const res = collect(stream, (tick) => {
      if (tick.n === 3n) stream.cancel();
    });
    await cleanedUp.promise;
    expect((await reason.promise) as ServiceError).toMatchObject({ code: Code.CANCELLED });
    expect((await finalized.promise).code).toBe(Code.CANCELLED);
    const { status: st, items } = await res;
    expect(st.code).toBe(status.CANCELLED);
    expect(numbers(items).slice(0, 4)).toEqual([0n, 1n, 2n, 3n]);
    const stoppedAt = produced;
    await sleep(50);
    expect(produced).toBe(stoppedAt);
  });

  it("stops a stream whose deadline passes: DEADLINE_EXCEEDED after some items, iteration ends", async () => {
    const cleanedUp = deferred<void>();
    const client = await serveCount(async (ctx) =>
      (async function* () {
        const stop = aborted(ctx.signal);
        try {
          for (let n = 0n; ; n++) {
            yield { n, payload: new Uint8Array(0) };
            await Promise.race([sleep(10), stop]);
          }
        } finally {
          cleanedUp.resolve();
        }
      })(),
    );
    const res = await collect(count(client, {}, { deadline: Date.now() + 150 }));
    expect(res.status.code).toBe(status.DEADLINE_EXCEEDED);
    expect(res.items.length).toBeGreaterThan(0);
    expect(numbers(res.items)).toEqual(Array.from({ length: res.items.length }, (_, i) => BigInt(i)));
    await cleanedUp.promise;
  });

  it("waits for a slow reader instead of buffering or losing items (backpressure)", async () => {
    const total = 600;
    const payloadSize = 16 * 1024;
    let produced = 0;
    const client = await serveCount(async (_ctx, req) =>
      (async function* () {
        for await (const tick of ticks(req)) {
          produced++;
          yield tick;
        }
      })(),
    );
    const stream = count(client, { start: 0n, count: total, payloadSize });
    const firstItem = deferred<void>();
    const res = collect(stream, (tick) => {
      if (tick.n === 0n) {
        stream.pause();
        firstItem.resolve();
      }
    });
    await firstItem.promise;
    // ~10 MB were asked for; while the reader is paused, flow control holds the producer back: wait until
    // it stops, then check that it stopped short of the end.
    let last = -1;
    await expect
      .poll(
        () => {
          const stopped = produced === last;
          last = produced;
          return stopped;
        },
        { interval: 100, timeout: 10_000 },
      )
      .toBe(true);
    expect(produced).toBeLessThan(total);
    stream.resume();
    const { items, status: st } = await res;
    expect(st.code).toBe(status.OK);
    expect(produced).toBe(total);
    expect(numbers(items)).toEqual(Array.from({ length: total }, (_, i) => BigInt(i)));
    for (const item of items) {
      expect(item.payload.length).toBe(payloadSize);
      expect(item.payload[payloadSize - 1]).toBe(Number(item.n % 256n));
    }
  });

  it("runs before, after and the finalizer; ctx.metadata holds the request metadata", async () => {
    const key = createContextKey("none", { description: "user" });
    const order: string[] = [];
    const client = await serveCount(
      async (ctx, req) => {
        order.push(`endpoint user=${ctx.value(key)} tenant=${ctx.metadata.get("x-tenant")}`);
        return ticks(req);
      },
      {
        before: [
          (ctx, md) => {
            order.push("before");
            return ctx.with(key, String(md.get("x-user")[0]));
          },
        ],
        after: [
          (ctx, header, trailer) => {
            order.push(`after user=${ctx.value(key)}`);
            header.set("x-header", "h");
            trailer.set("x-trailer", "t");
            return undefined;
          },
        ],
        finalizer: (ctx, info) => order.push(`finalizer user=${ctx.value(key)} code=${info.code}`),
      },
    );
    const md = new Metadata();
    md.set("x-user", "ada");
    md.set("x-tenant", "acme");
    const res = await collect(count(client, { count: 2 }, { metadata: md }));
    expect(res.items).toHaveLength(2);
    expect(res.status.metadata.get("x-trailer")).toEqual(["t"]);
    expect(res.header?.get("x-header")).toEqual(["h"]);
    await expect.poll(() => order.length).toBe(4);
    expect(order).toEqual([
      "before",
      "endpoint user=ada tenant=acme",
      "after user=ada",
      "finalizer user=ada code=0",
    ]);
  });
});
