// The README's example is src/readme-example.ts, verbatim (type-checked and linted with the tests).
// This test checks that, checks the option tables against the code, and runs the example against a
// real etcd it starts (test/support/etcd-server.ts), with the example's URL swapped for that etcd's.
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEtcdClient, type EtcdInstancerOptions, type EtcdRegistrarOptions } from "@svckit/sd-etcd";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { firstBlock, table } from "../../../test/readme-tools.js";
import { type EtcdServer, skipWithoutEtcd, startEtcd } from "../../../test/support/etcd-server.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const example = readFileSync(new URL("./readme-example.ts", import.meta.url), "utf8");
const skip = skipWithoutEtcd("packages/sd-etcd/src/readme.test.ts");

describe("README", () => {
  it("has src/readme-example.ts as its first ts block, verbatim, under 15 lines", () => {
    expect(firstBlock(readme, "ts")).toBe(example);
    expect(example.trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock(readme, "sh").trim()).toBe(
      "pnpm add @svckit/sd-etcd @svckit/sd @svckit/endpoint etcd3",
    );
  });

  it("documents every option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const registrar: Record<keyof EtcdRegistrarOptions, true> = {
      prefix: true,
      id: true,
      instance: true,
      ttl: true,
      encoding: true,
      requestTimeout: true,
      onError: true,
    };
    const instancer: Record<keyof EtcdInstancerOptions, true> = {
      prefix: true,
      requestTimeout: true,
      onError: true,
    };
    expect(table(readme, "`createEtcdRegistrar` option").map(([name]) => name)).toEqual(
      Object.keys(registrar),
    );
    expect(table(readme, "`createEtcdInstancer` option").map(([name]) => name)).toEqual(
      Object.keys(instancer),
    );
  });

  it("has the sections every package README has", () => {
    for (const heading of ["## Example", "## Key layout", "## Errors", "## When to use"]) {
      expect(readme).toContain(heading);
    }
  });
});

describe.skipIf(skip)("README example against a real etcd", () => {
  let etcd: EtcdServer;
  let dir: string;

  beforeAll(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), "svckit-sd-etcd-readme-"));
  });

  afterAll(async () => {
    await etcd?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("runs to what its comments promise", async () => {
    expect(example).toContain('"http://127.0.0.1:2379"');
    const file = join(dir, "example.ts");
    await writeFile(file, example.replace('"http://127.0.0.1:2379"', JSON.stringify(etcd.url)));
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(file);
      expect(log.mock.calls).toEqual([[[{ address: "10.0.0.7:8080", metadata: { zone: "eu-1" } }]]]);
    } finally {
      log.mockRestore();
    }
    const client = createEtcdClient(etcd.url);
    try {
      expect(await client.getAll().prefix("/services/users/").keys()).toEqual([]);
    } finally {
      client.close();
    }
  });
});
