import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createRedactor,
  defaultCodeLevels,
  defaultRedactKeys,
  type LoggingOptions,
  logging,
  noopLogger,
  type RedactOptions,
} from "@svckit/log";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";

const readme = await readFile(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const firstBlock = (lang: string): string => readmeBlock(readme, lang);
const table = (firstHeader: string, heading?: string): string[][] =>
  readmeTable(readme, firstHeader, heading);

afterEach(() => {
  vi.restoreAllMocks();
});

function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return `${(err as Error).constructor.name}: ${(err as Error).message}`;
  }
  return "nothing thrown";
}

describe("README", () => {
  it("has an example shorter than 15 lines", () => {
    expect(firstBlock("ts").trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example, which prints 3 and writes the line shown, redacted", async () => {
    // The example as written; only the subpath import points at the sources (vitest aliases the main entry).
    const winstonEntry = fileURLToPath(new URL("./winston.ts", import.meta.url));
    const code = firstBlock("ts").replace('"@svckit/log/winston"', JSON.stringify(winstonEntry));
    const dir = await mkdtemp(join(tmpdir(), "svckit-log-readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, code);
    const written: string[] = [];
    const stdout = (console as unknown as { _stdout: NodeJS.WriteStream })._stdout;
    vi.spyOn(stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(/* @vite-ignore */ file);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(log.mock.calls).toEqual([[3]]);
    const lines = written.join("").trim().split("\n");
    expect(lines).toHaveLength(1);
    const shown = JSON.parse(firstBlock("text")) as Record<string, unknown>;
    const actual = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(Object.keys(actual)).toEqual(Object.keys(shown));
    expect({ ...actual, durationMs: 0, timestamp: "" }).toEqual({ ...shown, durationMs: 0, timestamp: "" });
    expect(lines[0]).not.toContain("s3cr3t");
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock("sh").trim()).toBe("pnpm add @svckit/log @svckit/endpoint winston");
  });

  it("documents every logging option and no other", () => {
    const options: Record<keyof LoggingOptions, true> = {
      logger: true,
      name: true,
      kind: true,
      transport: true,
      method: true,
      route: true,
      metadata: true,
      fields: true,
      levels: true,
      redact: true,
    };
    const documented = table("option", "## `logging").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("documents every redaction option and no other", () => {
    const options: Record<keyof RedactOptions, true> = {
      keys: true,
      censor: true,
      scrubStrings: true,
      maxDepth: true,
      maxEntries: true,
      maxStringLength: true,
    };
    const documented = table("option", "## Redaction").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("lists the level of every code as defaultCodeLevels has it", () => {
    const documented = Object.fromEntries(table("code", "## Levels").map(([code, level]) => [code, level]));
    expect(documented).toEqual(defaultCodeLevels);
  });

  it("lists the default redacted keys", () => {
    const section = readme.slice(readme.indexOf("## Redaction"));
    for (const key of defaultRedactKeys) expect(section).toContain(`\`${key}\``);
    expect(createRedactor()({ [defaultRedactKeys[0] as string]: "x" })).toEqual({
      authorization: "[REDACTED]",
    });
  });

  it("lists every field the line can have", () => {
    const documented = table("field", "## The line").map(([name]) => name);
    expect(documented).toEqual([
      "endpoint",
      "kind",
      "transport",
      "method",
      "route",
      "code",
      "durationMs",
      "traceId",
      "metadata",
      "error",
      "cause",
    ]);
  });

  it("quotes the errors as thrown", () => {
    const errors = table("situation", "## Errors").map(([, error]) => error);
    const make = (options: unknown) => () => logging(options as LoggingOptions);
    const cases = [
      make({ name: "a" }),
      make({ logger: noopLogger }),
      make({ logger: noopLogger, name: "a", kind: "peer" }),
      make({ logger: noopLogger, name: "a", metadata: "x" }),
      make({ logger: noopLogger, name: "a", metadata: Array.from({ length: 33 }, (_, i) => `h${i}`) }),
      make({ logger: noopLogger, name: "a", levels: { NOPE: "info" } }),
      make({ logger: noopLogger, name: "a", levels: { OK: "verbose" } }),
      () => createRedactor({ maxDepth: -1 }),
    ];
    for (const fn of cases) expect(errors).toContain(thrown(fn));
  });
});
