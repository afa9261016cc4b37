// addsvc over HTTP JSON, end to end: the built example as a child process, called with raw requests
// (every MUST and SHOULD of /work/shared/wire/addsvc.md's HTTP sections: status, content type and
// body) and with the svckit HTTP client; then the rate limit and breaker flags.
import http from "node:http";
import { Code, createContext, ServiceError } from "@svckit/endpoint";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAddsvcHttpClient } from "../examples/addsvc/src/transport-http.js";
import {
  ensureBuilt,
  expectGoKitError,
  JSON_TYPE,
  portOf,
  type RunningAddsvc,
  startAddsvc,
} from "./fixtures/addsvc-helpers.js";
import { type RawRequest, type RawResponse, send, stopProcesses } from "./support.js";

const json = { "content-type": "application/json" };

/** Expects a 200 with the JSON content type and exactly `body`. */
function expectOk(res: RawResponse, body: string): void {
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toBe(JSON_TYPE);
  expect(res.text).toBe(body);
}

async function failureOf(call: Promise<unknown>): Promise<ServiceError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}

describe("addsvc over HTTP (no rate limits)", () => {
  let svc: RunningAddsvc;
  let port: number;
  const post = (path: string, body: string, headers: http.OutgoingHttpHeaders = json): Promise<RawResponse> =>
    send(port, { path, headers, body });

  beforeAll(async () => {
    await ensureBuilt();
    svc = await startAddsvc(["--grpc-addr", "off", "--jsonrpc-addr", "off"]);
    port = portOf(svc.http);
  }, 180_000);
  afterAll(stopProcesses);

  describe("MUST", () => {
    it('POST /sum {"a":1,"b":2} → 200 application/json; charset=utf-8 {"v":3}', async () => {
      expectOk(await post("/sum", '{"a":1,"b":2}'), '{"v":3}');
    });

    it('POST /concat {"a":"ab","b":"cd"} → 200 {"v":"abcd"}', async () => {
      expectOk(await post("/concat", '{"a":"ab","b":"cd"}'), '{"v":"abcd"}');
    });

    it("capitalised field names, as go-kit's Go client sends them, work too", async () => {
      expectOk(await post("/sum", '{"A":1,"B":2}'), '{"v":3}');
      expectOk(await post("/concat", '{"A":"ab","B":"cd"}'), '{"v":"abcd"}');
      expectOk(await post("/sum", '{"A":40,"b":2}'), '{"v":42}');
    });

    it("exactly what go-kit's HTTP client sends (no content type, a trailing newline) is answered", async () => {
      // encodeHTTPGenericRequest: json.NewEncoder(&buf).Encode(request), no Content-Type header.
      expectOk(await post("/sum", '{"A":1,"B":2}\n', {}), '{"v":3}');
      expectOk(await post("/concat", '{"A":"ab","B":"cd"}\n', {}), '{"v":"abcd"}');
    });

    it('missing fields are zero values: {"a":7} sums to 7, {"b":"x"} concatenates to "x"', async () => {
      expectOk(await post("/sum", '{"a":7}'), '{"v":7}');
      expectOk(await post("/sum", '{"B":-3}'), '{"v":-3}');
      expectOk(await post("/concat", '{"b":"x"}'), '{"v":"x"}');
      expectOk(await post("/concat", "{}"), '{"v":""}');
    });

    it("unknown fields are ignored", async () => {
      expectOk(await post("/sum", '{"a":1,"b":2,"c":3,"op":"mul"}'), '{"v":3}');
      expectOk(await post("/concat", '{"a":"ab","b":"cd","sep":"-"}'), '{"v":"abcd"}');
    });

    it(`sum 0 0 → 400 {"error":"can't sum two zeroes"}, also for an empty object`, async () => {
      expectGoKitError(await post("/sum", '{"a":0,"b":0}'), 400, "can't sum two zeroes");
      expectGoKitError(await post("/sum", "{}"), 400, "can't sum two zeroes");
      const res = await post("/sum", '{"a":0,"b":0}');
      expect(res.text).toBe(`{"error":"can't sum two zeroes"}`);
    });

    it('a sum outside 32 bits → 400 {"error":"integer overflow"}', async () => {
      expectGoKitError(await post("/sum", '{"a":2147483647,"b":1}'), 400, "integer overflow");
      expectGoKitError(await post("/sum", '{"a":-2147483648,"b":-1}'), 400, "integer overflow");
      expect((await post("/sum", '{"a":2147483647,"b":1}')).text).toBe('{"error":"integer overflow"}');
      expectOk(await post("/sum", '{"a":2147483646,"b":1}'), '{"v":2147483647}');
    });

    it('a concat over 10 UTF-8 bytes → 400 {"error":"result exceeds maximum size"}', async () => {
      expectGoKitError(
        await post("/concat", '{"a":"abcdef","b":"ghijk"}'),
        400,
        "result exceeds maximum size",
      );
      expectGoKitError(await post("/concat", '{"a":"ééé","b":"€€"}'), 400, "result exceeds maximum size");
      expect((await post("/concat", '{"a":"abcdef","b":"ghijk"}')).text).toBe(
        '{"error":"result exceeds maximum size"}',
      );
      expectOk(await post("/concat", '{"a":"éé","b":"€€"}'), '{"v":"éé€€"}');
    });

    it.each(["/mul", "/", "/sum/", "/concat/", "/Sum", "/sum/extra"])("POST %s → 404", async (path) => {
      expectGoKitError(await post(path, '{"a":1,"b":2}'), 404, `no route for POST ${path}`);
    });
  });

  describe("SHOULD (where go-kit's server is sloppy)", () => {
    it("malformed JSON → 400 (go-kit: 500 unexpected EOF) saying where", async () => {
      expectGoKitError(await post("/sum", '{"a":1,'), 400, /^malformed JSON: .+ at line 1, column 8$/);
      expectGoKitError(
        await post("/concat", '{"a":"x" "b":"y"}'),
        400,
        /^malformed JSON: .+ at line 1, column 10$/,
      );
    });

    it("wrong field types → 400 (go-kit: 500) naming the field", async () => {
      expectGoKitError(
        await post("/sum", '{"a":"1","b":2}'),
        400,
        "invalid request: a: expected an integer, got a string",
      );
      expectGoKitError(
        await post("/sum", '{"a":1,"B":1.5}'),
        400,
        "invalid request: b: expected an integer, got 1.5",
      );
      expectGoKitError(
        await post("/concat", '{"a":"x","b":7}'),
        400,
        "invalid request: b: expected a string, got 7",
      );
      expectGoKitError(
        await post("/sum", "[1,2]"),
        400,
        "invalid request: expected a JSON object, got an array",
      );
      expectGoKitError(await post("/sum", "null"), 400, "invalid request: expected a JSON object, got null");
    });

    it("an integer JSON cannot carry exactly → 400 saying so", async () => {
      expectGoKitError(
        await post("/sum", '{"a":9007199254740993,"b":1}'),
        400,
        "invalid request: a: 9007199254740992 is out of range: JSON integers must be between -9007199254740991 and 9007199254740991",
      );
    });

    it("an empty body → 400 (go-kit: 500 EOF)", async () => {
      expectGoKitError(await post("/sum", ""), 400, "empty body: expected a JSON value");
      expectGoKitError(await post("/concat", "  \n"), 400, "empty body: expected a JSON value");
    });

    it("a body that is not UTF-8 → 400", async () => {
      const res = await send(port, {
        path: "/concat",
        headers: json,
        body: Uint8Array.of(0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d), // {"a":"\xff"}
      });
      expectGoKitError(res, 400, /^body is not valid UTF-8/);
    });

    it.each(["GET", "PUT", "DELETE", "PATCH", "HEAD"])(
      "%s /sum → 405 with Allow: POST (go-kit: any method)",
      async (method) => {
        const res = await send(port, { method, path: "/sum" });
        expect(res.status).toBe(405);
        expect(res.headers.allow).toBe("POST");
        expect(res.headers["content-type"]).toBe(JSON_TYPE);
        if (method === "HEAD") expect(res.text).toBe("");
        else expect(res.json()).toEqual({ error: `method ${method} is not allowed on /sum` });
      },
    );

    it("GET /concat → 405 with Allow: POST", async () => {
      const res = await send(port, { method: "GET", path: "/concat" });
      expect(res.headers.allow).toBe("POST");
      expectGoKitError(res, 405, "method GET is not allowed on /concat");
    });

    it("error bodies carry Content-Type application/json; charset=utf-8 (go-kit: none)", async () => {
      for (const res of [
        await post("/sum", "{}"),
        await post("/nope", "{}"),
        await post("/sum", "{"),
        await send(port, { method: "GET", path: "/sum" }),
      ]) {
        expect(res.headers["content-type"]).toBe(JSON_TYPE);
        expect(Number(res.headers["content-length"])).toBe(Buffer.byteLength(res.text));
      }
    });

    it("negative results just work, and the server goes on (go-kit's metrics crash the connection)", async () => {
      expectOk(await post("/sum", '{"a":-5,"b":-7}'), '{"v":-12}');
      expectOk(await post("/sum", '{"a":3,"b":-10}'), '{"v":-7}');
      expectOk(await post("/sum", '{"a":-2147483648,"b":0}'), '{"v":-2147483648}');
      expectOk(await post("/sum", '{"a":1,"b":1}'), '{"v":2}');
    });
  });

  describe("more of the wire", () => {
    it("any content type is read as JSON, as go-kit does: curl -d (form) and text/plain work", async () => {
      expectOk(
        await post("/sum", '{"a":1,"b":2}', { "content-type": "application/x-www-form-urlencoded" }),
        '{"v":3}',
      );
      expectOk(await post("/concat", '{"a":"a","b":"b"}', { "content-type": "text/plain" }), '{"v":"ab"}');
    });

    it("lone surrogates become U+FFFD (3 bytes each), as Go decodes them", async () => {
      expectOk(await post("/concat", '{"a":"\\ud800","b":"x"}'), '{"v":"\uFFFDx"}');
      expectGoKitError(
        await post("/concat", '{"a":"\\ud800\\ud800\\ud800","b":"xy"}'),
        400,
        "result exceeds maximum size",
      );
    });

    it("a body over 1 MiB → 413", async () => {
      // On a keep-alive connection, as go-kit clients send: the server answers before reading the body,
      // then reads and drops it (it is little over the limit), so the client never sees its connection
      // reset mid-write. With `connection: close` it could get EPIPE before reading the answer.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const body = `{"a":"${"x".repeat(1 << 20)}"}`;
        const res = await send(port, { path: "/concat", headers: json, body, agent });
        expectGoKitError(res, 413, "request body exceeds the limit of 1048576 bytes");
        expect(res.headers.connection).not.toBe("close");
        // The same connection still serves.
        expectOk(await send(port, { path: "/sum", headers: json, body: '{"a":2,"b":3}', agent }), '{"v":5}');
      } finally {
        agent.destroy();
      }
    });

    it("a bad x-request-timeout header → 400", async () => {
      const res = await post("/sum", '{"a":1,"b":2}', { ...json, "x-request-timeout": "soon" });
      expectGoKitError(res, 400, "invalid x-request-timeout header: expected a whole number of milliseconds");
    });

    it("an error does not spoil a kept-alive connection", async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const on = (request: RawRequest) => send(port, { ...request, agent });
        expectGoKitError(await on({ path: "/sum", headers: json, body: "{" }), 400, /^malformed JSON/);
        expectGoKitError(await on({ path: "/sum", headers: json, body: "{}" }), 400, "can't sum two zeroes");
        expectOk(await on({ path: "/sum", headers: json, body: '{"a":2,"b":3}' }), '{"v":5}');
      } finally {
        agent.destroy();
      }
    });
  });

  describe("through the svckit HTTP client", () => {
    it("sum and concat answer, with bigints", async () => {
      const client = createAddsvcHttpClient(svc.http as string);
      const ctx = createContext({ timeout: 5_000 });
      expect(await client.sum(ctx, { a: 1n, b: 2n })).toEqual({ v: 3n });
      expect(await client.sum(ctx, { a: -5n, b: -7n })).toEqual({ v: -12n });
      expect(await client.concat(ctx, { a: "ab", b: "cd" })).toEqual({ v: "abcd" });
    });

    it("also takes a URL (go-kit's clients take both)", async () => {
      const client = createAddsvcHttpClient(`http://${svc.http}/`);
      expect(await client.sum(createContext({ timeout: 5_000 }), { a: 2n, b: 2n })).toEqual({ v: 4n });
    });

    it("the service's errors come back as ServiceError INVALID_ARGUMENT with the exact message", async () => {
      const client = createAddsvcHttpClient(svc.http as string);
      const ctx = createContext({ timeout: 5_000 });
      for (const [call, message] of [
        [() => client.sum(ctx, { a: 0n, b: 0n }), "can't sum two zeroes"],
        [() => client.sum(ctx, { a: 2147483647n, b: 1n }), "integer overflow"],
        [() => client.concat(ctx, { a: "abcdef", b: "ghijk" }), "result exceeds maximum size"],
      ] as const) {
        const err = await failureOf(call());
        expect(err.code).toBe(Code.INVALID_ARGUMENT);
        expect(err.message).toBe(message);
      }
    });

    it("an addend JSON cannot carry exactly is refused before sending", async () => {
      const client = createAddsvcHttpClient(svc.http as string);
      const err = await failureOf(client.sum(createContext({ timeout: 5_000 }), { a: 2n ** 60n, b: 1n }));
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.message).toMatch(/cannot be sent exactly as a JSON number/);
    });
  });
});

