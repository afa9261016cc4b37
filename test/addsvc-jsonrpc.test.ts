// addsvc over JSON-RPC 2.0, end to end: the built example as a child process, called with raw requests
// (every MUST and SHOULD of /work/shared/wire/addsvc.md's JSON-RPC sections: status, content type and
// the exact envelope) and with the svckit JSON-RPC client; then the rate limit and breaker flags. The
// internal error (-32603) needs a failing service, so that one runs the transport in-process.
import { Code, createContext, ServiceError } from "@svckit/endpoint";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AddEndpoints } from "../examples/addsvc/src/endpoints.js";
import {
  createAddsvcJsonRpcClient,
  createAddsvcJsonRpcHandler,
} from "../examples/addsvc/src/transport-jsonrpc.js";
import {
  ensureBuilt,
  JSON_TYPE,
  portOf,
  type RunningAddsvc,
  startAddsvc,
} from "./fixtures/addsvc-helpers.js";
import { closeServers, listen, type RawResponse, send, stopProcesses } from "./support.js";

/** Expects HTTP 200 with the JSON content type and exactly `body`. */
function expectEnvelope(res: RawResponse, body: string): void {
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toBe(JSON_TYPE);
  expect(res.text).toBe(body);
}

/** An error envelope: its id, code, message (exact or matched) and nothing else but `data`. */
function expectError(
  res: RawResponse,
  id: unknown,
  code: number,
  message: string | RegExp,
): Record<string, unknown> {
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toBe(JSON_TYPE);
  const body = res.json() as { jsonrpc: string; error: { code: number; message: string }; id: unknown };
  expect(Object.keys(body)).toEqual(["jsonrpc", "error", "id"]);
  expect(body.jsonrpc).toBe("2.0");
  expect(body.id).toEqual(id);
  expect(body.error.code).toBe(code);
  if (typeof message === "string") expect(body.error.message).toBe(message);
  else expect(body.error.message).toMatch(message);
  return body.error as unknown as Record<string, unknown>;
}

async function failureOf(call: Promise<unknown>): Promise<ServiceError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}

