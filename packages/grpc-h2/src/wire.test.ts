// The engine seen from the wire, with a raw node:http2 client: malformed requests get the right HTTP
// and gRPC status and never stop the server from serving the next call.
import { constants as h2constants } from "node:http2";
import { deflateSync, gzipSync } from "node:zlib";
import type { ServerDuplexStream, ServerReadableStream, sendUnaryData } from "@grpc/grpc-js";
import { bindService, createGrpcHandler } from "@svckit/transport-grpc";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcServer, type GrpcH2Server } from "./index.js";
import {
  closeRawSessions,
  framed,
  listen,
  openRaw,
  protos,
  type RawResponse,
  rawCall,
  rawSession,
  SumReply,
  SumRequest,
  sleep,
} from "./test-helpers.js";

const add = protos.service("pb.Add");
let server: GrpcH2Server;
let port: number;
const deadlines: number[] = [];

beforeAll(async () => {
  server = createGrpcServer({ maxReceiveMessageLength: 1024 });
  bindService(server, add, {
    Sum: createGrpcHandler(
      async (ctx, req: SumRequest) => {
        deadlines.push(ctx.deadline ?? Number.NaN);
        return req.a + req.b;
      },
      (_ctx, msg: SumRequest) => msg,
      (_ctx, v: bigint): SumReply => ({ v, err: "" }),
    ),
  });
  ({ port } = await listen(server));
});

afterAll(() => {
  closeRawSessions();
  server.forceShutdown();
});

const sumBody = framed(SumRequest.encode({ a: 20n, b: 22n }));

/** Asserts a good Sum call still works on a fresh connection. */
async function expectServing(): Promise<void> {
  const res = await rawCall(rawSession(port), "/pb.Add/Sum", { chunks: [sumBody] });
  expect(res.grpcStatus).toBe(0);
  expect(SumReply.decode(res.data.subarray(5))).toEqual({ v: 42n, err: "" });
}

function expectStatus(res: RawResponse, code: number, message: string | RegExp): void {
  expect(res.headers[":status"]).toBe(200);
  expect(res.grpcStatus).toBe(code);
  if (typeof message === "string") expect(res.grpcMessage).toBe(message);
  else expect(res.grpcMessage).toMatch(message);
}

describe("the wire format of answers", () => {
  it("answers a unary call with headers, one framed message and the grpc-status 0 trailer", async () => {
    const res = await rawCall(rawSession(port), "/pb.Add/Sum", { chunks: [sumBody] });
    expect(res.headers[":status"]).toBe(200);
    expect(res.headers["content-type"]).toBe("application/grpc+proto");
    expect(res.headers["grpc-status"]).toBeUndefined();
    expect(res.trailers).toEqual(expect.objectContaining({ "grpc-status": "0" }));
    expect(res.data[0]).toBe(0);
    expect(res.data.readUInt32BE(1)).toBe(res.data.length - 5);
    expect(SumReply.decode(res.data.subarray(5))).toEqual({ v: 42n, err: "" });
  });

  it("answers an error before any message as trailers-only (status in the one HEADERS frame, no data)", async () => {
    const res = await rawCall(rawSession(port), "/pb.Add/Nope", { chunks: [sumBody] });
    expectStatus(res, 12, "The server does not implement the method /pb.Add/Nope");
    expect(res.headers["content-type"]).toBe("application/grpc+proto");
    expect(res.trailers).toBeUndefined();
    expect(res.data.length).toBe(0);
  });

  it("accepts application/grpc with a +subtype or parameters", async () => {
    for (const type of [
      "application/grpc+proto",
      "application/grpc+json",
      "application/grpc;charset=utf-8",
    ]) {
      const res = await rawCall(rawSession(port), "/pb.Add/Sum", {
        headers: { "content-type": type },
        chunks: [sumBody],
      });
      expect(res.grpcStatus).toBe(0);
    }
  });

  it("accepts a request without te: trailers (not enforced, like grpc-js and grpc-go)", async () => {
    const session = rawSession(port);
    const res = await rawCall(session, "/pb.Add/Sum", { headers: { te: undefined }, chunks: [sumBody] });
    expect(res.grpcStatus).toBe(0);
  });

  it("reads a message split into 1-byte DATA frames", async () => {
    const chunks = [...sumBody].map((b) => Uint8Array.of(b));
    const res = await rawCall(rawSession(port), "/pb.Add/Sum", { chunks });
    expect(SumReply.decode(res.data.subarray(5)).v).toBe(42n);
  });

  it.each([
    ["1H", 3_600_000],
    ["2M", 120_000],
    ["30S", 30_000],
    ["1500m", 1_500],
    ["99999999u", 99_999.999],
    ["90000000n", 90],
  ])("turns grpc-timeout %s into a deadline that far away", async (value, ms) => {
    deadlines.length = 0;
    const before = Date.now();
    const res = await rawCall(rawSession(port), "/pb.Add/Sum", {
      headers: { "grpc-timeout": value },
      chunks: [sumBody],
    });
    expect(res.grpcStatus).toBe(0);
    expect(deadlines[0]).toBeGreaterThanOrEqual(before + ms);
    expect(deadlines[0]).toBeLessThanOrEqual(Date.now() + ms);
  });
});

