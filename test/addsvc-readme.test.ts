// Replays examples/addsvc/README.md against the built addsvc, so the README cannot drift from what the
// service says: every `curl`, `grpcurl` and `addcli` line with the `# ...` answer under it (the README's
// default addresses rewritten to the free ports the test server got), the seven-sums transcript and the
// /metrics excerpt (against a server with the default limits), the log lines and the flags table.
// grpcurl itself is not needed: a grpc-js client does what it does (proto3 JSON in, the reply printed
// as grpcurl prints it). Only the curl and grpcurl options the README uses are understood.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addcli,
  ensureBuilt,
  exampleDir,
  jsonLines,
  mainJs,
  portOf,
  type RunningAddsvc,
  root,
  runNode,
  startAddsvc,
} from "./fixtures/addsvc-helpers.js";
import {
  commandsIn,
  type DocumentedCommand,
  parseGrpcurl,
  runCurl,
  runGrpcurl,
  shellWords,
} from "./fixtures/readme-replay.js";
import { send, stopProcesses } from "./support.js";

const readme = readFileSync(join(exampleDir, "README.md"), "utf8");
// The repository's README shows the demo's three calls; they are replayed with the example's own.
const rootReadme = readFileSync(join(root, "README.md"), "utf8");
const lines = [...readme.split("\n"), ...rootReadme.split("\n")];

/** Each line starting with `prefix` and the `# ...` lines under it, joined. */
const commands = (prefix: string): DocumentedCommand[] => commandsIn(lines, prefix);

/** The body of the fenced block of `lang` that follows the line containing `marker`. */
function blockAfter(marker: string, lang: string): string {
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README has no "${marker}"`);
  const match = new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(readme.slice(at));
  if (match?.[1] === undefined) throw new Error(`no \`\`\`${lang} block after "${marker}"`);
  return match[1];
}

/** The README's default addresses → where the test server listens. */
function rewrite(text: string, svc: RunningAddsvc): string {
  return text
    .replaceAll("127.0.0.1:8081", svc.http as string)
    .replaceAll("127.0.0.1:8082", svc.grpc as string)
    .replaceAll("127.0.0.1:8084", svc.jsonrpc as string)
    .replaceAll("127.0.0.1:8080", svc.debug as string);
}

