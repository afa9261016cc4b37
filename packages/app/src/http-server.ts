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

/** What {@link track} gives a server: the listeners to run first, the stop switch, the sweeps. */
interface Tracker {
  readonly onConnection: (socket: Socket) => void;
  readonly onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Makes every busy connection close once its response is written, and every later request say so. */
  stop(): void;
  /** Runs `fn` (which closes idle connections) without letting it close one whose response still flushes. */
  sweep(fn: () => void): void;
  /** Destroys every connection left, also those an `upgrade` listener took over (e.g. WebSockets). */
  destroyAll(): void;
}

const noop = (): void => undefined;

/** Stands in for `socket.destroy` while an idle sweep must not close the socket. */
function keepOpen(this: Socket): Socket {
  return this;
}

/**
 * Remembers every connection and the response last written on each, so a stop can tell busy
 * keep-alive connections to close after their response, leave alone those still flushing a response
 * to a slow reader, and close them all at the deadline: one Set add and delete per connection, one
 * Map write per request, one listener per connection.
 */
function track(server: NodeHttpServer): Tracker {
  const sockets = new Set<Socket>();
  const current = new Map<Socket, http.ServerResponse>();
  let stopping = false;
  function forget(this: Socket): void {
    current.delete(this);
  }
  function drop(this: Socket): void {
    sockets.delete(this);
  }
  /**
   * `http.Server`'s idle sweep (`closeIdleConnections()`, also run by `close()`) destroys a
   * connection whose response has ended (`res.end()` called) even while its bytes still wait for a
   * slow reader, which truncates the response. For the time of the sweep, such connections cannot
   * be destroyed; each is closed once its response has left ('finish' → `closeIdleSoon`).
   */
  const sweep = (fn: () => void): void => {
    const shielded: Socket[] = [];
    for (const [socket, res] of current) {
      if (res.writableFinished || Object.hasOwn(socket, "destroy")) continue;
      Object.defineProperty(socket, "destroy", { value: keepOpen, configurable: true, writable: true });
      shielded.push(socket);
    }
    try {
      fn();
    } finally {
      for (const socket of shielded) Reflect.deleteProperty(socket, "destroy");
    }
  };
  // After 'finish' the response has left; the connection is idle unless a pipelined request started.
  const closeIdleSoon = (): void => {
    setImmediate(() => sweep(() => server.closeIdleConnections()));
  };
  return {
    onConnection(socket) {
      sockets.add(socket);
      socket.once("close", drop);
    },
    onRequest(req, res) {
      const socket = req.socket;
      if (!current.has(socket)) socket.once("close", forget);
      current.set(socket, res);
      // A request on a connection that was busy (or pipelined) when the stop began: answer, then close.
      if (stopping && !res.headersSent) res.setHeader("connection", "close");
    },
    stop() {
      stopping = true;
      for (const res of current.values()) {
        if (res.writableFinished) continue;
        if (!res.headersSent) res.setHeader("connection", "close");
        else res.once("finish", closeIdleSoon);
      }
    },
    sweep,
    destroyAll() {
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * Wraps a `node:http` server (or a request listener, such as a svckit router's `handle` or an express
 * app, for which it creates one) as an app {@link Server}.
 *
 * `stop(deadline)` drains without losing accepted requests: it stops listening (new connections are
 * refused), closes idle keep-alive connections, answers requests in flight and any that arrive on a
 * busy connection with `connection: close` so each connection closes after its response (a response
 * still being written to a slow reader is left to finish, also one whose `res.end()` was called),
 * and closes every remaining connection when `deadline` aborts, also connections an `upgrade`
 * listener took over (WebSockets). Called while `start()` is pending, it waits for the listen and
 * then stops. A request written on an idle keep-alive
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
  /** The listen under way, until it settles. */
  let starting: Promise<void> | undefined;

  function start(): Promise<void> {
    if (stopped) {
      return Promise.reject(
        new ServiceError(Code.FAILED_PRECONDITION, `${name}: cannot start again after stop`),
      );
    }
    if (server.listening || starting !== undefined) {
      return Promise.reject(
        new ServiceError(Code.FAILED_PRECONDITION, `${name}: the server is already listening`),
      );
    }
    const listening = listen();
    starting = listening;
    // Settled: a stop need not wait for it any more, and a failed listen may be tried again.
    const settled = (): void => {
      if (starting === listening) starting = undefined;
    };
    listening.then(settled, settled);
    return listening;
  }

  async function listen(): Promise<void> {
    server.prependListener("request", tracker.onRequest);
    server.prependListener("connection", tracker.onConnection);
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
      server.off("connection", tracker.onConnection);
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
    // Told to stop while the listen is under way: stop what it opens once it has settled. Not
    // `server.listening`: without a host, `listen()` opens the handle at once (`listening` is true)
    // but emits 'listening' a tick later, and not at all if the handle was closed meanwhile.
    if (starting !== undefined) return starting.then(() => close(deadline), noop);
    return close(deadline);
  }

  function close(deadline: AbortSignal | undefined): Promise<void> {
    if (!server.listening) return Promise.resolve();
    tracker.stop();
    return new Promise<void>((resolve) => {
      const forceClose = (): void => tracker.destroyAll();
      // close() stops listening and closes the idle connections; its callback runs once all are closed.
      tracker.sweep(() =>
        server.close(() => {
          deadline?.removeEventListener("abort", forceClose);
          server.off("request", tracker.onRequest);
          server.off("connection", tracker.onConnection);
          resolve();
        }),
      );
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
