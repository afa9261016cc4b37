import { Metadata } from "@grpc/grpc-js";
import { createContext, createMetadata, mergeMetadata } from "@svckit/endpoint";
import { GrpcMetadataView, toGrpcMetadata } from "@svckit/transport-grpc";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

function grpcMetadata(pairs: [string, string | Buffer][]): Metadata {
  const md = new Metadata();
  for (const [key, value] of pairs) md.add(key, value);
  return md;
}

describe("GrpcMetadataView", () => {
  const raw = grpcMetadata([
    ["x-tenant", "acme"],
    ["x-multi", "one"],
    ["x-multi", "two"],
    ["trace-bin", Buffer.from([0, 1, 255])],
  ]);
  const view = new GrpcMetadataView(raw);

  it("reads values case-insensitively; -bin values as base64", () => {
    expect(view.get("x-tenant")).toBe("acme");
    expect(view.get("X-Tenant")).toBe("acme");
    expect(view.get("x-multi")).toBe("one");
    expect(view.getAll("X-MULTI")).toEqual(["one", "two"]);
    expect(view.get("trace-bin")).toBe(Buffer.from([0, 1, 255]).toString("base64"));
    expect(view.has("TRACE-BIN")).toBe(true);
  });

  it("treats absent and invalid keys as absent instead of throwing", () => {
    for (const key of ["x-none", "bad key", "ключ", "", ":path"]) {
      expect(view.get(key)).toBeUndefined();
      expect(view.getAll(key)).toEqual([]);
      expect(view.has(key)).toBe(false);
    }
  });

  it("lists keys, size, pairs and a record", () => {
    expect([...view.keys()]).toEqual(["x-tenant", "x-multi", "trace-bin"]);
    expect(view.size).toBe(3);
    expect([...view]).toEqual([
      ["x-tenant", "acme"],
      ["x-multi", "one"],
      ["x-multi", "two"],
      ["trace-bin", "AAH/"],
    ]);
    expect(view.toRecord()).toEqual({ "x-tenant": "acme", "x-multi": ["one", "two"], "trace-bin": "AAH/" });
  });

  it("reads the grpc-js metadata live, without copying it", () => {
    const md = new Metadata();
    const live = new GrpcMetadataView(md);
    expect(live.size).toBe(0);
    md.set("x-late", "1");
    expect(live.get("x-late")).toBe("1");
    expect(live.raw).toBe(md);
  });

  it("is used as it is by the svckit context and merges like any Metadata", () => {
    expect(createMetadata(view)).toBe(view);
    expect(createContext({ metadata: view }).metadata).toBe(view);
    const merged = mergeMetadata(view, { "x-tenant": "other", "x-new": "n" });
    expect(merged.toRecord()).toEqual({
      "x-tenant": "other",
      "x-multi": ["one", "two"],
      "trace-bin": "AAH/",
      "x-new": "n",
    });
  });
});

describe("toGrpcMetadata", () => {
  it("copies text values, repeated keys and base64-decodes -bin values", () => {
    const md = toGrpcMetadata(
      createMetadata([
        ["x-a", "1"],
        ["x-a", "2"],
        ["id-bin", Buffer.from([9, 8, 7]).toString("base64")],
      ]),
    );
    expect(md.get("x-a")).toEqual(["1", "2"]);
    expect(md.get("id-bin")).toEqual([Buffer.from([9, 8, 7])]);
  });

  it.each([
    "grpc-timeout",
    "grpc-status",
    "grpc-status-details-bin",
    "grpc-anything",
    "content-type",
    "te",
    "user-agent",
    "connection",
    "host",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "http2-settings",
  ])("skips the reserved key %s", (key) => {
    expect(toGrpcMetadata(createMetadata({ [key]: "x", "x-kept": "k" })).getMap()).toEqual({ "x-kept": "k" });
  });

  it.each(["bad key", "ключ", ":path", "a/b", "x@y", "a=b", ""])("skips the invalid key %j", (key) => {
    expect(toGrpcMetadata(createMetadata({ [key]: "x", "x-kept": "k" })).getMap()).toEqual({ "x-kept": "k" });
  });

  it("skips text values with characters gRPC cannot carry", () => {
    const md = toGrpcMetadata(
      createMetadata({ "x-nl": "a\nb", "x-utf8": "grüße", "x-tab": "a\tb", "x-ok": "a b~" }),
    );
    expect(md.getMap()).toEqual({ "x-ok": "a b~" });
  });

  it("adds to the metadata it is given and returns it; empty metadata adds nothing", () => {
    const into = grpcMetadata([["x-existing", "e"]]);
    expect(toGrpcMetadata(createMetadata({ "x-new": "n" }), into)).toBe(into);
    expect(into.getMap()).toEqual({ "x-existing": "e", "x-new": "n" });
    expect(toGrpcMetadata(createMetadata(), into)).toBe(into);
    expect(into.getMap()).toEqual({ "x-existing": "e", "x-new": "n" });
  });

  it("never throws on lenient base64 in a -bin value", () => {
    expect(() => toGrpcMetadata(createMetadata({ "x-bin": "not base64!*" }))).not.toThrow();
  });

  it("undoes GrpcMetadataView for any valid keys and values (fuzz)", () => {
    const key = fc.stringMatching(/^[0-9a-z_.-]{1,20}$/).filter((k) => !k.endsWith("-bin"));
    const text = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);
    const entry = fc.oneof(
      fc.tuple(
        key.map((k) => `x${k}`),
        text,
      ),
      fc.tuple(
        key.map((k) => `x${k}-bin`),
        fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      ),
    );
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 8 }), (entries) => {
        const original = grpcMetadata(entries);
        const copy = toGrpcMetadata(new GrpcMetadataView(original));
        expect(copy.toJSON()).toEqual(original.toJSON());
      }),
      { numRuns: 300 },
    );
  });
});
