import { background, Code, ServiceError } from "@svckit/endpoint";
import {
  createHttpClient,
  createHttpHandler,
  encodeJsonRequest,
  encodeJsonResponse,
  JSON_CONTENT_TYPE,
  type JsonRequestDecoderOptions,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { closeServers, listen, send } from "./test-helpers.js";

afterEach(closeServers);

/** A server echoing what `jsonRequestDecoder(options)` decoded, as `{ decoded }`. */
async function echo<T>(options?: JsonRequestDecoderOptions<T>): Promise<number> {
  const handler = createHttpHandler(
    async (_ctx, decoded: T) => ({ decoded }),
    jsonRequestDecoder(options),
    encodeJsonResponse,
  );
  return (await listen(handler)).port;
}

describe("jsonRequestDecoder", () => {
  it.each([
    ["application/json", 200],
    ["application/json; charset=utf-8", 200],
    ["APPLICATION/JSON;charset=UTF-8", 200],
    [" application/json ", 200],
    ["application/problem+json", 200],
    ["application/vnd.example.v2+json; q=1", 200],
    ["text/json", 415],
    ["text/plain", 415],
    ["application/jsonx", 415],
    ["application/json-seq", 415],
    ["multipart/form-data; boundary=x", 415],
    ["json", 415],
    ["+json", 415],
  ])("content type %j → %i", async (type, status) => {
    const port = await echo();
    const res = await send(port, { headers: { "content-type": type }, body: "[1]" });
    expect(res.status).toBe(status);
    if (status === 200) expect(res.json()).toEqual({ decoded: [1] });
    else
      expect(res.json()).toEqual({
        code: "INVALID_ARGUMENT",
        message: `unsupported content type "${type.trim()}": expected application/json`,
      });
  });

  it("quotes at most 100 characters of an unsupported content type", async () => {
    const port = await echo();
    const type = `text/${"x".repeat(300)}`;
    const res = await send(port, { headers: { "content-type": type }, body: "[1]" });
    expect(res.status).toBe(415);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: `unsupported content type "${type.slice(0, 100)}": expected application/json`,
    });
  });

  it("decodes every kind of JSON value, a leading BOM included", async () => {
    const port = await echo();
    const values: unknown[] = [null, true, 0, -1.5e3, "s", [], {}, { a: [{ b: null }] }];
    for (const value of values) {
      const res = await send(port, {
        headers: { "content-type": "application/json" },
        body: JSON.stringify(value),
      });
      expect(res.json()).toEqual({ decoded: value });
    }
    const bom = await send(port, {
      headers: { "content-type": "application/json" },
      body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')]),
    });
    expect(bom.json()).toEqual({ decoded: { a: 1 } });
  });

  it("keeps __proto__ as an ordinary key", async () => {
    const port = await echo();
    const res = await send(port, {
      headers: { "content-type": "application/json" },
      body: '{"__proto__":{"polluted":true}}',
    });
    expect(res.status).toBe(200);
    expect(res.text).toBe('{"decoded":{"__proto__":{"polluted":true}}}');
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it("returns the schema's output (defaults, transforms, stripped keys)", async () => {
    const schema = z.object({ s: z.string().default(""), n: z.string().transform((v) => v.length) });
    const port = await echo({ schema });
    const res = await send(port, {
      headers: { "content-type": "application/json" },
      body: '{"n":"four","extra":1}',
    });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ decoded: { s: "", n: 4 } });
  });

  it("reports every schema issue in the details and the first in the message", async () => {
    const port = await echo({ schema: z.object({ a: z.number(), b: z.object({ c: z.array(z.string()) }) }) });
    const res = await send(port, {
      headers: { "content-type": "application/json" },
      body: '{"a":"1","b":{"c":["x",2]}}',
    });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({
      code: "INVALID_ARGUMENT",
      message: "invalid request: a: Invalid input: expected number, received string",
      details: [
        {
          type: "google.rpc.BadRequest",
          value: {
            fieldViolations: [
              { field: "a", description: "Invalid input: expected number, received string" },
              { field: "b.c[1]", description: "Invalid input: expected string, received number" },
            ],
          },
        },
      ],
    });
  });
});

describe("encodeJsonResponse", () => {
  it("encodes as JSON with the JSON content type", () => {
    expect(encodeJsonResponse(background, { v: [1, "2"] })).toEqual({
      contentType: JSON_CONTENT_TYPE,
      body: '{"v":[1,"2"]}',
    });
  });

  it("encodes undefined as null, so an endpoint that returns nothing answers 200 null", async () => {
    expect(encodeJsonResponse(background, undefined)).toEqual({
      contentType: JSON_CONTENT_TYPE,
      body: "null",
    });
    const { port } = await listen(
      createHttpHandler(async () => undefined, jsonRequestDecoder(), encodeJsonResponse),
    );
    const res = await send(port, { headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(200);
    expect(res.text).toBe("null");
  });

  it("throws INTERNAL for a value JSON cannot hold", () => {
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    expect(() => encodeJsonResponse(background, cyclic)).toThrow(ServiceError);
  });
});

describe("encodeJsonRequest", () => {
  it("sends JSON with the JSON content type", () => {
    expect(encodeJsonRequest(background, { a: 1 })).toEqual({
      headers: { "content-type": JSON_CONTENT_TYPE },
      body: '{"a":1}',
    });
  });
});

describe("jsonResponseDecoder", () => {
  const response = (body: string): Response =>
    new Response(body, { status: 200, headers: { "content-type": "application/json" } });

  it("parses the body, validating it with the schema when given", async () => {
    await expect(jsonResponseDecoder()(background, response('{"v":1}'))).resolves.toEqual({ v: 1 });
    const typed = jsonResponseDecoder({ schema: z.object({ v: z.number().transform((n) => n * 2) }) });
    await expect(typed(background, response('{"v":21}'))).resolves.toEqual({ v: 42 });
  });

  it("rejects a body that is not JSON or fails the schema with INTERNAL", async () => {
    /** The ServiceError a decoder fails with. */
    async function failure(decode: Promise<unknown> | unknown): Promise<ServiceError> {
      try {
        await decode;
      } catch (err) {
        expect(err).toBeInstanceOf(ServiceError);
        return err as ServiceError;
      }
      throw new Error("expected the decoder to fail");
    }
    const notJson = await failure(jsonResponseDecoder()(background, response("<html>")));
    expect(notJson.code).toBe(Code.INTERNAL);
    expect(notJson.message).toMatch(/^invalid response from server: malformed JSON: .+ at line 1, column 1$/);
    const empty = await failure(jsonResponseDecoder()(background, response("")));
    expect(empty.message).toBe("invalid response from server: empty body: expected a JSON value");
    const wrong = await failure(
      jsonResponseDecoder({ schema: z.object({ v: z.number() }) })(background, response("{}")),
    );
    expect(wrong.code).toBe(Code.INTERNAL);
    expect(wrong.message).toBe(
      "invalid response from server: invalid request: v: Invalid input: expected number, received undefined",
    );
  });

  it("round-trips values through a real server and client", async () => {
    const { origin } = await listen(
      createHttpHandler(async (_ctx, req: unknown) => req, jsonRequestDecoder(), encodeJsonResponse),
    );
    const client = createHttpClient(origin, "POST", encodeJsonRequest, jsonResponseDecoder());
    for (const value of [null, 0, "ü😀", [1, [2]], { nested: { deep: [true, false] } }]) {
      await expect(client(background, value)).resolves.toEqual(value);
    }
  });
});
