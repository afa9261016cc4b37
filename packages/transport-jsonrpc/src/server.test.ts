import http from "node:http";
import {
  type CallInfo,
  Code,
  type CodeName,
  type Context,
  callInfoKey,
  codeNames,
  createContextKey,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  codeToJsonRpcCode,
  createJsonRpcClient,
  createJsonRpcHandler,
  defaultJsonRpcErrorEncoder,
  JsonRpcError,
  type JsonRpcMethod,
  type JsonRpcServerFinalizerInfo,
  type JsonRpcServerOptions,
  jsonRpcMethod,
} from "@svckit/transport-jsonrpc";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  aborted,
  addsvcMethods,
  asIs,
  closeServers,
  deferred,
  envelope,
  JSON_TYPE,
  listen,
  post,
  send,
} from "./test-helpers.js";

afterEach(async () => {
  await closeServers();
});

async function serve(
  methods: Record<string, JsonRpcMethod> = addsvcMethods(),
  options?: JsonRpcServerOptions,
): Promise<number> {
  return (await listen(createJsonRpcHandler(methods, options))).port;
}

const ok = (result: unknown, id: unknown) => ({ jsonrpc: "2.0", result, id });
const err = (code: number, message: string, id: unknown, data?: unknown) => ({
  jsonrpc: "2.0",
  error: data === undefined ? { code, message } : { code, message, data },
  id,
});

describe("addsvc compatibility (go-kit's JSON-RPC)", () => {
  it("answers sum with 200, application/json and the exact envelope", async () => {
    const port = await serve();
    const res = await post(port, '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}');
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(res.text).toBe('{"jsonrpc":"2.0","result":{"v":3},"id":1}');
  });

  it("answers go-kit's own client request shape: empty version, capitalised params, id 0", async () => {
    const port = await serve();
    const res = await post(port, '{"jsonrpc":"","method":"concat","params":{"A":"ab","B":"cd"},"id":0}', {
      "content-type": "application/json; charset=utf-8",
    });
    expect(res.status).toBe(200);
    expect(res.text).toBe('{"jsonrpc":"2.0","result":{"v":"abcd"},"id":0}');
  });

  it("tolerates a missing jsonrpc member", async () => {
    const port = await serve();
    const res = await post(port, { method: "sum", params: { A: 40, B: 2 }, id: 9 });
    expect(envelope(res)).toEqual(ok({ v: 42 }, 9));
  });

  it("serves POST on any path", async () => {
    const port = await serve();
    for (const path of ["/", "/rpc", "/anything/else?x=1"]) {
      const res = await send(port, {
        path,
        headers: { "content-type": "application/json" },
        body: '{"jsonrpc":"2.0","method":"sum","params":{"a":2,"b":2},"id":1}',
      });
      expect(res.text).toBe('{"jsonrpc":"2.0","result":{"v":4},"id":1}');
    }
  });

  it("answers service errors with a server-error code and the exact message", async () => {
    const port = await serve();
    const cases: [string, string][] = [
      ['{"jsonrpc":"2.0","method":"sum","params":{"a":0,"b":0},"id":1}', "can't sum two zeroes"],
      ['{"jsonrpc":"2.0","method":"sum","params":{"a":2147483647,"b":1},"id":1}', "integer overflow"],
      [
        '{"jsonrpc":"2.0","method":"concat","params":{"a":"abcdef","b":"ghijk"},"id":1}',
        "result exceeds maximum size",
      ],
    ];
    for (const [body, message] of cases) {
      const res = await post(port, body);
      expect(envelope(res)).toEqual(err(-32003, message, 1, { code: "INVALID_ARGUMENT" }));
    }
  });

  it("answers a missing id with id null in answerNotifications mode, like go-kit", async () => {
    const port = await serve(addsvcMethods(), { answerNotifications: true });
    const res = await post(port, '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2}}');
    expect(res.text).toBe('{"jsonrpc":"2.0","result":{"v":3},"id":null}');
    const failed = await post(port, '{"jsonrpc":"2.0","method":"mul","params":{}}');
    expect(envelope(failed)).toEqual(err(-32601, "Method mul was not found.", null));
  });
});

describe("ids", () => {
  it.each([
    ["a number", 7, "7"],
    ["zero", 0, "0"],
    ["a negative number", -3, "-3"],
    ["a fractional number", 1.5, "1.5"],
    ["a string", "abc", '"abc"'],
    ["an empty string", "", '""'],
    ["a unicode string", "ü-🙂", '"ü-🙂"'],
    ["null", null, "null"],
  ])("echoes %s", async (_name, id, json) => {
    const port = await serve();
    const res = await post(port, { jsonrpc: "2.0", method: "sum", params: { a: 1, b: 1 }, id });
    expect(res.status).toBe(200);
    expect(res.text).toBe(`{"jsonrpc":"2.0","result":{"v":2},"id":${json}}`);
  });

  it("echoes the id on errors whenever it could be read", async () => {
    const port = await serve();
    const res = await post(port, { jsonrpc: "2.0", method: "mul", params: {}, id: "req-1" });
    expect(envelope(res)).toEqual(err(-32601, "Method mul was not found.", "req-1"));
    const bad = await post(port, { jsonrpc: "1.0", method: "sum", id: 12 });
    expect(envelope(bad)).toEqual(err(-32600, 'invalid request: "jsonrpc" must be "2.0"', 12));
  });

  it.each([
    ["an object", {}],
    ["an array", [1]],
    ["a boolean", true],
  ])("rejects %s as id with -32600 and id null", async (_name, id) => {
    const port = await serve();
    const res = await post(port, { jsonrpc: "2.0", method: "sum", params: {}, id });
    expect(envelope(res)).toEqual(
      err(-32600, 'invalid request: "id" must be a string, a number or null', null),
    );
  });

  it("rejects an id that overflows to Infinity", async () => {
    const port = await serve();
    const res = await post(port, '{"jsonrpc":"2.0","method":"sum","params":{},"id":1e999}');
    expect(envelope(res)).toEqual(
      err(-32600, 'invalid request: "id" must be a string, a number or null', null),
    );
  });
});

