import http from "node:http";
import {
  Code,
  type Context,
  codeNames,
  codeToHttpStatus,
  createContextKey,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  createHttpHandler,
  createJsonErrorEncoder,
  type DecodeRequestFunc,
  defaultErrorEncoder,
  encodeJsonResponse,
  HttpError,
  type HttpRequest,
  type HttpServerOptions,
  JSON_CONTENT_TYPE,
  jsonRequestDecoder,
  type ServerFinalizerInfo,
} from "@svckit/transport-http";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { aborted, closeServers, deferred, listen, send } from "./test-helpers.js";

afterEach(closeServers);

interface StringRequest {
  s: string;
}

const uppercase: Endpoint<StringRequest, { v: string }> = async (_ctx, req) => ({ v: req.s.toUpperCase() });

const json = { "content-type": "application/json" };

/** Serves `endpoint` with the JSON codecs and returns the port. */
async function serve<Req, Res>(
  endpoint: Endpoint<Req, Res>,
  options?: HttpServerOptions,
  decode: DecodeRequestFunc<Req> = jsonRequestDecoder<Req>(),
): Promise<number> {
  const server = await listen(createHttpHandler(endpoint, decode, encodeJsonResponse, options));
  return server.port;
}

/** An endpoint that throws `error`. */
function failing(error: unknown): Endpoint<unknown, never> {
  return async () => {
    throw error;
  };
}

describe("createHttpHandler: success", () => {
  it("answers 200 with a JSON body, its content type and its length", async () => {
    const port = await serve(uppercase);
    const res = await send(port, { headers: json, body: '{"s":"abc"}' });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(res.headers["content-length"]).toBe(String(Buffer.byteLength('{"v":"ABC"}')));
    expect(res.text).toBe('{"v":"ABC"}');
  });

  it("counts content-length in bytes, not characters", async () => {
    const port = await serve(uppercase);
    const res = await send(port, { headers: json, body: JSON.stringify({ s: "grüße 😀" }) });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ v: "GRÜSSE 😀" });
    expect(Number(res.headers["content-length"])).toBe(res.body.byteLength);
    expect(res.body.byteLength).toBeGreaterThan(res.text.length);
  });

  it("accepts application/json with parameters, +json types and a missing content type", async () => {
    const port = await serve(uppercase);
    for (const type of [
      "application/json; charset=utf-8",
      "Application/JSON",
      "application/vnd.api+json",
      undefined,
    ]) {
      const headers = type === undefined ? {} : { "content-type": type };
      const res = await send(port, { headers, body: '{"s":"x"}' });
      expect({ type, status: res.status, body: res.json() }).toEqual({ type, status: 200, body: { v: "X" } });
    }
  });

  it("puts the request headers in ctx.metadata with lower-case keys", async () => {
    let seen: string | undefined;
    const port = await serve<StringRequest, { v: string }>(async (ctx, req) => {
      seen = ctx.metadata.get("x-tenant");
      return { v: req.s };
    });
    await send(port, { headers: { ...json, "X-Tenant": "acme" }, body: '{"s":"a"}' });
    expect(seen).toBe("acme");
  });

  it("lets the encoder choose the status, headers and content type; no body answers 204", async () => {
    const handler = createHttpHandler<unknown, string | undefined>(
      async (_ctx, req) => (req === "empty" ? undefined : "made"),
      jsonRequestDecoder(),
      (_ctx, res) =>
        res === undefined
          ? {}
          : { status: 201, contentType: "text/plain", headers: { "x-a": "1", "x-b": ["2", "3"] }, body: res },
    );
    const { port } = await listen(handler);
    const created = await send(port, { headers: json, body: '"x"' });
    expect(created.status).toBe(201);
    expect(created.headers["content-type"]).toBe("text/plain");
    expect(created.headers["content-length"]).toBe("4");
    expect(created.headers["x-a"]).toBe("1");
    expect(created.rawHeaders.filter((_, i, a) => a[i - 1] === "x-b")).toEqual(["2", "3"]);
    expect(created.text).toBe("made");
    const empty = await send(port, { headers: json, body: '"empty"' });
    expect(empty.status).toBe(204);
    expect(empty.headers["content-length"]).toBeUndefined();
    expect(empty.text).toBe("");
  });

  it("serves requests without a body with a decoder that ignores it", async () => {
    const handler = createHttpHandler(
      async (_ctx, req: { path: string; q: string | null }) => req,
      (_ctx, request) => ({ path: request.path, q: request.query.get("q") }),
      encodeJsonResponse,
    );
    const { port } = await listen(handler);
    const res = await send(port, { method: "GET", path: "/items?q=a%20b" });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ path: "/items", q: "a b" });
  });
});

