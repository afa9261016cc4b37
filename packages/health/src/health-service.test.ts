// The grpc.health.v1.Health service on a real grpc-js server, called by a plain grpc-js client whose
// serializers are written here from the .proto (not the package's codecs), on 127.0.0.1.
import {
  Client,
  type ClientReadableStream,
  credentials,
  type ServiceError as GrpcError,
  status as grpcStatus,
  Metadata,
  Server,
  ServerCredentials,
} from "@grpc/grpc-js";
import { Code } from "@svckit/endpoint";
import { addHealthService, createHealth, HEALTH_SERVICE_NAME, type Health } from "@svckit/health";
import { afterEach, describe, expect, it } from "vitest";

const STATUS_NAMES = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"] as const;

/** `HealthCheckRequest { string service = 1 }`, written by hand for short ASCII names. */
function request(service: string): Buffer {
  if (service === "") return Buffer.alloc(0);
  return Buffer.concat([Buffer.from([0x0a, service.length]), Buffer.from(service, "ascii")]);
}

/** `HealthCheckResponse { ServingStatus status = 1 }` → the status name. */
function response(bytes: Buffer): string {
  if (bytes.length === 0) return "UNKNOWN";
  expect(bytes[0]).toBe(0x08);
  return STATUS_NAMES[bytes[1] as number] ?? `status ${bytes[1]}`;
}

const raw = (bytes: Buffer): Buffer => bytes;

interface Setup {
  readonly server: Server;
  readonly client: Client;
}
const setups: Setup[] = [];

afterEach(() => {
  for (const { server, client } of setups.splice(0)) {
    client.close();
    server.forceShutdown();
  }
});

async function serve(health: Health, options?: Parameters<typeof addHealthService>[2]) {
  const server = new Server();
  const grpcHealth = addHealthService(server, health, options);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  setups.push({ server, client });
  return { server, client, grpcHealth };
}

type CheckOutcome = { status: string } | { code: number; details: string };

function check(client: Client, body: Buffer): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/${HEALTH_SERVICE_NAME}/Check`,
      raw,
      raw,
      body,
      new Metadata(),
      { deadline: Date.now() + 5_000 },
      (err: GrpcError | null, value?: Buffer) => {
        if (err) resolve({ code: err.code, details: err.details });
        else resolve({ status: response(value as Buffer) });
      },
    );
  });
}

/** A Watch call that collects the statuses it receives and how it ended. */
function watch(client: Client, service: string) {
  const statuses: string[] = [];
  const call: ClientReadableStream<Buffer> = client.makeServerStreamRequest(
    `/${HEALTH_SERVICE_NAME}/Watch`,
    raw,
    raw,
    request(service),
    new Metadata(),
    {},
  );
  call.on("data", (bytes: Buffer) => statuses.push(response(bytes)));
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    call.on("error", (err: GrpcError) => resolve({ code: err.code, details: err.details }));
    call.on("status", (s: { code: number; details: string }) => {
      if (s.code === grpcStatus.OK) resolve({ code: s.code, details: s.details });
    });
  });
  return {
    statuses,
    ended,
    cancel: () => call.cancel(),
    /** Resolves once `n` statuses have arrived. */
    async received(n: number): Promise<string[]> {
      const deadline = Date.now() + 5_000;
      while (statuses.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${JSON.stringify(statuses)} after 5 s`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return [...statuses];
    },
  };
}

