// Edge cases of the wire found in review (each test failed before its fix): repeated headers lost once Node's slow
// writeHead path runs, a body another parser read taken as JSON, client paths the URL parser rewrites,
// long timeout budgets, redirects, an upstream's origin policies and statuses passed through a gateway,
// absolute-form request targets, route literals a client must percent-encode, and the router's Allow.
import { connect } from "node:net";
import {
  Code,
  type Context,
  createContext,
  type Endpoint,
  MAX_TIMER_MS,
  ServiceError,
} from "@svckit/endpoint";
import {
  createHttpClient,
  createHttpHandler,
  createJsonErrorEncoder,
  createRouter,
  defaultErrorEncoder,
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
import { afterEach, describe, expect, it } from "vitest";
import { closeServers, listen, send, type TestResponse } from "./test-helpers.js";

afterEach(closeServers);

const json = { "content-type": "application/json" };

/** The values of every header named `name` in a response, as sent (one per header line). */
function sent(res: TestResponse, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    if ((res.rawHeaders[i] as string).toLowerCase() === name) values.push(res.rawHeaders[i + 1] as string);
  }
  return values;
}

/** Serves `handler` on node:http alone, or as an express route (express sets x-powered-by first). */
async function serveOn(host: "node:http" | "express", handler: HttpHandler): Promise<number> {
  if (host === "node:http") return (await listen(handler)).port;
  const app = express();
  app.post("/", handler);
  return (await listen(app)).port;
}

const CHALLENGES = ['Bearer realm="api"', 'Basic realm="legacy"'];

describe("repeated response headers", () => {
  const encodeWithCookies: EncodeResponseFunc<unknown> = () => ({
    contentType: "application/json",
    headers: { "set-cookie": ["a=1", "b=2"], "www-authenticate": CHALLENGES, "x-one": "1" },
    body: "{}",
  });
  const setsHeader: HttpServerOptions = {
    after: [
      (_ctx, res) => {
        res.setHeader("x-after", "yes");
        return undefined;
      },
    ],
  };

  for (const host of ["node:http", "express"] as const) {
    for (const [label, options] of [
      ["without", {}],
      ["with", setsHeader],
    ] as const) {
      it(`all reach the client on ${host} ${label} an after hook setting a header`, async () => {
        const handler = createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeWithCookies, options);
        const res = await send(await serveOn(host, handler), { headers: json, body: "{}" });
        expect(res.status).toBe(200);
        expect(sent(res, "set-cookie")).toEqual(["a=1", "b=2"]);
        expect(sent(res, "www-authenticate")).toEqual(CHALLENGES);
        expect(sent(res, "x-one")).toEqual(["1"]);
        if (options === setsHeader) expect(res.headers["x-after"]).toBe("yes");
      });
    }

    it(`of an error's metadata all reach the client on ${host}, also when a header was set first`, async () => {
      const failing: Endpoint = async () => {
        throw new ServiceError(Code.UNAUTHENTICATED, "who are you", {
          metadata: { "www-authenticate": CHALLENGES, "retry-after": "3" },
        });
      };
      // An error encoder wrapping the default one after setting a header of its own: Node's slow path.
      const errorEncoder = (
        ctx: Context,
        error: ServiceError,
        res: Parameters<typeof defaultErrorEncoder>[2],
      ) => {
        res.setHeader("x-trace", "t-1");
        defaultErrorEncoder(ctx, error, res);
      };
      for (const options of [{}, { errorEncoder }]) {
        const handler = createHttpHandler(failing, jsonRequestDecoder(), encodeJsonResponse, options);
        const res = await send(await serveOn(host, handler), { headers: json, body: "{}" });
        expect(res.status).toBe(401);
        expect(sent(res, "www-authenticate")).toEqual(CHALLENGES);
        expect(sent(res, "retry-after")).toEqual(["3"]);
      }
    });
  }

  it("merges one name given in two spellings instead of keeping the last", async () => {
    const handler = createHttpHandler(
      async () => ({}),
      jsonRequestDecoder(),
      () => ({ headers: { "Set-Cookie": "a=1", "set-cookie": ["b=2", "c=3"] }, body: "{}" }),
      setsHeader,
    );
    const res = await send(await serveOn("node:http", handler), { headers: json, body: "{}" });
    expect(sent(res, "set-cookie")).toEqual(["a=1", "b=2", "c=3"]);
  });
});