describe("addsvc over HTTP with rate limits and breakers (flags)", () => {
  beforeAll(ensureBuilt, 180_000);
  afterEach(stopProcesses);

  it("--sum-rate 2: two sums pass in a second, the third → 429 with Retry-After; concat is not limited", async () => {
    const svc = await startAddsvc(["--sum-rate", "2", "--concat-rate", "0", "--breaker-calls", "0"]);
    const port = portOf(svc.http);
    const sums = await Promise.all(
      [1, 2, 3].map((a) => send(port, { path: "/sum", headers: json, body: `{"a":${a},"b":1}` })),
    );
    const statuses = sums.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 429]);
    const refused = sums.find((r) => r.status === 429) as RawResponse;
    expectGoKitError(
      refused,
      429,
      /^rate limit "sum" exceeded: at most 2 calls per 1000 ms, retry in [\d.]+ s$/,
    );
    expect(Number(refused.headers["retry-after"])).toBe(1);
    for (let i = 0; i < 20; i++) {
      expectOk(await send(port, { path: "/concat", headers: json, body: '{"a":"a","b":"b"}' }), '{"v":"ab"}');
    }
    const client = createAddsvcHttpClient(svc.http as string);
    const err = await failureOf(client.sum(createContext({ timeout: 5_000 }), { a: 1n, b: 1n }));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/^rate limit "sum" exceeded/);
  });

  it("--concat-rate 3: the fourth concat in a second → 429", async () => {
    const svc = await startAddsvc(["--concat-rate", "3", "--breaker-calls", "0"]);
    const port = portOf(svc.http);
    const answers = await Promise.all(
      [1, 2, 3, 4].map(() => send(port, { path: "/concat", headers: json, body: '{"a":"a","b":"b"}' })),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([200, 200, 200, 429]);
    expectGoKitError(
      answers.find((r) => r.status === 429) as RawResponse,
      429,
      /^rate limit "concat" exceeded/,
    );
  });

  it("refusals open the breaker (--breaker-calls 3) → 503; after --breaker-timeout a trial call closes it", async () => {
    const svc = await startAddsvc(["--sum-rate", "1", "--breaker-calls", "3", "--breaker-timeout", "300ms"]);
    const port = portOf(svc.http);
    const sum = () => send(port, { path: "/sum", headers: json, body: '{"a":1,"b":2}' });
    expectOk(await sum(), '{"v":3}');
    expect((await sum()).status).toBe(429);
    expect((await sum()).status).toBe(429);
    // 3 calls in the window, 2 failed: open.
    expectGoKitError(await sum(), 503, 'circuit breaker "sum" is open');
    const client = createAddsvcHttpClient(svc.http as string);
    const err = await failureOf(client.sum(createContext({ timeout: 5_000 }), { a: 1n, b: 1n }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toBe('circuit breaker "sum" is open');
    // concat has its own breaker, closed.
    expectOk(await send(port, { path: "/concat", headers: json, body: '{"a":"a","b":"b"}' }), '{"v":"ab"}');
    // Past the breaker's 300 ms and the limiter's 1 s window: the trial call passes and closes it.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expectOk(await sum(), '{"v":3}');
    expect((await sum()).status).toBe(429);
  });

  it("the service's errors never open the breaker", async () => {
    const svc = await startAddsvc(["--breaker-calls", "3"]);
    const port = portOf(svc.http);
    for (let i = 0; i < 12; i++) {
      expectGoKitError(
        await send(port, { path: "/sum", headers: json, body: "{}" }),
        400,
        "can't sum two zeroes",
      );
    }
    expectOk(await send(port, { path: "/sum", headers: json, body: '{"a":1}' }), '{"v":1}');
  });
});