describe("createHttpHandler: bad input", () => {
  it("answers malformed JSON with 400 INVALID_ARGUMENT naming the position", async () => {
    let called = false;
    const port = await serve(async () => {
      called = true;
      return {};
    });
    const res = await send(port, { headers: json, body: '{"s": tru}' });
    expect(res.status).toBe(400);
    expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "malformed JSON: unexpected character '}' at line 1, column 10",
    });
    const multiline = await send(port, { headers: json, body: '{\n  "s": "a",\n}' });
    expect(multiline.status).toBe(400);
    expect(multiline.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "malformed JSON: expected double-quoted property name at line 3, column 1",
    });
    expect(called).toBe(false);
  });

  it("answers an empty body with 400", async () => {
    const port = await serve(uppercase);
    const expected = { code: "INVALID_ARGUMENT", message: "empty body: expected a JSON value" };
    const noBody = await send(port, { headers: json });
    expect(noBody.status).toBe(400);
    expect(noBody.json()).toEqual(expected);
    const zeroLength = await send(port, { headers: { ...json, "content-length": "0" }, body: "" });
    expect(zeroLength.status).toBe(400);
    expect(zeroLength.json()).toEqual(expected);
    const blank = await send(port, { headers: json, body: " \r\n\t " });
    expect(blank.status).toBe(400);
    expect(blank.json()).toEqual(expected);
  });

  it("answers a body that is not UTF-8 with 400 naming the byte offset", async () => {
    const port = await serve(uppercase);
    const res = await send(port, { headers: json, body: Uint8Array.from([0x22, 0x61, 0xff, 0x22]) });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "body is not valid UTF-8: bad byte sequence at byte offset 2",
    });
  });

  it("answers a wrong content type with 415", async () => {
    let called = false;
    const port = await serve(async () => {
      called = true;
      return {};
    });
    const res = await send(port, { headers: { "content-type": "text/plain" }, body: '{"s":"a"}' });
    expect(res.status).toBe(415);
    expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: 'unsupported content type "text/plain": expected application/json',
    });
    const form = await send(port, {
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "a=1",
    });
    expect(form.status).toBe(415);
    expect(called).toBe(false);
  });

  it('accepts any content type with contentTypes: "any"', async () => {
    const port = await serve(uppercase, {}, jsonRequestDecoder<StringRequest>({ contentTypes: "any" }));
    const res = await send(port, { headers: { "content-type": "text/plain" }, body: '{"s":"a"}' });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ v: "A" });
  });

  it("answers a schema failure with 400 naming the field", async () => {
    const schema = z.object({ s: z.string(), n: z.number() });
    let received: unknown;
    const port = await serve(
      async (_ctx, req: z.infer<typeof schema>) => {
        received = req;
        return { ok: true };
      },
      {},
      jsonRequestDecoder({ schema }),
    );
    const res = await send(port, { headers: json, body: '{"s":"x","n":"1"}' });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "invalid request: n: Invalid input: expected number, received string",
      details: [
        {
          type: "google.rpc.BadRequest",
          value: {
            fieldViolations: [{ field: "n", description: "Invalid input: expected number, received string" }],
          },
        },
      ],
    });
    expect(received).toBeUndefined();
    const ok = await send(port, { headers: json, body: '{"s":"x","n":1,"extra":true}' });
    expect(ok.status).toBe(200);
    expect(received).toEqual({ s: "x", n: 1 });
  });

  it("runs asynchronous schemas", async () => {
    const schema = z.object({ name: z.string().refine(async (s) => s !== "taken", "name is taken") });
    const port = await serve(
      async (_ctx, req: z.infer<typeof schema>) => req,
      {},
      jsonRequestDecoder({ schema }),
    );
    const taken = await send(port, { headers: json, body: '{"name":"taken"}' });
    expect(taken.status).toBe(400);
    expect(taken.json()).toMatchObject({
      code: "INVALID_ARGUMENT",
      message: "invalid request: name: name is taken",
    });
    const free = await send(port, { headers: json, body: '{"name":"ada"}' });
    expect(free.status).toBe(200);
    expect(free.json()).toEqual({ name: "ada" });
  });
});

