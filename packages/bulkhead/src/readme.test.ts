// The first ```ts block of ../README.md, verbatim between the two marker comments; the test below
// checks that the README holds exactly this text, so the README example is type-checked and run.
// README example start
import { createBulkhead } from "@svckit/bulkhead";
import { background, type Endpoint } from "@svckit/endpoint";

const slowQuery: Endpoint<string, string> = (_ctx, sql) =>
  new Promise((ok) => setTimeout(ok, 10, `rows of ${sql}`));
const db = createBulkhead({ name: "db", maxConcurrent: 2, maxQueue: 1 });
const query = db.middleware(slowQuery);

// q1 and q2 run at once, q3 waits for a slot and then runs, q4 is refused with
// RESOURCE_EXHAUSTED 'bulkhead "db" is full: 2 running, 1 queued'
const results = await Promise.allSettled(["q1", "q2", "q3", "q4"].map((sql) => query(background, sql)));

// README example end

import { readFileSync } from "node:fs";
import type { Bulkhead, BulkheadOptions } from "@svckit/bulkhead";
import { Code } from "@svckit/endpoint";
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

  it("runs the example to what its comments promise", () => {
    expect(results.slice(0, 3)).toEqual([
      { status: "fulfilled", value: "rows of q1" },
      { status: "fulfilled", value: "rows of q2" },
      { status: "fulfilled", value: "rows of q3" },
    ]);
    expect(results[3]).toMatchObject({
      status: "rejected",
      reason: { code: Code.RESOURCE_EXHAUSTED, message: 'bulkhead "db" is full: 2 running, 1 queued' },
    });
    expect({ running: db.running, queued: db.queued }).toEqual({ running: 0, queued: 0 });
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock(readme, "sh").trim()).toBe("pnpm add @svckit/bulkhead @svckit/endpoint");
  });

  it("documents every option and no other", () => {
    const options: Record<keyof BulkheadOptions, true> = { maxConcurrent: true, maxQueue: true, name: true };
    const documented = table(readme, "option", "## Options").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("documents every member of the bulkhead and no other", () => {
    const members: Record<keyof Bulkhead, true> = {
      name: true,
      maxConcurrent: true,
      maxQueue: true,
      running: true,
      queued: true,
      middleware: true,
    };
    const documented = table(readme, "member", "## The bulkhead").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(members).sort());
  });

  it("lists the messages the code produces", () => {
    const messages = table(readme, "situation", "## Errors").map(([, , , m]) => m?.replace("<name>", "db"));
    expect(messages).toContain('bulkhead "db" is full: N running, M queued');
    expect(messages).toContain('context cancelled while queued in bulkhead "db"');
    expect(messages).toContain('deadline exceeded while queued in bulkhead "db"');
  });
});
