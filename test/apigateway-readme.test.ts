// Replays examples/apigateway/README.md against the built gateway, so the README cannot drift from what
// the gateway says. Its "Run it" lines start addsvc, stringsvc and the gateway as child processes, with
// the README's APIGATEWAY_JWT_SECRET and each on a free port instead of the address its comment gives
// (those addresses are rewritten wherever they appear below); its `TOKEN=$(...)` line runs the token
// tool; then every `curl` line is sent, in README order, and what curl prints is compared with the
// `# ...` lines under it: exactly, but where they show `…` (a `…` line stands for any lines, a `…` in a
// line for any text of that line). A `# with <flags>: <answer>` line is the same call to a gateway
// started with <flags> as well. Then the log lines (and SIGTERM) and the flags table against `--help`.
// Only the shell and curl syntax the README uses is understood; anything else fails.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { mainJs as addsvcJs, jsonLines, root, runNode } from "./fixtures/addsvc-helpers.js";
import {
  EXAMPLES,
  ensureBuilt,
  gatewayJs,
  startGateway,
  startHttpBinary,
  startStringsvc,
} from "./fixtures/apigateway-helpers.js";
import { commandsIn, runCurl, shellWords } from "./fixtures/readme-replay.js";
import { firstBlock, table } from "./readme-tools.js";
import { send, stopProcesses, type TestProcess } from "./support.js";

const readme = readFileSync(join(root, "examples/apigateway/README.md"), "utf8");

