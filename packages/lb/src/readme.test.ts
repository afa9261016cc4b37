// The first ```ts block of ../README.md, verbatim between the two marker comments; the test below
// checks that the README holds exactly this text, so the README example is type-checked and run.
// README example start
import { background } from "@svckit/endpoint";
import { createBalancedEndpoint } from "@svckit/lb";
import { createEndpointer, createStaticInstancer } from "@svckit/sd";

const instancer = createStaticInstancer(["10.0.0.1:8080", "10.0.0.2:8080"]);
const endpointer = createEndpointer(instancer, (instance) => ({
  endpoint: async (_ctx, name: string) => `hello ${name} from ${instance.address}`,
}));
const hello = createBalancedEndpoint(endpointer, { balancer: "roundRobin", service: "greeter" });

console.log(await hello(background, "ada")); // "hello ada from 10.0.0.1:8080"
console.log(await hello(background, "bob")); // "hello bob from 10.0.0.2:8080"

// README example end

import { readFileSync } from "node:fs";
import { Code, type CodeName, codeNames } from "@svckit/endpoint";
import type { BalancedEndpointOptions, OutlierDetectionOptions } from "@svckit/lb";
import { defaultFailureCodes } from "@svckit/lb";
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

  it("runs the example to what its comments promise", async () => {
    expect(log.mock.calls).toEqual([["hello ada from 10.0.0.1:8080"], ["hello bob from 10.0.0.2:8080"]]);
    await endpointer.close();
    await expect(hello(background, "eve")).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      message: 'no endpoints available for service "greeter"',
    });
  });

  it("shows the install line with the peers", () => {
    expect(between(readme, "```sh\n", "```\n").trim()).toBe(
      "pnpm add @svckit/lb @svckit/sd @svckit/endpoint",
    );
  });

  it("documents every createBalancedEndpoint option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof BalancedEndpointOptions, true> = {
      balancer: true,
      service: true,
      outlierDetection: true,
      failureCodes: true,
      rng: true,
      now: true,
    };
    const documented = table(readme, "option", "## One endpoint per service").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("documents every outlier detection option and no other", () => {
    const options: Record<keyof OutlierDetectionOptions, true> = {
      consecutiveFailures: true,
      baseEjectionTime: true,
      maxEjectionTime: true,
      maxEjectionPercent: true,
      ejectLast: true,
      onEject: true,
      onReadmit: true,
      now: true,
    };
    const rows = table(readme, "option", "## Outlier detection");
    expect(rows.map(([name]) => name).sort()).toEqual(Object.keys(options).sort());
    const defaults = Object.fromEntries(rows.map(([name, value]) => [name, value]));
    expect(defaults).toMatchObject({
      consecutiveFailures: "5",
      baseEjectionTime: "30000",
      maxEjectionTime: "300000",
      maxEjectionPercent: "100",
      ejectLast: "false",
    });
  });

  it("lists the default failure codes as defaultFailureCodes holds them", () => {
    const row = table(readme, "option", "## One endpoint per service").find(
      ([name]) => name === "failureCodes",
    );
    const documented = (row?.[1] ?? "").split(",").map((s) => s.trim());
    expect(documented.sort()).toEqual(defaultFailureCodes.map((c) => codeNames[c] as CodeName).sort());
  });

  it("names every balancer", () => {
    const names = table(readme, "balancer", "## Balancers").map(([cell]) => cell?.split("(")[0]);
    expect(names).toEqual(["roundRobin", "random", "weighted", "leastRequests", "p2c"]);
  });

  it("has the sections every package README has", () => {
    for (const heading of [
      "## Example",
      "## Errors",
      "## When to use",
      "## Retries: reaching another instance",
    ]) {
      expect(readme).toContain(heading);
    }
  });
});
