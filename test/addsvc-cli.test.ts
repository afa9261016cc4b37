// The built addcli against the built addsvc: go-kit addcli's output (`1 + 2 = 3`, `"ab" + "cd" = "abcd"`)
// over HTTP, gRPC and JSON-RPC, its flag styles, `error: <message>` with exit status 1 for the service's
// errors and failed calls, and exit status 2 with the usage for a bad command line.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addcli, ensureBuilt, portOf, type RunningAddsvc, startAddsvc } from "./fixtures/addsvc-helpers.js";
import { freePort, send, stopProcesses } from "./support.js";

describe("addcli", () => {
  let svc: RunningAddsvc;
  /** The flag selecting each transport, with the address of the running addsvc. */
  let flags: Record<"http" | "grpc" | "jsonrpc", string>;

  beforeAll(async () => {
    await ensureBuilt();
    svc = await startAddsvc(["--debug-addr", "off"]);
    flags = {
      http: `--http-addr=${svc.http}`,
      grpc: `--grpc-addr=${svc.grpc}`,
      jsonrpc: `--jsonrpc-addr=${svc.jsonrpc}`,
    };
  }, 180_000);
  afterAll(stopProcesses);

  const transports = ["http", "grpc", "jsonrpc"] as const;

  it.each(transports)("over %s: sum 1 2 prints 1 + 2 = 3 and exits 0", async (t) => {
    expect(await addcli(flags[t], "sum", "1", "2")).toEqual({ code: 0, stdout: "1 + 2 = 3\n", stderr: "" });
  });

  it.each(transports)('over %s: -method concat ab cd prints "ab" + "cd" = "abcd"', async (t) => {
    expect(await addcli(flags[t], "-method", "concat", "ab", "cd")).toEqual({
      code: 0,
      stdout: '"ab" + "cd" = "abcd"\n',
      stderr: "",
    });
  });

  it.each(transports)(
    "over %s: the service's errors print error: <message> on stderr and exit 1",
    async (t) => {
      const [zeroes, overflow, size] = await Promise.all([
        addcli(flags[t], "sum", "0", "0"),
        addcli(flags[t], "sum", "2147483647", "1"),
        addcli(flags[t], "concat", "abcdef", "ghijk"),
      ]);
      expect(zeroes).toEqual({ code: 1, stdout: "", stderr: "error: can't sum two zeroes\n" });
      expect(overflow).toEqual({ code: 1, stdout: "", stderr: "error: integer overflow\n" });
      expect(size).toEqual({ code: 1, stdout: "", stderr: "error: result exceeds maximum size\n" });
    },
  );

  it("takes go-kit's single-dash flags, a method flag or argument, and sum by default", async () => {
    const [single, methodFirst, byDefault, doubleDash] = await Promise.all([
      addcli("-grpc-addr", svc.grpc as string, "-method", "sum", "20", "22"),
      addcli("-jsonrpc-addr", svc.jsonrpc as string, "concat", "x", "y"),
      addcli("-http-addr", svc.http as string, "3", "4"),
      addcli("--method=concat", "--http-addr", svc.http as string, "a", "b"),
    ]);
    expect(single).toEqual({ code: 0, stdout: "20 + 22 = 42\n", stderr: "" });
    expect(methodFirst).toEqual({ code: 0, stdout: '"x" + "y" = "xy"\n', stderr: "" });
    expect(byDefault).toEqual({ code: 0, stdout: "3 + 4 = 7\n", stderr: "" });
    expect(doubleDash).toEqual({ code: 0, stdout: '"a" + "b" = "ab"\n', stderr: "" });
  });

  it("negative numbers are arguments, not flags; -- ends the flags", async () => {
    const [negative, ended] = await Promise.all([
      addcli(flags.http, "sum", "-5", "3"),
      addcli(flags.grpc, "-method", "concat", "--", "-a", "-b"),
    ]);
    expect(negative).toEqual({ code: 0, stdout: "-5 + 3 = -2\n", stderr: "" });
    expect(ended).toEqual({ code: 0, stdout: '"-a" + "-b" = "-a-b"\n', stderr: "" });
  });

  it("quotes strings as Go's %q does", async () => {
    const out = await addcli(flags.jsonrpc, "concat", 'a"b', "é\t");
    expect(out).toEqual({ code: 0, stdout: '"a\\"b" + "é\\t" = "a\\"bé\\t"\n', stderr: "" });
  });

  it("sums the whole int64 range over gRPC; over JSON transports a value JSON cannot carry is an error", async () => {
    const [grpc, http] = await Promise.all([
      addcli(flags.grpc, "sum", "-9223372036854775808", "0"),
      addcli(flags.http, "sum", "9007199254740993", "0"),
    ]);
    expect(grpc).toEqual({
      code: 0,
      stdout: "-9223372036854775808 + 0 = -9223372036854775808\n",
      stderr: "",
    });
    expect(http.code).toBe(1);
    expect(http.stderr).toBe(
      "error: a: 9007199254740993 cannot be sent exactly as a JSON number (at most 2^53 - 1 in magnitude); use gRPC\n",
    );
  });

  it("a server that is not there: error: ... and exit 1", async () => {
    const port = await freePort();
    const [http, grpc, jsonrpc] = await Promise.all([
      addcli("-http-addr", `127.0.0.1:${port}`, "sum", "1", "2"),
      addcli("-grpc-addr", `127.0.0.1:${port}`, "sum", "1", "2"),
      addcli("-jsonrpc-addr", `127.0.0.1:${port}`, "sum", "1", "2"),
    ]);
    expect(http).toEqual({ code: 1, stdout: "", stderr: "error: request failed: ECONNREFUSED\n" });
    expect(jsonrpc).toEqual({ code: 1, stdout: "", stderr: "error: request failed: ECONNREFUSED\n" });
    expect(grpc.code).toBe(1);
    expect(grpc.stderr).toMatch(/^error: .+\n$/);
  });

  it.each([
    [[], "addcli: no remote address specified"],
    [["sum", "1", "2"], "addcli: no remote address specified"],
    [
      ["-http-addr", "127.0.0.1:1", "-grpc-addr", "127.0.0.1:2", "1", "2"],
      "give one address, not -http-addr and -grpc-addr",
    ],
    [["-http-addr", "127.0.0.1:1", "mul", "1", "2"], 'addcli: invalid method "mul": expected sum or concat'],
    [["-http-addr", "127.0.0.1:1", "-method", "mul", "1", "2"], 'addcli: invalid method "mul"'],
    [["-http-addr", "127.0.0.1:1", "1"], "addcli: expected two arguments <a> <b>, got 1"],
    [["-http-addr", "127.0.0.1:1", "sum", "1", "2", "3"], "addcli: expected two arguments <a> <b>, got 4"],
    [["-http-addr", "127.0.0.1:1", "sum", "one", "2"], 'addcli: invalid integer "one"'],
    [["-http-addr", "127.0.0.1:1", "sum", "9223372036854775808", "2"], "is out of the 64-bit range"],
    [["-thrift-addr", "127.0.0.1:1", "1", "2"], "addcli: unknown flag -thrift-addr"],
    [["-http-addr", "127.0.0.1:1", "-timeout", "soon", "1", "2"], 'invalid duration "soon" for -timeout'],
  ])("%j exits 2 with the usage", async (args, message) => {
    const out = await addcli(...args);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(message);
    expect(out.stderr).toContain("usage: addcli [flags] [sum|concat] <a> <b>");
    expect(out.stdout).toBe("");
  });

  it("-h prints the usage and exits 0", async () => {
    const out = await addcli("-h");
    expect(out.code).toBe(0);
    expect(out.stdout).toContain("usage: addcli [flags] [sum|concat] <a> <b>");
    expect(out.stdout).toContain("-jsonrpc-addr host:port");
  });
});

