// Regression tests for three router defects: a GET route answered HEAD although a fitting route had a
// HEAD of its own; adding a parameter route sorted them all again (setup quadratic in the routes); a `|`,
// `^`, `[` or `]` sent unescaped (as fetch and curl do) did not match a route literal holding it. Each
// test failed before its fix but four guards of behaviour kept as it was: the GET fallback, 20,000 routes
// matched (correct before too, only ~10 s slower to set up), routes added after requests, and malformed
// escapes beside a raw character.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRouter, type HttpHandler, type Router } from "@svckit/transport-http";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { normalizePath } from "./router.js";
import { closeServers, listen, send } from "./test-helpers.js";

afterEach(closeServers);

/** A handler that tells, in headers (a HEAD answer has no body), which route took the request. */
const named =
  (name: string): HttpHandler =>
  (req, res) => {
    const params = (req as { params?: Record<string, string> }).params ?? null;
    const body = JSON.stringify({ route: name, params, url: req.url });
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      "x-route": name,
      "x-params": encodeURIComponent(JSON.stringify(params)),
    });
    res.end(body);
  };

/** Which route answered `method path` (its name and parameters), or the error status and Allow header. */
async function ask(
  port: number,
  method: string,
  path: string,
): Promise<{ route: string | undefined; params: unknown } | { status: number; allow: string | undefined }> {
  const res = await send(port, { method, path });
  if (res.status !== 200) return { status: res.status, allow: res.headers.allow };
  const params = res.headers["x-params"];
  return {
    route: res.headers["x-route"] as string | undefined,
    params: typeof params === "string" ? JSON.parse(decodeURIComponent(params)) : undefined,
  };
}

describe("router: an explicit HEAD route wins over the GET fallback", () => {
  it("for routes of the same shape under other parameter names, in either order", async () => {
    for (const headFirst of [false, true]) {
      const router = createRouter();
      const add = [
        () => router.get("/f/:a", named("get")),
        () => router.route("HEAD", "/f/:b", named("head")),
      ];
      for (const step of headFirst ? add.reverse() : add) step();
      const { port } = await listen(router.handle);
      expect(await ask(port, "HEAD", "/f/1"), `headFirst ${headFirst}`).toEqual({
        route: "head",
        params: { b: "1" },
      });
      expect(await ask(port, "GET", "/f/1")).toEqual({ route: "get", params: { a: "1" } });
      expect(await ask(port, "PUT", "/f/1")).toEqual({ status: 405, allow: "GET, HEAD" });
    }
  });

  it("whatever the specificity of the GET route: an exact or more specific GET does not take a HEAD", async () => {
    const router = createRouter()
      .get("/f/me", named("exact get"))
      .get("/f/me/:tab", named("specific get"))
      .route("HEAD", "/f/:a", named("head 1"))
      .route("HEAD", "/f/:a/:b", named("head 2"));
    const { port } = await listen(router.handle);
    expect(await ask(port, "HEAD", "/f/me")).toEqual({ route: "head 1", params: { a: "me" } });
    expect(await ask(port, "GET", "/f/me")).toEqual({ route: "exact get", params: null });
    expect(await ask(port, "HEAD", "/f/me/x")).toEqual({ route: "head 2", params: { a: "me", b: "x" } });
    expect(await ask(port, "GET", "/f/me/x")).toEqual({ route: "specific get", params: { tab: "x" } });
  });

  it("falls back to the GET of the most specific fitting route when no fitting route has a HEAD", async () => {
    const router = createRouter()
      .route("HEAD", "/elsewhere/:x", named("other head"))
      .get("/g/:a/:b", named("get any"))
      .get("/g/me/:tab", named("get mine"))
      .get("/h", named("exact get"))
      .get("/:any", named("get one"));
    const { port } = await listen(router.handle);
    expect(await ask(port, "HEAD", "/g/me/x")).toEqual({ route: "get mine", params: { tab: "x" } });
    expect(await ask(port, "HEAD", "/g/you/x")).toEqual({ route: "get any", params: { a: "you", b: "x" } });
    // The exact route before the parameter route that fits too.
    expect(await ask(port, "HEAD", "/h")).toEqual({ route: "exact get", params: null });
    expect(await ask(port, "HEAD", "/elsewhere/1")).toEqual({ route: "other head", params: { x: "1" } });
  });

  it("keeps 405 and Allow as before: HEAD listed with GET, an own HEAD listed alone", async () => {
    const router = createRouter()
      .route("HEAD", "/only-head/:id", named("head"))
      .post("/only-post/:id", named("post"))
      .post("/exact", named("post exact"))
      .get("/both/:a", named("get"))
      .route("HEAD", "/both/:b", named("head both"))
      .put("/both/x", named("put x"));
    const { port } = await listen(router.handle);
    expect(await ask(port, "GET", "/only-head/1")).toEqual({ status: 405, allow: "HEAD" });
    expect(await ask(port, "HEAD", "/only-post/1")).toEqual({ status: 405, allow: "POST" });
    expect(await ask(port, "HEAD", "/exact")).toEqual({ status: 405, allow: "POST" });
    expect(await ask(port, "DELETE", "/both/x")).toEqual({ status: 405, allow: "GET, HEAD, PUT" });
    expect(await ask(port, "HEAD", "/both/x")).toEqual({ route: "head both", params: { b: "x" } });
    const res = await send(port, { method: "HEAD", path: "/only-post/1" });
    expect(res.body.byteLength).toBe(0);
    expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
  });
});

