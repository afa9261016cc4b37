// The first ```ts block of ../README.md, verbatim between the two marker comments; the test below
// checks that the README holds exactly this text, so the README example is type-checked and run.
// README example start
import { Code, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { createRetryBudget, retry } from "@svckit/retry";

let calls = 0;
const backend: Endpoint<string, string> = async (_ctx, name) => {
  if (++calls < 3) throw new ServiceError(Code.UNAVAILABLE, "instance restarting");
  return `hello ${name}`;
};

// One budget per backend: retries add at most 10 % to its load (plus 10 per second).
const budget = createRetryBudget({ retryRatio: 0.1 });
const client = retry({ maxAttempts: 4, perAttemptTimeout: 200, backoff: { initial: 10 }, budget })(backend);

const greeting = await client(createContext({ timeout: 1_000 }), "ada"); // "hello ada", on the 3rd attempt

// README example end

import { readFileSync } from "node:fs";
import {
  type BackoffOptions,
  type HedgeOptions,
  isRetryable,
  type PercentileDelay,
  type RetryBudgetOptions,
  type RetryOptions,
} from "@svckit/retry";
import { describe, expect, it } from "vitest";
import { firstBlock, table } from "../../../test/readme-tools.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

function between(text: string, start: string, end: string): string {
  const from = text.indexOf(start);
  const to = text.indexOf(end, from);
  if (from < 0 || to < 0)
    throw new Error(`markers ${JSON.stringify(start)} … ${JSON.stringify(end)} not found`);
  return text.slice(from + start.length, to);
}

/** The option names in the first column of the options table after `heading`. */
const documented = (heading: string): string[] =>
  table(readme, "option", heading)
    .map(([name]) => name ?? "")
    .sort();

describe("README", () => {
  it("has this file's example as its first ts block, verbatim, shorter than 15 lines", () => {
    const example = between(
      readFileSync(new URL(import.meta.url), "utf8"),
      "// README example start\n",
      "// README example end\n",
    );
    expect(firstBlock(readme, "ts")).toBe(`${example.trimEnd()}\n`);
    expect(example.trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example: the third attempt answers", () => {
    expect(greeting).toBe("hello ada");
    expect(calls).toBe(3);
    expect(budget.balance()).toBe(98); // 100 of reserve, 2 retries spent, 0.1 earned
  });

  it("shows the install line with the peer", () => {
    expect(firstBlock(readme, "sh").trim()).toBe("pnpm add @svckit/retry @svckit/endpoint");
  });

  it("documents every retry option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof RetryOptions, true> = {
      maxAttempts: true,
      backoff: true,
      perAttemptTimeout: true,
      retryOn: true,
      retryResourceExhausted: true,
      budget: true,
      random: true,
      onRetry: true,
      onGiveUp: true,
    };
    expect(documented("## `retry(options?)`")).toEqual(Object.keys(options).sort());
    const backoff: Record<keyof BackoffOptions, true> = { initial: true, max: true, multiplier: true };
    const row = table(readme, "option", "## `retry(options?)`").find(([name]) => name === "backoff");
    for (const key of Object.keys(backoff)) expect(row?.[1]).toContain(key);
  });

  it("documents every hedge option and no other", () => {
    const options: Record<keyof HedgeOptions, true> = {
      delay: true,
      maxAttempts: true,
      budget: true,
      retryOn: true,
      retryResourceExhausted: true,
      onHedge: true,
    };
    expect(documented("## Hedged requests")).toEqual(Object.keys(options).sort());
    const percentile: Record<keyof PercentileDelay, true> = {
      percentile: true,
      fallback: true,
      minSamples: true,
      sampleSize: true,
    };
    const section = readme.slice(readme.indexOf("## Hedged requests"));
    for (const key of Object.keys(percentile)) expect(section).toContain(`\`${key}\``);
  });

  it("documents every budget option and no other", () => {
    const options: Record<keyof RetryBudgetOptions, true> = {
      ttl: true,
      minRetriesPerSecond: true,
      retryRatio: true,
    };
    expect(documented("## Retry budget")).toEqual(Object.keys(options).sort());
  });

  it("tells which codes are retried as isRetryable does", () => {
    const rows = table(readme, "code", "## What is retried");
    const answer = (name: string): string => rows.find(([code]) => code === name)?.[1] ?? "";
    expect(answer("UNAVAILABLE")).toBe("yes");
    expect(isRetryable(new ServiceError(Code.UNAVAILABLE))).toBe(true);
    expect(answer("DEADLINE_EXCEEDED")).toMatch(/^only when the attempt ran out of perAttemptTimeout/);
    expect(isRetryable(new ServiceError(Code.DEADLINE_EXCEEDED))).toBe(false);
    expect(isRetryable(new ServiceError(Code.DEADLINE_EXCEEDED), { attemptTimedOut: true })).toBe(true);
    expect(answer("RESOURCE_EXHAUSTED")).toBe("only with retryResourceExhausted");
    expect(isRetryable(new ServiceError(Code.RESOURCE_EXHAUSTED), { retryResourceExhausted: true })).toBe(
      true,
    );
    expect(answer("CANCELLED")).toBe("no");
    expect(answer("any other code")).toBe("no");
    for (const code of Object.values(Code)) {
      const special = [Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.RESOURCE_EXHAUSTED] as number[];
      if (!special.includes(code)) expect(isRetryable(new ServiceError(code))).toBe(false);
    }
  });

  it("quotes the messages the middlewares raise", () => {
    expect(readme).toContain("`deadline exceeded: attempt N took longer than T ms`");
    expect(readme).toContain("`hedged attempt cancelled: the call already finished`");
    expect(readme).toContain("`retry: maxAttempts must be an integer ≥ 1, got 0`");
  });
});
