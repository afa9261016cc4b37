// The first ```ts block of ../README.md, verbatim between the two marker comments; the test below
// checks that the README holds exactly this text, so the README example is type-checked and run.
// README example start
import { Code, chain, createContext, type Endpoint, ServiceError, timeout } from "@svckit/endpoint";
import { fallback } from "@svckit/fallback";

type Price = { sku: string; cents: number; stale: boolean };
const lastKnown = new Map([["A1", 990]]);
const pricing: Endpoint<string, Price> = () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "down"));
const stalePrice = fallback(async (_ctx, sku: string, error): Promise<Price> => {
  const cents = lastKnown.get(sku);
  if (cents === undefined) throw error; // nothing cached: the caller gets the original UNAVAILABLE
  return { sku, cents, stale: true };
});
// { sku: "A1", cents: 990, stale: true }
const price = await chain(stalePrice, timeout(500))(pricing)(createContext(), "A1");

// README example end

import { readFileSync } from "node:fs";
import { codeFromString } from "@svckit/endpoint";
import type { FallbackOptions } from "@svckit/fallback";
import { defaultFallbackCodes } from "@svckit/fallback";
import { describe, expect, it } from "vitest";
import { firstBlock, table } from "../../../test/readme-tools.js";

const START = "// README example start\n";
const END = "// README example end\n";

function between(text: string, start: string, end: string): string {
  const from = text.indexOf(start);
  const to = text.indexOf(end, from);
  if (from < 0 || to < 0)
    throw new Error(`markers ${JSON.stringify(start)} … ${JSON.stringify(end)} not found`);
  return text.slice(from + start.length, to);
}

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

describe("README", () => {
  it("has this file's example as its first ts block, verbatim, under 15 lines", () => {
    const example = `${between(readFileSync(new URL(import.meta.url), "utf8"), START, END).trimEnd()}\n`;
    expect(firstBlock(readme, "ts")).toBe(example);
    expect(example.trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example to what its comment promises", async () => {
    expect(price).toEqual({ sku: "A1", cents: 990, stale: true });
    await expect(chain(stalePrice, timeout(500))(pricing)(createContext(), "B2")).rejects.toThrow(
      new ServiceError(Code.UNAVAILABLE, "down"),
    );
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock(readme, "sh").trim()).toBe("pnpm add @svckit/fallback @svckit/endpoint");
  });

  it("documents every option and no other", () => {
    const options: Record<keyof FallbackOptions, true> = { when: true };
    const documented = table(readme, "option", "## `fallback").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("has a row for every code, picked exactly when defaultFallbackCodes has it", () => {
    const rows = table(readme, "code", "## Which errors");
    expect(rows).toHaveLength(16);
    for (const [name, picked] of rows) {
      const code = codeFromString(name ?? "");
      expect(code, name).toBeDefined();
      expect(picked, name).toBe(defaultFallbackCodes.includes(code as Code) ? "yes" : "no");
    }
  });
});
