// How bench/perf-split.mjs reads `perf script` output: who owns a sample, and the overlapping views.
import { describe, expect, it } from "vitest";

interface PerfSplit {
  ownerOf(frame: string): string | undefined;
  splitSamples(text: string, mainTid: number): Map<string, number>;
}
// A computed specifier: bench/ is plain JavaScript without declarations, so the module is typed here.
const splitPath: string = "../bench/perf-split.mjs";
const split = (await import(splitPath)) as PerfSplit;

const SDK =
  "JS:*startSpan /w/node_modules/.pnpm/@opentelemetry+sdk-trace@2.12.1_@opentelemetry+api@1.9.0/node_modules/@opentelemetry/sdk-trace/build/src/Tracer.js:42:14";
const LOG = "JS:*writePrepared file:///w/packages/log/dist/json-logger.js:721:38";
const NODE_JS = "JS:*end node:_http_outgoing:1034:45";

/** One `perf script -F tid,ip,sym` sample: the thread id, then frames leaf first. */
function sample(tid: number, ...frames: [string, string][]): string {
  return `${tid}\n${frames.map(([ip, sym]) => `\t${ip} ${sym}`).join("\n")}\n\n`;
}

describe("ownerOf", () => {
  it("names svckit packages, pnpm and plain node_modules dependencies, and nothing else", () => {
    expect(split.ownerOf(LOG)).toBe("@svckit/log");
    expect(split.ownerOf("JS:^f /w/packages/tracing/src/server-tracing.ts:1:1")).toBe("@svckit/tracing");
    expect(split.ownerOf(SDK)).toBe("@opentelemetry/sdk-trace");
    expect(split.ownerOf("JS:*x /w/node_modules/.pnpm/winston@3.17.0/node_modules/winston/a.js:1:1")).toBe(
      "winston",
    );
    expect(split.ownerOf("JS:*x /w/node_modules/@scope/pkg/a.js:1:1")).toBe("@scope/pkg");
    expect(split.ownerOf(NODE_JS)).toBeUndefined();
    expect(split.ownerOf("Builtins_LoadIC")).toBeUndefined();
  });
});

describe("splitSamples", () => {
  it("charges a sample to its innermost JavaScript frame's owner, with the views beside", () => {
    const text = [
      // An IC miss inside the SDK: the SDK's.
      sample(7, ["1500000", "Builtins_LoadIC"], ["7f0000001", SDK], ["7f0000002", LOG]),
      // A socket write under node's http: node's, and both kernel views.
      sample(
        7,
        ["ffffffff81e82f7e", "sock_def_readable"],
        ["ffffffff81eb878e", "net_rx_action"],
        ["fde9d", "__GI___writev"],
        ["7f0000003", NODE_JS],
        ["7f0000004", LOG],
      ),
      // A scavenge the log line's allocation set off: the log's, and the GC view.
      sample(7, ["2000000", "v8::internal::Scavenger::ScavengeObject"], ["7f0000005", LOG]),
      // No JavaScript at all: kernel or native by the leaf.
      sample(7, ["ffffffff8225f759", "pvm_irq_enable"], ["9a0000", "uv__io_poll"]),
      sample(7, ["9a0001", "llhttp__internal_execute"]),
      // Another thread (a GC helper).
      sample(9, ["2000001", "v8::internal::ScavengerCollector::JobTask::Run"]),
    ].join("");
    const counts = Object.fromEntries(split.splitSamples(text, 7));
    expect(counts).toEqual({
      "main thread, total": 5,
      "@opentelemetry/sdk-trace": 1,
      "node's own JavaScript (http, streams, timers) and below": 1,
      "@svckit/log": 1,
      "no JavaScript on the stack: kernel": 1,
      "no JavaScript on the stack: native": 1,
      "view: kernel": 2,
      "view: loopback receive path (net_rx_action)": 1,
      "view: waking a reader (sock_def_readable)": 1,
      "view: garbage collection on the main thread": 1,
      "other threads (GC helpers, compiler)": 1,
    });
  });

  it("reads nothing from empty or foreign text", () => {
    expect(split.splitSamples("", 7).size).toBe(0);
    expect(split.splitSamples("no samples here\n", 7).size).toBe(0);
  });
});
