// The first ```ts block of ../README.md, verbatim between the two marker comments; the test below
// checks that the README holds exactly this text, so the README example is type-checked and run.
// README example start
import { createCircuitBreaker } from "@svckit/circuitbreaker";
import { Code, chain, createContext, type Endpoint, ServiceError, timeout } from "@svckit/endpoint";

const getUser: Endpoint<string, { id: string }> = async () => {
  throw new ServiceError(Code.UNAVAILABLE, "users service down"); // a dependency in trouble
};
const users = createCircuitBreaker({ name: "users", volumeThreshold: 5, resetTimeout: 10_000 });
const states: string[] = [];
users.subscribe((state, previous) => states.push(`${previous} -> ${state}`)); // ["closed -> open"]
const call = chain(users.middleware, timeout(1_000))(getUser);
const messages: string[] = []; // 5 × "users service down", then 'circuit breaker "users" is open'
for (let i = 0; i < 6; i++) await call(createContext(), "42").catch((e: Error) => messages.push(e.message));
users.shutdown();

// README example end

import { readFileSync } from "node:fs";
import type { CircuitBreaker, CircuitBreakerOptions } from "@svckit/circuitbreaker";
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
    expect(states).toEqual(["closed -> open"]); // shutdown() finds it open already
    expect(messages).toEqual([...Array(5).fill("users service down"), 'circuit breaker "users" is open']);
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock(readme, "sh").trim()).toBe(
      "pnpm add @svckit/circuitbreaker @svckit/endpoint opossum@^9",
    );
  });

  it("documents every option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const options: Record<keyof CircuitBreakerOptions, true> = {
      name: true,
      errorThresholdPercentage: true,
      volumeThreshold: true,
      rollingCountTimeout: true,
      rollingCountBuckets: true,
      resetTimeout: true,
      isFailure: true,
      fallback: true,
    };
    const documented = table(readme, "option", "## Options").map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(options).sort());
  });

  it("documents every member of the breaker and no other", () => {
    const members: Record<keyof CircuitBreaker, true> = {
      name: true,
      state: true,
      middleware: true,
      subscribe: true,
      stats: true,
      shutdown: true,
    };
    const documented = table(readme, "member", "## The breaker").map(([name]) =>
      name?.replace(/\(.*\)$/, ""),
    );
    expect(documented.sort()).toEqual(Object.keys(members).sort());
  });

  it("lists the refusal messages the code produces", () => {
    const rows = table(readme, "situation", "## Errors");
    const messages = rows.map(([, , , message]) => message?.replace("<name>", "users"));
    expect(messages).toContain('circuit breaker "users" is open');
    expect(messages).toContain('circuit breaker "users" is half-open and its trial call has not finished');
    expect(messages).toContain('circuit breaker "users" is shut down');
    for (const [, code, status] of rows.slice(0, 3)) {
      expect(code).toBe("UNAVAILABLE");
      expect(status).toBe("503");
    }
  });
});
