// The engine's grpc-js Server surface with plain grpc-js-style handlers (no svckit transport): what a
// handler sees, registration, binding, TLS, keepalive and shutdown.
import { readFileSync } from "node:fs";
import { constants as h2 } from "node:http2";
import { createConnection, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  Client,
  credentials,
  Metadata,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type StatusObject,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { Code, MAX_TIMER_MS, ServiceError } from "@svckit/endpoint";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createGrpcServer, type GrpcH2Server, type GrpcH2ServerOptions } from "./index.js";
import { parseBindAddress } from "./server.js";
import {
  callSum,
  closeAll,
  closeRawSessions,
  collect,
  count,
  deferred,
  framed,
  grpcClient,
  listen,
  openRaw,
  rawBytes,
  rawCall,
  rawSession,
  SumReply,
  SumRequest,
  sleep,
  Tick,
  testdata,
  unary,
} from "./test-helpers.js";

afterEach(() => {
  closeAll();
  closeRawSessions();
});

type UnaryFn = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => void;
type StreamFn = (call: ServerWritableStream<Buffer, Buffer>) => void;

const identity = (b: Buffer): Buffer => b;
const sumBody = framed(SumRequest.encode({ a: 1n, b: 2n }));

/** A server with one raw unary method `/t.T/U` and one raw server-streaming method `/t.T/S`. */
async function serveRaw(
  unaryFn: UnaryFn,
  streamFn: StreamFn = (call) => call.end(),
  options?: GrpcH2ServerOptions,
): Promise<{ server: GrpcH2Server; port: number; client: Client }> {
  const server = createGrpcServer(options);
  server.register("/t.T/U", unaryFn, identity, identity, "unary");
  server.register("/t.T/S", streamFn, identity, identity, "serverStream");
  const { address, port } = await listen(server);
  return { server, port, client: grpcClient(address) };
}

/** Starts `/t.T/S`, decoding each message as a Tick. */
const callS = (client: Client) =>
  client.makeServerStreamRequest("/t.T/S", identity, (b: Buffer) => Tick.decode(b), Buffer.from("x"));

const callU = (client: Client, body = Buffer.from("hi"), metadata?: Metadata, deadline?: number) =>
  unary(client, "/t.T/U", rawBytes, rawBytes, body, { metadata, deadline });