describe("createHttpHandler: body limit", () => {
  const tooLarge = { code: "RESOURCE_EXHAUSTED", message: "request body exceeds the limit of 1024 bytes" };

  it("accepts a body of exactly the limit", async () => {
    const port = await serve(async (_ctx, req: string) => ({ n: req.length }), { bodyLimit: 1024 });
    const body = JSON.stringify("x".repeat(1022));
    expect(Buffer.byteLength(body)).toBe(1024);
    const res = await send(port, { headers: json, body });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ n: 1022 });
  });

  it("a keep-alive client sending a body a little over the limit gets the 413 and keeps its connection", async () => {
    const port = await serve(async (_ctx, req: string) => ({ n: req.length }), { bodyLimit: 1024 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // 1 MiB over the limit: the server answers at once, then reads and drops the body (no reset).
      const res = await send(port, { headers: json, body: JSON.stringify("x".repeat(1 << 20)), agent });
      expect(res.status).toBe(413);
      expect(res.headers.connection).not.toBe("close");
      expect(res.json()).toEqual(tooLarge);
      const next = await send(port, { headers: json, body: JSON.stringify("abc"), agent });
      expect(next.status).toBe(200);
      expect(next.json()).toEqual({ n: 3 });
      // More than 1 MiB over the limit: the server closes instead of reading it all.
      const huge = await send(port, {
        headers: { ...json, "content-length": String((2 << 20) + 1024) },
        agent,
      });
      expect(huge.status).toBe(413);
      expect(huge.headers.connection).toBe("close");
      expect(huge.json()).toEqual(tooLarge);
    } finally {
      agent.destroy();
    }
  });

  it("answers 413 to a declared content-length over the limit before the body is sent", async () => {
    let called = false;
    let finalized: ServerFinalizerInfo | undefined;
    const { port } = await listen(
      createHttpHandler(
        async () => {
          called = true;
          return {};
        },
        jsonRequestDecoder(),
        encodeJsonResponse,
        {
          bodyLimit: 1024,
          finalizer: (_ctx, info) => {
            finalized = info;
          },
        },
      ),
    );
    // Only the headers go out: the answer must come without the server waiting for the body.
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({
        host: "127.0.0.1",
        port,
        method: "POST",
        agent: false,
        headers: { ...json, "content-length": "2048" },
      });
      req.on("response", resolve);
      req.on("error", reject);
      req.flushHeaders();
    });
    const text = await new Promise<string>((resolve) => {
      let out = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        out += chunk;
      });
      res.on("end", () => resolve(out));
    });
    res.socket.destroy();
    expect(res.statusCode).toBe(413);
    expect(res.headers.connection).toBe("close");
    expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(JSON.parse(text)).toEqual(tooLarge);
    expect(called).toBe(false);
    expect(finalized?.status).toBe(413);
    expect(finalized?.error?.code).toBe(Code.RESOURCE_EXHAUSTED);
  });

  it("answers 413 to a chunked body that grows past the limit and stops reading it", async () => {
    let called = false;
    const { port } = await listen(
      createHttpHandler(
        async () => {
          called = true;
          return {};
        },
        jsonRequestDecoder(),
        encodeJsonResponse,
        { bodyLimit: 1024 },
      ),
    );
    const chunk = Buffer.alloc(256, 0x20);
    const outcome = await new Promise<{
      status: number;
      text: string;
      connection: string | undefined;
      sent: number;
    }>((resolve, reject) => {
      let sent = 0;
      let timer: ReturnType<typeof setInterval> | undefined;
      const req = http.request({
        host: "127.0.0.1",
        port,
        method: "POST",
        agent: false,
        headers: { ...json, "transfer-encoding": "chunked" },
      });
      // The client never ends the body: it keeps sending until the server answers and hangs up.
      timer = setInterval(() => {
        if (!req.destroyed && sent < 1 << 20) {
          req.write(chunk);
          sent += chunk.length;
        }
      }, 2);
      req.on("error", () => {
        // The server closing the connection while we still write is expected once it has answered.
      });
      req.on("response", (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => {
          // The server closes the connection although the request body never ended.
          req.socket?.once("close", () => {
            clearInterval(timer);
            timer = undefined;
            resolve({ status: res.statusCode ?? 0, text, connection: res.headers.connection, sent });
          });
        });
      });
      setTimeout(() => {
        if (timer !== undefined) {
          clearInterval(timer);
          req.destroy();
          reject(new Error("the server did not close the connection"));
        }
      }, 10_000);
    });
    expect(outcome.status).toBe(413);
    expect(outcome.connection).toBe("close");
    expect(JSON.parse(outcome.text)).toEqual(tooLarge);
    expect(outcome.sent).toBeGreaterThan(1024);
    expect(called).toBe(false);
  });
});

