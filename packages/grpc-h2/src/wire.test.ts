// The engine seen from the wire, with a raw node:http2 client: malformed requests get the right HTTP
// and gRPC status and never stop the server from serving the next call.
import { gzipSync } from "node:zlib";
import { bindService, createGrpcHandler } from "@svckit/transport-grpc";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcServer, type GrpcH2Server } from "./index.js";
import {
  closeRawSessions,
  framed,
  listen,
  protos,
  type RawResponse,
  rawCall,
  rawSession,
  SumReply,
  SumRequest,
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
