import {
  background,
  Code,
  type CodeName,
  type Context,
  codeNames,
  createContext,
  ServiceError,
} from "@svckit/endpoint";
import {
  createJsonRpcClient,
  createJsonRpcHandler,
  defaultJsonRpcErrorEncoder,
  type JsonRpcClientFinalizerInfo,
  type JsonRpcClientOptions,
  JsonRpcError,
  jsonRpcMethod,
} from "@svckit/transport-jsonrpc";
import { afterEach, describe, expect, it } from "vitest";
import { aborted, addsvcMethods, asIs, closeServers, deferred, freePort, listen } from "./test-helpers.js";

afterEach(async () => {
  await closeServers();
});

type Sum = { a: number; b: number };
const asSum = (_ctx: Context, result: unknown) => result as { v: number };

/** The error a call rejects with. */
async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceError);
    return err as ServiceError;
  }
  throw new Error("expected the call to fail");
}

/** A fetch that records requests and answers with `answer`. */
function fakeFetch(answer: () => Response | Promise<Response>): {
  fetch: typeof fetch;
  requests: { url: string; init: RequestInit; body: unknown; headers: Headers }[];
} {
  const requests: { url: string; init: RequestInit; body: unknown; headers: Headers }[] = [];
  const fn = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    requests.push({ url: String(url), init: init ?? {}, body: JSON.parse(String(init?.body)), headers });
    return answer();
  };
  return { fetch: fn as typeof fetch, requests };
}

