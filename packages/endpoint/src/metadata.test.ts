import {
  createContext,
  createMetadata,
  emptyMetadata,
  type Metadata,
  type MetadataInit,
  mergeMetadata,
  metadataFromLowerCaseRecord,
  metadataFromNodeHeaders,
} from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

describe("createMetadata", () => {
  const inits: readonly (readonly [string, MetadataInit])[] = [
    ["a record", { "Content-Type": "application/json", "X-Multi": ["1", "2"] }],
    [
      "pairs",
      [
        ["Content-Type", "application/json"],
        ["x-multi", "1"],
        ["X-MULTI", "2"],
      ],
    ],
    [
      "a Map",
      new Map([
        ["CONTENT-TYPE", "application/json"],
        ["X-Multi", "2"],
      ]),
    ],
    ["another Metadata", createMetadata({ "content-type": "application/json", "x-multi": ["1", "2"] })],
  ];

  it.each(inits)("from %s: keys are case-insensitive", (_label, init) => {
    const md = createMetadata(init);
    for (const key of ["content-type", "Content-Type", "CONTENT-TYPE", "cOnTeNt-TyPe"]) {
      expect(md.get(key)).toBe("application/json");
      expect(md.getAll(key)).toEqual(["application/json"]);
      expect(md.has(key)).toBe(true);
    }
    expect([...md.keys()]).toEqual(["content-type", "x-multi"]);
    expect(md.size).toBe(2);
  });

  it("keeps every value of a repeated key, in order, and get returns the first", () => {
    const md = createMetadata([
      ["Accept", "a"],
      ["x-other", "o"],
      ["accept", "b"],
      ["ACCEPT", "c"],
    ]);
    expect(md.get("accept")).toBe("a");
    expect(md.getAll("Accept")).toEqual(["a", "b", "c"]);
    expect(md.size).toBe(2);
    expect([...md]).toEqual([
      ["accept", "a"],
      ["accept", "b"],
      ["accept", "c"],
      ["x-other", "o"],
    ]);
  });

  it("merges record keys that differ only in case", () => {
    const md = createMetadata({ "X-A": "1", "x-a": "2", "x-A": ["3", "4"] });
    expect(md.getAll("x-a")).toEqual(["1", "2", "3", "4"]);
    expect(md.size).toBe(1);
  });

  it("skips undefined values of a record (Node's IncomingHttpHeaders)", () => {
    const md = createMetadata({ a: "1", b: undefined, c: ["x"] });
    expect(md.has("b")).toBe(false);
    expect(md.get("b")).toBeUndefined();
    expect(md.getAll("b")).toEqual([]);
    expect([...md.keys()]).toEqual(["a", "c"]);
    expect(md.size).toBe(2);
    expect(md.toRecord()).toEqual({ a: "1", c: "x" });
  });

  it("returns empty results for an absent key", () => {
    const md = createMetadata({ a: "1" });
    expect(md.get("missing")).toBeUndefined();
    expect(md.getAll("missing")).toEqual([]);
    expect(md.has("missing")).toBe(false);
  });

  it("returns the shared emptyMetadata without init, and the same instance for a Metadata", () => {
    expect(createMetadata()).toBe(emptyMetadata);
    const md = createMetadata({ a: "1" });
    expect(createMetadata(md)).toBe(md);
  });

  it("builds from a web Headers object", () => {
    const headers = new Headers({ "X-Request-Id": "abc", Accept: "text/plain" });
    const md = createMetadata(headers);
    expect(md.get("x-request-id")).toBe("abc");
    expect(md.get("ACCEPT")).toBe("text/plain");
    expect(md.size).toBe(2);
  });

  it("iterates in insertion order, one pair per value", () => {
    const md = createMetadata({ z: "1", a: ["2", "3"], m: "4" });
    expect([...md.keys()]).toEqual(["z", "a", "m"]);
    expect([...md]).toEqual([
      ["z", "1"],
      ["a", "2"],
      ["a", "3"],
      ["m", "4"],
    ]);
  });

  it("getAll returns a copy the caller may change", () => {
    const md = createMetadata({ a: ["1", "2"] });
    const all = md.getAll("a");
    all.push("3");
    expect(md.getAll("a")).toEqual(["1", "2"]);
  });

  it("does not see later changes to the source record (it is copied)", () => {
    const record: Record<string, string> = { a: "1" };
    const md = createMetadata(record);
    record.a = "2";
    record.b = "3";
    expect(md.get("a")).toBe("1");
    expect(md.has("b")).toBe(false);
  });

  describe("toRecord", () => {
    it("gives one string per single value and an array for a repeated key", () => {
      const md = createMetadata([
        ["A", "1"],
        ["b", "2"],
        ["B", "3"],
      ]);
      expect(md.toRecord()).toEqual({ a: "1", b: ["2", "3"] });
    });

    it("returns a fresh copy each time", () => {
      const md = createMetadata({ a: ["1", "2"] });
      const first = md.toRecord();
      (first.a as string[]).push("x");
      first.c = "y";
      expect(md.toRecord()).toEqual({ a: ["1", "2"] });
    });

    it("is JSON-serialisable", () => {
      expect(JSON.stringify(createMetadata({ a: "1", b: ["2", "3"] }).toRecord())).toBe(
        '{"a":"1","b":["2","3"]}',
      );
    });
  });

  describe("prototype keys", () => {
    const names = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "__defineGetter__"];

    it.each(names)("an absent %s key reads as absent", (name) => {
      const md = createMetadata({ a: "1" });
      expect(md.get(name)).toBeUndefined();
      expect(md.getAll(name)).toEqual([]);
      expect(md.has(name)).toBe(false);
      expect(md.size).toBe(1);
    });

    it.each(names)("an absent %s key reads as absent on a wrapped plain object", (name) => {
      const md = metadataFromLowerCaseRecord({ a: "1" });
      expect(md.get(name)).toBeUndefined();
      expect(md.has(name)).toBe(false);
      expect(emptyMetadata.has(name)).toBe(false);
      expect(emptyMetadata.get(name)).toBeUndefined();
    });

    it.each(names)("a present %s key is an ordinary key", (name) => {
      const md = createMetadata([
        [name, "v1"],
        [name.toUpperCase(), "v2"],
      ]);
      const key = name.toLowerCase();
      expect(md.get(name)).toBe("v1");
      expect(md.getAll(name)).toEqual(["v1", "v2"]);
      expect([...md.keys()]).toEqual([key]);
      const record = md.toRecord();
      expect(Object.keys(record)).toEqual([key]);
      expect(Object.hasOwn(record, key)).toBe(true);
      expect(record[key]).toEqual(["v1", "v2"]);
      expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
    });

    it("a single-valued __proto__ key survives toRecord without touching the prototype", () => {
      const record = createMetadata([["__proto__", "x"]]).toRecord();
      expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(record, "__proto__")?.value).toBe("x");
      expect(JSON.stringify(record)).toBe('{"__proto__":"x"}');
    });

    it("a __proto__ key in a record built with JSON.parse is kept", () => {
      const parsed = JSON.parse('{"__proto__": "p", "a": "1"}') as Record<string, string>;
      const md = createMetadata(parsed);
      expect(md.get("__proto__")).toBe("p");
      expect(md.toRecord()).toEqual(JSON.parse('{"__proto__": "p", "a": "1"}'));
    });
  });
});

