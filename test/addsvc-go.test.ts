// Go interop: test/go/addclient, a grpc-go client of pb.Add built the way go-kit's addcli calls addsvc
// over gRPC (reply.err → error, status errors printed as grpc-go formats them), is built with the
// machine's Go toolchain in GOPATH mode (Debian's golang-go, golang-google-grpc-dev and
// golang-github-golang-protobuf-1-3-dev) and run against the built svckit addsvc, once on each gRPC
// server engine (`--grpc-engine grpc-js` and `--grpc-engine h2`).
//
// Without Go (or without grpc-go's sources) the tests say so loudly and are skipped, except under
// CI=true, where that is a failure.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, type TestContext } from "vitest";
import {
  addcli,
  ensureBuilt,
  GRPC_ENGINES,
  portOf,
  type RunningAddsvc,
  runCommand,
  startAddsvc,
} from "./fixtures/addsvc-helpers.js";
import { send, stopProcesses } from "./support.js";

const GOPATH = "/usr/share/gocode";
const NEEDED = ["google.golang.org/grpc", "github.com/golang/protobuf/proto", "golang.org/x/net/http2"];

/** Why Go interop cannot run here, or undefined when it can. */
function missing(): string | undefined {
  const version = spawnSync("go", ["version"], { encoding: "utf8" });
  if (version.error !== undefined || version.status !== 0) return "the go command is not installed";
  const absent = NEEDED.filter((p) => !existsSync(join(GOPATH, "src", p)));
  if (absent.length > 0) return `Go packages missing from ${GOPATH}/src: ${absent.join(", ")}`;
  return undefined;
}

const why = missing();
const onCi = process.env.CI === "true";

/** Skips the test (loudly) when Go is missing; fails it under CI. */
function requireGo(ctx: TestContext): void {
  if (why === undefined) return;
  const message = `Go interop test NOT RUN: ${why}. Install golang-go, golang-google-grpc-dev and golang-github-golang-protobuf-1-3-dev.`;
  if (onCi) throw new Error(`${message} (CI=true: Go is required)`);
  console.warn(`\n*** ${message} ***\n`);
  ctx.skip();
}

const env = {
  ...process.env,
  GOPATH,
  GO111MODULE: "off",
  GOFLAGS: "",
  GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "svckit-go-build-cache"),
};
let dir: string | undefined;
let bin: string;

