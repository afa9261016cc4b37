// Replays every `curl` line of examples/stringsvc/README.md against the stringsvc router (with the
// health probes main.ts adds) on a real server and compares the answer with the `# ...` line under
// it, so the README cannot drift from what the service says. Only the curl options the README uses
// are understood; any other fails.
// Its `grpcurl` lines are replayed the same way against the gRPC server, with a grpc-js client doing
// what grpcurl does (proto3 JSON in, the reply or the status printed as grpcurl prints them), so the
// test needs no grpcurl. The parsing and the replaying are test/fixtures/readme-replay.ts.
import { readFileSync } from "node:fs";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { createHealth, createHealthHandler } from "@svckit/health";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeEndpoints } from "../examples/stringsvc/src/endpoints.js";
import { createStringService } from "../examples/stringsvc/src/service.js";
import { createStringsvcRouter } from "../examples/stringsvc/src/transport.js";
import { bindStringsvc } from "../examples/stringsvc/src/transport-grpc.js";
import { commandsIn, parseCurl, parseGrpcurl, runCurl, runGrpcurl } from "./fixtures/readme-replay.js";
import { closeServers, listen, type TestServer } from "./support.js";

const readme = readFileSync(new URL("../examples/stringsvc/README.md", import.meta.url), "utf8");
const lines = readme.split("\n");

describe("examples/stringsvc/README.md", () => {
  let server: TestServer;
  const calls = commandsIn(lines, "curl ");

  beforeAll(async () => {
    // As main.ts mounts them: the health probes beside the service's routes.
    const probes = createHealthHandler(createHealth());
    const router = createStringsvcRouter(makeEndpoints(createStringService()))
      .get("/healthz", probes)
      .get("/readyz", probes);
    server = await listen(router.handle);
  });
  afterAll(closeServers);

  it("documents the success and error answers with curl lines", () => {
    expect(calls.length).toBeGreaterThanOrEqual(10);
    expect(calls.filter((c) => c.line.includes("-w ")).length).toBeGreaterThanOrEqual(5);
  });

  it.each(calls)("$line answers as documented", async ({ line, expected }) => {
    // parseCurl takes only http://127.0.0.1 URLs; the README's port becomes the test server's.
    expect(parseCurl(line).port).toBe(8080);
    const { printed } = await runCurl(line.replaceAll("127.0.0.1:8080", `127.0.0.1:${server.port}`));
    expect(printed).toBe(expected);
  });
});

describe("examples/stringsvc/README.md grpcurl lines", () => {
  const calls = commandsIn(lines, "grpcurl ");
  const grpcServer = new Server();
  let address: string;

  beforeAll(async () => {
    bindStringsvc(grpcServer, makeEndpoints(createStringService()));
    const port = await new Promise<number>((resolve, reject) => {
      grpcServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => grpcServer.forceShutdown());

  it("documents success and error answers with grpcurl lines", () => {
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.filter((c) => c.expected.startsWith("ERROR:")).length).toBeGreaterThanOrEqual(1);
  });

  // Short names, the method and the data, which tell the lines apart (long names get cut).
  const named = calls.map((c) => ({
    ...c,
    name: c.line.replace(/^.* -d '([^']*)' \S+ \S+\/(\S+)$/, "$2 $1"),
  }));

  it.each(named)("grpcurl $name prints as documented", async ({ line, expected }) => {
    // The README's address becomes the test server's.
    expect(parseGrpcurl(line).address).toBe("127.0.0.1:8082");
    const { printed } = await runGrpcurl(line.replaceAll("127.0.0.1:8082", address));
    expect(printed).toBe(expected);
  });
});

// The replay refuses what it would misread, rather than sending something else than curl or grpcurl
// would: this README's lines pass only because they use nothing else.
describe("replaying a line it does not understand fails", () => {
  it.each([
    ["curl: an option", "curl -s -k http://127.0.0.1:8080/count"],
    ["curl: a long option", "curl -s --data-binary '{}' http://127.0.0.1:8080/count"],
    ["curl: another -w format", "curl -s -w '%{http_code}' http://127.0.0.1:8080/count"],
    ["curl: an option without its value", "curl -s http://127.0.0.1:8080/count -H"],
    ["curl: a second URL", "curl -s http://127.0.0.1:8080/count http://127.0.0.1:8080/uppercase"],
    ["curl: another host", "curl -s http://localhost:8080/count"],
    ["curl: https", "curl -s https://127.0.0.1:8080/count"],
    ["curl: a shell variable", "curl -s -d $BODY http://127.0.0.1:8080/count"],
    ["curl: a backslash", "curl -s -d '{}' \\ http://127.0.0.1:8080/count"],
    ["curl: a pipe", "curl -s http://127.0.0.1:8080/count | jq ."],
    ["curl: an unbalanced quote", "curl -s -d '{} http://127.0.0.1:8080/count"],
    ["grpcurl: a flag", "grpcurl -plaintext -H 'a: b' -proto s.proto 127.0.0.1:8082 s.S/M"],
    ["grpcurl: no -proto", "grpcurl -plaintext -d '{}' 127.0.0.1:8082 s.S/M"],
    ["grpcurl: no method", "grpcurl -plaintext -proto s.proto 127.0.0.1:8082"],
    ["grpcurl: a third positional", "grpcurl -plaintext -proto s.proto 127.0.0.1:8082 s.S/M extra"],
    ["grpcurl: a flag without its value", "grpcurl -plaintext -proto s.proto 127.0.0.1:8082 s.S/M -d"],
  ])("%s", (_, line) => {
    const parse = line.startsWith("grpcurl ") ? parseGrpcurl : parseCurl;
    expect(() => parse(line)).toThrow(`in: ${line}`);
  });
});