describe("standard errors", () => {
  it.each([
    ["truncated JSON", '{"jsonrpc":"2.0","method":"sum"', "unexpected end of input"],
    ["a truncated string", '{"jsonrpc":"2.0","method":"su', "unexpected end of input"],
    ["a missing value", '{"jsonrpc":,"id":1}', "unexpected character ','"],
    ["a missing colon", '{"jsonrpc" "2.0"}', "expected ':' after property name at position 11"],
    ["an empty body", "", "empty body"],
    ["only whitespace", " \n\t", "empty body"],
    ["a bare word", "xyz", "unexpected character 'x'"],
    ["a trailing comma", "[1,]", "unexpected character ']'"],
    ["trailing data", '{"a":1}}', "unexpected non-whitespace character after JSON at position 7"],
    ["a control character", '"\u0001"', "bad control character in string literal at position 1"],
  ])("-32700 for %s", async (_name, body, detail) => {
    const port = await serve();
    const res = await post(port, body);
    expect(envelope(res)).toEqual(err(-32700, `JSON could not be decoded: ${detail}`, null));
  });

  it("-32700 for invalid UTF-8", async () => {
    const port = await serve();
    const body = Buffer.concat([
      Buffer.from('{"jsonrpc":"2.0","method":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}'),
    ]);
    const res = await post(port, body);
    expect(envelope(res)).toEqual(err(-32700, "JSON could not be decoded: body is not valid UTF-8", null));
  });

  it("ignores a leading byte order mark", async () => {
    const port = await serve();
    const res = await post(port, '\ufeff{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}');
    expect(envelope(res)).toEqual(ok({ v: 3 }, 1));
  });

  it.each([
    ["a number", "1", "expected a request object, got a number", null],
    ["a string", '"sum"', "expected a request object, got a string", null],
    ["null", "null", "expected a request object, got null", null],
    ["a boolean", "true", "expected a request object, got a boolean", null],
    ["a wrong version", '{"jsonrpc":"1.0","method":"sum","id":4}', '"jsonrpc" must be "2.0"', 4],
    ["a null version", '{"jsonrpc":null,"method":"sum","id":4}', '"jsonrpc" must be "2.0"', 4],
    ["a numeric version", '{"jsonrpc":2,"method":"sum","id":"x"}', '"jsonrpc" must be "2.0"', "x"],
    ["no method", '{"jsonrpc":"2.0","id":5}', '"method" must be a string', 5],
    ["a numeric method", '{"jsonrpc":"2.0","method":1,"id":5}', '"method" must be a string', 5],
    [
      "string params",
      '{"jsonrpc":"2.0","method":"sum","params":"a","id":6}',
      '"params" must be an object or an array',
      6,
    ],
    [
      "numeric params",
      '{"jsonrpc":"2.0","method":"sum","params":3,"id":6}',
      '"params" must be an object or an array',
      6,
    ],
    [
      "an invalid request without id",
      '{"jsonrpc":"2.0","method":1,"params":"bar"}',
      '"method" must be a string',
      null,
    ],
  ])("-32600 for %s", async (_name, body, detail, id) => {
    const port = await serve();
    const res = await post(port, body);
    expect(envelope(res)).toEqual(err(-32600, `invalid request: ${detail}`, id));
  });

  it("-32601 for unknown methods, including Object.prototype names", async () => {
    const port = await serve();
    for (const name of ["mul", "Sum", "constructor", "__proto__", "toString", "hasOwnProperty", ""]) {
      const res = await post(port, { jsonrpc: "2.0", method: name, params: {}, id: 1 });
      expect(envelope(res)).toEqual(err(-32601, `Method ${name} was not found.`, 1));
    }
  });

  it("-32601 cuts a very long method name in the message", async () => {
    const port = await serve();
    const name = "m".repeat(500);
    const res = await post(port, { jsonrpc: "2.0", method: name, id: 1 });
    expect(envelope(res)).toEqual(err(-32601, `Method ${"m".repeat(100)}… was not found.`, 1));
  });

  it("-32602 with the decoder's message when it throws INVALID_ARGUMENT", async () => {
    const port = await serve();
    const res = await post(port, { jsonrpc: "2.0", method: "sum", params: { a: "one" }, id: 2 });
    expect(envelope(res)).toEqual(err(-32602, "a must be an integer", 2, { code: "INVALID_ARGUMENT" }));
    const array = await post(port, { jsonrpc: "2.0", method: "sum", params: [1, 2], id: 3 });
    expect(envelope(array)).toEqual(err(-32602, "params must be an object", 3, { code: "INVALID_ARGUMENT" }));
  });

  it("-32602 keeps the decoder's details", async () => {
    const details = [{ type: "google.rpc.BadRequest", value: { fieldViolations: [{ field: "a" }] } }];
    const port = await serve({
      m: jsonRpcMethod(
        async () => 1,
        () => {
          throw new ServiceError(Code.INVALID_ARGUMENT, "bad a", { details });
        },
        asIs,
      ),
    });
    const res = await post(port, { jsonrpc: "2.0", method: "m", params: {}, id: 1 });
    expect(envelope(res)).toEqual(err(-32602, "bad a", 1, { code: "INVALID_ARGUMENT", details }));
  });

  it("passes params null and absent params to the decoder", async () => {
    const seen: unknown[] = [];
    const port = await serve({
      m: jsonRpcMethod(
        async () => "ok",
        (_ctx, params) => {
          seen.push(params);
          return params;
        },
        asIs,
      ),
    });
    expect(envelope(await post(port, '{"jsonrpc":"2.0","method":"m","params":null,"id":1}'))).toEqual(
      ok("ok", 1),
    );
    expect(envelope(await post(port, '{"jsonrpc":"2.0","method":"m","id":2}'))).toEqual(ok("ok", 2));
    expect(seen).toEqual([null, undefined]);
  });

  it("-32603 with a generic message for anything that is not a ServiceError", async () => {
    const secret = "password=hunter2";
    const failing = (where: "decode" | "endpoint" | "encode"): JsonRpcMethod =>
      jsonRpcMethod(
        async () => {
          if (where === "endpoint") throw new Error(secret);
          return 1;
        },
        () => {
          if (where === "decode") throw new TypeError(secret);
          return {};
        },
        () => {
          if (where === "encode") throw secret;
          return 1;
        },
      );
    const port = await serve({ d: failing("decode"), e: failing("endpoint"), n: failing("encode") });
    for (const method of ["d", "e", "n"]) {
      const res = await post(port, { jsonrpc: "2.0", method, id: 1 });
      expect(res.text).not.toContain("hunter2");
      expect(envelope(res)).toEqual(err(-32603, "internal error", 1, { code: "INTERNAL" }));
    }
  });

  it("-32603 when the result cannot be serialised", async () => {
    const port = await serve({
      big: jsonRpcMethod(async () => 1n, asIs, asIs),
      cycle: jsonRpcMethod(
        async () => {
          const o: Record<string, unknown> = {};
          o.self = o;
          return o;
        },
        asIs,
        asIs,
      ),
    });
    for (const method of ["big", "cycle"]) {
      const res = await post(port, { jsonrpc: "2.0", method, id: 1 });
      expect(envelope(res)).toEqual(err(-32603, "internal error", 1, { code: "INTERNAL" }));
    }
  });

  it("answers result null when the encoder returns undefined", async () => {
    const port = await serve({ nothing: jsonRpcMethod(async () => undefined, asIs, asIs) });
    const res = await post(port, { jsonrpc: "2.0", method: "nothing", id: 1 });
    expect(res.text).toBe('{"jsonrpc":"2.0","result":null,"id":1}');
  });
});

