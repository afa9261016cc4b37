import { Metadata, Server, status } from "@grpc/grpc-js";
import {
  type CallInfo,
  Code,
  callInfoKey,
  codeNames,
  createContextKey,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  bindService,
  createGrpcHandler,
  decodeStatusDetails,
  type GrpcServerFinalizerInfo,
  type GrpcServerOptions,
  type GrpcService,
  type GrpcServiceRegistrar,
  STATUS_DETAILS_KEY,
} from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import {
  aborted,
  ConcatReply,
  ConcatRequest,
  closeAll,
  deferred,
  grpcClient,
  jsonCodec,
  protos,
  rawBytes,
  SumReply,
  SumRequest,
  startServer,
  type UnaryOptions,
  unary,
} from "./test-helpers.js";

afterEach(closeAll);

const add = protos.service("pb.Add");

const sumEndpoint: Endpoint<SumRequest, bigint> = async (_ctx, { a, b }) => a + b;
const concatEndpoint: Endpoint<ConcatRequest, string> = async (_ctx, { a, b }) => a + b;

function sumHandler(endpoint: Endpoint<SumRequest, bigint> = sumEndpoint, options?: GrpcServerOptions) {
  return createGrpcHandler(
    endpoint,
    (_ctx, msg: SumRequest) => msg,
    (_ctx, v: bigint): SumReply => ({ v, err: "" }),
    options,
  );
}

function concatHandler(
  endpoint: Endpoint<ConcatRequest, string> = concatEndpoint,
  options?: GrpcServerOptions,
) {
  return createGrpcHandler(
    endpoint,
    (_ctx, msg: ConcatRequest) => msg,
    (_ctx, v: string): ConcatReply => ({ v, err: "" }),
    options,
  );
}

/** Serves pb.Add with `sum` (and the default Concat) and returns a plain grpc-js client to it. */
async function serveSum(
  sum: Endpoint<SumRequest, bigint> = sumEndpoint,
  options?: GrpcServerOptions,
  serviceOptions?: GrpcServerOptions,
) {
  const { address } = await startServer((server) =>
    bindService(server, add, { Sum: sumHandler(sum, options), Concat: concatHandler() }, serviceOptions),
  );
  return grpcClient(address);
}

function callSum(client: ReturnType<typeof grpcClient>, request: SumRequest, options?: UnaryOptions) {
  return unary(client, "/pb.Add/Sum", SumRequest, SumReply, request, options);
}

/** Checks that the server still answers a good call. */
async function expectServing(client: ReturnType<typeof grpcClient>): Promise<void> {
  const res = await callSum(client, { a: 20n, b: 22n });
  expect(res.status.code).toBe(status.OK);
  expect(res.value).toEqual({ v: 42n, err: "" });
}

/** An endpoint that throws `error`. */
function failing(error: unknown): Endpoint<SumRequest, bigint> {
  return async () => {
    throw error;
  };
}