describe("createHttpHandler: errors", () => {
  const codes = (Object.values(Code) as Code[]).filter((c) => c !== Code.OK);

  it.each(codes)("answers a ServiceError with code %i with its status and {code, message}", async (code) => {
    const port = await serve(failing(new ServiceError(code, `failed with ${codeNames[code]}`)));
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(codeToHttpStatus[code]);
    expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(res.headers["content-length"]).toBe(String(res.body.byteLength));
    expect(res.json()).toEqual({ code: codeNames[code], message: `failed with ${codeNames[code]}` });
  });

  it("sends the error's details", async () => {
    const details = [{ type: "example.Quota", value: { limit: 10 } }];
    const port = await serve(failing(new ServiceError(Code.RESOURCE_EXHAUSTED, "quota", { details })));
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(429);
    expect(res.json()).toEqual({ code: "RESOURCE_EXHAUSTED", message: "quota", details });
  });

  it("answers a plain Error with 500 INTERNAL and leaks neither message nor stack", async () => {
    const secret = new Error("password=hunter2 at db.connect");
    const port = await serve(failing(secret));
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(500);
    expect(res.text).toBe('{"code":"INTERNAL","message":"internal error"}');
    expect(res.text).not.toContain("hunter2");
    expect(res.text).not.toContain("server.test");
  });

  it("answers thrown non-errors with 500 INTERNAL", async () => {
    for (const thrown of ["a string", 42, null, undefined, { code: "NOT_FOUND", message: "forged" }]) {
      const port = await serve(failing(thrown));
      const res = await send(port, { headers: json, body: "{}" });
      expect(res.status).toBe(500);
      expect(res.json()).toEqual({ code: "INTERNAL", message: "internal error" });
    }
  });

  it("turns error metadata into response headers", async () => {
    const error = new ServiceError(Code.RESOURCE_EXHAUSTED, "slow down", {
      metadata: [
        ["Retry-After", "7"],
        ["x-reason", "a"],
        ["x-reason", "b"],
      ],
    });
    const port = await serve(failing(error));
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(429);
    expect(res.headers["retry-after"]).toBe("7");
    expect(res.rawHeaders.filter((_, i, a) => a[i - 1] === "x-reason")).toEqual(["a", "b"]);
    expect(res.json()).toEqual({ code: "RESOURCE_EXHAUSTED", message: "slow down" });
  });

  it("keeps its own framing headers when error metadata carries others (e.g. a proxied error)", async () => {
    // Metadata copied from another HTTP response must not corrupt this one.
    const error = new ServiceError(Code.NOT_FOUND, "no such user", {
      metadata: {
        "content-type": "text/html",
        "content-length": "3",
        "transfer-encoding": "chunked",
        "x-up": "1",
      },
    });
    const port = await serve(failing(error));
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(404);
    expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(res.headers["content-length"]).toBe(String(res.body.byteLength));
    expect(res.headers["transfer-encoding"]).toBeUndefined();
    expect(res.headers["x-up"]).toBe("1");
    expect(res.json()).toEqual({ code: "NOT_FOUND", message: "no such user" });
  });

  it("never passes on hop-by-hop headers an error's metadata carries (another connection's)", async () => {
    const error = new ServiceError(Code.UNAVAILABLE, "upstream down", {
      metadata: {
        connection: "close",
        "keep-alive": "timeout=5",
        "proxy-connection": "keep-alive",
        te: "trailers",
        trailer: "x-checksum",
        upgrade: "h2c",
        "retry-after": "2",
      },
    });
    const port = await serve(failing(error));
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(503);
    for (const name of ["keep-alive", "proxy-connection", "te", "trailer", "upgrade"]) {
      expect(res.headers[name], name).toBeUndefined();
    }
    // node:http's own connection header for this client (as without the metadata), not the upstream's.
    const plain = await send(await serve(failing(new ServiceError(Code.UNAVAILABLE, "x"))), {
      headers: { ...json, connection: "keep-alive" },
      body: "{}",
    });
    const kept = await send(port, { headers: { ...json, connection: "keep-alive" }, body: "{}" });
    expect(plain.headers.connection).toBe("keep-alive");
    expect(kept.headers.connection).toBe("keep-alive");
    expect(res.headers["retry-after"]).toBe("2");
  });

  it("createJsonErrorEncoder({ passHeader }) passes only the headers it accepts", async () => {
    const errorEncoder = createJsonErrorEncoder({ passHeader: (name) => name === "www-authenticate" });
    const error = new ServiceError(Code.UNAUTHENTICATED, "no token", {
      metadata: { "www-authenticate": 'Bearer realm="x"', "x-upstream": "a", server: "upstream" },
    });
    const port = await serve(failing(error), { errorEncoder });
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toBe('Bearer realm="x"');
    expect(res.headers["x-upstream"]).toBeUndefined();
    expect(res.headers.server).toBeUndefined();
    expect(res.json()).toEqual({ code: "UNAUTHENTICATED", message: "no token" });
  });

  it("answers an HttpError with its own status", async () => {
    const port = await serve(failing(new HttpError(418, Code.FAILED_PRECONDITION, "short and stout")));
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(418);
    expect(res.json()).toEqual({ code: "FAILED_PRECONDITION", message: "short and stout" });
  });

  it("answers errors thrown by the decoder, a before function or the encoder", async () => {
    const decoderFails = createHttpHandler(
      uppercase,
      () => {
        throw new ServiceError(Code.INVALID_ARGUMENT, "bad query");
      },
      encodeJsonResponse,
    );
    const beforeFails = createHttpHandler(uppercase, jsonRequestDecoder(), encodeJsonResponse, {
      before: [
        () => {
          throw new ServiceError(Code.UNAUTHENTICATED, "no token");
        },
      ],
    });
    const encoderFails = createHttpHandler(uppercase, jsonRequestDecoder(), () => {
      throw new TypeError("cannot encode");
    });
    const cases: [http.RequestListener, number, unknown][] = [
      [decoderFails, 400, { code: "INVALID_ARGUMENT", message: "bad query" }],
      [beforeFails, 401, { code: "UNAUTHENTICATED", message: "no token" }],
      [encoderFails, 500, { code: "INTERNAL", message: "internal error" }],
    ];
    for (const [handler, status, body] of cases) {
      const { port } = await listen(handler);
      const res = await send(port, { headers: json, body: '{"s":"a"}' });
      expect(res.status).toBe(status);
      expect(res.json()).toEqual(body);
    }
  });

  it("answers a response the JSON encoder cannot encode with 500", async () => {
    const port = await serve(async () => ({ big: 1n }));
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(500);
    expect(res.json()).toEqual({ code: "INTERNAL", message: "response could not be encoded as JSON" });
  });
});