beforeAll(async () => {
  await ensureBuilt();
  if (why !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), "addsvc-go-"));
  bin = join(dir, "addclient");
  // `go build ./test/go/addclient` from the repository root. A cold build cache takes ~10 s on two
  // cores; a warm one well under 1 s.
  const build = await runCommand("go", ["build", "-o", bin, "./test/go/addclient"], 150_000, env);
  if (build.code !== 0) throw new Error(`go build failed (${build.code}): ${build.stderr}`);
}, 180_000);
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe.each(GRPC_ENGINES)("on the %s gRPC engine", (engine) => {
  /** The built addsvc with its gRPC server on this suite's engine. */
  const start = (args: readonly string[]): Promise<RunningAddsvc> =>
    startAddsvc(["--grpc-engine", engine, ...args]);

  describe("a grpc-go client (test/go/addclient) against svckit's addsvc", () => {
    let svc: RunningAddsvc;
    const goClient = (...args: string[]) =>
      runCommand(bin, ["-addr", svc.grpc as string, ...args], 20_000, env);

    beforeAll(async () => {
      if (why !== undefined) return;
      svc = await start(["--http-addr", "off", "--debug-addr", "off"]);
    }, 30_000);
    afterAll(stopProcesses);

    it("Sum(1, 2) and Concat(ab, cd) answer as go-kit's addcli prints them", async (ctx) => {
      requireGo(ctx);
      expect(await goClient("1", "2")).toEqual({ code: 0, stdout: "1 + 2 = 3\n", stderr: "" });
      expect(await goClient("-method", "concat", "ab", "cd")).toEqual({
        code: 0,
        stdout: '"ab" + "cd" = "abcd"\n',
        stderr: "",
      });
    });

    it("the service's errors arrive in the reply's err field, which the Go client turns into errors", async (ctx) => {
      requireGo(ctx);
      expect(await goClient("0", "0")).toEqual({
        code: 1,
        stdout: "",
        stderr: "error: can't sum two zeroes\n",
      });
      expect(await goClient("2147483647", "1")).toEqual({
        code: 1,
        stdout: "",
        stderr: "error: integer overflow\n",
      });
      expect(await goClient("-method", "concat", "abcdef", "ghijk")).toEqual({
        code: 1,
        stdout: "",
        stderr: "error: result exceeds maximum size\n",
      });
    });

    it("negative and 64-bit values are exact", async (ctx) => {
      requireGo(ctx);
      expect(await goClient("--", "-5", "-7")).toEqual({ code: 0, stdout: "-5 + -7 = -12\n", stderr: "" });
      expect(await goClient("4611686018427387904", "0")).toEqual({
        code: 0,
        stdout: "4611686018427387904 + 0 = 4611686018427387904\n",
        stderr: "",
      });
    });

    it("addcli prints exactly what the Go client prints, %q quoting included", async (ctx) => {
      requireGo(ctx);
      for (const [a, b] of [
        ["é", "€"],
        ['a"b', "\t"],
        ["x\u00a0", "\\"],
        ["", ""],
      ] as const) {
        const go = await goClient("-method", "concat", "--", a, b);
        const node = await addcli("-grpc-addr", svc.grpc as string, "-method", "concat", "--", a, b);
        expect(go.code).toBe(0);
        expect(node).toEqual(go);
      }
      for (const [a, b] of [
        ["0", "0"],
        ["-3", "10"],
      ] as const) {
        expect(await addcli("-grpc-addr", svc.grpc as string, "--", a, b)).toEqual(
          await goClient("--", a, b),
        );
      }
    });
  });

  describe("a grpc-go client against svckit's rate limit and breaker", () => {
    afterAll(stopProcesses);

    it("sees a refusal as status RESOURCE_EXHAUSTED with the limiter's message", async (ctx) => {
      requireGo(ctx);
      const svc = await start(["--sum-rate", "1", "--breaker-calls", "0"]);
      // Raw HTTP requests every 50 ms take each 1 s window's slot, so the Go client's call finds it taken
      // however long the process takes to start on a busy machine (a few tries for the rare window it wins).
      const hog = setInterval(() => {
        void send(portOf(svc.http), { path: "/sum", headers: {}, body: '{"a":1}' }).catch(() => {});
      }, 50);
      try {
        const call = () => runCommand(bin, ["-addr", svc.grpc as string, "1", "2"], 20_000, env);
        let out = await call();
        for (let i = 0; i < 4 && out.code === 0; i++) out = await call();
        expect(out.code).toBe(1);
        expect(out.stdout).toBe("");
        expect(out.stderr).toMatch(
          /^error: rpc error: code = ResourceExhausted desc = rate limit "sum" exceeded: at most 1 calls per 1000 ms, retry in [\d.]+ s\n$/,
        );
      } finally {
        clearInterval(hog);
      }
    });

    it('sees an open breaker as status UNAVAILABLE with circuit breaker "sum" is open', async (ctx) => {
      requireGo(ctx);
      const svc = await start(["--sum-rate", "1", "--breaker-calls", "3", "--breaker-timeout", "60s"]);
      // Quick raw calls: one passes, two are refused, the breaker opens for 60 s.
      for (let i = 0; i < 3; i++)
        await send(portOf(svc.http), { path: "/sum", headers: {}, body: '{"a":1}' });
      expect(await runCommand(bin, ["-addr", svc.grpc as string, "1", "2"], 20_000, env)).toEqual({
        code: 1,
        stdout: "",
        stderr: 'error: rpc error: code = Unavailable desc = circuit breaker "sum" is open\n',
      });
    });
  });
});