describe("ServiceError codes", () => {
  const names = (Object.values(codeNames) as CodeName[]).filter((name) => name !== "OK");

  it.each(names)("maps %s thrown by the endpoint to its JSON-RPC code with data.code", async (name) => {
    const code = Code[name];
    const port = await serve({
      fail: jsonRpcMethod(
        async () => {
          throw new ServiceError(code, `failed with ${name}`);
        },
        asIs,
        asIs,
      ),
    });
    const res = await post(port, { jsonrpc: "2.0", method: "fail", id: 1 });
    expect(envelope(res)).toEqual(err(codeToJsonRpcCode[code], `failed with ${name}`, 1, { code: name }));
  });

  it("uses the fixed table: INTERNAL is -32603, any other code c is -32000 - c", () => {
    for (const name of names) {
      expect(codeToJsonRpcCode[Code[name]]).toBe(name === "INTERNAL" ? -32603 : -32000 - Code[name]);
    }
    expect(codeToJsonRpcCode[Code.RESOURCE_EXHAUSTED]).toBe(-32008);
    expect(codeToJsonRpcCode[Code.UNAVAILABLE]).toBe(-32014);
  });

  it("sends details in data", async () => {
    const details = [{ type: "retry", value: { afterMs: 100 } }];
    const port = await serve({
      fail: jsonRpcMethod(
        async () => {
          throw new ServiceError(Code.RESOURCE_EXHAUSTED, "rate limited", { details });
        },
        asIs,
        asIs,
      ),
    });
    const res = await post(port, { jsonrpc: "2.0", method: "fail", id: 1 });
    expect(envelope(res)).toEqual(err(-32008, "rate limited", 1, { code: "RESOURCE_EXHAUSTED", details }));
  });

  it("sends a JsonRpcError's own code and data", async () => {
    const port = await serve({
      custom: jsonRpcMethod(
        async () => {
          throw new JsonRpcError(-32050, Code.UNAVAILABLE, "upstream down", { data: { retryAfter: 2 } });
        },
        asIs,
        asIs,
      ),
      plain: jsonRpcMethod(
        async () => {
          throw new JsonRpcError(42, Code.ABORTED, "app error");
        },
        asIs,
        asIs,
      ),
    });
    expect(envelope(await post(port, { jsonrpc: "2.0", method: "custom", id: 1 }))).toEqual(
      err(-32050, "upstream down", 1, { retryAfter: 2 }),
    );
    expect(envelope(await post(port, { jsonrpc: "2.0", method: "plain", id: 2 }))).toEqual(
      err(42, "app error", 2),
    );
  });

  it("drops data that cannot be serialised but keeps code and message", async () => {
    const port = await serve({
      fail: jsonRpcMethod(
        async () => {
          throw new ServiceError(Code.NOT_FOUND, "gone", { details: [{ type: "n", value: 1n }] });
        },
        asIs,
        asIs,
      ),
    });
    expect(envelope(await post(port, { jsonrpc: "2.0", method: "fail", id: 1 }))).toEqual(
      err(-32005, "gone", 1),
    );
  });
});

