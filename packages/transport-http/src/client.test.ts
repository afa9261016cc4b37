import { getEventListeners } from "node:events";
import type http from "node:http";
import {
  background,
  Code,
  type Context,
  codeNames,
  createContext,
  createContextKey,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  type ClientFinalizerInfo,
  createHttpClient,
  createHttpHandler,
  createRouter,
  encodeJsonRequest,
  encodeJsonResponse,
  type HttpServerOptions,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { aborted, closeServers, deferred, freePort, listen } from "./test-helpers.js";

afterEach(closeServers);

interface StringRequest {
  s: string;
}
interface StringResponse {
  v: string;
}

/** Serves `endpoint` at POST /call with the JSON codecs; returns the URL to call. */
async function serve<Req, Res>(endpoint: Endpoint<Req, Res>, options?: HttpServerOptions): Promise<string> {
  const handler = createHttpHandler(endpoint, jsonRequestDecoder<Req>(), encodeJsonResponse, options);
  const { origin } = await listen(createRouter().post("/call", handler).handle);
  return `${origin}/call`;
}

/** A plain node:http server answering every request with `listener`. */
async function raw(listener: http.RequestListener): Promise<string> {
  const { origin } = await listen(listener);
  return `${origin}/call`;
}

function jsonClient<Req, Res>(
  url: string,
  options?: Parameters<typeof createHttpClient>[4],
): Endpoint<Req, Res> {
  return createHttpClient<Req, Res>(url, "POST", encodeJsonRequest, jsonResponseDecoder<Res>(), options);
}

/** Calls `fn` and returns the ServiceError it rejects with. */
async function failure(fn: () => Promise<unknown>): Promise<ServiceError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceError);
    return err as ServiceError;
  }
  throw new Error("expected the call to fail");
}

