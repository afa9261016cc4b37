// Shared by the tests of this package only: excluded from the build (see tsconfig.json), never exported.
import http from "node:http";
import type { AddressInfo } from "node:net";

/** A real HTTP server listening on 127.0.0.1 on a free port. */
export interface TestServer {
  readonly server: http.Server;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** Closes every connection (idle or not) and the server. */
  close(): Promise<void>;
}

const open = new Set<TestServer>();

/** Starts `http.createServer(listener)` on 127.0.0.1, port 0. Close it with {@link closeServers}. */
export async function listen(listener: http.RequestListener): Promise<TestServer> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const testServer: TestServer = {
    server,
    port,
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        open.delete(testServer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  open.add(testServer);
  return testServer;
}

/** Closes every server {@link listen} started and has not closed yet. */
export async function closeServers(): Promise<void> {
  await Promise.all([...open].map((s) => s.close()));
}

/** A port nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** What {@link send} resolves with. */
export interface TestResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** The raw header pairs, names as sent. */
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  readonly text: string;
  /** The body parsed as JSON. */
  json(): unknown;
}

/** A request for {@link send}. */
export interface TestRequest {
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders;
  /** Sent with a content-length unless a `transfer-encoding` header is given. */
  body?: string | Uint8Array;
  /** Default: a fresh connection per request (`agent: false`). */
  agent?: http.Agent;
}

/** Sends one request with `node:http` and reads the whole answer. */
export function send(port: number, request: TestRequest = {}): Promise<TestResponse> {
  return new Promise<TestResponse>((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: request.method ?? "POST",
        path: request.path ?? "/",
        headers: request.headers,
        agent: request.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          const text = body.toString("utf8");
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body,
            text,
            json: () => JSON.parse(text) as unknown,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(request.body);
  });
}

/** Resolves once `signal` aborts (at once if it already has). */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise<void>((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve function, for handing values out of callbacks. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
