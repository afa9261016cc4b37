// More edge cases found in review (each test failed before its fix): a lone "%" that formed a new escape once the
// path was normalised (dot segments in params), an upstream's hop-specific 4xx and 405 at a gateway, a
// body express.json({ type: "*/*" }) parsed under a form content type, a redirect's location in the
// message, an encoder's framing headers, route literals with sub-delims a client escapes, the client
// building error messages on success, and absolute-form targets with other schemes.
import http from "node:http";
import { connect } from "node:net";
import { parse as parseQuery } from "node:querystring";
import { Code, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import {
  createHttpClient,
  createHttpHandler,
  createJsonErrorEncoder,
  createRouter,
  type EncodeResponseFunc,
  encodeJsonRequest,
  encodeJsonResponse,
  HttpError,
  type HttpHandler,
  type HttpServerOptions,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import express from "express";
import fc from "fast-check";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { normalizePath } from "./router.js";
import { closeServers, listen, send, type TestResponse } from "./test-helpers.js";

afterEach(closeServers);

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
afterAll(() => agent.destroy());

const json = { "content-type": "application/json" };
const MALFORMED = { code: "INVALID_ARGUMENT", message: "malformed percent-encoding in the request path" };

/** A handler answering `{ route, params }`, to see which route took a request and what it decoded. */
const named =
  (name: string): HttpHandler =>
  (req, res) => {
    const body = JSON.stringify({ route: name, params: (req as { params?: unknown }).params ?? null });
    res.writeHead(200, { ...json, "content-length": Buffer.byteLength(body) });
    res.end(body);
  };

/** Sends `head` and `body` on a raw socket and resolves with everything the server answered. */
function rawRequest(port: number, head: string, body = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.end(`${head}\r\n\r\n${body}`));
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      answer += chunk;
    });
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
  });
}

/** A raw HTTP/1.1 answer split into its status line, header lines (lower-case names) and body. */
function parseAnswer(answer: string): { status: string; headers: [string, string][]; body: string } {
  const end = answer.indexOf("\r\n\r\n");
  const [status = "", ...lines] = answer.slice(0, end).split("\r\n");
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  return { status, headers, body: answer.slice(end + 4) };
}

function values(headers: readonly [string, string][], name: string): string[] {
  return headers.filter(([n]) => n === name).map(([, v]) => v);
}