describe("what a unary handler sees", () => {
  it("gets the request, metadata, path, host, peer and deadline", async () => {
    const seen: Record<string, unknown> = {};
    const { client, port } = await serveRaw((call, callback) => {
      seen.request = call.request.toString();
      seen.tenant = call.metadata.get("x-tenant");
      seen.protocol = ["content-type", "te", "grpc-timeout", "grpc-accept-encoding"].flatMap((k) =>
        call.metadata.get(k),
      );
      seen.path = call.getPath();
      seen.host = call.getHost();
      seen.peer = call.getPeer();
      seen.deadline = call.getDeadline();
      seen.auth = call.getAuthContext();
      call.getMetricsRecorder().recordCPUUtilizationMetric(0.5);
      callback(null, Buffer.from("ok"));
    });
    const md = new Metadata();
    md.set("x-tenant", "acme");
    const at = Date.now() + 5_000;
    const res = await callU(client, Buffer.from("hello"), md, at);
    expect(res.value?.toString()).toBe("ok");
    expect(seen.request).toBe("hello");
    expect(seen.tenant).toEqual(["acme"]);
    expect(seen.protocol).toEqual([]);
    expect(seen.path).toBe("/t.T/U");
    expect(seen.host).toBe(`127.0.0.1:${port}`);
    expect(seen.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(seen.deadline).toBeGreaterThan(at - 500);
    expect(seen.deadline).toBeLessThanOrEqual(at + 50);
    expect(seen.auth).toEqual({});
  });

  it("reports Infinity as the deadline without grpc-timeout", async () => {
    let deadline: unknown;
    const { client } = await serveRaw((call, callback) => {
      deadline = call.getDeadline();
      callback(null, Buffer.alloc(0));
    });
    await callU(client);
    expect(deadline).toBe(Number.POSITIVE_INFINITY);
  });

  it("sends metadata given to sendMetadata once, then the response", async () => {
    const { client } = await serveRaw((call, callback) => {
      const md = new Metadata();
      md.set("x-first", "1");
      call.sendMetadata(md);
      const again = new Metadata();
      again.set("x-second", "2");
      call.sendMetadata(again);
      callback(null, Buffer.from("done"));
    });
    const res = await callU(client);
    expect(res.header?.get("x-first")).toEqual(["1"]);
    expect(res.header?.get("x-second")).toEqual([]);
    expect(res.value?.toString()).toBe("done");
  });

  it("sends an error after sendMetadata in the trailers (headers already out)", async () => {
    const { port } = await serveRaw((call, callback) => {
      const md = new Metadata();
      md.set("x-h", "1");
      call.sendMetadata(md);
      const trailer = new Metadata();
      trailer.set("x-t", "2");
      callback({ code: status.NOT_FOUND, details: "no such thing" }, null, trailer);
    });
    const res = await rawCall(rawSession(port), "/t.T/U", { chunks: [framed(Buffer.from("x"))] });
    expect(res.headers["x-h"]).toBe("1");
    expect(res.headers["grpc-status"]).toBeUndefined();
    expect(res.trailers).toEqual(
      expect.objectContaining({ "grpc-status": "5", "grpc-message": "no such thing", "x-t": "2" }),
    );
  });

  it("maps handler errors as grpc-js does: code and details, message, or UNKNOWN", async () => {
    const errors: unknown[] = [
      { code: status.ABORTED, details: "aborted here" },
      Object.assign(new Error("with message"), { code: status.OUT_OF_RANGE }),
      new Error("plain"),
      { code: 2.5, details: "bad code" },
      {},
    ];
    let i = 0;
    const { client } = await serveRaw((_call, callback) => callback(errors[i++] as Error));
    const results = [];
    for (let n = 0; n < errors.length; n++) results.push((await callU(client)).status);
    expect(results.map((s) => [s.code, s.details])).toEqual([
      [status.ABORTED, "aborted here"],
      [status.OUT_OF_RANGE, "with message"],
      [status.UNKNOWN, "plain"],
      [status.UNKNOWN, "Unknown Error"],
      [status.UNKNOWN, "Unknown Error"],
    ]);
  });

  it("percent-encodes grpc-message on the wire", async () => {
    const { port } = await serveRaw((_call, callback) =>
      callback({ code: status.INTERNAL, details: "100% café\n" }),
    );
    const res = await rawCall(rawSession(port), "/t.T/U", { chunks: [framed(Buffer.from("x"))] });
    expect(res.grpcMessage).toBe("100%25 caf%C3%A9%0A");
  });

  it("answers UNKNOWN when the handler throws, and ignores a second callback", async () => {
    let calls = 0;
    const { client } = await serveRaw((_call, callback) => {
      calls++;
      if (calls === 1) throw new Error("boom");
      callback(null, Buffer.from("one"));
      callback(null, Buffer.from("two"));
      callback({ code: status.INTERNAL, details: "late" });
    });
    const thrown = await callU(client);
    expect([thrown.status.code, thrown.status.details]).toEqual([status.UNKNOWN, "Unknown error"]);
    const once = await callU(client);
    expect([once.status.code, once.value?.toString()]).toEqual([status.OK, "one"]);
  });

  it("answers INTERNAL when serialize or deserialize throws", async () => {
    const server = createGrpcServer();
    const fail = (): never => {
      throw new Error("codec");
    };
    server.register(
      "/t.T/In",
      (_c: unknown, cb: sendUnaryData<Buffer>) => cb(null, Buffer.alloc(0)),
      identity,
      fail,
      "unary",
    );
    server.register(
      "/t.T/Out",
      (_c: unknown, cb: sendUnaryData<Buffer>) => cb(null, Buffer.alloc(0)),
      fail,
      identity,
      "unary",
    );
    const client = grpcClient((await listen(server)).address);
    const inFail = await unary(client, "/t.T/In", rawBytes, rawBytes, Buffer.from("x"));
    expect([inFail.status.code, inFail.status.details]).toEqual([
      status.INTERNAL,
      "Error deserializing request",
    ]);
    const outFail = await unary(client, "/t.T/Out", rawBytes, rawBytes, Buffer.from("x"));
    expect([outFail.status.code, outFail.status.details]).toEqual([
      status.INTERNAL,
      "Error serializing response",
    ]);
  });

  it("times a call out at its deadline: DEADLINE_EXCEEDED, cancelled set and 'cancelled' emitted", async () => {
    const cancelled = deferred<boolean>();
    const { client } = await serveRaw((call) => {
      call.on("cancelled", () => cancelled.resolve(call.cancelled));
    });
    const res = await callU(client, Buffer.from("x"), undefined, Date.now() + 100);
    expect(res.status.code).toBe(status.DEADLINE_EXCEEDED);
    expect(await cancelled.promise).toBe(true);
  });

  it("sends the server's own DEADLINE_EXCEEDED status to a client that does not enforce the deadline", async () => {
    const { port } = await serveRaw(() => undefined);
    const res = await rawCall(rawSession(port), "/t.T/U", {
      headers: { "grpc-timeout": "50m" },
      chunks: [framed(Buffer.from("x"))],
    });
    expect([res.grpcStatus, res.grpcMessage]).toEqual([4, "Deadline exceeded"]);
  });

  it("waits for a deadline past setTimeout's reach (24.8 days) in steps instead of firing at once", async () => {
    const realTimeout = globalThis.setTimeout;
    const realSleep = (ms: number) => new Promise<void>((resolve) => realTimeout(resolve, ms));
    const started = deferred<void>();
    const { port } = await serveRaw(() => started.resolve());
    const session = rawSession(port);
    await new Promise<void>((resolve) => session.once("connect", () => resolve()));
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    try {
      let closed = false;
      // 700 hours: 29.2 days, past 2^31 - 1 ms.
      const res = rawCall(session, "/t.T/U", {
        headers: { "grpc-timeout": "700H" },
        chunks: [framed(Buffer.from("x"))],
      });
      void res.then(() => {
        closed = true;
      });
      await started.promise;
      await realSleep(50);
      expect(closed).toBe(false);
      vi.advanceTimersByTime(MAX_TIMER_MS);
      await realSleep(100);
      expect(closed).toBe(false);
      vi.advanceTimersByTime(700 * 3_600_000 - MAX_TIMER_MS);
      const answer = await res;
      expect([answer.grpcStatus, answer.grpcMessage]).toEqual([4, "Deadline exceeded"]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("reports a client cancel through call.cancelled even to a handler that never listened", async () => {
    const seen = deferred<boolean>();
    const started = deferred<void>();
    const { port } = await serveRaw((call) => {
      started.resolve();
      setTimeout(() => seen.resolve(call.cancelled), 80);
    });
    const session = rawSession(port);
    const req = openRaw(session, "/t.T/U");
    req.end(framed(Buffer.from("x")));
    await started.promise;
    req.close(h2.NGHTTP2_CANCEL);
    expect(await seen.promise).toBe(true);
  });

  it("emits 'cancelled' to a listener added after the client went away even when `cancelled` was read first", async () => {
    const started = deferred<ServerUnaryCall<Buffer, Buffer>>();
    const { port } = await serveRaw((call) => started.resolve(call));
    const req = openRaw(rawSession(port), "/t.T/U");
    req.end(framed(Buffer.from("x")));
    const call = await started.promise;
    req.close(h2.NGHTTP2_CANCEL);
    await sleep(50);
    expect(call.cancelled).toBe(true);
    let told = 0;
    call.on("cancelled", () => told++);
    await sleep(20);
    expect(told).toBe(1);
  });

  it("emits 'cancelled' to a listener added after the client already went away", async () => {
    const started = deferred<ServerUnaryCall<Buffer, Buffer>>();
    const { port } = await serveRaw((call) => started.resolve(call));
    const session = rawSession(port);
    const req = openRaw(session, "/t.T/U");
    req.end(framed(Buffer.from("x")));
    const call = await started.promise;
    req.close(h2.NGHTTP2_CANCEL);
    await sleep(50);
    const got = await new Promise<string>((resolve) => call.prependListener("cancelled", resolve));
    expect(got).toBe("cancelled");
  });
});

describe("server streaming handlers", () => {
  it("holds writes back under HTTP/2 flow control and drains once the client reads", async () => {
    const blocked = deferred<number>();
    const drained = deferred<void>();
    const chunk = Buffer.alloc(64 * 1024, 7);
    const { port } = await serveRaw(
      () => undefined,
      (call) => {
        let n = 0;
        const pump = (): void => {
          while (n < 64) {
            n++;
            if (!call.write(chunk)) {
              blocked.resolve(n);
              call.once("drain", () => {
                drained.resolve();
                pump();
              });
              return;
            }
          }
          call.end();
        };
        pump();
      },
    );
    const session = rawSession(port);
    const req = openRaw(session, "/t.T/S");
    req.pause();
    req.end(framed(Buffer.from("x")));
    const at = await blocked.promise;
    expect(at).toBeLessThan(64);
    let total = 0;
    const trailers = new Promise<Record<string, unknown>>((resolve) => req.on("trailers", resolve));
    req.on("data", (d: Buffer) => {
      total += d.length;
    });
    req.resume();
    await drained.promise;
    expect((await trailers)["grpc-status"]).toBe("0");
    expect(total).toBe(64 * (5 + chunk.length));
  });

  it("ends with the status emitted as 'error', with its trailers", async () => {
    const { client } = await serveRaw(
      () => undefined,
      (call) => {
        call.write(Buffer.from(Tick.encode({ n: 1n, payload: new Uint8Array(0) })));
        const metadata = new Metadata();
        metadata.set("x-why", "because");
        call.emit("error", { code: status.FAILED_PRECONDITION, details: "stop", metadata });
      },
    );
    const res = await collect(callS(client));
    expect(res.items.map((t) => t.n)).toEqual([1n]);
    expect([res.status.code, res.status.details]).toEqual([status.FAILED_PRECONDITION, "stop"]);
    expect(res.status.metadata.get("x-why")).toEqual(["because"]);
  });

  it("sends end(trailer) as the OK trailers", async () => {
    const { client } = await serveRaw(
      () => undefined,
      (call) => {
        const trailer = new Metadata();
        trailer.set("x-done", "yes");
        call.end(trailer);
      },
    );
    const res = await collect(callS(client));
    expect(res.status.code).toBe(status.OK);
    expect(res.status.metadata.get("x-done")).toEqual(["yes"]);
  });

  it("tells the handler of a client cancel and stops writing", async () => {
    const cancelled = deferred<boolean>();
    const { client } = await serveRaw(
      () => undefined,
      (call) => {
        call.on("cancelled", () => cancelled.resolve(call.cancelled));
        call.write(Buffer.from(Tick.encode({ n: 1n, payload: new Uint8Array(0) })));
      },
    );
    const stream = callS(client);
    const res = collect(stream, () => stream.cancel());
    expect((await res).status.code).toBe(status.CANCELLED);
    expect(await cancelled.promise).toBe(true);
  });

  it("refuses a message above maxSendMessageLength with RESOURCE_EXHAUSTED", async () => {
    const { client } = await serveRaw(
      () => undefined,
      (call) => {
        call.write(Buffer.alloc(10));
        call.write(Buffer.alloc(100));
        call.write(Buffer.alloc(10));
        call.end();
      },
      { maxSendMessageLength: 50 },
    );
    const stream = client.makeServerStreamRequest("/t.T/S", identity, identity, Buffer.from("x"));
    const items: Buffer[] = [];
    stream.on("data", (b: Buffer) => items.push(b));
    const st = await new Promise<{ code: number; details: string }>((resolve) => {
      stream.on("error", () => undefined);
      stream.on("status", resolve);
    });
    expect(items.map((b) => b.length)).toEqual([10]);
    expect([st.code, st.details]).toEqual([
      status.RESOURCE_EXHAUSTED,
      "Sent message larger than max (100 vs. 50)",
    ]);
  });

  it("tells a server stream it ended itself (a message above maxSendMessageLength) as cancelled, as grpc-js does", async () => {
    const cancelled = deferred<boolean>();
    let writes = 0;
    const { client } = await serveRaw(
      () => undefined,
      (call) => {
        call.on("cancelled", () => cancelled.resolve(call.cancelled));
        // An endless producer that only stops when told.
        const produce = (): void => {
          if (call.cancelled) return;
          writes++;
          call.write(Buffer.alloc(writes === 2 ? 100 : 10), () => setTimeout(produce, 1));
        };
        produce();
      },
      { maxSendMessageLength: 50 },
    );
    const stream = client.makeServerStreamRequest("/t.T/S", identity, identity, Buffer.from("x"));
    stream.on("data", () => undefined);
    const st = await new Promise<{ code: number }>((resolve) => {
      stream.on("error", () => undefined);
      stream.on("status", resolve);
    });
    expect(st.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await cancelled.promise).toBe(true);
    const after = writes;
    await sleep(50);
    expect(writes).toBe(after);
  });
});

describe("response compression", () => {
  it("gzips responses for a client that accepts gzip, above the threshold only", async () => {
    const { port, client } = await serveRaw(
      (call, callback) => callback(null, Buffer.alloc(Number(call.request.toString()), 1)),
      undefined,
      { compression: "gzip", compressionThreshold: 100 },
    );
    const big = await rawCall(rawSession(port), "/t.T/U", {
      headers: { "grpc-accept-encoding": "identity, gzip" },
      chunks: [framed(Buffer.from("5000"))],
    });
    expect(big.headers["grpc-encoding"]).toBe("gzip");
    expect(big.data[0]).toBe(1);
    expect(gunzipSync(big.data.subarray(5))).toEqual(Buffer.alloc(5000, 1));
    const small = await rawCall(rawSession(port), "/t.T/U", {
      headers: { "grpc-accept-encoding": "gzip" },
      chunks: [framed(Buffer.from("10"))],
    });
    expect(small.data[0]).toBe(0);
    const plain = await rawCall(rawSession(port), "/t.T/U", { chunks: [framed(Buffer.from("5000"))] });
    expect(plain.headers["grpc-encoding"]).toBeUndefined();
    expect(plain.data[0]).toBe(0);
    // grpc-js's client accepts gzip and deflate and decompresses.
    const res = await callU(client, Buffer.from("200000"));
    expect(res.value).toEqual(Buffer.alloc(200_000, 1));
  });

  it("deflates server-stream messages in order", async () => {
    const { client } = await serveRaw(
      () => undefined,
      (call) => {
        for (let n = 0n; n < 20n; n++)
          call.write(Buffer.from(Tick.encode({ n, payload: new Uint8Array(2000) })));
        call.end();
      },
      { compression: "deflate", compressionThreshold: 0 },
    );
    const res = await collect(callS(client));
    expect(res.status.code).toBe(status.OK);
    expect(res.items.map((t) => t.n)).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i)));
  });
});

describe("registration", () => {
  const definition = {
    Sum: {
      path: "/pb.Add/Sum",
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: "sum",
    },
    Concat: {
      path: "/pb.Add/Concat",
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  };

  it("finds implementations by key or originalName; missing ones answer UNIMPLEMENTED", async () => {
    const server = createGrpcServer();
    server.addService(definition, {
      sum: (_call: unknown, callback: sendUnaryData<Buffer>) =>
        callback(null, Buffer.from(SumReply.encode({ v: 3n, err: "" }))),
    });
    const client = grpcClient((await listen(server)).address);
    expect((await callSum(client, { a: 1n, b: 2n })).value?.v).toBe(3n);
    const concat = await unary(client, "/pb.Add/Concat", rawBytes, rawBytes, Buffer.alloc(0));
    expect([concat.status.code, concat.status.details]).toEqual([
      status.UNIMPLEMENTED,
      "The server does not implement the method /pb.Add/Concat",
    ]);
  });

  it("answers UNIMPLEMENTED on a server-streaming method without implementation", async () => {
    const server = createGrpcServer();
    server.addService(
      { Count: { ...definition.Sum, path: "/counter.Counter/Count", responseStream: true } },
      {},
    );
    const res = await collect(count(grpcClient((await listen(server)).address), {}));
    expect(res.status.code).toBe(status.UNIMPLEMENTED);
  });

  it("refuses bad services and method types: not objects, empty, duplicate paths, unknown types", () => {
    const server = createGrpcServer();
    expect(() => server.addService(null as never, {})).toThrow(
      "addService() requires two objects as arguments",
    );
    expect(() => server.addService({}, {})).toThrow("Cannot add an empty service to a server");
    server.addService(definition, {});
    expect(() => server.addService(definition, {})).toThrow(
      "Method handler for /pb.Add/Sum already provided.",
    );
    const total = { Total: { ...definition.Sum, path: "/counter.Counter/Total", requestStream: true } };
    expect(() => server.addService(total, {})).not.toThrow();
    const bidi = { Chat: { ...total.Total, path: "/c.C/Chat", responseStream: true } };
    expect(() => server.addService(bidi, {})).not.toThrow();
    expect(server.register("/c.C/Other", () => undefined, identity, identity, "bidi")).toBe(true);
    expect(() => server.register("/c.C/X", () => undefined, identity, identity, "duplex")).toThrow(
      'register: /c.C/X has an unknown method type "duplex" (expected unary, clientStream, serverStream or bidi)',
    );
  });

  it("register, unregister and removeService change what is served", async () => {
    const server = createGrpcServer();
    const answer = (_c: unknown, cb: sendUnaryData<Buffer>) => cb(null, Buffer.from("r"));
    expect(server.register("/t.T/R", answer, identity, identity, "unary")).toBe(true);
    expect(server.register("/t.T/R", answer, identity, identity, "unary")).toBe(false);
    server.addService(definition, { Concat: answer });
    const client = grpcClient((await listen(server)).address);
    expect((await unary(client, "/t.T/R", rawBytes, rawBytes, Buffer.alloc(0))).value?.toString()).toBe("r");
    expect(server.unregister("/t.T/R")).toBe(true);
    expect(server.unregister("/t.T/R")).toBe(false);
    expect((await unary(client, "/t.T/R", rawBytes, rawBytes, Buffer.alloc(0))).status.code).toBe(
      status.UNIMPLEMENTED,
    );
    server.removeService(definition);
    expect((await unary(client, "/pb.Add/Concat", rawBytes, rawBytes, Buffer.alloc(0))).status.code).toBe(
      status.UNIMPLEMENTED,
    );
    expect(() => server.removeService(null as never)).toThrow("removeService() requires object as argument");
    server.start(); // a no-op kept for grpc-js < 1.10 code
  });
});

describe("createGrpcServer options", () => {
  it.each([
    [{ maxReceiveMessageLength: -1 }, "maxReceiveMessageLength must be a number >= 0 (or Infinity), got -1"],
    [
      { maxSendMessageLength: Number.NaN },
      "maxSendMessageLength must be a number >= 0 (or Infinity), got NaN",
    ],
    [{ compressionThreshold: -5 }, "compressionThreshold must be a number >= 0 (or Infinity), got -5"],
    [{ compression: "br" as never }, 'compression must be "identity", "gzip" or "deflate", got "br"'],
    [{ keepaliveTimeMs: 0 }, "keepaliveTimeMs must be a number of ms > 0 (or Infinity), got 0"],
    [{ keepaliveTimeoutMs: -1 }, "keepaliveTimeoutMs must be a number of ms > 0 (or Infinity), got -1"],
    [{ maxConcurrentStreams: 1.5 }, "maxConcurrentStreams must be an integer from 0 to 2^32-1, got 1.5"],
  ] as [GrpcH2ServerOptions, string][])("refuses %j", (options, message) => {
    let error: unknown;
    try {
      createGrpcServer(options);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect((error as ServiceError).message).toBe(`createGrpcServer: ${message}`);
  });

  it("announces maxConcurrentStreams in its HTTP/2 settings", async () => {
    const { port } = await serveRaw((_c, cb) => cb(null, Buffer.alloc(0)), undefined, {
      maxConcurrentStreams: 7,
    });
    const session = rawSession(port);
    const settings = await new Promise<{ maxConcurrentStreams?: number }>((resolve) =>
      session.once("remoteSettings", resolve),
    );
    expect(settings.maxConcurrentStreams).toBe(7);
  });
});

describe("bindAsync", () => {
  it.each([
    ["127.0.0.1:50051", { host: "127.0.0.1", port: 50051 }],
    [":0", { host: "0.0.0.0", port: 0 }],
    ["dns:localhost:8080", { host: "localhost", port: 8080 }],
    ["dns:///localhost:8080", { host: "localhost", port: 8080 }],
    ["[::1]:9000", { host: "::1", port: 9000 }],
    ["unix:/tmp/x.sock", { path: "/tmp/x.sock" }],
    ["unix:///tmp/x.sock", { path: "/tmp/x.sock" }],
    ["localhost", undefined],
    ["::1:80", undefined],
    ["[::1]80", undefined],
    ["host:99999", undefined],
    ["host:port", undefined],
    ["unix:", undefined],
  ])("reads %j as %j", (address, expected) => {
    expect(parseBindAddress(address)).toEqual(expected);
  });

  function bind(server: GrpcH2Server, address: string, creds = ServerCredentials.createInsecure()) {
    return new Promise<{ error: Error | null; port: number }>((resolve) =>
      server.bindAsync(address, creds, (error, port) => resolve({ error, port })),
    );
  }

  it("calls back with ServiceError UNAVAILABLE for an address it cannot use", async () => {
    const server = createGrpcServer();
    const bad = await bind(server, "nowhere");
    expect(bad.error).toBeInstanceOf(ServiceError);
    expect((bad.error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect(bad.error?.message).toBe(
      "bindAsync nowhere: not an address (expected host:port, [ipv6]:port, dns:host:port or unix:/path)",
    );
    const taken = createNetServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const busy = await bind(server, `127.0.0.1:${port}`);
      expect(busy.error?.message).toMatch(
        new RegExp(`^bindAsync 127\\.0\\.0\\.1:${port}: listen EADDRINUSE`),
      );
    } finally {
      taken.close();
    }
    server.forceShutdown();
    const after = await bind(server, "127.0.0.1:0");
    expect(after.error?.message).toBe("bindAsync 127.0.0.1:0: the server is shut down");
  });

  it("refuses secure grpc-js credentials without the tls option", async () => {
    const server = createGrpcServer();
    const creds = ServerCredentials.createSsl(null, [
      { private_key: readFileSync(testdata("server.key")), cert_chain: readFileSync(testdata("server.crt")) },
    ]);
    const res = await bind(server, "127.0.0.1:0", creds);
    expect(res.error?.message).toBe(
      "bindAsync 127.0.0.1:0: secure grpc-js credentials cannot be read; pass the key and certificate as createGrpcServer({ tls })",
    );
  });

  it("serves on a unix socket and on several addresses at once", async () => {
    const server = createGrpcServer();
    server.register(
      "/t.T/U",
      (_c: unknown, cb: sendUnaryData<Buffer>) => cb(null, Buffer.from("u")),
      identity,
      identity,
      "unary",
    );
    const path = join(tmpdir(), `grpc-h2-${process.pid}-${Date.now()}.sock`);
    const unix = await bind(server, `unix:${path}`);
    expect(unix.error).toBeNull();
    const tcp = await bind(server, "127.0.0.1:0");
    expect(tcp.port).toBeGreaterThan(0);
    for (const address of [`unix:${path}`, `127.0.0.1:${tcp.port}`]) {
      const res = await unary(grpcClient(address), "/t.T/U", rawBytes, rawBytes, Buffer.alloc(0));
      expect(res.value?.toString()).toBe("u");
    }
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  it("serves TLS with the tls option, and reports a verified client certificate", async () => {
    const cert = readFileSync(testdata("server.crt"));
    const key = readFileSync(testdata("server.key"));
    const server = createGrpcServer({ tls: { key, cert, ca: cert, requestCert: true } });
    const auth: unknown[] = [];
    server.register(
      "/t.T/U",
      (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
        const context = call.getAuthContext();
        auth.push([context.transportSecurityType, context.sslPeerCertificate?.subject.CN]);
        cb(null, Buffer.from("secure"));
      },
      identity,
      identity,
      "unary",
    );
    const { port } = await bind(server, "127.0.0.1:0");
    // The test certificate is its own CA; the client presents it too.
    const client = new Client(`localhost:${port}`, credentials.createSsl(cert, key, cert));
    try {
      const res = await unary(client, "/t.T/U", rawBytes, rawBytes, Buffer.alloc(0));
      expect(res.value?.toString()).toBe("secure");
      expect(auth).toEqual([["ssl", "localhost"]]);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});

describe("connections", () => {
  it("pings each connection every keepaliveTimeMs", async () => {
    const { port } = await serveRaw((_c, cb) => cb(null, Buffer.alloc(0)), undefined, {
      keepaliveTimeMs: 30,
      keepaliveTimeoutMs: 1_000,
    });
    const session = rawSession(port);
    let pings = 0;
    session.on("ping", () => {
      pings++;
    });
    await rawCall(session, "/t.T/U", { chunks: [framed(Buffer.from("x"))] });
    await sleep(150);
    expect(pings).toBeGreaterThanOrEqual(2);
    expect(session.closed).toBe(false);
  });

  it("waits a keepaliveTimeMs past setTimeout's reach (24.8 days) in full instead of pinging at 24.8 days", async () => {
    const DAY = 86_400_000;
    const { port } = await serveRaw((_c, cb) => cb(null, Buffer.alloc(0)), undefined, {
      keepaliveTimeMs: 30 * DAY,
    });
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const session = rawSession(port);
      let pings = 0;
      session.on("ping", () => {
        pings++;
      });
      // A call answered means the server's session, and its keepalive timer, exist; a later call's answer
      // arrives after any PING the server sent before it.
      const roundTrip = async (): Promise<void> => {
        await rawCall(session, "/t.T/U", { chunks: [framed(Buffer.from("x"))] });
      };
      await roundTrip();
      vi.advanceTimersByTime(MAX_TIMER_MS + 1_000);
      await roundTrip();
      expect(pings).toBe(0);
      vi.advanceTimersByTime(30 * DAY - MAX_TIMER_MS - 1_000);
      await roundTrip();
      expect(pings).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("closes a connection whose keepalive ping is not answered within keepaliveTimeoutMs", async () => {
    const { port } = await serveRaw((_c, cb) => cb(null, Buffer.alloc(0)), undefined, {
      keepaliveTimeMs: 20,
      keepaliveTimeoutMs: 40,
    });
    // A client that speaks just enough HTTP/2 to open the connection and never answers a PING.
    const socket = createConnection(port, "127.0.0.1");
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    socket.write(
      Buffer.concat([
        Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
      ]),
    );
    const started = Date.now();
    await closed;
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("tryShutdown with calls in flight sends GOAWAY and closes once they finish", async () => {
    const release = deferred<void>();
    const started = deferred<void>();
    const { server, port } = await serveRaw((_call, callback) => {
      started.resolve();
      release.promise.then(() => callback(null, Buffer.from("late")));
    });
    const session = rawSession(port);
    const goaway = new Promise<number>((resolve) => session.once("goaway", (code) => resolve(code)));
    const call = rawCall(session, "/t.T/U", { chunks: [framed(Buffer.from("x"))] });
    await started.promise;
    let done = false;
    server.tryShutdown(() => {
      done = true;
    });
    expect(await goaway).toBe(h2.NGHTTP2_NO_ERROR);
    await sleep(30);
    expect(done).toBe(false);
    release.resolve();
    const res = await call;
    expect(res.data.subarray(5).toString()).toBe("late");
    await sleep(30);
    expect(done).toBe(true);
  });

  it("tryShutdown without connections or listeners calls back at once; twice is fine", async () => {
    const server = createGrpcServer();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    server.forceShutdown();
  });
});

describe("answers over the wire for every method kind", () => {
  it("answers a raw Sum request frame by frame", async () => {
    const server = createGrpcServer();
    server.register(
      "/pb.Add/Sum",
      (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
        const { a, b } = SumRequest.decode(call.request);
        cb(null, Buffer.from(SumReply.encode({ v: a + b, err: "" })));
      },
      identity,
      identity,
      "unary",
    );
    const { port } = await listen(server);
    const res = await rawCall(rawSession(port), "/pb.Add/Sum", { chunks: [sumBody] });
    expect(SumReply.decode(res.data.subarray(5)).v).toBe(3n);
  });
});

describe("client-streaming and bidi handlers", () => {
  type Chat = ServerDuplexStream<Buffer, Buffer>;
  type Up = (call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => void;

  async function serveStreams(
    chat: (call: Chat) => void,
    up: Up = (_call, cb) => cb(null, Buffer.from("up")),
  ) {
    const server = createGrpcServer();
    server.register("/t.T/Chat", chat, identity, identity, "bidi");
    server.register("/t.T/Up", up, identity, identity, "clientStream");
    return grpcClient((await listen(server)).address);
  }

  function chat(client: Client, messages: string[], end = true) {
    const stream = client.makeBidiStreamRequest("/t.T/Chat", identity, identity);
    const items: string[] = [];
    stream.on("data", (b: Buffer) => items.push(b.toString()));
    stream.on("error", () => undefined);
    const result = new Promise<{ items: string[]; status: StatusObject }>((resolve) =>
      stream.on("status", (s: StatusObject) => setImmediate(() => resolve({ items, status: s }))),
    );
    for (const m of messages) stream.write(Buffer.from(m));
    if (end) stream.end();
    return result;
  }

  function up(client: Client, messages: string[]) {
    const done = deferred<{ error: Error | null; value: Buffer | undefined }>();
    const stream = client.makeClientStreamRequest("/t.T/Up", identity, identity, (error, value) =>
      done.resolve({ error, value }),
    );
    for (const m of messages) stream.write(Buffer.from(m));
    stream.end();
    return done.promise;
  }

  it("lets a bidi handler write and end(trailer) after a for await loop over its requests (grpc-js would have destroyed the call)", async () => {
    const client = await serveStreams(async (call) => {
      const got: string[] = [];
      for await (const m of call) got.push((m as Buffer).toString());
      call.write(Buffer.from(got.join(",")));
      const trailer = new Metadata();
      trailer.set("x-n", String(got.length));
      call.end(trailer);
      expect(call.write(Buffer.from("late"))).toBe(false);
    });
    const res = await chat(client, ["a", "b", "c"]);
    expect([res.status.code, res.items]).toEqual([status.OK, ["a,b,c"]]);
    expect(res.status.metadata.get("x-n")).toEqual(["3"]);
  });

  it("keeps the call when a for await loop breaks early; the handler still answers", async () => {
    const client = await serveStreams(
      () => undefined,
      async (call, callback) => {
        for await (const m of call) {
          if ((m as Buffer).toString() === "stop") break;
        }
        callback(null, Buffer.from("stopped"));
      },
    );
    const res = await up(client, ["x", "stop", "y"]);
    expect([res.error, res.value?.toString()]).toEqual([null, "stopped"]);
  });

  it("ends a bidi call destroyed with an error with its status, and one destroyed without with CANCELLED", async () => {
    let n = 0;
    const client = await serveStreams((call) => {
      call.on("data", () => {
        n++;
        if (n === 1)
          call.destroy(Object.assign(new Error("bad"), { code: status.ABORTED, details: "aborted here" }));
        else call.destroy();
      });
    });
    const first = await chat(client, ["1"], false);
    expect([first.status.code, first.status.details]).toEqual([status.ABORTED, "aborted here"]);
    const second = await chat(client, ["2"], false);
    expect([second.status.code, second.status.details]).toEqual([
      status.CANCELLED,
      "Call destroyed by the server",
    ]);
  });

  it("answers a client stream whose handler destroyed its Readable with the callback's answer", async () => {
    const client = await serveStreams(
      () => undefined,
      (call, callback) => {
        call.once("data", () => {
          call.destroy();
          setTimeout(() => callback(null, Buffer.from("after destroy")), 10);
        });
      },
    );
    const res = await up(client, ["x", "y"]);
    expect(res.value?.toString()).toBe("after destroy");
  });

  it("answers UNIMPLEMENTED for client-streaming and bidi methods without an implementation", async () => {
    const server = createGrpcServer();
    const base = {
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    };
    server.addService(
      {
        Up: { ...base, path: "/t.T/Up", requestStream: true, responseStream: false },
        Chat: { ...base, path: "/t.T/Chat", requestStream: true, responseStream: true },
      },
      {},
    );
    const client = grpcClient((await listen(server)).address);
    const res = await chat(client, ["1"]);
    expect([res.status.code, res.status.details]).toEqual([
      status.UNIMPLEMENTED,
      "The server does not implement the method /t.T/Chat",
    ]);
    expect(((await up(client, ["1"])).error as { code?: number } | null)?.code).toBe(status.UNIMPLEMENTED);
  });

  it("tells a waiting handler of forceShutdown: 'cancelled' and its Readable destroyed", async () => {
    const server = createGrpcServer();
    const seen = deferred<{ cancelled: boolean; destroyed: boolean }>();
    const started = deferred<void>();
    server.register(
      "/t.T/Chat",
      (call: Chat) => {
        started.resolve();
        call.on("cancelled", () =>
          setImmediate(() => seen.resolve({ cancelled: call.cancelled, destroyed: call.destroyed })),
        );
      },
      identity,
      identity,
      "bidi",
    );
    const client = grpcClient((await listen(server)).address);
    const res = chat(client, ["1"], false);
    await started.promise;
    server.forceShutdown();
    expect(await seen.promise).toEqual({ cancelled: true, destroyed: true });
    expect([status.CANCELLED, status.UNAVAILABLE]).toContain((await res).status.code);
  });
});
