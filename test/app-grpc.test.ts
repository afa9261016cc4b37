// @svckit/app's grpcServer and @svckit/health on a real gRPC server, in process, on 127.0.0.1: a call in
// flight finishes during the stop, new calls are refused, the drain deadline cancels what is left, and
// an open health Watch does not hold the graceful stop up. Every case runs on both server engines: a
// grpc-js `Server` and @svckit/grpc-h2's `createGrpcServer()`.
import {
  Client,
  credentials,
  type ServiceError as GrpcError,
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { createApp, grpcServer } from "@svckit/app";
import { createGrpcServer, type GrpcH2Server } from "@svckit/grpc-h2";
import { addHealthService, createHealth, HEALTH_SERVICE_NAME } from "@svckit/health";
import { afterEach, describe, expect, it } from "vitest";

/** A gRPC server engine: how to make a server with no services yet. */
interface Engine {
  readonly name: string;
  create(): Server | GrpcH2Server;
}

const engines: readonly Engine[] = [
  { name: "grpc-js", create: () => new Server() },
  { name: "@svckit/grpc-h2", create: () => createGrpcServer() },
];

const raw = (bytes: Buffer): Buffer => bytes;
const clients: Client[] = [];
const servers: (Server | GrpcH2Server)[] = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  for (const server of servers.splice(0)) server.forceShutdown();
});

/** A server of `engine` with `/test.Slow/Wait`: answers "done" once `release()` is called. */
function slowServer(engine: Engine) {
  const server = engine.create();
  servers.push(server);
  const waiting: (() => void)[] = [];
  let arrived!: () => void;
  const arrival = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  server.addService(
    {
      Wait: {
        path: "/test.Slow/Wait",
        requestStream: false,
        responseStream: false,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    },
    {
      Wait: (_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        waiting.push(() => callback(null, Buffer.from("done")));
        arrived();
      },
    },
  );
  return {
    server,
    arrival,
    release: () => {
      for (const fn of waiting.splice(0)) fn();
    },
  };
}

function client(port: number): Client {
  const c = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  clients.push(c);
  return c;
}

function wait(c: Client): Promise<string> {
  return new Promise((resolve) => {
    c.makeUnaryRequest(
      "/test.Slow/Wait",
      raw,
      raw,
      Buffer.alloc(0),
      new Metadata(),
      { deadline: Date.now() + 5_000 },
      (err: GrpcError | null, value?: Buffer) => resolve(err ? (status[err.code] ?? "?") : String(value)),
    );
  });
}

describe.each(engines)("grpcServer on $name", (engine) => {
  it("binds port 0, drains a call in flight on stop and refuses new calls", async () => {
    const slow = slowServer(engine);
    const grpc = grpcServer(slow.server, {
      address: "127.0.0.1:0",
      credentials: ServerCredentials.createInsecure(),
    });
    await grpc.start();
    expect(grpc.port).toBeGreaterThan(0);
    expect(grpc.endpoint).toBe(`grpc://127.0.0.1:${grpc.port}`);
    const c = client(grpc.port as number);
    const inFlight = wait(c);
    await slow.arrival;
    let stopped = false;
    const stopping = grpc.stop(new AbortController().signal).then(() => {
      stopped = true;
    });
    // A new channel cannot connect any more.
    expect(await wait(client(grpc.port as number))).toBe("UNAVAILABLE");
    expect(stopped).toBe(false);
    slow.release();
    expect(await inFlight).toBe("done");
    await stopping;
    expect(stopped).toBe(true);
  });

  it("an address in use fails the start with UNAVAILABLE", async () => {
    const first = grpcServer(slowServer(engine).server, {
      address: "127.0.0.1:0",
      credentials: ServerCredentials.createInsecure(),
    });
    await first.start();
    const second = grpcServer(slowServer(engine).server, {
      address: `127.0.0.1:${first.port}`,
      credentials: ServerCredentials.createInsecure(),
    });
    await expect(second.start()).rejects.toMatchObject({
      code: status.UNAVAILABLE,
      message: expect.stringMatching(new RegExp(`^grpc: cannot listen on 127\\.0\\.0\\.1:${first.port}: `)),
    });
    await first.stop();
  });

  it("the app's drain timeout cancels a call that does not finish", async () => {
    const slow = slowServer(engine);
    const grpc = grpcServer(slow.server, {
      address: "127.0.0.1:0",
      credentials: ServerCredentials.createInsecure(),
    });
    const app = createApp({ servers: [grpc], signals: [], drainTimeout: 100 });
    await app.start();
    const inFlight = wait(client(grpc.port as number));
    await slow.arrival;
    const t0 = performance.now();
    await app.stop();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(await inFlight).toMatch(/^(CANCELLED|UNAVAILABLE)$/);
  });

  it("an open health Watch ends when the app stops, so the stop does not wait for the drain timeout", async () => {
    const server = engine.create();
    servers.push(server);
    const health = createHealth();
    addHealthService(server, health);
    const grpc = grpcServer(server, {
      address: "127.0.0.1:0",
      credentials: ServerCredentials.createInsecure(),
    });
    const app = createApp({ servers: [grpc], readiness: health, signals: [], drainTimeout: 10_000 });
    await app.start();
    const c = client(grpc.port as number);
    const statuses: number[] = [];
    const call = c.makeServerStreamRequest(
      `/${HEALTH_SERVICE_NAME}/Watch`,
      raw,
      raw,
      Buffer.alloc(0),
      new Metadata(),
      {},
    );
    call.on("data", (bytes: Buffer) => statuses.push(bytes[1] ?? 0));
    const ended = new Promise<number>((resolve) => call.on("error", (err: GrpcError) => resolve(err.code)));
    while (statuses.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const t0 = performance.now();
    await app.stop();
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(await ended).toBe(status.UNAVAILABLE);
    // SERVING, then NOT_SERVING as the stop began.
    expect(statuses).toEqual([1, 2]);
  });
});
