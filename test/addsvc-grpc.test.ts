// addsvc over gRPC, end to end: the built example as a child process, called as `pb.Add` by the svckit
// gRPC client, by a plain grpc-js client built from addsvc.proto alone (codec-protobuf message types as
// its serializers) and by a grpc-js client sending and reading raw protobuf bytes, for the MUSTs of
// /work/shared/wire/addsvc.md's gRPC section: service errors inside the reply with status OK, rate
// limit and breaker as RESOURCE_EXHAUSTED / UNAVAILABLE statuses; grpc.health.v1 answered to a plain
// grpc-js client; and the graceful stop on SIGTERM (health turns NOT_SERVING, new connections are
// refused, a call already open is answered, exit 0). The whole suite runs once per gRPC server engine
// (`--grpc-engine grpc-js` and `--grpc-engine h2`): the same service must answer the same on both.
import { once } from "node:events";
import http2 from "node:http2";
import {
  type CallOptions,
  Client,
  credentials,
  type ServiceError as GrpcError,
  Metadata,
  status,
} from "@grpc/grpc-js";
import { loadProtoSync } from "@svckit/codec-protobuf";
import { Code, createContext, ServiceError } from "@svckit/endpoint";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AddsvcGrpcClient, createAddsvcGrpcClient } from "../examples/addsvc/src/transport-grpc.js";
import {
  ensureBuilt,
  GRPC_ENGINES,
  jsonLines,
  protoPath,
  type RunningAddsvc,
  startAddsvc,
} from "./fixtures/addsvc-helpers.js";
import { stopProcesses, within } from "./support.js";

/** The plain client's schema: read from the .proto file, nothing from the example's code. */
const proto = loadProtoSync(protoPath);
const SumRequest = proto.messageType<{ a: bigint; b: bigint }>("pb.SumRequest");
const SumReply = proto.messageType<{ v: bigint; err: string }>("pb.SumReply");
const ConcatRequest = proto.messageType<{ a: string; b: string }>("pb.ConcatRequest");
const ConcatReply = proto.messageType<{ v: string; err: string }>("pb.ConcatReply");

type Plain<T> = { reply: T } | { code: number; details: string };

/** A unary call of `path` with a plain grpc-js client: the reply, or the status code and details. */
function plainCall<Req, Res>(
  client: Client,
  path: string,
  serialize: (message: Req) => Buffer,
  deserialize: (bytes: Buffer) => Res,
  request: Req,
  options: CallOptions = {},
): Promise<Plain<Res>> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      serialize,
      deserialize,
      request,
      new Metadata(),
      { deadline: Date.now() + 5_000, ...options },
      (err: GrpcError | null, reply?: Res) => {
        if (err) resolve({ code: err.code, details: err.details });
        else resolve({ reply: reply as Res });
      },
    );
  });
}

const encodeWith =
  <T>(type: { encode(message: T): Uint8Array }) =>
  (message: T): Buffer =>
    Buffer.from(type.encode(message));
const raw = (bytes: Buffer): Buffer => bytes;

function plainSum(client: Client, a: bigint, b: bigint) {
  return plainCall(client, "/pb.Add/Sum", encodeWith(SumRequest), SumReply.decode, { a, b });
}
function plainConcat(client: Client, a: string, b: string) {
  return plainCall(client, "/pb.Add/Concat", encodeWith(ConcatRequest), ConcatReply.decode, { a, b });
}
/** The reply's bytes as hex, for a request given as hex, to a method of pb.Add or to a full `/path`. */
async function rawCall(client: Client, method: string, hex: string): Promise<Plain<string>> {
  const path = method.startsWith("/") ? method : `/pb.Add/${method}`;
  const out = await plainCall(client, path, raw, raw, Buffer.from(hex.replaceAll(" ", ""), "hex"));
  return "reply" in out ? { reply: out.reply.toString("hex") } : out;
}
const hexOf = (s: string): string => Buffer.from(s).toString("hex");

