// stringsvc as a dual-protocol service: the same endpoints, wrapped once in the same middleware chain,
// served at once over HTTP JSON and gRPC, on real sockets. Each call goes through three clients: the
// svckit HTTP client, the svckit gRPC client and a plain grpc-js client built from the .proto file
// alone (codec-protobuf message types as its serializers, no @grpc/proto-loader), and all three must
// get the same answers and the same error codes and messages.
import { fileURLToPath } from "node:url";
import {
  type CallOptions,
  Client,
  credentials,
  type ServiceError as GrpcServiceError,
  Metadata,
  Server,
  ServerCredentials,
  status,
} from "@grpc/grpc-js";
import { loadProtoSync, parseProto } from "@svckit/codec-protobuf";
import { Code, type CodeName, codeToString, createContext, ServiceError } from "@svckit/endpoint";
import { createGrpcClient } from "@svckit/transport-grpc";
import { createHttpClient, encodeJsonRequest, jsonResponseDecoder } from "@svckit/transport-http";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  makeEndpoints,
  type StringEndpoints,
  type StringRequest,
  type UppercaseResponse,
} from "../examples/stringsvc/src/endpoints.js";
import {
  type CallRecord,
  stringsvcMiddleware,
  withMiddleware,
} from "../examples/stringsvc/src/middleware.js";
import { createStringService, type StringService } from "../examples/stringsvc/src/service.js";
import { createStringsvcClient, createStringsvcRouter } from "../examples/stringsvc/src/transport.js";
import {
  bindStringsvc,
  createStringsvcGrpcClient,
  STRING_SERVICE,
  type StringsvcGrpcClient,
} from "../examples/stringsvc/src/transport-grpc.js";
import { listen, send, type TestServer } from "./support.js";

const PROTO = fileURLToPath(new URL("../examples/stringsvc/proto/stringsvc.proto", import.meta.url));
const SERVICE_PATH = "/stringsvc.v1.StringService";

/** The plain client's view of the schema: read from the .proto file, nothing from the example's code. */
const proto = loadProtoSync(PROTO);
const UppercaseRequest = proto.messageType<{ s: string }>("stringsvc.v1.UppercaseRequest");
const UppercaseReply = proto.messageType<{ v: string }>("stringsvc.v1.UppercaseReply");
const CountRequest = proto.messageType<{ s: string }>("stringsvc.v1.CountRequest");
const CountReply = proto.messageType<{ v: bigint }>("stringsvc.v1.CountReply");

/** What a call ended with, in a form the three clients can be compared in. */
type Outcome = { readonly v: string | number } | { readonly code: CodeName; readonly message: string };

/** The svckit clients' outcome: the response, or the ServiceError's code name and message. */
async function outcomeOf(call: Promise<{ v: string | number }>): Promise<Outcome> {
  try {
    const { v } = await call;
    return { v };
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    return { code: codeToString(err.code), message: err.message };
  }
}

/** A unary call with a plain grpc-js client: the reply, or the status as an Outcome. */
function plainCall<Req, Res>(
  client: Client,
  method: string,
  serialize: (message: Req) => Buffer,
  deserialize: (bytes: Buffer) => Res,
  request: Req,
  options: CallOptions = {},
): Promise<{ reply: Res } | { code: CodeName; message: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `${SERVICE_PATH}/${method}`,
      serialize,
      deserialize,
      request,
      new Metadata(),
      options,
      (err: GrpcServiceError | null, reply?: Res) => {
        if (err) resolve({ code: codeToString(err.code), message: err.details });
        else if (reply === undefined) resolve({ code: "INTERNAL", message: "no reply" });
        else resolve({ reply });
      },
    );
  });
}

const encodeWith =
  <T>(type: { encode(message: T): Uint8Array }) =>
  (message: T): Buffer =>
    Buffer.from(type.encode(message));

/** `Uppercase` and `Count` over the plain grpc-js client, as Outcomes (`int64` bigint → number). */
function plainStringsvc(client: Client, options: CallOptions = {}) {
  return {
    async uppercase(s: string): Promise<Outcome> {
      const out = await plainCall(
        client,
        "Uppercase",
        encodeWith(UppercaseRequest),
        UppercaseReply.decode,
        { s },
        options,
      );
      return "reply" in out ? { v: out.reply.v } : out;
    },
    async count(s: string): Promise<Outcome> {
      const out = await plainCall(
        client,
        "Count",
        encodeWith(CountRequest),
        CountReply.decode,
        { s },
        options,
      );
      return "reply" in out ? { v: Number(out.reply.v) } : out;
    },
  };
}