/** The lines of the first ```sh block after `heading`. */
function shLines(heading: string): string[] {
  const at = readme.indexOf(heading);
  if (at < 0) throw new Error(`README has no "${heading}"`);
  return firstBlock(readme.slice(at), "sh").trimEnd().split("\n");
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Expects `printed` to be what `shown` shows: the same text, but that a line `…` stands for any number
 * of lines and a `…` in a line for any text within that line. A mismatch fails with a diff of the two.
 */
function expectShown(printed: string, shown: string): void {
  const pattern = shown
    .split("\n")
    .map((l) => (l === "…" ? "(?:[^\\n]*\\n)*?" : `${l.split("…").map(escapeRegExp).join("[^\\n]*?")}\\n`))
    .join("");
  const matches = new RegExp(`^${pattern}$`).test(`${printed}\n`);
  expect(matches ? shown : printed).toBe(shown);
}

/** A `node examples/<name>/dist/main.js <args> &   # [HTTP] on <host:port>` line of "Run it". */
interface RunLine {
  readonly script: string;
  readonly args: readonly string[];
  /** Where the README says it listens. */
  readonly addr: string;
}

const runBlock = shLines("## Run it");
const [addsvcRun, stringsvcRun, gatewayRun] = runBlock
  .filter((line) => line.startsWith("node "))
  .map((line): RunLine => {
    const [command = "", comment = ""] = line.split(/\s+#\s+/);
    const [, script = "", ...args] = shellWords(command.replace(/\s*&$/, ""));
    const addr = /\bon (\S+)$/.exec(comment)?.[1];
    if (addr === undefined) throw new Error(`no "# on host:port" comment on: ${line}`);
    return { script, args, addr };
  }) as [RunLine, RunLine, RunLine];
const exported = runBlock.map((line) => /^export (\w+)=(\S+)$/.exec(line)).filter((m) => m !== null);
const tokenLine = /^(\w+)=\$\((.+)\)\s+#\s+(\d+) min$/.exec(
  shLines("## Call it").find((line) => line.startsWith("TOKEN=")) ?? "",
);

/** Each flags-table row: the flag as the usage writes it (`--sd static|etcd|consul`), its default cell. */
const flagRows = table(readme, "flag", "## Flags").map(([flag = "", def = ""]) => ({
  flag: flag.replaceAll("\\|", "|"),
  def,
}));

describe("examples/apigateway/README.md", () => {
  let gateway: { proc: TestProcess; port: number };
  let stringsvc: { proc: TestProcess; http: string };
  /** README address → where the test's process listens. */
  const addresses: [string, string][] = [];
  const vars: Record<string, string> = {};
  // addsvc admits one sum a second, and the README's calls come at a person's pace: a sum it shows
  // reaching addsvc (with the token) and admitted is sent a second or more after the last admitted one.
  let lastSum = 0;

  /** `text` with the README's addresses where the test's processes listen. */
  function rewrite(text: string): string {
    return addresses.reduce((out, [documented, actual]) => out.replaceAll(documented, actual), text);
  }

  /** The gateway as "Run it" starts it, the other services at the test's addresses, then `more` flags. */
  function runGateway(more: readonly string[] = []): Promise<{ proc: TestProcess; port: number }> {
    const defaults = (flag: string): string => rewrite(flagRows.find((r) => r.flag === flag)?.def ?? "");
    return startGateway([
      "--addsvc",
      defaults("--addsvc list"),
      "--stringsvc",
      defaults("--stringsvc list"),
      ...gatewayRun.args,
      ...more,
    ]);
  }

  beforeAll(async () => {
    await ensureBuilt();
    for (const [, name = "", value = ""] of exported) vi.stubEnv(name, value);
    const [addsvc, started] = await Promise.all([
      startHttpBinary(join(root, addsvcRun.script), addsvcRun.args),
      startStringsvc(),
    ]);
    stringsvc = started;
    addresses.push([addsvcRun.addr, `127.0.0.1:${addsvc.port}`], [stringsvcRun.addr, stringsvc.http]);
    gateway = await runGateway();
    addresses.push([gatewayRun.addr, `127.0.0.1:${gateway.port}`]);
    if (tokenLine === null) throw new Error('README has no "TOKEN=$(...)   # <n> min" line');
    const [node, script = "", ...args] = shellWords(tokenLine[2] as string);
    expect(node).toBe("node");
    const signed = await runNode(join(root, script), args);
    expect(signed).toMatchObject({ code: 0, stderr: "" });
    vars[tokenLine[1] as string] = signed.stdout.trim();
  }, 180_000);
  afterAll(async () => {
    await stopProcesses();
    vi.unstubAllEnvs();
  });

  it('"Run it" builds the examples the test builds and starts them as the test does', () => {
    expect(runBlock[0]).toBe(
      `pnpm install && pnpm exec tsc -b ${EXAMPLES.map((e) => `examples/${e}`).join(" ")}`,
    );
    expect([addsvcRun, stringsvcRun, gatewayRun].map((r) => r.script)).toEqual([
      "examples/addsvc/dist/main.js",
      "examples/stringsvc/dist/main.js",
      "examples/apigateway/dist/main.js",
    ]);
    expect(join(root, addsvcRun.script)).toBe(addsvcJs);
    expect(join(root, gatewayRun.script)).toBe(gatewayJs);
    // What startStringsvc() runs, on a free port.
    expect(stringsvcRun.args).toEqual(["--grpc-addr", "off"]);
    expect(exported.map((m) => m[1])).toEqual(["APIGATEWAY_JWT_SECRET"]);
  });

  it("the token tool signs what the TOKEN line's comment says", () => {
    const payload = (vars.TOKEN ?? "").split(".")[1] ?? "";
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, number>;
    expect(claims).toMatchObject({ sub: "alice", scope: "add" });
    expect((claims.exp as number) - (claims.iat as number)).toBe(Number(tokenLine?.[3]) * 60);
  });

  const curls = commandsIn(readme.split("\n"), "curl ");
  it("documents the calls, the refused ones, the services' errors and readiness with curl lines", () => {
    expect(curls.length).toBe(10);
    expect(curls.filter((c) => c.line.includes("$TOKEN")).length).toBe(7);
  });

  it.each(curls.map((c) => [c.line, c]))("%s prints what the README shows", async (_, { line, expected }) => {
    const shown = expected.split("\n");
    const variantsAt = shown.findIndex((l) => l.startsWith("with "));
    const own = variantsAt < 0 ? shown : shown.slice(0, variantsAt);
    const sum = line.includes("/addsvc/sum") && line.includes("$TOKEN");
    if (sum && !own.join("\n").includes("RESOURCE_EXHAUSTED"))
      await sleep(Math.max(0, lastSum + 1_100 - Date.now()));
    const { response, printed } = await runCurl(rewrite(line), vars);
    if (sum && response.status !== 429) lastSum = Date.now();
    expectShown(printed, own.join("\n"));

    for (const variant of variantsAt < 0 ? [] : shown.slice(variantsAt)) {
      const [, flags = "", answer = ""] = /^with (.+?): (.*)$/.exec(variant) ?? [];
      const other = await runGateway(shellWords(flags));
      try {
        expectShown(
          (await runCurl(rewrite(line.replaceAll(gatewayRun.addr, `127.0.0.1:${other.port}`)), vars)).printed,
          answer,
        );
      } finally {
        process.kill(other.proc.pid, "SIGTERM");
        await other.proc.exited(10_000);
      }
    }
  });

  it("the flags table matches the gateway's usage: every flag, its argument and its default", async () => {
    const help = await runNode(gatewayJs, ["--help"]);
    expect(help.code).toBe(0);
    // One entry per flag: its line and the indented lines under it.
    const entries = help.stdout.split(/\n(?= {2}-)/).slice(1);
    expect(flagRows.length).toBe(entries.length);
    for (const { flag, def } of flagRows) {
      const entry = entries.find((e) => e.startsWith(`  ${flag} `));
      expect(entry, `no "${flag}" in the usage`).toBeDefined();
      // A note after the value, as in "0 (none)", is the README's.
      const value = def.replace(/ \(.*\)$/, "");
      if (value.startsWith("$")) expect(entry).toContain(`(or ${value})`);
      else if (value === "" || value === "none") expect(entry).not.toContain("(default");
      else if (value === "not checked") expect(entry).toContain("(default: not checked)");
      else expect(entry).toMatch(new RegExp(`\\(default ${escapeRegExp(value)}[);]`));
    }
  });

  it("writes the log lines the README shows, and stops on SIGTERM with exit code 0", async () => {
    // The retry line: stringsvc gone, a call to it is retried and fails as the errors table says.
    process.kill(stringsvc.proc.pid, "SIGKILL");
    await stringsvc.proc.exited(5_000);
    const gone = await send(gateway.port, {
      path: "/stringsvc/uppercase",
      headers: { authorization: `Bearer ${vars.TOKEN}`, "content-type": "application/json" },
      body: '{"s":"hello"}',
    });
    expect([gone.status, gone.json()]).toEqual([
      503,
      { code: "UNAVAILABLE", message: "request failed: ECONNREFUSED" },
    ]);
    process.kill(gateway.proc.pid, "SIGTERM");
    expect(await gateway.proc.exited(10_000)).toEqual({ code: 0, signal: null });

    const documented = firstBlock(readme.slice(readme.indexOf("one when it stops")), "text")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(rewrite(l)) as Record<string, unknown>);
    const logged = jsonLines(gateway.proc);
    for (const doc of documented) {
      const match = logged.find((l) => l.message === doc.message);
      expect(match, `no line "${String(doc.message)}"`).toBeDefined();
      expect(Object.keys(match as object).sort()).toEqual(Object.keys(doc).sort());
      for (const [key, value] of Object.entries(doc)) {
        // The fields the README says vary from run to run.
        if (!["timestamp", "durationMs", "delayMs"].includes(key)) expect(match?.[key], key).toEqual(value);
      }
    }
  });
});