describe("grpc.health.v1.Health Check", () => {
  it('answers "" from readiness: SERVING, then NOT_SERVING when a check is critical or not serving', async () => {
    let dbUp = true;
    const health = createHealth({ readiness: { db: () => (dbUp ? undefined : { status: "critical" }) } });
    const { client } = await serve(health);
    expect(await check(client, request(""))).toEqual({ status: "SERVING" });
    dbUp = false;
    expect(await check(client, request(""))).toEqual({ status: "NOT_SERVING" });
    dbUp = true;
    health.setServing(false);
    expect(await check(client, request(""))).toEqual({ status: "NOT_SERVING" });
  });

  it("a warning still counts as SERVING", async () => {
    const { client } = await serve(createHealth({ readiness: { cache: () => ({ status: "warning" }) } }));
    expect(await check(client, request(""))).toEqual({ status: "SERVING" });
  });

  it("answers named services from the status map; NOT_SERVING for all while not serving", async () => {
    const health = createHealth();
    const { client, grpcHealth } = await serve(health, { services: { "pb.Add": "SERVING" } });
    expect(await check(client, request("pb.Add"))).toEqual({ status: "SERVING" });
    grpcHealth.setStatus("pb.Add", "NOT_SERVING");
    expect(await check(client, request("pb.Add"))).toEqual({ status: "NOT_SERVING" });
    grpcHealth.setStatus("pb.Add", "SERVING");
    health.setServing(false);
    expect(await check(client, request("pb.Add"))).toEqual({ status: "NOT_SERVING" });
    expect(await grpcHealth.status("pb.Add")).toBe("NOT_SERVING");
  });

  it("an unknown service is NOT_FOUND", async () => {
    const { client, grpcHealth } = await serve(createHealth(), { services: { "pb.Add": "SERVING" } });
    expect(await check(client, request("pb.Nope"))).toEqual({
      code: Code.NOT_FOUND,
      details: 'unknown service "pb.Nope"',
    });
    grpcHealth.clearStatus("pb.Add");
    expect(await check(client, request("pb.Add"))).toEqual({
      code: Code.NOT_FOUND,
      details: 'unknown service "pb.Add"',
    });
    expect(await grpcHealth.status("pb.Add")).toBeUndefined();
  });

  it("a malformed request is INVALID_ARGUMENT saying what was wrong", async () => {
    const { client } = await serve(createHealth());
    expect(await check(client, Buffer.from([0x0a, 0x05, 0x61]))).toEqual({
      code: Code.INVALID_ARGUMENT,
      details: "invalid HealthCheckRequest: length past the end at byte 1",
    });
    expect(await check(client, Buffer.from([0x0a, 0x01, 0xff]))).toEqual({
      code: Code.INVALID_ARGUMENT,
      details: "invalid HealthCheckRequest: service is not valid UTF-8 at byte 0",
    });
  });
});

