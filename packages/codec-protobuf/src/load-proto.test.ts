import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadProto, loadProtoSync, parseProto } from "@svckit/codec-protobuf";
import { describe, expect, it } from "vitest";

const testdata = fileURLToPath(new URL("./testdata/", import.meta.url));
const addsvc = `${testdata}addsvc.proto`;
const rich = `${testdata}rich.proto`;

describe("loadProto", () => {
  it("loads go-kit's addsvc proto and describes the pb.Add service for a transport", async () => {
    const root = await loadProto(addsvc);
    expect(root.services).toEqual(["pb.Add"]);
    const add = root.service("pb.Add");
    expect(add.name).toBe("pb.Add");
    expect(Object.keys(add.methods)).toEqual(["Sum", "Concat"]);
    expect(add.methods.Sum).toEqual({
      name: "Sum",
      path: "/pb.Add/Sum",
      service: "pb.Add",
      requestType: root.messageType("pb.SumRequest"),
      responseType: root.messageType("pb.SumReply"),
      requestStream: false,
      responseStream: false,
    });
    expect(add.methods.Concat?.path).toBe("/pb.Add/Concat");
    expect(add.methods.Concat?.requestType.typeName).toBe("pb.ConcatRequest");
    expect(add.methods.Concat?.responseType.typeName).toBe("pb.ConcatReply");
    const sum = add.methods.Sum;
    expect(sum?.responseType.decode(sum.responseType.encode({ v: 3n, err: "" }))).toEqual({ v: 3n, err: "" });
  });

  it("gives the streaming flags of every kind of method", () => {
    const methods = loadProtoSync(rich).service("rich.v1.Inventory").methods;
    const flags = Object.values(methods).map((m) => [m.name, m.requestStream, m.responseStream]);
    expect(flags).toEqual([
      ["Get", false, false],
      ["List", false, true],
      ["Upload", true, false],
      ["Chat", true, true],
    ]);
    expect(methods.List?.requestType.typeName).toBe("google.protobuf.Empty");
  });

  it("loads several files at once, synchronously or not, with the same result", async () => {
    const sync = loadProtoSync([addsvc, rich]);
    const async = await loadProto([addsvc, rich]);
    expect(sync.services).toEqual(["pb.Add", "rich.v1.Inventory"]);
    expect(async.services).toEqual(sync.services);
  });

  it("finds files and their imports in includeDirs, in order, like protoc -I", async () => {
    const options = { includeDirs: [testdata, `${testdata}include`] };
    for (const root of [loadProtoSync("order.proto", options), await loadProto("order.proto", options)]) {
      expect(root.services).toEqual(["shop.v1.Orders"]);
      const Order = root.messageType("shop.v1.Order");
      const order = {
        id: "o1",
        total: { currency: 2, units: 2n ** 60n, nanos: 5 },
        placedAt: { seconds: 1n, nanos: 0 },
      };
      expect(Order.decode(Order.encode(order))).toEqual(order);
      expect(root.enumValues("shop.v1.Currency")).toEqual({
        CURRENCY_UNSPECIFIED: 0,
        CURRENCY_EUR: 1,
        CURRENCY_USD: 2,
      });
    }
  });

  it("fails, naming the file, when an import is in no include directory", async () => {
    expect(() => loadProtoSync(`${testdata}order.proto`)).toThrow(/shop\/v1\/money\.proto/);
    await expect(loadProto(`${testdata}order.proto`)).rejects.toThrow(/shop\/v1\/money\.proto/);
    await expect(loadProto(`${testdata}missing.proto`)).rejects.toThrow(/missing\.proto/);
  });

  it("resolves other imports relative to the importing file", () => {
    const root = loadProtoSync(`${testdata}relative/a.proto`);
    expect(root.messageType("rel.A").create({ b: { s: "x" } })).toEqual({ b: { s: "x" } });
  });

  it("finds google/protobuf/descriptor.proto for custom options without shipping it", () => {
    const root = loadProtoSync(`${testdata}options.proto`);
    expect(root.messageType("opts.Labeled").create({ s: "x" })).toEqual({ s: "x" });
  });

  it("caches lookups: the same name gives the same object", () => {
    const root = loadProtoSync(addsvc);
    expect(root.messageType("pb.SumRequest")).toBe(root.messageType(".pb.SumRequest"));
    expect(root.service("pb.Add")).toBe(root.service(".pb.Add"));
    expect(root.service("pb.Add").methods.Sum?.requestType).toBe(root.messageType("pb.SumRequest"));
  });

  it("rejects unknown names and names of the wrong kind with an Error that names them", () => {
    const root = loadProtoSync(addsvc);
    expect(() => root.messageType("pb.Nope")).toThrow('unknown message type "pb.Nope"');
    expect(() => root.messageType("SumRequest")).toThrow(
      'unknown message type "SumRequest" (names are fully qualified: did you mean "pb.SumRequest"?)',
    );
    expect(() => root.messageType("pb.Add")).toThrow('"pb.Add" is a service, not a message type');
    expect(() => root.service("pb.SumRequest")).toThrow('"pb.SumRequest" is a message type, not a service');
    expect(() => root.service("pb.Sub")).toThrow('unknown service "pb.Sub"');
    expect(() => root.enumValues("pb")).toThrow('"pb" is a package, not an enum');
    expect(() => root.messageType("pb")).toThrow('"pb" is a package, not a message type');
  });

  it("returns frozen descriptors", () => {
    const root = loadProtoSync(addsvc);
    const add = root.service("pb.Add");
    expect(Object.isFrozen(root)).toBe(true);
    expect(Object.isFrozen(root.services)).toBe(true);
    expect(Object.isFrozen(add)).toBe(true);
    expect(Object.isFrozen(add.methods)).toBe(true);
    expect(Object.isFrozen(add.methods.Sum)).toBe(true);
  });
});

describe("parseProto", () => {
  it("reads .proto source text", () => {
    const root = parseProto(readFileSync(addsvc, "utf8"));
    expect(root.services).toEqual(["pb.Add"]);
    const SumRequest = root.messageType("pb.SumRequest");
    expect(SumRequest.decode(SumRequest.encode({ a: 2n ** 62n, b: -1n }))).toEqual({ a: 2n ** 62n, b: -1n });
  });

  it("may import the well-known types", () => {
    const root = parseProto(
      'syntax = "proto3"; import "google/protobuf/duration.proto"; message M { google.protobuf.Duration d = 1; }',
    );
    expect(root.messageType("M").create({ d: { seconds: 1n } })).toEqual({ d: { seconds: 1n, nanos: 0 } });
  });

  it("throws an Error that says what is wrong: syntax, undefined types, other imports", () => {
    expect(() => parseProto('syntax = "proto3"; message { }')).toThrow("illegal type name '{' (line 1)");
    expect(() => parseProto('syntax = "proto3";\nmessage M {\n  Nope n = 1;\n}')).toThrow(
      /no such Type or Enum 'Nope'/,
    );
    expect(() => parseProto('syntax = "proto3"; import "other.proto";')).toThrow(
      'parseProto cannot import "other.proto": only the well-known types are built in; use loadProto for files',
    );
  });

  it("converts field names to lowerCamelCase, as the proto3 JSON mapping names them", () => {
    const root = parseProto(
      'syntax = "proto3"; message M { string user_name = 1; int64 max_item_count = 2; }',
    );
    expect(root.messageType("M").create()).toEqual({ userName: "", maxItemCount: 0n });
  });
});
