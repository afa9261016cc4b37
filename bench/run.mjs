#!/usr/bin/env node
// Runs every svckit benchmark (chain.mjs, then http.mjs) and prints one report that can be pasted
// into bench/RESULTS.md. `pnpm bench` (root) builds first and then runs this.
//
//   node bench/run.mjs [http.mjs options] [--calls N] [--skip-chain] [--skip-http] [--json out.json]
//
// --node PATH runs both the HTTP servers and the chain microbenchmark on that Node binary.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatChain } from "./chain.mjs";
import { formatHttp, HTTP_OPTIONS, HTTP_USAGE, httpSettings, runHttp, waitQuiet } from "./http.mjs";
import { cliArgs, distStamp, gitHead, machineInfo, nodeVersion } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));

const OPTIONS = {
  ...HTTP_OPTIONS,
  calls: { type: "string", default: "1000000" },
  "skip-chain": { type: "boolean" },
  "skip-http": { type: "boolean" },
};

/** Runs chain.mjs on the chosen Node binary (pinned like the servers) and returns its JSON result. */
function runChainChild(nodeBin, calls) {
  const dir = mkdtempSync(join(tmpdir(), "svckit-bench-"));
  const out = join(dir, "chain.json");
  return new Promise((resolve, reject) => {
    const child = spawn(
      "taskset",
      ["-c", "0", nodeBin, join(here, "chain.mjs"), "--calls", calls, "--json", out],
      {
        stdio: "inherit",
      },
    );
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(`chain.mjs exited with code ${code}, signal ${signal}`);
        resolve(JSON.parse(readFileSync(out, "utf8")));
      } catch (error) {
        reject(error);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

async function main() {
  const { values } = parseArgs({ args: cliArgs(), options: OPTIONS, strict: true });
  if (values.help) {
    console.log(
      `usage: node bench/run.mjs [options]\n${HTTP_USAGE}\n` +
        "  --calls N         awaited calls per case in the chain microbenchmark (default 1000000)\n" +
        "  --skip-chain      do not run the chain microbenchmark\n" +
        "  --skip-http       do not run the HTTP load benchmark",
    );
    return;
  }
  const settings = httpSettings(values);
  const machine = machineInfo();
  const report = {
    date: new Date().toISOString(),
    command: `node ${process.argv.slice(1).join(" ")}`,
    git: gitHead(),
    dist: new Date(distStamp().mtimeMs).toISOString(),
    machine,
    node: { path: settings.node, version: nodeVersion(settings.node), harness: process.version },
  };
  console.log(`svckit benchmarks — ${report.date}`);
  console.log(`command: ${report.command}`);
  console.log(
    `git HEAD: ${report.git ?? "unknown"}; newest dist file of endpoint, codec-json, transport-http: ${report.dist}`,
  );
  console.log(`node: ${report.node.version} (${report.node.path}); harness node ${process.version}`);
  console.log(
    `machine: ${machine.nproc} CPUs (nproc), ${machine.cpuModel}, ${machine.kernel}, load average ${machine.loadavg.join(" ")}`,
  );
  console.log("");

  if (!values["skip-chain"]) {
    if (settings.waitQuiet > 0) await waitQuiet(settings.waitQuiet);
    report.chain = await runChainChild(settings.node, values.calls);
    console.log("");
  }
  if (!values["skip-http"]) {
    report.http = await runHttp(settings);
  }

  console.log(`\n## Results — node ${report.node.version}, ${report.date}\n`);
  if (report.chain !== undefined) {
    console.log(
      `### chain (ns per awaited call, median of ${report.chain.rounds} × ${report.chain.calls.toLocaleString("en-US")} calls)\n`,
    );
    console.log(formatChain(report.chain));
    console.log("");
  }
  if (report.http !== undefined) {
    console.log("### http (POST /sum)\n");
    console.log(formatHttp(report.http));
  }
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote ${values.json}`);
  }
  if (report.http?.rounds.flat().some((r) => !r.valid)) process.exitCode = 1;
}

main().catch((error) => {
  console.error(`bench: ${error.message}`);
  process.exit(2);
});
