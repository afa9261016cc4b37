// grpcServer on a real grpc-js server: ":port" listens on every interface, IPv4 and IPv6 (regression:
// it bound 0.0.0.0 only, while the README promised every interface and httpServer binds dual-stack).
import { createRequire } from "node:module";
import { networkInterfaces } from "node:os";
import { type GrpcAppServer, type GrpcServerLike, grpcServer } from "@svckit/app";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// @grpc/grpc-js is not a dependency of this package: load the copy the integration tests use.
interface GrpcClient {
  waitForReady(deadline: number, callback: (error?: Error) => void): void;
  close(): void;
}
const grpc = createRequire(new URL("../../../test/package.json", import.meta.url))("@grpc/grpc-js") as {
  Server: new () => GrpcServerLike<unknown>;
  Client: new (address: string, credentials: unknown) => GrpcClient;
  ServerCredentials: { createInsecure(): unknown };
  credentials: { createInsecure(): unknown };
};

const hasIpv6Loopback = Object.values(networkInterfaces()).some((list) =>
  (list ?? []).some((nic) => nic.family === "IPv6" && nic.internal && nic.address === "::1"),
);

/** Resolves with "ready" once a client connected to `address`, or the error's message. */
function connect(address: string): Promise<string> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<string>((resolve) => {
    client.waitForReady(Date.now() + 5_000, (error) => {
      client.close();
      resolve(error === undefined ? "ready" : error.message);
    });
  });
}

describe("grpcServer on grpc-js: :port", () => {
  let server: GrpcAppServer<GrpcServerLike<unknown>>;

  beforeAll(async () => {
    server = grpcServer(new grpc.Server(), {
      address: ":0",
      credentials: grpc.ServerCredentials.createInsecure(),
    });
    await server.start();
  });

  afterAll(async () => {
    await server.stop(AbortSignal.abort());
  });

  it("reports [::] and advertises an IPv4 address", () => {
    expect(server.address).toBe(`[::]:${server.port}`);
    expect(server.endpoint).toMatch(/^grpc:\/\/\d+\.\d+\.\d+\.\d+:\d+$/);
  });

  it("takes connections over IPv4 (127.0.0.1)", async () => {
    expect(await connect(`127.0.0.1:${server.port}`)).toBe("ready");
  });

  it.skipIf(!hasIpv6Loopback)("takes connections over IPv6 (::1)", async () => {
    expect(await connect(`[::1]:${server.port}`)).toBe("ready");
  });
});