describe("createHttpHandler: options", () => {
  const tag = createContextKey<string[]>([], { description: "tags" });

  it("runs before → decode → endpoint → encode → after → finalizer, passing derived contexts along", async () => {
    const order: string[] = [];
    let finalTags: string[] = [];
    let info: ServerFinalizerInfo | undefined;
    const handler = createHttpHandler<StringRequest, { v: string }>(
      async (ctx, req) => {
        order.push(`endpoint ${ctx.value(tag).join(",")}`);
        return { v: req.s };
      },
      (ctx, request) => {
        order.push(`decode ${ctx.value(tag).join(",")}`);
        return JSON.parse(Buffer.from(request.body).toString()) as StringRequest;
      },
      (ctx, res) => {
        order.push(`encode ${ctx.value(tag).join(",")}`);
        return encodeJsonResponse(ctx, res);
      },
      {
        before: [
          (ctx, request) => {
            order.push(`before1 ${request.method} ${request.path}`);
            return ctx.with(tag, ["b1"]);
          },
          (ctx) => {
            order.push("before2");
            return ctx.with(tag, [...ctx.value(tag), "b2"]);
          },
          () => {
            order.push("before3 keeps the context");
            return undefined;
          },
        ],
        after: [
          (ctx, res) => {
            order.push(`after1 ${ctx.value(tag).join(",")}`);
            res.setHeader("x-after", "1");
            return ctx.with(tag, [...ctx.value(tag), "a1"]);
          },
          (ctx) => {
            order.push(`after2 ${ctx.value(tag).join(",")}`);
            return undefined;
          },
        ],
        finalizer: [
          (ctx, i) => {
            order.push("finalizer1");
            finalTags = ctx.value(tag);
            info = i;
          },
          () => {
            order.push("finalizer2");
          },
        ],
      },
    );
    const { port } = await listen(handler);
    const res = await send(port, { path: "/p?x=1", headers: json, body: '{"s":"hi"}' });
    expect(res.status).toBe(200);
    expect(res.headers["x-after"]).toBe("1");
    expect(res.json()).toEqual({ v: "hi" });
    expect(order).toEqual([
      "before1 POST /p",
      "before2",
      "before3 keeps the context",
      "decode b1,b2",
      "endpoint b1,b2",
      "encode b1,b2",
      "after1 b1,b2",
      "after2 b1,b2,a1",
      "finalizer1",
      "finalizer2",
    ]);
    expect(finalTags).toEqual(["b1", "b2", "a1"]);
    expect(info?.status).toBe(200);
    expect(info?.bytesWritten).toBe(res.body.byteLength);
    expect(info?.error).toBeUndefined();
    expect(info?.request.url).toBe("/p?x=1");
    expect(Buffer.from(info?.request.body ?? []).toString()).toBe('{"s":"hi"}');
  });

  it("skips after functions on failure; the finalizer sees the status and the error", async () => {
    const order: string[] = [];
    let info: ServerFinalizerInfo | undefined;
    const port = await serve(failing(new ServiceError(Code.NOT_FOUND, "nope")), {
      before: [() => void order.push("before")],
      after: [() => void order.push("after")],
      finalizer: (_ctx, i) => {
        order.push("finalizer");
        info = i;
      },
    });
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(404);
    expect(order).toEqual(["before", "finalizer"]);
    expect(info?.status).toBe(404);
    expect(info?.error).toBeInstanceOf(ServiceError);
    expect(info?.error?.code).toBe(Code.NOT_FOUND);
    expect(info?.error?.message).toBe("nope");
  });

  it("runs the finalizer when the body cannot be read or the timeout header is bad", async () => {
    const seen: { status: number; code: Code | undefined; method: string }[] = [];
    const port = await serve(uppercase, {
      finalizer: (_ctx, info) => {
        seen.push({ status: info.status, code: info.error?.code, method: info.request.method });
      },
    });
    await send(port, { headers: { ...json, "x-request-timeout": "soon" }, body: "{}" });
    await send(port, { headers: { "content-type": "text/plain" }, body: "{}" });
    expect(seen).toEqual([
      { status: 400, code: Code.INVALID_ARGUMENT, method: "POST" },
      { status: 415, code: Code.INVALID_ARGUMENT, method: "POST" },
    ]);
  });

  it("tells the errorHandler of every error, with the original kept as cause", async () => {
    const told: ServiceError[] = [];
    const original = new Error("disk on fire");
    let fail = true;
    const port = await serve(
      async () => {
        if (fail) throw original;
        return { ok: true };
      },
      { errorHandler: (_ctx, error) => void told.push(error) },
    );
    await send(port, { headers: json, body: "{}" });
    await send(port, { headers: json, body: "{" });
    fail = false;
    await send(port, { headers: json, body: "{}" });
    expect(told).toHaveLength(2);
    expect(told[0]?.code).toBe(Code.INTERNAL);
    expect(told[0]?.cause).toBe(original);
    expect(told[1]?.code).toBe(Code.INVALID_ARGUMENT);
  });

  it("still answers with the error and runs the finalizer when the errorHandler throws", async () => {
    let finalized: ServerFinalizerInfo | undefined;
    const port = await serve(failing(new ServiceError(Code.NOT_FOUND, "nope")), {
      errorHandler: () => {
        throw new Error("logger broke");
      },
      finalizer: (_ctx, info) => {
        finalized = info;
      },
    });
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(404);
    expect(res.json()).toEqual({ code: "NOT_FOUND", message: "nope" });
    expect(finalized?.status).toBe(404);
  });

  it("uses a custom errorEncoder", async () => {
    const port = await serve(failing(new ServiceError(Code.PERMISSION_DENIED, "not yours")), {
      errorEncoder: (_ctx, error, res) => {
        res.writeHead(422, { "content-type": "text/plain" });
        res.end(`${error.codeName}: ${error.message}`);
      },
    });
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(422);
    expect(res.headers["content-type"]).toBe("text/plain");
    expect(res.text).toBe("PERMISSION_DENIED: not yours");
  });

  it("answers 500 when the errorEncoder throws", async () => {
    let finalized: ServerFinalizerInfo | undefined;
    const port = await serve(failing(new ServiceError(Code.NOT_FOUND, "nope")), {
      errorEncoder: () => {
        throw new Error("encoder broke");
      },
      finalizer: (_ctx, info) => {
        finalized = info;
      },
    });
    const res = await send(port, { headers: json, body: "{}" });
    expect(res.status).toBe(500);
    expect(res.json()).toEqual({ code: "INTERNAL", message: "internal error" });
    expect(finalized?.status).toBe(500);
    expect(finalized?.error?.code).toBe(Code.NOT_FOUND);
  });

  it("keeps serving when a finalizer throws", async () => {
    const port = await serve(uppercase, {
      finalizer: () => {
        throw new Error("finalizer broke");
      },
    });
    const first = await send(port, { headers: json, body: '{"s":"a"}' });
    const second = await send(port, { headers: json, body: '{"s":"b"}' });
    expect([first.status, first.json(), second.status, second.json()]).toEqual([
      200,
      { v: "A" },
      200,
      { v: "B" },
    ]);
  });

  it("defaultErrorEncoder is exported and writes the default error answer", async () => {
    const { port } = await listen((_req, res) => {
      defaultErrorEncoder(
        {} as Context,
        new ServiceError(Code.UNAVAILABLE, "down", { metadata: { "retry-after": "1" } }),
        res,
      );
    });
    const res = await send(port, { method: "GET" });
    expect(res.status).toBe(503);
    expect(res.headers["retry-after"]).toBe("1");
    expect(res.json()).toEqual({ code: "UNAVAILABLE", message: "down" });
  });

  it("rejects a negative bodyLimit at setup", () => {
    expect(() =>
      createHttpHandler(uppercase, jsonRequestDecoder(), encodeJsonResponse, { bodyLimit: -1 }),
    ).toThrow(RangeError);
  });
});

