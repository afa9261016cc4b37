import http from "node:http";
import type https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { Server as TlsServer } from "node:tls";
import { Code, ServiceError } from "@svckit/endpoint";
import { advertisedHost, formatAddress, type HostPort, parseAddress } from "./address.js";
import type { Server } from "./app.js";

/** A `node:http` or `node:https` server. */
export type NodeHttpServer = http.Server | https.Server;

/** Options of {@link httpServer}. */
export interface HttpAppServerOptions {
  /** Where to listen: `host:port`, `[ipv6]:port` or `:port` (every interface); port 0 picks a free one. */
  address: string;
  /** A name for logs and errors; default `"http"`. */
  name?: string;
}

/** An HTTP server the app starts and stops; see {@link httpServer}. */
export interface HttpAppServer extends Server {
  /** The name given, or `"http"`. */
  readonly name: string;
  /** The underlying `node:http` (or `node:https`) server. */
  readonly server: NodeHttpServer;
  /** The address it listens on once started, e.g. `"127.0.0.1:54321"` (the real port for port 0). */
  readonly address: string | undefined;
  /** The port it listens on once started. */
  readonly port: number | undefined;
  /** `http://<host>:<port>` (or `https://`) once started; an unspecified host becomes this machine's IPv4 address. */
  readonly endpoint: string | undefined;
}

/** A request listener: a `(req, res)` function, e.g. a svckit router's `handle` or an express app. */
export type HttpListener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** What {@link track} gives a server: a `request` listener to run first, and the stop switch. */
interface Tracker {
  readonly onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Makes every busy connection close once its response is written, and every later request say so. */
  stop(): void;
}

/**
 * Remembers the response being written on each socket, so a stop can tell busy keep-alive
 * connections to close after their response: one Map write per request, one listener per connection.
 */
function track(server: NodeHttpServer): Tracker {
  const current = new Map<Socket, http.ServerResponse>();
  let stopping = false;
  function forget(this: Socket): void {
    current.delete(this);
  }
  // After 'finish' the response has left; the connection is idle unless a pipelined request started.
  const closeIdleSoon = (): void => {
    setImmediate(() => server.closeIdleConnections());
  };
  return {
    onRequest(req, res) {
      if (stopping) {
        // A request on a connection that was busy (or pipelined) when the stop began: answer, then close.
        if (!res.headersSent) res.setHeader("connection", "close");
        return;
      }
      const socket = req.socket;
      if (!current.has(socket)) socket.once("close", forget);
      current.set(socket, res);
    },
    stop() {
      stopping = true;
      for (const res of current.values()) {
        if (res.writableFinished) continue;
        if (!res.headersSent) res.setHeader("connection", "close");
        else res.once("finish", closeIdleSoon);
      }
      current.clear();
    },
  };
}

/**
 * Wraps a `node:http` server (or a request listener, such as a svckit router's `handle` or an express
 * app, for which it creates one) as an app {@link Server}.
 *
 * `stop(deadline)` drains without losing accepted requests: it stops listening (new connections are
 * refused), closes idle keep-alive connections, answers requests in flight and any that arrive on a
 * busy connection with `connection: close` so each connection closes after its response, and
 * closes every remaining connection when `deadline` aborts. A request written on an idle keep-alive
 * connection at the very moment it is closed is never seen by the server; the client gets
 * ECONNRESET on a reused socket (`req.reusedSocket`) and may safely retry it.
 *
 * @example
 * ```ts
 * const http = httpServer(createRouter().post("/uppercase", uppercase).handle, { address: ":8080" });
 * const app = createApp({ servers: [http] });
 * await app.start();
 * console.log(http.address); // "0.0.0.0:8080"
 * ```
 */
export function httpServer(
  serverOrListener: NodeHttpServer | HttpListener,
  options: HttpAppServerOptions,
): HttpAppServer {
  const { host, port: wanted }: HostPort = parseAddress(options.address);
  const name = options.name ?? "http";
  const server: NodeHttpServer =
    typeof serverOrListener === "function" ? http.createServer(serverOrListener) : serverOrListener;
  const scheme = server instanceof TlsServer ? "https" : "http";
  const tracker = track(server);
  let bound: AddressInfo | undefined;
  let stopped = false;

  async function start(): Promise<void> {
    if (stopped) throw new ServiceError(Code.FAILED_PRECONDITION, `${name}: cannot start again after stop`);
    if (server.listening) {
      throw new ServiceError(Code.FAILED_PRECONDITION, `${name}: the server is already listening`);
    }
    server.prependListener("request", tracker.onRequest);
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => {
          server.off("listening", onListening);
          reject(err);
        };
        const onListening = (): void => {
          server.off("error", onError);
          resolve();
        };
        server.once("error", onError);
        server.once("listening", onListening);
        server.listen(host === "" ? { port: wanted } : { host, port: wanted });
      });
    } catch (err) {
      server.off("request", tracker.onRequest);
      throw new ServiceError(
        Code.UNAVAILABLE,
        `${name}: cannot listen on ${options.address}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    bound = server.address() as AddressInfo;
  }

  function stop(deadline?: AbortSignal): Promise<void> {
    stopped = true;
    if (!server.listening) return Promise.resolve();
    tracker.stop();
    return new Promise<void>((resolve) => {
      const forceClose = (): void => server.closeAllConnections();
      // close() stops listening and closes the idle connections; its callback runs once all are closed.
      server.close(() => {
        deadline?.removeEventListener("abort", forceClose);
        server.off("request", tracker.onRequest);
        resolve();
      });
      if (deadline?.aborted) forceClose();
      else deadline?.addEventListener("abort", forceClose, { once: true });
    });
  }

  return {
    name,
    server,
    start,
    stop,
    get address() {
      return bound === undefined ? undefined : formatAddress(bound.address, bound.port);
    },
    get port() {
      return bound?.port;
    },
    get endpoint() {
      return bound === undefined
        ? undefined
        : `${scheme}://${formatAddress(advertisedHost(bound.address), bound.port)}`;
    },
  };
}
