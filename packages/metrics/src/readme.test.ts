import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createContext } from "@svckit/endpoint";
import {
  createMetrics,
  defaultBuckets,
  type MetricsMiddlewareOptions,
  type MetricsOptions,
} from "@svckit/metrics";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";

const readme = await readFile(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const firstBlock = (lang: string): string => readmeBlock(readme, lang);
const table = (firstHeader: string, heading?: string): string[][] =>
  readmeTable(readme, firstHeader, heading);

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

  it("runs the example, which prints the request counter line", async () => {
    const code = firstBlock("ts").replaceAll("8080", String(await freePort()));
    const dir = await mkdtemp(join(tmpdir(), "svckit-metrics-readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, code);
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const printed = 'svckit_requests_total{endpoint="sum",kind="server",transport="http",code="OK"} 1';
    expect(log.mock.calls).toEqual([[printed]]);
    expect(readme).toContain(`It prints \`${printed}\`.`);
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock("sh").trim()).toBe("pnpm add @svckit/metrics @svckit/endpoint prom-client");
  });

  it("lists every metric with its type and labels, as exported", async () => {
    const metrics = createMetrics();
    await metrics.middleware({ name: "sum" })(async () => 1)(createContext(), {});
    metrics.observeBreaker({ name: "b", state: "closed", subscribe: () => () => undefined });
    metrics.recordRateLimitRejection({ limiter: "l" });
    const exported = (await metrics.registry.getMetricsAsJSON()).map((m) => [
      m.name,
      m.type,
      (metrics.registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames.join(", "),
    ]);
    // The transitions counter has no series until a breaker changes state, but it is registered.
    const documented = table("metric", "## What it records").map(([name, type, labels]) => [
      name,
      type,
      labels,
    ]);
    expect(documented.sort()).toEqual(exported.sort());
  });

  it("documents every createMetrics option and no other, with the default buckets", () => {
    const options: Record<keyof MetricsOptions, true> = { registry: true, prefix: true, buckets: true };
    const rows = table("option", "## `createMetrics");
    expect(rows.map(([name]) => name).sort()).toEqual(Object.keys(options).sort());
    const buckets = rows.find(([name]) => name === "buckets")?.[1];
    expect(buckets).toBe(defaultBuckets.join(", "));
  });

  it("documents every middleware option and no other", () => {
    const options: Record<keyof MetricsMiddlewareOptions, true> = { name: true, kind: true, transport: true };
    const rows = table("option", "## `metrics.middleware");
    expect(rows.map(([name]) => name).sort()).toEqual(Object.keys(options).sort());
  });

  it("quotes the errors as thrown", () => {
    const messages = table("situation", "## Errors").map(([, what]) => what as string);
    const thrown = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        return `${(err as Error).constructor.name}: ${(err as Error).message}`;
      }
      return "nothing thrown";
    };
    const documented = (message: string): boolean => messages.some((m) => m.startsWith(message));
    expect(messages).toContain(thrown(() => createMetrics({ prefix: "9x" })));
    expect(documented(thrown(() => createMetrics().middleware({ name: "" })))).toBe(true);
    expect(documented(thrown(() => createMetrics({ buckets: [2, 1] })))).toBe(true);
    const metrics = createMetrics();
    const breaker = { name: "users", state: "closed" as const, subscribe: () => () => undefined };
    metrics.observeBreaker(breaker);
    expect(messages).toContain(thrown(() => metrics.observeBreaker(breaker)));
  });
});
