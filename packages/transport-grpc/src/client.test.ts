import { getEventListeners } from "node:events";
import {
  type Client,
  type handleUnaryCall,
  Metadata,
  type ServerUnaryCall,
  type ServiceDefinition,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  background,
  Code,
  codeNames,
  createContext,
  createContextKey,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  createGrpcClient,
  encodeStatusDetails,
  type GrpcClientFinalizerInfo,
  type GrpcClientOptions,
  STATUS_DETAILS_KEY,
} from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import {
  ConcatReply,
  ConcatRequest,
  closeAll,
  deferred,
  freePort,
  grpcClient,
  protos,
  SumReply,
  SumRequest,
  startServer,
} from "./test-helpers.js";

afterEach(closeAll);

const add = protos.service("pb.Add");

/** pb.Add for a plain grpc-js server, with hand-written (de)serializers from the codec. */
const addDefinition: ServiceDefinition = {
  Sum: {
    path: "/pb.Add/Sum",
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: SumRequest) => Buffer.from(SumRequest.encode(m)),
    requestDeserialize: (b: Buffer) => SumRequest.decode(b),
    responseSerialize: (m: SumReply) => Buffer.from(SumReply.encode(m)),
    responseDeserialize: (b: Buffer) => SumReply.decode(b),
  },
  Concat: {
    path: "/pb.Add/Concat",
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: ConcatRequest) => Buffer.from(ConcatRequest.encode(m)),
    requestDeserialize: (b: Buffer) => ConcatRequest.decode(b),
    responseSerialize: (m: ConcatReply) => Buffer.from(ConcatReply.encode(m)),
    responseDeserialize: (b: Buffer) => ConcatReply.decode(b),
  },
};

const plainSum: handleUnaryCall<SumRequest, SumReply> = (call, callback) =>
  callback(null, { v: call.request.a + call.request.b, err: "" });
const plainConcat: handleUnaryCall<ConcatRequest, ConcatReply> = (call, callback) =>
  callback(null, { v: call.request.a + call.request.b, err: "" });

/** A plain grpc-js server for pb.Add; returns a grpc-js Client to it (closed after the test). */
async function plainServer(sum: handleUnaryCall<SumRequest, SumReply> = plainSum): Promise<Client> {
  const implementation: UntypedServiceImplementation = { Sum: sum, Concat: plainConcat };
  const { address } = await startServer((server) => server.addService(addDefinition, implementation));
  return grpcClient(address);
}

interface Sum {
  a: number | bigint;
  b: number | bigint;
}

/** A svckit Sum client: numbers in, the bigint sum out. */
function sumClient(target: Client | string, options?: GrpcClientOptions): Endpoint<Sum, bigint> {
  return createGrpcClient(
    target,
    add,
    "Sum",
    (_ctx, req: Sum): SumRequest => ({ a: BigInt(req.a), b: BigInt(req.b) }),
    (_ctx, reply: SumReply) => reply.v,
    options,
  );
}

/** Calls `fn` and returns the ServiceError it rejects with. */
async function failure(fn: () => Promise<unknown>): Promise<ServiceError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceError);
    return err as ServiceError;
  }
  throw new Error("expected a rejection");
}

