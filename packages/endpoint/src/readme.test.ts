// The first ```ts block of ../README.md, verbatim between the two marker comments; the test below
// checks that the README holds exactly this text, so the README example is type-checked and run.
// README example start
import { chain, createContext, type Endpoint, type Middleware, timeout } from "@svckit/endpoint";

const uppercase: Endpoint<string, string> = async (_ctx, s) => s.toUpperCase();

const trim: Middleware<string, string> = (next) =>
  async function trimmed(ctx, s) {
    return next(ctx, s.trim());
  };

// Compose once, at setup: trim runs first, then the 1 s time limit, then the endpoint.
const endpoint = chain(trim, timeout(1_000))(uppercase);

const result = await endpoint(createContext({ timeout: 5_000 }), "  hello "); // "HELLO"

// README example end

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const START = "// README example start\n";
const END = "// README example end\n";

function between(text: string, start: string, end: string): string {
  const from = text.indexOf(start);
  const to = text.indexOf(end, from);
  if (from < 0 || to < 0)
    throw new Error(`markers ${JSON.stringify(start)} … ${JSON.stringify(end)} not found`);
  return text.slice(from + start.length, to);
}

describe("README", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  // Compared without trailing blank lines (the formatter puts one before the end marker).
  const example = `${between(readFileSync(new URL(import.meta.url), "utf8"), START, END).trimEnd()}\n`;
  const firstTsBlock = between(readme, "```ts\n", "```\n");

  it("has this file's example as its first ts block, verbatim", () => {
    expect(firstTsBlock).toBe(example);
  });

  it("keeps the example under 15 lines", () => {
    expect(firstTsBlock.trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example to the result its comment promises", () => {
    expect(result).toBe("HELLO");
  });

  it("the example's endpoint fails with DEADLINE_EXCEEDED past the caller's deadline", async () => {
    const past = createContext({ deadline: Date.now() - 1 });
    await expect(endpoint(past, "x")).rejects.toMatchObject({ code: 4, codeName: "DEADLINE_EXCEEDED" });
  });

  it("has an install line and a section per concept", () => {
    expect(readme).toContain("pnpm add @svckit/endpoint");
    for (const heading of [
      "## Endpoint, Middleware, chain",
      "## Context",
      "## ServiceError and codes",
      "## Metadata",
      "## timeout",
      "## When to use",
    ]) {
      expect(readme).toContain(heading);
    }
  });
});