/** `hex` as one length-prefixed, uncompressed gRPC message. */
function grpcMessage(hex: string): Buffer {
  const message = Buffer.from(hex.replaceAll(" ", ""), "hex");
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** A raw HTTP/2 gRPC call's answer: the HTTP status, `grpc-status` and the response bytes as hex. */
function replyOf(
  stream: http2.ClientHttp2Stream,
): Promise<{ status: number | undefined; grpcStatus: unknown; messages: string }> {
  return new Promise((resolve, reject) => {
    let httpStatus: number | undefined;
    let grpcStatus: unknown;
    const chunks: Buffer[] = [];
    stream.on("response", (headers) => {
      httpStatus = headers[":status"];
      grpcStatus = headers["grpc-status"]; // a trailers-only answer
    });
    stream.on("trailers", (trailers) => {
      grpcStatus = trailers["grpc-status"];
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () =>
      resolve({ status: httpStatus, grpcStatus, messages: Buffer.concat(chunks).toString("hex") }),
    );
  });
}

/** The largest request addsvc takes on any listener: 1 MiB. */
const MAX_REQUEST = 1 << 20;
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";

async function failureOf(call: Promise<unknown>): Promise<ServiceError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}

describe.each(GRPC_ENGINES)("addsvc over gRPC on the %s engine", (engine) => {
  /** The built addsvc with its gRPC server on this suite's engine. */
  const start = (args: readonly string[]): Promise<RunningAddsvc> =>
    startAddsvc(["--grpc-engine", engine, ...args]);

  describe("no rate limits", () => {
    let svc: RunningAddsvc;
    let plain: Client;
    let client: AddsvcGrpcClient;

    beforeAll(async () => {
      await ensureBuilt();
      svc = await start(["--http-addr", "off", "--jsonrpc-addr", "off", "--debug-addr", "off"]);
      plain = new Client(svc.grpc as string, credentials.createInsecure());
      client = createAddsvcGrpcClient(svc.grpc as string);
    }, 180_000);
    afterAll(async () => {
      plain?.close();
      client?.close();
      await stopProcesses();
    });

    it("serves gRPC on the engine asked for, as its log line says", () => {
      const line = jsonLines(svc.proc).find((l) => l.transport === "gRPC");
      expect(line).toMatchObject({ message: `gRPC listening on ${svc.grpc}`, engine });
    });

    describe("MUST, with a plain grpc-js client from the proto", () => {
      it('Sum(1, 2) → SumReply{v: 3, err: ""} with status OK', async () => {
        expect(await plainSum(plain, 1n, 2n)).toEqual({ reply: { v: 3n, err: "" } });
      });

      it('Concat("ab", "cd") → ConcatReply{v: "abcd", err: ""}', async () => {
        expect(await plainConcat(plain, "ab", "cd")).toEqual({ reply: { v: "abcd", err: "" } });
      });

      it('Sum(0, 0) → status OK and SumReply{v: 0, err: "can\'t sum two zeroes"}', async () => {
        expect(await plainSum(plain, 0n, 0n)).toEqual({ reply: { v: 0n, err: "can't sum two zeroes" } });
      });

      it('Sum over 32 bits → status OK and err "integer overflow"', async () => {
        expect(await plainSum(plain, 2147483647n, 1n)).toEqual({ reply: { v: 0n, err: "integer overflow" } });
        expect(await plainSum(plain, -2147483648n, -1n)).toEqual({
          reply: { v: 0n, err: "integer overflow" },
        });
      });

      it('Concat over 10 bytes → status OK and ConcatReply{v: "", err: "result exceeds maximum size"}', async () => {
        expect(await plainConcat(plain, "abcdef", "ghijk")).toEqual({
          reply: { v: "", err: "result exceeds maximum size" },
        });
      });

      it("negative results and the whole int64 range are exact", async () => {
        expect(await plainSum(plain, -5n, -7n)).toEqual({ reply: { v: -12n, err: "" } });
        expect(await plainSum(plain, 2n ** 62n, 0n)).toEqual({ reply: { v: 2n ** 62n, err: "" } });
        expect(await plainSum(plain, -(2n ** 63n), 1n)).toEqual({ reply: { v: -(2n ** 63n) + 1n, err: "" } });
        expect(await plainSum(plain, 2n ** 63n - 1n, 1n)).toEqual({
          reply: { v: 0n, err: "integer overflow" },
        });
      });
    });

    describe("MUST, on the wire (raw protobuf bytes)", () => {
      it("Sum(1, 2): request 08 01 10 02 → reply 08 03 (no err field: proto3 leaves an empty string out)", async () => {
        expect(await rawCall(plain, "Sum", "08 01 10 02")).toEqual({ reply: "0803" });
      });

      it('Sum(0, 0): the empty request → reply 12 14 "can\'t sum two zeroes" (v = 0 is left out)', async () => {
        expect(await rawCall(plain, "Sum", "")).toEqual({ reply: `1214${hexOf("can't sum two zeroes")}` });
      });

      it('Concat("ab", "cd") → 0a 04 "abcd"', async () => {
        expect(await rawCall(plain, "Concat", `0a02${hexOf("ab")}1202${hexOf("cd")}`)).toEqual({
          reply: `0a04${hexOf("abcd")}`,
        });
      });

      it("Sum(-5, -7): negative int64 varints → v = -12 as a 10-byte varint", async () => {
        const minus = (n: bigint) => {
          let v = BigInt.asUintN(64, n);
          let out = "";
          do {
            const byte = Number(v & 0x7fn);
            v >>= 7n;
            out += (byte | (v > 0n ? 0x80 : 0)).toString(16).padStart(2, "0");
          } while (v > 0n);
          return out;
        };
        expect(await rawCall(plain, "Sum", `08${minus(-5n)}10${minus(-7n)}`)).toEqual({
          reply: `08${minus(-12n)}`,
        });
      });

      it("bytes that are not a SumRequest → INVALID_ARGUMENT", async () => {
        const out = await rawCall(plain, "Sum", "08");
        expect(out).toMatchObject({ code: status.INVALID_ARGUMENT });
        expect((out as { details: string }).details).toMatch(
          /^invalid pb\.SumRequest message: truncated data/,
        );
      });

      it("an unknown method → UNIMPLEMENTED", async () => {
        expect(await rawCall(plain, "Mul", "")).toEqual({
          code: status.UNIMPLEMENTED,
          details: "The server does not implement the method /pb.Add/Mul",
        });
      });

      it("a request of 1 MiB is served; one byte more → RESOURCE_EXHAUSTED, as the HTTP listeners' limit", async () => {
        // Sum(1, 2) followed by an unknown bytes field 3 (skipped by the decoder) that pads it to `size`.
        const sumOfSize = (size: number): string => {
          const pad = size - 4 - 1 - 3; // 08 01 10 02, tag 1a, a 3-byte length varint
          const length = [(pad & 0x7f) | 0x80, ((pad >> 7) & 0x7f) | 0x80, pad >> 14]
            .map((b) => b.toString(16).padStart(2, "0"))
            .join("");
          return `08 01 10 02 1a ${length}${"00".repeat(pad)}`;
        };
        expect(await rawCall(plain, "Sum", sumOfSize(MAX_REQUEST))).toEqual({ reply: "0803" });
        expect(await rawCall(plain, "Sum", sumOfSize(MAX_REQUEST + 1))).toEqual({
          code: status.RESOURCE_EXHAUSTED,
          details: `Received message larger than max (${MAX_REQUEST + 1} vs ${MAX_REQUEST})`,
        });
      });
    });

    describe("grpc.health.v1, with a plain grpc-js client and raw protobuf bytes", () => {
      it('Check of "" (the server) and of pb.Add → HealthCheckResponse{status: SERVING} (08 01)', async () => {
        expect(await rawCall(plain, HEALTH_CHECK, "")).toEqual({ reply: "0801" });
        expect(await rawCall(plain, HEALTH_CHECK, `0a06${hexOf("pb.Add")}`)).toEqual({ reply: "0801" });
      });

      it("Check of an unknown service → NOT_FOUND", async () => {
        expect(await rawCall(plain, HEALTH_CHECK, `0a07${hexOf("pb.Nope")}`)).toEqual({
          code: status.NOT_FOUND,
          details: 'unknown service "pb.Nope"',
        });
      });
    });

    describe("through the svckit gRPC client", () => {
      it("sum and concat answer", async () => {
        const ctx = createContext({ timeout: 5_000 });
        expect(await client.sum(ctx, { a: 1n, b: 2n })).toEqual({ v: 3n });
        expect(await client.sum(ctx, { a: 2n ** 62n, b: 0n })).toEqual({ v: 2n ** 62n });
        expect(await client.concat(ctx, { a: "ab", b: "cd" })).toEqual({ v: "abcd" });
      });

      it("a reply's err becomes a ServiceError INVALID_ARGUMENT with that message, as over HTTP", async () => {
        const ctx = createContext({ timeout: 5_000 });
        for (const [call, message] of [
          [() => client.sum(ctx, { a: 0n, b: 0n }), "can't sum two zeroes"],
          [() => client.sum(ctx, { a: -2147483648n, b: -1n }), "integer overflow"],
          [() => client.concat(ctx, { a: "abcdef", b: "ghijk" }), "result exceeds maximum size"],
        ] as const) {
          const err = await failureOf(call());
          expect(err.code).toBe(Code.INVALID_ARGUMENT);
          expect(err.message).toBe(message);
        }
      });
    });
  });

  describe("with rate limits and breakers (flags)", () => {
    beforeAll(ensureBuilt, 180_000);
    const clients: Client[] = [];
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await stopProcesses();
    });

    it("a refused call is status RESOURCE_EXHAUSTED (go-kit: UNKNOWN) with the limiter's message", async () => {
      const svc = await start(["--sum-rate", "1", "--breaker-calls", "0", "--http-addr", "off"]);
      const plain = new Client(svc.grpc as string, credentials.createInsecure());
      clients.push(plain);
      const [first, second] = await Promise.all([plainSum(plain, 1n, 2n), plainSum(plain, 1n, 2n)]);
      const outcomes = [first, second];
      expect(outcomes).toContainEqual({ reply: { v: 3n, err: "" } });
      const refused = outcomes.find((o) => "code" in o) as { code: number; details: string };
      expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused.details).toMatch(
        /^rate limit "sum" exceeded: at most 1 calls per 1000 ms, retry in [\d.]+ s$/,
      );

      const client = createAddsvcGrpcClient(svc.grpc as string);
      try {
        const err = await failureOf(client.sum(createContext({ timeout: 5_000 }), { a: 1n, b: 1n }));
        expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
      } finally {
        client.close();
      }
    });

    it('an open breaker is status UNAVAILABLE with circuit breaker "sum" is open', async () => {
      const svc = await start(["--sum-rate", "1", "--breaker-calls", "3", "--http-addr", "off"]);
      const plain = new Client(svc.grpc as string, credentials.createInsecure());
      clients.push(plain);
      expect(await plainSum(plain, 1n, 2n)).toEqual({ reply: { v: 3n, err: "" } });
      expect(await plainSum(plain, 1n, 2n)).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
      expect(await plainSum(plain, 1n, 2n)).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
      expect(await plainSum(plain, 1n, 2n)).toEqual({
        code: status.UNAVAILABLE,
        details: 'circuit breaker "sum" is open',
      });
      // Concat is not limited (--concat-rate 0) and has a breaker of its own.
      expect(await plainConcat(plain, "a", "b")).toEqual({ reply: { v: "ab", err: "" } });
    });

    it("service errors in the reply never open the breaker", async () => {
      const svc = await start(["--breaker-calls", "3", "--http-addr", "off"]);
      const plain = new Client(svc.grpc as string, credentials.createInsecure());
      clients.push(plain);
      for (let i = 0; i < 10; i++) {
        expect(await plainSum(plain, 0n, 0n)).toEqual({ reply: { v: 0n, err: "can't sum two zeroes" } });
      }
      expect(await plainSum(plain, 1n, 1n)).toEqual({ reply: { v: 2n, err: "" } });
    });
  });

  describe("stop (SIGTERM)", () => {
    beforeAll(ensureBuilt, 180_000);
    const clients: Client[] = [];
    const sessions: http2.ClientHttp2Session[] = [];
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      for (const session of sessions.splice(0)) session.destroy();
      await stopProcesses();
    });
    const grpcOnly = ["--http-addr", "off", "--jsonrpc-addr", "off", "--debug-addr", "off"];

    it("a health Watch sees SERVING, NOT_SERVING as the stop begins, then ends with UNAVAILABLE; exit 0", async () => {
      const svc = await start(grpcOnly);
      const plain = new Client(svc.grpc as string, credentials.createInsecure());
      clients.push(plain);
      const call = plain.makeServerStreamRequest(
        "/grpc.health.v1.Health/Watch",
        raw,
        raw,
        Buffer.alloc(0),
        new Metadata(),
        {},
      );
      const statuses: string[] = [];
      const first = new Promise<void>((resolve) =>
        call.on("data", (bytes: Buffer) => {
          statuses.push(bytes.toString("hex"));
          resolve();
        }),
      );
      const ended = new Promise<GrpcError>((resolve) => call.on("error", resolve));
      await within(first, 10_000, "no first Watch message");
      expect(statuses).toEqual(["0801"]);

      process.kill(svc.proc.pid, "SIGTERM");
      const err = await within(ended, 10_000, "the Watch did not end");
      expect({ code: err.code, details: err.details }).toEqual({
        code: status.UNAVAILABLE,
        details: "the server is shutting down",
      });
      expect(statuses).toEqual(["0801", "0802"]);
      expect(await svc.proc.exited(10_000)).toEqual({ code: 0, signal: null });
      expect(svc.proc.stderr()).toBe("");
    });

    it("a call open when SIGTERM arrives is answered, while new connections are refused; exit 0", async () => {
      const svc = await start(grpcOnly);
      const session = http2.connect(`http://${svc.grpc as string}`);
      sessions.push(session);
      await within(once(session, "connect"), 10_000, "no HTTP/2 connection");
      const goaway = once(session, "goaway") as Promise<[number, number]>;
      // Sum(1, 2)'s headers and message, but not the end of the request: the unary call is open on the
      // server, waiting for it.
      const stream = session.request({
        ":method": "POST",
        ":path": "/pb.Add/Sum",
        "content-type": "application/grpc",
        te: "trailers",
      });
      const reply = replyOf(stream);
      stream.write(grpcMessage("08 01 10 02"));
      // The PING's answer comes after the server has read the frames sent before it: it has the call.
      await new Promise<void>((resolve, reject) => {
        session.ping((err) => (err === null ? resolve() : reject(err)));
      });

      process.kill(svc.proc.pid, "SIGTERM");
      // The server says it takes no new call on this connection, but keeps the one it has.
      const [code, lastStreamId] = await within(goaway, 10_000, "no GOAWAY after SIGTERM");
      expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(lastStreamId).toBeGreaterThanOrEqual(stream.id as number);
      // It no longer listens: a new client cannot connect.
      const late = new Client(svc.grpc as string, credentials.createInsecure());
      clients.push(late);
      expect(await plainSum(late, 1n, 2n)).toMatchObject({ code: status.UNAVAILABLE });
      expect(svc.proc.child.exitCode).toBe(null);

      stream.end();
      expect(await within(reply, 10_000, "no reply")).toEqual({
        status: 200,
        grpcStatus: "0",
        messages: "00000000020803",
      });
      expect(await svc.proc.exited(10_000)).toEqual({ code: 0, signal: null });
      const messages = jsonLines(svc.proc).map((l) => l.message);
      expect(messages.indexOf("served sum: OK")).toBeGreaterThan(messages.indexOf("shutting down"));
      expect(svc.proc.stderr()).toBe("");
    });
  });
});
