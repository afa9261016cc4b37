#!/usr/bin/env node
// Checks the shape every workspace package must keep (STYLE.md rules 3, 8, 9, 10):
// - @svckit/* packages are peer dependencies (plus a workspace dev dependency), never `dependencies`;
// - third-party dependency ranges are bounded (no "*", "latest", ">=" without an upper bound);
// - published packages have type=module, sideEffects=false, files=[dist], exports with types first,
//   a README.md and a src/index.ts;
// - tsconfig.json references match the @svckit/* packages the package.json names;
// - the root tsconfig.json references every package and example.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const errors = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);
const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));
const unbounded = (range) =>
  range === "*" ||
  range === "latest" ||
  range === "" ||
  (/^>=?[^<]*$/.test(range) && !range.startsWith("workspace:"));

const dirs = [];
for (const group of ["packages", "examples"]) {
  if (!existsSync(group)) continue;
  for (const name of readdirSync(group)) {
    if (existsSync(join(group, name, "package.json"))) dirs.push(join(group, name));
  }
}
const rootRefs = new Set((readJson("tsconfig.json").references ?? []).map((r) => r.path));

for (const dir of dirs) {
  const pkg = readJson(join(dir, "package.json"));
  const where = pkg.name ?? dir;
  const published = dir.startsWith("packages/");
  for (const [dep, range] of Object.entries(pkg.dependencies ?? {})) {
    if (published && dep.startsWith("@svckit/"))
      fail(where, `${dep} must be a peer dependency, not a dependency`);
    if (unbounded(range)) fail(where, `dependency ${dep} has an unbounded range "${range}"`);
  }
  for (const [dep, range] of Object.entries(pkg.peerDependencies ?? {})) {
    if (unbounded(range)) fail(where, `peer dependency ${dep} has an unbounded range "${range}"`);
    if (dep.startsWith("@svckit/") && !pkg.devDependencies?.[dep]) {
      fail(where, `peer ${dep} also needs a "workspace:*" dev dependency for local builds`);
    }
  }
  if (published) {
    if (pkg.type !== "module") fail(where, 'needs "type": "module"');
    if (pkg.sideEffects !== false) fail(where, 'needs "sideEffects": false');
    if (JSON.stringify(pkg.files) !== '["dist"]') fail(where, 'needs "files": ["dist"]');
    const dot = pkg.exports?.["."];
    if (!dot || Object.keys(dot)[0] !== "types") fail(where, 'exports["."] must list "types" first');
    if (!existsSync(join(dir, "README.md"))) fail(where, "has no README.md");
    if (!existsSync(join(dir, "src", "index.ts"))) fail(where, "has no src/index.ts");
  }
  const svckitDeps = new Set(
    [pkg.dependencies, pkg.peerDependencies, pkg.devDependencies]
      .flatMap((d) => Object.keys(d ?? {}))
      .filter((d) => d.startsWith("@svckit/")),
  );
  const tsconfig = readJson(join(dir, "tsconfig.json"));
  const refs = new Set(
    (tsconfig.references ?? []).map((r) => r.path.replace(/^\.\.\/(\.\.\/)?(packages\/)?/, "")),
  );
  for (const dep of svckitDeps) {
    const name = dep.slice("@svckit/".length);
    if (!refs.has(name))
      fail(where, `tsconfig.json must reference ../${published ? "" : "../packages/"}${name}`);
  }
  for (const ref of refs) {
    if (!svckitDeps.has(`@svckit/${ref}`))
      fail(where, `tsconfig.json references ${ref}, which package.json does not name`);
  }
  if (!rootRefs.has(dir)) fail("tsconfig.json", `must reference ${dir}`);
}

if (errors.length > 0) {
  for (const e of errors) console.error(`check-packages: ${e}`);
  process.exit(1);
}
console.log(`check-packages: ${dirs.length} packages ok`);
