// Shared by the benchmark servers: listen on a free 127.0.0.1 port (port 0), report it on stdout as
// one line "listening <port>" for the harness, and close on SIGTERM/SIGINT. Server timeouts keep
// node:http's defaults, the same for every variant.
export function serve(server) {
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 1_000).unref();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
