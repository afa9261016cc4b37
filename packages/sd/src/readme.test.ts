// The first ```ts block of ../README.md, verbatim between the two marker comments; the test below
// checks that the README holds exactly this text, so the README example is type-checked and run.
// README example start
import { background } from "@svckit/endpoint";
import { createEndpointer, createInstanceCache } from "@svckit/sd";

const instances = createInstanceCache(["10.0.0.1:8080", "10.0.0.2:8080"]);
const endpointer = createEndpointer(instances, (instance) => ({
  endpoint: async (_ctx, name: string) => `hello ${name} from ${instance.address}`,
  close: () => console.log(`closed ${instance.address}`),
}));

instances.update(["10.0.0.2:8080"]); // prints "closed 10.0.0.1:8080"
instances.fail(new Error("consul unreachable")); // keeps serving 10.0.0.2:8080
const [entry] = endpointer.endpoints();
console.log(await entry?.endpoint(background, "ada")); // "hello ada from 10.0.0.2:8080"
await endpointer.close(); // prints "closed 10.0.0.2:8080"

// README example end

import { readFileSync } from "node:fs";
import type { EndpointerOptions, InstanceCacheOptions } from "@svckit/sd";
import { describe, expect, it, vi } from "vitest";
import { table } from "../../../test/readme-tools.js";

// Runs before the imports above, so the example's console output is captured, not printed.
const log = vi.hoisted(() => vi.spyOn(console, "log").mockImplementation(() => undefined));

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
  const example = `${between(readFileSync(new URL(import.meta.url), "utf8"), START, END).trimEnd()}\n`;
  const firstTsBlock = between(readme, "```ts\n", "```\n");

  it("has this file's example as its first ts block, verbatim", () => {
    expect(firstTsBlock).toBe(example);
  });

  it("keeps the example under 15 lines", () => {
    expect(firstTsBlock.trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example to what its comments promise", () => {
    expect(log.mock.calls).toEqual([
      ["closed 10.0.0.1:8080"],
      ["hello ada from 10.0.0.2:8080"],
      ["closed 10.0.0.2:8080"],
    ]);
    expect(instances.current().error?.message).toBe("consul unreachable");
  });

  it("shows the install line with the peer", () => {
    expect(between(readme, "```sh\n", "```\n").trim()).toBe("pnpm add @svckit/sd @svckit/endpoint");
  });

  it("documents every endpointer option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof EndpointerOptions, true> = {
      invalidateTimeout: true,
      factoryRetry: true,
      factoryTimeout: true,
      closeTimeout: true,
      onError: true,
    };
    const rows = table(readme, "`createEndpointer` option").map(([name]) => name);
    expect(rows.sort()).toEqual(Object.keys(options).sort());
    const cacheOptions: Record<keyof InstanceCacheOptions, true> = { onClose: true, onError: true };
    for (const name of Object.keys(cacheOptions)) expect(readme).toContain(name);
  });

  it("has the sections every package README has", () => {
    for (const heading of ["## Example", "## Pieces", "## Errors", "## When to use"]) {
      expect(readme).toContain(heading);
    }
  });
});
