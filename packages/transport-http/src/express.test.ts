import { type CallInfo, Code, callInfoKey, type Endpoint, ServiceError } from "@svckit/endpoint";
import {
  createHttpHandler,
  createRouter,
  type DecodeRequestFunc,
  encodeJsonResponse,
  type HttpRequest,
  JSON_CONTENT_TYPE,
  jsonRequestDecoder,
} from "@svckit/transport-http";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { closeServers, listen, send } from "./test-helpers.js";

afterEach(closeServers);

const json = { "content-type": "application/json" };

interface RenameRequest {
  id: string;
  name: string;
}

const renameBody = z.object({ name: z.string().min(1) });
const decodeBody = jsonRequestDecoder({ schema: renameBody });

/** Takes the id from the path (express's `req.params`) and the name from the JSON body. */
const decodeRename: DecodeRequestFunc<RenameRequest> = async (ctx, request) => ({
  id: request.params.id ?? "",
  ...(await decodeBody(ctx, request)),
});

const rename: Endpoint<RenameRequest, { id: string; name: string }> = async (_ctx, req) => {
  if (req.id === "missing") throw new ServiceError(Code.NOT_FOUND, `no user ${req.id}`);
  if (req.id === "broken") throw new Error("database password is hunter2");
  return { id: req.id, name: req.name };
};

describe("createHttpHandler in express 5", () => {
  async function app(withJsonParser: boolean): Promise<number> {
    const a = express();
    if (withJsonParser) a.use(express.json());
    a.post("/users/:id", createHttpHandler(rename, decodeRename, encodeJsonResponse));
    const { port } = await listen(a);
    return port;
  }

  for (const withJsonParser of [false, true]) {
    const label = withJsonParser ? "behind express.json()" : "reading the body itself";
    describe(label, () => {
      it("serves a route with params", async () => {
        const port = await app(withJsonParser);
        const res = await send(port, { path: "/users/a%20b", headers: json, body: '{"name":"Ada"}' });
        expect(res.status).toBe(200);
        expect(res.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
        expect(res.headers["content-length"]).toBe(String(res.body.byteLength));
        expect(res.json()).toEqual({ id: "a b", name: "Ada" });
      });

      it("answers service errors with their status and a JSON body", async () => {
        const port = await app(withJsonParser);
        const missing = await send(port, { path: "/users/missing", headers: json, body: '{"name":"x"}' });
        expect(missing.status).toBe(404);
        expect(missing.json()).toEqual({ code: "NOT_FOUND", message: "no user missing" });
        const broken = await send(port, { path: "/users/broken", headers: json, body: '{"name":"x"}' });
        expect(broken.status).toBe(500);
        expect(broken.json()).toEqual({ code: "INTERNAL", message: "internal error" });
      });

      it("answers schema failures with 400 naming the field", async () => {
        const port = await app(withJsonParser);
        const res = await send(port, { path: "/users/1", headers: json, body: '{"name":""}' });
        expect(res.status).toBe(400);
        expect(res.json()).toMatchObject({
          code: "INVALID_ARGUMENT",
          message: "invalid request: name: Too small: expected string to have >=1 characters",
        });
      });

      it("answers a wrong content type with 415", async () => {
        const port = await app(withJsonParser);
        const res = await send(port, {
          path: "/users/1",
          headers: { "content-type": "text/plain" },
          body: "{}",
        });
        expect(res.status).toBe(415);
        expect(res.json()).toEqual({
          code: "INVALID_ARGUMENT",
          message: 'unsupported content type "text/plain": expected application/json',
        });
      });

      it("lets express answer paths it has no route for", async () => {
        const port = await app(withJsonParser);
        const res = await send(port, { path: "/elsewhere", headers: json, body: "{}" });
        expect(res.status).toBe(404);
        expect(res.headers["content-type"]).toMatch(/^text\/html/);
      });
    });
  }

  it("reads malformed JSON itself when no parser ran, naming the position", async () => {
    const port = await app(false);
    const res = await send(port, { path: "/users/1", headers: json, body: '{"name":' });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "malformed JSON: unexpected end of input at line 1, column 9",
    });
  });

  it("uses express.json()'s parsed body instead of the raw bytes", async () => {
    let seen: HttpRequest | undefined;
    const a = express();
    a.use(express.json());
    a.post(
      "/echo",
      createHttpHandler(
        async (_ctx, req: unknown) => req,
        (ctx, request) => {
          seen = request;
          return jsonRequestDecoder()(ctx, request);
        },
        encodeJsonResponse,
      ),
    );
    const { port } = await listen(a);
    const res = await send(port, { path: "/echo", headers: json, body: '{"a":[1,2]}' });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ a: [1, 2] });
    expect(seen?.parsedBody).toEqual({ a: [1, 2] });
    expect(seen?.body.byteLength).toBe(0);
  });

  it("uses a Buffer from express.raw() and a string from express.text() as the body", async () => {
    const a = express();
    const echo = createHttpHandler(
      async (_ctx, req: unknown) => req,
      jsonRequestDecoder({ contentTypes: "any" }),
      encodeJsonResponse,
    );
    a.post("/raw", express.raw({ type: "*/*" }), echo);
    a.post("/text", express.text({ type: "*/*" }), echo);
    const { port } = await listen(a);
    const raw = await send(port, {
      path: "/raw",
      headers: { "content-type": "application/octet-stream" },
      body: "[1]",
    });
    expect(raw.status).toBe(200);
    expect(raw.json()).toEqual([1]);
    const text = await send(port, { path: "/text", headers: { "content-type": "text/plain" }, body: '"hi"' });
    expect(text.status).toBe(200);
    expect(text.json()).toBe("hi");
    const bad = await send(port, {
      path: "/raw",
      headers: { "content-type": "application/octet-stream" },
      body: "[1",
    });
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/^malformed JSON: .+ at line 1, column 3$/),
    });
  });

  it("works on a mounted express.Router, and the svckit router works as express middleware", async () => {
    const a = express();
    const api = express.Router();
    api.post("/users/:id", createHttpHandler(rename, decodeRename, encodeJsonResponse));
    a.use("/api", api);
    a.use(
      "/svc",
      createRouter().post("/users/:id", createHttpHandler(rename, decodeRename, encodeJsonResponse)).handle,
    );
    const { port } = await listen(a);
    const viaExpress = await send(port, { path: "/api/users/7", headers: json, body: '{"name":"x"}' });
    expect(viaExpress.json()).toEqual({ id: "7", name: "x" });
    const viaSvckit = await send(port, { path: "/svc/users/8", headers: json, body: '{"name":"y"}' });
    expect(viaSvckit.json()).toEqual({ id: "8", name: "y" });
    const notAllowed = await send(port, { method: "GET", path: "/svc/users/8" });
    expect(notAllowed.status).toBe(405);
    expect(notAllowed.headers.allow).toBe("POST");
    expect(notAllowed.json()).toEqual({
      code: "UNIMPLEMENTED",
      message: "method GET is not allowed on /users/8",
    });
  });
});

describe("createHttpHandler in express 5: call info", () => {
  it("reads express's route template into the context", async () => {
    let seen: CallInfo | undefined;
    const a = express();
    a.delete(
      "/orders/:id",
      createHttpHandler(
        async (ctx) => {
          seen = ctx.value(callInfoKey);
          return {};
        },
        () => undefined,
        encodeJsonResponse,
      ),
    );
    const { port } = await listen(a);
    const res = await send(port, { path: "/orders/9", method: "DELETE" });
    expect(res.status).toBe(200);
    expect(seen).toEqual({ transport: "http", method: "DELETE", route: "/orders/:id" });
  });
});
