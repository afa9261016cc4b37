// Property tests of stringsvc over real HTTP: arbitrary strings through the svckit client, and
// arbitrary raw requests that must never get a 5xx or a non-JSON error.
import http from "node:http";
import { Code, codeNames, createContext, ServiceError } from "@svckit/endpoint";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeEndpoints, type StringEndpoints } from "../examples/stringsvc/src/endpoints.js";
import { createStringService } from "../examples/stringsvc/src/service.js";
import { createStringsvcClient, createStringsvcRouter } from "../examples/stringsvc/src/transport.js";
import { closeServers, listen, send, type TestServer } from "./support.js";

const RUNS = 200;
const codeNameSet = new Set<string>(Object.values(codeNames));

/** Any UTF-16 code unit, lone surrogates included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

/** Strings of every kind: ASCII, any code point, any code unit (lone surrogates), grapheme clusters. */
const anyString = fc.oneof(
  fc.string({ unit: "grapheme-ascii", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: codeUnit, maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
);

/** Bodies from plausible to garbage. */
const anyBody: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  anyString.map((s) => JSON.stringify({ s })),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ s: v })),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc
    .tuple(
      anyString.map((s) => JSON.stringify({ s, n: [1, { x: null }] })),
      fc.nat(),
    )
    .map(([json, cut]) => json.slice(0, cut % (json.length + 1))),
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.uint8Array({ maxLength: 80 }),
  fc.constantFrom(
    "",
    " ",
    "{",
    "}",
    "[",
    '{"s":',
    '{"s":"\\ud800"}',
    '{"s":"\\x"}',
    "\ufeff{}",
    "{}{}",
    "nul",
  ),
);

const contentType = fc.constantFrom<string | undefined>(
  undefined,
  "application/json",
  "application/json; charset=utf-8",
  "APPLICATION/JSON",
  "application/problem+json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "",
  "json",
);

const method = fc.constantFrom("POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS");

const path = fc.oneof(
  fc.constantFrom("/uppercase", "/count", "/uppercase?x=1", "/count/", "/", "/nope", "/%zz", "/count%00"),
  fc
    .string({ unit: fc.constantFrom("a", "z", "/", ".", "-", "_", "%", "2", "F", "?", "="), maxLength: 20 })
    .map((p) => `/${p}`),
);

const timeoutHeader = fc.option(fc.constantFrom("0", "1", "50", "5000", "x", "-1", "99999999999"), {
  nil: undefined,
});

describe("stringsvc properties", () => {
  let server: TestServer;
  let client: StringEndpoints;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

  beforeAll(async () => {
    server = await listen(createStringsvcRouter(makeEndpoints(createStringService())).handle);
    client = createStringsvcClient(server.origin);
  });
  afterAll(async () => {
    agent.destroy();
    await closeServers();
  });

  it(`uppercase equals s.toUpperCase() (INVALID_ARGUMENT for "") and count equals [...s].length for any s`, async () => {
    await fc.assert(
      fc.asyncProperty(anyString, async (s) => {
        const ctx = createContext({ timeout: 5_000 });
        const upper = await client.uppercase(ctx, { s }).then(
          (res) => res,
          (err: unknown) => err,
        );
        if (s === "") {
          expect(upper).toBeInstanceOf(ServiceError);
          expect(upper).toMatchObject({ code: Code.INVALID_ARGUMENT, message: "empty string" });
        } else {
          expect(upper).toEqual({ v: s.toUpperCase() });
        }
        expect(await client.count(ctx, { s })).toEqual({ v: [...s].length });
      }),
      { numRuns: RUNS },
    );
  });

  it("any raw request gets no 5xx, and a JSON {code, message} error body whenever it is not 2xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        method,
        path,
        contentType,
        timeoutHeader,
        anyBody,
        async (m, p, type, deadline, body) => {
          const headers: http.OutgoingHttpHeaders = {};
          if (type !== undefined) headers["content-type"] = type;
          if (deadline !== undefined) headers["x-request-timeout"] = deadline;
          const res = await send(server.port, { method: m, path: p, headers, body, agent });
          expect(res.status).toBeGreaterThanOrEqual(200);
          expect(res.status).toBeLessThan(500);
          expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
          const answer = res.json() as Record<string, unknown>;
          if (res.status < 300) {
            expect(Object.keys(answer)).toEqual(["v"]);
            expect(typeof answer.v === "string" || typeof answer.v === "number").toBe(true);
          } else {
            expect(codeNameSet.has(String(answer.code))).toBe(true);
            expect(answer.code).not.toBe("OK");
            expect(typeof answer.message).toBe("string");
            expect(String(answer.message).length).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
