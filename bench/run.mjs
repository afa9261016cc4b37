#!/usr/bin/env node
// Runs every svckit benchmark (chain.mjs, lb.mjs, then http.mjs, then grpc.mjs) and prints one report
// that can be pasted into bench/RESULTS.md. `pnpm bench` (root) builds first and then runs this.
//
//   node bench/run.mjs [http.mjs and grpc.mjs options] [--calls N] [--lb-calls N] [--skip-chain]
//                      [--skip-lb] [--skip-http] [--skip-grpc] [--json out.json]
//
// --node PATH runs the HTTP and gRPC servers and the chain and lb microbenchmarks on that Node binary.
// --only takes variant names of both load benches; a bench none of whose variants is named is skipped.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatChain } from "./chain.mjs";
import {
  formatGrpc,
  GRPC_GROUPS,
  GRPC_OPTIONS,
  GRPC_USAGE,
  GRPC_VARIANTS,
  grpcSettings,
  runGrpc,
} from "./grpc.mjs";
import {
  formatHttp,
  GROUPS,
  HTTP_OPTIONS,
  HTTP_USAGE,
  httpSettings,
  runHttp,
  VARIANTS,
  waitQuiet,
} from "./http.mjs";
import { formatLb } from "./lb.mjs";
import { cliArgs, distStamp, gitHead, machineInfo, nodeVersion } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
/** Every package whose dist/ a bench server or microbenchmark loads. */
const DIST_PACKAGES = [
  "endpoint",
  "codec-json",
  "transport-http",
  "codec-protobuf",
  "transport-grpc",
  "sd",
  "lb",
];

const OPTIONS = {
  ...HTTP_OPTIONS,
  shapes: GRPC_OPTIONS.shapes,
  calls: { type: "string", default: "1000000" },
  "lb-calls": { type: "string", default: "300000" },
  "skip-chain": { type: "boolean" },
  "skip-lb": { type: "boolean" },
  "skip-http": { type: "boolean" },
  "skip-grpc": { type: "boolean" },
};

/** The gRPC-only lines of grpc.mjs's usage (the shared options are in HTTP_USAGE already). */
const GRPC_ONLY_USAGE = GRPC_USAGE.split("\n")
  .filter((line) => line.startsWith("  --shapes"))
  .join("\n");

/**
 * Splits `--only a,b` between the HTTP and the gRPC bench: each gets the names of its own variants
 * (undefined = all of them), and `run` says whether it has any to run.
 */
function splitOnly(only) {
  // Group names (--only addsvc, observability, auth) go to each bench that knows them.
  const httpNames = [...VARIANTS.map((v) => v.name), ...Object.keys(GROUPS)];
  const grpcNames = [...GRPC_VARIANTS.map((v) => v.name), ...Object.keys(GRPC_GROUPS)];
  if (only === undefined)
    return { http: { only: undefined, run: true }, grpc: { only: undefined, run: true } };
  const names = only
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!httpNames.includes(name) && !grpcNames.includes(name)) {
      throw new Error(
        `--only: unknown variant "${name}" (known: ${[...httpNames, ...grpcNames].join(", ")})`,
      );
    }
  }
  const http = names.filter((n) => httpNames.includes(n));
  const grpc = names.filter((n) => grpcNames.includes(n));
  return {
    http: { only: http.join(","), run: http.length > 0 },
    grpc: { only: grpc.join(","), run: grpc.length > 0 },
  };
}

/**
 * Runs a microbenchmark (`chain.mjs`, `lb.mjs`) with `--calls calls` on the chosen Node binary, pinned
 * like the servers, and returns its JSON result.
 */
