import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ServiceError } from "@svckit/endpoint";
import type { Health, HealthReport, HealthStatus } from "./health.js";

/** Options of {@link createHealthHandler}. */
export interface HealthHandlerOptions {
  /** The liveness path (default `/healthz`). */
  livenessPath?: string;
  /** The readiness path (default `/readyz`). */
  readinessPath?: string;
  /**
   * The HTTP status of a `warning` report (default 200; 429 makes Consul's HTTP check read it as
   * warning too).
   */
  warningStatus?: number;
}

/** A `(req, res)` listener for `node:http`; as express middleware it passes other paths on with `next()`. */
export type HealthHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  next?: (err?: unknown) => void,
) => void;

const JSON_TYPE = "application/json; charset=utf-8";

function checkPath(name: string, path: string): string {
  if (typeof path !== "string" || !path.startsWith("/") || /[?#\s]/.test(path)) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `invalid ${name} ${JSON.stringify(path)}: expected a path starting with "/" without query or spaces`,
    );
  }
  return path;
}

function write(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: string,
  allow?: string,
): void {
  if (res.destroyed || res.headersSent) return; // the client left while the checks ran
  const headers: Record<string, string | number> = {
    "content-type": JSON_TYPE,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  };
  if (allow !== undefined) headers.allow = allow;
  res.writeHead(status, headers);
  res.end(req.method === "HEAD" ? undefined : body);
}

/**
 * Serves a {@link Health} over HTTP: `GET /healthz` runs the liveness checks and `GET /readyz` the
 * readiness checks, answering 200 (passing), 200 or `warningStatus` (warning) or 503 (critical) with
 * a JSON body `{"status": "passing", "checks": {"db": {"status": "passing", "durationMs": 3}}}`
 * (readiness adds `"serving"`). HEAD answers the same without a body; other methods get 405. Other
 * paths go to express's `next()`, or get 404 when there is none.
 *
 * @example
 * ```ts
 * http.createServer(createHealthHandler(health)).listen(8081);
 * expressApp.use(createHealthHandler(health, { readinessPath: "/ready" }));
 * ```
 */
export function createHealthHandler(health: Health, options: HealthHandlerOptions = {}): HealthHandler {
  const livenessPath = checkPath("livenessPath", options.livenessPath ?? "/healthz");
  const readinessPath = checkPath("readinessPath", options.readinessPath ?? "/readyz");
  if (livenessPath === readinessPath) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `livenessPath and readinessPath are both ${JSON.stringify(livenessPath)}: they must differ`,
    );
  }
  const warningStatus = options.warningStatus ?? 200;
  if (!Number.isInteger(warningStatus) || warningStatus < 200 || warningStatus > 599) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `invalid warningStatus ${String(warningStatus)}: expected an HTTP status from 200 to 599`,
    );
  }
  const httpStatus: Readonly<Record<HealthStatus, number>> = {
    passing: 200,
    warning: warningStatus,
    critical: 503,
  };

  return function healthHandler(req, res, next) {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const run: (() => Promise<HealthReport>) | undefined =
      path === livenessPath
        ? () => health.liveness()
        : path === readinessPath
          ? () => health.readiness()
          : undefined;
    const method = req.method ?? "GET";
    if (run === undefined) {
      if (next !== undefined) {
        next();
        return;
      }
      const error = new ServiceError(Code.NOT_FOUND, `no route for ${method} ${path}`);
      write(req, res, 404, JSON.stringify(error.toJSON()));
      return;
    }
    if (method !== "GET" && method !== "HEAD") {
      const error = new ServiceError(Code.UNIMPLEMENTED, `method ${method} is not allowed on ${path}`);
      write(req, res, 405, JSON.stringify(error.toJSON()), "GET, HEAD");
      return;
    }
    run().then(
      (report) => write(req, res, httpStatus[report.status], JSON.stringify(report)),
      () => {
        const error = new ServiceError(Code.INTERNAL, "internal error");
        write(req, res, 500, JSON.stringify(error.toJSON()));
      },
    );
  };
}
