import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { IncomingMetadata } from "./metadata.js";

describe("IncomingMetadata", () => {
  const headers = {
    ":method": "POST",
    ":path": "/pb.Add/Sum",
    ":authority": "localhost",
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-timeout": "1S",
    "grpc-encoding": "gzip",
    "grpc-accept-encoding": "gzip",
    "accept-encoding": "gzip",
    "user-agent": "grpc-node-js/1.14.7",
    "x-tenant": "acme",
    "x-joined": "a, b",
    "x-list": ["one", "two"],
    "trace-bin": "AAEC+g",
    "multi-bin": "AQ==,Ag",
    "x-bad-value": "caf\u00e9",
    "x-partly": ["ok", "n\u00f6"],
    "Bad!Key": "x",
    "x-undefined": undefined,
  };

  it("holds what grpc-js's own server hands a handler: no pseudo or protocol headers, -bin decoded", () => {
    const md = new IncomingMetadata(headers);
    expect(md).toBeInstanceOf(Metadata);
    expect(md.toJSON()).toEqual({
      "user-agent": ["grpc-node-js/1.14.7"],
      "x-tenant": ["acme"],
      "x-joined": ["a, b"],
      "x-list": ["one", "two"],
      "trace-bin": [Buffer.from([0, 1, 2, 250])],
      "multi-bin": [Buffer.from([1]), Buffer.from([2])],
      "x-partly": ["ok"],
    });
  });

  it("agrees with grpc-js's Metadata.fromHttp2Headers on the entries both keep", () => {
    const ours = new IncomingMetadata(headers).toJSON();
    const theirs = Metadata.fromHttp2Headers(headers);
    for (const key of [
      "content-type",
      "te",
      "grpc-timeout",
      "grpc-encoding",
      "grpc-accept-encoding",
      "accept-encoding",
    ]) {
      theirs.remove(key);
    }
    const reference = theirs.toJSON();
    for (const key of Object.keys(ours)) expect(ours[key]).toEqual(reference[key]);
  });

  it("reads the headers only when first used", () => {
    let reads = 0;
    const watched = new Proxy<Record<string, string>>(
      { "x-a": "1" },
      {
        ownKeys(target) {
          reads++;
          return Reflect.ownKeys(target);
        },
      },
    );
    const md = new IncomingMetadata(watched);
    expect(reads).toBe(0);
    expect(md.get("x-a")).toEqual(["1"]);
    expect(md.getMap()).toEqual({ "x-a": "1" });
    expect(reads).toBe(1);
  });

  it("shows its entries to another Metadata's merge before any other use", () => {
    const other = new Metadata();
    other.merge(new IncomingMetadata({ "x-b": "2" }));
    expect(other.get("x-b")).toEqual(["2"]);
  });

  it("works like any grpc-js Metadata: get, set, clone, merge", () => {
    const md = new IncomingMetadata({ "x-a": "1" });
    md.add("x-a", "2");
    expect(md.get("X-A")).toEqual(["1", "2"]);
    expect(md.clone().getMap()).toEqual({ "x-a": "1" });
    const other = new Metadata();
    other.merge(md);
    expect(other.get("x-a")).toEqual(["1", "2"]);
  });
});