describe("emptyMetadata", () => {
  it("holds nothing", () => {
    expect(emptyMetadata.size).toBe(0);
    expect([...emptyMetadata]).toEqual([]);
    expect([...emptyMetadata.keys()]).toEqual([]);
    expect(emptyMetadata.toRecord()).toEqual({});
    expect(emptyMetadata.get("a")).toBeUndefined();
  });
});

describe("metadataFromLowerCaseRecord", () => {
  it("wraps a Node-style header record without copying it", () => {
    // Shaped like IncomingMessage.headers: lower-case keys, undefined for absent, arrays for set-cookie.
    const headers: Record<string, string | string[] | undefined> = {
      host: "example.com",
      "set-cookie": ["a=1", "b=2"],
      "x-absent": undefined,
    };
    const md = metadataFromLowerCaseRecord(headers);
    expect(md.get("Host")).toBe("example.com");
    expect(md.get("SET-COOKIE")).toBe("a=1");
    expect(md.getAll("set-cookie")).toEqual(["a=1", "b=2"]);
    expect(md.has("x-absent")).toBe(false);
    expect(md.size).toBe(2);
    expect([...md.keys()]).toEqual(["host", "set-cookie"]);
    expect(md.toRecord()).toEqual({ host: "example.com", "set-cookie": ["a=1", "b=2"] });
    // Not copied: a change to the record shows (the contract says callers must not make one).
    headers.host = "other.example";
    expect(md.get("host")).toBe("other.example");
  });

  it("ignores inherited properties of the record", () => {
    const proto = { inherited: "no" };
    const record = Object.create(proto) as Record<string, string>;
    record.own = "yes";
    const md = metadataFromLowerCaseRecord(record);
    expect(md.has("inherited")).toBe(false);
    expect([...md.keys()]).toEqual(["own"]);
    expect(md.toRecord()).toEqual({ own: "yes" });
  });

  it("is passed through by createMetadata", () => {
    const md = metadataFromLowerCaseRecord({ a: "1" });
    expect(createMetadata(md)).toBe(md);
  });
});

