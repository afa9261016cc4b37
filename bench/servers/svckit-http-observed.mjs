// svckit on node:http (as servers/svckit-http.mjs) with observability middleware composed on the
// endpoint, chosen by the first argument, a comma list of: log, metrics, tracing.
// - log: @svckit/log's logging middleware on its built-in JSON-lines logger (createJsonLogger) writing
//   to /dev/null (the line is built and written; only the disk is left out); the middleware redacts,
//   so the logger is told not to redact again (redact: false), as the package README advises;
// - log-winston: the same middleware on a winston JSON logger writing to /dev/null;
// - metrics: @svckit/metrics' middleware (counter, histogram, in-flight gauge) on its own registry;
// - tracing: @svckit/tracing's serverTracing with the OTel SDK recording every span (always-on
//   sampler, W3C propagator) into a BatchSpanProcessor whose exporter drops the batches;
// - sampled (with tracing): the SDK samples 10% of new traces instead (ParentBasedSampler over a
//   TraceIdRatioBasedSampler(0.1)), as production setups commonly do; the others get non-recording spans;
// - ids (with tracing): the SDK makes its trace and span ids with @svckit/tracing's createIdGenerator;
// - nosdk (with tracing): no SDK at all, so @opentelemetry/api's no-op tracer answers: what is left is
//   the tracing middleware's own work (extracting the propagated context, calling the tracer, contexts).
import { createWriteStream } from "node:fs";
import http from "node:http";
import { propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import { chain } from "@svckit/endpoint";
import { createJsonLogger, logging } from "@svckit/log";
import { createWinstonLogger } from "@svckit/log/winston";
import { createMetrics } from "@svckit/metrics";
import { createIdGenerator, serverTracing } from "@svckit/tracing";
import {
  createHttpHandler,
  createRouter,
  encodeJsonResponse,
  jsonRequestDecoder,
} from "@svckit/transport-http";
import winston from "winston";
import { serve } from "./common.mjs";

const wanted = new Set((process.argv[2] ?? "").split(",").filter(Boolean));
for (const w of wanted) {
  if (!["log", "log-winston", "metrics", "tracing", "sampled", "ids", "nosdk"].includes(w)) {
    throw new Error(`unknown middleware "${w}"`);
  }
}

const middlewares = [];
if (wanted.has("tracing") && wanted.has("nosdk")) {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  middlewares.push(serverTracing());
} else if (wanted.has("tracing")) {
  const dropping = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} };
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({
      spanProcessors: [new BatchSpanProcessor(dropping)],
      ...(wanted.has("ids") ? { idGenerator: createIdGenerator() } : {}),
      ...(wanted.has("sampled")
        ? { sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.1) }) }
        : {}),
    }),
  );
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  middlewares.push(serverTracing());
}
if (wanted.has("log")) {
  const logger = createJsonLogger({ destination: "/dev/null", redact: false });
  middlewares.push(logging({ logger, name: "sum" }));
}
if (wanted.has("log-winston")) {
  const logger = createWinstonLogger(
    winston.createLogger({
      level: "info",
      format: winston.format.json(),
      transports: [new winston.transports.Stream({ stream: createWriteStream("/dev/null") })],
    }),
  );
  middlewares.push(logging({ logger, name: "sum" }));
}
if (wanted.has("metrics")) middlewares.push(createMetrics().middleware({ name: "sum" }));

const sum = async (_ctx, req) => ({ v: req.a + req.b });
const endpoint = middlewares.length === 0 ? sum : chain(...middlewares)(sum);
const handler = createHttpHandler(endpoint, jsonRequestDecoder(), encodeJsonResponse);
const router = createRouter();
router.post("/sum", handler);

serve(http.createServer(router.handle));
