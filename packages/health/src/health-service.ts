import { Code, ServiceError } from "@svckit/endpoint";
import type { Health } from "./health.js";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  healthCheckRequest,
  healthCheckResponse,
  type ServingStatus,
} from "./messages.js";

/** The full name of the gRPC health service. */
export const HEALTH_SERVICE_NAME = "grpc.health.v1.Health";

/** A status that can be set for a named service. */
export type SettableStatus = "SERVING" | "NOT_SERVING";

/** A gRPC error status, as grpc-js handlers pass it. */
export interface GrpcStatusError {
  /** The gRPC status code (`Code` from `@svckit/endpoint` has the same numbers). */
  readonly code: number;
  /** The status message. */
  readonly details: string;
}

/** The parts of a grpc-js unary call the health service reads. */
export interface HealthUnaryCall {
  /** The request bytes (the definition hands them over undecoded). */
  readonly request: Buffer;
}

/** The parts of a grpc-js server-streaming call the health service uses. */
export interface HealthWatchCall {
  /** The request bytes (the definition hands them over undecoded). */
  readonly request: Buffer;
  /** Sends one response message. */
  write(message: HealthCheckResponse): boolean;
  /** Ends the call with OK. */
  end(): void;
  /** Ends the call with an error status. */
  emit(event: "error", error: GrpcStatusError): boolean;
  /** Told when the client cancels the call or goes away. */
  once(event: "cancelled", listener: () => void): unknown;
}

/** One method of {@link HealthServiceDefinition}, in grpc-js's `MethodDefinition` shape. */
export type HealthMethodDefinition = {
  /** `/grpc.health.v1.Health/Check` or `/grpc.health.v1.Health/Watch`. */
  readonly path: string;
  /** Always `false`. */
  readonly requestStream: boolean;
  /** `true` for Watch. */
  readonly responseStream: boolean;
  /** `Check` or `Watch`. */
  readonly originalName: string;
  /** Client side: encodes a request. */
  readonly requestSerialize: (request: HealthCheckRequest) => Buffer;
  /** Server side: the request bytes are handed over as they are and decoded (and validated) in the handler. */
  readonly requestDeserialize: (bytes: Buffer) => Buffer;
  /** Server side: encodes a response. */
  readonly responseSerialize: (response: HealthCheckResponse) => Buffer;
  /** Client side: decodes a response. */
  readonly responseDeserialize: (bytes: Buffer) => HealthCheckResponse;
};

/** The hand-written `grpc.health.v1.Health` service definition, in grpc-js's `ServiceDefinition` shape. */
export type HealthServiceDefinition = {
  /** The unary Check method. */
  readonly Check: HealthMethodDefinition;
  /** The server-streaming Watch method. */
  readonly Watch: HealthMethodDefinition;
};

/** The health service's handlers, in grpc-js's `UntypedServiceImplementation` shape. */
export type HealthServiceImplementation = {
  /** Answers one status. */
  Check(
    call: HealthUnaryCall,
    callback: (error: GrpcStatusError | null, response?: HealthCheckResponse) => void,
  ): void;
  /** Streams statuses until the client cancels. */
  Watch(call: HealthWatchCall): void;
};

/** Where the service is added: a grpc-js `Server` fits (`@svckit/health` does not import grpc-js). */
export interface GrpcServiceRegistrar {
  /** grpc-js's `Server.addService`. */
  addService(service: HealthServiceDefinition, implementation: HealthServiceImplementation): void;
}

/** Options of {@link addHealthService}. */
export interface GrpcHealthOptions {
  /** Initial statuses of named services (e.g. `{ "pb.Add": "SERVING" }`); others are unknown. */
  services?: Readonly<Record<string, SettableStatus>>;
  /**
   * How often, in ms, the readiness checks are run again for clients watching `""` (default 5000;
   * 0: only when serving changes). Runs only while someone watches.
   */
  watchInterval?: number;
}

/** The per-service status map behind the gRPC health service; see {@link addHealthService}. */
export interface GrpcHealthService {
  /** Sets a named service's status; watchers are told. `""` is not settable: it follows readiness. */
  setStatus(service: string, status: SettableStatus): void;
  /** Forgets a named service: Check answers NOT_FOUND, watchers get SERVICE_UNKNOWN. */
  clearStatus(service: string): void;
  /** What Check answers for `service` (`undefined`: unknown). */
  status(service: string): Promise<ServingStatus | undefined>;
}

const NOT_FOUND = Code.NOT_FOUND;
const SHUTTING_DOWN: GrpcStatusError = { code: Code.UNAVAILABLE, details: "the server is shutting down" };
const DEFAULT_WATCH_INTERVAL = 5_000;

const passThrough = (bytes: Buffer): Buffer => bytes;
const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function method(name: "Check" | "Watch", responseStream: boolean): HealthMethodDefinition {
  return {
    path: `/${HEALTH_SERVICE_NAME}/${name}`,
    requestStream: false,
    responseStream,
    originalName: name,
    requestSerialize: (request) => toBuffer(healthCheckRequest.encode(request)),
    requestDeserialize: passThrough,
    responseSerialize: (response) => toBuffer(healthCheckResponse.encode(response)),
    responseDeserialize: (bytes) => healthCheckResponse.decode(bytes),
  };
}

const DEFINITION: HealthServiceDefinition = { Check: method("Check", false), Watch: method("Watch", true) };

interface Watcher {
  readonly call: HealthWatchCall;
  readonly service: string;
  last: ServingStatus | undefined;
  done: boolean;
}

function checkSettable(service: string, status?: string): void {
  if (typeof service !== "string" || service === "") {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      'the overall status ("") follows readiness: use health.setServing() instead',
    );
  }
  if (status !== undefined && status !== "SERVING" && status !== "NOT_SERVING") {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `invalid status ${JSON.stringify(status)} for ${JSON.stringify(service)}: expected SERVING or NOT_SERVING`,
    );
  }
}

