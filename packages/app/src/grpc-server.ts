import { Code, ServiceError } from "@svckit/endpoint";
import { advertisedHost, formatAddress, parseAddress } from "./address.js";
import type { Server } from "./app.js";

/**
 * The few methods of a `@grpc/grpc-js` `Server` the app uses, so `@svckit/app` needs no grpc-js
 * dependency. A grpc-js `Server` fits as it is.
 */
export interface GrpcServerLike<Credentials> {
  /** Binds and (grpc-js ≥ 1.10) starts serving on the address; the callback gets the bound port. */
  bindAsync(
    port: string,
    credentials: Credentials,
    callback: (error: Error | null, port: number) => void,
  ): void;
  /** Stops accepting, lets calls in flight finish, then closes; the callback runs once all is closed. */
  tryShutdown(callback: (error?: Error) => void): void;
  /** Cancels every call and closes every connection now. */
  forceShutdown(): void;
}

/** Options of {@link grpcServer}. */
export interface GrpcAppServerOptions<Credentials> {
  /** Where to listen: `host:port`, `[ipv6]:port` or `:port` (every interface); port 0 picks a free one. */
  address: string;
  /**
   * The server credentials, e.g. `ServerCredentials.createInsecure()`. Required: grpc-js only accepts
   * credentials made by its own copy, which this package does not import.
   */
  credentials: Credentials;
  /** A name for logs and errors; default `"grpc"`. */
  name?: string;
}

/** A gRPC server the app starts and stops; see {@link grpcServer}. */
export interface GrpcAppServer<S> extends Server {
  /** The name given, or `"grpc"`. */
  readonly name: string;
  /** The grpc-js server. */
  readonly server: S;
  /** The address it listens on once started, e.g. `"127.0.0.1:54321"` (the real port for port 0). */
  readonly address: string | undefined;
  /** The port it listens on once started. */
  readonly port: number | undefined;
  /** `grpc://<host>:<port>` once started; an unspecified host becomes this machine's IPv4 address. */
  readonly endpoint: string | undefined;
}

/**
 * Wraps a grpc-js `Server` (with its services already added) as an app {@link Server}: `start()`
 * binds it to `address`; `stop(deadline)` calls `tryShutdown` (no new connections or calls; each
 * connection gets a GOAWAY and closes once its calls finish) and `forceShutdown` when `deadline` aborts.
 *
 * @example
 * ```ts
 * const server = new grpc.Server();
 * bindService(server, root.service("pb.Add"), { Sum: sum });
 * const grpc = grpcServer(server, { address: ":9090", credentials: ServerCredentials.createInsecure() });
 * await createApp({ servers: [grpc] }).run();
 * ```
 */
export function grpcServer<C, S extends GrpcServerLike<C>>(
  server: S,
  options: GrpcAppServerOptions<C>,
): GrpcAppServer<S> {
  const { host, port: wanted } = parseAddress(options.address);
  const name = options.name ?? "grpc";
  const bindHost = host === "" ? "0.0.0.0" : host;
  let port: number | undefined;
  let state: "idle" | "starting" | "started" | "stopped" = "idle";

  async function start(): Promise<void> {
    if (state !== "idle") {
      throw new ServiceError(Code.FAILED_PRECONDITION, `${name}: a gRPC server can start only once`);
    }
    state = "starting";
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(formatAddress(bindHost, wanted), options.credentials, (err, boundPort) => {
        if (err === null) resolve(boundPort);
        else {
          state = "stopped";
          reject(
            new ServiceError(
              Code.UNAVAILABLE,
              `${name}: cannot listen on ${options.address}: ${err.message}`,
              { cause: err },
            ),
          );
        }
      });
    });
    state = "started";
  }

  function stop(deadline?: AbortSignal): Promise<void> {
    if (state !== "started") {
      state = "stopped";
      return Promise.resolve();
    }
    state = "stopped";
    return new Promise<void>((resolve, reject) => {
      const force = (): void => server.forceShutdown();
      server.tryShutdown((err) => {
        deadline?.removeEventListener("abort", force);
        if (err === undefined) resolve();
        else
          reject(new ServiceError(Code.INTERNAL, `${name}: shutdown failed: ${err.message}`, { cause: err }));
      });
      if (deadline?.aborted) force();
      else deadline?.addEventListener("abort", force, { once: true });
    });
  }

  return {
    name,
    server,
    start,
    stop,
    get address() {
      return port === undefined ? undefined : formatAddress(bindHost, port);
    },
    get port() {
      return port;
    },
    get endpoint() {
      return port === undefined ? undefined : `grpc://${formatAddress(advertisedHost(bindHost), port)}`;
    },
  };
}
