// Regression tests for what a review of the transport found (2026-12-02): a gateway passing on an
// upstream's error, client-side failures mapped to the wrong code, an unread body, a deep request.
import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import { Code, createContext, ServiceError } from "@svckit/endpoint";
import {
  createHttpClient,
  createHttpHandler,
  encodeJsonRequest,
  encodeJsonResponse,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { closeServers, listen, send } from "./test-helpers.js";

afterEach(closeServers);

const UPSTREAM_DATE = "Tue, 01 Dec 2026 00:00:00 GMT";

describe("a gateway throwing an upstream's error on", () => {
  it("answers with its own JSON body and none of the upstream's representation, caching or cookie headers", async () => {
    // The upstream answers 503 with a gzip-compressed svckit error body and headers that describe
    // its own response.
    const upstream = await listen((_req, res) => {
      const body = gzipSync(JSON.stringify({ code: "UNAVAILABLE", message: "db down" }));
      res.writeHead(503, {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "content-length": body.length,
        "set-cookie": ["upstream_session=secret; HttpOnly"],
        etag: '"v1"',
        "last-modified": UPSTREAM_DATE,
        "cache-control": "max-age=600",
        expires: UPSTREAM_DATE,
        vary: "accept-encoding",
        date: UPSTREAM_DATE,
        server: "upstream/1.0",
        location: "/elsewhere",
        "content-language": "de",
        "strict-transport-security": "max-age=31536000",
        "retry-after": "7",
        "x-upstream-id": "u-42",
      });
      res.end(body);
    });
    const callUpstream = createHttpClient(
      `http://127.0.0.1:${upstream.port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const gateway = await listen(
      createHttpHandler((ctx, req) => callUpstream(ctx, req), jsonRequestDecoder(), encodeJsonResponse),
    );

    const res = await send(gateway.port, { headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(503);
    // The body is the gateway's plain JSON, readable as such.
    expect(res.json()).toEqual({ code: "UNAVAILABLE", message: "db down" });
    for (const name of [
      "content-encoding",
      "set-cookie",
      "etag",
      "last-modified",
      "cache-control",
      "expires",
      "vary",
      "server",
      "location",
      "content-language",
      "strict-transport-security",
    ]) {
      expect(res.headers[name], name).toBeUndefined();
    }
    expect(res.headers.date).toBeDefined();
    expect(res.headers.date).not.toBe(UPSTREAM_DATE);
    // What is about the error itself still passes.
    expect(res.headers["retry-after"]).toBe("7");
    expect(res.headers["x-upstream-id"]).toBe("u-42");

    // And a svckit client of the gateway gets the error as the upstream said it.
    const callGateway = createHttpClient(
      `http://127.0.0.1:${gateway.port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const error = await callGateway(createContext(), {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect((error as ServiceError).message).toBe("db down");
  });
});

describe("client failures after the request left", () => {
  it("a connection cut off while a 2xx body arrives is UNAVAILABLE, not INTERNAL", async () => {
    const server = await listen((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
      res.write('{"v":');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const call = createHttpClient(
      `http://127.0.0.1:${server.port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const error = await call(createContext(), {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect((error as ServiceError).message).toMatch(/^reading the response failed/);
  });

  it("a request fetch refuses to make (a body on GET) is INTERNAL and never sent", async () => {
    let hits = 0;
    const server = await listen((_req, res) => {
      hits++;
      res.end("{}");
    });
    const call = createHttpClient(
      `http://127.0.0.1:${server.port}/`,
      "GET",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const error = await call(createContext(), { a: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.INTERNAL);
    expect((error as ServiceError).message).toMatch(/^request could not be made: .*GET/);
    expect(hits).toBe(0);
  });

  it("cancels the body an `after` function left unread instead of holding its connection until GC", async () => {
    const body = JSON.stringify({ pad: "x".repeat(256 * 1024) });
    const open = new Set<unknown>();
    const server = await listen((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    server.server.on("connection", (socket) => {
      open.add(socket);
      socket.on("close", () => open.delete(socket));
    });
    const call = createHttpClient(
      `http://127.0.0.1:${server.port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
      {
        after: [
          () => {
            throw new ServiceError(Code.PERMISSION_DENIED, "no");
          },
        ],
      },
    );
    for (let i = 0; i < 5; i++) {
      const error = await call(createContext(), {}).catch((e: unknown) => e);
      expect((error as ServiceError).code).toBe(Code.PERMISSION_DENIED);
    }
    // Each unread 256 KiB body held its connection open (the server still writing it) until the
    // response was garbage-collected (5 open here); cancelled, the client closes it now (the pool may
    // keep one or two).
    const deadline = Date.now() + 2_000;
    while (open.size > 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(open.size).toBeLessThanOrEqual(2);
  });
});

describe("a request nested deeper than its recursive schema can follow", () => {
  it("is answered 400, not 500", async () => {
    type Tree = { c?: Tree[] };
    const tree: z.ZodType<Tree> = z.lazy(() => z.object({ c: z.array(tree).optional() }));
    const server = await listen(
      createHttpHandler(async () => ({}), jsonRequestDecoder({ schema: tree }), encodeJsonResponse),
    );
    // ~350 KB, inside the default body limit: refused by the parser's depth limit already.
    const body = `${'{"c":['.repeat(50_000)}{}${"]}".repeat(50_000)}`;
    const res = await send(server.port, { headers: { "content-type": "application/json" }, body });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "JSON nested too deeply (more than 1000 levels) at line 1, column 3001",
    });
    // Without that limit, the schema's own recursion is caught instead.
    const unlimited = await listen(
      createHttpHandler(
        async () => ({}),
        jsonRequestDecoder({ schema: tree, maxDepth: Number.POSITIVE_INFINITY }),
        encodeJsonResponse,
      ),
    );
    const deep = await send(unlimited.port, { headers: { "content-type": "application/json" }, body });
    expect(deep.status).toBe(400);
    expect(deep.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "invalid request: nested too deeply to validate",
    });
    expect(() => jsonRequestDecoder({ maxDepth: 0 })).toThrow(TypeError);
  });

  it("checks the depth of a body express.json() parsed first too (regression: it went through, and an echo of it was a 500)", async () => {
    const echo = async (_ctx: unknown, req: unknown) => ({ echo: req });
    const app = express();
    app.use(express.json());
    app.post("/echo", createHttpHandler(echo, jsonRequestDecoder({ maxDepth: 10 }), encodeJsonResponse));
    const { port } = await listen(app);
    const post = (body: string) =>
      send(port, { path: "/echo", headers: { "content-type": "application/json" }, body });
    const ok = await post(`${"[".repeat(10)}${"]".repeat(10)}`);
    expect(ok.status).toBe(200);
    const res = await post(`${"[".repeat(11)}${"]".repeat(11)}`);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "JSON nested too deeply (more than 10 levels)",
    });
  });

  it("decodes a response of any depth unless told a maxDepth (regression: responses over 1000 levels failed INTERNAL)", async () => {
    const deep = `${"[".repeat(1500)}${"]".repeat(1500)}`;
    const value = await jsonResponseDecoder()(createContext(), new Response(deep));
    expect(JSON.stringify(value)).toBe(deep);
    const shallow = jsonResponseDecoder({ maxDepth: 100 });
    let err: unknown;
    try {
      await shallow(createContext(), new Response(deep));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.INTERNAL);
    expect((err as ServiceError).message).toContain("nested too deeply (more than 100 levels)");
    expect(() => jsonResponseDecoder({ maxDepth: -1 })).toThrow(TypeError);
  });
});

describe("a client path with a dot segment", () => {
  it.each(["..", ".", "%2e%2E", ".%2E", "%2e"])(
    "refuses %s instead of letting the URL resolve it away, and sends nothing",
    async (id) => {
      let hits = 0;
      const server = await listen((_req, res) => {
        hits++;
        res.end("{}");
      });
      const call = createHttpClient<{ id: string }, unknown>(
        `http://127.0.0.1:${server.port}/api/v1/users`,
        "GET",
        (_ctx, req) => ({ path: `/${req.id}/profile` }),
        jsonResponseDecoder(),
      );
      const error = await call(createContext(), { id }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ServiceError);
      expect((error as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
      expect((error as ServiceError).message).toContain('has a "." or ".." segment');
      expect(hits).toBe(0);
    },
  );

  it("lets dots inside a segment through", async () => {
    let path = "";
    const server = await listen((req, res) => {
      path = req.url ?? "";
      res.end("{}");
    });
    const call = createHttpClient<{ id: string }, unknown>(
      `http://127.0.0.1:${server.port}/api`,
      "GET",
      (_ctx, req) => ({ path: `/files/${encodeURIComponent(req.id)}` }),
      jsonResponseDecoder(),
    );
    for (const id of ["a.b", "...", "..x", ".hidden"]) {
      await call(createContext(), { id });
      expect(path).toBe(`/api/files/${id}`);
    }
  });
});

describe("Expect: 100-continue with a checkContinue listener", () => {
  /** Sends headers with `Expect: 100-continue`, waits for the interim answer up to `waitMs`, then the body. */
  function expectContinue(
    port: number,
    length: number,
    waitMs: number,
  ): Promise<{ interim: boolean; answer: string }> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      let received = "";
      let interim = false;
      let sent = false;
      const sendBody = (): void => {
        if (sent) return;
        sent = true;
        socket.write(JSON.stringify({ pad: "x".repeat(Math.max(0, length - 10)) }).slice(0, length));
      };
      const timer = setTimeout(sendBody, waitMs);
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1");
        if (!interim && received.startsWith("HTTP/1.1 100 Continue\r\n\r\n")) {
          interim = true;
          received = received.slice("HTTP/1.1 100 Continue\r\n\r\n".length);
          sendBody();
        }
        if (/\r\n\r\n/.test(received) && /^HTTP\/1\.1 [2-5]\d\d/.test(received)) {
          clearTimeout(timer);
          socket.destroy();
          resolve({ interim, answer: received });
        }
      });
      socket.on("error", reject);
      socket.write(
        `POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\nexpect: 100-continue\r\n\r\n`,
      );
    });
  }

  it("sends 100 Continue once the declared body is accepted, and refuses one over the limit without it", async () => {
    const handler = createHttpHandler(async () => ({ ok: true }), jsonRequestDecoder(), encodeJsonResponse, {
      bodyLimit: 100,
    });
    const server = await listen(handler);
    server.server.on("checkContinue", handler);
    // The client would wait 5 s for the 100 before sending anyway; it gets it at once.
    const small = await expectContinue(server.port, 50, 5_000);
    expect(small.interim).toBe(true);
    expect(small.answer).toMatch(/^HTTP\/1\.1 200 /);
    const large = await expectContinue(server.port, 5_000, 5_000);
    expect(large.interim).toBe(false);
    expect(large.answer).toMatch(/^HTTP\/1\.1 413 /);
  });

  it("does not send a second 100 when Node already sent it (no checkContinue listener)", async () => {
    const server = await listen(
      createHttpHandler(async () => ({ ok: true }), jsonRequestDecoder(), encodeJsonResponse),
    );
    const answer = await expectContinue(server.port, 50, 5_000);
    expect(answer.interim).toBe(true);
    expect(answer.answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer.answer).not.toContain("100 Continue");
  });
});

describe("a request refused before its body is read (bad timeout header)", () => {
  it("closes the connection when the declared body is over the limit, and keeps it for one within", async () => {
    const server = await listen(
      createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeJsonResponse, { bodyLimit: 1024 }),
    );
    const headers = {
      "content-type": "application/json",
      "x-request-timeout": "soon",
      connection: "keep-alive",
    };
    const large = await send(server.port, { headers, body: Buffer.alloc(64 * 1024, 0x20) });
    expect(large.status).toBe(400);
    expect(large.headers.connection).toBe("close");
    const small = await send(server.port, { headers, body: "{}" });
    expect(small.status).toBe(400);
    expect(small.headers.connection).toBe("keep-alive");
    const chunked = await send(server.port, {
      headers: { ...headers, "transfer-encoding": "chunked" },
      body: "{}",
    });
    expect(chunked.status).toBe(400);
    expect(chunked.headers.connection).toBe("close");
  });
});

describe("response bodies the client will not read whole", () => {
  const decoderCall = (port: number, limit?: number) =>
    createHttpClient(
      `http://127.0.0.1:${port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(limit === undefined ? {} : { bodyLimit: limit }),
    );

  it.each([
    ["declared", false, false],
    ["chunked", true, false],
    ["gzip-compressed (inflating past the limit)", false, true],
  ])("refuses a %s 2xx body over bodyLimit with RESOURCE_EXHAUSTED", async (_name, chunked, gzip) => {
    const json = JSON.stringify({ pad: "0".repeat(1024 * 1024) });
    const body = gzip ? gzipSync(json) : Buffer.from(json);
    const server = await listen((_req, res) => {
      res.writeHead(200, {
        "content-type": "application/json",
        ...(chunked ? {} : { "content-length": body.length }),
        ...(gzip ? { "content-encoding": "gzip" } : {}),
      });
      res.end(body);
    });
    const error = await decoderCall(server.port, 64 * 1024)(createContext(), {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect((error as ServiceError).message).toBe("response body exceeds the limit of 65536 bytes");
  });

  it("reads a compressed or chunked body within the limit", async () => {
    const json = JSON.stringify({ v: "x".repeat(1000) });
    const server = await listen((req, res) => {
      const gzip = req.url === "/gz";
      res.writeHead(200, {
        "content-type": "application/json",
        ...(gzip ? { "content-encoding": "gzip" } : {}),
      });
      res.end(gzip ? gzipSync(json) : json);
    });
    const plain = await decoderCall(server.port, 4096)(createContext(), {});
    expect(plain).toEqual({ v: "x".repeat(1000) });
    const gz = createHttpClient(
      `http://127.0.0.1:${server.port}/gz`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder({ bodyLimit: 4096 }),
    );
    expect(await gz(createContext(), {})).toEqual({ v: "x".repeat(1000) });
  });

  it("reads no more than 64 KiB of an error answer: the status still says what happened", async () => {
    const server = await listen((_req, res) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end("e".repeat(1024 * 1024));
    });
    const error = await decoderCall(server.port)(createContext(), {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect((error as ServiceError).message).toBe("HTTP 502 Bad Gateway");
  });

  it("refuses a bodyLimit that is not a whole number of bytes", () => {
    expect(() => jsonResponseDecoder({ bodyLimit: -1 })).toThrow(
      "jsonResponseDecoder: bodyLimit must be a whole number of bytes ≥ 0, got -1",
    );
    expect(() => jsonResponseDecoder({ bodyLimit: 1.5 })).toThrow(RangeError);
  });
});

describe("a request with two Authorization headers", () => {
  it("hands the endpoint both values (Node keeps only the first in req.headers), so an authenticator can refuse it", async () => {
    let seen: readonly string[] = [];
    const server = await listen(
      createHttpHandler(
        async (ctx) => {
          seen = ctx.metadata.getAll("authorization");
          return {};
        },
        jsonRequestDecoder(),
        encodeJsonResponse,
      ),
    );
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(server.port, "127.0.0.1");
      let text = "";
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString("latin1");
        if (text.includes("\r\n\r\n")) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.on("error", reject);
      socket.write(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n" +
          "Authorization: Bearer alice\r\nauthorization: Bearer mallory\r\n\r\n{}",
      );
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen).toEqual(["Bearer alice", "Bearer mallory"]);
  });
});

describe("client headers", () => {
  it("a key of the call's outgoing metadata replaces the default header of that name", async () => {
    let seen: string | string[] | undefined;
    const server = await listen((req, res) => {
      seen = req.headers.authorization;
      res.end("{}");
    });
    const call = createHttpClient(
      `http://127.0.0.1:${server.port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
      { headers: { authorization: "Bearer static", "x-kept": "1" } },
    );
    await call(createContext().withOutgoingMetadata({ authorization: "Bearer per-call" }), {});
    expect(seen).toBe("Bearer per-call");
    await call(createContext(), {});
    expect(seen).toBe("Bearer static");
  });
});
