import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { App, AppEvent, AppOptions } from "@svckit/app";
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

  it("runs the example: it serves, and app.stop() makes run() return after the stop events", async () => {
    const example = firstBlock("ts");
    const run = "await app.run();";
    expect(example.split(run)).toHaveLength(2);
    const port = await freePort();
    // The example as written, on a free port, with the app and its run() promise handed out.
    const code = example
      .replaceAll("8080", String(port))
      .replace(run, "export const running = app.run();\nexport { app };");
    const dir = await mkdtemp(join(tmpdir(), "svckit-app-readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, code);
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      const { app, running } = (await import(/* @vite-ignore */ file)) as {
        app: App;
        running: Promise<void>;
      };
      await vi.waitFor(() => expect(app.ready).toBe(true));
      const res = await fetch(`http://127.0.0.1:${port}/`);
      expect(await res.text()).toBe("hello\n");
      await app.stop();
      await running;
      expect(log.mock.calls.map(([type]) => type)).toEqual(["started", "stopping", "draining", "stopped"]);
      expect(app.info.endpoints).toEqual([`http://127.0.0.1:${port}`]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("shows the install line with the peer", () => {
    expect(firstBlock("sh").trim()).toBe("pnpm add @svckit/app @svckit/endpoint");
  });

  it("documents every option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof AppOptions, true> = {
      id: true,
      name: true,
      version: true,
      metadata: true,
      servers: true,
      registrar: true,
      readiness: true,
      beforeStart: true,
      afterStart: true,
      beforeStop: true,
      afterStop: true,
      signals: true,
      drainTimeout: true,
      stopTimeout: true,
      deregisterDelay: true,
      exit: true,
      onEvent: true,
    };
    const documented = readmeTable(readme, "option", "## Options").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("names every event onEvent is told", () => {
    const events: Record<AppEvent["type"], true> = {
      started: true,
      stopping: true,
      deregistered: true,
      draining: true,
      "drain-timeout": true,
      stopped: true,
      error: true,
      exit: true,
    };
    const row = readmeTable(readme, "option", "## Options").find(([name]) => name === "onEvent");
    for (const type of Object.keys(events)) expect(row?.[2]).toContain(type);
  });

  it("has an error row for each code the app uses", () => {
    const codes = new Set(readmeTable(readme, "situation", "## Errors").map(([, code]) => code));
    expect([...codes].sort()).toEqual(
      [
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "FAILED_PRECONDITION",
        "INTERNAL",
        "INVALID_ARGUMENT",
        "UNAVAILABLE",
      ].sort(),
    );
  });
});
