import { createRedactor, defaultRedactKeys, redact } from "@svckit/log";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFkYSJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

describe("redact", () => {
  it("replaces every default key, case- and separator-insensitively", () => {
    const input: Record<string, string> = {};
    for (const key of defaultRedactKeys) input[key] = `value of ${key}`;
    Object.assign(input, {
      Authorization: "a",
      COOKIE: "b",
      Set_Cookie: "c",
      "X-Api-Key": "d",
      apiKey: "e",
      accessToken: "f",
      RefreshToken: "g",
      clientSecret: "h",
      Password: "i",
      user: "ada",
    });
    const out = redact(input) as Record<string, string>;
    for (const [key, value] of Object.entries(out)) {
      expect([key, value]).toEqual([key, key === "user" ? "ada" : "[REDACTED]"]);
    }
    expect(Object.keys(out)).toEqual(Object.keys(input));
  });

  it("lists the documented default keys", () => {
    expect([...defaultRedactKeys]).toEqual([
      "authorization",
      "proxy-authorization",
      "cookie",
      "set-cookie",
      "x-api-key",
      "api-key",
      "password",
      "token",
      "access_token",
      "refresh_token",
      "secret",
      "client_secret",
    ]);
    expect(Object.isFrozen(defaultRedactKeys)).toBe(true);
  });

  it("redacts at any depth and inside arrays, whatever the value's type", () => {
    const input = {
      request: { headers: { authorization: "Bearer abc", accept: "*/*" } },
      users: [
        { name: "ada", password: "p1" },
        { name: "bob", password: { old: "p2", new: "p3" } },
        [{ token: 7 }],
      ],
      secret: null,
    };
    expect(redact(input)).toEqual({
      request: { headers: { authorization: "[REDACTED]", accept: "*/*" } },
      users: [
        { name: "ada", password: "[REDACTED]" },
        { name: "bob", password: "[REDACTED]" },
        [{ token: "[REDACTED]" }],
      ],
      secret: "[REDACTED]",
    });
  });

  it("never changes its input", () => {
    const input = {
      headers: { authorization: "Bearer abc" },
      list: [{ password: "x" }],
      text: "Bearer abcdefgh",
      err: Object.assign(new Error("Bearer abcdefgh"), { token: "t" }),
    };
    const before = structuredClone({ ...input, err: undefined });
    const out = redact(input);
    expect({ ...input, err: undefined }).toEqual(before);
    expect(input.err.message).toBe("Bearer abcdefgh");
    expect(input.err.token).toBe("t");
    expect(out).not.toBe(input);
  });

  it("survives cycles, and repeats shared objects that are not cycles", () => {
    const shared = { password: "x", n: 1 };
    const cyclic: Record<string, unknown> = { name: "root", a: shared, b: shared, list: [] as unknown[] };
    cyclic.self = cyclic;
    (cyclic.list as unknown[]).push(cyclic, { parent: cyclic });
    expect(redact(cyclic)).toEqual({
      name: "root",
      a: { password: "[REDACTED]", n: 1 },
      b: { password: "[REDACTED]", n: 1 },
      list: ["[Circular]", { parent: "[Circular]" }],
      self: "[Circular]",
    });
  });

  it("turns errors into plain objects with their cause, redacted", () => {
    const cause = new Error("connect ECONNREFUSED");
    const err = Object.assign(new TypeError("bad Bearer abcdefgh", { cause }), {
      code: "E_BAD",
      token: "t0k",
    });
    const out = redact({ err }) as { err: Record<string, unknown> };
    expect(out.err).toMatchObject({
      name: "TypeError",
      message: "bad Bearer [REDACTED]",
      code: "E_BAD",
      token: "[REDACTED]",
      cause: { name: "Error", message: "connect ECONNREFUSED" },
    });
    expect(out.err.stack).toMatch(/^TypeError: bad Bearer \[REDACTED\]\n\s+at /);
  });

  it("handles Maps, Sets, Dates, binary data, toJSON and symbols", () => {
    const date = new Date("2024-01-02T03:04:05Z");
    const out = redact({
      map: new Map<unknown, unknown>([
        ["token", "t"],
        [1, { password: "p" }],
      ]),
      set: new Set(["a", { secret: "s" }]),
      date,
      bytes: new Uint8Array([1, 2, 3]),
      buffer: Buffer.from("Bearer abcdefgh"),
      arrayBuffer: new ArrayBuffer(8),
      custom: { toJSON: () => ({ password: "p", ok: true }) },
      big: 10n,
      fn: Math.max,
      [Symbol("s")]: "ignored",
    }) as Record<string, unknown>;
    expect(out).toEqual({
      map: { token: "[REDACTED]", 1: { password: "[REDACTED]" } },
      set: ["a", { secret: "[REDACTED]" }],
      date,
      bytes: "[3 bytes]",
      buffer: "[15 bytes]",
      arrayBuffer: "[8 bytes]",
      custom: { password: "[REDACTED]", ok: true },
      big: 10n,
      fn: Math.max,
    });
    expect(Object.getOwnPropertySymbols(out)).toEqual([]);
  });

  it("marks what it cannot read instead of throwing", () => {
    const getter = Object.defineProperty({ ok: 1 }, "bad", {
      enumerable: true,
      get() {
        throw new Error("no");
      },
    });
    const hostile = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error("no keys");
        },
      },
    );
    const badJson = {
      toJSON() {
        throw new Error("no json");
      },
    };
    expect(redact({ getter, hostile, badJson })).toEqual({
      getter: { ok: 1, bad: "[Unreadable]" },
      hostile: "[Unreadable]",
      badJson: "[Unreadable]",
    });
    expect(redact(hostile)).toBe("[Unreadable]");
  });

  it("keeps a __proto__ key a key", () => {
    const input = JSON.parse('{"__proto__": {"password": "x", "polluted": true}}') as object;
    const out = redact(input) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.hasOwn(out, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(out, "__proto__")?.value).toEqual({
      password: "[REDACTED]",
      polluted: true,
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("leaves primitives alone and scrubs strings at the top level", () => {
    expect(redact(42)).toBe(42);
    expect(redact(undefined)).toBeUndefined();
    expect(redact(null)).toBeNull();
    expect(redact(true)).toBe(true);
    expect(redact("Authorization: Bearer abcdefgh")).toBe("Authorization: Bearer [REDACTED]");
  });
});

describe("credentials in strings", () => {
  it.each([
    ["Bearer abc.def-ghi_jkl", "Bearer [REDACTED]"],
    ["missing bearer token", "missing bearer token"],
    ["use basic auth or a bearer token", "use basic auth or a bearer token"],
    ["bearer abcdefgh1", "bearer [REDACTED]"],
    ["Missing Bearer token", "Missing Bearer [REDACTED]"],
    ["authorization=bearer x1, next", "authorization=bearer [REDACTED], next"],
    ["Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Basic [REDACTED]"],
    [`token ${JWT} used`, "token [REDACTED] used"],
    [JWT, "[REDACTED]"],
    [`token=${JWT}`, "token=[REDACTED]"],
    [`"${JWT}"`, '"[REDACTED]"'],
    [`a${JWT}`, `a${JWT}`],
    // A run of `eyJ` pieces is no JWT (and is scanned once, not once per piece).
    [`${"eyJ-".repeat(64)} ${JWT}`, `${"eyJ-".repeat(64)} [REDACTED]`],
    ['{"auth":"Bearer 12345678"}', '{"auth":"Bearer [REDACTED]"}'],
    ["nothing to see here", "nothing to see here"],
  ])("%s → %s", (input, output) => {
    expect(redact(input)).toBe(output);
  });

  it.each([
    [
      "GET / HTTP/1.1\r\nHost: x\r\nCookie: sid=SESSION123\r\nX-Api-Key: KEY123\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nCookie: [REDACTED]\r\nX-Api-Key: [REDACTED]\r\n\r\n",
    ],
    ["authorization: Token abc123", "authorization: Token [REDACTED]"],
    ["line one\npassword:hunter2\nline three", "line one\npassword:[REDACTED]\nline three"],
    ["host: example.com", "host: example.com"],
    ["at 2026-12-02T13:00:00Z", "at 2026-12-02T13:00:00Z"],
    ["note: the token: abc", "note: the token: abc"],
  ])("header lines: %j → %j", (input, output) => {
    expect(redact(input)).toBe(output);
  });

  it("redacts the value after a sensitive name in header pairs and flat header lists", () => {
    expect(redact(["Cookie", "sid=1", "Host", "x", "X-Api-Key", "k"])).toEqual([
      "Cookie",
      "[REDACTED]",
      "Host",
      "x",
      "X-Api-Key",
      "[REDACTED]",
    ]);
    expect(
      redact([
        ["cookie", "sid=1"],
        ["accept", "*/*"],
      ]),
    ).toEqual([
      ["cookie", "[REDACTED]"],
      ["accept", "*/*"],
    ]);
    expect(redact(["a", "b", "c"])).toEqual(["a", "b", "c"]);
  });

  it("can be turned off", () => {
    expect(redact({ s: `Bearer x ${JWT}` }, { scrubStrings: false })).toEqual({ s: `Bearer x ${JWT}` });
  });
});

describe("createRedactor options", () => {
  it("replaces the default keys with the given ones", () => {
    const clean = createRedactor({ keys: ["ssn"] });
    expect(clean({ ssn: "1", SSN: "2", password: "p" })).toEqual({
      ssn: "[REDACTED]",
      SSN: "[REDACTED]",
      password: "p",
    });
    const extended = createRedactor({ keys: [...defaultRedactKeys, "ssn"] });
    expect(extended({ ssn: "1", password: "p" })).toEqual({ ssn: "[REDACTED]", password: "[REDACTED]" });
  });

  it("uses the given censor", () => {
    expect(redact({ token: "t", s: "Bearer abcdefgh" }, { censor: "***" })).toEqual({
      token: "***",
      s: "Bearer ***",
    });
  });

  it("limits depth", () => {
    const deep = { a: { b: { c: { d: { password: "x" } } } } };
    expect(redact(deep, { maxDepth: 3 })).toEqual({ a: { b: { c: "[Depth limit]" } } });
    let nested: Record<string, unknown> = { end: true };
    for (let i = 0; i < 100; i++) nested = { next: nested };
    expect(JSON.stringify(redact(nested))).toContain("[Depth limit]");
  });

  it("limits the entries copied in all", () => {
    const wide = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]));
    expect(redact(wide, { maxEntries: 5 })).toEqual({
      k0: 0,
      k1: 1,
      k2: 2,
      k3: 3,
      k4: 4,
      "…": "[Truncated]",
    });
    expect(redact({ list: [1, 2, 3, 4, 5, 6] }, { maxEntries: 4 })).toEqual({
      list: [1, 2, 3, "[Truncated]"],
    });
    const huge = Array.from({ length: 1_000_000 }, (_, i) => i);
    const start = performance.now();
    const out = redact({ huge }) as { huge: unknown[] };
    expect(performance.now() - start).toBeLessThan(500);
    expect(out.huge).toHaveLength(1000);
    expect(out.huge.at(-1)).toBe("[Truncated]");
  });

  it("cuts long strings", () => {
    expect(redact("x".repeat(20), { maxStringLength: 8 })).toBe("xxxxxxxx…[12 more characters]");
    expect((redact("y".repeat(10_000)) as string).length).toBe(8192 + "…[1808 more characters]".length);
  });

  it("rejects negative or non-numeric limits", () => {
    expect(() => createRedactor({ maxDepth: -1 })).toThrow(
      new RangeError("createRedactor: maxDepth must be a number ≥ 0, got -1"),
    );
    expect(() => createRedactor({ maxEntries: Number.NaN })).toThrow(
      "createRedactor: maxEntries must be a number ≥ 0, got NaN",
    );
    expect(() => createRedactor({ maxStringLength: -5 })).toThrow(RangeError);
  });
});

