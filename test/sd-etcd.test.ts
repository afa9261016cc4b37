// @svckit/sd-etcd against a real etcd started by the test (test/support/etcd-server.ts): registration
// under a lease, a watching instancer seeing instances come and go, go-kit's plain-address values, a
// registering process that is killed (its key goes when the lease runs out), a lost lease, and an
// etcd restart (the instancer keeps its last set and reports the error, then resumes watching).
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Code, ServiceError } from "@svckit/endpoint";
import type { InstancerState } from "@svckit/sd";
import {
  createEtcdClient,
  createEtcdInstancer,
  createEtcdRegistrar,
  type EtcdInstancer,
} from "@svckit/sd-etcd";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type EtcdServer, skipWithoutEtcd, startEtcd } from "./support/etcd-server.js";

const skip = skipWithoutEtcd("test/sd-etcd.test.ts");
const fixture = fileURLToPath(new URL("./fixtures/sd-etcd-register.mjs", import.meta.url));

type Client = ReturnType<typeof createEtcdClient>;

let counter = 0;
/** A key prefix no other test uses. */
const uniquePrefix = (label: string): string => `/svckit-test/${label}-${process.pid}-${++counter}/`;
const addresses = (state: InstancerState): string[] => state.instances.map((i) => i.address).sort();

/** Calls `probe` every 25 ms until it stops throwing, for at most `timeout` ms. */
function eventually<T>(probe: () => T | Promise<T>, timeout = 5_000): Promise<T> {
  return vi.waitFor(probe, { timeout, interval: 25 });
}

