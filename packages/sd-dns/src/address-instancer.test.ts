// createDnsAddressInstancer with an injected resolver and fake timers: A and AAAA records on a fixed
// port, TTL-driven lookups, partial answers, failures and options.
import type { RecordWithTtl } from "node:dns";
import { Code, type ServiceError } from "@svckit/endpoint";
import {
  createDnsAddressInstancer,
  type DnsAddressInstancerOptions,
  type DnsInstancer,
} from "@svckit/sd-dns";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const HOST = "redis.internal";

function dnsError(code: string, syscall: string): Error {
  return Object.assign(new Error(`${syscall} ${code} ${HOST}`), { code, syscall, hostname: HOST });
}

type Answer = RecordWithTtl[] | Error;

/** A resolver with settable A and AAAA answers; records which kinds were asked. */
function resolver(a: Answer, aaaa: Answer) {
  const answers = { a, aaaa };
  const calls: string[] = [];
  const answer = async (which: "a" | "aaaa"): Promise<RecordWithTtl[]> => {
    calls.push(which);
    const value = answers[which];
    if (value instanceof Error) throw value;
    return value;
  };
  return {
    answers,
    calls,
    resolve4: (name: string, options: { ttl: true; signal?: AbortSignal }) => {
      expect([name, options]).toEqual([HOST, { ttl: true, signal: expect.any(AbortSignal) }]);
      return answer("a");
    },
    resolve6: (name: string, options: { ttl: true; signal?: AbortSignal }) => {
      expect([name, options]).toEqual([HOST, { ttl: true, signal: expect.any(AbortSignal) }]);
      return answer("aaaa");
    },
  };
}

const created: DnsInstancer[] = [];
function instancer(options: DnsAddressInstancerOptions, port = 6379): DnsInstancer {
  const made = createDnsAddressInstancer(HOST, port, options);
  created.push(made);
  return made;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  for (const made of created.splice(0)) made.close();
  vi.useRealTimers();
});