describe("a '%' that starts no escape in the request path", () => {
  async function paramRouter(): Promise<number> {
    const router = createRouter().get("/p/:id", named("param")).get("/files/me", named("literal"));
    return (await listen(router.handle)).port;
  }

  it.each(["/p/%%32%65%%32%65", "/p/%%32%66etc", "/p/%%32%45", "/p/a%", "/p/%zz"])(
    "answers %s 400 when a parameter holds it, never forming a new escape",
    async (path) => {
      const port = await paramRouter();
      const res = await send(port, { method: "GET", path });
      expect(res.status).toBe(400);
      expect(res.json()).toEqual(MALFORMED);
    },
  );

  it.each(["/files/%zz", "/files/m%6", "/%%36%36iles/me", "/files/%%36%35"])(
    "answers %s 404 when only a literal could take it, as before normalising",
    async (path) => {
      const port = await paramRouter();
      const res = await send(port, { method: "GET", path });
      expect(res.status).toBe(404);
      expect(res.json()).toEqual({ code: "NOT_FOUND", message: `no route for GET ${path}` });
    },
  );

  it("property: the param is decodeURIComponent of the raw segment, or the answer is 400 when that throws", async () => {
    const port = await paramRouter();
    const piece = fc.constantFrom("%", "2", "e", "%32", "%65", "%66", "%46", "%2e", "%2F", "%25", "a");
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 8 }), async (pieces) => {
        const raw = pieces.join("");
        let expected: string | undefined;
        try {
          expected = decodeURIComponent(raw);
        } catch {
          expected = undefined;
        }
        const res = await send(port, { method: "GET", path: `/p/${raw}`, agent });
        if (expected === undefined) {
          expect(res.status, raw).toBe(400);
          expect(res.json()).toEqual(MALFORMED);
        } else {
          expect(res.status, raw).toBe(200);
          expect(res.json()).toEqual({ route: "param", params: { id: expected } });
        }
      }),
      { numRuns: 200 },
    );
  });

  it("property: normalising is idempotent and keeps what each segment decodes to (or that it cannot)", () => {
    const piece = fc.constantFrom(
      "%",
      "2",
      "e",
      "a",
      "/",
      "%32",
      "%65",
      "%2e",
      "%2F",
      "%25",
      "%3a",
      "%40",
      "%2c",
      "%c3%a9",
      "%e2",
      "%zz",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), (pieces) => {
        const path = `/${pieces.join("")}`;
        const normal = normalizePath(path);
        expect(normalizePath(normal)).toBe(normal);
        // Segment by segment, normalising never changes what the segment decodes to.
        const rawParts = path.split("/");
        const normalParts = normal.split("/");
        expect(normalParts.length).toBe(rawParts.length);
        for (let i = 0; i < rawParts.length; i++) {
          let a: string | undefined;
          let b: string | undefined;
          try {
            a = decodeURIComponent(rawParts[i] as string);
          } catch {}
          try {
            b = decodeURIComponent(normalParts[i] as string);
          } catch {}
          expect(b).toBe(a);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("route literals with characters encodeURIComponent escapes", () => {
  async function router(): Promise<number> {
    const r = createRouter()
      .post("/v1/things:batch", named("batch"))
      .post("/v1/:name", named("param"))
      .get("/u/@me", named("me"))
      .get("/a,b/:x", named("comma"))
      .get("/q/$;=&+", named("subdelims"));
    return (await listen(r.handle)).port;
  }

  it("match what a client sends with encodeURIComponent", async () => {
    const port = await router();
    const sent: string[] = [];
    const call = createHttpClient<string, unknown>(
      `http://127.0.0.1:${port}/v1`,
      "POST",
      (_ctx, name) => ({ path: `/${encodeURIComponent(name)}` }),
      jsonResponseDecoder(),
      {
        after: [
          (_ctx, res) => {
            sent.push(res.url);
            return undefined;
          },
        ],
      },
    );
    await expect(call(createContext(), "things:batch")).resolves.toEqual({ route: "batch", params: null });
    expect(sent).toEqual([`http://127.0.0.1:${port}/v1/things%3Abatch`]);
    for (const [path, answer] of [
      ["/v1/things%3abatch", { route: "batch", params: null }],
      ["/u/%40me", { route: "me", params: null }],
      ["/a%2Cb/x%2By", { route: "comma", params: { x: "x+y" } }],
      ["/q/%24%3B%3D%26%2B", { route: "subdelims", params: null }],
    ] as const) {
      const res = await send(port, { method: path.startsWith("/v1") ? "POST" : "GET", path });
      expect(res.status, path).toBe(200);
      expect(res.json(), path).toEqual(answer);
    }
  });

  it("keep params decoded exactly, an escaped '/' inside one segment", async () => {
    const port = await router();
    for (const [path, name] of [
      ["/v1/a%3Ab%40c%2C%2B%26", "a:b@c,+&"],
      ["/v1/things%2Fbatch", "things/batch"],
      ["/v1/things%253Abatch", "things%3Abatch"],
    ] as const) {
      const res = await send(port, { method: "POST", path });
      expect(res.json(), path).toEqual({ route: "param", params: { name } });
    }
  });

  it("tell an escaped ':' starting a literal from a parameter", async () => {
    const r = createRouter().get("/v1/%3Abatch", named("literal")).get("/v1/:name", named("param"));
    // A parameter (the same shape as /v1/:name, so refused for GET), not the literal ":batch".
    expect(() => r.get("/v1/:batch", named("param2"))).toThrow(
      "router: GET /v1/:batch is already routed as /v1/:name",
    );
    const { port } = await listen(r.handle);
    for (const path of ["/v1/%3Abatch", "/v1/%3abatch", "/v1/:batch"]) {
      const res = await send(port, { method: "GET", path });
      expect(res.json(), path).toEqual({ route: "literal", params: null });
    }
    const other = await send(port, { method: "GET", path: "/v1/%3Aother" });
    expect(other.json()).toEqual({ route: "param", params: { name: ":other" } });
  });

  it("are one route with their escaped spelling", () => {
    const r = createRouter().post("/v1/things:batch", named("batch"));
    expect(() => r.post("/v1/things%3Abatch", named("again"))).toThrow(
      "router: POST /v1/things%3Abatch is already routed",
    );
    expect(() => r.post("/v1/things%3abatch", named("again"))).toThrow(/already routed/);
  });

  it("property: a param of sub-delims, ':' and '@', escaped or not, is decodeURIComponent of the raw segment", async () => {
    const port = (await listen(createRouter().get("/p/:id", named("param")).handle)).port;
    const piece = fc.constantFrom(
      ":",
      "@",
      ",",
      "+",
      "&",
      "=",
      "%3A",
      "%40",
      "%2C",
      "%2b",
      "%26",
      "%3d",
      "%2F",
      "x",
    );
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 6 }), async (pieces) => {
        const raw = pieces.join("");
        const res = await send(port, { method: "GET", path: `/p/${raw}`, agent });
        expect(res.json(), raw).toEqual({ route: "param", params: { id: decodeURIComponent(raw) } });
      }),
      { numRuns: 100 },
    );
  });
});

