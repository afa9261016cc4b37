// The README's example is src/readme-example.ts, verbatim (type-checked and linted with the tests).
// This test checks that, checks the option tables against the code, and runs the example against the
// FAKE Consul agent (test-helpers.ts), with the example's URL swapped for the fake's.
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConsulInstancerOptions, ConsulRegistrarOptions } from "@svckit/sd-consul";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { firstBlock, table } from "../../../test/readme-tools.js";
import { type FakeConsul, startFakeConsul } from "./test-helpers.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const example = readFileSync(new URL("./readme-example.ts", import.meta.url), "utf8");

describe("README", () => {
  it("has src/readme-example.ts as its first ts block, verbatim, under 15 lines", () => {
    expect(firstBlock(readme, "ts")).toBe(example);
    expect(example.trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock(readme, "sh").trim()).toBe("pnpm add @svckit/sd-consul @svckit/sd @svckit/endpoint");
  });

  it("documents every option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const registrar: Record<keyof ConsulRegistrarOptions, true> = {
      url: true,
      token: true,
      fetch: true,
      requestTimeout: true,
      name: true,
      id: true,
      address: true,
      port: true,
      tags: true,
      meta: true,
      weights: true,
      check: true,
      onError: true,
    };
    const instancer: Record<keyof ConsulInstancerOptions, true> = {
      url: true,
      token: true,
      fetch: true,
      requestTimeout: true,
      service: true,
      tags: true,
      passingOnly: true,
      datacenter: true,
      wait: true,
      minBackoff: true,
      maxBackoff: true,
      onError: true,
    };
    expect(table(readme, "option", "## Registrar").map(([name]) => name)).toEqual(Object.keys(registrar));
    expect(table(readme, "option", "## Instancer").map(([name]) => name)).toEqual(Object.keys(instancer));
  });

  it("has the sections every package README has, and says the tests use a fake", () => {
    for (const heading of ["## Example", "## Errors", "## Testing", "## When to use"]) {
      expect(readme).toContain(heading);
    }
    expect(readme).toContain("**fake** Consul");
  });
});

describe("README example against the fake Consul agent", () => {
  let consul: FakeConsul;
  let dir: string;

  beforeAll(async () => {
    consul = await startFakeConsul();
    dir = await mkdtemp(join(tmpdir(), "svckit-sd-consul-readme-"));
  });

  afterAll(async () => {
    await consul?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("runs to what its comments promise", async () => {
    expect(example).toContain('"http://127.0.0.1:8500"');
    const file = join(dir, "example.ts");
    await writeFile(file, example.replace('"http://127.0.0.1:8500"', JSON.stringify(consul.url)));
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(file);
      expect(log.mock.calls).toEqual([[[{ address: "10.0.0.7:8080", weight: 1 }]]]);
    } finally {
      log.mockRestore();
    }
    const registration = consul.requests.find((r) => r.path === "/v1/agent/service/register");
    expect(registration?.body).toMatchObject({
      Name: "users",
      Tags: ["v2"],
      Check: { TTL: "15s", Status: "passing", CheckID: "service:users-10.0.0.7-8080" },
    });
    expect(consul.requests.at(-1)?.path).toBe("/v1/agent/service/deregister/users-10.0.0.7-8080");
    expect(consul.services.size).toBe(0);
  });
});
