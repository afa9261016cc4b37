// createDnsSrvInstancer with an injected resolver and fake timers: priorities and weights, polling,
// failures (transient vs NXDOMAIN), timeouts, close(), and the built-in resolver's wiring.
import { spawnSync } from "node:child_process";
import type { SrvRecord } from "node:dns";
import { Code, ServiceError } from "@svckit/endpoint";
import type { InstancerState } from "@svckit/sd";
import { createDnsSrvInstancer, type DnsInstancer, type DnsSrvInstancerOptions } from "@svckit/sd-dns";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const NAME = "_http._tcp.users.svc";

/** An error as node's resolver rejects with. */
function dnsError(code: string, name = NAME): Error {
  return Object.assign(new Error(`querySrv ${code} ${name}`), { code, syscall: "querySrv", hostname: name });
}

const srv = (name: string, port: number, priority = 10, weight = 5): SrvRecord => ({
  name,
  port,
  priority,
  weight,
});

/** A resolver whose next answers the test sets; counts lookups. */
function resolver(initial: SrvRecord[] | Error) {
  let answer: SrvRecord[] | Error | (() => Promise<SrvRecord[]>) = initial;
  const calls: string[] = [];
  return {
    calls,
    set(next: SrvRecord[] | Error | (() => Promise<SrvRecord[]>)) {
      answer = next;
    },
    resolveSrv: async (name: string): Promise<SrvRecord[]> => {
      calls.push(name);
      if (typeof answer === "function") return answer();
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}

const created: DnsInstancer[] = [];
function instancer(options: DnsSrvInstancerOptions): DnsInstancer {
  const made = createDnsSrvInstancer(NAME, options);
  created.push(made);
  return made;
}
const addresses = (state: InstancerState): string[] => state.instances.map((i) => i.address);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  for (const made of created.splice(0)) made.close();
  vi.useRealTimers();
});

