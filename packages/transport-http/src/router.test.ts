import { type CallInfo, callInfoKey, type Endpoint } from "@svckit/endpoint";
import {
  createHttpHandler,
  createRouter,
  encodeJsonResponse,
  type HttpHandler,
  JSON_CONTENT_TYPE,
  jsonRequestDecoder,
} from "@svckit/transport-http";
import { afterEach, describe, expect, it } from "vitest";
import { closeServers, listen, send } from "./test-helpers.js";

afterEach(closeServers);

const json = { "content-type": "application/json" };

const uppercase = createHttpHandler(
  (async (_ctx, req) => ({ v: req.s.toUpperCase() })) satisfies Endpoint<{ s: string }, { v: string }>,
  jsonRequestDecoder<{ s: string }>(),
  encodeJsonResponse,
);

/** A handler that answers with the route parameters and the name it was given. */
function echoParams(name: string): HttpHandler {
  return createHttpHandler(
    async (_ctx, params: Readonly<Record<string, string>>) => ({ route: name, params: { ...params } }),
    (_ctx, request) => request.params,
    encodeJsonResponse,
  );
}

async function serveRouter(): Promise<number> {
  const router = createRouter()
    .post("/uppercase", uppercase)
    .get("/users/me", echoParams("me"))
    .get("/users/:id", echoParams("user"))
    .put("/users/:id", echoParams("put user"))
    .get("/users/:id/posts/:post", echoParams("post"))
    .delete("/items/:id", echoParams("delete item"))
    .patch("/items/:id", echoParams("patch item"))
    .route("options", "/items/:id", echoParams("options item"));
  const { port } = await listen(router.handle);
  return port;
}

