// addsvc over gRPC, end to end: the built example as a child process, called as `pb.Add` by the svckit
// gRPC client, by a plain grpc-js client built from addsvc.proto alone (codec-protobuf message types as
// its serializers) and by a grpc-js client sending and reading raw protobuf bytes, for the MUSTs of
// /work/shared/wire/addsvc.md's gRPC section: service errors inside the reply with status OK, rate
// limit and breaker as RESOURCE_EXHAUSTED / UNAVAILABLE statuses.
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
import { ensureBuilt, protoPath, type RunningAddsvc, startAddsvc } from "./fixtures/addsvc-helpers.js";
import { stopProcesses } from "./support.js";

/** The plain client's schema: read from the .proto file, nothing from the example's code. */
const proto = loadProtoSync(protoPath);
const SumRequest = proto.messageType<{ a: bigint; b: bigint }>("pb.SumRequest");
const SumReply = proto.messageType<{ v: bigint; err: string }>("pb.SumReply");
const ConcatRequest = proto.messageType<{ a: string; b: string }>("pb.ConcatRequest");
const ConcatReply = proto.messageType<{ v: string; err: string }>("pb.ConcatReply");

type Plain<T> = { reply: T } | { code: number; details: string };

/** A unary call with a plain grpc-js client: the reply, or the status code and details. */
function plainCall<Req, Res>(
  client: Client,
  method: string,
  serialize: (message: Req) => Buffer,
  deserialize: (bytes: Buffer) => Res,
  request: Req,
  options: CallOptions = {},
): Promise<Plain<Res>> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/pb.Add/${method}`,
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
  return plainCall(client, "Sum", encodeWith(SumRequest), SumReply.decode, { a, b });
}
function plainConcat(client: Client, a: string, b: string) {
  return plainCall(client, "Concat", encodeWith(ConcatRequest), ConcatReply.decode, { a, b });
}
/** The reply's bytes as hex, for a request given as hex. */
async function rawCall(client: Client, method: string, hex: string): Promise<Plain<string>> {
  const out = await plainCall(client, method, raw, raw, Buffer.from(hex.replaceAll(" ", ""), "hex"));
  return "reply" in out ? { reply: out.reply.toString("hex") } : out;
}
const hexOf = (s: string): string => Buffer.from(s).toString("hex");

async function failureOf(call: Promise<unknown>): Promise<ServiceError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}

describe("addsvc over gRPC (no rate limits)", () => {
  let svc: RunningAddsvc;
  let plain: Client;
  let client: AddsvcGrpcClient;

  beforeAll(async () => {
    await ensureBuilt();
    svc = await startAddsvc(["--http-addr", "off", "--jsonrpc-addr", "off", "--debug-addr", "off"]);
    plain = new Client(svc.grpc as string, credentials.createInsecure());
    client = createAddsvcGrpcClient(svc.grpc as string);
  }, 180_000);
  afterAll(async () => {
    plain?.close();
    client?.close();
    await stopProcesses();
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
      expect(await plainSum(plain, -2147483648n, -1n)).toEqual({ reply: { v: 0n, err: "integer overflow" } });
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
      expect((out as { details: string }).details).toMatch(/^invalid pb\.SumRequest message: truncated data/);
    });

    it("an unknown method → UNIMPLEMENTED", async () => {
      expect(await rawCall(plain, "Mul", "")).toEqual({
        code: status.UNIMPLEMENTED,
        details: "The server does not implement the method /pb.Add/Mul",
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

describe("addsvc over gRPC with rate limits and breakers (flags)", () => {
  beforeAll(ensureBuilt, 180_000);
  const clients: Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopProcesses();
  });

  it("a refused call is status RESOURCE_EXHAUSTED (go-kit: UNKNOWN) with the limiter's message", async () => {
    const svc = await startAddsvc(["--sum-rate", "1", "--breaker-calls", "0", "--http-addr", "off"]);
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
    const svc = await startAddsvc(["--sum-rate", "1", "--breaker-calls", "3", "--http-addr", "off"]);
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
    const svc = await startAddsvc(["--breaker-calls", "3", "--http-addr", "off"]);
    const plain = new Client(svc.grpc as string, credentials.createInsecure());
    clients.push(plain);
    for (let i = 0; i < 10; i++) {
      expect(await plainSum(plain, 0n, 0n)).toEqual({ reply: { v: 0n, err: "can't sum two zeroes" } });
    }
    expect(await plainSum(plain, 1n, 1n)).toEqual({ reply: { v: 2n, err: "" } });
  });
});