/** Both transports serving one set of endpoints behind one chain, and a client of each kind. */
interface Stack {
  /** What the shared logging middleware recorded, in order. */
  readonly calls: CallRecord[];
  readonly http: TestServer;
  readonly grpcAddress: string;
  readonly httpClient: StringEndpoints;
  readonly grpcClient: StringsvcGrpcClient;
  readonly plain: Client;
  close(): Promise<void>;
}

async function startStack(svc: StringService, timeoutMs: number): Promise<Stack> {
  const calls: CallRecord[] = [];
  // Composed once; the very same endpoint functions go to both transports.
  const endpoints = withMiddleware(
    makeEndpoints(svc),
    stringsvcMiddleware((call) => calls.push(call), timeoutMs),
  );
  const http = await listen(createStringsvcRouter(endpoints).handle);
  const grpcServer = new Server();
  bindStringsvc(grpcServer, endpoints);
  const port = await new Promise<number>((resolve, reject) => {
    grpcServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  const grpcAddress = `127.0.0.1:${port}`;
  const grpcClient = createStringsvcGrpcClient(grpcAddress);
  const plain = new Client(grpcAddress, credentials.createInsecure());
  return {
    calls,
    http,
    grpcAddress,
    httpClient: createStringsvcClient(http.origin),
    grpcClient,
    plain,
    async close() {
      grpcClient.close();
      plain.close();
      grpcServer.forceShutdown();
      await http.close();
    },
  };
}

/** The outcome of `method(s)` through each of the three clients, in order: HTTP, svckit gRPC, plain grpc-js. */
async function viaStack(stack: Stack, method: "uppercase" | "count", s: string): Promise<Outcome[]> {
  const ctx = createContext({ timeout: 5_000 });
  return [
    await outcomeOf(stack.httpClient[method](ctx, { s })),
    await outcomeOf(stack.grpcClient[method](ctx, { s })),
    await plainStringsvc(stack.plain, { deadline: Date.now() + 5_000 })[method](s),
  ];
}

/** What stringsvc should answer, computed locally. */
const expectedUppercase = (s: string): Outcome =>
  s === "" ? { code: "INVALID_ARGUMENT", message: "empty string" } : { v: s.toUpperCase() };
const expectedCount = (s: string): Outcome => ({ v: [...s].length });

describe("stringsvc over HTTP and gRPC at once", () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack(createStringService(), 5_000);
  });
  afterAll(async () => {
    await stack.close();
  });

  const inputs = ["hello", "straße", "héllo 👋", "a😀b", "日本語", "ǆ ὀδυσσεύς", "", "x".repeat(100_000)];

  it.each(inputs.map((s) => [s.length > 40 ? `${s.slice(0, 10)}… (${s.length})` : s, s]))(
    "uppercase and count of %j: the same answer from all three clients",
    async (_label, s) => {
      expect(await viaStack(stack, "uppercase", s)).toEqual(Array(3).fill(expectedUppercase(s)));
      expect(await viaStack(stack, "count", s)).toEqual(Array(3).fill(expectedCount(s)));
    },
  );

  it('uppercase "" is INVALID_ARGUMENT "empty string" on all three, and HTTP status 400', async () => {
    const error = { code: "INVALID_ARGUMENT", message: "empty string" };
    expect(await viaStack(stack, "uppercase", "")).toEqual([error, error, error]);
    const res = await send(stack.http.port, {
      path: "/uppercase",
      headers: { "content-type": "application/json" },
      body: '{"s":""}',
    });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual(error);
  });

  it("the svckit gRPC client's error is a ServiceError with the code, as over HTTP", async () => {
    const ctx = createContext({ timeout: 5_000 });
    for (const client of [stack.httpClient, stack.grpcClient]) {
      const failure = await client.uppercase(ctx, { s: "" }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(ServiceError);
      expect(failure).toMatchObject({ code: Code.INVALID_ARGUMENT, message: "empty string" });
    }
  });

  it("arbitrary strings get the same answers over HTTP and gRPC", async () => {
    const ctx = createContext({ timeout: 20_000 });
    const plain = plainStringsvc(stack.plain);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: "grapheme", maxLength: 20 }),
          fc.string({ unit: "binary", maxLength: 40 }),
        ),
        async (s) => {
          const upper = expectedUppercase(s);
          expect(await outcomeOf(stack.httpClient.uppercase(ctx, { s }))).toEqual(upper);
          expect(await outcomeOf(stack.grpcClient.uppercase(ctx, { s }))).toEqual(upper);
          expect(await plain.uppercase(s)).toEqual(upper);
          const count = expectedCount(s);
          expect(await outcomeOf(stack.httpClient.count(ctx, { s }))).toEqual(count);
          expect(await outcomeOf(stack.grpcClient.count(ctx, { s }))).toEqual(count);
          expect(await plain.count(s)).toEqual(count);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a lone surrogate: HTTP JSON carries it, gRPC refuses it before sending (proto3 strings are UTF-8)", async () => {
    const s = "a\ud800b";
    const ctx = createContext({ timeout: 5_000 });
    expect(await outcomeOf(stack.httpClient.uppercase(ctx, { s }))).toEqual({ v: "A\ud800B" });
    expect(await outcomeOf(stack.httpClient.count(ctx, { s }))).toEqual({ v: 3 });
    // The svckit client's codec refuses to encode it; a plain grpc-js client whose serializer throws
    // gets grpc-js's own client-side INTERNAL. Nothing invalid reaches the server either way.
    expect(await outcomeOf(stack.grpcClient.uppercase(ctx, { s }))).toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    expect(await plainStringsvc(stack.plain).count(s)).toMatchObject({ code: "INTERNAL" });
  });

  it("the one middleware chain sees the calls of both transports, named by method, transport and code", async () => {
    stack.calls.length = 0;
    const ctx = createContext({ timeout: 5_000 });
    const plain = plainStringsvc(stack.plain);
    await stack.httpClient.uppercase(ctx, { s: "a" });
    await stack.grpcClient.uppercase(ctx, { s: "b" });
    await plain.uppercase("c");
    await outcomeOf(stack.httpClient.uppercase(ctx, { s: "" }));
    await outcomeOf(stack.grpcClient.uppercase(ctx, { s: "" }));
    await stack.httpClient.count(ctx, { s: "d" });
    await plain.count("e");
    const seen = stack.calls.map(({ method, transport, code, error }) => ({
      method,
      transport,
      code,
      error,
    }));
    expect(seen).toEqual([
      { method: "uppercase", transport: "HTTP", code: "OK", error: undefined },
      { method: "uppercase", transport: "gRPC", code: "OK", error: undefined },
      { method: "uppercase", transport: "gRPC", code: "OK", error: undefined },
      { method: "uppercase", transport: "HTTP", code: "INVALID_ARGUMENT", error: "empty string" },
      { method: "uppercase", transport: "gRPC", code: "INVALID_ARGUMENT", error: "empty string" },
      { method: "count", transport: "HTTP", code: "OK", error: undefined },
      { method: "count", transport: "gRPC", code: "OK", error: undefined },
    ]);
    for (const call of stack.calls) expect(call.ms).toBeGreaterThanOrEqual(0);
  });

  it("a malformed protobuf request is INVALID_ARGUMENT naming the message, never reaches the endpoint, and the server goes on", async () => {
    stack.calls.length = 0;
    const raw = (bytes: Buffer): Buffer => bytes;
    const cases: [string, Buffer, RegExp][] = [
      [
        "Uppercase",
        Buffer.from([0x0a, 0x05, 0x61]),
        /^invalid stringsvc\.v1\.UppercaseRequest message: truncated/,
      ],
      ["Count", Buffer.from([0x08, 0x01]), /^invalid stringsvc\.v1\.CountRequest message: .*wire type 0/],
      [
        "Uppercase",
        Buffer.from([0x0a, 0x01, 0xff]),
        /^invalid stringsvc\.v1\.UppercaseRequest message: .*UTF-8/,
      ],
    ];
    for (const [method, bytes, message] of cases) {
      const out = await plainCall(stack.plain, method, raw, raw, bytes);
      expect(out).toMatchObject({ code: "INVALID_ARGUMENT" });
      expect("message" in out ? out.message : "").toMatch(message);
    }
    expect(stack.calls).toEqual([]);
    // The HTTP counterpart, malformed JSON, is INVALID_ARGUMENT too (status 400).
    const res = await send(stack.http.port, {
      path: "/uppercase",
      headers: { "content-type": "application/json" },
      body: '{"s":',
    });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code: "INVALID_ARGUMENT" });
    // Both keep serving.
    expect(await viaStack(stack, "uppercase", "still here")).toEqual(Array(3).fill({ v: "STILL HERE" }));
  });

  it("an unknown gRPC method or service is UNIMPLEMENTED (an unknown HTTP path is 404 NOT_FOUND)", async () => {
    const raw = (bytes: Buffer): Buffer => bytes;
    const reverse = await plainCall(stack.plain, "Reverse", encodeWith(UppercaseRequest), raw, { s: "abc" });
    expect(reverse).toEqual({
      code: "UNIMPLEMENTED",
      message: `The server does not implement the method ${SERVICE_PATH}/Reverse`,
    });
    const otherService = await new Promise<number | undefined>((resolve) => {
      stack.plain.makeUnaryRequest(
        "/stringsvc.v2.StringService/Uppercase",
        encodeWith(UppercaseRequest),
        raw,
        { s: "abc" },
        (err: GrpcServiceError | null) => resolve(err?.code),
      );
    });
    expect(otherService).toBe(status.UNIMPLEMENTED);

    // The svckit gRPC client, built from a newer schema with a method this server does not have.
    const v2 = parseProto(`syntax = "proto3"; package stringsvc.v1;
      service StringService { rpc Reverse (ReverseRequest) returns (ReverseReply); }
      message ReverseRequest { string s = 1; } message ReverseReply { string v = 1; }`);
    const client = new Client(stack.grpcAddress, credentials.createInsecure());
    try {
      const reverseEndpoint = createGrpcClient(
        client,
        v2.service(STRING_SERVICE),
        "Reverse",
        (_ctx, req: StringRequest) => req,
        (_ctx, reply: { v: string }) => reply,
      );
      expect(await outcomeOf(reverseEndpoint(createContext({ timeout: 5_000 }), { s: "abc" }))).toEqual({
        code: "UNIMPLEMENTED",
        message: `The server does not implement the method ${SERVICE_PATH}/Reverse`,
      });
    } finally {
      client.close();
    }

    const httpReverse = createHttpClient<StringRequest, UppercaseResponse>(
      new URL("/reverse", stack.http.origin),
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder<UppercaseResponse>(),
    );
    expect(await outcomeOf(httpReverse(createContext({ timeout: 5_000 }), { s: "abc" }))).toEqual({
      code: "NOT_FOUND",
      message: "no route for POST /reverse",
    });
  });
});

