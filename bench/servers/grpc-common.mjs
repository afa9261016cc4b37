// Shared by the gRPC benchmark servers: the addsvc proto they serve, and a grpc-js Server bound to a
// free 127.0.0.1 port (port 0) that is reported on stdout as one line "listening <port>" for the
// harness, closed on SIGTERM/SIGINT. Both servers use grpc-js's default Server options.
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";

/** go-kit addsvc's proto: `pb.Add/Sum (SumRequest { int64 a = 1; int64 b = 2; }) → SumReply { int64 v = 1; string err = 2; }`. */
export const ADDSVC_PROTO = fileURLToPath(
  new URL("../../packages/transport-grpc/src/testdata/addsvc.proto", import.meta.url),
);

export function serveGrpc(server) {
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) {
      console.error(`bind failed: ${error.message}`);
      process.exit(1);
    }
    process.stdout.write(`listening ${port}\n`);
  });
  const stop = () => {
    server.tryShutdown(() => process.exit(0));
    setTimeout(() => {
      server.forceShutdown();
      process.exit(0);
    }, 1_000).unref();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