describe("an upstream's 4xx status at a gateway", () => {
  /** A client whose fetch answers `status` with `body` (svckit's JSON error body when given an object). */
  function clientAnswering(status: number, body: string, headers: Record<string, string> = json) {
    const fakeFetch: typeof fetch = async () => new Response(body, { status, headers });
    return createHttpClient("http://127.0.0.1:9/", "POST", encodeJsonRequest, jsonResponseDecoder(), {
      fetch: fakeFetch,
    });
  }

  it.each([409, 410, 412, 413, 415, 416, 422, 423, 424, 428, 451])(
    "keeps the end-to-end %d as an HttpError",
    async (status) => {
      const call = clientAnswering(status, '{"code":"FAILED_PRECONDITION","message":"no"}');
      const error = await call(createContext(), {}).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpError);
      expect((error as HttpError).status).toBe(status);
      expect((error as HttpError).code).toBe(Code.FAILED_PRECONDITION);
    },
  );

  it.each([
    [405, Code.UNIMPLEMENTED],
    [408, Code.DEADLINE_EXCEEDED],
    [411, Code.UNKNOWN],
    [414, Code.UNKNOWN],
    [417, Code.UNKNOWN],
    [421, Code.UNKNOWN],
    [426, Code.UNKNOWN],
    [431, Code.UNKNOWN],
  ])("gives the hop-specific %d the code's own status", async (status, code) => {
    const svckit = await clientAnswering(status, '{"code":"INVALID_ARGUMENT","message":"hop"}')(
      createContext(),
      {},
    ).catch((e: unknown) => e);
    expect(svckit).toBeInstanceOf(ServiceError);
    expect(svckit).not.toBeInstanceOf(HttpError);
    expect((svckit as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    const plain = await clientAnswering(status, "nope", { "content-type": "text/plain" })(
      createContext(),
      {},
    ).catch((e: unknown) => e);
    expect(plain).not.toBeInstanceOf(HttpError);
    expect((plain as ServiceError).code).toBe(code);
  });

  it("answers an upstream router's 405 with 501 through a gateway with the README's allow-list", async () => {
    const errorEncoder = createJsonErrorEncoder({
      passHeader: (name) => name === "www-authenticate" || name === "retry-after",
    });
    const upstream = createRouter().post(
      "/sum",
      createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeJsonResponse),
    );
    const up = await listen(upstream.handle);
    const callUpstream = createHttpClient(
      `http://127.0.0.1:${up.port}/sum`,
      "PUT",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const gateway = await listen(
      createHttpHandler(callUpstream, jsonRequestDecoder(), encodeJsonResponse, { errorEncoder }),
    );
    const res = await send(gateway.port, { headers: json, body: "{}" });
    expect(res.status).toBe(501);
    expect(res.headers.allow).toBeUndefined();
    expect(res.json()).toEqual({ code: "UNIMPLEMENTED", message: "method PUT is not allowed on /sum" });
  });

  it("drops the upstream's Allow from a 405 passed on as 501, also with the default error encoder", async () => {
    const upstream = createRouter().get(
      "/only-get",
      createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeJsonResponse),
    );
    const up = await listen(upstream.handle);
    const callUpstream = createHttpClient(
      `http://127.0.0.1:${up.port}/only-get`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const gateway = await listen(createHttpHandler(callUpstream, jsonRequestDecoder(), encodeJsonResponse));
    const res = await send(gateway.port, { headers: json, body: "{}" });
    expect(res.status).toBe(501);
    expect(res.headers.allow).toBeUndefined();
  });

  it("answers an upstream's 431 with the code's status, not 431", async () => {
    const up = await listen((_req, res) => {
      res.writeHead(431, json);
      res.end('{"code":"INVALID_ARGUMENT","message":"headers too large"}');
    });
    const callUpstream = createHttpClient(
      `http://127.0.0.1:${up.port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const gateway = await listen(createHttpHandler(callUpstream, jsonRequestDecoder(), encodeJsonResponse));
    const res = await send(gateway.port, { headers: json, body: "{}" });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ code: "INVALID_ARGUMENT", message: "headers too large" });
  });
});

describe("jsonRequestDecoder({ contentTypes: 'any' }) behind an express body parser", () => {
  const sum: Endpoint<{ a: number; b: number }, { v: number }> = async (_ctx, { a, b }) => ({ v: a + b });
  const FORM = "application/x-www-form-urlencoded";

  async function behind(parser: express.RequestHandler): Promise<(type: string) => Promise<TestResponse>> {
    const app = express();
    app.use(parser);
    app.post("/sum", createHttpHandler(sum, jsonRequestDecoder({ contentTypes: "any" }), encodeJsonResponse));
    const { port } = await listen(app);
    return (type) => send(port, { path: "/sum", headers: { "content-type": type }, body: '{"a":1,"b":2}' });
  }

  it("behind express.json({ type: '*/*' }) takes a JSON-typed body, refuses one typed otherwise (what it parsed cannot be told from form fields)", async () => {
    const call = await behind(express.json({ type: "*/*" }));
    const ok = await call("application/json");
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual({ v: 3 });
    for (const type of [FORM, "text/plain"]) {
      const res = await call(type);
      expect(res.status, type).toBe(415);
      expect(res.json()).toEqual({
        code: "INVALID_ARGUMENT",
        message: `unsupported content type "${type}": a middleware that ran first already parsed the body, which cannot be read as JSON here; send application/json, or mount the route before that middleware`,
      });
    }
  });

  it.each([
    ["express.text({ type: '*/*' })", express.text({ type: "*/*" })],
    ["express.raw({ type: '*/*' })", express.raw({ type: "*/*" })],
    ["express.text()", express.text()],
  ])("takes a form-typed JSON body behind %s", async (_name, parser) => {
    const call = await behind(parser);
    for (const type of [FORM, "text/plain", "application/json"]) {
      const res = await call(type);
      expect(res.status, type).toBe(200);
      expect(res.json()).toEqual({ v: 3 });
    }
  });

  it.each([
    ["express.urlencoded()", express.urlencoded()],
    ["express.urlencoded({ extended: true })", express.urlencoded({ extended: true })],
    [
      "a parser making a null-prototype object (querystring)",
      ((req, _res, next) => {
        let text = "";
        req.setEncoding("utf8");
        req.on("data", (chunk: string) => {
          text += chunk;
        });
        req.on("end", () => {
          req.body = parseQuery(text);
          next();
        });
      }) as express.RequestHandler,
    ],
    [
      "a form parser meeting a JSON array (qs strips the brackets)",
      ((req, _res, next) => {
        req.resume();
        req.on("end", () => {
          req.body = { "1,2": "" };
          next();
        });
      }) as express.RequestHandler,
    ],
  ])("refuses with 415 what %s made of a form-typed JSON body", async (_name, parser) => {
    const call = await behind(parser);
    const res = await call(FORM);
    expect(res.status).toBe(415);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: `unsupported content type "${FORM}": a middleware that ran first already parsed the body, which cannot be read as JSON here; send application/json, or mount the route before that middleware`,
    });
  });
});

describe("a redirect answered to a gateway's client", () => {
  it("leaves the location out of the message and answers INTERNAL", async () => {
    const location = "http://10.0.0.7:9000/internal/sum?token=s3cret";
    const up = await listen((_req, res) => {
      res.writeHead(307, { location, "content-type": "text/plain" });
      res.end(`go to ${location}`);
    });
    const callUpstream = createHttpClient(
      `http://127.0.0.1:${up.port}/sum`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const error = await callUpstream(createContext(), {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.INTERNAL);
    expect((error as ServiceError).message).toBe(
      "HTTP 307 Temporary Redirect: the server answered with a redirect, which the client does not follow",
    );
    expect((error as ServiceError).metadata.get("location")).toBe(location);
    const gateway = await listen(createHttpHandler(callUpstream, jsonRequestDecoder(), encodeJsonResponse));
    const res = await send(gateway.port, { headers: json, body: "{}" });
    expect(res.status).toBe(500);
    expect(res.headers.location).toBeUndefined();
    expect(res.text).not.toContain("s3cret");
    expect(res.json()).toEqual({
      code: "INTERNAL",
      message:
        "HTTP 307 Temporary Redirect: the server answered with a redirect, which the client does not follow",
    });
  });
});

describe("an encoder's framing headers", () => {
  const setsHeaders: HttpServerOptions = {
    after: [
      (_ctx, res) => {
        res.setHeader("x-after", "yes");
        res.setHeader("content-type", "text/html");
        return undefined;
      },
    ],
  };

  for (const [label, options] of [
    ["without", {}],
    ["with", setsHeaders],
  ] as const) {
    it(`give one content-type and the server's own content-length, ${label} an after hook setting headers`, async () => {
      const encode: EncodeResponseFunc<unknown> = () => ({
        contentType: "application/json",
        headers: {
          "Content-Type": "text/plain; charset=utf-8",
          "Content-Length": "999",
          "transfer-encoding": "chunked",
          "x-one": "1",
        },
        body: "héllo",
      });
      const handler = createHttpHandler(async () => ({}), jsonRequestDecoder(), encode, options);
      const { port } = await listen(handler);
      const answer = parseAnswer(
        await rawRequest(
          port,
          "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close",
          "{}",
        ),
      );
      expect(answer.status).toBe("HTTP/1.1 200 OK");
      expect(values(answer.headers, "content-type")).toEqual(["text/plain; charset=utf-8"]);
      expect(values(answer.headers, "content-length")).toEqual(["6"]);
      expect(values(answer.headers, "transfer-encoding")).toEqual([]);
      expect(values(answer.headers, "x-one")).toEqual(["1"]);
      expect(answer.body).toBe("héllo");
    });
  }

  it("keep contentType when the headers have none, and add no content-length to a 204", async () => {
    const encode: EncodeResponseFunc<unknown> = () => ({
      contentType: "application/json",
      headers: { "content-length": "5", "x-one": "1" },
    });
    const handler = createHttpHandler(async () => ({}), jsonRequestDecoder(), encode, setsHeaders);
    const { port } = await listen(handler);
    const answer = parseAnswer(
      await rawRequest(
        port,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close",
        "{}",
      ),
    );
    expect(answer.status).toBe("HTTP/1.1 204 No Content");
    expect(values(answer.headers, "content-type")).toEqual(["application/json"]);
    expect(values(answer.headers, "content-length")).toEqual([]);
    expect(answer.body).toBe("");
  });
});

describe("the client's error messages", () => {
  it("are not built for a call that succeeds", async () => {
    const fakeFetch: typeof fetch = async () => new Response("{}", { status: 200, headers: json });
    const call = createHttpClient<string, unknown>(
      "http://127.0.0.1:9/api",
      "GET",
      (_ctx, id) => ({ path: `/users/${id}` }),
      jsonResponseDecoder(),
      { fetch: fakeFetch },
    );
    const stringify = vi.spyOn(JSON, "stringify");
    try {
      await expect(call(createContext(), "42")).resolves.toEqual({});
      expect(stringify.mock.calls.filter(([value]) => value === "/users/42")).toEqual([]);
    } finally {
      stringify.mockRestore();
    }
  });
});

describe("an absolute-form request target with another scheme", () => {
  async function router(): Promise<number> {
    return (await listen(createRouter().get("/files/me", named("me")).handle)).port;
  }

  it.each(["foo://evil/files/me", "ftp://evil/files/me", "file:///files/me", "javascript://x/files/me"])(
    "answers GET %s 400",
    async (target) => {
      const answer = parseAnswer(
        await rawRequest(await router(), `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close`),
      );
      expect(answer.status).toBe("HTTP/1.1 400 Bad Request");
      expect(JSON.parse(answer.body)).toEqual({
        code: "INVALID_ARGUMENT",
        message: `unsupported request target ${JSON.stringify(target)}: expected a path or an http(s) URL`,
      });
    },
  );

  it.each(["http://x/files/me", "HTTPS://x/files/me", "Http://x:8080/files/me?q=1"])(
    "routes GET %s by its path",
    async (target) => {
      const answer = parseAnswer(
        await rawRequest(await router(), `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close`),
      );
      expect(answer.status).toBe("HTTP/1.1 200 OK");
      expect(JSON.parse(answer.body)).toEqual({ route: "me", params: null });
    },
  );

  it("is left as it is in request.path by a handler without the router", async () => {
    let seen: unknown;
    const handler = createHttpHandler(
      async () => ({}),
      (_ctx, request) => {
        seen = request.path;
        return {};
      },
      encodeJsonResponse,
    );
    const { port } = await listen(handler);
    await rawRequest(port, "GET foo://evil/files/me HTTP/1.1\r\nHost: x\r\nConnection: close");
    expect(seen).toBe("foo://evil/files/me");
  });
});