describe("errors from a downstream JSON-RPC service (two hops)", () => {
  const details = [{ type: "user", value: { id: 42 } }];
  const throwing = (error: ServiceError): JsonRpcMethod =>
    jsonRpcMethod(
      async () => {
        throw error;
      },
      asIs,
      asIs,
    );

  /**
   * Server B: addsvc (real -32601 for unknown methods, -32602 from its decoders, 413 + -32600 over its
   * 256-byte body limit) plus methods that fail with the errors B chose to send.
   */
  async function serverB(): Promise<string> {
    const methods: Record<string, JsonRpcMethod> = {
      ...addsvcMethods(),
      parseError: throwing(new JsonRpcError(-32700, Code.INVALID_ARGUMENT, "Parse error")),
      invalidRequest: throwing(new JsonRpcError(-32600, Code.INVALID_ARGUMENT, "Invalid Request")),
      internal: throwing(new ServiceError(Code.INTERNAL, "db is down")),
      notFound: throwing(new ServiceError(Code.NOT_FOUND, "no user 42", { details })),
      serverRange: throwing(
        new JsonRpcError(-32050, Code.UNAVAILABLE, "upstream down", { data: { retryAfter: 2 } }),
      ),
      application: throwing(
        new JsonRpcError(4001, Code.FAILED_PRECONDITION, "insufficient funds", { data: { balance: 3 } }),
      ),
    };
    return (await listen(createJsonRpcHandler(methods, { bodyLimit: 256 }))).url;
  }

  type Relay = { method: string; params: unknown };
  const asRelay = (_ctx: Context, params: unknown): Relay => params as Relay;

  /** Server A's `relay`: calls B's `params.method` with `params.params` through the client, errors let through. */
  const relay = (bUrl: string): JsonRpcMethod =>
    jsonRpcMethod(
      (ctx: Context, req: Relay) => createJsonRpcClient(bUrl, req.method, asIs, asIs)(ctx, req.params),
      asRelay,
      asIs,
    );

  it.each([
    [
      "-32601 (method not found)",
      "mul",
      { a: 1, b: 2 },
      err(-32012, "Method mul was not found.", 1, { code: "UNIMPLEMENTED" }),
    ],
    [
      "-32602 (invalid params)",
      "sum",
      { a: "x", b: 2 },
      err(-32003, "a must be an integer", 1, { code: "INVALID_ARGUMENT" }),
    ],
    [
      "-32600 (invalid request, HTTP 413)",
      "concat",
      { a: "x".repeat(300), b: "" },
      err(-32008, "request body exceeds the limit of 256 bytes", 1, { code: "RESOURCE_EXHAUSTED" }),
    ],
    [
      "-32600 (invalid request)",
      "invalidRequest",
      {},
      err(-32603, "Invalid Request", 1, { code: "INTERNAL" }),
    ],
    ["-32700 (parse error)", "parseError", {}, err(-32603, "Parse error", 1, { code: "INTERNAL" })],
    ["-32603 (internal error)", "internal", {}, err(-32603, "db is down", 1, { code: "INTERNAL" })],
    [
      "-32005 (svckit's NOT_FOUND, unchanged)",
      "notFound",
      {},
      err(-32005, "no user 42", 1, { code: "NOT_FOUND", details }),
    ],
    [
      "-32050 (a server-error code of B's own)",
      "serverRange",
      {},
      err(-32002, "upstream down", 1, { code: "UNKNOWN" }),
    ],
    [
      "4001 (an application code, passed through with its data)",
      "application",
      {},
      err(4001, "insufficient funds", 1, { balance: 3 }),
    ],
  ])("answers A's caller for B's %s with the canonical code", async (_label, method, params, expected) => {
    const a = await serve({ relay: relay(await serverB()) });
    const res = await post(a, { jsonrpc: "2.0", method: "relay", params: { method, params }, id: 1 });
    expect(envelope(res)).toEqual(expected);
  });

  it("still sends a JsonRpcError the endpoint constructs itself as it is, protocol codes included", async () => {
    const bUrl = await serverB();
    const a = await serve({
      local: throwing(new JsonRpcError(-32602, Code.INVALID_ARGUMENT, "b must be a number")),
      // Passing a downstream's protocol code on is a deliberate choice: construct the error here.
      rethrow: jsonRpcMethod(
        async (ctx: Context) => {
          try {
            return await createJsonRpcClient(bUrl, "mul", asIs, asIs)(ctx, {});
          } catch (e) {
            if (!(e instanceof JsonRpcError)) throw e;
            throw new JsonRpcError(e.rpcCode, e.code, e.message, { data: e.data });
          }
        },
        asIs,
        asIs,
      ),
    });
    expect(envelope(await post(a, { jsonrpc: "2.0", method: "local", id: 1 }))).toEqual(
      err(-32602, "b must be a number", 1),
    );
    expect(envelope(await post(a, { jsonrpc: "2.0", method: "rethrow", id: 2 }))).toEqual(
      err(-32601, "Method mul was not found.", 2),
    );
  });

  it("answers -32602 when a params decoder gets INVALID_ARGUMENT from a downstream call, else the canonical code", async () => {
    const bUrl = await serverB();
    const a = await serve({
      checked: jsonRpcMethod(
        async () => "ok",
        async (ctx, params) => {
          const req = asRelay(ctx, params);
          await createJsonRpcClient(bUrl, req.method, asIs, asIs)(ctx, req.params);
          return req;
        },
        asIs,
      ),
    });
    const call = (id: number, method: string, params: unknown) =>
      post(a, { jsonrpc: "2.0", method: "checked", params: { method, params }, id });
    expect(envelope(await call(1, "sum", { a: "x" }))).toEqual(
      err(-32602, "a must be an integer", 1, { code: "INVALID_ARGUMENT" }),
    );
    expect(envelope(await call(2, "mul", {}))).toEqual(
      err(-32012, "Method mul was not found.", 2, { code: "UNIMPLEMENTED" }),
    );
  });

  it("shows a custom errorEncoder and the errorHandler the downstream's error with remote set", async () => {
    const told: ServiceError[] = [];
    const a = await serve(
      {
        relay: relay(await serverB()),
        local: throwing(new JsonRpcError(-32601, Code.UNIMPLEMENTED, "gone")),
      },
      {
        errorEncoder: (ctx, e) =>
          e instanceof JsonRpcError && e.remote
            ? { code: -32099, message: `downstream: ${e.message}`, data: e.rpcCode }
            : defaultJsonRpcErrorEncoder(ctx, e),
        errorHandler: (_ctx, e) => {
          told.push(e);
        },
      },
    );
    const relayed = await post(a, {
      jsonrpc: "2.0",
      method: "relay",
      params: { method: "mul", params: {} },
      id: 1,
    });
    expect(envelope(relayed)).toEqual(err(-32099, "downstream: Method mul was not found.", 1, -32601));
    expect(envelope(await post(a, { jsonrpc: "2.0", method: "local", id: 2 }))).toEqual(
      err(-32601, "gone", 2),
    );
    expect(
      told.map((e) => [e instanceof JsonRpcError && e.rpcCode, e instanceof JsonRpcError && e.remote]),
    ).toEqual([
      [-32601, true],
      [-32601, false],
    ]);
  });

  it("re-encodes a downstream's protocol code in every answer of a batch", async () => {
    const a = await serve({ relay: relay(await serverB()) });
    const res = await post(a, [
      { jsonrpc: "2.0", method: "relay", params: { method: "mul", params: {} }, id: 1 },
      { jsonrpc: "2.0", method: "relay", params: { method: "sum", params: { a: 1, b: 2 } }, id: 2 },
      { jsonrpc: "2.0", method: "nope", id: 3 },
    ]);
    expect(envelope(res)).toEqual([
      err(-32012, "Method mul was not found.", 1, { code: "UNIMPLEMENTED" }),
      ok({ v: 3 }, 2),
      err(-32601, "Method nope was not found.", 3),
    ]);
  });
});

describe("notifications", () => {
  it("runs a notification and answers 204 without a body", async () => {
    const seen: unknown[] = [];
    const port = await serve({
      log: jsonRpcMethod(
        async (_ctx, req) => {
          seen.push(req);
          return "done";
        },
        asIs,
        asIs,
      ),
    });
    const res = await post(port, '{"jsonrpc":"2.0","method":"log","params":["hello"]}');
    expect(res.status).toBe(204);
    expect(res.body.byteLength).toBe(0);
    expect(res.headers["content-type"]).toBeUndefined();
    expect(seen).toEqual([["hello"]]);
  });

  it("does not answer a failing notification or one to an unknown method, but tells the errorHandler", async () => {
    const told: [string, ServiceError][] = [];
    const port = await serve(addsvcMethods(), {
      errorHandler: (ctx, e) => told.push([(ctx.value(callInfoKey) as CallInfo).method, e]),
    });
    const unknown = await post(port, '{"jsonrpc":"2.0","method":"mul","params":{}}');
    expect(unknown.status).toBe(204);
    expect(unknown.text).toBe("");
    const failing = await post(port, '{"jsonrpc":"2.0","method":"sum","params":{"a":0,"b":0}}');
    expect(failing.status).toBe(204);
    expect(told.map(([method, e]) => [method, e.code, e.message])).toEqual([
      ["unknown", Code.UNIMPLEMENTED, "Method mul was not found."],
      ["sum", Code.INVALID_ARGUMENT, "can't sum two zeroes"],
    ]);
  });

  it("treats an explicit id null as a request, not a notification", async () => {
    const port = await serve();
    const res = await post(port, '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":null}');
    expect(res.text).toBe('{"jsonrpc":"2.0","result":{"v":3},"id":null}');
  });
});