describe("createGrpcClient: success", () => {
  it("calls a plain grpc-js server and decodes the reply", async () => {
    const client = await plainServer();
    const sum = sumClient(client);
    expect(await sum(background, { a: 1, b: 2 })).toBe(3n);
    const concat = createGrpcClient(
      client,
      add,
      "Concat",
      (_ctx, req: { a: string; b: string }) => req,
      (_ctx, reply: ConcatReply) => reply.v,
    );
    expect(await concat(background, { a: "foo", b: "bar" })).toBe("foobar");
  });

  it("keeps int64 values above 2^53 exact", async () => {
    const sum = sumClient(await plainServer());
    expect(await sum(background, { a: 2n ** 53n + 1n, b: 2n ** 62n })).toBe(2n ** 53n + 1n + 2n ** 62n);
    expect(await sum(background, { a: 2n ** 63n - 2n, b: 1n })).toBe(2n ** 63n - 1n);
  });

  it("makes its own channel from an address", async () => {
    const { address } = await startServer((server) =>
      server.addService(addDefinition, { Sum: plainSum, Concat: plainConcat }),
    );
    const sum = sumClient(address);
    expect(await sum(background, { a: 40, b: 2 })).toBe(42n);
  });

  it("adds no abort listener per call to the caller's context, however many calls run at once", async () => {
    const waiting: (() => void)[] = [];
    const allArrived = deferred<void>();
    const sum = sumClient(
      await plainServer((call, callback) => {
        waiting.push(() => plainSum(call, callback));
        if (waiting.length === 60) allArrived.resolve();
      }),
    );
    const owner = new AbortController();
    const longLived = createContext({ signal: owner.signal, timeout: 60_000 });
    const before = getEventListeners(longLived.signal, "abort").length;
    const backgroundBefore = getEventListeners(background.signal, "abort").length;
    const calls = [
      ...Array.from({ length: 30 }, (_, i) => sum(longLived, { a: i, b: 1 })),
      ...Array.from({ length: 30 }, (_, i) => sum(background, { a: i, b: 1 })),
    ];
    await allArrived.promise;
    expect(getEventListeners(longLived.signal, "abort").length).toBe(before);
    expect(getEventListeners(background.signal, "abort").length).toBe(backgroundBefore);
    for (const answer of waiting) answer();
    expect(await Promise.all(calls)).toHaveLength(60);
    // ...and cancelling the context still cancels calls made with it.
    const hanging = await plainServer(() => owner.abort());
    const err = await failure(() => sumClient(hanging)(longLived, { a: 1, b: 2 }));
    expect(err.code).toBe(Code.CANCELLED);
  });

  it("runs many calls at once on one client", async () => {
    const sum = sumClient(await plainServer());
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => sum(background, { a: i, b: i })));
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(2 * i)));
  });
});

