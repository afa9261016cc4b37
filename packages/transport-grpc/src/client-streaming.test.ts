// Client streaming and bidi: endpoints that take an AsyncIterable of requests, served to a plain
// grpc-js client over a real connection.
import {
  type Client,
  type ClientDuplexStream,
  type ClientWritableStream,
  type ServiceError as GrpcServiceError,
  Metadata,
  status,
} from "@grpc/grpc-js";
import { Code, type Context, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import {
  bindService,
  createGrpcBidiClient,
  createGrpcClientStreamClient,
  createGrpcHandler,
  type GrpcClientFinalizerInfo,
  type GrpcServerFinalizerInfo,
  type GrpcServerOptions,
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
  Tick,
} from "./test-helpers.js";

afterEach(closeAll);

const counter = protos.service("counter.Counter");
const CountReply = protos.messageType<CountRequest>("counter.CountRequest");

/** What the test client sends: a tick, or bytes that are not a Tick. */
type Outgoing = Tick | { bad: Uint8Array };
const serialize = (m: Outgoing): Buffer => ("bad" in m ? Buffer.from(m.bad) : Buffer.from(Tick.encode(m)));
const tick = (n: bigint): Tick => ({ n, payload: new Uint8Array() });
/** A length-delimited field 2 that claims 100 bytes and has 1: truncated. */
const TRUNCATED = { bad: new Uint8Array([0x12, 100, 1]) };

/** Sums the ticks it is given: `start` = Σ n, `count` = how many. */
const totalEndpoint: Endpoint<AsyncIterable<Tick>, CountRequest> = async (_ctx, ticks) => {
  let start = 0n;
  let count = 0;
  for await (const t of ticks) {
    start += t.n;
    count++;
  }
  return { start, count, payloadSize: 0 };
};

async function serveTotal(
  endpoint: Endpoint<AsyncIterable<Tick>, CountRequest> = totalEndpoint,
  options?: GrpcServerOptions,
  decode: (ctx: Context, msg: Tick) => Tick | Promise<Tick> = (_ctx, msg) => msg,
): Promise<Client> {
  const handler = createGrpcHandler(endpoint, decode, (_ctx, res: CountRequest) => res, options);
  const { address } = await startServer((server) => bindService(server, counter, { Total: handler }));
  return grpcClient(address);
}

interface TotalCall {
  readonly stream: ClientWritableStream<Outgoing>;
  readonly result: Promise<{ error: GrpcServiceError | null; value: CountRequest | undefined }>;
}

function total(client: Client, options: { metadata?: Metadata; deadline?: number } = {}): TotalCall {
  const done = deferred<{ error: GrpcServiceError | null; value: CountRequest | undefined }>();
  const stream = client.makeClientStreamRequest(
    "/counter.Counter/Total",
    serialize,
    (b: Buffer) => CountReply.decode(b),
    options.metadata ?? new Metadata(),
    options.deadline === undefined ? {} : { deadline: options.deadline },
    (error, value) => done.resolve({ error, value }),
  );
  return { stream, result: done.promise };
}

async function sendAll(call: TotalCall, items: readonly Outgoing[]): Promise<void> {
  for (const item of items) call.stream.write(item);
  call.stream.end();
}

function finalizers(): { infos: GrpcServerFinalizerInfo[]; options: GrpcServerOptions } {
  const infos: GrpcServerFinalizerInfo[] = [];
  return { infos, options: { finalizer: (_ctx, info) => infos.push(info) } };
}

describe("client streaming", () => {
  it("hands the endpoint every message in order and answers with its one response", async () => {
    const client = await serveTotal();
    const call = total(client);
    await sendAll(call, [tick(1n), tick(2n), tick(2n ** 60n), tick(2n ** 60n)]);
    const { error, value } = await call.result;
    expect(error).toBeNull();
    expect(value).toEqual({ start: 2n ** 61n + 3n, count: 4, payloadSize: 0 });
  });

  it("gives an empty stream to the endpoint when the client sends nothing", async () => {
    const client = await serveTotal();
    const call = total(client);
    await sendAll(call, []);
    expect((await call.result).value).toEqual({ start: 0n, count: 0, payloadSize: 0 });
  });

  it("runs each message through the decoder, sync or async, and before/after around the call", async () => {
    const seenMetadata: string[] = [];
    const client = await serveTotal(
      totalEndpoint,
      {
        before: [
          (ctx, md) => {
            seenMetadata.push(String(md.get("x-tenant")[0]));
            return ctx;
          },
        ],
        after: [
          (ctx, _header, trailer) => {
            trailer.set("x-total", "done");
            return ctx;
          },
        ],
      },
      async (_ctx, msg) => ({ ...msg, n: msg.n * 10n }),
    );
    const metadata = new Metadata();
    metadata.set("x-tenant", "acme");
    const call = total(client, { metadata });
    const trailer = deferred<Metadata>();
    call.stream.on("status", (s: { metadata: Metadata }) => trailer.resolve(s.metadata));
    await sendAll(call, [tick(1n), tick(2n)]);
    expect((await call.result).value).toEqual({ start: 30n, count: 2, payloadSize: 0 });
    expect(seenMetadata).toEqual(["acme"]);
    expect((await trailer.promise).get("x-total")).toEqual(["done"]);
  });

  it("answers a malformed message with INVALID_ARGUMENT and keeps serving", async () => {
    const { infos, options } = finalizers();
    const client = await serveTotal(totalEndpoint, options);
    const call = total(client);
    await sendAll(call, [tick(1n), TRUNCATED, tick(3n)]);
    const { error } = await call.result;
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(/^invalid counter\.Tick message: /);
    expect(infos.map((i) => i.code)).toEqual([Code.INVALID_ARGUMENT]);

    const again = total(client);
    await sendAll(again, [tick(5n)]);
    expect((await again.result).value?.start).toBe(5n);
  });

  it("answers with the endpoint's error when it fails, and OK when it stops reading early", async () => {
    const failing: Endpoint<AsyncIterable<Tick>, CountRequest> = async (_ctx, ticks) => {
      for await (const t of ticks) {
        if (t.n > 10n) throw new ServiceError(Code.OUT_OF_RANGE, `tick ${t.n} is too large`);
      }
      return { start: 0n, count: 0, payloadSize: 0 };
    };
    const client = await serveTotal(failing);
    const call = total(client);
    await sendAll(call, [tick(1n), tick(11n)]);
    const { error } = await call.result;
    expect(error?.code).toBe(status.OUT_OF_RANGE);
    expect(error?.details).toBe("tick 11 is too large");

    const firstOnly: Endpoint<AsyncIterable<Tick>, CountRequest> = async (_ctx, ticks) => {
      for await (const t of ticks) return { start: t.n, count: 1, payloadSize: 0 };
      return { start: -1n, count: 0, payloadSize: 0 };
    };
    const other = await serveTotal(firstOnly);
    const early = total(other);
    early.stream.write(tick(7n));
    expect((await early.result).value).toEqual({ start: 7n, count: 1, payloadSize: 0 });
    early.stream.end();
  });

  it("aborts the endpoint's context when the client cancels, and answers nothing more", async () => {
    const { infos, options } = finalizers();
    const read = deferred<number>();
    const endpoint: Endpoint<AsyncIterable<Tick>, CountRequest> = async (ctx, ticks) => {
      let count = 0;
      // A grpc-js client that cancels ends its side first: the stream may end before the reset.
      try {
        for await (const _ of ticks) count++;
      } finally {
        read.resolve(count);
      }
      await Promise.race([aborted(ctx.signal), sleep(5_000)]);
      ctx.throwIfAborted();
      return { start: 0n, count, payloadSize: 0 };
    };
    const client = await serveTotal(endpoint, options);
    const call = total(client);
    call.stream.write(tick(1n));
    await sleep(50);
    call.stream.cancel();
    expect(await read.promise).toBe(1);
    expect((await call.result).error?.code).toBe(status.CANCELLED);
    await expect.poll(() => infos.map((i) => i.code)).toEqual([Code.CANCELLED]);
  });

  it("ends a stream whose deadline passes while the endpoint waits for messages with DEADLINE_EXCEEDED", async () => {
    const { infos, options } = finalizers();
    const client = await serveTotal(totalEndpoint, options);
    const call = total(client, { deadline: Date.now() + 150 });
    call.stream.write(tick(1n));
    const { error } = await call.result;
    expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
    await expect.poll(() => infos.map((i) => i.code)).toEqual([Code.DEADLINE_EXCEEDED]);
    call.stream.end();
  });
});

/** Answers each tick with a tick of n + 1000, as it comes. */
const echoEndpoint: Endpoint<AsyncIterable<Tick>, AsyncIterable<Tick>> = async (_ctx, ticks) =>
  (async function* echo() {
    for await (const t of ticks) yield { n: t.n + 1000n, payload: t.payload };
  })();

/**
 * An Echo endpoint that answers each tick with n + 1000, then sends a heartbeat every 10 ms until the
 * call is cancelled (a grpc-js client that cancels half-closes first and resets a moment later), and
 * tells `onAbort` the reason its context's signal aborted with.
 */
function echoThenBeat(
  onAbort: (reason: unknown) => void,
): Endpoint<AsyncIterable<Tick>, AsyncIterable<Tick>> {
  return async (ctx, ticks) => {
    void aborted(ctx.signal).then(() => onAbort(ctx.signal.reason));
    return (async function* () {
      for await (const t of ticks) yield { n: t.n + 1000n, payload: t.payload };
      for (;;) {
        await sleep(10);
        yield tick(0n);
      }
    })();
  };
}

async function serveEcho(
  endpoint: Endpoint<AsyncIterable<Tick>, unknown> = echoEndpoint,
  options?: GrpcServerOptions,
): Promise<Client> {
  const handler = createGrpcHandler(
    endpoint as Endpoint<AsyncIterable<Tick>, AsyncIterable<Tick>>,
    (_ctx, msg: Tick) => msg,
    (_ctx, res: Tick) => res,
    options,
  );
  const { address } = await startServer((server) => bindService(server, counter, { Echo: handler }));
  return grpcClient(address);
}

interface EchoCall {
  readonly stream: ClientDuplexStream<Outgoing, Tick>;
  /** Resolves with the next message, or null when the stream ended or failed. */
  next(): Promise<Tick | null>;
  readonly status: Promise<{ code: number; details: string }>;
}

function echo(client: Client): EchoCall {
  const stream = client.makeBidiStreamRequest(
    "/counter.Counter/Echo",
    serialize,
    (b: Buffer) => Tick.decode(b),
    new Metadata(),
    {},
  );
  const queue: (Tick | null)[] = [];
  const waiting: ((t: Tick | null) => void)[] = [];
  const push = (t: Tick | null): void => {
    const w = waiting.shift();
    if (w !== undefined) w(t);
    else queue.push(t);
  };
  stream.on("data", (t: Tick) => push(t));
  stream.on("end", () => push(null));
  stream.on("error", () => push(null));
  const done = deferred<{ code: number; details: string }>();
  stream.on("status", (s: { code: number; details: string }) => done.resolve(s));
  return {
    stream,
    status: done.promise,
    next: () =>
      queue.length > 0
        ? Promise.resolve(queue.shift() as Tick | null)
        : new Promise<Tick | null>((resolve) => waiting.push(resolve)),
  };
}

describe("bidi streaming", () => {
  it("answers each message as it comes, before the client sends the next, then ends with OK", async () => {
    const client = await serveEcho();
    const call = echo(client);
    for (const n of [1n, 2n, 2n ** 62n]) {
      call.stream.write(tick(n));
      expect((await call.next())?.n).toBe(n + 1000n);
    }
    call.stream.end();
    expect(await call.next()).toBeNull();
    expect((await call.status).code).toBe(status.OK);
  });

  it("answers a malformed message with INVALID_ARGUMENT after the answers before it", async () => {
    const { infos, options } = finalizers();
    const client = await serveEcho(echoEndpoint, options);
    const call = echo(client);
    call.stream.write(tick(1n));
    expect((await call.next())?.n).toBe(1001n);
    call.stream.write(TRUNCATED);
    expect(await call.next()).toBeNull();
    const s = await call.status;
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toMatch(/^invalid counter\.Tick message: /);
    expect(infos.map((i) => i.code)).toEqual([Code.INVALID_ARGUMENT]);
  });

  it("answers INTERNAL when the endpoint returns something that is not an AsyncIterable", async () => {
    const client = await serveEcho(async () => ({ n: 1n }));
    const call = echo(client);
    call.stream.end();
    const s = await call.status;
    expect(s.code).toBe(status.INTERNAL);
    expect(s.details).toBe("a server-streaming endpoint must return an AsyncIterable");
  });

  it("aborts the endpoint's context when the client cancels, and tells the finalizer", async () => {
    const { infos, options } = finalizers();
    const signalled = deferred<unknown>();
    const client = await serveEcho(echoThenBeat(signalled.resolve), options);
    const call = echo(client);
    call.stream.write(tick(1n));
    expect((await call.next())?.n).toBe(1001n);
    call.stream.cancel();
    expect(await signalled.promise).toMatchObject({ code: Code.CANCELLED });
    await expect.poll(() => infos.map((i) => i.code)).toEqual([Code.CANCELLED]);

    const again = echo(client);
    again.stream.write(tick(2n));
    expect((await again.next())?.n).toBe(1002n);
    again.stream.end();
  });
});

/** Yields 1, 2, 3, ... forever (or `count` of them), then throws `end` if given; tells when it stopped. */
function numbers(
  count = Number.POSITIVE_INFINITY,
  end?: Error,
): {
  items: AsyncGenerator<number>;
  stopped: Promise<void>;
} {
  const stopped = deferred<void>();
  const items = (async function* gen() {
    try {
      for (let n = 1; n <= count; n++) {
        await sleep(2);
        yield n;
      }
      if (end !== undefined) throw end;
    } finally {
      stopped.resolve();
    }
  })();
  return { items, stopped: stopped.promise };
}

const toTick = (_ctx: Context, n: number): Tick => tick(BigInt(n));

/** The svckit client of Total: numbers in, the reply as it is. */
const totalClient = (client: Client): Endpoint<AsyncIterable<number> | Iterable<number>, CountRequest> =>
  createGrpcClientStreamClient(client, counter, "Total", toTick, (_ctx, r: CountRequest) => r);

describe("svckit clients of client-streaming and bidi methods", () => {
  it("client streaming: sends every request and resolves with the reply; after and finalizer run", async () => {
    const client = await serveTotal();
    const infos: GrpcClientFinalizerInfo[] = [];
    const headers: string[] = [];
    const total = createGrpcClientStreamClient(
      client,
      counter,
      "Total",
      toTick,
      (_ctx, reply: CountRequest) => reply,
      {
        finalizer: (_ctx, info) => infos.push(info),
        after: [
          (ctx, _header, trailer) => {
            headers.push(String(trailer.get("x-total")[0] ?? "none"));
            return ctx;
          },
        ],
      },
    );
    expect(await total(createContext({ timeout: 5_000 }), [1, 2, 2 ** 40])).toEqual({
      start: 2n ** 40n + 3n,
      count: 3,
      payloadSize: 0,
    });
    expect(await total(createContext(), numbers(4).items)).toEqual({ start: 10n, count: 4, payloadSize: 0 });
    expect(infos.map((i) => [i.method, i.code])).toEqual([
      ["/counter.Counter/Total", Code.OK],
      ["/counter.Counter/Total", Code.OK],
    ]);
    expect(headers).toEqual(["none", "none"]);
  });

  it("client streaming: a request iterable that throws cancels the call and rejects with its error", async () => {
    // (The server may still take the stream as complete: grpc-js half-closes before it resets.)
    const client = await serveTotal();
    const total = totalClient(client);
    const failing = numbers(3, new ServiceError(Code.INVALID_ARGUMENT, "bad input"));
    await expect(total(createContext(), failing.items)).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
      message: "bad input",
    });
  });

  it("client streaming: stops reading the requests once the server has answered or failed", async () => {
    const failing: Endpoint<AsyncIterable<Tick>, CountRequest> = async (_ctx, ticks) => {
      for await (const t of ticks) {
        if (t.n >= 3n) throw new ServiceError(Code.OUT_OF_RANGE, "enough");
      }
      return { start: 0n, count: 0, payloadSize: 0 };
    };
    const client = await serveTotal(failing);
    const total = totalClient(client);
    const endless = numbers();
    await expect(total(createContext(), endless.items)).rejects.toMatchObject({
      code: Code.OUT_OF_RANGE,
      message: "enough",
    });
    await endless.stopped;
  });

  it("client streaming: a cancelled context cancels the call and stops reading the requests", async () => {
    const client = await serveTotal();
    const total = totalClient(client);
    const call = createContext().withCancel();
    const endless = numbers();
    setTimeout(() => call.cancel(), 50);
    await expect(total(call.context, endless.items)).rejects.toMatchObject({ code: Code.CANCELLED });
    await endless.stopped;
  });

  it("bidi: sends the requests as they come and yields each answer; after and finalizer at the end", async () => {
    const client = await serveEcho();
    const infos: GrpcClientFinalizerInfo[] = [];
    const echo = createGrpcBidiClient(client, counter, "Echo", toTick, (_ctx, t: Tick) => Number(t.n), {
      finalizer: (_ctx, info) => infos.push(info),
    });
    const answers: number[] = [];
    for await (const n of await echo(createContext({ timeout: 5_000 }), numbers(5).items)) answers.push(n);
    expect(answers).toEqual([1001, 1002, 1003, 1004, 1005]);
    expect(infos.map((i) => i.code)).toEqual([Code.OK]);
  });

  it("bidi: stopping reading cancels the call and stops the requests; the server's context aborts", async () => {
    const serverAborted = deferred<unknown>();
    const client = await serveEcho(echoThenBeat(serverAborted.resolve));
    const clientInfos: GrpcClientFinalizerInfo[] = [];
    const echo = createGrpcBidiClient(client, counter, "Echo", toTick, (_ctx, t: Tick) => Number(t.n), {
      finalizer: (_ctx, info) => clientInfos.push(info),
    });
    const endless = numbers();
    for await (const n of await echo(createContext(), endless.items)) {
      if (n === 1003) break;
    }
    await endless.stopped;
    expect(clientInfos.map((i) => i.code)).toEqual([Code.CANCELLED]);
    expect(await serverAborted.promise).toMatchObject({ code: Code.CANCELLED });
  });

  it("bidi: a request iterable that throws cancels the call and the responses throw its error", async () => {
    const client = await serveEcho();
    const echo = createGrpcBidiClient(client, counter, "Echo", toTick, (_ctx, t: Tick) => Number(t.n));
    const answers: number[] = [];
    const failing = numbers(2, new ServiceError(Code.DATA_LOSS, "source broke"));
    await expect(
      (async () => {
        for await (const n of await echo(createContext(), failing.items)) answers.push(n);
      })(),
    ).rejects.toMatchObject({ code: Code.DATA_LOSS, message: "source broke" });
    expect(answers.length).toBeLessThanOrEqual(2);
  });

  it("client streaming: a call that fails while the request source waits ends the source's iteration at once", async () => {
    const failing: Endpoint<AsyncIterable<Tick>, CountRequest> = async () => {
      throw new ServiceError(Code.FAILED_PRECONDITION, "not now");
    };
    const client = await serveTotal(failing);
    const total = totalClient(client);
    // A source that waits for input that never comes, as a queue or `events.on` does: it stops only
    // when its `return()` is called.
    const returned = deferred<void>();
    const waiting: AsyncIterableIterator<number> = {
      [Symbol.asyncIterator]() {
        return this;
      },
      next: () => new Promise<IteratorResult<number>>(() => undefined),
      return: async () => {
        returned.resolve();
        return { done: true, value: undefined };
      },
    };
    await expect(total(createContext(), waiting)).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION });
    await returned.promise;
  });

  it("throws at setup for a method of another kind", () => {
    const enc = (_ctx: unknown, req: unknown) => req;
    expect(() => createGrpcClientStreamClient("127.0.0.1:1", counter, "Echo", enc, enc)).toThrow(
      "createGrpcClientStreamClient: /counter.Counter/Echo is not a client-streaming method",
    );
    expect(() => createGrpcBidiClient("127.0.0.1:1", counter, "Total", enc, enc)).toThrow(
      "createGrpcBidiClient: /counter.Counter/Total is not a bidi-streaming method",
    );
    expect(() => createGrpcBidiClient("127.0.0.1:1", counter, "Count", enc, enc)).toThrow(
      /is not a bidi-streaming method/,
    );
    expect(() => createGrpcClientStreamClient("127.0.0.1:1", counter, "Nope", enc, enc)).toThrow(
      "createGrpcClientStreamClient: counter.Counter has no method Nope",
    );
  });
});
