// Regression tests for issues found in review of the foundation issue (#3).
import http from "node:http";
import { Code, createContext, ServiceError } from "@svckit/endpoint";
import {
  createHttpClient,
  createHttpHandler,
  encodeJsonRequest,
  encodeJsonResponse,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterEach, describe, expect, it } from "vitest";
import { closeServers, listen, send } from "./test-helpers.js";

afterEach(closeServers);

describe("413 for a declared body over the limit", () => {
  it("reaches a node:http client that writes the whole declared body, every time", async () => {
    const server = await listen(
      createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeJsonResponse, { bodyLimit: 1024 }),
    );
    const body = Buffer.alloc(64 * 1024, 0x20);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 20; i++) {
      const res = await send(server.port, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        agent,
      });
      expect(res.status).toBe(413);
      expect(res.json()).toEqual({
        code: "RESOURCE_EXHAUSTED",
        message: "request body exceeds the limit of 1024 bytes",
      });
      expect(res.headers.connection).toBe("keep-alive");
    }
    agent.destroy();
  });

  it("closes the connection when the rest of the declared body is large", async () => {
    const server = await listen(
      createHttpHandler(async () => ({}), jsonRequestDecoder(), encodeJsonResponse, { bodyLimit: 16 }),
    );
    const answer = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({
        port: server.port,
        host: "127.0.0.1",
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "content-length": String(8 << 20) },
      });
      req.on("response", resolve);
      req.on("error", reject);
      req.write("{");
    });
    answer.resume();
    expect(answer.statusCode).toBe(413);
    expect(answer.headers.connection).toBe("close");
  });
});

describe("client: an error body cut off by the deadline", () => {
  it("is DEADLINE_EXCEEDED, not the status's code", async () => {
    const server = await listen((_req, res) => {
      res.writeHead(400, { "content-type": "application/json", "content-length": "60" });
      res.write('{"code":"INVALID_ARG');
      setTimeout(() => res.end(), 300).unref();
    });
    const client = createHttpClient(server.origin, "POST", encodeJsonRequest, jsonResponseDecoder());
    const err = await client(createContext({ timeout: 100 }), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
  });
});