describe("createGrpcClient: metadata", () => {
  it("sends the context's outgoing metadata, -bin values base64-decoded, reserved and invalid keys skipped", async () => {
    let seen: Metadata | undefined;
    const sum = sumClient(
      await plainServer((call, callback) => {
        seen = call.metadata;
        plainSum(call, callback);
      }),
    );
    const ctx = createContext({
      outgoingMetadata: {
        "x-tenant": "acme",
        "x-id-bin": Buffer.from([0, 1, 254, 255]).toString("base64"),
        "grpc-timeout": "1S",
        "content-type": "text/plain",
        "bad key": "x",
        "x-unprintable": "line\nbreak",
      },
      metadata: { "x-incoming": "not forwarded" },
    });
    expect(await sum(ctx, { a: 1, b: 1 })).toBe(2n);
    expect(seen?.get("x-tenant")).toEqual(["acme"]);
    expect(seen?.get("x-id-bin")).toEqual([Buffer.from([0, 1, 254, 255])]);
    // Had "content-type: text/plain" been sent, the server would have refused the call.
    expect(seen?.get("content-type")).toEqual([]);
    expect(seen?.get("grpc-timeout")).toEqual([]);
    expect(seen?.get("x-unprintable")).toEqual([]);
    expect(seen?.get("x-incoming")).toEqual([]);
    expect(Object.keys(seen?.getMap() ?? {})).not.toContain("bad key");
  });

  it("hands the response header and trailer to after, in order, and uses the derived context", async () => {
    const sum = sumClient(
      await plainServer((call, callback) => {
        const header = new Metadata();
        header.set("x-header", "h");
        call.sendMetadata(header);
        const trailer = new Metadata();
        trailer.set("x-trailer", "t");
        trailer.set("x-trailer-bin", Buffer.from([7]));
        callback(null, { v: call.request.a + call.request.b, err: "" }, trailer);
      }),
      {
        after: [
          (ctx, header, trailer) => {
            seen.push(`after 1: ${header.get("x-header")} ${trailer.get("x-trailer")}`);
            return ctx.with(key, "derived");
          },
          (ctx, _header, trailer) => {
            seen.push(
              `after 2: ${ctx.value(key)} ${String(trailer.get("x-trailer-bin")[0]?.toString("hex"))}`,
            );
            return undefined;
          },
        ],
        finalizer: (ctx) => seen.push(`finalizer: ${ctx.value(key)}`),
      },
    );
    const key = createContextKey("none", { description: "test" });
    const seen: string[] = [];
    expect(await sum(background, { a: 1, b: 2 })).toBe(3n);
    expect(seen).toEqual(["after 1: h t", "after 2: derived 07", "finalizer: derived"]);
  });

  it("runs before in order with the outgoing grpc-js metadata, which it may change", async () => {
    let seen: Metadata | undefined;
    const order: string[] = [];
    const sum = sumClient(
      await plainServer((call, callback) => {
        seen = call.metadata;
        plainSum(call, callback);
      }),
      {
        before: [
          (ctx, md) => {
            order.push(`before 1 sees ${md.get("x-tenant")}`);
            md.set("authorization", "Bearer t");
            return ctx.withOutgoingMetadata({ "x-ignored": "too late for this call's metadata" });
          },
          (_ctx, md) => {
            order.push(`before 2 sees ${md.get("authorization")}`);
            md.remove("x-tenant");
            return undefined;
          },
        ],
      },
    );
    await sum(createContext({ outgoingMetadata: { "x-tenant": "acme" } }), { a: 1, b: 1 });
    expect(order).toEqual(["before 1 sees acme", "before 2 sees Bearer t"]);
    expect(seen?.get("authorization")).toEqual(["Bearer t"]);
    expect(seen?.get("x-tenant")).toEqual([]);
    expect(seen?.get("x-ignored")).toEqual([]);
  });
});