describe("examples/addsvc/README.md", () => {
  let svc: RunningAddsvc;

  beforeAll(async () => {
    await ensureBuilt();
    svc = await startAddsvc(["--sum-rate", "0"]);
  }, 180_000);
  afterAll(stopProcesses);

  it("the repository README's demo is this example, and its three calls (curl, grpcurl, addcli) are replayed", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: { demo: string } };
    expect(pkg.scripts.demo).toBe("pnpm build && node examples/addsvc/dist/main.js -sum-rate 100");
    const demo = rootReadme
      .split("\n")
      .filter((line) => /^(curl|grpcurl|node examples\/addsvc\/dist\/addcli\.js) /.test(line));
    expect(demo.map((line) => line.split(" ")[0])).toEqual(["curl", "grpcurl", "node"]);
    expect(demo.every((line) => lines.includes(line))).toBe(true);
  });

  const curls = commands("curl ");
  it("documents HTTP and JSON-RPC answers, errors included, with curl lines", () => {
    expect(curls.filter((c) => c.line.includes(":8081/")).length).toBeGreaterThanOrEqual(12);
    expect(curls.filter((c) => c.line.includes(":8084/")).length).toBeGreaterThanOrEqual(8);
    expect(curls.filter((c) => c.line.includes(":8080/")).length).toBe(2);
  });

  it.each(curls)("$line answers as documented", async ({ line, expected }) => {
    expect((await runCurl(rewrite(line, svc))).printed).toBe(expected);
  });

  const clis = commands("node examples/addsvc/dist/addcli.js ");
  it("documents addcli over each transport, with errors", () => {
    expect(clis.length).toBeGreaterThanOrEqual(5);
    expect(clis.some((c) => c.expected.startsWith("error: "))).toBe(true);
  });

  it.each(clis)("$line prints as documented", async ({ line, expected }) => {
    const [, , ...args] = shellWords(rewrite(line, svc));
    const out = await addcli(...args);
    const failed = expected.startsWith("error: ");
    expect(out).toEqual({
      code: failed ? 1 : 0,
      stdout: failed ? "" : `${expected}\n`,
      stderr: failed ? `${expected}\n` : "",
    });
  });

  const grpcurls = commands("grpcurl ");
  it.each(grpcurls)("$line prints as documented", async ({ line, expected }) => {
    expect(parseGrpcurl(line).address).toBe("127.0.0.1:8082");
    expect((await runGrpcurl(rewrite(line, svc))).printed).toBe(expected);
  });

  // The ```ts blocks are plain JavaScript too: run them as modules beside the built files, where their
  // imports ("./transport-grpc.js", "@svckit/endpoint") resolve, from the repository root.
  it.each([
    ["With plain grpc-js", ["{ v: 3n, err: '' }"]],
    ["## The svckit clients", ["{ v: 3n }", "{ v: 'abcd' }", "INVALID_ARGUMENT can't sum two zeroes"]],
  ])("the ts block after %j runs and prints what its comments say", async (marker, printed) => {
    const file = join(exampleDir, "dist", `readme-snippet-${process.pid}.mjs`);
    writeFileSync(file, rewrite(blockAfter(marker, "ts"), svc));
    try {
      expect(await runNode(file, [])).toEqual({ code: 0, stdout: `${printed.join("\n")}\n`, stderr: "" });
    } finally {
      rmSync(file, { force: true });
    }
  });

  it("shows the log lines the binary writes: the same messages and fields", async () => {
    await send(portOf(svc.http), { path: "/sum", headers: {}, body: '{"a":0,"b":0}' });
    // The logger writes in batches, once per event-loop turn: the call's line may follow its answer.
    await svc.proc.line((l) => l.includes('"message":"served sum: INVALID_ARGUMENT"'), 5_000);
    const documented = blockAfter("It writes one JSON line per listener", "text")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(rewrite(l, svc)) as Record<string, unknown>);
    const actual = jsonLines(svc.proc);
    for (const doc of documented.filter((d) => d.message !== "shutting down")) {
      const match = actual.find((a) => a.message === doc.message);
      expect(match, `no line "${String(doc.message)}"`).toBeDefined();
      expect(Object.keys(match as object).sort()).toEqual(Object.keys(doc).sort());
      for (const [key, value] of Object.entries(doc)) {
        if (key !== "timestamp" && key !== "durationMs") expect(match?.[key]).toEqual(value);
      }
    }
    expect(documented.at(-1)).toEqual({
      level: "info",
      message: "shutting down",
      signal: "SIGTERM",
      timestamp: "…",
    });
  });

  it("the flags table matches main's usage: every flag, with its default", async () => {
    const usage = (await runNode(mainJs, ["-help"])).stdout;
    const table = lines.filter((l) => /^\| `-[a-z-]+/.test(l));
    expect(table.length).toBe(10);
    for (const row of table) {
      const [flag, def] = row
        .split("|")
        .slice(1, 3)
        .map((c) => c.trim().replaceAll("`", ""));
      const name = (flag as string).split(/[ ,]/)[0] as string;
      expect(usage).toMatch(new RegExp(`\\n  ${name}[ ,]`));
      if (def !== "") expect(usage).toContain(`(default ${def})`);
    }
  });
});

describe("examples/addsvc/README.md: the default limits", () => {
  beforeAll(ensureBuilt, 180_000);
  afterAll(stopProcesses);

  it("seven sums in a row answer as the transcript says, and /metrics shows the excerpt", async () => {
    const svc = await startAddsvc(["--sum-rate", "1", "--concat-rate", "100", "--breaker-calls", "6"]);
    const printed: string[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await send(portOf(svc.http), {
        path: "/sum",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: '{"a":1,"b":2}',
      });
      printed.push(`${res.text} ${res.status}`);
    }
    const transcript = blockAfter("seven sums in a row", "text").trim().split("\n");
    const normal = (l: string): string => l.replace(/retry in [\d.]+ s/, "retry in … s");
    expect(printed.map(normal)).toEqual(transcript.map(normal));

    const metrics = (await send(portOf(svc.debug), { method: "GET", path: "/metrics" })).text.split("\n");
    for (const line of blockAfter("`/metrics` then shows", "text").trim().split("\n")) {
      expect(metrics).toContain(line);
    }
  });
});
