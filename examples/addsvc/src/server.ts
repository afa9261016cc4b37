import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import {
  type App,
  type AppEvent,
  createApp,
  type GrpcAppServer,
  grpcServer,
  type HttpAppServer,
  httpServer,
} from "@svckit/app";
import { Code, ServiceError } from "@svckit/endpoint";
import { createGrpcServer, type GrpcH2Server } from "@svckit/grpc-h2";
import { addHealthService, createHealth, createHealthHandler } from "@svckit/health";
import type { Logger } from "@svckit/log";
import { createMetrics, type Metrics } from "@svckit/metrics";
import { createRouter } from "@svckit/transport-http";
import { type BreakerSettings, makeEndpoints, withMiddleware } from "./endpoints.js";
import { createAddService } from "./service.js";
import { ADD_SERVICE, bindAddsvc } from "./transport-grpc.js";
import { createAddsvcRouter } from "./transport-http.js";
import { createAddsvcJsonRpcHandler } from "./transport-jsonrpc.js";

/**
 * The server engine gRPC runs on: `"grpc-js"`, a `@grpc/grpc-js` `Server`, or `"h2"`, `@svckit/grpc-h2`'s
 * `createGrpcServer()` on `node:http2`. Both serve the same `pb.Add` handlers, health service and
 * lifecycle; only the engine under them changes.
 */
export type GrpcEngine = "grpc-js" | "h2";

/** The gRPC server of either {@link GrpcEngine}. */
export type AddsvcGrpcServer = GrpcServer | GrpcH2Server;

/** How {@link createAddsvc} is set up: what `main` reads from its flags. */
export interface AddsvcConfig {
  /** Where HTTP JSON listens (`host:port`, port 0 for a free one); `undefined` for no HTTP. */
  httpAddr?: string | undefined;
  /** Where gRPC listens; `undefined` for none. */
  grpcAddr?: string | undefined;
  /** The gRPC server engine; default `"grpc-js"`. */
  grpcEngine?: GrpcEngine | undefined;
  /** Where JSON-RPC over HTTP listens; `undefined` for none. */
  jsonrpcAddr?: string | undefined;
  /** Where `/metrics`, `/healthz` and `/readyz` are served; `undefined` for none. */
  debugAddr?: string | undefined;
  /** `sum` calls admitted per second; 0 = unlimited. */
  sumRate: number;
  /** `concat` calls admitted per second; 0 = unlimited. */
  concatRate: number;
  /** The breakers' settings, or `false` for none. */
  breaker: BreakerSettings | false;
  /** Where call and lifecycle lines go. */
  logger: Logger;
  /** The signals that stop it; default SIGTERM and SIGINT. */
  signals?: readonly NodeJS.Signals[];
  /** How long calls in flight get to finish on stop, in ms; default 10 000. */
  drainTimeout?: number;
}

/** A set-up addsvc: run it with `app.run()`. */
export interface Addsvc {
  /** The app: `run()` serves until a signal, `stop()` stops. */
  readonly app: App;
  /** The servers, named `HTTP`, `gRPC`, `JSON-RPC` and `debug`; each tells its `address` once started. */
  readonly servers: readonly (HttpAppServer | GrpcAppServer<AddsvcGrpcServer>)[];
  /** The metrics the debug listener serves. */
  readonly metrics: Metrics;
}

/** The largest request accepted on the gRPC listener, as on the HTTP ones. */
const MAX_REQUEST_BYTES = 1 << 20;

/** A gRPC server of `engine` with addsvc's limits, no services yet. */
function createEngine(engine: GrpcEngine): AddsvcGrpcServer {
  switch (engine) {
    case "grpc-js":
      return new GrpcServer({ "grpc.max_receive_message_length": MAX_REQUEST_BYTES });
    case "h2":
      return createGrpcServer({ maxReceiveMessageLength: MAX_REQUEST_BYTES });
    default:
      throw new ServiceError(
        Code.INVALID_ARGUMENT,
        `unknown gRPC engine "${String(engine satisfies never)}": expected grpc-js or h2`,
      );
  }
}