describe("createDnsSrvInstancer", () => {
  it("uses only the lowest priority group, with SRV weights, targets without the trailing dot", async () => {
    const dns = resolver([
      srv("b.users.svc.", 8080, 20, 1),
      srv("a.users.svc", 8080, 10, 3),
      srv("c.users.svc", 8081, 10, 0),
      srv("d.users.svc", 8080, 30, 9),
    ]);
    const state = await instancer({ resolver: dns }).ready();
    expect(state).toEqual({
      instances: [
        { address: "a.users.svc:8080", weight: 3 },
        { address: "c.users.svc:8081", weight: 0 },
      ],
    });
    expect(dns.calls).toEqual([NAME]);
  });

  it("looks up again every interval and reports changes only", async () => {
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 10_000 });
    await watcher.ready();
    const seen: string[][] = [];
    watcher.subscribe((s) => seen.push(addresses(s)));
    await vi.advanceTimersByTimeAsync(9_999);
    expect(dns.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(dns.calls).toHaveLength(2); // same answer: nobody told
    dns.set([srv("b", 2), srv("a", 1)]);
    await vi.advanceTimersByTimeAsync(10_000);
    dns.set([srv("a", 1), srv("b", 2)]); // rotated: no change
    await vi.advanceTimersByTimeAsync(10_000);
    expect(dns.calls).toHaveLength(4);
    expect(seen).toEqual([["a:1"], ["b:2", "a:1"]]);
  });

  it("keeps the last set on a transient failure, retries from minInterval doubling to interval, recovers", async () => {
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 8_000, minInterval: 1_000 });
    await watcher.ready();
    dns.set(dnsError("ESERVFAIL"));
    await vi.advanceTimersByTimeAsync(8_000);
    const failed = watcher.current();
    expect(addresses(failed)).toEqual(["a:1"]);
    expect(failed.error).toBeInstanceOf(ServiceError);
    expect((failed.error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect(failed.error?.message).toBe(`dns: SRV lookup of ${NAME} failed: querySrv ESERVFAIL ${NAME}`);
    expect((failed.error as ServiceError).cause).toMatchObject({ code: "ESERVFAIL" });
    // Retries after 1 s, 2 s, 4 s, then every 8 s (the interval).
    const at = (n: number) => dns.calls.length === n;
    for (const [wait, total] of [
      [999, 2],
      [1, 3],
      [2_000, 4],
      [4_000, 5],
      [7_999, 5],
      [1, 6],
    ] as const) {
      await vi.advanceTimersByTimeAsync(wait);
      expect(at(total)).toBe(true);
    }
    dns.set([srv("a", 1), srv("b", 2)]);
    await vi.advanceTimersByTimeAsync(8_000);
    expect(watcher.current()).toEqual({
      instances: [
        { address: "a:1", weight: 5 },
        { address: "b:2", weight: 5 },
      ],
    });
  });

  it("keeps the last set on NXDOMAIN by default, reporting NOT_FOUND", async () => {
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 5_000 });
    await watcher.ready();
    dns.set(dnsError("ENOTFOUND"));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(addresses(watcher.current())).toEqual(["a:1"]);
    expect((watcher.current().error as ServiceError).code).toBe(Code.NOT_FOUND);
    expect(watcher.current().error?.message).toBe(
      `dns: SRV lookup of ${NAME} failed: querySrv ENOTFOUND ${NAME}`,
    );
    dns.set(dnsError("ENODATA"));
    await vi.advanceTimersByTimeAsync(1_000);
    expect((watcher.current().error as ServiceError).code).toBe(Code.NOT_FOUND);
  });

  it('with notFound: "empty" takes NXDOMAIN / NODATA as no instances', async () => {
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 5_000, notFound: "empty" });
    await watcher.ready();
    dns.set(dnsError("ENOTFOUND"));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(watcher.current()).toEqual({ instances: [] });
    // ...polling on at the interval, not the retry backoff.
    await vi.advanceTimersByTimeAsync(4_999);
    expect(dns.calls).toHaveLength(2);
    dns.set(dnsError("ESERVFAIL"));
    await vi.advanceTimersByTimeAsync(1);
    expect((watcher.current().error as ServiceError).code).toBe(Code.UNAVAILABLE);
  });

  it("reads a lone '.' target as the service being decidedly unavailable (an empty set)", async () => {
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 1_000 });
    await watcher.ready();
    dns.set([srv(".", 0, 0, 0)]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(watcher.current()).toEqual({ instances: [] });
  });

  it("reports ETIMEOUT and a resolver that never answers as DEADLINE_EXCEEDED", async () => {
    const dns = resolver(dnsError("ETIMEOUT"));
    const first = await instancer({ resolver: dns }).ready();
    expect((first.error as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);

    const hanging = resolver([]);
    hanging.set(() => new Promise<SrvRecord[]>(() => undefined));
    const watcher = instancer({ resolver: hanging, timeout: 2_000 });
    let settled: InstancerState | undefined;
    void watcher.ready().then((s) => {
      settled = s;
    });
    await vi.advanceTimersByTimeAsync(1_999);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(settled?.error).toBeInstanceOf(ServiceError);
    expect((settled?.error as ServiceError | undefined)?.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(settled?.error?.message).toBe(`dns: SRV lookup of ${NAME} failed: no answer within 2000 ms`);
  });

  it("skips malformed records, telling onError", async () => {
    const errors: string[] = [];
    const dns = resolver([
      srv("ok", 1),
      { name: "", port: 1, priority: 10, weight: 1 },
      { name: "badport", port: 70_000, priority: 10, weight: 1 },
      { name: "badweight", port: 1, priority: 10, weight: -1 },
    ]);
    const state = await instancer({ resolver: dns, onError: (e) => errors.push(e.message) }).ready();
    expect(addresses(state)).toEqual(["ok:1"]);
    expect(errors).toEqual([
      `dns: SRV lookup of ${NAME}: skipping a record: no target name`,
      `dns: SRV lookup of ${NAME}: skipping a record: target badport has port 70000`,
      `dns: SRV lookup of ${NAME}: skipping a record: target badweight has weight -1`,
    ]);
  });

  it("tells onError when a listener throws and keeps polling", async () => {
    const errors: string[] = [];
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 1_000, onError: (e) => errors.push(e.message) });
    await watcher.ready();
    watcher.subscribe((s) => {
      if (s.instances.length === 2) throw new Error("listener broke");
    });
    dns.set([srv("a", 1), srv("b", 2)]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(errors).toEqual(["listener broke"]);
    dns.set([srv("c", 3)]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(addresses(watcher.current())).toEqual(["c:3"]);
  });

  it("close() clears the timer, ignores a lookup still in flight, and resolves ready()", async () => {
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 1_000 });
    await watcher.ready();
    expect(vi.getTimerCount()).toBe(1);
    watcher.close();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(dns.calls).toHaveLength(1);

    let finish: (records: SrvRecord[]) => void = () => undefined;
    const slow = resolver([]);
    slow.set(() => new Promise<SrvRecord[]>((resolve) => (finish = resolve)));
    const pending = instancer({ resolver: slow });
    pending.close();
    expect(await pending.ready()).toEqual({ instances: [] });
    finish([srv("late", 1)]);
    await vi.advanceTimersByTimeAsync(0);
    expect(pending.current()).toEqual({ instances: [] });
    expect(vi.getTimerCount()).toBe(0);
  });

  const good: DnsSrvInstancerOptions = { resolver: resolver([]) };
  it.each([
    [
      { ...good, interval: 0 },
      RangeError,
      "createDnsSrvInstancer: interval must be a finite number > 0, got 0",
    ],
    [
      { ...good, timeout: Number.NaN },
      RangeError,
      "createDnsSrvInstancer: timeout must be a finite number > 0, got NaN",
    ],
    // Node fires a longer timer after 1 ms: the poller would look up in a loop.
    [
      { ...good, interval: 2 ** 31 },
      RangeError,
      "createDnsSrvInstancer: interval must be at most 2147483647 ms (24.8 days), got 2147483648",
    ],
    [
      { ...good, interval: 500, minInterval: 1_000 },
      RangeError,
      "createDnsSrvInstancer: minInterval (1000) must not be above interval (500)",
    ],
    [
      { ...good, notFound: "drop" },
      TypeError,
      'createDnsSrvInstancer: notFound must be "keep" or "empty", got "drop"',
    ],
    [{ resolver: {} }, TypeError, "createDnsSrvInstancer: resolver must have a resolveSrv(name) method"],
    [
      { ...good, servers: ["127.0.0.1"] },
      TypeError,
      "createDnsSrvInstancer: give servers or a resolver, not both",
    ],
    [{ servers: [] }, TypeError, "createDnsSrvInstancer: servers must be a non-empty array of addresses"],
    [{ servers: ["not an ip"] }, TypeError, /^createDnsSrvInstancer: servers: /],
  ])("rejects bad options: %j", (options, type, message) => {
    const create = () => createDnsSrvInstancer(NAME, options as DnsSrvInstancerOptions);
    expect(create).toThrow(type);
    expect(create).toThrow(message);
  });

  it("rejects a missing name", () => {
    expect(() => createDnsSrvInstancer("", good)).toThrow(
      new TypeError('createDnsSrvInstancer: name must be a non-empty string, got ""'),
    );
  });
});

describe("createDnsSrvInstancer with its own resolver", () => {
  it("asks the given servers (a closed local port here: the lookup fails, nothing crashes)", async () => {
    vi.useRealTimers();
    const watcher = createDnsSrvInstancer(NAME, { servers: ["127.0.0.1:9"], timeout: 400 });
    created.push(watcher);
    const state = await watcher.ready();
    expect(state.instances).toEqual([]);
    expect(state.error).toBeInstanceOf(ServiceError);
    expect([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED]).toContain((state.error as ServiceError).code);
    expect(state.error?.message).toMatch(new RegExp(`^dns: SRV lookup of ${NAME} failed: `));
  });

  it("does not keep a process alive: its timer is unref'd", () => {
    vi.useRealTimers();
    const dist = new URL("../dist/index.js", import.meta.url).href;
    const script = `
      import { createDnsSrvInstancer } from ${JSON.stringify(dist)};
      const resolver = { resolveSrv: async () => [{ name: "a", port: 1, priority: 0, weight: 1 }] };
      const instancer = createDnsSrvInstancer("x", { resolver, interval: 60000 });
      console.log(JSON.stringify(await instancer.ready()));`;
    const started = Date.now();
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ instances: [{ address: "a:1", weight: 1 }] });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