describe("a body another middleware parsed first", () => {
  const sum: Endpoint<{ a: number; b: number }, { v: number }> = async (_ctx, { a, b }) => ({ v: a + b });

  async function behind(
    parser: express.RequestHandler,
    contentTypes: "json" | "any",
  ): Promise<(type: string) => Promise<TestResponse>> {
    const app = express();
    app.use(parser);
    app.post("/sum", createHttpHandler(sum, jsonRequestDecoder({ contentTypes }), encodeJsonResponse));
    const { port } = await listen(app);
    return (type) => send(port, { path: "/sum", headers: { "content-type": type }, body: '{"a":1,"b":2}' });
  }

  it("behind express.urlencoded() is refused with 415, not taken as the JSON value", async () => {
    const call = await behind(express.urlencoded(), "any");
    const res = await call("application/x-www-form-urlencoded");
    expect(res.status).toBe(415);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message:
        'unsupported content type "application/x-www-form-urlencoded": a middleware that ran first already parsed the body, which cannot be read as JSON here; send application/json, or mount the route before that middleware',
    });
    // A JSON request passes the urlencoded parser untouched and is read by svckit.
    const ok = await call("application/json");
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual({ v: 3 });
  });

  it("behind express.text() reads the text as the JSON body with contentTypes any, 415 otherwise", async () => {
    const any = await behind(express.text(), "any");
    const res = await any("text/plain");
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ v: 3 });
    const strict = await behind(express.text(), "json");
    const refused = await strict("text/plain");
    expect(refused.status).toBe(415);
    expect(refused.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: 'unsupported content type "text/plain": expected application/json',
    });
  });

  it("behind express.json() still uses what it parsed", async () => {
    const call = await behind(express.json(), "any");
    const res = await call("application/json");
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ v: 3 });
  });
});