/** Calls `router.handle` with a bare request, and tells which handler took it and with what. */
function dispatch(router: Router, method: string, url: string): { status?: number; req: IncomingMessage } {
  const req = { method, url, headers: {} } as IncomingMessage;
  let status: number | undefined;
  const res = {
    headersSent: false,
    writableEnded: false,
    setHeader() {},
    writeHead(code: number) {
      status = code;
      return res;
    },
    end() {},
  } as unknown as ServerResponse;
  router.handle(req, res);
  return { status, req };
}

describe("router: setup with many routes", () => {
  /** 5,000 groups of four routes of different specificity, added in a scrambled order. */
  function manyRoutes(groups: number): { router: Router; taken: string[] } {
    const taken: string[] = [];
    const record =
      (name: string): HttpHandler =>
      () => {
        taken.push(name);
      };
    const routes: [string, string][] = [];
    for (let i = 0; i < groups; i++) {
      routes.push(
        [`/g${i}/:id/posts`, `${i} posts`],
        [`/g${i}/me/:tab`, `${i} mine`],
        [`/g${i}/:id/:tab`, `${i} any`],
        [`/g${i}/:id`, `${i} one`],
      );
    }
    // A fixed permutation (7919 is prime, so i * 7919 mod n visits every index once).
    const router = createRouter();
    for (let i = 0; i < routes.length; i++) {
      const [path, name] = routes[(i * 7919) % routes.length] as [string, string];
      router.get(path, record(name));
    }
    return { router, taken };
  }

  it("matches each of 20,000 parameter routes with the precedence of a literal over a parameter", () => {
    const groups = 5_000;
    const { router, taken } = manyRoutes(groups);
    const expected: string[] = [];
    for (let i = 0; i < groups; i++) {
      for (const [url, name] of [
        [`/g${i}/me/posts`, `${i} mine`],
        [`/g${i}/42/posts`, `${i} posts`],
        [`/g${i}/42/x`, `${i} any`],
        [`/g${i}/42`, `${i} one`],
      ] as const) {
        dispatch(router, "GET", url);
        expected.push(name);
      }
    }
    expect(taken.length).toBe(4 * groups);
    expect(taken).toEqual(expected);
    const last = dispatch(router, "GET", `/g${groups - 1}/me/posts`).req as {
      params?: unknown;
      route?: unknown;
    };
    expect(last.params).toEqual({ tab: "posts" });
    expect(last.route).toEqual({ path: `/g${groups - 1}/me/:tab` });
    expect(dispatch(router, "GET", `/g${groups}/42`).status).toBe(404);
  }, 60_000);

  it("does not sort the routes per route added: once, before the next request", () => {
    const sort = vi.spyOn(Array.prototype, "sort");
    try {
      const { router, taken } = manyRoutes(2_500);
      const duringSetup = sort.mock.calls.length;
      dispatch(router, "GET", "/g7/me/x");
      dispatch(router, "GET", "/g8/me/x");
      expect({ duringSetup, withRequests: sort.mock.calls.length }).toEqual({
        duringSetup: 0,
        withRequests: 1,
      });
      expect(taken).toEqual(["7 mine", "8 mine"]);
    } finally {
      sort.mockRestore();
    }
  });

  it("orders routes added after requests were served before the next request", () => {
    const router = createRouter().get("/users/:id/:tab", named("any"));
    expect((dispatch(router, "GET", "/users/me/posts").req as { params?: unknown }).params).toEqual({
      id: "me",
      tab: "posts",
    });
    router.get("/users/me/:tab", named("mine")).get("/:a/:b/:c", named("loose"));
    expect((dispatch(router, "GET", "/users/me/posts").req as { params?: unknown }).params).toEqual({
      tab: "posts",
    });
    expect((dispatch(router, "GET", "/users/you/posts").req as { params?: unknown }).params).toEqual({
      id: "you",
      tab: "posts",
    });
  });
});