describe("batches", () => {
  it("answers a mixed batch in request order, leaving out notifications", async () => {
    const port = await serve();
    const batch = [
      { jsonrpc: "2.0", method: "sum", params: { a: 1, b: 2 }, id: 1 },
      { jsonrpc: "2.0", method: "sum", params: { a: 5, b: 5 } },
      { jsonrpc: "2.0", method: "mul", params: {}, id: 2 },
      5,
      { jsonrpc: "2.0", method: "sum", params: { a: 0, b: 0 }, id: "x" },
      { jsonrpc: "", method: "concat", params: { A: "ab", B: "cd" }, id: 0 },
      { jsonrpc: "2.0", method: "sum", params: { a: "no" }, id: 3 },
      { jsonrpc: "2.0", method: "mul" },
    ];
    const res = await post(port, batch);
    expect(envelope(res)).toEqual([
      ok({ v: 3 }, 1),
      err(-32601, "Method mul was not found.", 2),
      err(-32600, "invalid request: expected a request object, got a number", null),
      err(-32003, "can't sum two zeroes", "x", { code: "INVALID_ARGUMENT" }),
      ok({ v: "abcd" }, 0),
      err(-32602, "a must be an integer", 3, { code: "INVALID_ARGUMENT" }),
    ]);
  });

  it("answers the specification's [1,2,3] with three errors", async () => {
    const port = await serve();
    const res = await post(port, "[1,2,3]");
    const one = err(-32600, "invalid request: expected a request object, got a number", null);
    expect(envelope(res)).toEqual([one, one, one]);
  });

  it("answers a nested array entry as an invalid request", async () => {
    const port = await serve();
    const res = await post(port, "[[]]");
    expect(envelope(res)).toEqual([
      err(-32600, "invalid request: expected a request object, got an array", null),
    ]);
  });

  it("keeps request order when later calls finish first", async () => {
    const delay: Endpoint<number, number> = (_ctx, ms) =>
      new Promise((resolve) => setTimeout(() => resolve(ms), ms));
    const port = await serve({
      delay: jsonRpcMethod(delay, (_ctx, p) => (p as number[])[0] as number, asIs),
    });
    const batch = [40, 30, 20, 10, 0].map((ms, i) => ({
      jsonrpc: "2.0",
      method: "delay",
      params: [ms],
      id: i,
    }));
    const res = await post(port, batch);
    expect(envelope(res)).toEqual([40, 30, 20, 10, 0].map((ms, i) => ok(ms, i)));
  });

  it("answers an empty batch with one Invalid Request error, not an array", async () => {
    const port = await serve();
    const res = await post(port, "[]");
    expect(res.text).toBe(
      '{"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid request: empty batch"},"id":null}',
    );
    expect(envelope(res)).toEqual(err(-32600, "invalid request: empty batch", null));
  });

  it("answers a batch over maxBatchSize with one error and runs none of it", async () => {
    let calls = 0;
    const port = await serve(
      {
        count: jsonRpcMethod(async () => ++calls, asIs, asIs),
      },
      { maxBatchSize: 3 },
    );
    const batch = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ jsonrpc: "2.0", method: "count", id: i }));
    const res = await post(port, batch(4));
    expect(envelope(res)).toEqual(
      err(-32600, "invalid request: a batch of 4 requests exceeds the limit of 3", null),
    );
    expect(calls).toBe(0);
    const fits = await post(port, batch(3));
    expect((envelope(fits) as unknown[]).length).toBe(3);
  });

  it("has a default maxBatchSize of 100", async () => {
    const port = await serve();
    const batch = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ jsonrpc: "2.0", method: "sum", params: { a: i, b: 1 }, id: i }));
    expect((envelope(await post(port, batch(100))) as unknown[]).length).toBe(100);
    expect(envelope(await post(port, batch(101)))).toEqual(
      err(-32600, "invalid request: a batch of 101 requests exceeds the limit of 100", null),
    );
  });

  it("answers 204 when every call of a batch is a notification", async () => {
    let calls = 0;
    const port = await serve({ n: jsonRpcMethod(async () => ++calls, asIs, asIs) });
    const res = await post(port, [
      { jsonrpc: "2.0", method: "n" },
      { jsonrpc: "2.0", method: "n", params: [] },
      { jsonrpc: "2.0", method: "unknown" },
    ]);
    expect(res.status).toBe(204);
    expect(res.text).toBe("");
    expect(calls).toBe(2);
  });

  it("answers the notifications of a batch with id null in answerNotifications mode", async () => {
    const port = await serve(addsvcMethods(), { answerNotifications: true });
    const res = await post(port, [
      { jsonrpc: "2.0", method: "sum", params: { a: 1, b: 1 } },
      { jsonrpc: "2.0", method: "sum", params: { a: 2, b: 2 }, id: 7 },
    ]);
    expect(envelope(res)).toEqual([ok({ v: 2 }, null), ok({ v: 4 }, 7)]);
  });

  it("runs at most batchConcurrency calls of a batch at once", async () => {
    let running = 0;
    let peak = 0;
    const work: Endpoint<unknown, number> = async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return peak;
    };
    const port = await serve({ w: jsonRpcMethod(work, asIs, asIs) }, { batchConcurrency: 2 });
    const batch = Array.from({ length: 7 }, (_, i) => ({ jsonrpc: "2.0", method: "w", id: i }));
    const res = await post(port, batch);
    expect((envelope(res) as unknown[]).length).toBe(7);
    expect(peak).toBe(2);
  });

  it("runs the calls of a batch concurrently by default", async () => {
    let running = 0;
    let peak = 0;
    const work: Endpoint<unknown, number> = async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return 0;
    };
    const port = await serve({ w: jsonRpcMethod(work, asIs, asIs) });
    await post(
      port,
      Array.from({ length: 20 }, (_, i) => ({ jsonrpc: "2.0", method: "w", id: i })),
    );
    expect(peak).toBe(16);
  });

  it("gives each call of a batch its own CallInfo", async () => {
    const seen: [string, unknown][] = [];
    const record: Endpoint<unknown, null> = async (ctx, req) => {
      seen.push([(ctx.value(callInfoKey) as CallInfo).method, req]);
      return null;
    };
    const port = await serve({ a: jsonRpcMethod(record, asIs, asIs), b: jsonRpcMethod(record, asIs, asIs) });
    await post(port, [
      { jsonrpc: "2.0", method: "a", params: [1], id: 1 },
      { jsonrpc: "2.0", method: "b", params: [2], id: 2 },
    ]);
    expect(seen.sort()).toEqual([
      ["a", [1]],
      ["b", [2]],
    ]);
  });
});

