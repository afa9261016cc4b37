// createGrpcStreamClient: a server-streaming method as an endpoint returning an AsyncIterable, against
// a svckit server on a real connection.
import { Code, type Context, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import {
  bindService,
  createGrpcClient,
  createGrpcHandler,
  createGrpcStreamClient,
  type GrpcClientFinalizerInfo,
  type GrpcStreamClientOptions,
} from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import {
  aborted,
  type CountRequest,
  closeAll,
  deferred,
  grpcClient,
  protos,
  sleep,
  startServer,
  type Tick,
} from "./test-helpers.js";

afterEach(closeAll);

const counter = protos.service("counter.Counter");

/** Serves Count: `count` ticks from `start`, then `end` (an error to throw, if any). */
async function serveCount(
  end?: ServiceError,
  watch?: (ctx: Context) => void,
): Promise<ReturnType<typeof grpcClient>> {
  const endpoint: Endpoint<CountRequest, AsyncIterable<Tick>> = async (ctx, req) => {
    watch?.(ctx);
    return (async function* () {
      for (let i = 0; i < req.count; i++) {
        if (req.payloadSize > 0) await sleep(req.payloadSize);
        yield { n: req.start + BigInt(i), payload: new Uint8Array() };
      }
      if (end !== undefined) throw end;
    })();
  };
  const handler = createGrpcHandler(
    endpoint,
    (_ctx, msg: CountRequest) => msg,
    (_ctx, tick: Tick) => tick,
    {
      after: [
        (ctx, _header, trailer) => {
          trailer.set("x-served", "yes");
          return ctx;
        },
      ],
    },
  );
  const { address } = await startServer((server) => bindService(server, counter, { Count: handler }));
  return grpcClient(address);
}

/** The svckit stream client of Count: request = how many (payloadSize = ms between ticks), items = n. */
function countClient(
  client: ReturnType<typeof grpcClient>,
  options: GrpcStreamClientOptions = {},
): Endpoint<{ start?: bigint; count: number; gapMs?: number }, AsyncIterable<number>> {
  return createGrpcStreamClient(
    client,
    counter,
    "Count",
    (_ctx, req: { start?: bigint; count: number; gapMs?: number }) => ({
      start: req.start ?? 0n,
      count: req.count,
      payloadSize: req.gapMs ?? 0,
    }),
    (_ctx, tick: Tick) => Number(tick.n),
    options,
  );
}

async function drain(items: AsyncIterable<number>): Promise<{ items: number[]; error: unknown }> {
  const out: number[] = [];
  try {
    for await (const n of items) out.push(n);
    return { items: out, error: undefined };
  } catch (error) {
    return { items: out, error };
  }
}

function finalizer(): { infos: GrpcClientFinalizerInfo[]; options: GrpcStreamClientOptions } {
  const infos: GrpcClientFinalizerInfo[] = [];
  return { infos, options: { finalizer: (_ctx, info) => infos.push(info) } };
}

describe("createGrpcStreamClient", () => {
  it("yields every response decoded, in order, then runs after and the finalizer", async () => {
    const trailers: string[] = [];
    const { infos, options } = finalizer();
    const client = await serveCount();
    const count = countClient(client, {
      ...options,
      after: [
        (ctx, _header, trailer) => {
          trailers.push(String(trailer.get("x-served")[0]));
          return ctx;
        },
      ],
    });
    const res = await drain(await count(createContext({ timeout: 5_000 }), { start: 5n, count: 4 }));
    expect(res).toEqual({ items: [5, 6, 7, 8], error: undefined });
    expect(trailers).toEqual(["yes"]);
    expect(infos.map((i) => [i.method, i.code])).toEqual([["/counter.Counter/Count", Code.OK]]);
  });

  it("throws the server's error after the responses sent before it", async () => {
    const { infos, options } = finalizer();
    const client = await serveCount(new ServiceError(Code.ABORTED, "stopped"));
    const res = await drain(await countClient(client, options)(createContext(), { count: 2 }));
    expect(res.items).toEqual([0, 1]);
    expect(res.error).toBeInstanceOf(ServiceError);
    expect(res.error).toMatchObject({ code: Code.ABORTED, message: "stopped" });
    expect(infos.map((i) => i.code)).toEqual([Code.ABORTED]);
  });

  it("throws INTERNAL 'internal error' (its cause kept) when decode throws a plain error, and cancels the call", async () => {
    const { infos, options } = finalizer();
    const client = await serveCount();
    const broken = new Error("cannot read tick");
    const count = createGrpcStreamClient(
      client,
      counter,
      "Count",
      (_ctx, req: { count: number }) => ({ start: 0n, count: req.count, payloadSize: 0 }),
      (_ctx, tick: Tick): number => {
        if (tick.n === 1n) throw broken;
        return Number(tick.n);
      },
      options,
    );
    const res = await drain(await count(createContext({ timeout: 5_000 }), { count: 5 }));
    expect(res.items).toEqual([0]);
    expect(res.error).toBeInstanceOf(ServiceError);
    expect(res.error).toMatchObject({ code: Code.INTERNAL, message: "internal error", cause: broken });
    expect(infos.map((i) => i.code)).toEqual([Code.INTERNAL]);
  });

  it("throws UNIMPLEMENTED from the iterable for a method the server does not serve", async () => {
    const { address } = await startServer(() => undefined);
    const res = await drain(await countClient(grpcClient(address))(createContext(), { count: 2 }));
    expect(res.items).toEqual([]);
    expect(res.error).toMatchObject({ code: Code.UNIMPLEMENTED });
  });

  it("cancels the call when the caller stops reading; the server sees it", async () => {
    const { infos, options } = finalizer();
    const serverAborted = deferred<unknown>();
    const client = await serveCount(undefined, (ctx) => {
      void aborted(ctx.signal).then(() => serverAborted.resolve(ctx.signal.reason));
    });
    const items = await countClient(client, options)(createContext(), { count: 1_000, gapMs: 5 });
    const seen: number[] = [];
    for await (const n of items) {
      seen.push(n);
      if (n === 2) break;
    }
    expect(seen).toEqual([0, 1, 2]);
    expect(await serverAborted.promise).toMatchObject({ code: Code.CANCELLED });
    expect(infos.map((i) => i.code)).toEqual([Code.CANCELLED]);
  });

  it("ends with the context's reason when its deadline passes or it is cancelled mid-stream", async () => {
    const client = await serveCount();
    const count = countClient(client);
    const late = await drain(await count(createContext({ timeout: 100 }), { count: 1_000, gapMs: 10 }));
    expect(late.items.length).toBeGreaterThan(0);
    expect(late.error).toMatchObject({ code: Code.DEADLINE_EXCEEDED });

    const call = createContext().withCancel();
    const stream = await count(call.context, { count: 1_000, gapMs: 10 });
    setTimeout(() => call.cancel(), 60);
    const cancelled = await drain(stream);
    expect(cancelled.items.length).toBeGreaterThan(0);
    expect(cancelled.error).toMatchObject({ code: Code.CANCELLED });
  });

  it("sends the context's outgoing metadata and rejects at once for a context already over", async () => {
    const seen: string[] = [];
    const client = await serveCount(undefined, (ctx) => seen.push(String(ctx.metadata.get("x-tenant"))));
    const count = countClient(client);
    const ctx = createContext({ outgoingMetadata: { "x-tenant": "acme" } });
    expect((await drain(await count(ctx, { count: 1 }))).items).toEqual([0]);
    expect(seen).toEqual(["acme"]);

    const over = createContext().withCancel();
    over.cancel();
    await expect(count(over.context, { count: 1 })).rejects.toMatchObject({ code: Code.CANCELLED });
  });

  it("throws at setup for a method that is not server-streaming; createGrpcClient points here", () => {
    const enc = (_ctx: unknown, req: unknown) => req;
    expect(() => createGrpcStreamClient("127.0.0.1:1", protos.service("pb.Add"), "Sum", enc, enc)).toThrow(
      "createGrpcStreamClient: /pb.Add/Sum is not a server-streaming method (unary: use createGrpcClient)",
    );
    expect(() => createGrpcStreamClient("127.0.0.1:1", counter, "Total", enc, enc)).toThrow(
      /is not a server-streaming method/,
    );
    expect(() => createGrpcClient("127.0.0.1:1", counter, "Count", enc, enc)).toThrow(
      "createGrpcClient: /counter.Counter/Count is a streaming method; use createGrpcStreamClient, createGrpcClientStreamClient or createGrpcBidiClient",
    );
    expect(() => createGrpcStreamClient("127.0.0.1:1", counter, "Nope", enc, enc)).toThrow(
      "createGrpcStreamClient: counter.Counter has no method Nope",
    );
  });
});