describe("router: characters clients send unescaped", () => {
  // What Node's parser lets through in a path that a segment may not hold as it is (not "#": a fragment).
  const RAW = ['"', "<", ">", "[", "\\", "]", "^", "`", "{", "|", "}"];

  it.each(["|", "^", "[", "]"])(
    "a literal holding %s matches it raw, escaped and escaped in lower case",
    async (c) => {
      const router = createRouter()
        .get(`/lit/a${c}b`, named("exact"))
        .get(`/p/:id/x${c}`, named("param route"))
        .get("/p/:id/:tab", named("other"));
      const { port } = await listen(router.handle);
      const escaped = `%${c.charCodeAt(0).toString(16)}`;
      for (const form of [c, escaped.toUpperCase(), escaped.toLowerCase()]) {
        const exact = await send(port, { method: "GET", path: `/lit/a${form}b` });
        expect(exact.json(), form).toEqual({ route: "exact", params: null, url: `/lit/a${form}b` });
        expect(await ask(port, "GET", `/p/1/x${form}`), form).toEqual({
          route: "param route",
          params: { id: "1" },
        });
      }
    },
  );

  it("matches a literal written escaped by a raw request, and every raw character Node lets through", async () => {
    const router = createRouter().get("/esc/%7C", named("written escaped")).get("/any/:id", named("param"));
    for (const c of RAW) router.get(`/raw/${c}x${c}`, named(`raw ${c}`));
    const { port } = await listen(router.handle);
    expect(await ask(port, "GET", "/esc/|")).toEqual({ route: "written escaped", params: null });
    for (const c of RAW) {
      expect(await ask(port, "GET", `/raw/${c}x${c}`), c).toEqual({ route: `raw ${c}`, params: null });
      // A parameter is the raw segment decoded, as before.
      expect(await ask(port, "GET", `/any/${c}%7c${c}`), c).toEqual({
        route: "param",
        params: { id: `${c}|${c}` },
      });
      expect(await ask(port, "GET", `/any/${c}y${c}`), c).toEqual({
        route: "param",
        params: { id: `${c}y${c}` },
      });
    }
  });

  it("prefers the literal a raw character matches over a parameter, as for its escape", async () => {
    const router = createRouter().get("/:name/x", named("param")).get("/a|b/x", named("literal"));
    const { port } = await listen(router.handle);
    expect(await ask(port, "GET", "/a|b/x")).toEqual({ route: "literal", params: null });
    expect(await ask(port, "GET", "/a|c/x")).toEqual({ route: "param", params: { name: "a|c" } });
  });

  it("reaches a route literal from fetch, which sends [ ] ^ | unescaped", async () => {
    const router = createRouter().get("/v1/[items]/a^b|c", named("fetched"));
    const { port } = await listen(router.handle);
    const res = await fetch(`http://127.0.0.1:${port}/v1/[items]/a^b|c`);
    expect(await res.json()).toEqual({ route: "fetched", params: null, url: "/v1/[items]/a^b|c" });
  });

  it("leaves a segment with a malformed escape as it is: no literal, 400 as a parameter", async () => {
    const router = createRouter().get("/p/:id", named("param")).get("/lit/%zz|", named("literal"));
    const { port } = await listen(router.handle);
    expect(await ask(port, "GET", "/lit/%zz|")).toEqual({ status: 404, allow: undefined });
    expect(await ask(port, "GET", "/p/%zz|")).toEqual({ status: 400, allow: undefined });
  });

  it("property: normalising is idempotent, keeps what each segment decodes to, and escapes every raw character", () => {
    const piece = fc.constantFrom(
      ...RAW,
      "%",
      "a",
      "/",
      "#",
      "%7c",
      "%7C",
      "%5B",
      "%65",
      "%2F",
      "%zz",
      "%c3%a9",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), (pieces) => {
        const path = `/${pieces.join("")}`;
        const normal = normalizePath(path);
        expect(normalizePath(normal)).toBe(normal);
        const rawParts = path.split("/");
        const normalParts = normal.split("/");
        expect(normalParts.length).toBe(rawParts.length);
        for (let i = 0; i < rawParts.length; i++) {
          const segment = normalParts[i] as string;
          let a: string | undefined;
          let b: string | undefined;
          try {
            a = decodeURIComponent(rawParts[i] as string);
          } catch {}
          try {
            b = decodeURIComponent(segment);
          } catch {}
          expect(b).toBe(a);
          // A well-formed segment keeps no raw character; a malformed one is left as it is.
          if (!/%(?![0-9A-Fa-f]{2})/.test(segment)) expect(RAW.some((c) => segment.includes(c))).toBe(false);
          else expect(segment).toBe(rawParts[i]);
        }
      }),
      { numRuns: 500 },
    );
  });
});