describe("HTTP", () => {
  it.each(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])(
    "answers %s with 405, Allow: POST and an envelope",
    async (method) => {
      const port = await serve();
      const res = await send(port, { method, headers: {} });
      expect(res.headers.allow).toBe("POST");
      expect(envelope(res, 405)).toEqual(err(-32600, `method ${method} is not allowed: use POST`, null));
    },
  );

  it("answers HEAD with 405 and no body", async () => {
    const port = await serve();
    const res = await send(port, { method: "HEAD", headers: {} });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("POST");
    expect(res.text).toBe("");
  });

  it.each([
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
  ])("answers content type %s with 415", async (type) => {
    const port = await serve();
    const res = await post(port, '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}', {
      "content-type": type,
    });
    expect(envelope(res, 415)).toEqual(
      err(-32600, `unsupported content type "${type}": expected application/json`, null),
    );
  });

  it("closes the connection after an early refusal when the declared body is over the limit", async () => {
    const port = await serve(addsvcMethods(), { bodyLimit: 1024 });
    const large = await send(port, {
      headers: { "content-type": "text/plain", connection: "keep-alive" },
      body: Buffer.alloc(64 * 1024, 0x20),
    });
    expect(large.status).toBe(415);
    expect(large.headers.connection).toBe("close");
    const small = await send(port, {
      headers: { "content-type": "text/plain", connection: "keep-alive" },
      body: "{}",
    });
    expect(small.status).toBe(415);
    expect(small.headers.connection).toBe("keep-alive");
    const timeout = await send(port, {
      headers: { "content-type": "application/json", "x-request-timeout": "soon", connection: "keep-alive" },
      body: Buffer.alloc(64 * 1024, 0x20),
    });
    expect(timeout.status).toBe(400);
    expect(timeout.headers.connection).toBe("close");
  });

  it.each([
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json-rpc",
    "application/jsonrequest",
    "application/vnd.api+json",
    undefined,
  ])("accepts content type %s", async (type) => {
    const port = await serve();
    const res = await post(
      port,
      '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}',
      type === undefined ? {} : { "content-type": type },
    );
    expect(envelope(res)).toEqual(ok({ v: 3 }, 1));
  });

  it('accepts any content type with contentTypes: "any", as go-kit does', async () => {
    const port = await serve(addsvcMethods(), { contentTypes: "any" });
    const res = await post(port, '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}', {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(envelope(res)).toEqual(ok({ v: 3 }, 1));
  });

  it("answers a declared body over the limit with 413 without reading it", async () => {
    const port = await serve(addsvcMethods(), { bodyLimit: 64 });
    const body = JSON.stringify({
      jsonrpc: "2.0",
      method: "concat",
      params: { a: "x".repeat(100), b: "" },
      id: 1,
    });
    const res = await post(port, body);
    expect(envelope(res, 413)).toEqual(err(-32600, "request body exceeds the limit of 64 bytes", null));
  });

  it("answers a chunked body that grows over the limit with 413 and closes the connection", async () => {
    const port = await serve(addsvcMethods(), { bodyLimit: 1024 });
    const res = await send(port, {
      headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      body: `[${'{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1},'.repeat(100)}1]`,
    });
    expect(res.headers.connection).toBe("close");
    expect(envelope(res, 413)).toEqual(err(-32600, "request body exceeds the limit of 1024 bytes", null));
  });

  it("has a 1 MiB default body limit", async () => {
    const port = await serve();
    const padding = " ".repeat((1 << 20) - 80);
    const fits = await post(port, `${padding}{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}`);
    expect(envelope(fits)).toEqual(ok({ v: 3 }, 1));
    const huge = await post(port, `${padding}${" ".repeat(100)}{"jsonrpc":"2.0","method":"sum","id":1}`);
    expect(envelope(huge, 413)).toEqual(
      err(-32600, `request body exceeds the limit of ${1 << 20} bytes`, null),
    );
  });

  it("answers a malformed timeout header with 400", async () => {
    const port = await serve();
    for (const value of ["soon", "-1", "1.5", "12345678901"]) {
      const res = await post(port, '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}', {
        "content-type": "application/json",
        "x-request-timeout": value,
      });
      expect(envelope(res, 400)).toEqual(
        err(-32600, "invalid x-request-timeout header: expected a whole number of milliseconds", null),
      );
    }
  });

  it("rejects bad options at setup", () => {
    expect(() => createJsonRpcHandler({}, { bodyLimit: -1 })).toThrow(RangeError);
    expect(() => createJsonRpcHandler({}, { maxBatchSize: 0 })).toThrow(RangeError);
    expect(() => createJsonRpcHandler({}, { batchConcurrency: 0 })).toThrow(RangeError);
    expect(() => createJsonRpcHandler({ x: {} as JsonRpcMethod })).toThrow(
      "createJsonRpcHandler: methods.x is not a jsonRpcMethod(...)",
    );
  });
});

describe("context and hooks", () => {
  it("puts CallInfo, the headers as metadata and the caller's deadline in the context", async () => {
    const seen = deferred<{ info: unknown; tenant: string | undefined; remaining: number | undefined }>();
    const port = await serve({
      probe: jsonRpcMethod(
        async (ctx: Context) => {
          seen.resolve({
            info: ctx.value(callInfoKey),
            tenant: ctx.metadata.get("x-tenant"),
            remaining: ctx.timeRemaining(),
          });
          return null;
        },
        asIs,
        asIs,
      ),
    });
    await post(
      port,
      { jsonrpc: "2.0", method: "probe", id: 1 },
      {
        "content-type": "application/json",
        "x-tenant": "acme",
        "x-request-timeout": "5000",
      },
    );
    const { info, tenant, remaining } = await seen.promise;
    expect(info).toEqual({ transport: "jsonrpc", method: "probe" });
    expect(tenant).toBe("acme");
    expect(remaining).toBeGreaterThan(4000);
    expect(remaining).toBeLessThanOrEqual(5000);
  });

  it("cuts the caller's deadline to maxTimeout, and ignores it with timeoutHeader: false", async () => {
    const remaining: (number | undefined)[] = [];
    const methods = {
      probe: jsonRpcMethod(
        async (ctx: Context) => {
          remaining.push(ctx.timeRemaining());
          return null;
        },
        asIs,
        asIs,
      ),
    };
    const headers = { "content-type": "application/json", "x-request-timeout": "60000" };
    await post(
      await serve(methods, { maxTimeout: 1000 }),
      { jsonrpc: "2.0", method: "probe", id: 1 },
      headers,
    );
    await post(
      await serve(methods, { timeoutHeader: false }),
      { jsonrpc: "2.0", method: "probe", id: 1 },
      headers,
    );
    await post(
      await serve(methods, { timeoutHeader: "Grpc-Timeout-Ms" }),
      { jsonrpc: "2.0", method: "probe", id: 1 },
      { "content-type": "application/json", "grpc-timeout-ms": "2000" },
    );
    expect(remaining[0]).toBeLessThanOrEqual(1000);
    expect(remaining[0]).toBeGreaterThan(500);
    expect(remaining[1]).toBeUndefined();
    expect(remaining[2]).toBeLessThanOrEqual(2000);
    expect(remaining[2]).toBeGreaterThan(1000);
  });

  it("answers DEADLINE_EXCEEDED when the caller's deadline passes", async () => {
    const port = await serve({
      slow: jsonRpcMethod(
        async (ctx: Context) => {
          await aborted(ctx.signal);
          throw ctx.signal.reason;
        },
        asIs,
        asIs,
      ),
    });
    const res = await post(
      port,
      { jsonrpc: "2.0", method: "slow", id: 1 },
      {
        "content-type": "application/json",
        "x-request-timeout": "20",
      },
    );
    expect(envelope(res)).toEqual(err(-32004, "deadline exceeded", 1, { code: "DEADLINE_EXCEEDED" }));
  });

  it("runs server before, then method before, with the HTTP request and the call; they derive the context", async () => {
    const userKey = createContextKey<string[]>([], { description: "trail" });
    const order: string[] = [];
    const port = await serve(
      {
        who: jsonRpcMethod(async (ctx: Context) => ctx.value(userKey), asIs, asIs, {
          before: [
            (ctx, request, call) => {
              order.push(`method:${request.path}:${call.method}:${String(call.id)}`);
              return ctx.with(userKey, [...ctx.value(userKey), "method"]);
            },
          ],
        }),
      },
      {
        before: [
          (ctx, request, call) => {
            order.push(`server:${request.method}:${call.method}:${JSON.stringify(call.params)}`);
            return ctx.with(userKey, [String(request.headers["x-user"])]);
          },
          () => undefined,
        ],
      },
    );
    const res = await send(port, {
      path: "/rpc?x=1",
      headers: { "content-type": "application/json", "x-user": "ada" },
      body: '{"jsonrpc":"2.0","method":"who","params":[1],"id":4}',
    });
    expect(envelope(res)).toEqual(ok(["ada", "method"], 4));
    expect(order).toEqual(["server:POST:who:[1]", "method:/rpc:who:4"]);
  });

  it("runs after functions before writing, so they can set headers; a throwing one fails the call", async () => {
    const port = await serve(
      {
        ok: jsonRpcMethod(async () => 1, asIs, asIs, {
          after: [
            (_ctx, res) => {
              res.setHeader("x-method", "ok");
              return undefined;
            },
          ],
        }),
        boom: jsonRpcMethod(async () => 1, asIs, asIs, {
          after: [
            () => {
              throw new ServiceError(Code.FAILED_PRECONDITION, "after said no");
            },
          ],
        }),
      },
      {
        after: [
          (ctx, res) => {
            res.setHeader("x-server", "yes");
            return ctx;
          },
        ],
      },
    );
    const res = await post(port, { jsonrpc: "2.0", method: "ok", id: 1 });
    expect(res.headers["x-server"]).toBe("yes");
    expect(res.headers["x-method"]).toBe("ok");
    expect(envelope(res)).toEqual(ok(1, 1));
    const boom = await post(port, { jsonrpc: "2.0", method: "boom", id: 2 });
    expect(envelope(boom)).toEqual(err(-32009, "after said no", 2, { code: "FAILED_PRECONDITION" }));
  });

  it("a throwing before function fails the call with its error", async () => {
    const port = await serve(addsvcMethods(), {
      before: [
        (_ctx, request) => {
          if (request.headers.authorization === undefined)
            throw new ServiceError(Code.UNAUTHENTICATED, "no token");
          return undefined;
        },
      ],
    });
    const res = await post(port, { jsonrpc: "2.0", method: "sum", params: { a: 1, b: 2 }, id: 1 });
    expect(envelope(res)).toEqual(err(-32016, "no token", 1, { code: "UNAUTHENTICATED" }));
  });

  it("uses a custom errorEncoder, and falls back to -32603 when it throws or returns garbage", async () => {
    const fail = jsonRpcMethod(
      async () => {
        throw new ServiceError(Code.NOT_FOUND, "no such thing");
      },
      asIs,
      asIs,
    );
    const custom = await serve(
      { fail },
      { errorEncoder: (_ctx, e) => ({ code: -1, message: `custom: ${e.message}`, data: e.codeName }) },
    );
    expect(envelope(await post(custom, { jsonrpc: "2.0", method: "fail", id: 1 }))).toEqual(
      err(-1, "custom: no such thing", 1, "NOT_FOUND"),
    );
    const throwing = await serve(
      { fail },
      {
        errorEncoder: () => {
          throw new Error("encoder bug");
        },
      },
    );
    expect(envelope(await post(throwing, { jsonrpc: "2.0", method: "fail", id: 1 }))).toEqual(
      err(-32603, "internal error", 1, { code: "INTERNAL" }),
    );
    const garbage = await serve({ fail }, { errorEncoder: () => ({ code: 1.5, message: "x" }) });
    expect(envelope(await post(garbage, { jsonrpc: "2.0", method: "fail", id: 1 }))).toEqual(
      err(-32603, "internal error", 1, { code: "INTERNAL" }),
    );
    // The errorEncoder also writes the HTTP-level errors.
    const http405 = await send(custom, { method: "GET", headers: {} });
    expect(envelope(http405, 405)).toEqual(
      err(-1, "custom: method GET is not allowed: use POST", null, "UNIMPLEMENTED"),
    );
  });

  it("tells the errorHandler of every error with the original as cause; a throwing one changes nothing", async () => {
    const told: ServiceError[] = [];
    const boom = new Error("boom");
    const port = await serve(
      {
        fail: jsonRpcMethod(
          async () => {
            throw boom;
          },
          asIs,
          asIs,
        ),
      },
      {
        errorHandler: (_ctx, e) => {
          told.push(e);
          throw new Error("handler bug");
        },
      },
    );
    const res = await post(port, { jsonrpc: "2.0", method: "fail", id: 1 });
    expect(envelope(res)).toEqual(err(-32603, "internal error", 1, { code: "INTERNAL" }));
    await post(port, "{");
    expect(told.map((e) => [e.code, e.message])).toEqual([
      [Code.INTERNAL, "internal error"],
      [Code.INVALID_ARGUMENT, "JSON could not be decoded: unexpected end of input"],
    ]);
    expect(told[0]?.cause).toBe(boom);
  });

  it("runs the finalizers once per call with status, bytes, call and error", async () => {
    const infos: JsonRpcServerFinalizerInfo[] = [];
    const methods: string[] = [];
    const port = await serve(addsvcMethods(), {
      finalizer: [
        (_ctx, info) => {
          infos.push(info);
          throw new Error("finalizer bug");
        },
        (ctx) => {
          methods.push((ctx.value(callInfoKey) as CallInfo).method);
        },
      ],
    });
    const single = await post(port, { jsonrpc: "2.0", method: "sum", params: { a: 1, b: 2 }, id: 1 });
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({
      status: 200,
      bytesWritten: single.body.byteLength,
      method: "sum",
      call: { method: "sum", params: { a: 1, b: 2 }, id: 1 },
      error: undefined,
    });
    expect(infos[0]?.request.method).toBe("POST");
    expect(infos[0]?.request.path).toBe("/rpc");
    expect(Buffer.from(infos[0]?.request.body ?? []).toString()).toContain('"sum"');

    infos.length = 0;
    const batch = await post(port, [
      { jsonrpc: "2.0", method: "sum", params: { a: 0, b: 0 }, id: 1 },
      { jsonrpc: "2.0", method: "mul", id: 2 },
      "x",
    ]);
    expect(infos.map((i) => [i.method, i.call?.method, i.status, i.bytesWritten, i.error?.code])).toEqual([
      ["sum", "sum", 200, batch.body.byteLength, Code.INVALID_ARGUMENT],
      ["unknown", "mul", 200, batch.body.byteLength, Code.UNIMPLEMENTED],
      ["unknown", undefined, 200, batch.body.byteLength, Code.INVALID_ARGUMENT],
    ]);

    infos.length = 0;
    await post(port, "{");
    await send(port, { method: "GET", headers: {} });
    await post(port, { jsonrpc: "2.0", method: "sum", params: { a: 1, b: 2 } });
    expect(infos.map((i) => [i.method, i.call?.method, i.status, i.error?.message])).toEqual([
      ["unknown", undefined, 200, "JSON could not be decoded: unexpected end of input"],
      ["unknown", undefined, 405, "method GET is not allowed: use POST"],
      ["sum", "sum", 204, undefined],
    ]);
    expect(methods).toEqual(["sum", "sum", "unknown", "unknown", "unknown", "unknown", "sum"]);
  });
});

describe("cancellation", () => {
  it("aborts ctx.signal with CANCELLED when the client disconnects; the finalizer reports 499", async () => {
    const started = deferred<void>();
    const observed = deferred<unknown>();
    const finalized = deferred<JsonRpcServerFinalizerInfo>();
    const port = await serve(
      {
        wait: jsonRpcMethod(
          async (ctx: Context) => {
            const signal = ctx.signal;
            started.resolve();
            await aborted(signal);
            observed.resolve(signal.reason);
            throw signal.reason;
          },
          asIs,
          asIs,
        ),
      },
      { finalizer: (_ctx, info) => finalized.resolve(info) },
    );
    const req = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json" },
    });
    req.on("error", () => {
      // We hang up on purpose.
    });
    req.end('{"jsonrpc":"2.0","method":"wait","id":1}');
    await started.promise;
    req.destroy();
    const reason = await observed.promise;
    expect(reason).toBeInstanceOf(ServiceError);
    expect((reason as ServiceError).code).toBe(Code.CANCELLED);
    const info = await finalized.promise;
    expect(info.status).toBe(499);
    expect(info.bytesWritten).toBe(0);
    expect(info.error?.code).toBe(Code.CANCELLED);
  });

  it("aborts every call of a batch when the client disconnects", async () => {
    let started = 0;
    const allStarted = deferred<void>();
    const reasons: unknown[] = [];
    const done = deferred<void>();
    const port = await serve({
      wait: jsonRpcMethod(
        async (ctx: Context) => {
          const signal = ctx.signal;
          if (++started === 3) allStarted.resolve();
          await aborted(signal);
          reasons.push((signal.reason as ServiceError).code);
          if (reasons.length === 3) done.resolve();
          throw signal.reason;
        },
        asIs,
        asIs,
      ),
    });
    const req = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json" },
    });
    req.on("error", () => {
      // We hang up on purpose.
    });
    req.end(JSON.stringify([1, 2, 3].map((id) => ({ jsonrpc: "2.0", method: "wait", id }))));
    await allStarted.promise;
    req.destroy();
    await done.promise;
    expect(reasons).toEqual([Code.CANCELLED, Code.CANCELLED, Code.CANCELLED]);
  });

  it("does not call the endpoint when the client leaves in the middle of the body", async () => {
    let called = false;
    const finalized = deferred<JsonRpcServerFinalizerInfo>();
    const port = await serve(
      {
        m: jsonRpcMethod(
          async () => {
            called = true;
            return 1;
          },
          asIs,
          asIs,
        ),
      },
      { finalizer: (_ctx, info) => finalized.resolve(info) },
    );
    const req = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json", "content-length": "1000" },
    });
    req.on("error", () => {
      // We hang up on purpose.
    });
    req.write('{"jsonrpc":"2.0","method":"m"');
    await new Promise((resolve) => setTimeout(resolve, 20));
    req.destroy();
    const info = await finalized.promise;
    expect(info.status).toBe(499);
    expect(info.error?.code).toBe(Code.CANCELLED);
    expect(called).toBe(false);
  });
});

describe("express", () => {
  it("works as an express route handler, with or without express.json() first", async () => {
    const { default: express } = await import("express");
    const app = express();
    app.post("/rpc", createJsonRpcHandler(addsvcMethods()));
    app.post("/parsed", express.json(), createJsonRpcHandler(addsvcMethods()));
    app.post(
      "/text",
      express.text({ type: "*/*" }),
      createJsonRpcHandler(addsvcMethods(), { contentTypes: "any" }),
    );
    const { port } = await listen(app);
    const body = '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}';
    for (const path of ["/rpc", "/parsed", "/text"]) {
      const res = await send(port, { path, headers: { "content-type": "application/json" }, body });
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe(JSON_TYPE);
      expect(res.text).toBe('{"jsonrpc":"2.0","result":{"v":3},"id":1}');
    }
    const batch = await send(port, {
      path: "/parsed",
      headers: { "content-type": "application/json" },
      body: `[${body},${body}]`,
    });
    expect(batch.text).toBe(
      '[{"jsonrpc":"2.0","result":{"v":3},"id":1},{"jsonrpc":"2.0","result":{"v":3},"id":1}]',
    );
  });
});

afterAll(async () => {
  await closeServers();
});
