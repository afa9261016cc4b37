// Headers node:http2 allows only once: repeated values a handler puts in its trailers must not crash the
// process (node:http2 throws from the `wantTrailers` listener), and repeated values a client sends (two
// `authorization` headers) must reach the handler's metadata, not only the first.
import { connect as netConnect } from "node:net";
import { Metadata, type ServerWritableStream, type ServiceDefinition, status } from "@grpc/grpc-js";
import { bindService, createGrpcHandler } from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import { createGrpcServer } from "./index.js";
import { IncomingMetadata } from "./metadata.js";
import {
  closeAll,
  collect,
  count,
  deferred,
  grpcClient,
  listen,
  protos,
  type SumReply,
  SumRequest,
  Tick,
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

const countMethod: ServiceDefinition = {
  Count: {
    path: "/counter.Counter/Count",
    requestStream: false,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (t: Tick) => Buffer.from(Tick.encode(t)),
    responseDeserialize: (b: Buffer) => b,
  },
};

describe("trailers with repeated values of a single-value header (regression: uncaught ERR_HTTP2_HEADER_SINGLE_VALUE)", () => {
  async function serve(handler: (call: ServerWritableStream<Buffer, Tick>) => void) {
    const server = createGrpcServer();
    server.addService(countMethod, { Count: handler });
    const { address } = await listen(server);
    return grpcClient(address);
  }

  it("an error after one item: retry-after ['1', '2'] goes as '1', connection is dropped, no crash", async () => {
    watchCrashes();
    const client = await serve((call) => {
      call.write({ n: 1n, payload: new Uint8Array(0) });
      const metadata = new Metadata();
      metadata.add("retry-after", "1");
      metadata.add("retry-after", "2");
      metadata.add("connection", "close");
      metadata.add("x-kept", "yes");
      call.emit("error", { code: status.UNAVAILABLE, details: "busy", metadata });
    });
    const res = await collect(count(client, { count: 1 }, { deadline: Date.now() + 5_000 }));
    await settled();
    expect(crashes).toEqual([]);
    expect(res.items.map((t) => t.n)).toEqual([1n]);
    expect([res.status.code, res.status.details]).toEqual([status.UNAVAILABLE, "busy"]);
    expect(res.status.metadata.get("retry-after")).toEqual(["1"]);
    expect(res.status.metadata.get("connection")).toEqual([]);
    expect(res.status.metadata.get("x-kept")).toEqual(["yes"]);
  });

  it("an OK end with such a trailer: the stream ends OK with the first value", async () => {
    watchCrashes();
    const client = await serve((call) => {
      call.write({ n: 1n, payload: new Uint8Array(0) });
      const trailer = new Metadata();
      trailer.add("retry-after", "5");
      trailer.add("retry-after", "6");
      call.end(trailer);
    });
    const res = await collect(count(client, { count: 1 }, { deadline: Date.now() + 5_000 }));
    await settled();
    expect(crashes).toEqual([]);
    expect(res.status.code).toBe(status.OK);
    expect(res.status.metadata.get("retry-after")).toEqual(["5"]);
  });

  it("an error before any item whose metadata node:http2 refuses still sends its status, without the metadata (regression: no answer until the deadline)", async () => {
    watchCrashes();
    const client = await serve((call) => {
      // Duck-typed metadata (as StatusLike allows) with a header name node:http2 refuses.
      const metadata = { toHttp2Headers: () => ({ "x bad": "1", "x-ok": "yes" }) } as unknown as Metadata;
      call.emit("error", { code: status.UNAVAILABLE, details: "busy", metadata });
    });
    const res = await collect(count(client, { count: 1 }, { deadline: Date.now() + 5_000 }));
    await settled();
    expect(crashes).toEqual([]);
    expect(res.items).toEqual([]);
    expect([res.status.code, res.status.details]).toEqual([status.UNAVAILABLE, "busy"]);
    expect(res.status.metadata.get("x-ok")).toEqual([]);
  });

  it("a status message with a lone UTF-16 surrogate goes as U+FFFD (no crash)", async () => {
    watchCrashes();
    const client = await serve((call) => {
      call.write({ n: 1n, payload: new Uint8Array(0) });
      call.emit("error", { code: status.INVALID_ARGUMENT, details: `too long: ${"abcd😀".slice(0, 5)}` });
    });
    const res = await collect(count(client, { count: 1 }, { deadline: Date.now() + 5_000 }));
    await settled();
    expect(crashes).toEqual([]);
    expect([res.status.code, res.status.details]).toEqual([status.INVALID_ARGUMENT, "too long: abcd\uFFFD"]);
  });
});

// A node:http2 client refuses to send a single-value header twice, so this request is written by hand:
// the connection preface, an empty SETTINGS frame, HEADERS (HPACK literals without indexing) and DATA.
function frameOf(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

function hpackLiterals(headers: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(
      Buffer.from([0x00, name.length]),
      Buffer.from(name),
      Buffer.from([value.length]),
      Buffer.from(value),
    );
  }
  return Buffer.concat(parts);
}

describe("repeated single-value request headers (regression: only the first authorization reached the handler)", () => {
  it("metadata holds both authorization values a client sent", async () => {
    const seen = deferred<string[]>();
    const server = createGrpcServer();
    bindService(server, protos.service("pb.Add"), {
      Sum: createGrpcHandler(
        async (_ctx, req: SumRequest): Promise<SumReply> => ({ v: req.a + req.b, err: "" }),
        (_ctx, msg: SumRequest) => msg,
        (_ctx, res: SumReply) => res,
        { before: [(_ctx, md) => void seen.resolve(md.get("authorization").map(String))] },
      ),
    });
    const { port } = await listen(server);
    const socket = netConnect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.resume();
    const block = hpackLiterals([
      [":method", "POST"],
      [":scheme", "http"],
      [":path", "/pb.Add/Sum"],
      [":authority", `127.0.0.1:${port}`],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ["authorization", "Bearer first"],
      ["authorization", "Bearer second"],
    ]);
    const message = Buffer.from(SumRequest.encode({ a: 1n, b: 2n }));
    const body = Buffer.concat([Buffer.from([0]), Buffer.alloc(4), message]);
    body.writeUInt32BE(message.length, 1);
    socket.write(
      Buffer.concat([
        Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        frameOf(0x4, 0, 0, Buffer.alloc(0)),
        frameOf(0x1, 0x4, 1, block),
        frameOf(0x0, 0x1, 1, body),
      ]),
    );
    try {
      expect(await seen.promise).toEqual(["Bearer first", "Bearer second"]);
    } finally {
      socket.destroy();
    }
  });

  it("IncomingMetadata reads repeated single-value headers from the raw headers, others from the object", () => {
    const md = new IncomingMetadata({ authorization: "a", "x-joined": "1, 2", "user-agent": "ua" }, [
      "authorization",
      "a",
      "x-joined",
      "1",
      "authorization",
      "b",
      "x-joined",
      "2",
      "user-agent",
      "ua",
    ]);
    expect(md.get("authorization")).toEqual(["a", "b"]);
    expect(md.get("x-joined")).toEqual(["1, 2"]);
    expect(md.get("user-agent")).toEqual(["ua"]);
    // Without raw headers (a caller of the old constructor): as before.
    expect(new IncomingMetadata({ authorization: "a" }).get("authorization")).toEqual(["a"]);
  });
});
