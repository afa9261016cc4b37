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
 * Called while `start()` is still binding, `stop` waits for the bind and then shuts down.
 *
 * `:port` binds `[::]`, every interface over IPv6 and IPv4 (as `node:http` does), falling back to
 * `0.0.0.0` where that bind fails (no IPv6 on the machine).
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
  // grpc-js listens on "::" dual-stack, as node:http does for a listen without a host.
  let bindHost = host === "" ? "::" : host;
  let port: number | undefined;
  let state: "idle" | "starting" | "stopping" | "started" | "stopped" = "idle";
  let starting: Promise<void> | undefined;

  function bind(at: string): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      server.bindAsync(formatAddress(at, wanted), options.credentials, (err, boundPort) => {
        if (err === null) resolve(boundPort);
        else reject(err);
      });
    });
  }

  async function start(): Promise<void> {
    if (state !== "idle") {
      throw new ServiceError(Code.FAILED_PRECONDITION, `${name}: a gRPC server can start only once`);
    }
    state = "starting";
    starting = (async () => {
      try {
        try {
          port = await bind(bindHost);
        } catch (err) {
          if (host !== "") throw err;
          // No IPv6 here (node:http falls back the same way).
          bindHost = "0.0.0.0";
          port = await bind(bindHost);
        }
      } catch (err) {
        state = "stopped";
        const message = err instanceof Error ? err.message : String(err);
        throw new ServiceError(Code.UNAVAILABLE, `${name}: cannot listen on ${options.address}: ${message}`, {
          cause: err,
        });
      }
      if (state === "starting") state = "started";
    })();
    return starting;
  }

  function stop(deadline?: AbortSignal): Promise<void> {
    if (state === "starting" && starting !== undefined) {
      // Told to stop while binding: shut down what the bind opens.
      state = "stopping";
      return starting.then(
        () => shutdown(deadline),
        () => undefined,
      );
    }
    if (state !== "started") {
      if (state === "idle") state = "stopped";
      return Promise.resolve();
    }
    return shutdown(deadline);
  }

  function shutdown(deadline: AbortSignal | undefined): Promise<void> {
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