describe("malformed requests", () => {
  it("answers a non-POST request with HTTP 405 and grpc-status INTERNAL", async () => {
    const session = rawSession(port);
    const res = await new Promise<RawResponse>((resolve) => {
      const req = session.request({
        ":method": "GET",
        ":path": "/pb.Add/Sum",
        "content-type": "application/grpc",
      });
      req.on("response", (headers) => {
        req.on("close", () =>
          resolve({
            headers,
            trailers: undefined,
            data: Buffer.alloc(0),
            rstCode: req.rstCode ?? 0,
            grpcStatus: Number(headers["grpc-status"]),
            grpcMessage: String(headers["grpc-message"]),
          }),
        );
        req.resume();
      });
      req.end();
    });
    expect(res.headers[":status"]).toBe(405);
    expect([res.grpcStatus, res.grpcMessage]).toEqual([13, "gRPC requires POST, got GET"]);
    await expectServing();
  });

  it.each([["application/json"], ["application/grpc-web"], ["text/plain"], [undefined]])(
    "answers content-type %s with HTTP 415 and grpc-status INVALID_ARGUMENT",
    async (type) => {
      const res = await rawCall(rawSession(port), "/pb.Add/Sum", {
        headers: { "content-type": type },
        chunks: [sumBody],
      });
      expect(res.headers[":status"]).toBe(415);
      expect(res.grpcStatus).toBe(3);
      expect(decodeURIComponent(res.grpcMessage ?? "")).toBe(
        `invalid gRPC request content-type ${JSON.stringify(type ?? "")}`,
      );
      await expectServing();
    },
  );

  it.each([["1.5S"], ["123456789S"], ["10"], ["10x"], ["S"], ["-1S"], ["1 S"]])(
    "answers grpc-timeout %j with INTERNAL",
    async (value) => {
      const res = await rawCall(rawSession(port), "/pb.Add/Sum", {
        headers: { "grpc-timeout": value },
        chunks: [sumBody],
      });
      expectStatus(res, 13, `Invalid grpc-timeout value "${value}"`);
      await expectServing();
    },
  );

  it("answers a compressed flag other than 0 or 1 with INTERNAL", async () => {
    const body = Buffer.from(sumBody);
    body[0] = 2;
    const res = await rawCall(rawSession(port), "/pb.Add/Sum", { chunks: [body] });
    expectStatus(res, 13, "invalid message prefix: compressed flag 2 (expected 0 or 1)");
    await expectServing();
  });

  it("answers a message cut short by the end of the request with INTERNAL", async () => {
    for (const body of [sumBody.subarray(0, sumBody.length - 1), sumBody.subarray(0, 3)]) {
      const res = await rawCall(rawSession(port), "/pb.Add/Sum", { chunks: [body] });
      expectStatus(res, 13, "the request ended inside a message (truncated length-prefixed message)");
    }
    await expectServing();
  });

  it("answers a request without a message, and one with two, with INTERNAL", async () => {
    const none = await rawCall(rawSession(port), "/pb.Add/Sum");
    expectStatus(none, 13, "received no request message for unary method /pb.Add/Sum");
    const two = await rawCall(rawSession(port), "/pb.Add/Sum", {
      chunks: [Buffer.concat([sumBody, sumBody])],
    });
    expectStatus(two, 13, "received a second request message for unary method /pb.Add/Sum");
    await expectServing();
  });

  it("answers a compressed message without grpc-encoding with INTERNAL", async () => {
    const body = framed(gzipSync(SumRequest.encode({ a: 1n, b: 1n })), 1);
    for (const encoding of [undefined, "identity"]) {
      const res = await rawCall(rawSession(port), "/pb.Add/Sum", {
        headers: { "grpc-encoding": encoding },
        chunks: [body],
      });
      expectStatus(res, 13, "a message has the compressed flag set but the request has no grpc-encoding");
    }
    await expectServing();
  });

  it("answers an unsupported grpc-encoding with UNIMPLEMENTED and the encodings it accepts", async () => {
    const body = framed(Buffer.from("whatever"), 1);
    const res = await rawCall(rawSession(port), "/pb.Add/Sum", {
      headers: { "grpc-encoding": "snappy" },
      chunks: [body],
    });
    expectStatus(res, 12, 'Received message compressed with unsupported encoding "snappy"');
    expect(res.headers["grpc-accept-encoding"]).toBe("identity,gzip,deflate");
    await expectServing();
  });

  it("reads an uncompressed message whatever grpc-encoding says", async () => {
    const res = await rawCall(rawSession(port), "/pb.Add/Sum", {
      headers: { "grpc-encoding": "snappy" },
      chunks: [sumBody],
    });
    expect(res.grpcStatus).toBe(0);
  });

  it("decompresses gzip and deflate messages and refuses bytes that do not decompress", async () => {
    const gz = await rawCall(rawSession(port), "/pb.Add/Sum", {
      headers: { "grpc-encoding": "gzip" },
      chunks: [framed(gzipSync(SumRequest.encode({ a: 2n, b: 3n })), 1)],
    });
    expect(SumReply.decode(gz.data.subarray(5)).v).toBe(5n);
    const bad = await rawCall(rawSession(port), "/pb.Add/Sum", {
      headers: { "grpc-encoding": "deflate" },
      chunks: [framed(Buffer.from("not deflate"), 1)],
    });
    expectStatus(bad, 13, "Failed to decompress message (deflate)");
    await expectServing();
  });

  it("refuses an oversized message from its prefix alone, before the body, and resets the stream", async () => {
    const prefix = Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]);
    const res = await rawCall(rawSession(port), "/pb.Add/Sum", { chunks: [prefix], end: false });
    expectStatus(res, 8, "Received message larger than max (2147483647 vs 1024)");
    expect(res.rstCode).toBe(0);
    await expectServing();
  });

  it("refuses an unknown method without reading the request, and resets the stream", async () => {
    const res = await rawCall(rawSession(port), "/nope.Nope/Nope", { chunks: [sumBody], end: false });
    expectStatus(res, 12, "The server does not implement the method /nope.Nope/Nope");
    expect(res.rstCode).toBe(0);
  });
});