describe("createRouter", () => {
  it("dispatches on method and path", async () => {
    const port = await serveRouter();
    const res = await send(port, { path: "/uppercase", headers: json, body: '{"s":"abc"}' });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(res.json()).toEqual({ v: "ABC" });
    const methods: [string, string][] = [
      ["DELETE", "delete item"],
      ["PATCH", "patch item"],
      ["OPTIONS", "options item"],
    ];
    for (const [method, route] of methods) {
      const r = await send(port, { method, path: "/items/7" });
      expect({ method, status: r.status, body: r.json() }).toEqual({
        method,
        status: 200,
        body: { route, params: { id: "7" } },
      });
    }
  });

  it("answers an unknown path with 404 and a JSON error", async () => {
    const port = await serveRouter();
    const res = await send(port, { method: "GET", path: "/nope" });
    expect(res.status).toBe(404);
    expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(res.headers["content-length"]).toBe(String(res.body.byteLength));
    expect(res.json()).toEqual({ code: "NOT_FOUND", message: "no route for GET /nope" });
  });

  it("is case-sensitive", async () => {
    const port = await serveRouter();
    const res = await send(port, { path: "/UPPERCASE", headers: json, body: '{"s":"a"}' });
    expect(res.status).toBe(404);
    expect(res.json()).toEqual({ code: "NOT_FOUND", message: "no route for POST /UPPERCASE" });
  });

  it("answers a known path with another method with 405 and an Allow header", async () => {
    const port = await serveRouter();
    const res = await send(port, { method: "GET", path: "/uppercase" });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("POST");
    expect(res.json()).toEqual({ code: "UNIMPLEMENTED", message: "method GET is not allowed on /uppercase" });
    const users = await send(port, { method: "POST", path: "/users/42", headers: json, body: "{}" });
    expect(users.status).toBe(405);
    expect(users.headers.allow).toBe("GET, HEAD, PUT");
    expect(users.json()).toEqual({
      code: "UNIMPLEMENTED",
      message: "method POST is not allowed on /users/42",
    });
  });

  it("answers HEAD with the GET handler, without a body", async () => {
    const port = await serveRouter();
    const get = await send(port, { method: "GET", path: "/users/42" });
    const head = await send(port, { method: "HEAD", path: "/users/42" });
    expect(head.status).toBe(200);
    expect(head.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
    expect(head.headers["content-length"]).toBe(get.headers["content-length"]);
    expect(head.body.byteLength).toBe(0);
    expect(get.json()).toEqual({ route: "user", params: { id: "42" } });
  });

  it("prefers an explicit HEAD route over the GET fallback", async () => {
    const router = createRouter()
      .get("/x", echoParams("get"))
      .route("HEAD", "/x", (_req, res) => {
        res.writeHead(204, { "x-head": "own" });
        res.end();
      });
    const { port } = await listen(router.handle);
    const res = await send(port, { method: "HEAD", path: "/x" });
    expect(res.status).toBe(204);
    expect(res.headers["x-head"]).toBe("own");
    const post = await send(port, { method: "POST", path: "/x" });
    expect(post.headers.allow).toBe("GET, HEAD");
  });

  it("matches :param segments and percent-decodes them", async () => {
    const port = await serveRouter();
    const cases: [string, unknown][] = [
      ["/users/42", { route: "user", params: { id: "42" } }],
      ["/users/a%20b%2Fc", { route: "user", params: { id: "a b/c" } }],
      ["/users/%C3%BCber%F0%9F%98%80", { route: "user", params: { id: "über😀" } }],
      ["/users/a+b", { route: "user", params: { id: "a+b" } }],
      ["/users/7/posts/x%3Fy", { route: "post", params: { id: "7", post: "x?y" } }],
    ];
    for (const [path, body] of cases) {
      const res = await send(port, { method: "GET", path });
      expect({ path, status: res.status, body: res.json() }).toEqual({ path, status: 200, body });
    }
  });

  it("answers a malformed percent-escape in a parameter with 400", async () => {
    const port = await serveRouter();
    for (const path of ["/users/%E0%A4%A", "/users/%zz", "/users/%", "/users/%FF", "/users/1/posts/%C3"]) {
      const res = await send(port, { method: "GET", path });
      expect({ path, status: res.status, body: res.json() }).toEqual({
        path,
        status: 400,
        body: { code: "INVALID_ARGUMENT", message: "malformed percent-encoding in the request path" },
      });
    }
  });

  it("ignores the query string when matching", async () => {
    const port = await serveRouter();
    const exact = await send(port, { path: "/uppercase?debug=1&x", headers: json, body: '{"s":"q"}' });
    expect(exact.status).toBe(200);
    expect(exact.json()).toEqual({ v: "Q" });
    const param = await send(port, { method: "GET", path: "/users/42?id=13" });
    expect(param.status).toBe(200);
    expect(param.json()).toEqual({ route: "user", params: { id: "42" } });
    const notFound = await send(port, { method: "GET", path: "/nope?x=/users/1" });
    expect(notFound.json()).toEqual({ code: "NOT_FOUND", message: "no route for GET /nope" });
  });

  it("does not match a trailing slash, an empty parameter or extra segments", async () => {
    const port = await serveRouter();
    for (const path of [
      "/uppercase/",
      "/users/42/",
      "/users/",
      "/users//posts/1",
      "/users/1/posts/2/3",
      "//uppercase",
    ]) {
      const res = await send(port, { method: path === "/uppercase/" ? "POST" : "GET", path });
      expect({ path, status: res.status, code: (res.json() as { code: string }).code }).toEqual({
        path,
        status: 404,
        code: "NOT_FOUND",
      });
    }
  });

  it("prefers an exact route over a parameter route", async () => {
    const port = await serveRouter();
    const me = await send(port, { method: "GET", path: "/users/me" });
    expect(me.json()).toEqual({ route: "me", params: {} });
    const other = await send(port, { method: "GET", path: "/users/you" });
    expect(other.json()).toEqual({ route: "user", params: { id: "you" } });
  });

  it("chooses among the routes that fit the path the one with the method, and lists all their methods on 405", async () => {
    const router = createRouter()
      .get("/files/:name", echoParams("get file"))
      .post("/:bucket/upload", echoParams("upload"))
      .get("/users/me", echoParams("me"))
      .delete("/users/:id", echoParams("delete user"));
    const { port } = await listen(router.handle);
    const post = await send(port, { method: "POST", path: "/files/upload", headers: json, body: "{}" });
    expect(post.json()).toEqual({ route: "upload", params: { bucket: "files" } });
    const get = await send(port, { method: "GET", path: "/files/upload" });
    expect(get.json()).toEqual({ route: "get file", params: { name: "upload" } });
    const put = await send(port, { method: "PUT", path: "/files/upload", headers: json, body: "{}" });
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe("GET, HEAD, POST");
    // A literal route without the method leaves the request to a parameter route that has it.
    const del = await send(port, { method: "DELETE", path: "/users/me" });
    expect(del.json()).toEqual({ route: "delete user", params: { id: "me" } });
    const patch = await send(port, { method: "PATCH", path: "/users/me", headers: json, body: "{}" });
    expect(patch.status).toBe(405);
    expect(patch.headers.allow).toBe("DELETE, GET, HEAD");
  });

  it("prefers a literal segment over a parameter at the same position, whatever the order routes were added in", async () => {
    for (const reversed of [false, true]) {
      const routes: [string, HttpHandler][] = [
        ["/users/:id/profile", echoParams("profile")],
        ["/users/me/:section", echoParams("my section")],
        ["/users/:id/:section", echoParams("section")],
      ];
      const router = createRouter();
      for (const [path, handler] of reversed ? routes.reverse() : routes) router.get(path, handler);
      const { port } = await listen(router.handle);
      const me = await send(port, { method: "GET", path: "/users/me/profile" });
      expect(me.json()).toEqual({ route: "my section", params: { section: "profile" } });
      const other = await send(port, { method: "GET", path: "/users/42/profile" });
      expect(other.json()).toEqual({ route: "profile", params: { id: "42" } });
      const any = await send(port, { method: "GET", path: "/users/42/posts" });
      expect(any.json()).toEqual({ route: "section", params: { id: "42", section: "posts" } });
    }
  });

  it("decodes parameters only of the route that answers: a path that does not fit is 404, not 400", async () => {
    const router = createRouter().get("/a/:x/b", echoParams("a"));
    const { port } = await listen(router.handle);
    expect((await send(port, { method: "GET", path: "/a/%ZZ/c" })).status).toBe(404);
    const bad = await send(port, { method: "GET", path: "/a/%ZZ/b" });
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "malformed percent-encoding in the request path",
    });
  });

  it("cuts very long paths in error messages", async () => {
    const port = await serveRouter();
    const long = `/${"a".repeat(1000)}`;
    const res = await send(port, { method: "GET", path: long });
    expect(res.status).toBe(404);
    expect(res.json()).toEqual({ code: "NOT_FOUND", message: `no route for GET ${long.slice(0, 200)}` });
  });

  it("writes its errors with a custom errorEncoder, falling back to the default when it throws", async () => {
    const custom = createRouter({
      errorEncoder: (_ctx, error, res) => {
        res.writeHead(error.code === 5 ? 404 : 400, { "content-type": "text/plain" });
        res.end(`router: ${error.message}`);
      },
    }).get("/a", echoParams("a"));
    const { port } = await listen(custom.handle);
    const res = await send(port, { method: "GET", path: "/b" });
    expect(res.status).toBe(404);
    expect(res.text).toBe("router: no route for GET /b");

    const broken = createRouter({
      errorEncoder: () => {
        throw new Error("broken");
      },
    }).get("/a", echoParams("a"));
    const server = await listen(broken.handle);
    const fallback = await send(server.port, { method: "PUT", path: "/a" });
    expect(fallback.status).toBe(405);
    expect(fallback.headers.allow).toBe("GET, HEAD");
    expect(fallback.json()).toEqual({ code: "UNIMPLEMENTED", message: "method PUT is not allowed on /a" });
  });

  it("rejects bad routes at setup", () => {
    const router = createRouter().get("/a/:id", echoParams("a"));
    expect(() => router.get("/a/:id", echoParams("again"))).toThrow("router: GET /a/:id is already routed");
    // The same shape under other parameter names matches the same paths: refused for the same method,
    // allowed for another (each method answers with its own names).
    expect(() => router.get("/a/:key", echoParams("again"))).toThrow(
      "router: GET /a/:key is already routed as /a/:id",
    );
    expect(() => router.put("/a/:key", echoParams("put"))).not.toThrow();
    expect(() => router.route("GET", "/a", echoParams("a")).route("get", "/a", echoParams("a"))).toThrow(
      "already routed",
    );
    expect(() => router.route("GE T", "/b", echoParams("b"))).toThrow('router: bad method "GE T"');
    expect(() => router.get("b", echoParams("b"))).toThrow('router: path must start with "/", got "b"');
    expect(() => router.get("/b/:1x", echoParams("b"))).toThrow(
      'router: bad parameter name ":1x" in "/b/:1x"',
    );
    expect(() => router.post("/a/:id", echoParams("post a"))).not.toThrow();
  });

  it("routes lower-case method names as upper-case", async () => {
    const router = createRouter().route("put", "/thing", echoParams("thing"));
    const { port } = await listen(router.handle);
    const res = await send(port, { method: "PUT", path: "/thing" });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ route: "thing", params: {} });
  });
});