describe("createHttpClient against a svckit server", () => {
  it("calls the endpoint and decodes the response", async () => {
    const url = await serve<StringRequest, StringResponse>(async (_ctx, req) => ({ v: req.s.toUpperCase() }));
    const uppercase = jsonClient<StringRequest, StringResponse>(url);
    await expect(uppercase(background, { s: "abc" })).resolves.toEqual({ v: "ABC" });
    await expect(uppercase(createContext({ timeout: 5000 }), { s: "ü" })).resolves.toEqual({ v: "Ü" });
  });

  const codes = (Object.values(Code) as Code[]).filter((c) => c !== Code.OK);

  it.each(codes)("gets a ServiceError with the server's code %i and message", async (code) => {
    const url = await serve(async () => {
      throw new ServiceError(code, `server says ${codeNames[code]}`);
    });
    const error = await failure(() => jsonClient(url)(background, {}));
    expect(error.code).toBe(code);
    expect(error.message).toBe(`server says ${codeNames[code]}`);
  });

  it("gets the error's details and its headers as metadata", async () => {
    const details = [{ type: "example.RetryInfo", value: { seconds: 3 } }];
    const url = await serve(async () => {
      throw new ServiceError(Code.RESOURCE_EXHAUSTED, "slow down", {
        details,
        metadata: { "retry-after": "3" },
      });
    });
    const error = await failure(() => jsonClient(url)(background, {}));
    expect(error.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(error.details).toEqual(details);
    expect(error.metadata.get("retry-after")).toBe("3");
  });

  it("gets INTERNAL without the server's secret for a plain Error", async () => {
    const url = await serve(async () => {
      throw new Error("secret");
    });
    const error = await failure(() => jsonClient(url)(background, {}));
    expect(error.code).toBe(Code.INTERNAL);
    expect(error.message).toBe("internal error");
  });

  it("gets the server's validation error", async () => {
    const handler = createHttpHandler(
      async (_ctx, req: { n: number }) => req,
      jsonRequestDecoder({ schema: z.object({ n: z.number() }) }),
      encodeJsonResponse,
    );
    const { origin } = await listen(handler);
    const error = await failure(() => jsonClient(origin)(background, { n: "1" }));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe("invalid request: n: Invalid input: expected number, received string");
  });

  it("passes an upstream error through a gateway unchanged", async () => {
    const upstream = await serve(async () => {
      throw new ServiceError(Code.NOT_FOUND, "no such user", { metadata: { "x-upstream": "users" } });
    });
    const callUpstream = jsonClient(upstream);
    // The gateway rethrows what its client got, metadata (all upstream headers) included.
    const gateway = await serve((ctx, req: unknown) => callUpstream(ctx, req));
    const error = await failure(() => jsonClient(gateway)(background, {}));
    expect(error.code).toBe(Code.NOT_FOUND);
    expect(error.message).toBe("no such user");
    expect(error.metadata.get("x-upstream")).toBe("users");
  });
});

describe("createHttpClient against other servers", () => {
  it("maps a plain-text error by its status", async () => {
    const url = await raw((_req, res) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end("upstream down");
    });
    const error = await failure(() => jsonClient(url)(background, {}));
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toBe("HTTP 502 Bad Gateway: upstream down");
  });

  it('maps {"error": "..."} by its status and keeps the message', async () => {
    const url = await raw((_req, res) => {
      res.writeHead(400, { "content-type": "application/json" });
      res.end('{"error":"x"}');
    });
    const error = await failure(() => jsonClient(url)(background, {}));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe("x");
  });

  it("maps statuses without a table entry to UNKNOWN and cuts long bodies", async () => {
    const long = "y".repeat(500);
    const url = await raw((req, res) => {
      res.writeHead(req.headers["x-case"] === "long" ? 500 : 418);
      res.end(req.headers["x-case"] === "long" ? long : undefined);
    });
    const teapot = await failure(() => jsonClient(url)(background, {}));
    expect(teapot.code).toBe(Code.UNKNOWN);
    expect(teapot.message).toBe("HTTP 418 I'm a Teapot");
    const cut = await failure(() => jsonClient(url, { headers: { "x-case": "long" } })(background, {}));
    expect(cut.code).toBe(Code.INTERNAL);
    expect(cut.message).toBe(`HTTP 500 Internal Server Error: ${"y".repeat(200)}…`);
  });

  it("ignores a JSON error body whose code is not a svckit code", async () => {
    const url = await raw((_req, res) => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"code":"OK","message":"fine"}');
    });
    const error = await failure(() => jsonClient(url)(background, {}));
    expect(error.code).toBe(Code.NOT_FOUND);
    expect(error.message).toBe('HTTP 404 Not Found: {"code":"OK","message":"fine"}');
  });

  it("answers a 2xx body that is not JSON or fails the schema with INTERNAL", async () => {
    const url = await raw((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(req.headers["x-case"] === "schema" ? '{"v":1}' : "{nope");
    });
    const notJson = await failure(() => jsonClient(url)(background, {}));
    expect(notJson.code).toBe(Code.INTERNAL);
    expect(notJson.message).toBe(
      "invalid response from server: malformed JSON: expected property name or '}' at line 1, column 2",
    );
    const typed = createHttpClient(
      url,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder({ schema: z.object({ v: z.string() }) }),
      { headers: { "x-case": "schema" } },
    );
    const wrong = await failure(() => typed(background, {}));
    expect(wrong.code).toBe(Code.INTERNAL);
    expect(wrong.message).toBe(
      "invalid response from server: invalid request: v: Invalid input: expected string, received number",
    );
  });

  it("answers a refused connection with UNAVAILABLE", async () => {
    const port = await freePort();
    let info: ClientFinalizerInfo | undefined;
    const client = jsonClient(`http://127.0.0.1:${port}/call`, {
      finalizer: (_ctx, i) => {
        info = i;
      },
    });
    const error = await failure(() => client(background, {}));
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toBe("request failed: ECONNREFUSED");
    expect(info?.status).toBe(0);
    expect(info?.error).toBe(error);
  });
});