describe("fuzzing the framing", () => {
  it("answers any body with a valid gRPC status and keeps serving", async () => {
    const session = rawSession(port);
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      // A plausible prefix followed by random bytes, so messages of every length and flag are tried.
      fc
        .tuple(
          fc.integer({ min: 0, max: 2 }),
          fc.integer({ min: 0, max: 80 }),
          fc.uint8Array({ maxLength: 80 }),
        )
        .map(([flag, length, rest]) => {
          const prefix = Buffer.alloc(5);
          prefix[0] = flag;
          prefix.writeUInt32BE(length, 1);
          return new Uint8Array(Buffer.concat([prefix, rest]));
        }),
    );
    await fc.assert(
      fc.asyncProperty(
        body,
        fc.array(fc.integer({ min: 1, max: 16 }), { maxLength: 4 }),
        fc.constantFrom(undefined, "gzip", "deflate", "identity"),
        async (bytes, cuts, encoding) => {
          const chunks: Uint8Array[] = [];
          let at = 0;
          for (const cut of cuts) {
            if (at >= bytes.length) break;
            chunks.push(bytes.subarray(at, at + cut));
            at += cut;
          }
          if (at < bytes.length) chunks.push(bytes.subarray(at));
          const res = await rawCall(session, "/pb.Add/Sum", {
            headers: { "grpc-encoding": encoding },
            chunks,
          });
          expect(res.headers[":status"]).toBe(200);
          expect(res.grpcStatus).toBeGreaterThanOrEqual(0);
          expect(res.grpcStatus).toBeLessThanOrEqual(16);
          expect(String(res.trailers?.["grpc-status"] ?? res.headers["grpc-status"])).toMatch(
            /^(0|[1-9]\d?)$/,
          );
          if (res.grpcStatus === 0) expect(res.data.readUInt32BE(1)).toBe(res.data.length - 5);
        },
      ),
      { numRuns: 150 },
    );
    await expectServing();
  });
});

