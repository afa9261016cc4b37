// svckit clients and servers against each other and against plain grpc-js ones, on real sockets.
import { type Client, type handleUnaryCall, Metadata, type ServiceDefinition, status } from "@grpc/grpc-js";
import {
  background,
  Code,
  type Context,
  codeNames,
  createContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  bindService,
  createGrpcClient,
  createGrpcHandler,
  type GrpcClientOptions,
  type GrpcServerFinalizerInfo,
  type GrpcServerOptions,
} from "@svckit/transport-grpc";
import { afterEach, describe, expect, it } from "vitest";
import {
  aborted,
  type ConcatReply,
  type ConcatRequest,
  closeAll,
  deferred,
  grpcClient,
  protos,
  SumReply,
  SumRequest,
  startServer,
  unary,
} from "./test-helpers.js";

afterEach(closeAll);

const add = protos.service("pb.Add");

/** The service as go-kit's addsvc has it: Sum fails for "too large" inputs, Concat too. */
const MAX = 2n ** 62n;
const sumEndpoint: Endpoint<SumRequest, bigint> = async (_ctx, { a, b }) => {
  if (a > MAX || b > MAX) throw new ServiceError(Code.OUT_OF_RANGE, "integer overflow");
  return a + b;
};
const concatEndpoint: Endpoint<ConcatRequest, string> = async (_ctx, { a, b }) => {
  if (a.length + b.length > 10) throw new ServiceError(Code.INVALID_ARGUMENT, "string too long");
  return a + b;
};

/** A svckit pb.Add server; its Sum endpoint may be replaced. */
async function svckitServer(
  sum: Endpoint<SumRequest, bigint> = sumEndpoint,
  options?: GrpcServerOptions,
): Promise<Client> {
  const { address } = await startServer((server) =>
    bindService(server, add, {
      Sum: createGrpcHandler(
        sum,
        (_ctx, msg: SumRequest) => msg,
        (_ctx, v: bigint): SumReply => ({ v, err: "" }),
        options,
      ),
      Concat: createGrpcHandler(
        concatEndpoint,
        (_ctx, msg: ConcatRequest) => msg,
        (_ctx, v: string): ConcatReply => ({ v, err: "" }),
      ),
    }),
  );
  return grpcClient(address);
}

/** The same service on a plain grpc-js server, errors turned into statuses by hand. */
async function plainServer(): Promise<Client> {
  const respond =
    <Req, Res, Out>(endpoint: Endpoint<Req, Res>, wrap: (res: Res) => Out): handleUnaryCall<Req, Out> =>
    (call, callback) => {
      endpoint(background, call.request).then(
        (res) => callback(null, wrap(res)),
        (err: ServiceError) => callback({ code: err.code, details: err.message }),
      );
    };
  const methods = add.methods;
  const definition: Record<string, ServiceDefinition[string]> = {};
  for (const name of ["Sum", "Concat"] as const) {
    const method = methods[name];
    if (method === undefined) throw new Error(`no ${name}`);
    definition[name] = {
      path: method.path,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: Record<string, unknown>) => Buffer.from(method.requestType.encode(m)),
      requestDeserialize: (b: Buffer) => method.requestType.decode(b),
      responseSerialize: (m: Record<string, unknown>) => Buffer.from(method.responseType.encode(m)),
      responseDeserialize: (b: Buffer) => method.responseType.decode(b),
    };
  }
  const { address } = await startServer((server) =>
    server.addService(definition, {
      Sum: respond(sumEndpoint, (v: bigint): SumReply => ({ v, err: "" })),
      Concat: respond(concatEndpoint, (v: string): ConcatReply => ({ v, err: "" })),
    }),
  );
  return grpcClient(address);
}

function sumClient(target: Client, options?: GrpcClientOptions): Endpoint<SumRequest, bigint> {
  return createGrpcClient(
    target,
    add,
    "Sum",
    (_ctx, req: SumRequest) => req,
    (_ctx, reply: SumReply) => reply.v,
    options,
  );
}

