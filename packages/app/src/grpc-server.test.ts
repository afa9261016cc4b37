// grpcServer against a stand-in with grpc-js's three methods (this package does not depend on
// grpc-js); test/app-grpc.test.ts runs it on a real grpc-js server.
import { type GrpcServerLike, grpcServer } from "@svckit/app";
import { Code, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

interface Credentials {
  readonly insecure: true;
}
const insecure: Credentials = { insecure: true };

class FakeGrpc implements GrpcServerLike<Credentials> {
  readonly calls: string[] = [];
  bindError: Error | null = null;
  /** Errors for the next binds, before `bindError` applies. */
  readonly bindErrors: Error[] = [];
  boundPort = 50_051;
  shutdownError: Error | undefined;
  #pending: ((error?: Error) => void) | undefined;

  bindAsync(
    port: string,
    credentials: Credentials,
    callback: (error: Error | null, port: number) => void,
  ): void {
    this.calls.push(`bindAsync ${port} ${JSON.stringify(credentials)}`);
    const error = this.bindErrors.shift() ?? this.bindError;
    setImmediate(() => callback(error, error === null ? this.boundPort : -1));
  }

  tryShutdown(callback: (error?: Error) => void): void {
    this.calls.push("tryShutdown");
    this.#pending = callback;
  }

  forceShutdown(): void {
    this.calls.push("forceShutdown");
    this.finishCalls();
  }

  /** The calls in flight are over: tryShutdown's callback runs. */
  finishCalls(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.(this.shutdownError);
  }
}

describe("grpcServer", () => {
  it("binds the address with the credentials and reports the bound port (port 0)", async () => {
    const fake = new FakeGrpc();
    const server = grpcServer(fake, { address: "127.0.0.1:0", credentials: insecure });
    expect([server.name, server.address, server.port, server.endpoint]).toEqual([
      "grpc",
      undefined,
      undefined,
      undefined,
    ]);
    await server.start();
    expect(fake.calls).toEqual(['bindAsync 127.0.0.1:0 {"insecure":true}']);
    expect(server.server).toBe(fake);
    expect(server.port).toBe(50_051);
    expect(server.address).toBe("127.0.0.1:50051");
    expect(server.endpoint).toBe("grpc://127.0.0.1:50051");
  });

  it("binds every interface, IPv6 and IPv4, for :port and [::]:port and advertises a reachable IPv4 address", async () => {
    const any = new FakeGrpc();
    const server = grpcServer(any, { address: ":9090", credentials: insecure, name: "internal" });
    await server.start();
    // grpc-js listens on "::" dual-stack (it was "0.0.0.0": IPv4 only).
    expect(any.calls).toEqual(['bindAsync [::]:9090 {"insecure":true}']);
    expect(server.name).toBe("internal");
    expect(server.address).toBe("[::]:50051");
    expect(server.endpoint).toMatch(/^grpc:\/\/\d+\.\d+\.\d+\.\d+:50051$/);
    expect(server.endpoint).not.toContain("0.0.0.0");

    const v6 = new FakeGrpc();
    const server6 = grpcServer(v6, { address: "[::]:9090", credentials: insecure });
    await server6.start();
    expect(v6.calls[0]).toBe('bindAsync [::]:9090 {"insecure":true}');
    expect(server6.address).toBe("[::]:50051");
    expect(server6.endpoint).not.toContain("::");
  });

  it("a bind failure rejects UNAVAILABLE with grpc-js's message and the cause", async () => {
    const fake = new FakeGrpc();
    fake.bindError = new Error("No address added out of total 1 resolved");
    const server = grpcServer(fake, { address: "127.0.0.1:9090", credentials: insecure });
    const error = await server.start().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ServiceError);
    expect(error).toMatchObject({
      code: Code.UNAVAILABLE,
      message: "grpc: cannot listen on 127.0.0.1:9090: No address added out of total 1 resolved",
      cause: fake.bindError,
    });
    expect(server.port).toBeUndefined();
    // Nothing to shut down.
    await server.stop();
    expect(fake.calls).toEqual(['bindAsync 127.0.0.1:9090 {"insecure":true}']);
  });

  it("stop waits for tryShutdown, without forcing while the deadline has not passed", async () => {
    const fake = new FakeGrpc();
    const server = grpcServer(fake, { address: "127.0.0.1:0", credentials: insecure });
    await server.start();
    const deadline = new AbortController();
    let stopped = false;
    const stopping = server.stop(deadline.signal).then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    fake.finishCalls();
    await stopping;
    deadline.abort();
    expect(fake.calls.slice(1)).toEqual(["tryShutdown"]);
  });

  it("the deadline forces the shutdown", async () => {
    const fake = new FakeGrpc();
    const server = grpcServer(fake, { address: "127.0.0.1:0", credentials: insecure });
    await server.start();
    const deadline = new AbortController();
    const stopping = server.stop(deadline.signal);
    deadline.abort();
    await stopping;
    expect(fake.calls.slice(1)).toEqual(["tryShutdown", "forceShutdown"]);
  });

  it("a deadline that already aborted forces at once; stopping again is a no-op", async () => {
    const fake = new FakeGrpc();
    const server = grpcServer(fake, { address: "127.0.0.1:0", credentials: insecure });
    await server.start();
    await server.stop(AbortSignal.abort());
    await server.stop();
    expect(fake.calls.slice(1)).toEqual(["tryShutdown", "forceShutdown"]);
  });

  it("a shutdown error rejects INTERNAL", async () => {
    const fake = new FakeGrpc();
    fake.shutdownError = new Error("session error");
    const server = grpcServer(fake, { address: "127.0.0.1:0", credentials: insecure });
    await server.start();
    const stopping = server.stop();
    fake.finishCalls();
    await expect(stopping).rejects.toMatchObject({
      code: Code.INTERNAL,
      message: "grpc: shutdown failed: session error",
    });
  });

  it("starts once", async () => {
    const server = grpcServer(new FakeGrpc(), { address: "127.0.0.1:0", credentials: insecure });
    await server.start();
    await expect(server.start()).rejects.toMatchObject({
      code: Code.FAILED_PRECONDITION,
      message: "grpc: a gRPC server can start only once",
    });
  });

  it(":port where [::] cannot be bound (no IPv6) falls back to 0.0.0.0", async () => {
    const fake = new FakeGrpc();
    fake.bindErrors.push(new Error("No address added out of total 1 resolved errors: [listen EAFNOSUPPORT]"));
    const server = grpcServer(fake, { address: ":9090", credentials: insecure });
    await server.start();
    expect(fake.calls).toEqual([
      'bindAsync [::]:9090 {"insecure":true}',
      'bindAsync 0.0.0.0:9090 {"insecure":true}',
    ]);
    expect(server.address).toBe("0.0.0.0:50051");
    expect(server.endpoint).toMatch(/^grpc:\/\/\d+\.\d+\.\d+\.\d+:50051$/);
  });

  it(":port that cannot be bound either way rejects UNAVAILABLE with the IPv4 error", async () => {
    const fake = new FakeGrpc();
    fake.bindErrors.push(new Error("in use (v6)"), new Error("in use (v4)"));
    const server = grpcServer(fake, { address: ":9090", credentials: insecure });
    await expect(server.start()).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      message: "grpc: cannot listen on :9090: in use (v4)",
    });
  });

  it("stop() while binding: shuts down once bound (a stop during the app's start gave up on it)", async () => {
    const fake = new FakeGrpc();
    const server = grpcServer(fake, { address: "127.0.0.1:0", credentials: insecure });
    const starting = server.start();
    const stopping = server.stop(AbortSignal.abort());
    await starting;
    await stopping;
    expect(fake.calls.slice(1)).toEqual(["tryShutdown", "forceShutdown"]);
  });

  it("checks the address up front", () => {
    expect(() => grpcServer(new FakeGrpc(), { address: "localhost", credentials: insecure })).toThrow(
      'invalid address "localhost": expected host:port, [ipv6]:port or :port with a port from 0 to 65535',
    );
  });
});
