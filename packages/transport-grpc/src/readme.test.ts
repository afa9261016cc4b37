import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { status } from "@grpc/grpc-js";
import { Code, type CodeName } from "@svckit/endpoint";
import type { GrpcClientOptions, GrpcServerOptions } from "@svckit/transport-grpc";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";
import { freePort, testdata } from "./test-helpers.js";

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const readme = await readFile(join(packageDir, "README.md"), "utf8");

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

  it("runs the example, which prints 3n", async () => {
    // The example as written, with the test's copy of addsvc.proto and a free port instead of 8082.
    // It is written inside the package so that `@grpc/grpc-js` resolves from it.
    const code = firstBlock("ts")
      .replaceAll('"addsvc.proto"', JSON.stringify(testdata("addsvc.proto")))
      .replaceAll("8082", String(await freePort()));
    const dir = await mkdtemp(join(packageDir, ".readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, code);
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(log).toHaveBeenCalledTimes(1);
    expect(log).toHaveBeenCalledWith(3n);
  });

  it("shows the install lines with the peers", () => {
    expect(firstBlock("sh").trim().split("\n")).toEqual([
      "pnpm add @svckit/transport-grpc @svckit/endpoint @grpc/grpc-js",
      "pnpm add @svckit/codec-protobuf protobufjs",
    ]);
  });

  it("lists every code with the grpc-js status of the same name and value", () => {
    const rows = table("code", "## Errors");
    const names = (Object.keys(Code) as CodeName[]).filter((name) => name !== "OK");
    expect(rows.map(([code]) => code)).toEqual(names);
    for (const [code, grpcName, value] of rows) {
      expect({ code, value: Number(value) }).toEqual({ code, value: Code[code as CodeName] });
      expect(status[grpcName as keyof typeof status]).toBe(Number(value));
    }
  });

  it("documents every server option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof GrpcServerOptions, true> = {
      before: true,
      after: true,
      errorHandler: true,
      finalizer: true,
    };
    const documented = table("option", "## Server").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("documents every client option and no other", () => {
    const options: Record<keyof GrpcClientOptions, true> = {
      before: true,
      after: true,
      finalizer: true,
      credentials: true,
      channelOptions: true,
    };
    const documented = table("option", "## Client").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("has a row for each bad input the server answers itself", () => {
    const rows = table("situation", "What the server answers by itself").map(([situation, code]) => ({
      situation,
      code,
    }));
    expect(rows).toContainEqual({
      situation: "request bytes are not a valid request message",
      code: "INVALID_ARGUMENT",
    });
    expect(rows).toContainEqual({
      situation: "request message over grpc.max_receive_message_length",
      code: "RESOURCE_EXHAUSTED",
    });
    expect(rows).toContainEqual({
      situation: "unknown service or method, or a method without a handler",
      code: "UNIMPLEMENTED",
    });
    expect(rows).toContainEqual({ situation: "anything else thrown", code: "INTERNAL" });
  });

  it("says which kinds of streaming are supported and which are not yet", () => {
    const streaming = readme
      .slice(readme.indexOf("## Streaming"), readme.indexOf("## When to use"))
      .replace(/\s+/g, " ");
    expect(streaming).toContain("All four kinds are served");
    expect(streaming).toContain("A svckit client exists for each kind");
    expect(streaming).toContain("`@svckit/grpc-h2`'s engine serves unary and server-streaming methods only");
  });
});
