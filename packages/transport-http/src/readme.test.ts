import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, type CodeName, codeToHttpStatus } from "@svckit/endpoint";
import type { HttpClientOptions, HttpServerOptions } from "@svckit/transport-http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";
import { freePort } from "./test-helpers.js";

const readmePath = fileURLToPath(new URL("../README.md", import.meta.url));
const readme = await readFile(readmePath, "utf8");

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

  it("runs the example, which prints { v: 3 }", async () => {
    // The example as written, on a free port instead of 8080.
    const code = firstBlock("ts").replaceAll("8080", String(await freePort()));
    const dir = await mkdtemp(join(tmpdir(), "svckit-readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, code);
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(log).toHaveBeenCalledTimes(1);
    expect(log).toHaveBeenCalledWith({ v: 3 });
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock("sh").trim()).toBe(
      "pnpm add @svckit/transport-http @svckit/endpoint @svckit/codec-json",
    );
  });

  it("lists the status of every code as codeToHttpStatus does", () => {
    const documented = Object.fromEntries(table("code").map(([code, status]) => [code, Number(status)]));
    const actual = Object.fromEntries(
      (Object.keys(Code) as CodeName[])
        .filter((name) => name !== "OK")
        .map((name) => [name, codeToHttpStatus[Code[name]]]),
    );
    expect(documented).toEqual(actual);
  });

  it("documents every server option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof HttpServerOptions, true> = {
      before: true,
      after: true,
      errorEncoder: true,
      errorHandler: true,
      finalizer: true,
      bodyLimit: true,
      timeoutHeader: true,
      maxTimeout: true,
    };
    const documented = table("option", "## Server").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("documents every client option and no other", () => {
    const options: Record<keyof HttpClientOptions, true> = {
      before: true,
      after: true,
      finalizer: true,
      headers: true,
      timeoutHeader: true,
      fetch: true,
    };
    const documented = table("option", "## Client").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("has an error table row for each situation the server answers itself", () => {
    const situations = table("situation", "## Errors").map(([situation, status, code]) => ({
      situation,
      status,
      code,
    }));
    expect(situations).toContainEqual({
      situation: "content type is not JSON",
      status: "415",
      code: "INVALID_ARGUMENT",
    });
    expect(situations).toContainEqual({
      situation: "body larger than bodyLimit (declared or chunked)",
      status: "413 (¹)",
      code: "RESOURCE_EXHAUSTED",
    });
    expect(situations).toContainEqual({ situation: "anything else thrown", status: "500", code: "INTERNAL" });
  });
});
