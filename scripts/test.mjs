#!/usr/bin/env node
// Runs the whole vitest suite and ends with one plain line of counts,
// "Tests: N passed, N failed, N skipped", that CI and people read.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

const out = ".vitest-results.json";
rmSync(out, { force: true });
const args = [
  "vitest",
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile.json=${out}`,
  ...process.argv.slice(2),
];
const run = spawnSync("pnpm", ["exec", ...args], { stdio: "inherit" });
let summary;
try {
  summary = JSON.parse(readFileSync(out, "utf8"));
} catch {
  console.error("test: vitest wrote no results");
  process.exit(run.status || 1);
}
const skipped = (summary.numPendingTests ?? 0) + (summary.numTodoTests ?? 0);
const failed = summary.numFailedTests + (summary.numFailedTestSuites ?? 0);
const code = run.status ?? 1;
if (summary.numTotalTests === 0) {
  console.error("test: no tests ran");
  process.exit(1);
}
if (skipped > 0 && process.env.CI === "true") {
  console.error(`test: ${skipped} tests skipped under CI=true; every test must run in CI`);
}
console.log(`Tests: ${summary.numPassedTests} passed, ${failed} failed, ${skipped} skipped`);
process.exit(code !== 0 ? code : failed > 0 || (skipped > 0 && process.env.CI === "true") ? 1 : 0);