describe("properties", () => {
  const sensitiveKey = fc.constantFrom(...defaultRedactKeys, "Authorization", "accessToken", "X_API_KEY");
  const secret = fc.string({ minLength: 6, maxLength: 20 }).map((s) => `SECRET<${s}>`);
  // Values that are not secrets never contain the marker.
  const plain = fc.oneof(
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.string().filter((s) => !s.includes("SECRET")),
  );

  it("never lets a value under a sensitive key through, and never changes the input", () => {
    const tree = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small" },
        plain,
        fc.array(tie("node"), { maxLength: 4 }),
        fc.dictionary(
          fc.string({ maxLength: 8 }).filter((k) => !/secret|token|password|cookie|auth|key/i.test(k)),
          tie("node"),
          { maxKeys: 4 },
        ),
        fc.tuple(sensitiveKey, secret, tie("node")).map(([key, value, rest]) => ({ [key]: value, rest })),
        fc
          .tuple(sensitiveKey, tie("node"))
          .map(([key, value]) => ({ [key]: { nested: value, s: "SECRET<x>" } })),
      ),
    }));
    fc.assert(
      fc.property(tree.node, (input) => {
        const before = JSON.stringify(input);
        const out = redact(input);
        expect(JSON.stringify(input)).toBe(before);
        expect(JSON.stringify(out) ?? "").not.toContain("SECRET<");
      }),
      { numRuns: 300 },
    );
  });
});