describe("createGrpcHandler + bindService: success", () => {
  it("answers a plain grpc-js client with the encoded response", async () => {
    const client = await serveSum();
    const res = await callSum(client, { a: 1n, b: 2n });
    expect(res.error).toBeNull();
    expect(res.status.code).toBe(status.OK);
    expect(res.value).toEqual({ v: 3n, err: "" });
    const concat = await unary(client, "/pb.Add/Concat", ConcatRequest, ConcatReply, { a: "ab", b: "cd" });
    expect(concat.value).toEqual({ v: "abcd", err: "" });
  });

  it("puts the call's transport and full method in the context under callInfoKey", async () => {
    const seen: (CallInfo | undefined)[] = [];
    const client = await serveSum(async (ctx, { a, b }) => {
      seen.push(ctx.value(callInfoKey));
      return a + b;
    });
    await callSum(client, { a: 1n, b: 2n });
    await callSum(client, { a: 3n, b: 4n });
    expect(seen).toEqual([
      { transport: "grpc", method: "/pb.Add/Sum" },
      { transport: "grpc", method: "/pb.Add/Sum" },
    ]);
    expect(Object.isFrozen(seen[0])).toBe(true);
  });

  it("keeps int64 values above 2^53 exact both ways", async () => {
    const client = await serveSum();
    const a = 2n ** 62n + 1n;
    const res = await callSum(client, { a, b: 2n ** 60n + 3n });
    expect(res.value?.v).toBe(2n ** 62n + 2n ** 60n + 4n);
    const negative = await callSum(client, { a: -(2n ** 63n), b: 1n });
    expect(negative.value?.v).toBe(-(2n ** 63n) + 1n);
  });

  it("lets decode and encode be async and reshape messages", async () => {
    const handler = createGrpcHandler(
      async (_ctx, req: { total: number }) => ({ doubled: req.total * 2 }),
      async (_ctx, msg: SumRequest) => ({ total: Number(msg.a + msg.b) }),
      async (_ctx, res: { doubled: number }): Promise<SumReply> => ({ v: BigInt(res.doubled), err: "async" }),
    );
    const { address } = await startServer((server) => bindService(server, add, { Sum: handler }));
    const res = await callSum(grpcClient(address), { a: 2n, b: 3n });
    expect(res.value).toEqual({ v: 10n, err: "async" });
  });

  it("accepts any structural codec (here JSON) through a hand-written service", async () => {
    const jsonService: GrpcService = {
      name: "json.Echo",
      methods: {
        Echo: {
          name: "Echo",
          path: "/json.Echo/Echo",
          requestType: jsonCodec<{ text: string }>(),
          responseType: jsonCodec<{ echoed: string }>(),
          requestStream: false,
          responseStream: false,
        },
      },
    };
    const handler = createGrpcHandler(
      async (_ctx, text: string) => text.toUpperCase(),
      (_ctx, msg: { text: string }) => msg.text,
      (_ctx, echoed: string) => ({ echoed }),
    );
    const { address } = await startServer((server) => bindService(server, jsonService, { Echo: handler }));
    const client = grpcClient(address);
    const codec = jsonCodec<{ text: string }>();
    const res = await unary(client, "/json.Echo/Echo", codec, jsonCodec<{ echoed: string }>(), {
      text: "hi",
    });
    expect(res.value).toEqual({ echoed: "HI" });
    // JSON.parse's SyntaxError becomes INVALID_ARGUMENT, and the server keeps serving.
    const bad = await unary(client, "/json.Echo/Echo", rawBytes, rawBytes, Buffer.from("{nope"));
    expect(bad.status.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.status.details).toBe("invalid request message for /json.Echo/Echo");
    expect((await unary(client, "/json.Echo/Echo", codec, codec, { text: "ok" })).status.code).toBe(
      status.OK,
    );
  });
});