describe("addsvc over JSON-RPC (no rate limits)", () => {
  let svc: RunningAddsvc;
  let port: number;
  const rpc = (body: string, path = "/", headers: Record<string, string> = {}): Promise<RawResponse> =>
    send(port, { path, headers: { "content-type": "application/json", ...headers }, body });

  beforeAll(async () => {
    await ensureBuilt();
    svc = await startAddsvc(["--http-addr", "off", "--grpc-addr", "off"]);
    port = portOf(svc.jsonrpc);
  }, 180_000);
  afterAll(stopProcesses);

  describe("MUST", () => {
    it('sum {"a":1,"b":2} id 1 → 200 application/json; charset=utf-8 {"jsonrpc":"2.0","result":{"v":3},"id":1}', async () => {
      expectEnvelope(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}'),
        '{"jsonrpc":"2.0","result":{"v":3},"id":1}',
      );
    });

    it("concat answers too", async () => {
      expectEnvelope(
        await rpc('{"jsonrpc":"2.0","method":"concat","params":{"a":"ab","b":"cd"},"id":2}'),
        '{"jsonrpc":"2.0","result":{"v":"abcd"},"id":2}',
      );
    });

    it.each(["/", "/rpc", "/sum", "/any/path?x=1"])("POST to any path (%s) is served", async (path) => {
      expectEnvelope(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":{"a":2,"b":2},"id":3}', path),
        '{"jsonrpc":"2.0","result":{"v":4},"id":3}',
      );
    });

    it.each([
      ["7", "7"],
      ["0", "0"],
      ["-3", "-3"],
      ["1.5", "1.5"],
      ['"abc"', '"abc"'],
      ['""', '""'],
      ["null", "null"],
    ])("the id %s is echoed", async (id, echoed) => {
      expectEnvelope(
        await rpc(`{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":1},"id":${id}}`),
        `{"jsonrpc":"2.0","result":{"v":2},"id":${echoed}}`,
      );
    });

    it('a missing id is answered with "id":null', async () => {
      expectEnvelope(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2}}'),
        '{"jsonrpc":"2.0","result":{"v":3},"id":null}',
      );
    });

    it('a missing or empty "jsonrpc" member is tolerated', async () => {
      expectEnvelope(
        await rpc('{"method":"sum","params":{"a":1,"b":2},"id":1}'),
        '{"jsonrpc":"2.0","result":{"v":3},"id":1}',
      );
      expectEnvelope(
        await rpc('{"jsonrpc":"","method":"sum","params":{"a":1,"b":2},"id":1}'),
        '{"jsonrpc":"2.0","result":{"v":3},"id":1}',
      );
    });

    it("exactly what go-kit's client sends (empty version, capitalised params, id 0) gets a normal answer", async () => {
      // go-kit's jsonrpc client: Content-Type application/json; charset=utf-8, json.Encoder's newline.
      expectEnvelope(
        await rpc('{"jsonrpc":"","method":"concat","params":{"A":"ab","B":"cd"},"id":0}\n', "", {
          "content-type": "application/json; charset=utf-8",
        }),
        '{"jsonrpc":"2.0","result":{"v":"abcd"},"id":0}',
      );
      expectEnvelope(
        await rpc('{"jsonrpc":"","method":"sum","params":{"A":1,"B":2},"id":0}\n'),
        '{"jsonrpc":"2.0","result":{"v":3},"id":0}',
      );
    });

    it("params match case-insensitively, missing fields are zero, unknown ones ignored", async () => {
      expectEnvelope(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":{"a":7,"c":1},"id":1}'),
        '{"jsonrpc":"2.0","result":{"v":7},"id":1}',
      );
      expectEnvelope(
        await rpc('{"jsonrpc":"2.0","method":"concat","params":{"B":"x"},"id":1}'),
        '{"jsonrpc":"2.0","result":{"v":"x"},"id":1}',
      );
    });

    it("malformed JSON → -32700 JSON could not be decoded: ..., id null", async () => {
      expectError(
        await rpc('{"jsonrpc":"2.0","method":"sum",'),
        null,
        -32700,
        /^JSON could not be decoded: .+/,
      );
      expectError(await rpc(""), null, -32700, "JSON could not be decoded: empty body");
    });

    it("an unknown method → -32601 Method mul was not found.", async () => {
      expectError(
        await rpc('{"jsonrpc":"2.0","method":"mul","params":{"a":2,"b":3},"id":4}'),
        4,
        -32601,
        "Method mul was not found.",
      );
    });

    it("bad params → -32602 saying what was wrong", async () => {
      const error = expectError(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":{"a":"1","b":2},"id":5}'),
        5,
        -32602,
        "invalid params: a: expected an integer, got a string",
      );
      expect(error.data).toEqual({ code: "INVALID_ARGUMENT" });
      expectError(
        await rpc('{"jsonrpc":"2.0","method":"concat","params":{"a":1},"id":6}'),
        6,
        -32602,
        "invalid params: a: expected a string, got 1",
      );
      expectError(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":7}'),
        7,
        -32602,
        "invalid params: expected a JSON object, got an array",
      );
      expectError(
        await rpc('{"jsonrpc":"2.0","method":"sum","id":8}'),
        8,
        -32602,
        "invalid params: expected a JSON object, got none",
      );
    });

    it.each(["GET", "PUT", "DELETE"])("%s → 405 with Allow: POST", async (method) => {
      const res = await send(port, { method, path: "/" });
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe("POST");
      expect(res.headers["content-type"]).toBe(JSON_TYPE);
      expect(res.json()).toEqual({
        jsonrpc: "2.0",
        error: { code: -32600, message: `method ${method} is not allowed: use POST` },
        id: null,
      });
    });
  });

  describe("SHOULD", () => {
    it('the service\'s errors are error objects with a server-error code and the exact message (go-kit: {"v":0})', async () => {
      for (const [params, method, message] of [
        ['{"a":0,"b":0}', "sum", "can't sum two zeroes"],
        ['{"a":2147483647,"b":1}', "sum", "integer overflow"],
        ['{"a":"abcdef","b":"ghijk"}', "concat", "result exceeds maximum size"],
      ]) {
        const res = await rpc(`{"jsonrpc":"2.0","method":"${method}","params":${params},"id":9}`);
        const error = expectError(res, 9, -32003, message as string);
        expect(error.code).toBeGreaterThanOrEqual(-32099);
        expect(error.code).toBeLessThanOrEqual(-32000);
        expect(error.data).toEqual({ code: "INVALID_ARGUMENT" });
        expect(res.text).toBe(
          `{"jsonrpc":"2.0","error":{"code":-32003,"message":${JSON.stringify(message)},"data":{"code":"INVALID_ARGUMENT"}},"id":9}`,
        );
      }
    });

    it("errors echo the id whenever it could be read (go-kit: null)", async () => {
      expectError(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":{},"id":"req-1"}'),
        "req-1",
        -32003,
        "can't sum two zeroes",
      );
      expectError(
        await rpc('{"jsonrpc":"2.0","method":"nope","id":"req-2"}'),
        "req-2",
        -32601,
        "Method nope was not found.",
      );
      expectError(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":{"a":true},"id":12}'),
        12,
        -32602,
        /^invalid params/,
      );
    });

    it("any content type is read as JSON, as go-kit does (curl -d sends a form type)", async () => {
      expectEnvelope(
        await rpc('{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}', "/", {
          "content-type": "application/x-www-form-urlencoded",
        }),
        '{"jsonrpc":"2.0","result":{"v":3},"id":1}',
      );
    });

    it("a batch is answered in order", async () => {
      expectEnvelope(
        await rpc(
          '[{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1},{"jsonrpc":"2.0","method":"concat","params":{"a":"x","b":"y"},"id":2},{"jsonrpc":"2.0","method":"sum","params":{},"id":3}]',
        ),
        '[{"jsonrpc":"2.0","result":{"v":3},"id":1},{"jsonrpc":"2.0","result":{"v":"xy"},"id":2},{"jsonrpc":"2.0","error":{"code":-32003,"message":"can\'t sum two zeroes","data":{"code":"INVALID_ARGUMENT"}},"id":3}]',
      );
    });
  });

  describe("through the svckit JSON-RPC client", () => {
    it("sum and concat answer", async () => {
      const client = createAddsvcJsonRpcClient(svc.jsonrpc as string);
      const ctx = createContext({ timeout: 5_000 });
      expect(await client.sum(ctx, { a: 1n, b: 2n })).toEqual({ v: 3n });
      expect(await client.sum(ctx, { a: -5n, b: -7n })).toEqual({ v: -12n });
      expect(await client.concat(ctx, { a: "ab", b: "cd" })).toEqual({ v: "abcd" });
      const viaUrl = createAddsvcJsonRpcClient(`http://${svc.jsonrpc}/rpc`);
      expect(await viaUrl.sum(ctx, { a: 2n, b: 2n })).toEqual({ v: 4n });
    });

    it("the service's errors come back as ServiceError INVALID_ARGUMENT with the exact message", async () => {
      const client = createAddsvcJsonRpcClient(svc.jsonrpc as string);
      const ctx = createContext({ timeout: 5_000 });
      for (const [call, message] of [
        [() => client.sum(ctx, { a: 0n, b: 0n }), "can't sum two zeroes"],
        [() => client.sum(ctx, { a: 1n, b: 2147483647n }), "integer overflow"],
        [() => client.concat(ctx, { a: "abcdef", b: "ghijk" }), "result exceeds maximum size"],
      ] as const) {
        const err = await failureOf(call());
        expect(err.code).toBe(Code.INVALID_ARGUMENT);
        expect(err.message).toBe(message);
      }
    });
  });
});