describe("createHttpClient: deadlines and cancellation", () => {
  it("sends the remaining budget and aborts the request with DEADLINE_EXCEEDED when it passes", async () => {
    const header = deferred<string | undefined>();
    const serverSaw = deferred<unknown>();
    // The server ignores the header for its own deadline, so only the client's abort ends the call.
    const url = await serve(
      async (ctx) => {
        header.resolve(ctx.metadata.get("x-request-timeout"));
        await aborted(ctx.signal);
        serverSaw.resolve(ctx.signal.reason);
        return {};
      },
      { timeoutHeader: "x-not-used" },
    );
    const client = jsonClient(url);
    const error = await failure(() => client(createContext({ timeout: 300 }), {}));
    expect(error.code).toBe(Code.DEADLINE_EXCEEDED);
    const sent = await header.promise;
    expect(sent).toMatch(/^\d+$/);
    expect(Number(sent)).toBeGreaterThan(0);
    expect(Number(sent)).toBeLessThanOrEqual(300);
    const reason = await serverSaw.promise;
    expect(reason).toBeInstanceOf(ServiceError);
    expect((reason as ServiceError).code).toBe(Code.CANCELLED);
  });

  it("lets a svckit server enforce the deadline it was sent", async () => {
    const url = await serve(async (ctx) => {
      await aborted(ctx.signal);
      throw ctx.signal.reason;
    });
    const error = await failure(() => jsonClient(url)(createContext({ timeout: 200 }), {}));
    expect(error.code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("aborts with DEADLINE_EXCEEDED while the response body is still arriving", async () => {
    const url = await raw((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"v":'); // and never finishes
    });
    const error = await failure(() => jsonClient(url)(createContext({ timeout: 200 }), {}));
    expect(error.code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("aborts the request when the context is cancelled", async () => {
    const started = deferred<void>();
    const serverSaw = deferred<unknown>();
    const url = await serve(async (ctx) => {
      started.resolve();
      await aborted(ctx.signal);
      serverSaw.resolve(ctx.signal.reason);
      return {};
    });
    const child = background.withCancel();
    const call = jsonClient(url)(child.context, {});
    await started.promise;
    child.cancel();
    const error = await failure(() => call);
    expect(error.code).toBe(Code.CANCELLED);
    expect(((await serverSaw.promise) as ServiceError).code).toBe(Code.CANCELLED);
  });

  it("does not send anything for a context that is already over", async () => {
    let calls = 0;
    const url = await serve(async () => {
      calls++;
      return {};
    });
    const child = background.withCancel();
    child.cancel();
    const cancelled = await failure(() => jsonClient(url)(child.context, {}));
    expect(cancelled.code).toBe(Code.CANCELLED);
    const expired = await failure(() => jsonClient(url)(createContext({ timeout: 0 }), {}));
    expect(expired.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toBe(0);
  });

  it("leaves no abort listeners behind on a long-lived context", async () => {
    const url = await serve(async () => ({}));
    const client = jsonClient(url);
    const owner = new AbortController();
    const longLived = createContext({ signal: owner.signal, timeout: 60_000 });
    const signal = longLived.signal;
    const before = getEventListeners(signal, "abort").length;
    for (let i = 0; i < 50; i++) await client(longLived, {});
    await Promise.all(Array.from({ length: 20 }, () => client(longLived, {})));
    expect(getEventListeners(signal, "abort").length).toBe(before);
    // ...and cancelling it still cancels calls made with it.
    const call = client(longLived, {});
    owner.abort();
    const error = await failure(() => call);
    expect(error.code).toBe(Code.CANCELLED);
  });

  it("sends no timeout header without a deadline, a custom one, or none with timeoutHeader: false", async () => {
    const seen: Record<string, string | undefined>[] = [];
    const url = await raw((req, res) => {
      seen.push({
        std: req.headers["x-request-timeout"] as string | undefined,
        custom: req.headers["x-budget"] as string | undefined,
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
    const ctx = createContext({ timeout: 5000 });
    await jsonClient(url)(background, {});
    await jsonClient(url, { timeoutHeader: "X-Budget" })(ctx, {});
    await jsonClient(url, { timeoutHeader: false })(ctx, {});
    expect(seen[0]).toEqual({ std: undefined, custom: undefined });
    expect(seen[1]?.std).toBeUndefined();
    expect(Number(seen[1]?.custom)).toBeGreaterThan(0);
    expect(Number(seen[1]?.custom)).toBeLessThanOrEqual(5000);
    expect(seen[2]).toEqual({ std: undefined, custom: undefined });
  });
});

describe("createHttpClient: headers, paths and hooks", () => {
  it("sends the context's outgoing metadata, default headers and encoder headers", async () => {
    let headers: http.IncomingHttpHeaders = {};
    const url = await raw((req, res) => {
      headers = req.headers;
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
    const client = jsonClient(url, { headers: { "x-default": "d", "x-over": "default" } });
    const ctx = background.withOutgoingMetadata({
      "X-Tenant": "acme",
      "x-multi": ["a", "b"],
      "x-over": "metadata",
    });
    await client(ctx, { a: 1 });
    expect(headers["x-tenant"]).toBe("acme");
    expect(headers["x-multi"]).toBe("a, b");
    expect(headers["x-default"]).toBe("d");
    expect(headers["content-type"]).toBe("application/json; charset=utf-8");
    // The call's metadata replaces the default of the same name (it was joined: "default, metadata").
    expect(headers["x-over"]).toBe("metadata");
  });

  it("builds the URL from the encoder's path and query", async () => {
    const router = createRouter().get(
      "/users/:id",
      createHttpHandler(
        async (_ctx, req: { id: string; q: string | null }) => req,
        (_ctx, request) => ({ id: request.params.id ?? "", q: request.query.get("q") }),
        encodeJsonResponse,
      ),
    );
    const { origin } = await listen(router.handle);
    const getUser = createHttpClient<{ id: string }, { id: string; q: string | null }>(
      `${origin}/users/?q=base`,
      "get",
      (_ctx, req) => ({ path: `/${encodeURIComponent(req.id)}`, query: { q: "a b" } }),
      jsonResponseDecoder(),
    );
    await expect(getUser(background, { id: "a/b c" })).resolves.toEqual({ id: "a/b c", q: "base" });
  });

  it("runs before and after functions and the finalizer, passing derived contexts along", async () => {
    const step = createContextKey<string>("", { description: "step" });
    const order: string[] = [];
    let finalCtx: Context | undefined;
    let info: ClientFinalizerInfo | undefined;
    const url = await serve(async (ctx) => ({ fromBefore: ctx.metadata.get("x-before") ?? null }));
    const client = jsonClient<unknown, { fromBefore: string | null }>(url, {
      before: [
        (ctx, headers) => {
          order.push("before1");
          headers.set("x-before", "yes");
          return ctx.with(step, "b1");
        },
        (ctx) => {
          order.push(`before2 ${ctx.value(step)}`);
          return undefined;
        },
      ],
      after: [
        (ctx, response) => {
          order.push(`after1 ${ctx.value(step)} ${response.status}`);
          return ctx.with(step, "a1");
        },
      ],
      finalizer: [
        (ctx, i) => {
          order.push("finalizer1");
          finalCtx = ctx;
          info = i;
        },
        () => void order.push("finalizer2"),
      ],
    });
    await expect(client(background, {})).resolves.toEqual({ fromBefore: "yes" });
    expect(order).toEqual(["before1", "before2 b1", "after1 b1 200", "finalizer1", "finalizer2"]);
    expect(finalCtx?.value(step)).toBe("a1");
    expect(info).toEqual({ url, status: 200, error: undefined });
  });

  it("tells the finalizer of the status and the error of a failed call", async () => {
    const url = await serve(async () => {
      throw new ServiceError(Code.NOT_FOUND, "gone");
    });
    let info: ClientFinalizerInfo | undefined;
    const afterSaw: number[] = [];
    const client = jsonClient(url, {
      after: [(_ctx, response) => void afterSaw.push(response.status)],
      finalizer: (_ctx, i) => {
        info = i;
      },
    });
    const error = await failure(() => client(background, {}));
    expect(afterSaw).toEqual([404]);
    expect(info?.status).toBe(404);
    expect(info?.error).toBe(error);
    expect(info?.error?.code).toBe(Code.NOT_FOUND);
  });

  it("uses the fetch it is given", async () => {
    const calls: string[] = [];
    const fakeFetch: typeof fetch = async (input, init) => {
      calls.push(`${init?.method} ${String(input)}`);
      return new Response('{"v":"fake"}', { status: 200, headers: { "content-type": "application/json" } });
    };
    const client = jsonClient("http://127.0.0.1:9/x", { fetch: fakeFetch });
    await expect(client(background, {})).resolves.toEqual({ v: "fake" });
    expect(calls).toEqual(["POST http://127.0.0.1:9/x"]);
  });

  it("turns a throwing encoder or decoder into a ServiceError", async () => {
    const url = await serve(async () => ({}));
    const badEncoder = createHttpClient(
      url,
      "POST",
      () => {
        throw new Error("cannot encode");
      },
      jsonResponseDecoder(),
    );
    const encodeError = await failure(() => badEncoder(background, {}));
    expect(encodeError.code).toBe(Code.INTERNAL);
    const badRequest = await failure(() => jsonClient(url)(background, { big: 1n }));
    expect(badRequest.code).toBe(Code.INTERNAL);
    expect(badRequest.message).toBe("response could not be encoded as JSON");
  });
});