describe("stringsvc deadlines over HTTP and gRPC", () => {
  let release: () => void = () => {};
  let stack: Stack | undefined;
  afterEach(async () => {
    release();
    await stack?.close();
    stack = undefined;
  });

  /** The string service whose `uppercase` hangs until the test ends (it ignores cancellation). */
  function slowService(): StringService {
    const svc = createStringService();
    const stuck = new Promise<void>((resolve) => {
      release = resolve;
    });
    return {
      ...svc,
      async uppercase(s) {
        await stuck;
        return svc.uppercase(s);
      },
    };
  }

  it("the shared timeout middleware answers a slow call with DEADLINE_EXCEEDED on all three clients (HTTP 504)", async () => {
    stack = await startStack(slowService(), 50);
    const ctx = createContext();
    const exceeded: Outcome = { code: "DEADLINE_EXCEEDED", message: "deadline exceeded" };
    expect(await outcomeOf(stack.httpClient.uppercase(ctx, { s: "abc" }))).toEqual(exceeded);
    expect(await outcomeOf(stack.grpcClient.uppercase(ctx, { s: "abc" }))).toEqual(exceeded);
    expect(await plainStringsvc(stack.plain).uppercase("abc")).toEqual(exceeded);
    const res = await send(stack.http.port, {
      path: "/uppercase",
      headers: { "content-type": "application/json" },
      body: '{"s":"abc"}',
    });
    expect(res.status).toBe(504);
    expect(res.json()).toEqual(exceeded);
    // The logging middleware, outside the timeout, saw each of them time out.
    expect(stack.calls.map(({ transport, code }) => `${transport} ${code}`)).toEqual([
      "HTTP DEADLINE_EXCEEDED",
      "gRPC DEADLINE_EXCEEDED",
      "gRPC DEADLINE_EXCEEDED",
      "HTTP DEADLINE_EXCEEDED",
    ]);
    // count is not slow: it still answers, within the same limit.
    expect(await viaStack(stack, "count", "abc")).toEqual(Array(3).fill({ v: 3 }));
  });

  it("a client's own deadline on a slow call is DEADLINE_EXCEEDED on all three clients", async () => {
    stack = await startStack(slowService(), 10_000);
    const code = (outcome: Outcome): string | undefined => ("code" in outcome ? outcome.code : undefined);
    const ctx = (): ReturnType<typeof createContext> => createContext({ timeout: 50 });
    expect(code(await outcomeOf(stack.httpClient.uppercase(ctx(), { s: "abc" })))).toBe("DEADLINE_EXCEEDED");
    expect(code(await outcomeOf(stack.grpcClient.uppercase(ctx(), { s: "abc" })))).toBe("DEADLINE_EXCEEDED");
    const plain = plainStringsvc(stack.plain, { deadline: Date.now() + 50 });
    expect(code(await plain.uppercase("abc"))).toBe("DEADLINE_EXCEEDED");
  });
});