function runMicroChild(nodeBin, script, calls) {
  const dir = mkdtempSync(join(tmpdir(), "svckit-bench-"));
  const out = join(dir, "result.json");
  return new Promise((resolve, reject) => {
    const child = spawn(
      "taskset",
      ["-c", "0", nodeBin, join(here, script), "--calls", calls, "--json", out],
      {
        stdio: "inherit",
      },
    );
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(`${script} exited with code ${code}, signal ${signal}`);
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
        `                    (--only also takes the gRPC variants: ${GRPC_VARIANTS.map((v) => v.name).join(", ")} and "addsvc"; the gRPC bench\n` +
        "                    has fixed load shapes instead of --connections)\n" +
        `${GRPC_ONLY_USAGE}\n` +
        "  --calls N         awaited calls per case in the chain microbenchmark (default 1000000)\n" +
        "  --lb-calls N      picks or awaited calls per case in the lb microbenchmark (default 300000)\n" +
        "  --skip-chain      do not run the chain microbenchmark\n" +
        "  --skip-lb         do not run the lb (balancer) microbenchmark\n" +
        "  --skip-http       do not run the HTTP load benchmark\n" +
        "  --skip-grpc       do not run the gRPC load benchmark",
    );
    return;
  }
  const only = splitOnly(values.only);
  const settings = httpSettings({ ...values, only: only.http.only });
  const grpc = grpcSettings({ ...values, only: only.grpc.only });
  const runsHttp = !values["skip-http"] && only.http.run;
  const runsGrpc = !values["skip-grpc"] && only.grpc.run;
  const machine = machineInfo();
  const report = {
    date: new Date().toISOString(),
    command: `node ${process.argv.slice(1).join(" ")}`,
    git: gitHead(),
    dist: new Date(distStamp(DIST_PACKAGES).mtimeMs).toISOString(),
    machine,
    node: { path: settings.node, version: nodeVersion(settings.node), harness: process.version },
  };
  console.log(`svckit benchmarks — ${report.date}`);
  console.log(`command: ${report.command}`);
  console.log(
    `git HEAD: ${report.git ?? "unknown"}; newest dist file of ${DIST_PACKAGES.join(", ")}: ${report.dist}`,
  );
  console.log(`node: ${report.node.version} (${report.node.path}); harness node ${process.version}`);
  console.log(
    `machine: ${machine.nproc} CPUs (nproc), ${machine.cpuModel}, ${machine.kernel}, load average ${machine.loadavg.join(" ")}`,
  );
  console.log("");

  if (!values["skip-chain"]) {
    if (settings.waitQuiet > 0) await waitQuiet(settings.waitQuiet);
    report.chain = await runMicroChild(settings.node, "chain.mjs", values.calls);
    console.log("");
  }
  if (!values["skip-lb"]) {
    if (settings.waitQuiet > 0) await waitQuiet(settings.waitQuiet);
    report.lb = await runMicroChild(settings.node, "lb.mjs", values["lb-calls"]);
    console.log("");
  }
  if (runsHttp) {
    report.http = await runHttp(settings);
    console.log("");
  }
  if (runsGrpc) {
    report.grpc = await runGrpc(grpc);
  }

  console.log(`\n## Results — node ${report.node.version}, ${report.date}\n`);
  if (report.chain !== undefined) {
    console.log(
      `### chain (ns per awaited call, median of ${report.chain.rounds} × ${report.chain.calls.toLocaleString("en-US")} calls)\n`,
    );
    console.log(formatChain(report.chain));
    console.log("");
  }
  if (report.lb !== undefined) {
    console.log(
      `### lb (ns per pick and per awaited call through createBalancedEndpoint, median of ${report.lb.rounds} rounds)\n`,
    );
    console.log(formatLb(report.lb));
    console.log("");
  }
  if (report.http !== undefined) {
    console.log("### http (POST /sum)\n");
    console.log(formatHttp(report.http));
    console.log("");
  }
  if (report.grpc !== undefined) {
    console.log("### grpc (unary /pb.Add/Sum)\n");
    console.log(formatGrpc(report.grpc));
  }
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote ${values.json}`);
  }
  const invalid = (bench) => bench?.rounds.flat().some((r) => !r.valid);
  if (invalid(report.http) || invalid(report.grpc)) process.exitCode = 1;
}

main().catch((error) => {
  console.error(`bench: ${error.message}`);
  process.exit(2);
});
