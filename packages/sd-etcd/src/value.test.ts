import { describe, expect, it } from "vitest";
import { checkInstance, decodeValue, encodeValue } from "./value.js";

describe("decodeValue", () => {
  it.each([
    ["10.0.0.1:80", { address: "10.0.0.1:80" }],
    ["  http://users:8080/ \n", { address: "http://users:8080/" }],
    ['"10.0.0.2:80"', { address: "10.0.0.2:80" }],
    ['{"address":"10.0.0.3:80"}', { address: "10.0.0.3:80" }],
    [
      '{"address":"10.0.0.4:80","metadata":{"zone":"eu"},"weight":0}',
      { address: "10.0.0.4:80", metadata: { zone: "eu" }, weight: 0 },
    ],
    ['{"address":"10.0.0.5:80","extra":true}', { address: "10.0.0.5:80" }],
  ])("reads %j", (value, instance) => {
    expect(decodeValue(value)).toEqual(instance);
  });

  it.each([
    ["", TypeError, "value is empty: expected an address or a JSON instance"],
    ["   ", TypeError, "value is empty: expected an address or a JSON instance"],
    ["{oops", TypeError, /^value is malformed JSON: /],
    ['"unterminated', TypeError, /^value is malformed JSON: /],
    ['""', TypeError, 'value: an instance address must be a non-empty string, got ""'],
    ['{"addr":"x"}', TypeError, "value: an instance address must be a non-empty string, got undefined"],
    ['{"address":5}', TypeError, "value: an instance address must be a non-empty string, got 5"],
    [
      '{"address":"a:1","weight":-1}',
      RangeError,
      "value: weight of instance a:1 must be a finite number >= 0, got -1",
    ],
    [
      '{"address":"a:1","weight":"2"}',
      RangeError,
      'value: weight of instance a:1 must be a finite number >= 0, got "2"',
    ],
    [
      '{"address":"a:1","metadata":[]}',
      TypeError,
      "value: metadata of instance a:1 must be an object of strings",
    ],
    [
      '{"address":"a:1","metadata":{"n":1}}',
      TypeError,
      'value: metadata of instance a:1 must be an object of strings, but "n" is number',
    ],
  ])("rejects %j", (value, type, message) => {
    expect(() => decodeValue(value)).toThrow(type);
    expect(() => decodeValue(value)).toThrow(message);
  });
});

describe("encodeValue", () => {
  it("writes JSON with only the fields set, or the plain address", () => {
    expect(encodeValue({ address: "a:1" }, "json")).toBe('{"address":"a:1"}');
    expect(encodeValue({ address: "a:1", metadata: { z: "1" }, weight: 2 }, "json")).toBe(
      '{"address":"a:1","metadata":{"z":"1"},"weight":2}',
    );
    expect(encodeValue({ address: "a:1", metadata: { z: "1" }, weight: 2 }, "address")).toBe("a:1");
  });

  it("round-trips through decodeValue", () => {
    const instance = checkInstance({ address: "h:9", metadata: { a: "b" }, weight: 1.5 }, "t");
    expect(decodeValue(encodeValue(instance, "json"))).toEqual(instance);
    expect(decodeValue(encodeValue(instance, "address"))).toEqual({ address: "h:9" });
  });
});

describe("checkInstance", () => {
  it("rejects what is not an instance", () => {
    expect(() => checkInstance(null as never, "w")).toThrow(
      new TypeError("w: instance must be an address string or { address }, got null"),
    );
    expect(() => checkInstance(7 as never, "w")).toThrow(
      "w: instance must be an address string or { address }, got 7",
    );
    expect(() => checkInstance({ address: "a:1", weight: Number.NaN }, "w")).toThrow(
      "w: weight of instance a:1 must be a finite number >= 0, got NaN",
    );
  });
});
