import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";
// The addsvc.proto and the free-port helper of transport-grpc's tests: one copy for both packages.
import { freePort, testdata } from "../../transport-grpc/src/test-helpers.js";
import type { GrpcH2ServerOptions } from "./index.js";

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

  it("shows the install line with the peers", () => {
    expect(firstBlock("sh").trim()).toBe(
      "pnpm add @svckit/grpc-h2 @svckit/transport-grpc @svckit/endpoint @grpc/grpc-js",
    );
  });

  it("documents every option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof GrpcH2ServerOptions, true> = {
      maxReceiveMessageLength: true,
      maxSendMessageLength: true,
      compression: true,
      compressionThreshold: true,
      keepaliveTimeMs: true,
      keepaliveTimeoutMs: true,
      maxConcurrentStreams: true,
      tls: true,
      http2: true,
    };
    const documented = table("option", "## Options").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("has a row for each malformed request the wire tests cover", () => {
    const rows = table("situation", "## What the server answers").map(([situation, http, code]) => [
      situation,
      http,
      code,
    ]);
    expect(rows.length).toBe(15);
    expect(rows).toContainEqual(["method other than POST", "405", "INTERNAL"]);
    expect(rows).toContainEqual([
      "content-type not application/grpc, +subtype or ;params",
      "415",
      "INVALID_ARGUMENT",
    ]);
    expect(rows).toContainEqual([
      "message over maxReceiveMessageLength (from its prefix)",
      "200",
      "RESOURCE_EXHAUSTED",
    ]);
  });

  it("says every kind of method is served, and streaming is no longer under Not (yet) here", () => {
    expect(readme).toContain("## Client streaming and bidi");
    const notYet = readme.slice(readme.indexOf("## Not (yet) here"), readme.indexOf("## Performance"));
    expect(notYet).not.toMatch(/client-streaming|bidi/i);
  });
});
