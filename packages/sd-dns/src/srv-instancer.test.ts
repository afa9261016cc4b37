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
      { name: 7 as unknown as string, port: 1, priority: 10, weight: 1 },
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

describe("createDnsSrvInstancer (review regressions)", () => {
  it.each([
    ["an answer", [srv("a", 1)], (s: InstancerState) => s.instances.length > 0],
    ["a failure", dnsError("ESERVFAIL"), (s: InstancerState) => s.error !== undefined],
  ] satisfies [string, SrvRecord[] | Error, (s: InstancerState) => boolean][])(
    "a subscriber that closes on %s stops polling: no lookup and no timer after close()",
    async (_what, answer, when) => {
      const dns = resolver(answer);
      const watcher = instancer({ resolver: dns, interval: 1_000 });
      watcher.subscribe((s) => {
        if (when(s)) watcher.close();
      });
      await vi.advanceTimersByTimeAsync(0);
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(5_000);
      expect(dns.calls).toHaveLength(1);
    },
  );

  it("keeps the last set with INVALID_ARGUMENT when every record of an answer is malformed", async () => {
    const errors: string[] = [];
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 5_000, onError: (e) => errors.push(e.message) });
    await watcher.ready();
    dns.set([srv("a", 70_000), srv("b", 1, 10, -1)]);
    await vi.advanceTimersByTimeAsync(5_000);
    const state = watcher.current();
    expect(state.instances).toEqual([{ address: "a:1", weight: 5 }]);
    expect((state.error as ServiceError).code).toBe(Code.INVALID_ARGUMENT);
    expect(state.error?.message).toBe(
      `dns: SRV lookup of ${NAME} failed: every record of the answer is malformed (2 skipped)`,
    );
    expect(errors).toEqual([
      `dns: SRV lookup of ${NAME}: skipping a record: target a has port 70000`,
      `dns: SRV lookup of ${NAME}: skipping a record: target b has weight -1`,
    ]);
    // A failure: retried after minInterval (1 s), not the interval.
    dns.set([srv("c", 3)]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(watcher.current()).toEqual({ instances: [{ address: "c:3", weight: 5 }] });
  });

  it("takes an empty answer from a custom resolver as NODATA: kept by default, emptied with notFound: empty", async () => {
    const dns = resolver([srv("a", 1)]);
    const keep = instancer({ resolver: dns, interval: 1_000 });
    const empty = instancer({ resolver: dns, interval: 1_000, notFound: "empty" });
    await keep.ready();
    await empty.ready();
    dns.set([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(addresses(keep.current())).toEqual(["a:1"]);
    expect((keep.current().error as ServiceError).code).toBe(Code.NOT_FOUND);
    expect(keep.current().error?.message).toBe(
      `dns: SRV lookup of ${NAME} failed: the resolver answered with no records`,
    );
    expect(empty.current()).toEqual({ instances: [] });
  });

  it('reads "." as node reports it (target "", port 0) as no instances, without an error', async () => {
    const errors: string[] = [];
    const dns = resolver([srv("a", 1)]);
    const watcher = instancer({ resolver: dns, interval: 1_000, onError: (e) => errors.push(e.message) });
    await watcher.ready();
    dns.set([srv("", 0, 0, 0)]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(watcher.current()).toEqual({ instances: [] });
    expect(errors).toEqual([]);
  });

  it("starts no lookup while the last one is still pending after its timeout, and aborts its signal", async () => {
    const signals: (AbortSignal | undefined)[] = [];
    const hanging = {
      resolveSrv: (_name: string, options?: { signal?: AbortSignal }) => {
        signals.push(options?.signal);
        return new Promise<SrvRecord[]>(() => undefined);
      },
    };
    const watcher = instancer({ resolver: hanging, interval: 1_000, minInterval: 100, timeout: 500 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(signals).toHaveLength(1);
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[0]?.reason).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect((watcher.current().error as ServiceError).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("starts the next lookup once a late lookup settles, never two at a time", async () => {
    let inFlight = 0;
    let most = 0;
    let calls = 0;
    let finish: () => void = () => undefined;
    const late = {
      resolveSrv: async (): Promise<SrvRecord[]> => {
        calls += 1;
        inFlight += 1;
        most = Math.max(most, inFlight);
        try {
          if (calls === 1) await new Promise<void>((resolve) => (finish = resolve)); // ignores the signal
          return [srv(`a${calls}`, 1)];
        } finally {
          inFlight -= 1;
        }
      },
    };
    const watcher = instancer({ resolver: late, interval: 1_000, minInterval: 100, timeout: 500 });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toBe(1);
    finish(); // its answer comes too late to count; the next lookup starts at once
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(2);
    expect(addresses(watcher.current())).toEqual(["a2:1"]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toBe(3);
    expect(most).toBe(1);
  });

  it("keeps polling after a timeout when the resolver honours the signal", async () => {
    const calls: number[] = [];
    const honest = {
      resolveSrv: (_name: string, options?: { signal?: AbortSignal }) => {
        calls.push(Date.now());
        return new Promise<SrvRecord[]>((_resolve, reject) => {
          options?.signal?.addEventListener("abort", () => reject(new Error("aborted")));
        });
      },
    };
    const start = Date.now();
    instancer({ resolver: honest, interval: 1_000, minInterval: 100, timeout: 500 });
    await vi.advanceTimersByTimeAsync(2_000);
    // Timeouts at 500, 1100, 1800 ms; retries 100 and 200 ms after them.
    expect(calls.map((t) => t - start)).toEqual([0, 600, 1_300]);
  });

  it("close() aborts the lookup in flight and clears its timeout timer at once", async () => {
    let signal: AbortSignal | undefined;
    const hanging = {
      resolveSrv: (_name: string, options?: { signal?: AbortSignal }) => {
        signal = options?.signal;
        return new Promise<SrvRecord[]>(() => undefined);
      },
    };
    const watcher = instancer({ resolver: hanging, timeout: 2_000 });
    expect(vi.getTimerCount()).toBe(1);
    watcher.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toMatchObject({ code: Code.CANCELLED });
    expect(await watcher.ready()).toEqual({ instances: [] });
  });

  it("brackets an IPv6-literal target", async () => {
    const state = await instancer({
      resolver: resolver([srv("fd00::5", 8080), srv("fd00::6.", 8080)]),
    }).ready();
    expect(addresses(state)).toEqual(["[fd00::5]:8080", "[fd00::6]:8080"]);
  });

  it("merges records for the same target and port (any case, trailing dot) by summing their weights", async () => {
    const state = await instancer({
      resolver: resolver([
        srv("a.x", 80, 10, 1),
        srv("b.x", 80, 10, 2),
        srv("a.x.", 80, 10, 9),
        srv("A.X", 80, 10, 1),
        srv("a.x", 81, 10, 4),
      ]),
    }).ready();
    expect(state).toEqual({
      instances: [
        { address: "a.x:80", weight: 11 },
        { address: "b.x:80", weight: 2 },
        { address: "a.x:81", weight: 4 },
      ],
    });
  });

  it("skips a target on port 0, telling onError", async () => {
    const errors: string[] = [];
    const dns = resolver([srv("a.x", 0), srv("b.x", 1)]);
    const state = await instancer({ resolver: dns, onError: (e) => errors.push(e.message) }).ready();
    expect(addresses(state)).toEqual(["b.x:1"]);
    expect(errors).toEqual([`dns: SRV lookup of ${NAME}: skipping a record: target a.x has port 0`]);
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
