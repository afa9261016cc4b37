import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createJsonLogger,
  createRedactor,
  defaultCodeLevels,
  defaultRedactKeys,
  type JsonLoggerOptions,
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

describe("README: JSON logger", () => {
  const section = readme.slice(readme.indexOf("## JSON logger"), readme.indexOf("## Errors"));

  it("has an example shorter than 15 lines", () => {
    expect(readmeBlock(section, "ts").trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example, which prints 3 and writes the lines shown, redacted", async () => {
    const dir = await mkdtemp(join(tmpdir(), "svckit-log-readme-"));
    const file = join(dir, "json-example.ts");
    await writeFile(file, readmeBlock(section, "ts"));
    const written: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array, callback?: unknown) => {
      written.push(String(chunk));
      if (typeof callback === "function") callback();
      return true;
    });
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(log.mock.calls).toEqual([[3]]);
    const lines = written.join("").trimEnd().split("\n");
    const shown = readmeBlock(section, "text").trimEnd().split("\n");
    expect(lines).toHaveLength(shown.length);
    for (const [i, line] of lines.entries()) {
      const actual = JSON.parse(line) as Record<string, unknown>;
      const expected = JSON.parse(shown[i] as string) as Record<string, unknown>;
      expect(Object.keys(actual)).toEqual(Object.keys(expected));
      const vary = { timestamp: "", ...("durationMs" in expected ? { durationMs: 0 } : {}) };
      expect({ ...actual, ...vary }).toEqual({ ...expected, ...vary });
      expect(Date.parse(actual.timestamp as string)).not.toBeNaN();
    }
    expect(written.join("")).not.toContain("s3cr3t");
  });

  it("documents every option and no other", () => {
    const options: Record<keyof JsonLoggerOptions, true> = {
      level: true,
      destination: true,
      base: true,
      timestamp: true,
      redact: true,
      maxBufferBytes: true,
      onError: true,
    };
    const documented = readmeTable(section, "option").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("quotes the errors as thrown", () => {
    const errors = readmeTable(section, "situation").map(([, error]) => error as string);
    const make = (options: unknown) => () => createJsonLogger(options as JsonLoggerOptions);
    const cases = [
      make({ level: "verbose" }),
      make({ destination: {} }),
      make({ base: "x" }),
      make({ timestamp: "unix" }),
      make({ maxBufferBytes: 0 }),
      make({ onError: "log" }),
      make({ redact: true }),
      make({ destination: "/nonexistent/app.log" }),
    ];
    for (const fn of cases) {
      const message = thrown(fn);
      expect(errors.some((e) => e === message || e.endsWith(`e.g. ${message}`))).toBe(true);
    }
  });
});