describe("grpc.health.v1.Health Watch", () => {
  it("sends the current status at once, then each change (no repeats), until the client cancels", async () => {
    const health = createHealth();
    const { client, grpcHealth } = await serve(health, { services: { "pb.Add": "SERVING" } });
    const w = watch(client, "pb.Add");
    expect(await w.received(1)).toEqual(["SERVING"]);
    grpcHealth.setStatus("pb.Add", "SERVING"); // no change: nothing sent
    grpcHealth.setStatus("pb.Add", "NOT_SERVING");
    expect(await w.received(2)).toEqual(["SERVING", "NOT_SERVING"]);
    grpcHealth.setStatus("pb.Add", "SERVING");
    expect(await w.received(3)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    w.cancel();
    expect(await w.ended).toMatchObject({ code: grpcStatus.CANCELLED });
    grpcHealth.setStatus("pb.Add", "NOT_SERVING");
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(w.statuses).toHaveLength(3);
  });

  it("an unknown service: SERVICE_UNKNOWN, the call stays open, and the status follows once known", async () => {
    const { client, grpcHealth } = await serve(createHealth());
    const w = watch(client, "pb.Later");
    expect(await w.received(1)).toEqual(["SERVICE_UNKNOWN"]);
    grpcHealth.setStatus("pb.Later", "SERVING");
    expect(await w.received(2)).toEqual(["SERVICE_UNKNOWN", "SERVING"]);
    grpcHealth.clearStatus("pb.Later");
    expect(await w.received(3)).toEqual(["SERVICE_UNKNOWN", "SERVING", "SERVICE_UNKNOWN"]);
    w.cancel();
  });

  it('"" follows serving at once and the readiness checks every watchInterval', async () => {
    let dbUp = true;
    const health = createHealth({ readiness: { db: () => (dbUp ? undefined : { status: "critical" }) } });
    const { client } = await serve(health, { watchInterval: 20 });
    const w = watch(client, "");
    expect(await w.received(1)).toEqual(["SERVING"]);
    dbUp = false;
    expect(await w.received(2)).toEqual(["SERVING", "NOT_SERVING"]);
    dbUp = true;
    expect(await w.received(3)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    health.setServing(false);
    expect(await w.received(4)).toEqual(["SERVING", "NOT_SERVING", "SERVING", "NOT_SERVING"]);
    w.cancel();
  });

  it("serving changes reach watchers of named services too", async () => {
    const health = createHealth();
    const { client } = await serve(health, { services: { a: "SERVING" }, watchInterval: 0 });
    const w = watch(client, "a");
    expect(await w.received(1)).toEqual(["SERVING"]);
    health.setServing(false);
    expect(await w.received(2)).toEqual(["SERVING", "NOT_SERVING"]);
    health.setServing(true);
    expect(await w.received(3)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    w.cancel();
  });

  it("shutdown sends NOT_SERVING and ends every watch with UNAVAILABLE; later watches end at once", async () => {
    const health = createHealth();
    const { client, server } = await serve(health, { services: { a: "SERVING" } });
    const overall = watch(client, "");
    const named = watch(client, "a");
    await overall.received(1);
    await named.received(1);
    health.shutdown();
    const ended = { code: Code.UNAVAILABLE, details: "the server is shutting down" };
    expect(await overall.ended).toEqual(ended);
    expect(await named.ended).toEqual(ended);
    expect(overall.statuses).toEqual(["SERVING", "NOT_SERVING"]);
    expect(named.statuses).toEqual(["SERVING", "NOT_SERVING"]);
    const late = watch(client, "a");
    expect(await late.ended).toEqual(ended);
    expect(late.statuses).toEqual(["NOT_SERVING"]);
    // No watch holds the graceful shutdown up.
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  it("a malformed request ends the watch with INVALID_ARGUMENT", async () => {
    const { client } = await serve(createHealth());
    const call = client.makeServerStreamRequest(
      `/${HEALTH_SERVICE_NAME}/Watch`,
      raw,
      raw,
      Buffer.from([0x08, 0x01]),
      new Metadata(),
      {},
    );
    const error = await new Promise<GrpcError>((resolve) => call.on("error", resolve));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.details).toBe(
      "invalid HealthCheckRequest: service (field 1) has wire type 0, expected 2 at byte 0",
    );
  });
});

describe("addHealthService: setup", () => {
  it('refuses to set "" or an invalid status, and a negative watchInterval', () => {
    const server = new Server();
    const grpcHealth = addHealthService(server, createHealth());
    expect(() => grpcHealth.setStatus("", "SERVING")).toThrow(
      'the overall status ("") follows readiness: use health.setServing() instead',
    );
    expect(() => grpcHealth.setStatus("a", "UNKNOWN" as "SERVING")).toThrow(
      'invalid status "UNKNOWN" for "a": expected SERVING or NOT_SERVING',
    );
    expect(() => addHealthService(new Server(), createHealth(), { services: { "": "SERVING" } })).toThrow(
      'the overall status ("") follows readiness',
    );
    expect(() => addHealthService(new Server(), createHealth(), { watchInterval: -1 })).toThrow(
      "invalid watchInterval -1: expected a finite number of milliseconds >= 0",
    );
  });

  it("the service can be added to a server only once (grpc-js refuses a second)", () => {
    const server = new Server();
    addHealthService(server, createHealth());
    expect(() => addHealthService(server, createHealth())).toThrow(
      /Method handler for \/grpc.health.v1.Health\/Check already provided/,
    );
  });
});