describe("createHttpHandler: deadlines and cancellation", () => {
  /** An endpoint that reports the deadline it saw. */
  function deadlineProbe(): {
    endpoint: Endpoint<unknown, unknown>;
    seen: { deadline?: number; remaining?: number };
  } {
    const seen: { deadline?: number; remaining?: number } = {};
    return {
      seen,
      endpoint: async (ctx) => {
        seen.deadline = ctx.deadline;
        seen.remaining = ctx.timeRemaining();
        return { ok: true };
      },
    };
  }

  it("turns x-request-timeout into ctx.deadline and ctx.timeRemaining()", async () => {
    const { endpoint, seen } = deadlineProbe();
    const port = await serve(endpoint);
    const sentAt = Date.now();
    const res = await send(port, { headers: { ...json, "x-request-timeout": "5000" }, body: "{}" });
    const answeredAt = Date.now();
    expect(res.status).toBe(200);
    expect(seen.deadline).toBeGreaterThanOrEqual(sentAt + 5000);
    expect(seen.deadline).toBeLessThanOrEqual(answeredAt + 5000);
    expect(seen.remaining).toBeGreaterThan(0);
    expect(seen.remaining).toBeLessThanOrEqual(5000);
  });

  it("leaves the deadline unset without the header", async () => {
    const { endpoint, seen } = deadlineProbe();
    const port = await serve(endpoint);
    await send(port, { headers: json, body: "{}" });
    expect(seen).toEqual({ deadline: undefined, remaining: undefined });
  });

  it.each(["abc", "-1", "1.5", "1e3", "", "+5", "100, 200", "0x10"])(
    "answers an invalid x-request-timeout %j with 400",
    async (value) => {
      const { endpoint, seen } = deadlineProbe();
      const port = await serve(endpoint);
      const res = await send(port, { headers: { ...json, "x-request-timeout": value }, body: "{}" });
      expect(res.status).toBe(400);
      expect(res.json()).toEqual({
        code: "INVALID_ARGUMENT",
        message: "invalid x-request-timeout header: expected a whole number of milliseconds",
      });
      expect(seen).toEqual({});
    },
  );

  it("cuts deadlines longer than maxTimeout", async () => {
    const { endpoint, seen } = deadlineProbe();
    const port = await serve(endpoint, { maxTimeout: 1000 });
    const sentAt = Date.now();
    await send(port, { headers: { ...json, "x-request-timeout": "60000" }, body: "{}" });
    const answeredAt = Date.now();
    expect(seen.deadline).toBeGreaterThanOrEqual(sentAt + 1000);
    expect(seen.deadline).toBeLessThanOrEqual(answeredAt + 1000);
    const shorter = await send(port, { headers: { ...json, "x-request-timeout": "300" }, body: "{}" });
    expect(shorter.status).toBe(200);
    expect(seen.remaining).toBeLessThanOrEqual(300);
  });

  it("reads a custom timeout header, or none with timeoutHeader: false", async () => {
    const custom = deadlineProbe();
    const customPort = await serve(custom.endpoint, { timeoutHeader: "X-Budget-Ms" });
    await send(customPort, {
      headers: { ...json, "x-budget-ms": "2000", "x-request-timeout": "junk" },
      body: "{}",
    });
    expect(custom.seen.remaining).toBeGreaterThan(0);
    expect(custom.seen.remaining).toBeLessThanOrEqual(2000);
    const none = deadlineProbe();
    const nonePort = await serve(none.endpoint, { timeoutHeader: false });
    const res = await send(nonePort, { headers: { ...json, "x-request-timeout": "junk" }, body: "{}" });
    expect(res.status).toBe(200);
    expect(none.seen).toEqual({ deadline: undefined, remaining: undefined });
  });

  it("aborts ctx.signal with DEADLINE_EXCEEDED when the deadline passes; answers 504", async () => {
    let reason: unknown;
    const port = await serve(async (ctx) => {
      await aborted(ctx.signal);
      reason = ctx.signal.reason;
      throw ctx.signal.reason;
    });
    const res = await send(port, { headers: { ...json, "x-request-timeout": "50" }, body: "{}" });
    expect(res.status).toBe(504);
    expect(res.json()).toEqual({ code: "DEADLINE_EXCEEDED", message: "deadline exceeded" });
    expect(reason).toBeInstanceOf(ServiceError);
    expect((reason as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("aborts ctx.signal with CANCELLED when the client disconnects; the finalizer reports 499", async () => {
    const started = deferred<void>();
    const observed = deferred<{ aborted: boolean; reason: unknown }>();
    const finalized = deferred<ServerFinalizerInfo>();
    const told: ServiceError[] = [];
    const port = await serve(
      async (ctx) => {
        const signal = ctx.signal;
        started.resolve();
        await aborted(signal);
        observed.resolve({ aborted: signal.aborted, reason: signal.reason });
        throw signal.reason;
      },
      { finalizer: (_ctx, info) => finalized.resolve(info), errorHandler: (_ctx, e) => void told.push(e) },
    );
    const req = http.request({ host: "127.0.0.1", port, method: "POST", agent: false, headers: json });
    req.on("error", () => {
      // We hang up on purpose.
    });
    req.end("{}");
    await started.promise;
    req.destroy();
    const seen = await observed.promise;
    expect(seen.aborted).toBe(true);
    expect(seen.reason).toBeInstanceOf(ServiceError);
    expect((seen.reason as ServiceError).code).toBe(Code.CANCELLED);
    const info = await finalized.promise;
    expect(info.status).toBe(499);
    expect(info.bytesWritten).toBe(0);
    expect(info.error?.code).toBe(Code.CANCELLED);
    expect(told.map((e) => e.code)).toEqual([Code.CANCELLED]);
  });

  it("reports 499 when the client leaves in the middle of the body", async () => {
    let called = false;
    const finalized = deferred<ServerFinalizerInfo>();
    const port = await serve(
      async () => {
        called = true;
        return {};
      },
      { finalizer: (_ctx, info) => finalized.resolve(info) },
    );
    const req = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      agent: false,
      headers: { ...json, "content-length": "100" },
    });
    req.on("error", () => {
      // We hang up on purpose.
    });
    req.write('{"s":"only part of it', () => {
      setTimeout(() => req.destroy(), 20);
    });
    const info = await finalized.promise;
    expect(info.status).toBe(499);
    expect(info.error?.code).toBe(Code.CANCELLED);
    expect(info.error?.message).toBe("client closed the request before the body was complete");
    expect(called).toBe(false);
  });

  it("reports 499 when the client left while an endpoint that ignores the signal ran", async () => {
    const started = deferred<void>();
    const release = deferred<void>();
    const finalized = deferred<ServerFinalizerInfo>();
    const port = await serve(
      async () => {
        started.resolve();
        await release.promise;
        return { late: true };
      },
      { finalizer: (_ctx, info) => finalized.resolve(info) },
    );
    const req = http.request({ host: "127.0.0.1", port, method: "POST", agent: false, headers: json });
    const closed = new Promise<void>((resolve) => req.on("close", () => resolve()));
    req.on("error", () => {
      // We hang up on purpose.
    });
    req.end("{}");
    await started.promise;
    req.destroy();
    await closed;
    // Give the server a moment to see the socket close, then let the endpoint finish.
    await new Promise((r) => setTimeout(r, 50));
    release.resolve();
    const info = await finalized.promise;
    expect(info.status).toBe(499);
    expect(info.error?.code).toBe(Code.CANCELLED);
  });
});

describe("HttpRequest", () => {
  it("exposes method, url, path, query, headers, empty params and the raw request", async () => {
    let seen: HttpRequest | undefined;
    const handler = createHttpHandler(
      async () => ({}),
      (_ctx, request) => {
        seen = request;
        return undefined;
      },
      encodeJsonResponse,
    );
    const { port } = await listen(handler);
    await send(port, { method: "PUT", path: "/a/b?x=1&x=2&y", headers: { "X-Thing": "t" }, body: "hello" });
    expect(seen?.method).toBe("PUT");
    expect(seen?.url).toBe("/a/b?x=1&x=2&y");
    expect(seen?.path).toBe("/a/b");
    expect(seen?.query.getAll("x")).toEqual(["1", "2"]);
    expect(seen?.query.get("y")).toBe("");
    expect(seen?.headers["x-thing"]).toBe("t");
    expect(seen?.params).toEqual({});
    expect(Buffer.from(seen?.body ?? []).toString()).toBe("hello");
    expect(seen?.parsedBody).toBeUndefined();
    expect(seen?.raw).toBeInstanceOf(http.IncomingMessage);
  });
});

describe("createHttpHandler: plain and promised steps", () => {
  it("answers every mix of plain and promised decode/endpoint/encode results, and their failures", async () => {
    type Step = "value" | "promise" | "throw" | "reject";
    const run = <T>(step: Step, value: T, code: Code): T | Promise<T> => {
      const error = new ServiceError(code, `${codeNames[code]} at ${step}`);
      if (step === "throw") throw error;
      if (step === "reject") return Promise.reject(error);
      return step === "promise" ? Promise.resolve(value) : value;
    };
    const steps: Step[] = ["value", "promise", "throw", "reject"];
    const agent = new http.Agent({ keepAlive: true });
    try {
      for (const d of steps) {
        for (const e of steps) {
          for (const c of steps) {
            const finalized: number[] = [];
            const handler = createHttpHandler(
              // A plain-JS endpoint may return a value or throw synchronously.
              ((_ctx: Context, n: number) => run(e, n + 1, Code.ABORTED)) as unknown as Endpoint<
                number,
                number
              >,
              () => run(d, 41, Code.OUT_OF_RANGE),
              (_ctx, v: number) =>
                run(c, { body: String(v), contentType: "text/plain" }, Code.FAILED_PRECONDITION),
              { finalizer: (_ctx, info) => finalized.push(info.status) },
            );
            const { port } = await listen(handler);
            const res = await send(port, { agent });
            const failedAt: [Code, Step] | undefined =
              d === "throw" || d === "reject"
                ? [Code.OUT_OF_RANGE, d]
                : e === "throw" || e === "reject"
                  ? [Code.ABORTED, e]
                  : c === "throw" || c === "reject"
                    ? [Code.FAILED_PRECONDITION, c]
                    : undefined;
            const label = `decode ${d}, endpoint ${e}, encode ${c}`;
            if (failedAt === undefined) {
              expect([res.status, res.body.toString()], label).toEqual([200, "42"]);
            } else {
              expect(res.status, label).toBe(codeToHttpStatus[failedAt[0]]);
              expect(res.json(), label).toEqual({
                code: codeNames[failedAt[0]],
                message: `${codeNames[failedAt[0]]} at ${failedAt[1]}`,
              });
            }
            expect(finalized, label).toEqual([res.status]);
            await closeServers();
          }
        }
      }
    } finally {
      agent.destroy();
    }
  });
});