describe("addcli against rate limits", () => {
  beforeAll(ensureBuilt, 180_000);
  afterAll(stopProcesses);

  it("prints the limiter's message and exits 1", async () => {
    const svc = await startAddsvc(["--sum-rate", "1", "--breaker-calls", "0", "--debug-addr", "off"]);
    // Each addcli is a new process whose start takes a while on a busy machine. Raw requests every 50 ms
    // take each 1 s window's one slot at once, so addcli's call finds it taken.
    const hog = setInterval(() => {
      void send(portOf(svc.http), { path: "/sum", headers: {}, body: '{"a":1}' }).catch(() => {});
    }, 50);
    try {
      const outs = [];
      for (const [flag, addr] of [
        ["-http-addr", svc.http],
        ["-grpc-addr", svc.grpc],
        ["-jsonrpc-addr", svc.jsonrpc],
      ] as const) {
        // At most a few tries: the call passes only if it is first in a window, before the next raw request.
        let out = await addcli(flag, addr as string, "1", "2");
        for (let i = 0; i < 4 && out.code === 0; i++) out = await addcli(flag, addr as string, "1", "2");
        outs.push(out);
      }
      for (const out of outs) {
        expect(out.code).toBe(1);
        expect(out.stdout).toBe("");
        expect(out.stderr).toMatch(
          /^error: rate limit "sum" exceeded: at most 1 calls per 1000 ms, retry in [\d.]+ s\n$/,
        );
      }
    } finally {
      clearInterval(hog);
    }
  });

  it("prints the open breaker's message and exits 1", async () => {
    const svc = await startAddsvc(["--sum-rate", "1", "--breaker-calls", "3", "--breaker-timeout", "60s"]);
    // Three quick raw calls: one passes, two are refused, and the breaker opens for 60 s.
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await send(portOf(svc.http), { path: "/sum", headers: {}, body: '{"a":1}' })).status);
    }
    expect(statuses.at(-1)).toBe(503);
    const outs = await Promise.all([
      addcli("-http-addr", svc.http as string, "1", "2"),
      addcli("-grpc-addr", svc.grpc as string, "1", "2"),
      addcli("-jsonrpc-addr", svc.jsonrpc as string, "1", "2"),
    ]);
    for (const out of outs) {
      expect(out).toEqual({ code: 1, stdout: "", stderr: 'error: circuit breaker "sum" is open\n' });
    }
    // concat has a breaker of its own, still closed.
    expect(await addcli("-grpc-addr", svc.grpc as string, "concat", "a", "b")).toMatchObject({ code: 0 });
  });
});