describe("createGrpcClient: errors", () => {
  const codes = Object.values(Code).filter((c) => c !== Code.OK);

  it.each(codes)(
    "a plain server's status %i becomes a ServiceError with that code and message",
    async (code) => {
      const sum = sumClient(
        await plainServer((_call, callback) => callback({ code, details: `plain ${codeNames[code]}` })),
      );
      const err = await failure(() => sum(background, { a: 1, b: 2 }));
      expect(err.code).toBe(code);
      expect(err.message).toBe(`plain ${codeNames[code]}`);
    },
  );

  it("keeps the trailers as error.metadata and decodes grpc-status-details-bin into details", async () => {
    const detail = { type: "google.rpc.RetryInfo", value: Uint8Array.from([10, 2, 8, 3]) };
    const sum = sumClient(
      await plainServer((_call, callback) => {
        const trailer = new Metadata();
        trailer.set("x-reason", "quota");
        trailer.set(
          STATUS_DETAILS_KEY,
          Buffer.from(encodeStatusDetails(Code.RESOURCE_EXHAUSTED, "slow down", [detail])),
        );
        callback({ code: status.RESOURCE_EXHAUSTED, details: "slow down", metadata: trailer });
      }),
    );
    const err = await failure(() => sum(background, { a: 1, b: 2 }));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toBe("slow down");
    expect(err.metadata.get("x-reason")).toBe("quota");
    expect(err.details).toEqual([detail]);
  });

  it("ignores a grpc-status-details-bin that is not a google.rpc.Status", async () => {
    const sum = sumClient(
      await plainServer((_call, callback) => {
        const trailer = new Metadata();
        trailer.set(STATUS_DETAILS_KEY, Buffer.from([0xff, 0xff]));
        callback({ code: status.ABORTED, details: "garbled", metadata: trailer });
      }),
    );
    const err = await failure(() => sum(background, { a: 1, b: 2 }));
    expect(err.code).toBe(Code.ABORTED);
    expect(err.details).toEqual([]);
  });

  it("fails with UNAVAILABLE when nothing listens", async () => {
    const target = grpcClient(`127.0.0.1:${await freePort()}`);
    const err = await failure(() => sumClient(target)(createContext({ timeout: 5_000 }), { a: 1, b: 2 }));
    expect(err.code).toBe(Code.UNAVAILABLE);
  });

  it("fails with INVALID_ARGUMENT and sends nothing when the request message cannot be encoded", async () => {
    let calls = 0;
    const client = await plainServer((call, callback) => {
      calls++;
      plainSum(call, callback);
    });
    const bad = createGrpcClient(
      client,
      add,
      "Sum",
      (_ctx, req: { a: string }) => ({ a: req.a, b: 1n }),
      (_ctx, reply: SumReply) => reply.v,
    );
    const err = await failure(() => bad(background, { a: "not a number" }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe("request message for /pb.Add/Sum could not be encoded");
    expect(calls).toBe(0);
  });

  it("fails with INTERNAL when the reply is not a valid response message", async () => {
    const garbage = {
      ...addDefinition,
      Sum: { ...addDefinition.Sum, responseSerialize: (b: Buffer) => b } as ServiceDefinition[string],
    };
    const { address } = await startServer((server) =>
      server.addService(garbage, {
        Sum: (_call: ServerUnaryCall<SumRequest, Buffer>, callback: (e: null, v: Buffer) => void) =>
          callback(null, Buffer.from([0xff, 0xff, 0xff])),
        Concat: plainConcat,
      }),
    );
    const err = await failure(() => sumClient(grpcClient(address))(background, { a: 1, b: 2 }));
    expect(err.code).toBe(Code.INTERNAL);
    expect(err.message).toBe("invalid response message from /pb.Add/Sum");
    expect(err.cause).toBeInstanceOf(ServiceError);
  });

  it("turns a throwing encode or decode function into a ServiceError (INTERNAL for plain errors)", async () => {
    const client = await plainServer();
    const throwsInEncode = createGrpcClient(
      client,
      add,
      "Sum",
      (): SumRequest => {
        throw new Error("encoder bug");
      },
      (_ctx, reply: SumReply) => reply.v,
    );
    const encodeErr = await failure(() => throwsInEncode(background, {}));
    expect([encodeErr.code, encodeErr.message]).toEqual([Code.INTERNAL, "internal error"]);
    const rejectsInDecode = createGrpcClient(
      client,
      add,
      "Sum",
      (_ctx, req: SumRequest) => req,
      async (_ctx, reply: SumReply) => {
        if (reply.v < 0n) throw new ServiceError(Code.OUT_OF_RANGE, "negative");
        return reply.v;
      },
    );
    const decodeErr = await failure(() => rejectsInDecode(background, { a: -5n, b: 1n }));
    expect([decodeErr.code, decodeErr.message]).toEqual([Code.OUT_OF_RANGE, "negative"]);
  });

  it("throws at setup for an unknown method or a streaming one", () => {
    const enc = (_ctx: unknown, req: unknown) => req;
    expect(() => createGrpcClient("127.0.0.1:1", add, "Sub", enc, enc)).toThrow(
      "createGrpcClient: pb.Add has no method Sub",
    );
    expect(() =>
      createGrpcClient("127.0.0.1:1", protos.service("counter.Counter"), "Count", enc, enc),
    ).toThrow(/streaming method/);
  });
});

describe("createGrpcClient: deadlines and cancellation", () => {
  /** A plain server whose Sum answers only when told, and reports what it saw. */
  async function hangingServer() {
    const got = deferred<ServerUnaryCall<SumRequest, SumReply>>();
    const cancelled = deferred<void>();
    const client = await plainServer((call) => {
      call.on("cancelled", () => cancelled.resolve());
      got.resolve(call);
    });
    return { client, got: got.promise, cancelled: cancelled.promise };
  }

  it("sends the context's deadline as the call's deadline", async () => {
    let deadline: number | undefined;
    const sum = sumClient(
      await plainServer((call, callback) => {
        const d = call.getDeadline();
        deadline = typeof d === "number" ? d : d.getTime();
        plainSum(call, callback);
      }),
    );
    const ctx = createContext({ timeout: 3_000 });
    await sum(ctx, { a: 1, b: 2 });
    expect(deadline).toBeGreaterThan((ctx.deadline ?? 0) - 1_000);
    expect(deadline).toBeLessThanOrEqual((ctx.deadline ?? 0) + 50);
    await sum(background, { a: 1, b: 2 });
    expect(deadline).toBe(Number.POSITIVE_INFINITY);
  });

  it("fails with DEADLINE_EXCEEDED when the context's deadline passes, and the server learns it", async () => {
    const { client, got, cancelled } = await hangingServer();
    const infos: GrpcClientFinalizerInfo[] = [];
    const sum = sumClient(client, { finalizer: (_ctx, info) => infos.push(info) });
    const err = await failure(() => sum(createContext({ timeout: 100 }), { a: 1, b: 2 }));
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    await got;
    await cancelled;
    expect(infos).toEqual([{ method: "/pb.Add/Sum", code: Code.DEADLINE_EXCEEDED, error: err }]);
  });

  it("cancels the call when the context is cancelled; the server sees the cancellation", async () => {
    const { client, got, cancelled } = await hangingServer();
    const { context, cancel } = background.withCancel();
    const pending = failure(() => sumClient(client)(context, { a: 1, b: 2 }));
    await got;
    cancel();
    const err = await pending;
    expect(err.code).toBe(Code.CANCELLED);
    await cancelled;
  });

  it("keeps a given cancel reason", async () => {
    const { client, got } = await hangingServer();
    const { context, cancel } = background.withCancel();
    const pending = failure(() => sumClient(client)(context, { a: 1, b: 2 }));
    await got;
    cancel(new ServiceError(Code.ABORTED, "shutting down"));
    const err = await pending;
    expect([err.code, err.message]).toEqual([Code.ABORTED, "shutting down"]);
  });

  it("sends nothing for a context that is already cancelled or past its deadline", async () => {
    let calls = 0;
    const sum = sumClient(
      await plainServer((call, callback) => {
        calls++;
        plainSum(call, callback);
      }),
    );
    const { context, cancel } = background.withCancel();
    cancel();
    expect((await failure(() => sum(context, { a: 1, b: 2 }))).code).toBe(Code.CANCELLED);
    const past = createContext({ deadline: Date.now() - 1 });
    expect((await failure(() => sum(past, { a: 1, b: 2 }))).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toBe(0);
    expect(await sum(background, { a: 1, b: 2 })).toBe(3n);
    expect(calls).toBe(1);
  });
});

describe("createGrpcClient: finalizer", () => {
  it("runs every finalizer once per call with the method, code and error", async () => {
    const infos: GrpcClientFinalizerInfo[] = [];
    const client = await plainServer((call, callback) => {
      if (call.request.a < 0n) callback({ code: status.OUT_OF_RANGE, details: "negative" });
      else plainSum(call, callback);
    });
    const sum = sumClient(client, {
      finalizer: [
        (_ctx, info) => infos.push(info),
        (_ctx, info) => infos.push({ ...info, method: "second" }),
      ],
    });
    await sum(background, { a: 1, b: 2 });
    const err = await failure(() => sum(background, { a: -1, b: 2 }));
    expect(infos).toEqual([
      { method: "/pb.Add/Sum", code: Code.OK, error: undefined },
      { method: "second", code: Code.OK, error: undefined },
      { method: "/pb.Add/Sum", code: Code.OUT_OF_RANGE, error: err },
      { method: "second", code: Code.OUT_OF_RANGE, error: err },
    ]);
  });
});
