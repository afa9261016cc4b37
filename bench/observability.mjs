#!/usr/bin/env node
// Microbenchmark of the observability middlewares' per-call cost on the success path, in process:
// a no-op async endpoint called with the context svckit's HTTP server gives it (CallInfo for
// POST /sum, request headers as metadata), bare, then through each of @svckit/log (built-in JSON-lines
// logger writing to /dev/null), @svckit/metrics (prom-client), @svckit/tracing (OTel SDK recording
// every span into a BatchSpanProcessor whose exporter drops the batches; also with the SDK sampling 10%
// of new traces, and with no SDK, so the API's no-op tracer answers) and all three (with the SDK recording
// every span, and with no SDK), composed as bench/servers/svckit-http-observed.mjs composes them. Cases are interleaved round by round after a
// warm-up; the median round counts. Prints µs per call and the overhead over the bare endpoint.
//
// The load bench (http.mjs --only observability) is what the target is judged on; this one
// isolates the middlewares' own CPU, which a loopback load run on a drifting machine cannot.
//
//   node bench/observability.mjs [--calls 200000] [--rounds 5] [--json out.json]
import { ProxyTracerProvider, propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import { chain, createContext } from "@svckit/endpoint";
import { createJsonLogger, logging } from "@svckit/log";
import { createMetrics } from "@svckit/metrics";
import { serverTracing } from "@svckit/tracing";
import { interleavedRounds, machineInfo, markdownTable, microBenchCli, microBenchOptions } from "./lib.mjs";

export const OBSERVABILITY_OPTIONS = microBenchOptions(200_000);

const endpoint = async (_ctx, req) => req.a + req.b;
const req = { a: 1, b: 2 };
let sink = 0;

// What svckit's HTTP server puts in a request's context: its CallInfo (one object per route) and the
// request's headers, as wrk sends them.
const callInfo = Object.freeze({ transport: "http", method: "POST", route: "/sum" });
const headers = {
  host: "127.0.0.1:8080",
  "content-type": "application/json",
  "content-length": "13",
  "user-agent": "wrk",
};

function buildCases() {
  const dropping = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} };
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropping)] });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const logger = createJsonLogger({ destination: "/dev/null", redact: false });
  const log = () => logging({ logger, name: "sum" });
  // The bench servers' other two set-ups: the SDK sampling 10% of new traces, and no SDK at all (an
  // unregistered ProxyTracerProvider, which is what the global one is until an SDK registers: the API's
  // no-op tracer answers).
  const sampled = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(dropping)],
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.1) }),
  });
  const noSdk = new ProxyTracerProvider();
  const metrics = createMetrics();
  const cases = [
    { name: "bare endpoint", endpoint },
    { name: "log (JSON logger)", endpoint: log()(endpoint) },
    { name: "metrics", endpoint: metrics.middleware({ name: "sum" })(endpoint) },
    { name: "tracing (SDK, every span recorded)", endpoint: serverTracing()(endpoint) },
    { name: "tracing (SDK, 10% sampled)", endpoint: serverTracing({ tracerProvider: sampled })(endpoint) },
    { name: "tracing (no SDK)", endpoint: serverTracing({ tracerProvider: noSdk })(endpoint) },
    {
      name: "log + metrics + tracing",
      endpoint: chain(serverTracing(), log(), metrics.middleware({ name: "sum-all3" }))(endpoint),
    },
    {
      name: "log + metrics + tracing (no SDK)",
      endpoint: chain(
        serverTracing({ tracerProvider: noSdk }),
        log(),
        metrics.middleware({ name: "sum-all3-nosdk" }),
      )(endpoint),
    },
  ];
  const close = async () => {
    await provider.shutdown();
    await sampled.shutdown();
    await logger.close();
  };
  return { cases, close };
}

/** Runs every case and returns ns per call (median of rounds). */
export async function runObservability({ calls, rounds }, log = console.log) {
  const { cases, close } = buildCases();
  try {
    for (const c of cases) {
      if ((await c.endpoint(createContext({ callInfo, metadata: headers }), req)) !== 3) {
        throw new Error(`${c.name} broke the answer`);
      }
    }
    log(
      `observability bench: node ${process.version}, ${calls.toLocaleString("en-US")} awaited calls × ${rounds} rounds per case`,
    );
    const timed = await interleavedRounds(cases, { calls, rounds }, async (c, n) => {
      const t0 = process.hrtime.bigint();
      let s = 0;
      for (let i = 0; i < n; i++) {
        // A fresh context per call, as a server makes one per request.
        s += await c.endpoint(createContext({ callInfo, metadata: headers }), req);
      }
      sink += s;
      return Number(process.hrtime.bigint() - t0) / n;
    });
    return {
      bench: "observability",
      node: process.version,
      machine: machineInfo(),
      calls,
      rounds,
      cases: timed,
      sink,
    };
  } finally {
    await close();
  }
}

export function formatObservability(result) {
  const rows = result.cases.map((c, i) => [
    c.name,
    (c.nsPerCall / 1000).toFixed(2),
    i === 0 ? "" : `+${(c.overheadNs / 1000).toFixed(2)}`,
  ]);
  return markdownTable(["case", "µs/call", "overhead µs/call"], rows, ["left", "right", "right"]);
}

microBenchCli(import.meta.url, {
  file: "observability.mjs",
  options: OBSERVABILITY_OPTIONS,
  run: runObservability,
  format: formatObservability,
});