describe("addsvc over JSON-RPC with rate limits and breakers (flags)", () => {
  beforeAll(ensureBuilt, 180_000);
  afterEach(stopProcesses);

  it("a refused call → -32008 RESOURCE_EXHAUSTED, an open breaker → -32014 UNAVAILABLE, ids echoed", async () => {
    const svc = await startAddsvc([
      "--sum-rate",
      "1",
      "--breaker-calls",
      "3",
      "--http-addr",
      "off",
      "--grpc-addr",
      "off",
    ]);
    const port = portOf(svc.jsonrpc);
    const call = (id: number) =>
      send(port, {
        path: "/",
        headers: { "content-type": "application/json" },
        body: `{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":${id}}`,
      });
    expectEnvelope(await call(1), '{"jsonrpc":"2.0","result":{"v":3},"id":1}');
    const limited = expectError(
      await call(2),
      2,
      -32008,
      /^rate limit "sum" exceeded: at most 1 calls per 1000 ms, retry in [\d.]+ s$/,
    );
    expect(limited.data).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expectError(await call(3), 3, -32008, /^rate limit "sum" exceeded/);
    const open = expectError(await call(4), 4, -32014, 'circuit breaker "sum" is open');
    expect(open.data).toEqual({ code: "UNAVAILABLE" });

    const client = createAddsvcJsonRpcClient(svc.jsonrpc as string);
    const err = await failureOf(client.sum(createContext({ timeout: 5_000 }), { a: 1n, b: 1n }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toBe('circuit breaker "sum" is open');
  });
});

describe("addsvc's JSON-RPC transport in-process: an internal failure", () => {
  afterAll(closeServers);

  it("a service that throws something unexpected → -32603 internal error, the cause is not sent", async () => {
    const broken: AddEndpoints = {
      sum: async () => {
        throw new Error("database password is hunter2");
      },
      concat: async (_ctx, req) => ({ v: req.a + req.b }),
    };
    const server = await listen(createAddsvcJsonRpcHandler(broken));
    const res = await send(server.port, {
      path: "/",
      headers: { "content-type": "application/json" },
      body: '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}',
    });
    expectError(res, 1, -32603, "internal error");
    expect(res.text).not.toContain("hunter2");
  });
});
