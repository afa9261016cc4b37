// The README's example is src/readme-example.ts, verbatim (type-checked and linted with the tests).
// This test checks that, checks the option table against the code, and runs the example unchanged with
// node:dns/promises' Resolver replaced by a fake that answers the example's names (no real DNS).
import { readFileSync } from "node:fs";
import type { DnsAddressInstancerOptions, DnsSrvInstancerOptions } from "@svckit/sd-dns";
import { describe, expect, it, vi } from "vitest";
import { firstBlock, table } from "../../../test/readme-tools.js";

const fake = vi.hoisted(() => {
  const notFound = (syscall: string, name: string) =>
    Object.assign(new Error(`${syscall} ENOTFOUND ${name}`), { code: "ENOTFOUND", syscall, hostname: name });
  const asked: string[] = [];
  class FakeResolver {
    cancel(): void {}
    setServers(): void {}
    async resolveSrv(name: string) {
      asked.push(`SRV ${name}`);
      if (name !== "_http._tcp.users.default.svc.cluster.local") throw notFound("querySrv", name);
      return [
        { name: "users-0.users.default.svc.cluster.local", port: 8080, priority: 0, weight: 10 },
        { name: "users-backup.example.com", port: 8080, priority: 10, weight: 1 },
      ];
    }
    async resolve4(name: string) {
      asked.push(`A ${name}`);
      if (name !== "redis.internal") throw notFound("queryA", name);
      return [{ address: "10.0.0.5", ttl: 30 }];
    }
    async resolve6(name: string) {
      asked.push(`AAAA ${name}`);
      if (name !== "redis.internal") throw notFound("queryAaaa", name);
      return [{ address: "fd00::5", ttl: 30 }];
    }
  }
  return { FakeResolver, asked };
});

vi.mock("node:dns/promises", async (importOriginal) => ({
  ...(await importOriginal<typeof import("node:dns/promises")>()),
  Resolver: fake.FakeResolver,
}));

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const example = readFileSync(new URL("./readme-example.ts", import.meta.url), "utf8");

describe("README", () => {
  it("has src/readme-example.ts as its first ts block, verbatim, under 15 lines", () => {
    expect(firstBlock(readme, "ts")).toBe(example);
    expect(example.trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example (with a fake resolver) to what its comments promise", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import("./readme-example.js");
      expect(log.mock.calls).toEqual([
        [[{ address: "users-0.users.default.svc.cluster.local:8080", weight: 10 }]],
        [[{ address: "10.0.0.5:6379" }, { address: "[fd00::5]:6379" }]],
      ]);
    } finally {
      log.mockRestore();
    }
    expect(fake.asked.sort()).toEqual([
      "A redis.internal",
      "AAAA redis.internal",
      "SRV _http._tcp.users.default.svc.cluster.local",
    ]);
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock(readme, "sh").trim()).toBe("pnpm add @svckit/sd-dns @svckit/sd @svckit/endpoint");
  });

  it("documents every option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof DnsSrvInstancerOptions | keyof DnsAddressInstancerOptions, true> = {
      interval: true,
      minInterval: true,
      timeout: true,
      servers: true,
      notFound: true,
      resolver: true,
      family: true,
      onError: true,
    };
    expect(table(readme, "option").map(([name]) => name)).toEqual(Object.keys(options));
  });

  it("has the sections every package README has", () => {
    for (const heading of ["## Example", "## Errors", "## When to use"]) expect(readme).toContain(heading);
  });
});