describe("a client path the URL parser would rewrite", () => {
  it.each([
    "/a/..\\admin",
    "/a/.\t./admin",
    "/a/.\n./admin",
    "/a/.\r./admin",
    "/a/%2e%2e\\admin",
    "/a/.%2E\\admin",
    "/a/%2e\t%2e/admin",
    "/a/%2E\n%2e/admin",
    "\\..\\admin",
    "/a\\b",
  ])("refuses %j with INVALID_ARGUMENT and sends nothing", async (path) => {
    const calls: string[] = [];
    const fakeFetch: typeof fetch = async (input) => {
      calls.push(String(input));
      return new Response("{}", { status: 200 });
    };
    const call = createHttpClient(
      "http://127.0.0.1:9/api/users",
      "GET",
      () => ({ path }),
      jsonResponseDecoder(),
      {
        fetch: fakeFetch,
      },
    );
    const error = await call(createContext(), {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect((error as ServiceError).message).toMatch(/^request path ".*" has a "\\", tab or line break/);
    expect(calls).toEqual([]);
  });

  it("sends the percent-encoded forms as they are", async () => {
    const calls: string[] = [];
    const fakeFetch: typeof fetch = async (input) => {
      calls.push(String(input));
      return new Response("{}", { status: 200 });
    };
    const call = createHttpClient<string, unknown>(
      "http://127.0.0.1:9/api/users",
      "GET",
      (_ctx, id) => ({ path: `/${encodeURIComponent(id)}` }),
      jsonResponseDecoder(),
      { fetch: fakeFetch },
    );
    await call(createContext(), "..\\admin");
    await call(createContext(), "a\tb");
    expect(calls).toEqual(["http://127.0.0.1:9/api/users/..%5Cadmin", "http://127.0.0.1:9/api/users/a%09b"]);
  });
});

describe("timeout budgets longer than ten digits", () => {
  function probe(): { endpoint: Endpoint<unknown, unknown>; remaining: () => number | undefined } {
    let remaining: number | undefined;
    return {
      endpoint: async (ctx) => {
        remaining = ctx.timeRemaining();
        return {};
      },
      remaining: () => remaining,
    };
  }

  it.each([
    ["12345678901", MAX_TIMER_MS],
    ["99999999999999999999999999999999", MAX_TIMER_MS],
    ["000000000000000000000300", 300],
  ])("are accepted: %s is cut to %d ms", async (value, expected) => {
    const { endpoint, remaining } = probe();
    const { port } = await listen(createHttpHandler(endpoint, jsonRequestDecoder(), encodeJsonResponse));
    const res = await send(port, { headers: { ...json, "x-request-timeout": value }, body: "{}" });
    expect(res.status).toBe(200);
    expect(remaining()).toBeGreaterThan(expected - 1000);
    expect(remaining()).toBeLessThanOrEqual(expected);
  });

  it("are cut to maxTimeout", async () => {
    const { endpoint, remaining } = probe();
    const handler = createHttpHandler(endpoint, jsonRequestDecoder(), encodeJsonResponse, {
      maxTimeout: 1000,
    });
    const { port } = await listen(handler);
    const res = await send(port, { headers: { ...json, "x-request-timeout": "1000000000000" }, body: "{}" });
    expect(res.status).toBe(200);
    expect(remaining()).toBeGreaterThan(0);
    expect(remaining()).toBeLessThanOrEqual(1000);
  });

  it.each([1e12, 1e22])(
    "are sent by the client as at most MAX_TIMER_MS (timeout %d), which its server accepts",
    async (timeout) => {
      const headers: (string | undefined)[] = [];
      const { endpoint, remaining } = probe();
      const handler = createHttpHandler(endpoint, jsonRequestDecoder(), encodeJsonResponse);
      const { port } = await listen((req, res) => {
        headers.push(req.headers["x-request-timeout"] as string | undefined);
        handler(req, res);
      });
      const call = createHttpClient(
        `http://127.0.0.1:${port}/`,
        "POST",
        encodeJsonRequest,
        jsonResponseDecoder(),
      );
      await expect(call(createContext({ timeout }), {})).resolves.toEqual({});
      expect(headers).toEqual([String(MAX_TIMER_MS)]);
      expect(remaining()).toBeGreaterThan(MAX_TIMER_MS - 1000);
    },
  );
});

describe("a client answered with a redirect", () => {
  it.each([303, 307])(
    "fails on %d, keeps the location in the metadata only, and sends nothing to it",
    async (status) => {
      const elsewhere: string[] = [];
      const target = await listen((req, res) => {
        elsewhere.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""}`);
        res.writeHead(200, json);
        res.end('{"v":"redirected"}');
      });
      const location = `http://127.0.0.1:${target.port}/steal`;
      const origin = await listen((_req, res) => {
        res.writeHead(status, { location, "content-type": "text/plain" });
        res.end("see elsewhere");
      });
      const call = createHttpClient(
        `http://127.0.0.1:${origin.port}/sum`,
        "POST",
        encodeJsonRequest,
        jsonResponseDecoder(),
        {
          headers: { authorization: "Bearer secret" },
        },
      );
      const error = await call(createContext(), { a: 1 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ServiceError);
      expect(error).not.toBeInstanceOf(HttpError);
      expect((error as ServiceError).code).toBe(Code.INTERNAL);
      expect((error as ServiceError).message).toBe(
        `HTTP ${status} ${status === 303 ? "See Other" : "Temporary Redirect"}: the server answered with a redirect, which the client does not follow`,
      );
      expect((error as ServiceError).metadata.get("location")).toBe(location);
      expect(elsewhere).toEqual([]);
    },
  );

  it("fails on a 304 without a location", async () => {
    const origin = await listen((_req, res) => {
      res.writeHead(304);
      res.end();
    });
    const call = createHttpClient(
      `http://127.0.0.1:${origin.port}/`,
      "GET",
      () => ({}),
      jsonResponseDecoder(),
    );
    const error = await call(createContext(), {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Code.INTERNAL);
    expect((error as ServiceError).message).toBe("HTTP 304 Not Modified: a 3xx answer carries no result");
  });
});

describe("a gateway throwing an upstream's error on", () => {
  it("passes none of the upstream host's origin policies", async () => {
    const policies: Record<string, string> = {
      "access-control-allow-origin": "*",
      "access-control-allow-credentials": "true",
      "access-control-expose-headers": "x-secret",
      "clear-site-data": '"cookies"',
      refresh: "0; url=https://evil.example/",
      "content-security-policy": "default-src 'none'",
      "content-security-policy-report-only": "default-src 'self'",
      "x-frame-options": "DENY",
      "x-content-type-options": "nosniff",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
      "cross-origin-resource-policy": "same-origin",
      "permissions-policy": "camera=()",
      "referrer-policy": "no-referrer",
      "timing-allow-origin": "*",
      "reporting-endpoints": 'default="https://upstream.example/r"',
    };
    const upstream = await listen((_req, res) => {
      res.writeHead(403, { ...policies, ...json, "x-upstream-id": "u-1" });
      res.end('{"code":"PERMISSION_DENIED","message":"no"}');
    });
    const callUpstream = createHttpClient(
      `http://127.0.0.1:${upstream.port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const gateway = await listen(createHttpHandler(callUpstream, jsonRequestDecoder(), encodeJsonResponse));
    const res = await send(gateway.port, { headers: json, body: "{}" });
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({ code: "PERMISSION_DENIED", message: "no" });
    for (const name of Object.keys(policies)) expect(res.headers[name], name).toBeUndefined();
    expect(res.headers["x-upstream-id"]).toBe("u-1");
  });
});

describe("an upstream's 4xx the code does not map back to", () => {
  /** caller → gateway (a svckit handler calling the upstream with `method`) → upstream. */
  async function twoHops(
    upstream: HttpHandler,
    method = "POST",
  ): Promise<{ res: TestResponse; error: unknown }> {
    const up = await listen(upstream);
    const callUpstream = createHttpClient(
      `http://127.0.0.1:${up.port}/sum`,
      method,
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const gateway = await listen(createHttpHandler(callUpstream, jsonRequestDecoder(), encodeJsonResponse));
    const res = await send(gateway.port, { headers: json, body: '{"pad":"xxxxxxxxxxxxxxxxxxxx"}' });
    const callGateway = createHttpClient(
      `http://127.0.0.1:${gateway.port}/`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const error = await callGateway(createContext(), { pad: "xxxxxxxxxxxxxxxxxxxx" }).catch(
      (e: unknown) => e,
    );
    return { res, error };
  }

  it("keeps a svckit upstream's 413 through the gateway (not 429)", async () => {
    const upstream = createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeJsonResponse, {
      bodyLimit: 10,
    });
    const { res, error } = await twoHops(upstream);
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({
      code: "RESOURCE_EXHAUSTED",
      message: "request body exceeds the limit of 10 bytes",
    });
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).status).toBe(413);
    expect((error as HttpError).code).toBe(Code.RESOURCE_EXHAUSTED);
  });

  it("turns a router's 405 into the gateway's 501 (the upstream's methods are not the gateway's)", async () => {
    const upstream = createRouter().post(
      "/sum",
      createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeJsonResponse),
    );
    const { res, error } = await twoHops(upstream.handle, "PUT");
    expect(res.status).toBe(501);
    expect(res.json()).toEqual({ code: "UNIMPLEMENTED", message: "method PUT is not allowed on /sum" });
    expect(error).toBeInstanceOf(ServiceError);
    expect(error).not.toBeInstanceOf(HttpError);
    expect((error as ServiceError).code).toBe(Code.UNIMPLEMENTED);
  });

  it("keeps a plain upstream's 413 by status alone, and answers its 405 with 501", async () => {
    const plain413 = await twoHops((_req, res) => {
      res.writeHead(413, { "content-type": "text/plain" });
      res.end("too big");
    });
    expect(plain413.res.status).toBe(413);
    expect(plain413.res.json()).toEqual({
      code: "RESOURCE_EXHAUSTED",
      message: "HTTP 413 Payload Too Large: too big",
    });
    const plain405 = await twoHops((_req, res) => {
      res.writeHead(405, { allow: "POST", "content-type": "application/json" });
      res.end('{"error":"use POST"}');
    });
    expect(plain405.res.status).toBe(501);
    expect(plain405.res.json()).toEqual({ code: "UNIMPLEMENTED", message: "use POST" });
  });

  it("stays a plain ServiceError when the status is the code's own", async () => {
    const { error } = await twoHops((_req, res) => {
      res.writeHead(404, json);
      res.end('{"code":"NOT_FOUND","message":"none"}');
    });
    expect(error).toBeInstanceOf(ServiceError);
    expect(error).not.toBeInstanceOf(HttpError);
    expect((error as ServiceError).code).toBe(Code.NOT_FOUND);
  });
});

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

describe("an absolute-form request target", () => {
  const sum: Endpoint<{ a: number; b: number }, { v: number }> = async (_ctx, { a, b }) => ({ v: a + b });

  it("is routed by its path", async () => {
    const router = createRouter()
      .post("/sum", createHttpHandler(sum, jsonRequestDecoder(), encodeJsonResponse))
      .get(
        "/users/:id",
        createHttpHandler(
          async (_ctx, id: string) => ({ id }),
          (_ctx, r) => r.params.id ?? "",
          encodeJsonResponse,
        ),
      );
    const { port } = await listen(router.handle);
    const body = '{"a":1,"b":2}';
    const answer = await rawRequest(
      port,
      `POST http://127.0.0.1:${port}/sum HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close`,
      body,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(answer.endsWith('\r\n\r\n{"v":3}')).toBe(true);
    const user = await rawRequest(
      port,
      `GET HTTP://example.com/users/42?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close`,
    );
    expect(user).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(user.endsWith('\r\n\r\n{"id":"42"}')).toBe(true);
  });

  it("gives decoders its path and query", async () => {
    let seen: unknown;
    const handler = createHttpHandler(
      async () => ({}),
      (_ctx, request) => {
        seen = { path: request.path, query: request.query.get("q"), url: request.url };
        return {};
      },
      encodeJsonResponse,
    );
    const { port } = await listen(handler);
    await rawRequest(
      port,
      `GET http://example.com:8080/search?q=x HTTP/1.1\r\nHost: example.com\r\nConnection: close`,
    );
    expect(seen).toEqual({ path: "/search", query: "x", url: "http://example.com:8080/search?q=x" });
    await rawRequest(port, `GET http://example.com?q=y HTTP/1.1\r\nHost: example.com\r\nConnection: close`);
    expect(seen).toEqual({ path: "/", query: "y", url: "http://example.com?q=y" });
  });
});

describe("route literals and percent-escapes", () => {
  const named =
    (name: string): HttpHandler =>
    (_req, res) => {
      res.writeHead(200, json);
      res.end(JSON.stringify({ route: name, params: (_req as { params?: unknown }).params ?? null }));
    };

  it("matches literals a client must percent-encode, in either hex case", async () => {
    const router = createRouter()
      .get("/café", named("café"))
      .get("/a b/:x", named("a b"))
      .get("/100%", named("100%"));
    const { port } = await listen(router.handle);
    for (const path of ["/caf%C3%A9", "/caf%c3%a9"]) {
      const res = await send(port, { method: "GET", path });
      expect(res.status, path).toBe(200);
      expect(res.json()).toEqual({ route: "café", params: null });
    }
    const spaced = await send(port, { method: "GET", path: "/a%20b/y%20z" });
    expect(spaced.json()).toEqual({ route: "a b", params: { x: "y z" } });
    const percent = await send(port, { method: "GET", path: "/100%25" });
    expect(percent.json()).toEqual({ route: "100%", params: null });
  });

  it("matches an escaped unreserved character as the literal it stands for", async () => {
    const router = createRouter().get("/files/me", named("literal")).get("/files/:name", named("param"));
    const { port } = await listen(router.handle);
    for (const path of ["/files/m%65", "/files/%6De", "/%66iles/me"]) {
      const res = await send(port, { method: "GET", path });
      expect(res.json(), path).toEqual({ route: "literal", params: null });
    }
    const other = await send(port, { method: "GET", path: "/files/caf%c3%a9" });
    expect(other.json()).toEqual({ route: "param", params: { name: "café" } });
    const bad = await send(port, { method: "GET", path: "/files/%zz" });
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "malformed percent-encoding in the request path",
    });
  });

  it("treats a literal and its percent-encoded spelling as one route", () => {
    const router = createRouter().get("/café", named("café"));
    expect(() => router.get("/caf%c3%a9", named("again"))).toThrow(
      "router: GET /caf%c3%a9 is already routed",
    );
    expect(() => router.get("/x\uD800", named("bad"))).toThrow(TypeError);
  });
});

describe("the router's own Allow header", () => {
  it("passes an error encoder's allow-list", async () => {
    const errorEncoder = createJsonErrorEncoder({
      passHeader: (name) => name === "www-authenticate" || name === "retry-after",
    });
    const router = createRouter({ errorEncoder }).post(
      "/sum",
      createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeJsonResponse, { errorEncoder }),
    );
    const { port } = await listen(router.handle);
    const res = await send(port, { method: "GET", path: "/sum" });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("POST");
    // An endpoint's own `allow` metadata still goes through the allow-list.
    const handler = createHttpHandler(
      async () => {
        throw new ServiceError(Code.UNIMPLEMENTED, "no", { metadata: { allow: "GET", "retry-after": "1" } });
      },
      jsonRequestDecoder(),
      encodeJsonResponse,
      { errorEncoder },
    );
    const other = await send((await listen(handler)).port, { headers: json, body: "{}" });
    expect(other.headers.allow).toBeUndefined();
    expect(other.headers["retry-after"]).toBe("1");
  });
});
