// examples/addsvc as `node examples/addsvc/dist/main.js` builds it — one service, go-kit's middleware
// chain on every endpoint (tracing, metrics, logging, circuit breaker, rate limit), the app lifecycle —
// serving one transport on a free 127.0.0.1 port: `addsvc.mjs http`, `addsvc.mjs grpc`,
// `addsvc.mjs grpc h2` (gRPC on svckit's node:http2 engine, main's `-grpc-engine h2`) or
// `addsvc.mjs jsonrpc`. The rate limits are lifted (the bench measures cost, not the limiter saying no);
// the breakers keep main's defaults. Every call writes its log line, as main's do, through the JSON
// logger main uses, into /dev/null instead of stdout (the harness reads stdout for the port).
import { createJsonLogger } from "@svckit/log";
// An example, not a published package: loaded from its build.
import { createAddsvc } from "../../examples/addsvc/dist/server.js";

const transport = process.argv[2];
const addr = "127.0.0.1:0";
const { app, servers } = createAddsvc({
  httpAddr: transport === "http" ? addr : undefined,
  grpcAddr: transport === "grpc" ? addr : undefined,
  grpcEngine: process.argv[3] === "h2" ? "h2" : "grpc-js",
  jsonrpcAddr: transport === "jsonrpc" ? addr : undefined,
  sumRate: 0,
  concatRate: 0,
  breaker: { minCalls: 6, openMs: 60_000 },
  logger: createJsonLogger({ level: "info", redact: false, destination: "/dev/null" }),
  drainTimeout: 1_000,
});
if (servers.length !== 1) {
  console.error(`usage: addsvc.mjs http|grpc|jsonrpc (got ${JSON.stringify(transport)})`);
  process.exit(2);
}
await app.start();
// The harness waits for "listening <port>"; the server tells its address ("127.0.0.1:<port>") once started.
process.stdout.write(`listening ${/:(\d+)$/.exec(servers[0].address)[1]}\n`);
// Serves until SIGTERM/SIGINT, then drains (as main does) and exits.
await app.run();
process.exit(0);
