import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { GrpcHealthOptions, HealthHandlerOptions, HealthOptions } from "@svckit/health";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";

const readme = await readFile(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const firstBlock = (lang: string): string => readmeBlock(readme, lang);

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("README", () => {
  it("has an example shorter than 15 lines", () => {
    expect(firstBlock("ts").trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example, which prints 200 and a passing readiness report", async () => {
    const code = firstBlock("ts").replaceAll("8081", String(await freePort()));
    const dir = await mkdtemp(join(tmpdir(), "svckit-health-readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, code);
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(log).toHaveBeenCalledTimes(1);
    expect(log).toHaveBeenCalledWith(200, {
      status: "passing",
      serving: true,
      checks: { db: { status: "passing", durationMs: expect.any(Number) } },
    });
  });

  it("shows the install line with the peer", () => {
    expect(firstBlock("sh").trim()).toBe("pnpm add @svckit/health @svckit/endpoint");
  });

  it("documents every option of each factory and no other", () => {
    // Typed so that adding or removing an option fails to compile until these lists (and the README) follow.
    const health: Record<keyof HealthOptions, true> = {
      liveness: true,
      readiness: true,
      timeout: true,
      serving: true,
    };
    const handler: Record<keyof HealthHandlerOptions, true> = {
      livenessPath: true,
      readinessPath: true,
      warningStatus: true,
    };
    const grpc: Record<keyof GrpcHealthOptions, true> = { services: true, watchInterval: true };
    const documented = (heading: string): string[] =>
      readmeTable(readme, "option", heading)
        .map(([name]) => name as string)
        .sort();
    expect(documented("## Checks")).toEqual(Object.keys(health).sort());
    expect(documented("## HTTP")).toEqual(Object.keys(handler).sort());
    expect(documented("## gRPC")).toEqual(Object.keys(grpc).sort());
  });

  it("maps each status to the HTTP code the handler answers", () => {
    const rows = readmeTable(readme, "status", "## Checks").map(([status, , httpCode, grpc]) => [
      status,
      httpCode,
      grpc,
    ]);
    expect(rows).toEqual([
      ["passing", "200", "SERVING"],
      ["warning", "200, or warningStatus (e.g. 429)", "SERVING"],
      ["critical", "503", "NOT_SERVING"],
    ]);
  });
});
