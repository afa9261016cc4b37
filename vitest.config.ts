import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));

// Tests import `@svckit/<name>` and run against the sources, so no build is needed for unit tests.
const alias = readdirSync(new URL("./packages", import.meta.url)).map((name) => ({
  find: new RegExp(`^@svckit/${name}$`),
  replacement: `${root}packages/${name}/src/index.ts`,
}));
// Subpath exports (`@svckit/log/winston`) resolve to the source file of the same name.
alias.push({ find: /^@svckit\/([a-z0-9-]+)\/([a-z0-9-]+)$/, replacement: `${root}packages/$1/src/$2.ts` });

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["packages/*/src/**/*.test.ts", "examples/*/src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: "forks",
  },
});