describe("mergeMetadata", () => {
  const base = createMetadata({ a: "1", b: ["2", "2b"], c: "3" });

  it("keeps base keys and adds new ones", () => {
    const merged = mergeMetadata(base, { d: "4" });
    expect(merged.toRecord()).toEqual({ a: "1", b: ["2", "2b"], c: "3", d: "4" });
  });

  it("replaces every value of a key present in extra (any case)", () => {
    const merged = mergeMetadata(base, { B: "9" });
    expect(merged.getAll("b")).toEqual(["9"]);
    expect(merged.get("a")).toBe("1");
  });

  it("keeps every value extra gives for a key", () => {
    expect(mergeMetadata(base, { b: ["x", "y"] }).getAll("b")).toEqual(["x", "y"]);
    expect(
      mergeMetadata(base, [
        ["B", "x"],
        ["b", "y"],
      ]).getAll("b"),
    ).toEqual(["x", "y"]);
    expect(mergeMetadata(base, { B: "x", b: "y" }).getAll("b")).toEqual(["x", "y"]);
    expect(mergeMetadata(base, createMetadata({ b: ["x", "y"] })).getAll("b")).toEqual(["x", "y"]);
  });

  it("does not let an undefined value in extra remove or replace a key", () => {
    expect(mergeMetadata(base, { a: undefined }).get("a")).toBe("1");
  });

  it("changes neither input", () => {
    const extra = createMetadata({ a: "new" });
    const merged = mergeMetadata(base, extra);
    expect(merged.get("a")).toBe("new");
    expect(base.get("a")).toBe("1");
    expect(extra.toRecord()).toEqual({ a: "new" });
    expect(merged).not.toBe(base);
  });

  it("merges onto emptyMetadata", () => {
    const merged: Metadata = mergeMetadata(emptyMetadata, [["X-A", "1"]]);
    expect(merged.toRecord()).toEqual({ "x-a": "1" });
    expect(emptyMetadata.size).toBe(0);
  });

  it("keeps base order; a replaced key moves to the end", () => {
    const merged = mergeMetadata(base, { b: "9", e: "5" });
    expect([...merged.keys()]).toEqual(["a", "c", "b", "e"]);
  });
});

describe("a transport's own Metadata implementation", () => {
  it("is used as it is by createMetadata, without a copy", () => {
    const view: Metadata = {
      get: (key) => (key.toLowerCase() === "x-a" ? "1" : undefined),
      getAll: (key) => (key.toLowerCase() === "x-a" ? ["1"] : []),
      has: (key) => key.toLowerCase() === "x-a",
      keys: () => ["x-a"][Symbol.iterator](),
      size: 1,
      toRecord: () => ({ "x-a": "1" }),
      [Symbol.iterator]: () => [["x-a", "1"] as [string, string]][Symbol.iterator](),
    };
    expect(createMetadata(view)).toBe(view);
    expect(createContext({ metadata: view }).metadata).toBe(view);
    expect(mergeMetadata(view, { b: "2" }).toRecord()).toEqual({ "x-a": "1", b: "2" });
  });

  it("a web Headers is copied as pairs", () => {
    const headers = new Headers({ "X-A": "1" });
    const md = createMetadata(headers);
    expect(md).not.toBe(headers);
    expect(md.get("x-a")).toBe("1");
  });
});

describe("metadataFromNodeHeaders", () => {
  it("keeps every value of a repeated credential header, and the record as it is otherwise", () => {
    const headers = { host: "x", authorization: "Bearer a", "proxy-authorization": "Basic p" };
    const raw = [
      "Host",
      "x",
      "Authorization",
      "Bearer a",
      "AUTHORIZATION",
      "Bearer b",
      "Proxy-Authorization",
      "Basic p",
    ];
    const md = metadataFromNodeHeaders(headers, raw);
    expect(md.getAll("authorization")).toEqual(["Bearer a", "Bearer b"]);
    expect(md.getAll("proxy-authorization")).toEqual(["Basic p"]);
    expect(md.get("host")).toBe("x");
    expect(headers.authorization).toBe("Bearer a");
    const single = metadataFromNodeHeaders({ authorization: "Bearer a" }, ["authorization", "Bearer a"]);
    expect(single.getAll("authorization")).toEqual(["Bearer a"]);
    expect(metadataFromNodeHeaders({ host: "x" }, ["Host", "x"]).toRecord()).toEqual({ host: "x" });
  });
});