/**
 * Adds the standard `grpc.health.v1.Health` service (Check and Watch) to a grpc-js server, answering
 * from `health`: the service `""` is the server as a whole (SERVING unless readiness is critical);
 * named services have the statuses set with {@link GrpcHealthService.setStatus}, and all of them are
 * NOT_SERVING while `health` is not serving. Check answers NOT_FOUND for an unknown service; Watch
 * sends the current status (SERVICE_UNKNOWN for an unknown service), then every change, until the
 * client cancels. `health.shutdown()` sends NOT_SERVING and ends every watch with UNAVAILABLE, so
 * that open watches do not hold up the server's graceful shutdown. Messages are encoded by hand
 * (no proto-loader); a malformed request gets INVALID_ARGUMENT.
 *
 * @example
 * ```ts
 * const server = new grpc.Server();
 * const grpcHealth = addHealthService(server, health, { services: { "pb.Add": "SERVING" } });
 * grpcHealth.setStatus("pb.Add", "NOT_SERVING");
 * ```
 */
export function addHealthService(
  server: GrpcServiceRegistrar,
  health: Health,
  options: GrpcHealthOptions = {},
): GrpcHealthService {
  const interval = options.watchInterval ?? DEFAULT_WATCH_INTERVAL;
  if (!Number.isFinite(interval) || interval < 0) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `invalid watchInterval ${String(interval)}: expected a finite number of milliseconds >= 0`,
    );
  }
  const statuses = new Map<string, SettableStatus>();
  for (const [service, status] of Object.entries(options.services ?? {})) {
    checkSettable(service, status);
    statuses.set(service, status);
  }
  const watchers = new Set<Watcher>();
  let overallWatchers = 0;
  let poll: NodeJS.Timeout | undefined;
  let evaluation = 0;

  function named(service: string): ServingStatus | undefined {
    const status = statuses.get(service);
    if (status === undefined) return undefined;
    return health.serving ? status : "NOT_SERVING";
  }

  async function overall(): Promise<ServingStatus> {
    const report = await health.readiness();
    return report.status === "critical" ? "NOT_SERVING" : "SERVING";
  }

  function status(service: string): Promise<ServingStatus | undefined> {
    return service === "" ? overall() : Promise.resolve(named(service));
  }

  function send(watcher: Watcher, status: ServingStatus): void {
    if (watcher.done || watcher.last === status) return;
    watcher.last = status;
    watcher.call.write({ status });
  }

  function finish(watcher: Watcher, error?: GrpcStatusError): void {
    if (watcher.done) return;
    watcher.done = true;
    if (watchers.delete(watcher) && watcher.service === "") {
      overallWatchers--;
      if (overallWatchers === 0 && poll !== undefined) {
        clearInterval(poll);
        poll = undefined;
      }
    }
    if (error !== undefined) watcher.call.emit("error", error);
  }

  /** Evaluates readiness once for every watcher of `""`; only the latest evaluation is sent. */
  function refreshOverall(): void {
    if (overallWatchers === 0) return;
    const mine = ++evaluation;
    overall().then(
      (status) => {
        if (mine !== evaluation) return;
        for (const watcher of watchers) if (watcher.service === "") send(watcher, status);
      },
      () => undefined,
    );
  }

  function refreshNamed(service?: string): void {
    for (const watcher of watchers) {
      if (watcher.service === "" || (service !== undefined && watcher.service !== service)) continue;
      send(watcher, named(watcher.service) ?? "SERVICE_UNKNOWN");
    }
  }

  health.onChange(() => {
    if (health.shuttingDown) {
      for (const watcher of [...watchers]) {
        send(watcher, "NOT_SERVING");
        finish(watcher, SHUTTING_DOWN);
      }
      return;
    }
    refreshNamed();
    refreshOverall();
  });

  const implementation: HealthServiceImplementation = {
    Check(call, callback) {
      let service: string;
      try {
        service = healthCheckRequest.decode(call.request).service;
      } catch (err) {
        callback({ code: Code.INVALID_ARGUMENT, details: (err as Error).message });
        return;
      }
      status(service).then(
        (found) => {
          if (found === undefined) {
            callback({ code: NOT_FOUND, details: `unknown service ${JSON.stringify(service)}` });
          } else {
            callback(null, { status: found });
          }
        },
        () => callback({ code: Code.INTERNAL, details: "health check failed" }),
      );
    },
    Watch(call) {
      let service: string;
      try {
        service = healthCheckRequest.decode(call.request).service;
      } catch (err) {
        call.emit("error", { code: Code.INVALID_ARGUMENT, details: (err as Error).message });
        return;
      }
      const watcher: Watcher = { call, service, last: undefined, done: false };
      if (health.shuttingDown) {
        send(watcher, "NOT_SERVING");
        finish(watcher, SHUTTING_DOWN);
        return;
      }
      watchers.add(watcher);
      call.once("cancelled", () => finish(watcher));
      if (service !== "") {
        send(watcher, named(service) ?? "SERVICE_UNKNOWN");
        return;
      }
      overallWatchers++;
      if (poll === undefined && interval > 0) {
        poll = setInterval(refreshOverall, interval);
        poll.unref();
      }
      refreshOverall();
    },
  };
  server.addService(DEFINITION, implementation);

  return {
    setStatus(service, newStatus) {
      checkSettable(service, newStatus);
      statuses.set(service, newStatus);
      refreshNamed(service);
    },
    clearStatus(service) {
      checkSettable(service);
      statuses.delete(service);
      refreshNamed(service);
    },
    status,
  };
}
