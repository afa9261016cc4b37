import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, type CodeName } from "@svckit/endpoint";
import {
  codeToJsonRpcCode,
  type JsonRpcClientOptions,
  type JsonRpcServerOptions,
} from "@svckit/transport-jsonrpc";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";
import { freePort } from "./test-helpers.js";

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

  it("runs the example, which prints { v: 3 }", async () => {
    // The example as written, on a free port instead of 8080.
    const code = firstBlock("ts").replaceAll("8080", String(await freePort()));
    const dir = await mkdtemp(join(tmpdir(), "svckit-jsonrpc-readme-"));
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

  it("shows the install line with the peer", () => {
    expect(firstBlock("sh").trim()).toBe("pnpm add @svckit/transport-jsonrpc @svckit/endpoint");
  });

  it("lists the JSON-RPC code of every code as codeToJsonRpcCode does", () => {
    const documented = Object.fromEntries(
      table("code", "## Errors").map(([code, rpc]) => [code, Number(rpc)]),
    );
    const actual = Object.fromEntries(
      (Object.keys(Code) as CodeName[])
        .filter((name) => name !== "OK")
        .map((name) => [name, codeToJsonRpcCode[Code[name]]]),
    );
    expect(documented).toEqual(actual);
  });

  it("documents every server option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof JsonRpcServerOptions, true> = {
      before: true,
      after: true,
      errorEncoder: true,
      errorHandler: true,
      finalizer: true,
      bodyLimit: true,
      timeoutHeader: true,
      maxTimeout: true,
      maxBatchSize: true,
      batchConcurrency: true,
      answerNotifications: true,
      contentTypes: true,
    };
    const documented = table("option", "## Server").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("documents every client option and no other", () => {
    const options: Record<keyof JsonRpcClientOptions, true> = {
      before: true,
      after: true,
      finalizer: true,
      headers: true,
      timeoutHeader: true,
      fetch: true,
      id: true,
      bodyLimit: true,
    };
    const documented = table("option", "## Client").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("has an error row for each HTTP-level answer and the standard codes", () => {
    const rows = table("situation", "## Errors").map(([situation, status, code]) => ({
      situation,
      status,
      code,
    }));
    expect(rows).toContainEqual({
      situation: "HTTP method other than POST",
      status: "405 + Allow: POST",
      code: "-32600",
    });
    expect(rows).toContainEqual({ situation: "content type is not JSON", status: "415", code: "-32600" });
    expect(rows).toContainEqual({
      situation: "body larger than bodyLimit",
      status: "413 (¹)",
      code: "-32600",
    });
    expect(rows).toContainEqual({ situation: "method not in the table", status: "200", code: "-32601" });
    expect(rows).toContainEqual({ situation: "body is not JSON", status: "200", code: "-32700" });
  });
});
