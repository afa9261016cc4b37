/**
 * The svckit application lifecycle, after Kratos' `kratos.New(...).Run()`: {@link createApp} starts
 * a set of servers, tells a readiness object (such as `@svckit/health`) and registers the instance
 * once they listen, and on SIGTERM / SIGINT or `app.stop()` goes not-ready, deregisters, stops
 * accepting and drains the work in flight within a deadline before closing, with hooks around each
 * phase. {@link httpServer} and {@link grpcServer} adapt `node:http` / express and grpc-js servers
 * (typed structurally: no grpc-js dependency), draining keep-alive connections without losing an
 * accepted request.
 *
 * @packageDocumentation
 */

export type {
  App,
  AppEvent,
  AppInfo,
  AppOptions,
  AppState,
  Hook,
  Readiness,
  Registrar,
  Server,
} from "./app.js";
export { createApp } from "./app.js";
export type { GrpcAppServer, GrpcAppServerOptions, GrpcServerLike } from "./grpc-server.js";
export { grpcServer } from "./grpc-server.js";
export type { HttpAppServer, HttpAppServerOptions, HttpListener, NodeHttpServer } from "./http-server.js";
export { httpServer } from "./http-server.js";
