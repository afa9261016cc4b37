import http from "node:http";
import type { Endpoint } from "@svckit/endpoint";
import {
  createHttpHandler,
  createRouter,
  encodeJsonResponse,
  type HttpHandler,
  JSON_CONTENT_TYPE,
  jsonRequestDecoder,
} from "@svckit/transport-http";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { closeServers, listen, send, type TestResponse } from "./test-helpers.js";

// One keep-alive agent for every request, one server per property; bounded runs keep the file fast.
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const BODY_LIMIT = 2048;

afterAll(async () => {
  agent.destroy();
  await closeServers();
});

/** An endpoint that never fails on its own: whatever it gets, it answers with its shape. */
const describeValue: Endpoint<unknown, { kind: string }> = async (_ctx, req) => ({
  kind: Array.isArray(req) ? "array" : req === null ? "null" : typeof req,
});

/** The invariants of every answer: no 5xx, and a JSON `{code, message}` body whenever it is not 2xx. */
function checkAnswer(res: TestResponse, allowed: readonly number[], method = "POST"): void {
  expect(allowed).toContain(res.status);
  expect(res.status).toBeLessThan(500);
  if (res.status >= 200 && res.status < 300) return;
  expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
  if (method === "HEAD") return;
  expect(res.headers["content-length"]).toBe(String(res.body.byteLength));
  const body = res.json() as { code?: unknown; message?: unknown };
  expect(typeof body.code).toBe("string");
  expect(typeof body.message).toBe("string");
  expect(Object.keys(body).filter((k) => k !== "details")).toEqual(["code", "message"]);
}

/** Characters node's HTTP client accepts in a header value. */
const headerChar = fc
  .oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
    { weight: 1, arbitrary: fc.constant(0x09) },
  )
  .map((c) => String.fromCharCode(c));
const headerValue = fc.string({ unit: headerChar, maxLength: 80 });

/** JSON texts, near-JSON texts, arbitrary text and arbitrary bytes, some larger than the body limit. */
const bodies: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.json(),
  fc
    .tuple(fc.json(), fc.nat(), fc.string({ maxLength: 3 }))
    .map(
      ([text, at, insert]) =>
        text.slice(0, at % (text.length + 1)) + insert + text.slice(at % (text.length + 1)),
    ),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ unit: "grapheme-ascii", maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }),
  fc.uint8Array({ minLength: BODY_LIMIT - 16, maxLength: BODY_LIMIT + 600 }),
  fc.nat({ max: 40 }).map((depth) => "[".repeat(depth * 50) + "]".repeat(depth * 50)),
  fc.constantFrom("", " ", "\ufeff", "\ufeff{}", "null", "{", '{"s":', '"\\ud800"', "1e999", "-", "0x10"),
);

async function jsonServer(handler: HttpHandler): Promise<number> {
  return (await listen(handler)).port;
}