describe("createDnsAddressInstancer", () => {
  it("lists every A and AAAA address on the port, IPv6 in brackets", async () => {
    const dns = resolver(
      [
        { address: "10.0.0.5", ttl: 60 },
        { address: "10.0.0.6", ttl: 60 },
      ],
      [{ address: "fd00::5", ttl: 60 }],
    );
    expect(await instancer({ resolver: dns }).ready()).toEqual({
      instances: [{ address: "10.0.0.5:6379" }, { address: "10.0.0.6:6379" }, { address: "[fd00::5]:6379" }],
    });
    expect(dns.calls.sort()).toEqual(["a", "aaaa"]);
  });

  it("asks only A with family 4 and only AAAA with family 6", async () => {
    const v4 = resolver([{ address: "10.0.0.5", ttl: 1 }], dnsError("ESERVFAIL", "queryAaaa"));
    expect((await instancer({ resolver: v4, family: 4 }).ready()).instances).toEqual([
      { address: "10.0.0.5:6379" },
    ]);
    expect(v4.calls).toEqual(["a"]);
    const v6 = resolver(dnsError("ESERVFAIL", "queryA"), [{ address: "::1", ttl: 1 }]);
    expect((await instancer({ resolver: v6, family: 6 }).ready()).instances).toEqual([
      { address: "[::1]:6379" },
    ]);
    expect(v6.calls).toEqual(["aaaa"]);
  });

  it("looks up again when the shortest TTL runs out, within minInterval and interval", async () => {
    const dns = resolver(
      [
        { address: "10.0.0.5", ttl: 30 },
        { address: "10.0.0.6", ttl: 3 },
      ],
      dnsError("ENODATA", "queryAaaa"),
    );
    const watcher = instancer({ resolver: dns, interval: 20_000, minInterval: 500 });
    await watcher.ready();
    const lookups = () => dns.calls.filter((c) => c === "a").length;
    await vi.advanceTimersByTimeAsync(2_999);
    expect(lookups()).toBe(1);
    await vi.advanceTimersByTimeAsync(1); // TTL 3 s
    expect(lookups()).toBe(2);
    dns.answers.a = [{ address: "10.0.0.5", ttl: 0 }];
    await vi.advanceTimersByTimeAsync(3_000);
    expect(lookups()).toBe(3);
    await vi.advanceTimersByTimeAsync(500); // TTL 0: minInterval
    expect(lookups()).toBe(4);
    dns.answers.a = [{ address: "10.0.0.5", ttl: 3_600 }];
    await vi.advanceTimersByTimeAsync(500);
    expect(lookups()).toBe(5);
    await vi.advanceTimersByTimeAsync(19_999); // TTL 1 h: capped at interval
    expect(lookups()).toBe(5);
    await vi.advanceTimersByTimeAsync(1);
    expect(lookups()).toBe(6);
    expect(watcher.current()).toEqual({ instances: [{ address: "10.0.0.5:6379" }] });
  });

  it("uses the A records when there are no AAAA ones, but fails on a transient AAAA error", async () => {
    const dns = resolver([{ address: "10.0.0.5", ttl: 1 }], dnsError("ENODATA", "queryAaaa"));
    const watcher = instancer({ resolver: dns, interval: 1_000 });
    expect((await watcher.ready()).instances).toEqual([{ address: "10.0.0.5:6379" }]);
    dns.answers.a = [{ address: "10.0.0.9", ttl: 1 }];
    dns.answers.aaaa = dnsError("ESERVFAIL", "queryAaaa");
    await vi.advanceTimersByTimeAsync(1_000);
    // Not shrunk or replaced on a half answer: the last good set stays, with the error.
    expect(watcher.current().instances).toEqual([{ address: "10.0.0.5:6379" }]);
    expect((watcher.current().error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect(watcher.current().error?.message).toBe(
      `dns: A/AAAA lookup of ${HOST} failed: queryAaaa ESERVFAIL ${HOST}`,
    );
  });

  it("reports NOT_FOUND when neither kind exists, or empties the set with notFound: empty", async () => {
    const dns = resolver([{ address: "10.0.0.5", ttl: 1 }], dnsError("ENODATA", "queryAaaa"));
    const keep = instancer({ resolver: dns, interval: 1_000 });
    const empty = instancer({ resolver: dns, interval: 1_000, notFound: "empty" });
    await keep.ready();
    await empty.ready();
    dns.answers.a = dnsError("ENOTFOUND", "queryA");
    dns.answers.aaaa = dnsError("ENOTFOUND", "queryAaaa");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(keep.current().instances).toEqual([{ address: "10.0.0.5:6379" }]);
    expect((keep.current().error as ServiceError).code).toBe(Code.NOT_FOUND);
    expect(keep.current().error?.message).toMatch(
      new RegExp(`^dns: A/AAAA lookup of ${HOST} failed: query(A|Aaaa) ENOTFOUND`),
    );
    expect(empty.current()).toEqual({ instances: [] });
  });

  it("takes empty answers of both kinds from a custom resolver as NODATA, keeping the last set", async () => {
    const dns = resolver([{ address: "10.0.0.5", ttl: 1 }], []);
    const keep = instancer({ resolver: dns, interval: 1_000 });
    const empty = instancer({ resolver: dns, interval: 1_000, notFound: "empty" });
    await keep.ready();
    await empty.ready();
    dns.answers.a = [];
    await vi.advanceTimersByTimeAsync(1_000);
    expect(keep.current().instances).toEqual([{ address: "10.0.0.5:6379" }]);
    expect((keep.current().error as ServiceError).code).toBe(Code.NOT_FOUND);
    expect(keep.current().error?.message).toBe(
      `dns: A/AAAA lookup of ${HOST} failed: the resolver answered with no records`,
    );
    expect(empty.current()).toEqual({ instances: [] });
  });

  it("reports a resolver answer without addresses as UNAVAILABLE", async () => {
    const dns = resolver([{ ttl: 5 } as RecordWithTtl], []);
    const state = await instancer({ resolver: dns, family: 4 }).ready();
    expect((state.error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect(state.error?.message).toBe(
      `dns: A lookup of ${HOST} failed: the resolver gave a record without an address`,
    );
  });

  const good: DnsAddressInstancerOptions = { resolver: resolver([], []) };
  it.each([
    [
      HOST,
      0,
      good,
      RangeError,
      "createDnsAddressInstancer: port must be a whole number from 1 to 65535, got 0",
    ],
    [
      HOST,
      1.5,
      good,
      RangeError,
      "createDnsAddressInstancer: port must be a whole number from 1 to 65535, got 1.5",
    ],
    ["", 1, good, TypeError, 'createDnsAddressInstancer: host must be a non-empty string, got ""'],
    [
      HOST,
      1,
      { ...good, family: 5 },
      TypeError,
      "createDnsAddressInstancer: family must be 0, 4 or 6, got 5",
    ],
    [
      HOST,
      1,
      { resolver: { resolve4: async () => [] } },
      TypeError,
      "createDnsAddressInstancer: resolver must have resolve4 / resolve6 methods for family 0",
    ],
    [
      HOST,
      1,
      { ...good, minInterval: -1 },
      RangeError,
      "createDnsAddressInstancer: minInterval must be a finite number > 0, got -1",
    ],
  ])("rejects bad arguments: %j %j %j", (host, port, options, type, message) => {
    const create = () => createDnsAddressInstancer(host, port, options as DnsAddressInstancerOptions);
    expect(create).toThrow(type);
    expect(create).toThrow(message);
  });

  it("accepts a resolver with only resolve4 for family 4", async () => {
    const only4 = { resolve4: async () => [{ address: "10.1.1.1", ttl: 9 }] };
    const state = await instancer({ resolver: only4 as never, family: 4 }, 80).ready();
    expect(state.instances).toEqual([{ address: "10.1.1.1:80" }]);
  });
});