/**
 * Wires addsvc as go-kit's `cmd/addsvc` does: one service, its endpoints wrapped once in one middleware
 * chain (tracing, metrics, logging, breaker, rate limit), served over HTTP JSON, gRPC and JSON-RPC at
 * once, with a debug listener for `/metrics`, `/healthz` and `/readyz`, `grpc.health.v1` on the gRPC
 * server, and a lifecycle that logs each listener once it listens and drains on SIGTERM. gRPC runs on
 * grpc-js's `Server` or, with `grpcEngine: "h2"`, on `@svckit/grpc-h2`'s engine, with the same handlers,
 * health service and lifecycle. Throws a `ServiceError` `INVALID_ARGUMENT` for an address the servers
 * cannot take or an unknown engine.
 *
 * @example
 * ```ts
 * const { app } = createAddsvc({ httpAddr: "127.0.0.1:8081", sumRate: 1, concatRate: 100,
 *   breaker: { minCalls: 6, openMs: 60_000 }, logger: createJsonLogger() });
 * await app.run(); // until SIGTERM or SIGINT
 * ```
 */
export function createAddsvc(config: AddsvcConfig): Addsvc {
  const { logger } = config;
  const metrics = createMetrics();
  // Liveness and readiness: GET /healthz and /readyz on the debug listener, grpc.health.v1 on gRPC. The
  // app turns readiness on once every listener is up, and off first thing when it stops.
  const health = createHealth();

  // One service, one set of endpoints, one middleware chain: every transport serves these same endpoints.
  const wrapped = withMiddleware(makeEndpoints(createAddService()), {
    logger,
    metrics,
    sumRate: config.sumRate,
    concatRate: config.concatRate,
    breaker: config.breaker,
  });
  const { endpoints } = wrapped;

  // The app starts, drains and closes these; their names are in the log lines.
  const servers: (HttpAppServer | GrpcAppServer<AddsvcGrpcServer>)[] = [];
  const grpcEngine = config.grpcEngine ?? "grpc-js";
  let grpc: GrpcAppServer<AddsvcGrpcServer> | undefined;
  if (config.httpAddr !== undefined) {
    servers.push(
      httpServer(createAddsvcRouter(endpoints).handle, { address: config.httpAddr, name: "HTTP" }),
    );
  }
  if (config.grpcAddr !== undefined) {
    // The same handlers, health service and lifecycle on either engine.
    const server = createEngine(grpcEngine);
    bindAddsvc(server, endpoints);
    // "" is the server as a whole; pb.Add follows readiness too.
    addHealthService(server, health, { services: { [ADD_SERVICE]: "SERVING" } });
    grpc = grpcServer(server, {
      address: config.grpcAddr,
      credentials: ServerCredentials.createInsecure(),
      name: "gRPC",
    });
    servers.push(grpc);
  }
  if (config.jsonrpcAddr !== undefined) {
    servers.push(
      httpServer(createAddsvcJsonRpcHandler(endpoints), { address: config.jsonrpcAddr, name: "JSON-RPC" }),
    );
  }
  if (config.debugAddr !== undefined) {
    const healthHandler = createHealthHandler(health);
    const router = createRouter()
      .get("/metrics", metrics.handler)
      .get("/healthz", healthHandler)
      .get("/readyz", healthHandler);
    servers.push(httpServer(router.handle, { address: config.debugAddr, name: "debug" }));
  }

  const app = createApp({
    name: "addsvc",
    servers,
    readiness: health,
    drainTimeout: config.drainTimeout ?? 10_000,
    ...(config.signals === undefined ? {} : { signals: config.signals }),
    afterStart: () => {
      for (const server of servers) {
        logger.log("info", `${server.name} listening on ${server.address}`, {
          transport: server.name,
          addr: server.address,
          ...(server === grpc ? { engine: grpcEngine } : {}),
        });
      }
    },
    afterStop: () => wrapped.close(),
    onEvent: (event: AppEvent) => {
      if (event.type === "stopping") logger.log("info", "shutting down", { signal: event.reason });
      else if (event.type === "drain-timeout") {
        logger.log("warn", "drain timeout", { ms: Math.round(event.ms) });
      } else if (event.type === "exit") console.error(`addsvc: ${event.signal} again, exiting now`);
    },
  });
  return { app, servers, metrics };
}