function concatClient(target: Client): Endpoint<ConcatRequest, string> {
  return createGrpcClient(
    target,
    add,
    "Concat",
    (_ctx, req: ConcatRequest) => req,
    (_ctx, reply: ConcatReply) => reply.v,
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

type Outcome = { ok: string } | { code: number; message: string };

/** Sum and Concat cases, good and bad, as a svckit client sees them. */
async function viaSvckit(target: Client): Promise<Outcome[]> {
  const sum = sumClient(target);
  const concat = concatClient(target);
  const calls: (() => Promise<bigint | string>)[] = [
    () => sum(background, { a: 1n, b: 2n }),
    () => sum(background, { a: 2n ** 53n + 1n, b: 2n ** 53n }),
    () => sum(background, { a: -5n, b: 3n }),
    () => sum(background, { a: MAX + 1n, b: 0n }),
    () => concat(background, { a: "go", b: "kit" }),
    () => concat(background, { a: "abcdef", b: "ghijkl" }),
  ];
  const out: Outcome[] = [];
  for (const call of calls) {
    try {
      out.push({ ok: String(await call()) });
    } catch (err) {
      const e = err as ServiceError;
      out.push({ code: e.code, message: e.message });
    }
  }
  return out;
}

/** The same cases as a plain grpc-js client sees them. */
async function viaGrpcJs(client: Client): Promise<Outcome[]> {
  const sum = add.methods.Sum;
  const concat = add.methods.Concat;
  if (sum === undefined || concat === undefined) throw new Error("pb.Add is incomplete");
  const results = [
    await unary(client, sum.path, sum.requestType, sum.responseType, { a: 1n, b: 2n }),
    await unary(client, sum.path, sum.requestType, sum.responseType, { a: 2n ** 53n + 1n, b: 2n ** 53n }),
    await unary(client, sum.path, sum.requestType, sum.responseType, { a: -5n, b: 3n }),
    await unary(client, sum.path, sum.requestType, sum.responseType, { a: MAX + 1n, b: 0n }),
    await unary(client, concat.path, concat.requestType, concat.responseType, { a: "go", b: "kit" }),
    await unary(client, concat.path, concat.requestType, concat.responseType, { a: "abcdef", b: "ghijkl" }),
  ];
  return results.map((r) =>
    r.status.code === status.OK
      ? { ok: String((r.value as { v: unknown }).v) }
      : { code: r.status.code, message: r.status.details },
  );
}

describe("svckit and grpc-js agree", () => {
  const expected: Outcome[] = [
    { ok: "3" },
    { ok: String(2n ** 54n + 1n) },
    { ok: "-2" },
    { code: Code.OUT_OF_RANGE, message: "integer overflow" },
    { ok: "gokit" },
    { code: Code.INVALID_ARGUMENT, message: "string too long" },
  ];

  it("a svckit client and a plain grpc-js client get the same answers from a svckit server", async () => {
    const client = await svckitServer();
    expect(await viaSvckit(client)).toEqual(expected);
    expect(await viaGrpcJs(client)).toEqual(expected);
  });

  it("a svckit client gets the same answers from a plain grpc-js server as from a svckit server", async () => {
    const client = await plainServer();
    expect(await viaGrpcJs(client)).toEqual(expected);
    expect(await viaSvckit(client)).toEqual(expected);
  });
});

describe("svckit client ↔ svckit server", () => {
  it("round-trips int64 values above 2^53 exactly", async () => {
    const sum = sumClient(await svckitServer());
    expect(await sum(background, { a: 2n ** 53n + 1n, b: 2n ** 53n + 2n })).toBe(2n ** 54n + 3n);
    expect(await sum(background, { a: -(2n ** 62n), b: -(2n ** 62n) + 1n })).toBe(-(2n ** 63n) + 1n);
  });

  it("carries metadata both ways: outgoing → ctx.metadata, after's header/trailer → client after", async () => {
    let incoming: Record<string, string | string[]> = {};
    const target = await svckitServer(
      async (ctx, { a, b }) => {
        incoming = ctx.metadata.toRecord();
        return a + b;
      },
      {
        after: [
          (ctx, header, trailer) => {
            header.set("x-echo", ctx.metadata.get("x-tenant") ?? "none");
            trailer.set("x-count-bin", Buffer.from([1, 2, 3]));
            trailer.set("x-trailer", "done");
            return undefined;
          },
        ],
      },
    );
    const received: string[] = [];
    const sum = sumClient(target, {
      after: [
        (_ctx, header, trailer) => {
          received.push(
            `header x-echo=${header.get("x-echo")}`,
            `trailer x-trailer=${trailer.get("x-trailer")}`,
            `trailer x-count-bin=${String(trailer.get("x-count-bin")[0]?.toString("hex"))}`,
          );
          return undefined;
        },
      ],
    });
    const id = Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString("base64");
    const ctx = createContext({ outgoingMetadata: { "x-tenant": "acme", "x-id-bin": id } });
    expect(await sum(ctx, { a: 1n, b: 2n })).toBe(3n);
    expect(incoming["x-tenant"]).toBe("acme");
    expect(incoming["x-id-bin"]).toBe(id);
    expect(received).toEqual(["header x-echo=acme", "trailer x-trailer=done", "trailer x-count-bin=010203"]);
  });

  it("forwards binary metadata from an incoming call to an outgoing one unchanged", async () => {
    // A server that calls a second server with the metadata it received, as a gateway would.
    let backendSaw: Metadata | undefined;
    const backend = await svckitServer(sumEndpoint, {
      before: [
        (ctx, md) => {
          backendSaw = md;
          return ctx;
        },
      ],
    });
    const toBackend = sumClient(backend);
    const gateway = await svckitServer(async (ctx, req) =>
      toBackend(ctx.withOutgoingMetadata(ctx.metadata), req),
    );
    const md = new Metadata();
    md.set("x-id-bin", Buffer.from([0, 255, 128]));
    md.set("x-tenant", "acme");
    const res = await unary(gateway, "/pb.Add/Sum", SumRequest, SumReply, { a: 1n, b: 1n }, { metadata: md });
    expect(res.value?.v).toBe(2n);
    expect(backendSaw?.get("x-id-bin")).toEqual([Buffer.from([0, 255, 128])]);
    expect(backendSaw?.get("x-tenant")).toEqual(["acme"]);
  });

  const codes = Object.values(Code).filter((c) => c !== Code.OK);

  it.each(codes)(
    "ServiceError code %i arrives at the svckit client with the same code and message",
    async (code) => {
      const target = await svckitServer(async () => {
        throw new ServiceError(code, `svc ${codeNames[code]}`, { metadata: { "x-why": "because" } });
      });
      const err = await failure(() => sumClient(target)(background, { a: 1n, b: 2n }));
      expect(err.code).toBe(code);
      expect(err.codeName).toBe(codeNames[code]);
      expect(err.message).toBe(`svc ${codeNames[code]}`);
      expect(err.metadata.get("x-why")).toBe("because");
    },
  );

  it("round-trips details with Uint8Array values through grpc-status-details-bin", async () => {
    const details = [
      { type: "google.rpc.BadRequest", value: Uint8Array.from([10, 5, 10, 1, 97, 18, 0]) },
      { type: "example.com/my.Detail", value: new Uint8Array(0) },
      { type: "my.v1.Big", value: Uint8Array.from({ length: 3000 }, (_, i) => i % 256) },
    ];
    const target = await svckitServer(async () => {
      throw new ServiceError(Code.FAILED_PRECONDITION, "see details", { details });
    });
    const err = await failure(() => sumClient(target)(background, { a: 1n, b: 2n }));
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.details).toEqual(details);
  });

  it("hides a thrown plain Error as INTERNAL 'internal error'", async () => {
    const target = await svckitServer(async () => {
      throw new TypeError("cannot read properties of undefined (reading 'password')");
    });
    const err = await failure(() => sumClient(target)(background, { a: 1n, b: 2n }));
    expect([err.code, err.message]).toEqual([Code.INTERNAL, "internal error"]);
    expect(String(err.cause)).not.toContain("password");
  });

  it("propagates the deadline: the server's ctx.deadline is the client's", async () => {
    let serverDeadline: number | undefined;
    const sum = sumClient(
      await svckitServer(async (ctx, { a, b }) => {
        serverDeadline = ctx.deadline;
        return a + b;
      }),
    );
    const ctx = createContext({ timeout: 2_000 });
    await sum(ctx, { a: 1n, b: 2n });
    expect(serverDeadline).toBeGreaterThan((ctx.deadline ?? 0) - 1_000);
    expect(serverDeadline).toBeLessThanOrEqual((ctx.deadline ?? 0) + 50);
  });

  it("DEADLINE_EXCEEDED on a slow endpoint: the client fails and the server's ctx.signal aborts", async () => {
    const reason = deferred<unknown>();
    const finalized = deferred<GrpcServerFinalizerInfo>();
    const sum = sumClient(
      await svckitServer(
        async (ctx) => {
          await aborted(ctx.signal);
          reason.resolve(ctx.signal.reason);
          throw ctx.signal.reason;
        },
        { finalizer: (_ctx, info) => finalized.resolve(info) },
      ),
    );
    const err = await failure(() => sum(createContext({ timeout: 150 }), { a: 1n, b: 2n }));
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    const why = (await reason.promise) as ServiceError;
    expect(why).toBeInstanceOf(ServiceError);
    expect(why.code).toBe(Code.DEADLINE_EXCEEDED);
    expect((await finalized.promise).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("client cancellation reaches the server: its ctx.signal aborts with CANCELLED", async () => {
    const started = deferred<void>();
    const reason = deferred<unknown>();
    const finalized = deferred<GrpcServerFinalizerInfo>();
    const target = await svckitServer(
      async (ctx: Context, { a, b }) => {
        if (a !== 1n) return a + b;
        started.resolve();
        await aborted(ctx.signal);
        reason.resolve(ctx.signal.reason);
        throw ctx.signal.reason;
      },
      { finalizer: (_ctx, info) => finalized.resolve(info) },
    );
    const sum = sumClient(target);
    const { context, cancel } = createContext({ timeout: 10_000 }).withCancel();
    const pending = failure(() => sum(context, { a: 1n, b: 2n }));
    await started.promise;
    cancel();
    expect((await pending).code).toBe(Code.CANCELLED);
    const why = (await reason.promise) as ServiceError;
    expect(why.code).toBe(Code.CANCELLED);
    expect(why.message).toBe("call cancelled by the client");
    expect((await finalized.promise).code).toBe(Code.CANCELLED);
    expect(await sum(background, { a: 2n, b: 2n })).toBe(4n);
  });
});
