#!/usr/bin/env node
// apigateway: go-kit's examples/apigateway on svckit. One HTTP listener that authenticates callers at
// the edge, discovers addsvc and stringsvc instances (static list, etcd or Consul), balances and
// retries across them, and routes POST /<service>/<method> to them with the caller's verified
// identity in metadata. Stops gracefully on SIGTERM / SIGINT.
//
// Only the flag parser is loaded before the flags are read, so --help and a bad command line answer
// at once (with the tiny @svckit/endpoint); the servers, the JWT library and the discovery backends are
// imported afterwards.
import { ServiceError } from "@svckit/endpoint";
import { parseCommandLine, usage } from "./flags.js";

function usageError(message: string): never {
  console.error(`apigateway: ${message}\n${usage}`);
  process.exit(2);
}

/** The one-line reason a run failed ("HTTP: cannot listen on 127.0.0.1:8000: ... EADDRINUSE ..."). */
function reason(err: unknown): string {
  // The app wraps a server's failure ("app start failed: server ...: <cause>"); the cause says it all.
  if (err instanceof ServiceError && err.cause instanceof ServiceError) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

let commandLine: ReturnType<typeof parseCommandLine>;
try {
  commandLine = parseCommandLine(process.argv.slice(2), process.env);
} catch (err) {
  usageError((err as Error).message);
}
if (commandLine.help) {
  console.log(usage);
  process.exit(0);
}
const { config } = commandLine;

const [{ createWinstonLogger }, { createApigateway }] = await Promise.all([
  import("@svckit/log/winston"),
  import("./gateway.js"),
]);

let gateway: Awaited<ReturnType<typeof createApigateway>>;
try {
  // One JSON line per event on stdout: the listener, discovery changes, every call, retries, the stop.
  gateway = await createApigateway(config, { logger: createWinstonLogger({ level: "info" }) });
} catch (err) {
  // A secret, key source or address the libraries refuse.
  usageError(reason(err));
}

try {
  // Serves until SIGTERM or SIGINT, then stops accepting, drains the calls in flight and closes.
  await gateway.app.run();
  process.exit(0);
} catch (err) {
  console.error(`apigateway: ${reason(err)}`);
  process.exit(1);
}