function json(body: unknown, status = 200): Response {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function client(answer: () => Response | Promise<Response>, options: JsonRpcClientOptions = {}) {
  const fake = fakeFetch(answer);
  const call = createJsonRpcClient<Sum, { v: number }>("http://svc.test/rpc", "sum", asIs, asSum, {
    ...options,
    fetch: fake.fetch,
  });
  return { call, requests: fake.requests };
}

describe("connection failures", () => {
  it("a connection cut off while the answer's body arrives is UNAVAILABLE, named as a failed read", async () => {
    const { url } = await listen((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
      res.write('{"jsonrpc":"2.0","result":');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const error = await failure(createJsonRpcClient(url, "sum", asIs, asSum)(background, { a: 1, b: 2 }));
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toMatch(/^reading the response failed/);
  });

  it("a server that is not there is UNAVAILABLE, named as a failed request", async () => {
    const port = await freePort();
    const error = await failure(
      createJsonRpcClient(`http://127.0.0.1:${port}/`, "sum", asIs, asSum)(background, { a: 1, b: 2 }),
    );
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toBe("request failed: ECONNREFUSED");
  });
});

describe("round trip over node:http", () => {
  it("calls sum and concat on a svckit server", async () => {
    const { url } = await listen(createJsonRpcHandler(addsvcMethods()));
    const sum = createJsonRpcClient<Sum, { v: number }>(url, "sum", asIs, asSum);
    const concat = createJsonRpcClient(
      url,
      "concat",
      (_ctx, r: { a: string; b: string }) => ({ A: r.a, B: r.b }),
      asIs,
    );
    expect(await sum(background, { a: 1, b: 2 })).toEqual({ v: 3 });
    expect(await sum(background, { a: -5, b: 2 })).toEqual({ v: -3 });
    expect(await concat(background, { a: "ab", b: "cd" })).toEqual({ v: "abcd" });
  });

  it("gets service errors back with their code and exact message", async () => {
    const { url } = await listen(createJsonRpcHandler(addsvcMethods()));
    const sum = createJsonRpcClient<Sum, { v: number }>(url, "sum", asIs, asSum);
    const e = await failure(sum(background, { a: 0, b: 0 }));
    expect(e).toBeInstanceOf(JsonRpcError);
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toBe("can't sum two zeroes");
    expect((e as JsonRpcError).rpcCode).toBe(-32003);
    expect((e as JsonRpcError).data).toEqual({ code: "INVALID_ARGUMENT" });
  });

  it.each((Object.values(codeNames) as CodeName[]).filter((n) => n !== "OK"))(
    "round-trips %s with its message and details",
    async (name) => {
      const details = [{ type: "t", value: { n: 1 } }];
      const { url } = await listen(
        createJsonRpcHandler({
          fail: jsonRpcMethod(
            async () => {
              throw new ServiceError(Code[name], `failed: ${name}`, { details });
            },
            asIs,
            asIs,
          ),
        }),
      );
      const e = await failure(createJsonRpcClient(url, "fail", asIs, asIs)(background, {}));
      expect([e.code, e.message, e.details]).toEqual([Code[name], `failed: ${name}`, details]);
    },
  );

  it("maps an unknown method to UNIMPLEMENTED and bad params to INVALID_ARGUMENT", async () => {
    const { url } = await listen(createJsonRpcHandler(addsvcMethods()));
    const mul = await failure(createJsonRpcClient(url, "mul", asIs, asIs)(background, { a: 1 }));
    expect([mul.code, mul.message, (mul as JsonRpcError).rpcCode]).toEqual([
      Code.UNIMPLEMENTED,
      "Method mul was not found.",
      -32601,
    ]);
    const bad = await failure(createJsonRpcClient(url, "sum", asIs, asIs)(background, { a: "x" }));
    expect([bad.code, bad.message, (bad as JsonRpcError).rpcCode]).toEqual([
      Code.INVALID_ARGUMENT,
      "a must be an integer",
      -32602,
    ]);
  });

  it("sends outgoing metadata, the remaining deadline and default headers; the server sees them", async () => {
    const seen = deferred<{
      tenant: string | undefined;
      token: string | undefined;
      remaining: number | undefined;
    }>();
    const { url } = await listen(
      createJsonRpcHandler({
        probe: jsonRpcMethod(
          async (ctx: Context) => {
            seen.resolve({
              tenant: ctx.metadata.get("x-tenant"),
              token: ctx.metadata.get("authorization"),
              remaining: ctx.timeRemaining(),
            });
            return "ok";
          },
          asIs,
          asIs,
        ),
      }),
    );
    const probe = createJsonRpcClient(url, "probe", () => undefined, asIs, {
      headers: { authorization: "Bearer t" },
    });
    const ctx = createContext({ timeout: 3_000, outgoingMetadata: { "x-tenant": "acme" } });
    expect(await probe(ctx, null)).toBe("ok");
    const { tenant, token, remaining } = await seen.promise;
    expect(tenant).toBe("acme");
    expect(token).toBe("Bearer t");
    expect(remaining).toBeGreaterThan(2_000);
    expect(remaining).toBeLessThanOrEqual(3_000);
  });

  it("fails with DEADLINE_EXCEEDED when the deadline passes while waiting, and the server sees it too", async () => {
    const serverSaw = deferred<unknown>();
    const { url } = await listen(
      createJsonRpcHandler({
        slow: jsonRpcMethod(
          async (ctx: Context) => {
            await aborted(ctx.signal);
            serverSaw.resolve((ctx.signal.reason as ServiceError).code);
            throw ctx.signal.reason;
          },
          asIs,
          asIs,
        ),
      }),
    );
    const slow = createJsonRpcClient(url, "slow", asIs, asIs);
    const e = await failure(slow(createContext({ timeout: 30 }), {}));
    expect([e.code, e.message]).toEqual([Code.DEADLINE_EXCEEDED, "deadline exceeded"]);
    // The server's deadline came from the header; or the disconnect reached it first.
    expect([Code.DEADLINE_EXCEEDED, Code.CANCELLED]).toContain(await serverSaw.promise);
  });

  it("fails with CANCELLED when the context is cancelled mid-call; the server sees the disconnect", async () => {
    const started = deferred<void>();
    const serverSaw = deferred<unknown>();
    const { url } = await listen(
      createJsonRpcHandler({
        wait: jsonRpcMethod(
          async (ctx: Context) => {
            started.resolve();
            await aborted(ctx.signal);
            serverSaw.resolve((ctx.signal.reason as ServiceError).code);
            throw ctx.signal.reason;
          },
          asIs,
          asIs,
        ),
      }),
    );
    const { context, cancel } = background.withCancel();
    const pending = failure(createJsonRpcClient(url, "wait", asIs, asIs)(context, {}));
    await started.promise;
    cancel();
    const e = await pending;
    expect(e.code).toBe(Code.CANCELLED);
    expect(await serverSaw.promise).toBe(Code.CANCELLED);
  });

  it("fails with UNAVAILABLE when nothing listens", async () => {
    const port = await freePort();
    const e = await failure(
      createJsonRpcClient(`http://127.0.0.1:${port}/rpc`, "sum", asIs, asIs)(background, {}),
    );
    expect([e.code, e.message]).toEqual([Code.UNAVAILABLE, "request failed: ECONNREFUSED"]);
  });

  it("maps the server's HTTP-level errors from their status, with the envelope's message", async () => {
    const { url } = await listen(createJsonRpcHandler(addsvcMethods(), { bodyLimit: 40 }));
    const sum = createJsonRpcClient(url, "sum", asIs, asIs);
    const e = await failure(sum(background, { a: 1, b: 2 }));
    expect([e.code, e.message, (e as JsonRpcError).rpcCode]).toEqual([
      Code.RESOURCE_EXHAUSTED,
      "request body exceeds the limit of 40 bytes",
      -32600,
    ]);
  });
});

describe("request shape", () => {
  it("POSTs a JSON-RPC 2.0 request with increasing ids and JSON headers", async () => {
    const { call, requests } = client(() => json({ jsonrpc: "2.0", result: { v: 3 }, id: 1 }));
    await call(background, { a: 1, b: 2 });
    const second = client(() => json({ jsonrpc: "2.0", result: { v: 3 }, id: null }));
    await second.call(background, { a: 1, b: 2 });
    await second.call(background, { a: 1, b: 2 });
    expect(requests[0]?.url).toBe("http://svc.test/rpc");
    expect(requests[0]?.init.method).toBe("POST");
    expect(requests[0]?.init.body).toBe('{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}');
    expect(requests[0]?.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(requests[0]?.headers.get("accept")).toBe("application/json");
    expect(requests[0]?.headers.has("x-request-timeout")).toBe(false);
    expect(second.requests.map((r) => (r.body as { id: unknown }).id)).toEqual([1, 2]);
  });

  it("leaves params out when the encoder returns undefined", async () => {
    const fake = fakeFetch(() => json({ jsonrpc: "2.0", result: 1, id: 1 }));
    await createJsonRpcClient("http://svc.test/", "ping", () => undefined, asIs, { fetch: fake.fetch })(
      background,
      0,
    );
    expect(fake.requests[0]?.init.body).toBe('{"jsonrpc":"2.0","method":"ping","id":1}');
  });

  it("uses the id generator, and refuses ids that are not strings or finite numbers", async () => {
    let n = 0;
    const { call, requests } = client(() => json({ jsonrpc: "2.0", result: 1, id: `req-${n}` }), {
      id: () => `req-${++n}`,
    });
    await call(background, { a: 1, b: 2 });
    expect(requests[0]?.body).toMatchObject({ id: "req-1" });
    const bad = client(() => json({}), { id: () => Number.NaN });
    const e = await failure(bad.call(background, { a: 1, b: 2 }));
    expect([e.code, e.message]).toEqual([
      Code.INTERNAL,
      "the id generator must return a string or a finite number",
    ]);
    expect(bad.requests).toHaveLength(0);
  });

  it("sends the remaining deadline in the timeout header, or in a custom one, or none", async () => {
    const ok = () => json({ jsonrpc: "2.0", result: 1, id: 1 });
    const plain = client(ok);
    await plain.call(createContext({ timeout: 1_500 }), { a: 1, b: 2 });
    const remaining = Number(plain.requests[0]?.headers.get("x-request-timeout"));
    expect(remaining).toBeGreaterThan(1_000);
    expect(remaining).toBeLessThanOrEqual(1_500);
    const custom = client(ok, { timeoutHeader: "grpc-timeout-ms" });
    await custom.call(createContext({ timeout: 1_500 }), { a: 1, b: 2 });
    expect(custom.requests[0]?.headers.has("grpc-timeout-ms")).toBe(true);
    const none = client(ok, { timeoutHeader: false });
    await none.call(createContext({ timeout: 1_500 }), { a: 1, b: 2 });
    expect(none.requests[0]?.headers.has("x-request-timeout")).toBe(false);
  });

  it("fails with INTERNAL when params cannot be serialised", async () => {
    const fake = fakeFetch(() => json({}));
    const call = createJsonRpcClient("http://svc.test/", "m", () => ({ n: 1n }), asIs, { fetch: fake.fetch });
    const e = await failure(call(background, null));
    expect([e.code, e.message]).toEqual([Code.INTERNAL, "params could not be encoded as JSON"]);
  });

  it("sends nothing with a context that is already cancelled", async () => {
    const { call, requests } = client(() => json({}));
    const { context, cancel } = background.withCancel();
    cancel();
    const e = await failure(call(context, { a: 1, b: 2 }));
    expect(e.code).toBe(Code.CANCELLED);
    expect(requests).toHaveLength(0);
  });

  it("runs before, after and the finalizers", async () => {
    const order: string[] = [];
    const infos: JsonRpcClientFinalizerInfo[] = [];
    const { call, requests } = client(
      () => json({ jsonrpc: "2.0", error: { code: -32005, message: "nope" }, id: 1 }),
      {
        before: [
          (ctx, headers) => {
            order.push("before");
            headers.set("x-trace", "t1");
            return ctx;
          },
        ],
        after: [
          (_ctx, response) => {
            order.push(`after:${response.status}`);
            return undefined;
          },
        ],
        finalizer: [
          (_ctx, info) => {
            infos.push(info);
            throw new Error("finalizer bug");
          },
          () => {
            order.push("finalizer");
          },
        ],
      },
    );
    const e = await failure(call(background, { a: 1, b: 2 }));
    expect(e.code).toBe(Code.NOT_FOUND);
    expect(requests[0]?.headers.get("x-trace")).toBe("t1");
    expect(order).toEqual(["before", "after:200", "finalizer"]);
    expect(infos).toEqual([{ url: "http://svc.test/rpc", method: "sum", id: 1, status: 200, error: e }]);
  });
});

describe("responses", () => {
  const rpcError =
    (error: unknown, id: unknown = 1) =>
    () =>
      json({ jsonrpc: "2.0", error, id });

  it.each([
    [-32700, Code.INTERNAL],
    [-32600, Code.INTERNAL],
    [-32601, Code.UNIMPLEMENTED],
    [-32602, Code.INVALID_ARGUMENT],
    [-32603, Code.INTERNAL],
    [-32000, Code.UNKNOWN],
    [-32001, Code.CANCELLED],
    [-32008, Code.RESOURCE_EXHAUSTED],
    [-32014, Code.UNAVAILABLE],
    [-32016, Code.UNAUTHENTICATED],
    [-32017, Code.UNKNOWN],
    [-32099, Code.UNKNOWN],
    [-1, Code.UNKNOWN],
    [42, Code.UNKNOWN],
  ])("maps JSON-RPC error %i without data to code %i", async (rpcCode, code) => {
    const e = await failure(
      client(rpcError({ code: rpcCode, message: "m" })).call(background, { a: 1, b: 2 }),
    );
    expect(e).toBeInstanceOf(JsonRpcError);
    expect([e.code, e.message, (e as JsonRpcError).rpcCode, (e as JsonRpcError).data]).toEqual([
      code,
      "m",
      rpcCode,
      undefined,
    ]);
  });

  it("marks the errors it decodes from an answer as remote, which cannot be changed", async () => {
    const envelope = await failure(
      client(rpcError({ code: -32601, message: "m" })).call(background, { a: 1, b: 2 }),
    );
    const http = await failure(
      client(() => json({ jsonrpc: "2.0", error: { code: -32600, message: "too big" }, id: null }, 413)).call(
        background,
        { a: 1, b: 2 },
      ),
    );
    for (const e of [envelope, http]) {
      expect(e).toBeInstanceOf(JsonRpcError);
      expect((e as JsonRpcError).remote).toBe(true);
      expect(() => {
        (e as unknown as { remote: boolean }).remote = false;
      }).toThrow(TypeError);
      expect((e as JsonRpcError).remote).toBe(true);
    }
    expect(new JsonRpcError(-32601, Code.UNIMPLEMENTED, "m").remote).toBe(false);
  });

  it.each([
    [-32700, -32603, "INTERNAL"],
    [-32600, -32603, "INTERNAL"],
    [-32601, -32012, "UNIMPLEMENTED"],
    [-32602, -32003, "INVALID_ARGUMENT"],
    [-32603, -32603, "INTERNAL"],
    [-32768, -32002, "UNKNOWN"],
    [-32099, -32002, "UNKNOWN"],
    [-32014, -32014, "UNAVAILABLE"],
    [-32000, -32002, "UNKNOWN"],
  ])("has the default encoder send a remote %i by its canonical code %i", async (rpcCode, sent, name) => {
    const e = await failure(
      client(rpcError({ code: rpcCode, message: "m", data: { extra: 1 } })).call(background, {
        a: 1,
        b: 2,
      }),
    );
    expect(defaultJsonRpcErrorEncoder(background, e)).toEqual({
      code: sent,
      message: "m",
      data: { code: name },
    });
  });

  it.each([-32769, -31999, -1, 0, 42])(
    "has the default encoder send a remote application code %i as it is",
    async (rpcCode) => {
      const e = await failure(
        client(rpcError({ code: rpcCode, message: "m", data: { extra: 1 } })).call(background, {
          a: 1,
          b: 2,
        }),
      );
      expect(defaultJsonRpcErrorEncoder(background, e)).toEqual({
        code: rpcCode,
        message: "m",
        data: { extra: 1 },
      });
    },
  );

  it("prefers svckit's data.code, ignoring OK and names that are not codes", async () => {
    const named = await failure(
      client(rpcError({ code: -32603, message: "m", data: { code: "data_loss" } })).call(background, {
        a: 1,
        b: 2,
      }),
    );
    expect(named.code).toBe(Code.DATA_LOSS);
    for (const data of [{ code: "OK" }, { code: "NOPE" }, { code: 5 }, "NOT_FOUND", null]) {
      const e = await failure(
        client(rpcError({ code: -32014, message: "m", data })).call(background, { a: 1, b: 2 }),
      );
      expect(e.code).toBe(Code.UNAVAILABLE);
    }
  });

  it("accepts a response id of null, as go-kit's server sends", async () => {
    const { call } = client(() => json({ jsonrpc: "2.0", result: { v: 3 }, id: null }));
    expect(await call(background, { a: 1, b: 2 })).toEqual({ v: 3 });
    const noVersion = client(() => json({ result: { v: 4 } }));
    expect(await noVersion.call(background, { a: 1, b: 2 })).toEqual({ v: 4 });
  });

  it("decodes result null", async () => {
    const fake = fakeFetch(() => json({ jsonrpc: "2.0", result: null, id: 1 }));
    const call = createJsonRpcClient("http://svc.test/", "m", asIs, asIs, { fetch: fake.fetch });
    expect(await call(background, {})).toBeNull();
  });

  it.each([
    [
      "an id that does not match",
      { jsonrpc: "2.0", result: 1, id: 2 },
      "id 2 does not match the request's id 1",
    ],
    ["a string id", { jsonrpc: "2.0", result: 1, id: "1" }, 'id "1" does not match the request\'s id 1'],
    ["no result and no error", { jsonrpc: "2.0", id: 1 }, 'neither "result" nor "error" is present'],
    [
      "a malformed error",
      { jsonrpc: "2.0", error: { code: "x", message: "m" }, id: 1 },
      '"error" is not a { code, message } object',
    ],
    [
      "an error without message",
      { jsonrpc: "2.0", error: { code: 1 }, id: 1 },
      '"error" is not a { code, message } object',
    ],
    ["an array", [{ jsonrpc: "2.0", result: 1, id: 1 }], "expected a JSON-RPC response object"],
    ["a number", 5, "expected a JSON-RPC response object"],
    ["text that is not JSON", "<html>", "body is not JSON"],
    ["an empty body", "", "HTTP 200 with an empty body"],
  ])("fails with INTERNAL on %s", async (_name, body, reason) => {
    const e = await failure(client(() => json(body)).call(background, { a: 1, b: 2 }));
    expect([e.code, e.message]).toEqual([Code.INTERNAL, `invalid response from server: ${reason}`]);
  });

  it("fails with INTERNAL on 204 No Content", async () => {
    const e = await failure(
      client(() => new Response(null, { status: 204 })).call(background, { a: 1, b: 2 }),
    );
    expect([e.code, e.message]).toEqual([
      Code.INTERNAL,
      "invalid response from server: HTTP 204 with an empty body",
    ]);
  });

  it.each([
    [503, "upstream down", Code.UNAVAILABLE, "HTTP 503 Service Unavailable: upstream down"],
    [404, "", Code.NOT_FOUND, "HTTP 404 Not Found"],
    [429, "slow down", Code.RESOURCE_EXHAUSTED, "HTTP 429 Too Many Requests: slow down"],
    [418, "teapot", Code.UNKNOWN, "HTTP 418 I'm a Teapot: teapot"],
    [302, "", Code.UNKNOWN, "HTTP 302 Found"],
  ])("maps HTTP %i without an envelope from the status", async (status, body, code, message) => {
    const statusText: Record<number, string> = {
      503: "Service Unavailable",
      404: "Not Found",
      429: "Too Many Requests",
      418: "I'm a Teapot",
      302: "Found",
    };
    const e = await failure(
      client(() => new Response(body, { status, statusText: statusText[status] })).call(background, {
        a: 1,
        b: 2,
      }),
    );
    expect([e.code, e.message]).toEqual([code, message]);
  });

  it("reads at most bodyLimit bytes of an answer (RESOURCE_EXHAUSTED past it) and 64 KiB of an error answer", async () => {
    const big = JSON.stringify({ jsonrpc: "2.0", result: { v: 3, pad: "x".repeat(10_000) }, id: 1 });
    const e = await failure(
      client(() => new Response(big), { bodyLimit: 1024 }).call(background, { a: 1, b: 2 }),
    );
    expect([e.code, e.message]).toEqual([
      Code.RESOURCE_EXHAUSTED,
      "response body exceeds the limit of 1024 bytes",
    ]);
    const within = await client(() => new Response(big), { bodyLimit: 64 * 1024 }).call(background, {
      a: 1,
      b: 2,
    });
    expect(within).toMatchObject({ v: 3 });
    const huge = await failure(
      client(() => new Response("e".repeat(1024 * 1024), { status: 502, statusText: "Bad Gateway" })).call(
        background,
        { a: 1, b: 2 },
      ),
    );
    expect(huge.code).toBe(Code.UNAVAILABLE);
    expect(huge.message.slice(0, 30)).toBe("HTTP 502 Bad Gateway: eeeeeeee");
    expect(() => createJsonRpcClient("http://svc.test/rpc", "sum", asIs, asIs, { bodyLimit: -1 })).toThrow(
      "createJsonRpcClient: bodyLimit must be a whole number of bytes ≥ 0, got -1",
    );
  });

  it("maps HTTP errors with an envelope from the status and the envelope's message", async () => {
    const e = await failure(
      client(() =>
        json(
          { jsonrpc: "2.0", error: { code: -32600, message: "method GET is not allowed" }, id: null },
          405,
        ),
      ).call(background, { a: 1, b: 2 }),
    );
    expect([e.code, e.message, (e as JsonRpcError).rpcCode]).toEqual([
      Code.UNIMPLEMENTED,
      "method GET is not allowed",
      -32600,
    ]);
  });

  it("cuts long error bodies to 200 characters", async () => {
    const e = await failure(
      client(() => new Response("x".repeat(500), { status: 500 })).call(background, { a: 1, b: 2 }),
    );
    expect(e.message).toBe(`HTTP 500: ${"x".repeat(200)}…`);
  });

  it("passes a decoder's ServiceError through and hides other decoder failures as INTERNAL", async () => {
    const fake = fakeFetch(() => json({ jsonrpc: "2.0", result: 1, id: 1 }));
    const typed = createJsonRpcClient(
      "http://svc.test/",
      "m",
      asIs,
      () => {
        throw new ServiceError(Code.DATA_LOSS, "bad result");
      },
      { fetch: fake.fetch },
    );
    const e = await failure(typed(background, {}));
    expect([e.code, e.message]).toEqual([Code.DATA_LOSS, "bad result"]);
    const untyped = createJsonRpcClient(
      "http://svc.test/",
      "m",
      asIs,
      () => {
        throw new Error("boom");
      },
      { fetch: fake.fetch },
    );
    const u = await failure(untyped(background, {}));
    expect([u.code, u.message]).toEqual([Code.INTERNAL, "internal error"]);
  });

  it("fails with CANCELLED when the context is cancelled while the body is read", async () => {
    const { context, cancel } = background.withCancel();
    let pull!: ReadableStreamDefaultController<Uint8Array>;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        pull = controller;
      },
    });
    const fake = fakeFetch(() => new Response(stream, { status: 200 }));
    const fetchWithSignal: typeof fetch = async (url, init) => {
      const response = await fake.fetch(url, init);
      init?.signal?.addEventListener("abort", () => pull.error(init.signal?.reason));
      return response;
    };
    const call = createJsonRpcClient("http://svc.test/", "m", asIs, asIs, {
      fetch: fetchWithSignal,
      after: [
        () => {
          pull.enqueue(new TextEncoder().encode('{"jsonrpc":"2.0",'));
          queueMicrotask(() => cancel());
          return undefined;
        },
      ],
    });
    const e = await failure(call(context, {}));
    expect(e.code).toBe(Code.CANCELLED);
  });
});
