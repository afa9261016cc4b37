// Option checks and client construction; behaviour against a real etcd is in test/sd-etcd.test.ts.
import { createEtcdClient, createEtcdInstancer, createEtcdRegistrar } from "@svckit/sd-etcd";
import { afterAll, describe, expect, it } from "vitest";

// Never connects: nothing is called on it by failing factories.
const client = createEtcdClient("http://127.0.0.1:1");
afterAll(() => client.close());

describe("createEtcdRegistrar", () => {
  const base = { prefix: "/s/", id: "1", instance: "a:1" };

  it.each([
    [{ ...base, prefix: "" }, TypeError, 'createEtcdRegistrar: prefix must be a non-empty string, got ""'],
    [{ ...base, id: 3 }, TypeError, "createEtcdRegistrar: id must be a non-empty string, got 3"],
    [{ ...base, ttl: 0 }, RangeError, "createEtcdRegistrar: ttl must be a finite number > 0, got 0"],
    [
      { ...base, ttl: 1.5 },
      RangeError,
      "createEtcdRegistrar: ttl must be a whole number of seconds, got 1.5",
    ],
    [
      { ...base, encoding: "yaml" },
      TypeError,
      'createEtcdRegistrar: encoding must be "json" or "address", got "yaml"',
    ],
    [
      { ...base, requestTimeout: -1 },
      RangeError,
      "createEtcdRegistrar: requestTimeout must be a finite number > 0, got -1",
    ],
    [
      { ...base, instance: "" },
      TypeError,
      'createEtcdRegistrar: an instance address must be a non-empty string, got ""',
    ],
    [
      { ...base, instance: { address: "a:1", metadata: { x: 1 } } },
      TypeError,
      'createEtcdRegistrar: metadata of instance a:1 must be an object of strings, but "x" is number',
    ],
  ])("rejects %j", (options, type, message) => {
    const create = () => createEtcdRegistrar(client, options as never);
    expect(create).toThrow(type);
    expect(create).toThrow(message);
  });

  it("rejects a missing client or options", () => {
    expect(() => createEtcdRegistrar({} as never, base)).toThrow(
      new TypeError("createEtcdRegistrar: client must be an etcd3 client (createEtcdClient or new Etcd3())"),
    );
    expect(() => createEtcdRegistrar(client, undefined as never)).toThrow(
      new TypeError("createEtcdRegistrar: options are required"),
    );
  });

  it("computes its key and value up front without calling etcd", () => {
    const registrar = createEtcdRegistrar(client, { ...base, instance: { address: "a:1", weight: 2 } });
    expect(registrar.key).toBe("/s/1");
    expect(registrar.value).toBe('{"address":"a:1","weight":2}');
    expect(registrar.registered).toBe(false);
  });
});

describe("createEtcdInstancer", () => {
  it.each([
    [{ prefix: "" }, TypeError, 'createEtcdInstancer: prefix must be a non-empty string, got ""'],
    [{}, TypeError, "createEtcdInstancer: prefix must be a non-empty string, got undefined"],
    [
      { prefix: "/s/", requestTimeout: 0 },
      RangeError,
      "createEtcdInstancer: requestTimeout must be a finite number > 0, got 0",
    ],
  ])("rejects %j", (options, type, message) => {
    const create = () => createEtcdInstancer(client, options as never);
    expect(create).toThrow(type);
    expect(create).toThrow(message);
  });

  it("rejects a missing client or options", () => {
    expect(() => createEtcdInstancer(null as never, { prefix: "/s/" })).toThrow(
      "createEtcdInstancer: client must be an etcd3 client (createEtcdClient or new Etcd3())",
    );
    expect(() => createEtcdInstancer(client, null as never)).toThrow(
      "createEtcdInstancer: options are required",
    );
  });
});

describe("createEtcdClient", () => {
  it("takes a URL, a list, or etcd3's options", () => {
    for (const init of [
      "http://127.0.0.1:1",
      ["http://127.0.0.1:1", "http://127.0.0.1:2"],
      { hosts: "http://127.0.0.1:1" },
    ]) {
      const made = createEtcdClient(init);
      expect(typeof made.watch).toBe("function");
      made.close();
    }
  });
});