describe("router: call info", () => {
  it("puts the method and the matched route template (not the URL) in the context", async () => {
    const seen: (CallInfo | undefined)[] = [];
    const record = createHttpHandler(
      async (ctx) => {
        seen.push(ctx.value(callInfoKey));
        return {};
      },
      () => undefined,
      encodeJsonResponse,
    );
    const router = createRouter().get("/users/:id", record).post("/users/:id", record).get("/health", record);
    const { port } = await listen(router.handle);
    await send(port, { path: "/users/42", method: "GET" });
    await send(port, { path: "/users/43", method: "POST", headers: json, body: "{}" });
    await send(port, { path: "/health?x=1", method: "GET" });
    expect(seen).toEqual([
      { transport: "http", method: "GET", route: "/users/:id" },
      { transport: "http", method: "POST", route: "/users/:id" },
      { transport: "http", method: "GET", route: "/health" },
    ]);
  });

  it("has no route when the handler serves node:http directly", async () => {
    let seen: CallInfo | undefined;
    const { port } = await listen(
      createHttpHandler(
        async (ctx) => {
          seen = ctx.value(callInfoKey);
          return {};
        },
        () => undefined,
        encodeJsonResponse,
      ),
    );
    await send(port, { path: "/anything/7", method: "PUT" });
    expect(seen).toEqual({ transport: "http", method: "PUT", route: undefined });
  });
});
