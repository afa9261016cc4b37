import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));

// Tests import `@svckit/<name>` and run against the sources, so no build is needed for unit tests.
const alias = readdirSync(new URL("./packages", import.meta.url)).map((name) => ({
  find: new RegExp(`^@svckit/${name}$`),
  replacement: `${root}packages/${name}/src/index.ts`,
}));

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["packages/*/src/**/*.test.ts", "examples/*/src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: "forks",
  },
});
