import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, type CodeName, codeToHttpStatus } from "@svckit/endpoint";
import type { RateLimiterOptions, RedisRateLimitOptions, RejectReason } from "@svckit/ratelimit";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";

const readme = await readFile(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const firstBlock = (lang: string): string => readmeBlock(readme, lang);
const table = (firstHeader: string, heading?: string): string[][] =>
  readmeTable(readme, firstHeader, heading);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("README", () => {
  it("has an example shorter than 15 lines", () => {
    expect(firstBlock("ts").trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example, which prints the refusal's code and retry-after", async () => {
    const dir = await mkdtemp(join(tmpdir(), "svckit-ratelimit-readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, firstBlock("ts"));
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(log).toHaveBeenCalledTimes(1);
    expect(log).toHaveBeenCalledWith("RESOURCE_EXHAUSTED", "1");
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock("sh").trim()).toBe("pnpm add @svckit/ratelimit @svckit/endpoint bottleneck");
  });

  it("documents every option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof RateLimiterOptions, true> = {
      name: true,
      limit: true,
      interval: true,
      maxConcurrent: true,
      mode: true,
      key: true,
      maxKeys: true,
      idleTimeout: true,
      maxQueue: true,
      onReject: true,
      redis: true,
    };
    const documented = table("option", "## Options").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("documents every Redis option and no other", () => {
    const options: Record<keyof RedisRateLimitOptions, true> = {
      clientOptions: true,
      client: true,
      connection: true,
      failMode: true,
      timeout: true,
      slotTimeout: true,
      onError: true,
    };
    const documented = table("`redis` option", "## Redis mode").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("gives each error's HTTP status as codeToHttpStatus does", () => {
    const rows = table("situation", "## Errors");
    expect(rows.length).toBeGreaterThan(5);
    for (const [situation, code, status] of rows) {
      if (code === "its own") continue;
      expect(status, situation).toBe(String(codeToHttpStatus[Code[code as CodeName]]));
    }
  });

  it("lists every onReject reason", () => {
    const reasons: Record<RejectReason, true> = {
      limit: true,
      concurrency: true,
      queue: true,
      deadline: true,
      cancelled: true,
      keys: true,
      unavailable: true,
    };
    const line = readme.split("\n").find((l) => l.startsWith("`onReject` reasons:")) ?? "";
    const listed = [...line.matchAll(/`([a-z]+)`/g)].map((m) => m[1]).filter((r) => r !== "onReject");
    expect(listed.sort()).toEqual(Object.keys(reasons).sort());
  });
});