describe("request streams on the wire (client streaming and bidi)", () => {
  type Duplex = ServerDuplexStream<string, string>;
  let streams: GrpcH2Server;
  let streamsPort: number;
  /** What the handlers saw: cancellations, and the calls the Hold method is holding. */
  const cancelledPaths: string[] = [];
  const held: Duplex[] = [];
  const textOf = (b: Buffer): string => {
    if (b[0] === 0xff) throw new Error("not text");
    return b.toString();
  };

  beforeAll(async () => {
    streams = createGrpcServer({ maxReceiveMessageLength: 1024 });
    const watch = (call: Duplex): void => {
      call.on("cancelled", () => cancelledPaths.push(call.getPath()));
    };
    // Echo: answers each message with itself; ends when the client does.
    streams.register(
      "/s.S/Echo",
      (call: Duplex) => {
        watch(call);
        call.on("data", (v: string) => call.write(v));
        call.on("end", () => call.end());
      },
      (v: string) => Buffer.from(v),
      textOf,
      "bidi",
    );
    // Join: client streaming, answers the messages joined with "+".
    streams.register(
      "/s.S/Join",
      (call: ServerReadableStream<string, string>, callback: sendUnaryData<string>) => {
        watch(call as unknown as Duplex);
        const parts: string[] = [];
        call.on("data", (v: string) => {
          if (v === "now") callback(null, parts.join("+"));
          parts.push(v);
        });
        call.on("end", () => callback(null, parts.join("+")));
      },
      (v: string) => Buffer.from(v),
      textOf,
      "clientStream",
    );
    // Hold: does not read until the test reads the call.
    streams.register(
      "/s.S/Hold",
      (call: Duplex) => {
        watch(call);
        held.push(call);
      },
      (v: string) => Buffer.from(v),
      textOf,
      "bidi",
    );
    ({ port: streamsPort } = await listen(streams));
  });

  afterAll(() => streams.forceShutdown());

  /** The messages of a response body. */
  function messages(data: Buffer): string[] {
    const out: string[] = [];
    for (let at = 0; at + 5 <= data.length; ) {
      const length = data.readUInt32BE(at + 1);
      out.push(data.subarray(at + 5, at + 5 + length).toString());
      at += 5 + length;
    }
    return out;
  }

  const msg = (text: string): Buffer => framed(Buffer.from(text));

  it("echoes messages split and joined across DATA frames in order, and compressed ones among them", async () => {
    const body = Buffer.concat([
      msg("a"),
      msg("bb"),
      framed(gzipSync("ccc"), 1),
      msg("d"),
      framed(gzipSync("e"), 1),
    ]);
    const res = await rawCall(rawSession(streamsPort), "/s.S/Echo", {
      headers: { "grpc-encoding": "gzip" },
      chunks: [body.subarray(0, 3), body.subarray(3, 9), body.subarray(9)],
    });
    expect([res.grpcStatus, messages(res.data)]).toEqual([0, ["a", "bb", "ccc", "d", "e"]]);
    const join = await rawCall(rawSession(streamsPort), "/s.S/Join", { chunks: [msg("x"), msg("y")] });
    expect([join.grpcStatus, messages(join.data)]).toEqual([0, ["x+y"]]);
  });

  it.each([
    [
      "a compressed flag of 2",
      {},
      [msg("ok"), Buffer.from([2, 0, 0, 0, 1, 0x61])],
      13,
      "invalid message prefix: compressed flag 2 (expected 0 or 1)",
    ],
    [
      "a request that ends inside a message",
      {},
      [msg("ok"), Buffer.from([0, 0, 0, 0, 9, 0x61])],
      13,
      "the request ended inside a message (truncated length-prefixed message)",
    ],
    [
      "a message over the limit",
      {},
      [msg("ok"), Buffer.from([0, 0, 0, 8, 0])],
      8,
      "Received message larger than max (2048 vs 1024)",
    ],
    [
      "a compressed message without grpc-encoding",
      {},
      [msg("ok"), framed(gzipSync("x"), 1)],
      13,
      "a message has the compressed flag set but the request has no grpc-encoding",
    ],
    [
      "an unsupported grpc-encoding",
      { "grpc-encoding": "snappy" },
      [msg("ok"), framed(Buffer.from("x"), 1)],
      12,
      'Received message compressed with unsupported encoding "snappy"',
    ],
    [
      "bytes that do not decompress",
      { "grpc-encoding": "gzip" },
      [msg("ok"), framed(Buffer.from("nope"), 1)],
      13,
      "Failed to decompress message (gzip)",
    ],
    [
      "a message that inflates over the limit",
      { "grpc-encoding": "deflate" },
      [msg("ok"), framed(deflateSync(Buffer.alloc(4096)), 1)],
      8,
      "Received message that decompresses to a size larger than 1024",
    ],
    [
      "a message deserialize refuses",
      {},
      [msg("ok"), framed(Buffer.from([0xff]))],
      13,
      "Error deserializing request",
    ],
  ] as [string, Record<string, string>, Buffer[], number, string][])(
    "ends a bidi call with a status after %s mid-stream; the handler sees the call cancelled",
    async (_name, headers, chunks, code, message) => {
      cancelledPaths.length = 0;
      // The truncated message is only known to be truncated when the request ends.
      const end = code === 13 && message.startsWith("the request ended");
      const res = await rawCall(rawSession(streamsPort), "/s.S/Echo", { headers, chunks, end });
      expect(messages(res.data)).toEqual(["ok"]);
      expect([res.trailers?.["grpc-status"], res.trailers?.["grpc-message"]]).toEqual([
        String(code),
        message,
      ]);
      await expect.poll(() => cancelledPaths).toEqual(["/s.S/Echo"]);
      // Before any response message the same error is a trailers-only response.
      const first = await rawCall(rawSession(streamsPort), "/s.S/Join", {
        headers,
        chunks: chunks.slice(1),
        end,
      });
      expectStatus(first, code, message);
      await expectServing();
    },
  );

  it("stops reading a client that sends faster than the handler reads, then reads it all (bounded memory)", async () => {
    held.length = 0;
    const session = rawSession(streamsPort);
    const req = openRaw(session, "/s.S/Hold");
    const response: Buffer[] = [];
    req.on("data", (chunk: Buffer) => response.push(chunk));
    const closed = new Promise<void>((resolve) => req.on("close", resolve));
    const total = 4000; // 4 MB of 1 KiB messages, 60 times the HTTP/2 stream window
    const one = msg("x".repeat(1019));
    let written = 0;
    const pump = (): void => {
      while (written < total) {
        written++;
        if (!req.write(one)) {
          req.once("drain", pump);
          return;
        }
      }
      req.end();
    };
    pump();
    await expect.poll(() => held.length).toBe(1);
    const call = held[0] as Duplex;
    // Nobody reads: the server holds 16 decoded messages and stops reading, flow control stops the client.
    let before = -1;
    while (before !== written) {
      before = written;
      await sleep(100);
    }
    expect(written).toBeLessThan(400);
    expect(call.readableLength).toBeLessThanOrEqual(16);
    // Other calls on the same connection are not held back.
    const other = await rawCall(session, "/s.S/Join", { chunks: [msg("p"), msg("q")] });
    expect([other.grpcStatus, messages(other.data)]).toEqual([0, ["p+q"]]);
    // The handler reads: everything arrives, in order.
    let n = 0;
    for await (const v of call) {
      if ((v as string).length === 1019) n++;
    }
    call.write(String(n));
    call.end();
    await closed;
    expect(written).toBe(total);
    expect(messages(Buffer.concat(response))).toEqual([String(total)]);
  });

  it("cancels a call held back by backpressure when its client resets it: nothing stays paused or buffered", async () => {
    held.length = 0;
    cancelledPaths.length = 0;
    const session = rawSession(streamsPort);
    const req = openRaw(session, "/s.S/Hold");
    const closed = new Promise<void>((resolve) => req.on("close", resolve));
    const one = msg("z".repeat(1019));
    let stalled = false;
    for (let i = 0; i < 1000 && !stalled; i++) stalled = !req.write(one);
    await expect.poll(() => held.length).toBe(1);
    const call = held[0] as Duplex;
    await expect.poll(() => call.readableLength).toBe(16);
    req.close(h2constants.NGHTTP2_CANCEL);
    await closed;
    await expect
      .poll(() => [call.cancelled, call.destroyed, cancelledPaths])
      .toEqual([true, true, ["/s.S/Hold"]]);
    await expectServing();
  });

  /** A Hold call with `count` messages of `body` written at once, and the handler holding it. */
  async function holding(count: number, body: Buffer) {
    held.length = 0;
    cancelledPaths.length = 0;
    const session = rawSession(streamsPort);
    const req = openRaw(session, "/s.S/Hold");
    req.on("data", () => undefined);
    const closed = new Promise<void>((resolve) => req.on("close", resolve));
    for (let i = 0; i < count; i++) req.write(body);
    await expect.poll(() => held.length).toBe(1);
    return { req, closed, call: held[0] as Duplex };
  }

  it("cancels a paused call its client resets with NO_ERROR; a write afterwards neither throws nor hangs", async () => {
    const { req, call } = await holding(40, msg("z".repeat(1000)));
    await expect.poll(() => call.readableLength).toBe(16);
    req.close(h2constants.NGHTTP2_NO_ERROR);
    await expect
      .poll(() => [call.cancelled, call.destroyed, cancelledPaths])
      .toEqual([true, true, ["/s.S/Hold"]]);
    expect(() => call.write("late")).not.toThrow();
    await expectServing();
  });

  it("lets a server shut down after a client-streaming answer to a paused call its client reset", async () => {
    const waiting: { call: ServerReadableStream<string, string>; callback: sendUnaryData<string> }[] = [];
    const own = createGrpcServer();
    own.register(
      "/s.S/Wait",
      (call: ServerReadableStream<string, string>, callback: sendUnaryData<string>) => {
        waiting.push({ call, callback });
      },
      (v: string) => Buffer.from(v),
      textOf,
      "clientStream",
    );
    const { port: ownPort } = await listen(own);
    const session = rawSession(ownPort);
    const req = openRaw(session, "/s.S/Wait");
    req.on("data", () => undefined);
    for (let i = 0; i < 40; i++) req.write(msg("x".repeat(1000)));
    await expect.poll(() => waiting[0]?.call.readableLength).toBe(16);
    req.close(h2constants.NGHTTP2_NO_ERROR);
    await sleep(50);
    waiting[0]?.callback(null, "done");
    session.close();
    const shut = new Promise<string>((resolve) => own.tryShutdown(() => resolve("closed")));
    expect(await Promise.race([shut, sleep(1500).then(() => "still waiting")])).toBe("closed");
  });

  it("a bidi handler's first write after a NO_ERROR reset of a paused call does not throw", async () => {
    const { req, call } = await holding(40, msg("z".repeat(1000)));
    await expect.poll(() => call.readableLength).toBe(16);
    req.close(h2constants.NGHTTP2_NO_ERROR);
    await sleep(50);
    // The reset may not have reached the call yet when the handler writes: the write must not throw.
    expect(() => call.write("first")).not.toThrow();
    await expect.poll(() => [call.cancelled, call.destroyed]).toEqual([true, true]);
  });

  it("holds at most 16 decoded messages even when one DATA frame carries thousands", async () => {
    const empties = Buffer.concat(Array.from({ length: 3000 }, () => framed(Buffer.alloc(0))));
    const { req, call, closed } = await holding(3, empties);
    await sleep(200);
    expect(call.readableLength).toBeLessThanOrEqual(16);
    let count = 0;
    call.on("data", () => count++);
    call.on("end", () => call.end());
    req.end();
    await closed;
    expect(count).toBe(9000);
  });

  it("ends a call whose handler destroys it with a value that is not an Error: UNKNOWN at once", async () => {
    held.length = 0;
    const answer = rawCall(rawSession(streamsPort), "/s.S/Hold", { chunks: [msg("a")], end: false });
    await expect.poll(() => held.length).toBe(1);
    (held[0] as unknown as { destroy(e: unknown): void }).destroy("no thanks");
    const res = await answer;
    expectStatus(res, 2, "Unknown Error");
  });

  it("holds a bidi handler's writes back while the client does not read ('drain' when it does)", async () => {
    held.length = 0;
    const session = rawSession(streamsPort);
    const req = openRaw(session, "/s.S/Hold");
    req.pause();
    let received = 0;
    req.on("data", (chunk: Buffer) => {
      received += chunk.length;
    });
    const closed = new Promise<void>((resolve) => req.on("close", resolve));
    await expect.poll(() => held.length).toBe(1);
    const call = held[0] as Duplex;
    const big = "y".repeat(64 * 1024);
    let accepted = 0;
    while (call.write(big)) accepted++;
    expect(accepted).toBeLessThan(40); // stopped by flow control, not after megabytes
    const drained = new Promise<void>((resolve) => call.once("drain", resolve));
    req.resume();
    await drained;
    call.end();
    req.end();
    await closed;
    expect(received).toBe((accepted + 1) * (64 * 1024 + 5));
  });

  it("tells a handler of a connection lost mid-stream: cancelled, 'cancelled', its for await loop throws", async () => {
    held.length = 0;
    cancelledPaths.length = 0;
    const session = rawSession(streamsPort);
    const req = openRaw(session, "/s.S/Hold");
    req.write(Buffer.concat([msg("1"), msg("2")]));
    await expect.poll(() => held.length).toBe(1);
    const call = held[0] as Duplex;
    const seen: string[] = [];
    const loop = (async () => {
      try {
        for await (const v of call) {
          seen.push(v as string);
          // Node's client half-closes before any RST_STREAM it sends (so the loop would end first, then
          // 'cancelled' comes); a dropped connection cuts the request stream off without an end.
          if (seen.length === 2) session.destroy();
        }
        return "ended";
      } catch {
        return "threw";
      }
    })();
    expect(await loop).toBe("threw");
    expect(seen).toEqual(["1", "2"]);
    expect([call.cancelled, call.destroyed, cancelledPaths]).toEqual([true, true, ["/s.S/Hold"]]);
    expect(call.write("late")).toBe(false);
    call.end();
    await expectServing();
  });

  it("ends a bidi call that never answers at its grpc-timeout with DEADLINE_EXCEEDED", async () => {
    held.length = 0;
    cancelledPaths.length = 0;
    const res = await rawCall(rawSession(streamsPort), "/s.S/Hold", {
      headers: { "grpc-timeout": "100m" },
      chunks: [msg("1")],
      end: false,
    });
    expectStatus(res, 4, "Deadline exceeded");
    expect([held[0]?.cancelled, cancelledPaths]).toEqual([true, ["/s.S/Hold"]]);
  });

  it("answers a client stream before the client ended it, and drops what the client sends after", async () => {
    const session = rawSession(streamsPort);
    const req = openRaw(session, "/s.S/Join");
    let trailers: Record<string, unknown> | undefined;
    const data: Buffer[] = [];
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.on("data", (c: Buffer) => data.push(c));
    const closed = new Promise<void>((resolve) => req.on("close", resolve));
    req.write(Buffer.concat([msg("a"), msg("now")]));
    await expect.poll(() => trailers?.["grpc-status"]).toBe("0");
    req.write(msg("more"));
    req.end(msg("last"));
    await closed;
    expect(messages(Buffer.concat(data))).toEqual(["a"]);
    await expectServing();
  });
});