describe("fuzz: the server never crashes and never answers 5xx to bad input", () => {
  it("survives arbitrary bodies", async () => {
    const port = await jsonServer(
      createHttpHandler(describeValue, jsonRequestDecoder(), encodeJsonResponse, { bodyLimit: BODY_LIMIT }),
    );
    const counts = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(bodies, async (body) => {
        const res = await send(port, { agent, headers: { "content-type": "application/json" }, body });
        counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
        checkAnswer(res, [200, 400, 413]);
        const size = typeof body === "string" ? Buffer.byteLength(body) : body.byteLength;
        if (size > BODY_LIMIT) expect(res.status).toBe(413);
      }),
      { numRuns: RUNS },
    );
    // The generators reach every outcome.
    expect([...counts.keys()].sort()).toEqual([200, 400, 413]);
  });

  it("survives arbitrary bodies against a schema", async () => {
    const schema = z.object({
      s: z.string(),
      n: z.number().int().optional(),
      tags: z.array(z.string()).max(3),
    });
    const port = await jsonServer(
      createHttpHandler(describeValue, jsonRequestDecoder({ schema }), encodeJsonResponse, {
        bodyLimit: BODY_LIMIT,
      }),
    );
    const nearMisses = fc.record(
      {
        s: fc.oneof(fc.string(), fc.jsonValue()),
        n: fc.jsonValue(),
        tags: fc.array(fc.jsonValue(), { maxLength: 5 }),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          bodies,
          nearMisses.map((v) => JSON.stringify(v)),
        ),
        async (body) => {
          const res = await send(port, { agent, headers: { "content-type": "application/json" }, body });
          checkAnswer(res, [200, 400, 413]);
          if (res.status === 400 && (res.json() as { details?: unknown }).details !== undefined) {
            expect((res.json() as { message: string }).message).toMatch(/^invalid request: /);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("survives arbitrary content types and header values", async () => {
    const port = await jsonServer(
      createHttpHandler(describeValue, jsonRequestDecoder(), encodeJsonResponse, { bodyLimit: BODY_LIMIT }),
    );
    const contentType = fc.oneof(
      headerValue,
      fc.constantFrom(
        "application/json",
        "application/x+json",
        "text/plain",
        "application/json; charset=latin1",
      ),
      fc.tuple(fc.constantFrom("application/", "text/", ""), headerValue).map(([a, b]) => a + b),
    );
    const timeout = fc.oneof(headerValue, fc.nat().map(String), fc.constant("0"));
    const extra = fc.record(
      {
        "content-type": contentType,
        "x-request-timeout": timeout,
        accept: headerValue,
        authorization: headerValue,
        "x-custom": headerValue,
        "x-forwarded-for": headerValue,
      },
      { requiredKeys: [] },
    );
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(extra, fc.oneof(fc.constant('{"a":1}'), bodies), async (headers, body) => {
        const res = await send(port, { agent, headers, body });
        seen.add(res.status);
        checkAnswer(res, [200, 400, 413, 415]);
      }),
      { numRuns: RUNS },
    );
    expect([...seen].sort()).toEqual([200, 400, 413, 415]);
  });

  it("answers arbitrary methods and paths against a router with 2xx, 400, 404 or 405", async () => {
    const params = createHttpHandler(
      async (_ctx, p: Readonly<Record<string, string>>) => ({ ...p }),
      (_ctx, request) => request.params,
      encodeJsonResponse,
    );
    const body = createHttpHandler(describeValue, jsonRequestDecoder(), encodeJsonResponse, {
      bodyLimit: BODY_LIMIT,
    });
    const router = createRouter()
      .get("/", params)
      .get("/users/:id", params)
      .put("/users/:id", body)
      .get("/users/:id/posts/:post", params)
      .post("/items", body)
      .delete("/items/:id", params)
      .route("PATCH", "/a/b/c", body);
    const port = await jsonServer(router.handle);
    const seen = new Set<number>();
    // Any method Node parses (CONNECT is a tunnel, not a request a handler sees), mostly routed ones.
    const method = fc.oneof(
      { weight: 1, arbitrary: fc.constantFrom(...http.METHODS.filter((m) => m !== "CONNECT")) },
      { weight: 2, arbitrary: fc.constantFrom("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH") },
    );
    const segment = fc.oneof(
      fc.constantFrom(
        "users",
        "items",
        "posts",
        "a",
        "b",
        "c",
        "",
        "1",
        "%",
        "%2",
        "%zz",
        "%E0%A4%A",
        "%C3%BC",
        "..",
      ),
      fc.string({ unit: fc.constantFrom(..."abcXYZ019-._~!$&'()*+,;=:@%/"), maxLength: 12 }),
      fc.string({ maxLength: 8 }).map(encodeURIComponent),
    );
    const query = fc.option(fc.string({ unit: fc.constantFrom(..."ab=&%?/:"), maxLength: 10 }), {
      nil: undefined,
    });
    // Arbitrary segments, and the same aimed at the routes' shapes so parameters get odd values.
    const segments = fc.oneof(
      fc.array(segment, { maxLength: 5 }),
      fc.tuple(fc.constantFrom("users", "items"), segment),
      fc.tuple(fc.constant("users"), segment, fc.constant("posts"), segment),
    );
    const path = fc
      .tuple(segments, query)
      .map(([parts, q]) => `/${parts.join("/")}${q === undefined ? "" : `?${q}`}`);
    await fc.assert(
      fc.asyncProperty(method, path, async (m, target) => {
        const res = await send(port, { agent, method: m, path: target });
        seen.add(res.status);
        checkAnswer(res, [200, 400, 404, 405], m);
        if (res.status === 405) expect(res.headers.allow).toMatch(/^[A-Z]+(, [A-Z]+)*$/);
      }),
      { numRuns: RUNS },
    );
    expect([...seen].sort()).toEqual([200, 400, 404, 405]);
  });

  it("decodes any percent-encoded parameter back to the original string", async () => {
    const router = createRouter().get(
      "/users/:id",
      createHttpHandler(
        async (_ctx, id: string) => ({ id }),
        (_ctx, request) => request.params.id ?? "",
        encodeJsonResponse,
      ),
    );
    const port = await jsonServer(router.handle);
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }), async (id) => {
        const res = await send(port, { agent, method: "GET", path: `/users/${encodeURIComponent(id)}?q=1` });
        expect(res.status).toBe(200);
        expect(res.json()).toEqual({ id });
      }),
      { numRuns: RUNS },
    );
  });
});