describe("metadata and context", () => {
  it("puts the incoming metadata in ctx.metadata, -bin values as base64", async () => {
    let seen: Record<string, string | string[]> = {};
    const client = await serveSum(async (ctx, { a, b }) => {
      seen = ctx.metadata.toRecord();
      return a + b;
    });
    const md = new Metadata();
    md.add("x-tenant", "acme");
    md.add("x-multi", "one");
    md.add("x-multi", "two");
    md.add("trace-bin", Buffer.from([0, 1, 2, 255]));
    await callSum(client, { a: 1n, b: 1n }, { metadata: md });
    expect(seen["x-tenant"]).toBe("acme");
    // grpc-js (like HTTP/2) combines a repeated text key into one comma-separated value.
    expect(seen["x-multi"]).toBe("one, two");
    expect(Buffer.from(seen["trace-bin"] as string, "base64")).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  it("sets ctx.deadline from the call's deadline, and none without one", async () => {
    const deadlines: (number | undefined)[] = [];
    const client = await serveSum(async (ctx, { a, b }) => {
      deadlines.push(ctx.deadline);
      return a + b;
    });
    const deadline = Date.now() + 5_000;
    await callSum(client, { a: 1n, b: 1n }, { deadline });
    await callSum(client, { a: 1n, b: 1n });
    expect(deadlines).toHaveLength(2);
    expect(deadlines[0]).toBeGreaterThan(deadline - 1_000);
    expect(deadlines[0]).toBeLessThanOrEqual(deadline + 50);
    expect(deadlines[1]).toBeUndefined();
  });

  it("sends after's header and trailer; a header only when one was set", async () => {
    const options: GrpcServerOptions = {
      after: [
        (_ctx, header, trailer) => {
          header.set("x-header", "h");
          trailer.set("x-trailer", "t");
          trailer.set("x-trailer-bin", Buffer.from([9, 8]));
          return undefined;
        },
      ],
    };
    const client = await serveSum(sumEndpoint, options);
    const res = await callSum(client, { a: 1n, b: 2n });
    expect(res.header?.get("x-header")).toEqual(["h"]);
    expect(res.status.metadata.get("x-trailer")).toEqual(["t"]);
    expect(res.status.metadata.get("x-trailer-bin")).toEqual([Buffer.from([9, 8])]);

    const onlyTrailer = await serveSum(sumEndpoint, {
      after: [
        (_ctx, _header, trailer) => {
          trailer.set("x-t", "1");
          return undefined;
        },
      ],
    });
    const res2 = await callSum(onlyTrailer, { a: 1n, b: 2n });
    expect(res2.value?.v).toBe(3n);
    expect(res2.header?.get("x-header") ?? []).toEqual([]);
    expect(res2.status.metadata.get("x-t")).toEqual(["1"]);
  });
});

describe("errors", () => {
  const codes = Object.values(Code).filter((c) => c !== Code.OK);

  it.each(codes)(
    "ServiceError code %i reaches a grpc-js client as the same status and message",
    async (code) => {
      const client = await serveSum(failing(new ServiceError(code, `failed with ${codeNames[code]}`)));
      const res = await callSum(client, { a: 1n, b: 2n });
      expect(res.status.code).toBe(code);
      expect(res.status.details).toBe(`failed with ${codeNames[code]}`);
      expect(res.error?.code).toBe(code);
      expect(res.value).toBeUndefined();
    },
  );

  it("keeps a message with non-ASCII text and percent signs", async () => {
    const message = "ünïcödé 100% sure: a/b?c=d #1 😀";
    const client = await serveSum(failing(new ServiceError(Code.NOT_FOUND, message)));
    const res = await callSum(client, { a: 1n, b: 2n });
    expect(res.status.details).toBe(message);
  });

  it("sends byte details in grpc-status-details-bin as a google.rpc.Status; other details stay home", async () => {
    const detail = { type: "google.rpc.BadRequest", value: Uint8Array.from([10, 3, 10, 1, 97]) };
    const client = await serveSum(
      failing(
        new ServiceError(Code.INVALID_ARGUMENT, "a is bad", {
          details: [detail, { type: "json.only", value: { not: "bytes" } }],
        }),
      ),
    );
    const res = await callSum(client, { a: 1n, b: 2n });
    expect(res.status.code).toBe(status.INVALID_ARGUMENT);
    const raw = res.status.metadata.get(STATUS_DETAILS_KEY)[0];
    expect(raw).toBeInstanceOf(Buffer);
    expect(decodeStatusDetails(raw as Buffer)).toEqual({
      code: Code.INVALID_ARGUMENT,
      message: "a is bad",
      details: [detail],
    });

    const plain = await serveSum(failing(new ServiceError(Code.NOT_FOUND, "none", { details: [] })));
    expect((await callSum(plain, { a: 1n, b: 2n })).status.metadata.get(STATUS_DETAILS_KEY)).toEqual([]);
  });

  it("sends the error's metadata as trailers, skipping reserved keys", async () => {
    const client = await serveSum(
      failing(
        new ServiceError(Code.UNAVAILABLE, "later", {
          metadata: { "retry-after": "3", "grpc-status": "0", "x-bin": Buffer.from("hi").toString("base64") },
        }),
      ),
    );
    const res = await callSum(client, { a: 1n, b: 2n });
    expect(res.status.code).toBe(status.UNAVAILABLE);
    expect(res.status.metadata.get("retry-after")).toEqual(["3"]);
    expect(res.status.metadata.get("x-bin")).toEqual([Buffer.from("hi")]);
  });

  it("answers an error carrying HTTP/1 connection headers (an HTTP upstream's), without them, and keeps serving", async () => {
    // node:http2 throws on connection-specific headers; the process crashed on this answer.
    const client = await serveSum(
      failing(
        new ServiceError(Code.UNAVAILABLE, "upstream busy", {
          metadata: {
            upgrade: "h2,h2c",
            "proxy-connection": "keep-alive",
            "http2-settings": "x",
            "x-up": "1",
          },
        }),
      ),
    );
    for (let i = 0; i < 2; i++) {
      const res = await callSum(client, { a: 1n, b: 2n });
      expect(res.status.code).toBe(status.UNAVAILABLE);
      expect(res.status.details).toBe("upstream busy");
      expect(res.status.metadata.get("x-up")).toEqual(["1"]);
      expect(res.status.metadata.get("upgrade")).toEqual([]);
    }
  });

  it("answers a thrown plain Error with INTERNAL 'internal error' and never leaks its message", async () => {
    const told: ServiceError[] = [];
    const secret = new Error("db password is hunter2");
    const client = await serveSum(failing(secret), { errorHandler: (_ctx, err) => told.push(err) });
    const res = await callSum(client, { a: 1n, b: 2n });
    expect(res.status.code).toBe(status.INTERNAL);
    expect(res.status.details).toBe("internal error");
    expect(JSON.stringify(res.status.metadata.toJSON())).not.toContain("hunter2");
    expect(told).toHaveLength(1);
    expect(told[0]?.code).toBe(Code.INTERNAL);
    expect(told[0]?.cause).toBe(secret);
  });

  it("answers thrown non-Error values with INTERNAL too", async () => {
    for (const thrown of ["a string", 42, null, undefined, { code: 5 }]) {
      const client = await serveSum(failing(thrown));
      const res = await callSum(client, { a: 1n, b: 2n });
      expect({ thrown, code: res.status.code, details: res.status.details }).toEqual({
        thrown,
        code: status.INTERNAL,
        details: "internal error",
      });
    }
  });

  it("uses the code of a ServiceError thrown by decode, encode or before", async () => {
    const rejectNegative = createGrpcHandler(
      sumEndpoint,
      (_ctx, msg: SumRequest) => {
        if (msg.a < 0n) throw new ServiceError(Code.OUT_OF_RANGE, "a must not be negative");
        return msg;
      },
      (_ctx, v: bigint): SumReply => {
        if (v === 13n) throw new ServiceError(Code.FAILED_PRECONDITION, "unlucky");
        return { v, err: "" };
      },
      {
        before: [
          (ctx, md) => {
            if (md.get("authorization").length === 0 && md.get("x-anonymous").length === 0) {
              throw new ServiceError(Code.UNAUTHENTICATED, "who are you?");
            }
            return ctx;
          },
        ],
      },
    );
    const { address } = await startServer((server) => bindService(server, add, { Sum: rejectNegative }));
    const client = grpcClient(address);
    const md = new Metadata();
    md.set("x-anonymous", "yes");
    const results = await Promise.all([
      callSum(client, { a: 1n, b: 2n }),
      callSum(client, { a: -1n, b: 2n }, { metadata: md }),
      callSum(client, { a: 6n, b: 7n }, { metadata: md }),
      callSum(client, { a: 6n, b: 8n }, { metadata: md }),
    ]);
    expect(results.map((r) => [r.status.code, r.status.details])).toEqual([
      [status.UNAUTHENTICATED, "who are you?"],
      [status.OUT_OF_RANGE, "a must not be negative"],
      [status.FAILED_PRECONDITION, "unlucky"],
      [status.OK, "OK"],
    ]);
  });

  it("answers every mix of plain and promised decode/endpoint/encode results, and their failures", async () => {
    type Step = "value" | "promise" | "throw" | "reject";
    const run = <T>(step: Step, value: T, code: Code): T | Promise<T> => {
      const error = new ServiceError(code, `${codeNames[code]} at ${step}`);
      if (step === "throw") throw error;
      if (step === "reject") return Promise.reject(error);
      return step === "promise" ? Promise.resolve(value) : value;
    };
    const steps: Step[] = ["value", "promise", "throw", "reject"];
    for (const d of steps) {
      for (const e of steps) {
        for (const c of steps) {
          const finalized: Code[] = [];
          const handler = createGrpcHandler(
            // A plain-JS endpoint may return a value or throw synchronously.
            ((_ctx: unknown, msg: SumRequest) => run(e, msg.a + msg.b, Code.ABORTED)) as unknown as Endpoint<
              SumRequest,
              bigint
            >,
            (_ctx, msg: SumRequest) => run(d, msg, Code.OUT_OF_RANGE),
            (_ctx, v: bigint) => run(c, { v, err: "" } as SumReply, Code.DATA_LOSS),
            { finalizer: (_ctx, info) => finalized.push(info.code) },
          );
          const { address } = await startServer((server) => bindService(server, add, { Sum: handler }));
          const res = await callSum(grpcClient(address), { a: 2n, b: 3n });
          const expected =
            d === "throw" || d === "reject"
              ? [status.OUT_OF_RANGE, `OUT_OF_RANGE at ${d}`]
              : e === "throw" || e === "reject"
                ? [status.ABORTED, `ABORTED at ${e}`]
                : c === "throw" || c === "reject"
                  ? [status.DATA_LOSS, `DATA_LOSS at ${c}`]
                  : [status.OK, "OK"];
          expect([res.status.code, res.status.details], `decode ${d}, endpoint ${e}, encode ${c}`).toEqual(
            expected,
          );
          if (expected[0] === status.OK) expect(res.value).toEqual({ v: 5n, err: "" });
          expect(finalized).toEqual([expected[0]]);
          closeAll();
        }
      }
    }
  });

  it("answers INTERNAL when the response does not fit the response message", async () => {
    const handler = createGrpcHandler(
      sumEndpoint,
      (_ctx, msg: SumRequest) => msg,
      // A string in an int64 field that is not a number.
      (_ctx, _v: bigint) => ({ v: "not a number", err: "" }),
    );
    const { address } = await startServer((server) => bindService(server, add, { Sum: handler }));
    const client = grpcClient(address);
    const res = await callSum(client, { a: 1n, b: 2n });
    expect(res.status.code).toBe(status.INTERNAL);
    expect(res.status.details).toBe("response message could not be encoded");
  });
});

describe("bad input", () => {
  it("answers malformed request bytes with INVALID_ARGUMENT naming the message, then keeps serving", async () => {
    let calls = 0;
    const client = await serveSum(async (_ctx, { a, b }) => {
      calls++;
      return a + b;
    });
    for (const bytes of [[0xff, 0xff, 0xff], [0x08], [0x0a, 0x05, 0x01], [0x0f]]) {
      const res = await unary(client, "/pb.Add/Sum", rawBytes, rawBytes, Buffer.from(bytes));
      expect(res.status.code).toBe(status.INVALID_ARGUMENT);
      expect(res.status.details).toMatch(/^invalid pb\.SumRequest message: /);
      await expectServing(client);
    }
    expect(calls).toBe(4);
  });

  it("answers unknown methods and services with UNIMPLEMENTED, then keeps serving", async () => {
    const { address } = await startServer((server) => bindService(server, add, { Sum: sumHandler() }));
    const client = grpcClient(address);
    for (const path of ["/pb.Add/Nope", "/pb.Nope/Sum", "/pb.Add/Concat", "/nothing"]) {
      const res = await unary(client, path, rawBytes, rawBytes, Buffer.alloc(0));
      expect({ path, code: res.status.code }).toEqual({ path, code: status.UNIMPLEMENTED });
      await expectServing(client);
    }
  });

  it("answers a message over grpc.max_receive_message_length with RESOURCE_EXHAUSTED, then keeps serving", async () => {
    let calls = 0;
    const { address } = await startServer(
      (server) =>
        bindService(server, add, {
          Sum: sumHandler(),
          Concat: concatHandler(async (_ctx, { a, b }) => {
            calls++;
            return a + b;
          }),
        }),
      { "grpc.max_receive_message_length": 1024 },
    );
    const client = grpcClient(address);
    const big = await unary(client, "/pb.Add/Concat", ConcatRequest, ConcatReply, {
      a: "x".repeat(4096),
      b: "",
    });
    expect(big.status.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(calls).toBe(0);
    await expectServing(client);
    const small = await unary(client, "/pb.Add/Concat", ConcatRequest, ConcatReply, {
      a: "x".repeat(900),
      b: "",
    });
    expect(small.value?.v).toHaveLength(900);
    expect(calls).toBe(1);
  });
});

describe("deadlines and cancellation", () => {
  it("answers DEADLINE_EXCEEDED to a slow endpoint's caller and aborts the endpoint's ctx.signal", async () => {
    const reason = deferred<unknown>();
    const finalized = deferred<GrpcServerFinalizerInfo>();
    // Only 1 + 2 is slow, so that the server can show it still answers.
    const client = await serveSum(
      async (ctx, { a, b }) => {
        if (a !== 1n) return a + b;
        await aborted(ctx.signal);
        reason.resolve(ctx.signal.reason);
        throw ctx.signal.reason;
      },
      { finalizer: (_ctx, info) => finalized.resolve(info) },
    );
    const res = await callSum(client, { a: 1n, b: 2n }, { deadline: Date.now() + 100 });
    expect(res.status.code).toBe(status.DEADLINE_EXCEEDED);
    const why = await reason.promise;
    expect(why).toBeInstanceOf(ServiceError);
    expect((why as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect((await finalized.promise).code).toBe(Code.DEADLINE_EXCEEDED);
    await expectServing(client);
  });

  it("tells the finalizer DEADLINE_EXCEEDED when an endpoint that ignores its signal answers after the deadline", async () => {
    const finalized = deferred<GrpcServerFinalizerInfo>();
    const errors: Code[] = [];
    const client = await serveSum(
      async (_ctx, { a, b }) => {
        if (a !== 1n) return a + b;
        await new Promise((resolve) => setTimeout(resolve, 250));
        return a + b;
      },
      {
        finalizer: (_ctx, info) => finalized.resolve(info),
        errorHandler: (_ctx, err) => errors.push(err.code),
      },
    );
    const res = await callSum(client, { a: 1n, b: 2n }, { deadline: Date.now() + 100 });
    expect(res.status.code).toBe(status.DEADLINE_EXCEEDED);
    const info = await finalized.promise;
    expect(info.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(errors).toEqual([Code.DEADLINE_EXCEEDED]);
    await expectServing(client);
  });

  it("aborts ctx.signal with CANCELLED when the client cancels", async () => {
    const started = deferred<void>();
    const reason = deferred<unknown>();
    const finalized = deferred<GrpcServerFinalizerInfo>();
    const client = await serveSum(
      async (ctx, { a, b }) => {
        if (a !== 1n) return a + b;
        started.resolve();
        await aborted(ctx.signal);
        reason.resolve(ctx.signal.reason);
        throw ctx.signal.reason;
      },
      { finalizer: (_ctx, info) => finalized.resolve(info) },
    );
    const call = client.makeUnaryRequest(
      "/pb.Add/Sum",
      (m: SumRequest) => Buffer.from(SumRequest.encode(m)),
      (b: Buffer) => SumReply.decode(b),
      { a: 1n, b: 2n },
      () => undefined,
    );
    const clientStatus = new Promise<number>((resolve) =>
      call.on("status", (s: { code: number }) => resolve(s.code)),
    );
    await started.promise;
    call.cancel();
    const why = await reason.promise;
    expect(why).toBeInstanceOf(ServiceError);
    expect((why as ServiceError).code).toBe(Code.CANCELLED);
    expect(await clientStatus).toBe(status.CANCELLED);
    const info = await finalized.promise;
    expect(info.code).toBe(Code.CANCELLED);
    await expectServing(client);
  });
});

describe("options: before, after, errorHandler, finalizer", () => {
  const tenantKey = createContextKey<string | undefined>(undefined, { description: "tenant" });

  it("runs before in order on the raw metadata, and the endpoint sees the derived context", async () => {
    const order: string[] = [];
    let tenant: string | undefined;
    const client = await serveSum(
      async (ctx, { a, b }) => {
        order.push("endpoint");
        tenant = ctx.value(tenantKey);
        return a + b;
      },
      {
        before: [
          (ctx, md) => {
            order.push("before 1");
            expect(md).toBeInstanceOf(Metadata);
            return ctx.with(tenantKey, String(md.get("x-tenant")[0]));
          },
          (ctx) => {
            order.push(`before 2 sees ${ctx.value(tenantKey)}`);
            return undefined;
          },
        ],
        after: [
          (ctx) => {
            order.push(`after sees ${ctx.value(tenantKey)}`);
            return undefined;
          },
        ],
        finalizer: (ctx, info) => order.push(`finalizer ${ctx.value(tenantKey)} ${info.code}`),
      },
    );
    const md = new Metadata();
    md.set("x-tenant", "acme");
    await callSum(client, { a: 1n, b: 2n }, { metadata: md });
    expect(tenant).toBe("acme");
    expect(order).toEqual([
      "before 1",
      "before 2 sees acme",
      "endpoint",
      "after sees acme",
      "finalizer acme 0",
    ]);
  });

  it("skips after on errors; errorHandler and finalizer see the error", async () => {
    const seen: string[] = [];
    let info: GrpcServerFinalizerInfo | undefined;
    const error = new ServiceError(Code.NOT_FOUND, "no such sum");
    const client = await serveSum(failing(error), {
      after: [
        () => {
          seen.push("after");
          return undefined;
        },
      ],
      errorHandler: (_ctx, err) => seen.push(`errorHandler ${err.message}`),
      finalizer: (_ctx, i) => {
        seen.push("finalizer");
        info = i;
      },
    });
    const res = await callSum(client, { a: 1n, b: 2n });
    expect(res.status.code).toBe(status.NOT_FOUND);
    expect(seen).toEqual(["errorHandler no such sum", "finalizer"]);
    expect(info).toEqual({ method: "/pb.Add/Sum", code: Code.NOT_FOUND, error });
  });

  it("finalizer reports OK and no error for a good call; a list of finalizers all run", async () => {
    const infos: GrpcServerFinalizerInfo[] = [];
    const client = await serveSum(sumEndpoint, {
      finalizer: [(_ctx, i) => infos.push(i), (_ctx, i) => infos.push(i)],
    });
    await callSum(client, { a: 1n, b: 2n });
    await expect.poll(() => infos.length).toBe(2);
    expect(infos[0]).toEqual({ method: "/pb.Add/Sum", code: Code.OK, error: undefined });
    expect(infos[1]).toBe(infos[0]);
  });

  it("merges bindService defaults with each handler's options: service hooks first, own errorHandler wins", async () => {
    const order: string[] = [];
    const serviceOptions: GrpcServerOptions = {
      before: [
        () => {
          order.push("service before");
          return undefined;
        },
      ],
      after: [
        () => {
          order.push("service after");
          return undefined;
        },
      ],
      errorHandler: (_ctx, err) => order.push(`service errorHandler ${err.code}`),
      finalizer: (_ctx, info) => order.push(`service finalizer ${info.method}`),
    };
    const own: GrpcServerOptions = {
      before: [
        () => {
          order.push("own before");
          return undefined;
        },
      ],
      after: [
        () => {
          order.push("own after");
          return undefined;
        },
      ],
      errorHandler: (_ctx, err) => order.push(`own errorHandler ${err.code}`),
      finalizer: [(_ctx, info) => order.push(`own finalizer ${info.code}`)],
    };
    const { address } = await startServer((server) =>
      bindService(
        server,
        add,
        {
          Sum: sumHandler(sumEndpoint, own),
          Concat: concatHandler(async () => {
            throw new ServiceError(Code.ABORTED, "no");
          }),
        },
        serviceOptions,
      ),
    );
    const client = grpcClient(address);
    await callSum(client, { a: 1n, b: 2n });
    await expect.poll(() => order.length).toBe(6);
    expect(order).toEqual([
      "service before",
      "own before",
      "service after",
      "own after",
      "service finalizer /pb.Add/Sum",
      "own finalizer 0",
    ]);
    order.length = 0;
    // Concat has no options of its own: the service's apply alone.
    await unary(client, "/pb.Add/Concat", ConcatRequest, ConcatReply, { a: "a", b: "b" });
    await expect.poll(() => order.length).toBe(3);
    expect(order).toEqual(["service before", "service errorHandler 10", "service finalizer /pb.Add/Concat"]);
    order.length = 0;
    const failingOwn = await serveSum(failing(new ServiceError(Code.DATA_LOSS, "lost")), own, serviceOptions);
    await callSum(failingOwn, { a: 1n, b: 2n });
    await expect.poll(() => order.length).toBe(5);
    expect(order).toEqual([
      "service before",
      "own before",
      "own errorHandler 15",
      "service finalizer /pb.Add/Sum",
      "own finalizer 15",
    ]);
  });

  it("still answers, and runs the finalizer, when an errorHandler throws", async () => {
    const finalized: GrpcServerFinalizerInfo[] = [];
    const client = await serveSum(
      async (_ctx, { a, b }) => {
        if (a < 0n) throw new ServiceError(Code.OUT_OF_RANGE, "negative");
        return a + b;
      },
      {
        errorHandler: () => {
          throw new Error("errorHandler broke");
        },
        finalizer: (_ctx, info) => finalized.push(info),
      },
    );
    const res = await callSum(client, { a: -1n, b: 1n }, { deadline: Date.now() + 5_000 });
    expect([res.status.code, res.status.details]).toEqual([status.OUT_OF_RANGE, "negative"]);
    await expect.poll(() => finalized.length).toBe(1);
    expect(finalized[0]?.code).toBe(Code.OUT_OF_RANGE);
    await expectServing(client);
  });

  it("still answers, and keeps serving, when a finalizer throws", async () => {
    const client = await serveSum(
      async (_ctx, { a, b }) => {
        if (a < 0n) throw new ServiceError(Code.OUT_OF_RANGE, "negative");
        return a + b;
      },
      {
        finalizer: () => {
          throw new Error("finalizer broke");
        },
      },
    );
    await expectServing(client);
    const res = await callSum(client, { a: -1n, b: 1n }, { deadline: Date.now() + 5_000 });
    expect(res.status.code).toBe(status.OUT_OF_RANGE);
    await expectServing(client);
  });
});

describe("bindService", () => {
  it("takes any object with grpc-js's addService (a GrpcServiceRegistrar), not only a grpc-js Server", () => {
    const added: { paths: string[]; methods: string[] }[] = [];
    const registrar: GrpcServiceRegistrar = {
      addService(definition, implementation) {
        added.push({
          paths: Object.values(definition).map((method) => method.path),
          methods: Object.keys(implementation),
        });
      },
    };
    bindService(registrar, add, { Sum: sumHandler(), Concat: concatHandler() });
    expect(added).toEqual([{ paths: ["/pb.Add/Sum", "/pb.Add/Concat"], methods: ["Sum", "Concat"] }]);
    // A grpc-js Server is one as it is.
    const server: GrpcServiceRegistrar = new Server();
    expect(() => bindService(server, add, { Sum: sumHandler() })).not.toThrow();
  });

  it("throws for a handler whose method the service does not have, naming the ones it has", () => {
    expect(() => bindService(new Server(), add, { Sub: sumHandler() })).toThrow(
      "bindService: pb.Add has no method Sub (it has: Sum, Concat)",
    );
  });

  it("leaves the grpc-js server able to serve other services", async () => {
    const { address } = await startServer((server) => {
      bindService(server, add, { Sum: sumHandler() });
      server.addService(
        {
          Ping: {
            path: "/other.Ping/Ping",
            requestStream: false,
            responseStream: false,
            requestSerialize: (v: Buffer) => v,
            requestDeserialize: (v: Buffer) => v,
            responseSerialize: (v: Buffer) => v,
            responseDeserialize: (v: Buffer) => v,
          },
        },
        {
          Ping: (_call: unknown, callback: (err: null, value: Buffer) => void) =>
            callback(null, Buffer.from("pong")),
        },
      );
    });
    const client = grpcClient(address);
    const pong = await unary(client, "/other.Ping/Ping", rawBytes, rawBytes, Buffer.from("ping"));
    expect(pong.value?.toString()).toBe("pong");
    await expectServing(client);
  });
});