/** A child process running test/fixtures/sd-etcd-register.mjs, and its output lines. */
interface Registering {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const children = new Set<ChildProcess>();

function spawnRegistering(config: Record<string, unknown>): Registering {
  const child = spawn(process.execPath, [fixture, JSON.stringify(config)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const lines: string[] = [];
  let stderr = "";
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => lines.push(line));
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, lines, exited, stderr: () => stderr };
}

describe.skipIf(skip)("sd-etcd with a real etcd", () => {
  let etcd: EtcdServer;
  let client: Client;
  const closers: (() => unknown)[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    client = createEtcdClient(etcd.url);
  });

  afterEach(async () => {
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, "SIGKILL");
      }
    }
    for (const close of closers.splice(0).reverse()) await close();
    await etcd.start(); // in case a test left it halted
  });

  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  function instancer(prefix: string, onError?: (error: Error) => void, on: Client = client): EtcdInstancer {
    const created = createEtcdInstancer(on, { prefix, requestTimeout: 2_000, onError });
    closers.push(() => created.close());
    return created;
  }

  it("registers under a lease, is seen by a watcher, and deregisters", async () => {
    const prefix = uniquePrefix("register");
    const watcher = instancer(prefix);
    expect((await watcher.ready()).instances).toEqual([]);
    const seen: string[][] = [];
    watcher.subscribe((state) => seen.push(addresses(state)));

    const registrar = createEtcdRegistrar(client, {
      prefix,
      id: "users-1",
      instance: { address: "10.0.0.7:8080", metadata: { zone: "eu-1" }, weight: 2 },
      ttl: 5,
    });
    closers.push(() => registrar.deregister());
    expect(registrar.key).toBe(`${prefix}users-1`);
    expect(registrar.registered).toBe(false);
    await registrar.register();
    expect(registrar.registered).toBe(true);
    await registrar.register(); // a second register is a no-op

    const stored = await client.get(`${prefix}users-1`).exec();
    expect(stored.kvs).toHaveLength(1);
    expect(JSON.parse(stored.kvs[0]?.value.toString() ?? "")).toEqual({
      address: "10.0.0.7:8080",
      metadata: { zone: "eu-1" },
      weight: 2,
    });
    expect(stored.kvs[0]?.lease).not.toBe("0");
    await eventually(() =>
      expect(watcher.current().instances).toEqual([
        { address: "10.0.0.7:8080", metadata: { zone: "eu-1" }, weight: 2 },
      ]),
    );

    await registrar.deregister();
    expect(registrar.registered).toBe(false);
    expect((await client.get(`${prefix}users-1`).exec()).kvs).toEqual([]);
    await eventually(() => expect(watcher.current().instances).toEqual([]));
    expect(watcher.current().error).toBeUndefined();
    expect(seen).toEqual([[], ["10.0.0.7:8080"], []]);
    await registrar.deregister(); // a second deregister is a no-op
  });

  it("sees instances added and removed by others, reads go-kit's plain addresses, skips bad values", async () => {
    const prefix = uniquePrefix("watch");
    await client.put(`${prefix}a`).value("10.0.0.1:80");
    const errors: string[] = [];
    const watcher = instancer(prefix, (error) => errors.push(error.message));
    expect(addresses(await watcher.ready())).toEqual(["10.0.0.1:80"]);

    await client.put(`${prefix}b`).value(JSON.stringify({ address: "10.0.0.2:80", weight: 3 }));
    await client.put(`${prefix}c`).value('"10.0.0.3:80"');
    await eventually(() =>
      expect(addresses(watcher.current())).toEqual(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]),
    );
    expect(watcher.current().instances.find((i) => i.address === "10.0.0.2:80")?.weight).toBe(3);

    await client.put(`${prefix}bad-json`).value("{not json");
    await client.put(`${prefix}bad-weight`).value(JSON.stringify({ address: "10.0.0.9:80", weight: -1 }));
    await client.put(`${prefix}empty`).value("");
    await client.delete().key(`${prefix}a`);
    await eventually(() => expect(addresses(watcher.current())).toEqual(["10.0.0.2:80", "10.0.0.3:80"]));
    await eventually(() =>
      expect(errors).toEqual(
        expect.arrayContaining([
          expect.stringMatching(
            new RegExp(`^etcd instancer: skipping ${prefix}bad-json: value is malformed JSON: `),
          ),
          `etcd instancer: skipping ${prefix}bad-weight: value: weight of instance 10.0.0.9:80 must be a finite number >= 0, got -1`,
          `etcd instancer: skipping ${prefix}empty: value is empty: expected an address or a JSON instance`,
        ]),
      ),
    );
    expect(watcher.current().error).toBeUndefined();

    // Keys outside the prefix are not instances.
    await client.put(`${prefix.slice(0, -1)}x`).value("10.0.0.8:80");
    await client.delete().prefix(prefix);
    await eventually(() => expect(watcher.current().instances).toEqual([]));
  });

  it("tells onError when a listener throws, and keeps going", async () => {
    const prefix = uniquePrefix("listener");
    const errors: Error[] = [];
    const watcher = instancer(prefix, (error) => errors.push(error));
    await watcher.ready();
    const seen: string[][] = [];
    watcher.subscribe((state) => {
      if (state.instances.length === 1) throw new Error("listener broke");
    });
    watcher.subscribe((state) => seen.push(addresses(state)));
    await client.put(`${prefix}1`).value("10.0.9.1:80");
    await eventually(() => expect(errors.map((e) => e.message)).toEqual(["listener broke"]));
    await client.put(`${prefix}2`).value("10.0.9.2:80");
    await eventually(() => expect(seen).toEqual([[], ["10.0.9.1:80"], ["10.0.9.1:80", "10.0.9.2:80"]]));
  });

  it("writes a plain address with encoding: address, which go-kit's instancer reads", async () => {
    const prefix = uniquePrefix("plain");
    const registrar = createEtcdRegistrar(client, {
      prefix,
      id: "1",
      instance: { address: "10.1.0.1:8080", weight: 5 },
      encoding: "address",
      ttl: 5,
    });
    closers.push(() => registrar.deregister());
    await registrar.register();
    expect(registrar.value).toBe("10.1.0.1:8080");
    expect(await client.get(`${prefix}1`).string()).toBe("10.1.0.1:8080");
    expect((await instancer(prefix).ready()).instances).toEqual([{ address: "10.1.0.1:8080" }]);
  });

  it("a killed registering process: its key is gone once the lease runs out", async () => {
    const prefix = uniquePrefix("killed");
    const watcher = instancer(prefix);
    await watcher.ready();
    const proc = spawnRegistering({ url: etcd.url, prefix, id: "worker", address: "10.2.0.1:80", ttl: 2 });
    await eventually(() => expect(proc.lines).toContain("registered"), 8_000);
    await eventually(() => expect(addresses(watcher.current())).toEqual(["10.2.0.1:80"]));
    expect(watcher.current().instances[0]?.metadata).toEqual({ pid: String(proc.child.pid) });

    const killedAt = Date.now();
    process.kill(proc.child.pid ?? -1, "SIGKILL");
    expect((await proc.exited).signal).toBe("SIGKILL");
    // Still there right after the kill: only the lease's TTL removes it.
    expect((await client.get(`${prefix}worker`).exec()).kvs).toHaveLength(1);
    await eventually(() => expect(watcher.current().instances).toEqual([]), 6_000);
    const gone = Date.now() - killedAt;
    expect(gone).toBeGreaterThanOrEqual(1_000);
    expect(gone).toBeLessThan(5_000);
    expect((await client.get(`${prefix}worker`).exec()).kvs).toEqual([]);
    expect(watcher.current().error).toBeUndefined();
  });

  it("a process stopped with SIGTERM deregisters at once and exits by itself", async () => {
    const prefix = uniquePrefix("sigterm");
    const watcher = instancer(prefix);
    const proc = spawnRegistering({ url: etcd.url, prefix, id: "w", address: "10.3.0.1:80", ttl: 30 });
    await eventually(() => expect(proc.lines).toContain("registered"), 8_000);
    await eventually(() => expect(addresses(watcher.current())).toEqual(["10.3.0.1:80"]));
    process.kill(proc.child.pid ?? -1, "SIGTERM");
    const exit = await proc.exited;
    expect(proc.stderr()).toBe("");
    expect(exit).toEqual({ code: 0, signal: null });
    expect(proc.lines).toEqual(["registered", "deregistered"]);
    // Gone long before the 30 s TTL.
    await eventually(() => expect(watcher.current().instances).toEqual([]), 2_000);
  });

  it("registers again after its lease is lost (revoked behind its back)", async () => {
    const prefix = uniquePrefix("lost");
    const errors: ServiceError[] = [];
    const registrar = createEtcdRegistrar(client, {
      prefix,
      id: "r",
      instance: "10.4.0.1:80",
      ttl: 3,
      onError: (error) => errors.push(error),
    });
    closers.push(() => registrar.deregister());
    await registrar.register();
    const watcher = instancer(prefix);
    await eventually(() => expect(addresses(watcher.current())).toEqual(["10.4.0.1:80"]));
    const seen: string[][] = [];
    watcher.subscribe((state) => seen.push(addresses(state)));

    const lease = (await client.get(`${prefix}r`).exec()).kvs[0]?.lease ?? "0";
    await client.leaseClient.leaseRevoke({ ID: lease });
    await eventually(() => expect(seen).toContainEqual([]));
    await eventually(() => expect(registrar.registered).toBe(true), 6_000);
    await eventually(() => expect(addresses(watcher.current())).toEqual(["10.4.0.1:80"]));
    const newLease = (await client.get(`${prefix}r`).exec()).kvs[0]?.lease;
    expect(newLease).not.toBe(lease);
    expect(errors[0]).toBeInstanceOf(ServiceError);
    expect(errors[0]?.code).toBe(Code.UNAVAILABLE);
    expect(errors[0]?.message).toMatch(
      new RegExp(`^etcd registrar: lost the lease of ${prefix}r \\(.+\\); registering it again$`),
    );
  });

  it("keeps the last set while etcd restarts, reports the error, and resumes watching after", async () => {
    const prefix = uniquePrefix("restart");
    const registrar = createEtcdRegistrar(client, { prefix, id: "kept", instance: "10.5.0.1:80", ttl: 10 });
    closers.push(() => registrar.deregister());
    await registrar.register();
    // The instancer has a client of its own, as a separate service would.
    const other = createEtcdClient(etcd.url);
    closers.push(() => other.close());
    const watcher = instancer(prefix, undefined, other);
    await eventually(() => expect(addresses(watcher.current())).toEqual(["10.5.0.1:80"]));
    const states: InstancerState[] = [];
    watcher.subscribe((state) => states.push(state));

    await etcd.halt();
    await eventually(() => expect(watcher.current().error).toBeInstanceOf(ServiceError));
    const down = watcher.current();
    expect(addresses(down)).toEqual(["10.5.0.1:80"]);
    expect((down.error as ServiceError).code).toBe(Code.UNAVAILABLE);
    expect(down.error?.message).toMatch(new RegExp(`^etcd instancer: watch on ${prefix} lost: `));

    await etcd.start();
    // The lease outlived the short outage, so the registered key is still there; a key added after
    // the restart shows the watch resumed.
    await client.put(`${prefix}after`).value("10.5.0.2:80");
    await eventually(
      () => expect(addresses(watcher.current())).toEqual(["10.5.0.1:80", "10.5.0.2:80"]),
      10_000,
    );
    expect(watcher.current().error).toBeUndefined();
    // Never flapped to empty in between.
    expect(states.every((state) => state.instances.length > 0)).toBe(true);
    await client.delete().key(`${prefix}after`);
    await eventually(() => expect(addresses(watcher.current())).toEqual(["10.5.0.1:80"]));
  }, 15_000);

  it("reports an unreachable etcd: register rejects, ready resolves with the error, nothing crashes", async () => {
    const dead = createEtcdClient("http://127.0.0.1:1");
    closers.push(() => dead.close());
    const registrar = createEtcdRegistrar(dead, {
      prefix: "/dead/",
      id: "1",
      instance: "10.6.0.1:80",
      requestTimeout: 500,
    });
    const error = await registrar.register().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ServiceError);
    expect([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED]).toContain((error as ServiceError).code);
    expect((error as ServiceError).message).toMatch(/^etcd registrar: cannot register \/dead\/1: /);
    expect(registrar.registered).toBe(false);
    await registrar.deregister(); // nothing to revoke

    const watcher = instancer("/dead/", undefined, dead);
    const state = await watcher.ready();
    expect(state.instances).toEqual([]);
    expect(state.error).toBeInstanceOf(ServiceError);
    expect(state.error?.message).toMatch(/^etcd instancer: (cannot list \/dead\/|watch on \/dead\/ lost): /);
    watcher.close();
    expect(await watcher.ready()).toBe(state);
  });
});
