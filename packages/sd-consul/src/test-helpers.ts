// A FAKE Consul agent for tests (test-only, not built into dist): a node:http server on 127.0.0.1:0
// that implements the few endpoints @svckit/sd-consul uses, the way Consul's HTTP API documents them.
// Consul itself is not installable here (no Debian package), so this fake stands in; its own tests
// (fake-consul.test.ts) pin each documented behaviour it imitates. What it does:
//
// - PUT /v1/agent/service/register (JSON: ID (default Name), Name (required), Tags, Address, Port, Meta,
//   Weights (default {Passing: 1, Warning: 1}), Check / Checks). A TTL check starts with `Status` or
//   "critical" and turns critical when no report comes within its TTL; an HTTP check is polled by the
//   fake every Interval (2xx passing, 429 warning, anything else or no answer critical). A check's
//   CheckID defaults to "service:<ID>" (":<n>" appended for several), as Consul does.
// - PUT /v1/agent/service/deregister/:id (404 for an unknown id).
// - PUT /v1/agent/check/pass/:check_id (404 unknown, 500 when the check is not a TTL check).
// - GET /v1/health/service/:service with ?passing (only entries whose checks, node's included, all pass),
//   ?tag= (repeatable, all must match), ?dc=, and blocking queries: ?index=N&wait=D blocks while the
//   service's index is <= N, until a change or the wait (default 5m, max 10m, plus up to wait/16 of
//   jitter) runs out; every answer carries X-Consul-Index.
// - ACLs: with `token` set, requests without it (X-Consul-Token, `Authorization: Bearer`, or ?token=)
//   get 403 "Permission denied" and requests with another token 403 "ACL not found".
// Not imitated: DeregisterCriticalServiceAfter (Consul's reaper runs every 30 s with a 1 m minimum; the
// field is only stored), TCP/gRPC/script checks, other endpoints, consistency modes.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";

export type CheckStatus = "passing" | "warning" | "critical";

/** A check as the fake keeps it. */
export interface FakeCheck {
  CheckID: string;
  Name: string;
  Status: CheckStatus;
  Output: string;
  ServiceID: string;
  ServiceName: string;
  Type: "ttl" | "http" | "";
  TTL?: string;
  HTTP?: string;
  Interval?: string;
  DeregisterCriticalServiceAfter?: string;
}

/** A service instance as the fake keeps it (Consul's field names). */
export interface FakeService {
  ID: string;
  Service: string;
  Tags: string[];
  Address: string;
  Port: number;
  Meta: Record<string, string>;
  Weights: { Passing: number; Warning: number };
}

/** One request the fake received. */
export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly token: string | undefined;
  readonly body: unknown;
}

export interface FakeConsulOptions {
  /** Require this ACL token. */
  token?: string;
  /** The node's address (default "127.0.0.1"). */
  nodeAddress?: string;
}

/** The fake agent and the knobs tests turn. */
export interface FakeConsul {
  readonly url: string;
  readonly requests: FakeRequest[];
  readonly services: ReadonlyMap<string, FakeService>;
  readonly checks: ReadonlyMap<string, FakeCheck>;
  /** The raft index of the last write. */
  readonly index: number;
  /** Registers a service directly, as another agent of the cluster would (same JSON as the HTTP API). */
  register(definition: Record<string, unknown>): void;
  /** Deregisters a service directly. */
  deregister(id: string): void;
  /** Sets a check's status, as Consul would after running it. */
  setCheck(checkId: string, status: CheckStatus): void;
  /** Sets the node's serfHealth check: "critical" makes every service on it fail ?passing. */
  setNodeHealth(status: CheckStatus): void;
  /**
   * Lowers every index to `to` and wakes blocking queries, as a Consul restored from an older snapshot
   * (or a new cluster) would: clients see the index go backwards.
   */
  resetIndex(to?: number): void;
  /** Answers the next `n` requests with this status and body instead of serving them. */
  failNext(n: number, status?: number, body?: string): void;
  /** Drops the next `n` requests' connections without an answer. */
  dropNext(n: number): void;
  /** Stops answering at all (requests hang) until `thaw()`. */
  freeze(): void;
  thaw(): void;
  /** Blocking queries waiting right now. */
  readonly waiting: number;
  close(): Promise<void>;
}

const NODE = "fake-node";

/** Parses a Go duration ("10s", "1m30s", "250ms") into ms; undefined when malformed. */
export function parseGoDuration(text: string): number | undefined {
  if (!/^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 };
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    ms += Number(n) * (units[unit ?? "ms"] ?? 1);
  }
  return ms;
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Starts the fake on 127.0.0.1 and a free port. */
export async function startFakeConsul(options: FakeConsulOptions = {}): Promise<FakeConsul> {
  const nodeAddress = options.nodeAddress ?? "127.0.0.1";
  const services = new Map<string, FakeService>();
  const checks = new Map<string, FakeCheck>();
  const requests: FakeRequest[] = [];
  const timers = new Map<string, NodeJS.Timeout>();
  let nodeHealth: CheckStatus = "passing";
  let raft = 10; // a fresh Consul's index is already above 0
  const serviceIndex = new Map<string, number>();
  const waiters = new Set<{ service: string; wake: () => void }>();
  let failures: { n: number; status: number; body: string } = { n: 0, status: 500, body: "" };
  let drops = 0;
  let frozen = false;
  const frozenRequests = new Set<http.ServerResponse>();

  const touch = (service: string): void => {
    raft += 1;
    serviceIndex.set(service, raft);
    for (const waiter of [...waiters]) if (waiter.service === service) waiter.wake();
  };
  const touchAll = (): void => {
    raft += 1;
    for (const name of serviceIndex.keys()) serviceIndex.set(name, raft);
    for (const waiter of [...waiters]) waiter.wake();
  };
  const indexOf = (service: string): number => serviceIndex.get(service) ?? raft;

  const clearTimer = (key: string): void => {
    const timer = timers.get(key);
    if (timer !== undefined) clearTimeout(timer);
    timers.delete(key);
  };

  const setStatus = (check: FakeCheck, status: CheckStatus, output = ""): void => {
    if (check.Status === status && check.Output === output) return;
    check.Status = status;
    check.Output = output;
    touch(check.ServiceName);
  };

  const armTtl = (check: FakeCheck): void => {
    clearTimer(`ttl:${check.CheckID}`);
    const ttl = parseGoDuration(check.TTL ?? "") ?? 0;
    const timer = setTimeout(() => setStatus(check, "critical", "TTL expired"), ttl);
    timer.unref();
    timers.set(`ttl:${check.CheckID}`, timer);
  };

  const runHttp = (check: FakeCheck): void => {
    const interval = parseGoDuration(check.Interval ?? "") ?? 10_000;
    const run = async (): Promise<void> => {
      if (!checks.has(check.CheckID)) return;
      let status: CheckStatus = "critical";
      let output = "";
      try {
        const response = await fetch(check.HTTP ?? "", {
          signal: AbortSignal.timeout(Math.min(interval, 10_000)),
        });
        await response.arrayBuffer();
        status = response.ok ? "passing" : response.status === 429 ? "warning" : "critical";
        output = `HTTP GET ${check.HTTP}: ${response.status}`;
      } catch (error) {
        output = `HTTP GET ${check.HTTP}: ${(error as Error).message}`;
      }
      if (!checks.has(check.CheckID)) return;
      setStatus(check, status, output);
      const timer = setTimeout(() => void run(), interval);
      timer.unref();
      timers.set(`http:${check.CheckID}`, timer);
    };
    void run();
  };

  const removeService = (id: string): void => {
    const service = services.get(id);
    if (service === undefined) return;
    services.delete(id);
    for (const [checkId, check] of checks) {
      if (check.ServiceID === id) {
        checks.delete(checkId);
        clearTimer(`ttl:${checkId}`);
        clearTimer(`http:${checkId}`);
      }
    }
    touch(service.Service);
  };

  const registerService = (body: unknown, replaceChecks: boolean): void => {
    if (typeof body !== "object" || body === null)
      throw new HttpFailure(400, "Request decode failed: not an object");
    const def = body as Record<string, unknown>;
    const name = def.Name;
    if (typeof name !== "string" || name === "") throw new HttpFailure(400, "Missing service name");
    const id = typeof def.ID === "string" && def.ID !== "" ? def.ID : name;
    const port = def.Port ?? 0;
    if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new HttpFailure(400, "Request decode failed: invalid Port");
    }
    const weights = (def.Weights ?? {}) as { Passing?: unknown; Warning?: unknown };
    const service: FakeService = {
      ID: id,
      Service: name,
      Tags: Array.isArray(def.Tags) ? def.Tags.map(String) : [],
      Address: typeof def.Address === "string" ? def.Address : "",
      Port: port,
      Meta: Object.fromEntries(
        Object.entries((def.Meta ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
      ),
      Weights: {
        Passing: typeof weights.Passing === "number" ? weights.Passing : 1,
        Warning: typeof weights.Warning === "number" ? weights.Warning : 1,
      },
    };
    const defs: Record<string, unknown>[] = [];
    if (typeof def.Check === "object" && def.Check !== null) defs.push(def.Check as Record<string, unknown>);
    if (Array.isArray(def.Checks)) defs.push(...(def.Checks as Record<string, unknown>[]));
    const newChecks: FakeCheck[] = defs.map((c, i) => {
      const type = typeof c.TTL === "string" ? "ttl" : typeof c.HTTP === "string" ? "http" : "";
      if (type === "") throw new HttpFailure(400, "Invalid check: TTL must be > 0 for TTL checks");
      if (type === "ttl" && !((parseGoDuration(c.TTL as string) ?? 0) > 0)) {
        throw new HttpFailure(400, "Invalid check: TTL must be > 0 for TTL checks");
      }
      if (type === "http" && !((parseGoDuration((c.Interval as string) ?? "") ?? 0) > 0)) {
        throw new HttpFailure(400, "Invalid check: Interval must be > 0 for Script, HTTP, or TCP checks");
      }
      const status = c.Status === "passing" || c.Status === "warning" ? c.Status : "critical";
      const check: FakeCheck = {
        CheckID:
          typeof c.CheckID === "string" && c.CheckID !== ""
            ? c.CheckID
            : defs.length === 1
              ? `service:${id}`
              : `service:${id}:${i + 1}`,
        Name: typeof c.Name === "string" ? c.Name : `Service '${name}' check`,
        Status: status,
        Output: "",
        ServiceID: id,
        ServiceName: name,
        Type: type,
      };
      if (type === "ttl") check.TTL = c.TTL as string;
      if (type === "http") {
        check.HTTP = c.HTTP as string;
        check.Interval = c.Interval as string;
      }
      if (typeof c.DeregisterCriticalServiceAfter === "string") {
        check.DeregisterCriticalServiceAfter = c.DeregisterCriticalServiceAfter;
      }
      return check;
    });
    const previous = services.get(id);
    if (previous !== undefined && previous.Service !== name) removeService(id);
    services.set(id, service);
    if (replaceChecks || newChecks.length > 0) {
      for (const [checkId, check] of checks) {
        if (check.ServiceID === id && (replaceChecks || newChecks.some((c) => c.CheckID === checkId))) {
          checks.delete(checkId);
          clearTimer(`ttl:${checkId}`);
          clearTimer(`http:${checkId}`);
        }
      }
    }
    for (const check of newChecks) {
      checks.set(check.CheckID, check);
      if (check.Type === "ttl") armTtl(check);
      if (check.Type === "http") runHttp(check);
    }
    touch(name);
  };

  const health = (name: string, query: URLSearchParams): unknown[] => {
    const passing = query.has("passing") && query.get("passing") !== "false";
    const tags = query.getAll("tag");
    const node = {
      ID: "00000000-0000-0000-0000-000000000001",
      Node: NODE,
      Address: nodeAddress,
      Datacenter: "dc1",
    };
    const serf = {
      Node: NODE,
      CheckID: "serfHealth",
      Name: "Serf Health Status",
      Status: nodeHealth,
      Output: "",
      ServiceID: "",
      ServiceName: "",
    };
    const out: unknown[] = [];
    for (const service of [...services.values()].sort((a, b) => a.ID.localeCompare(b.ID))) {
      if (service.Service !== name) continue;
      if (!tags.every((tag) => service.Tags.includes(tag))) continue;
      const own = [...checks.values()].filter((c) => c.ServiceID === service.ID);
      const all = [serf, ...own.map((c) => ({ Node: NODE, ...c }))];
      if (passing && !all.every((c) => c.Status === "passing")) continue;
      out.push({ Node: node, Service: { ...service }, Checks: all });
    }
    return out;
  };

  const authorize = (req: http.IncomingMessage, query: URLSearchParams): string | undefined => {
    const header = req.headers["x-consul-token"];
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const token = (Array.isArray(header) ? header[0] : header) ?? bearer ?? query.get("token") ?? undefined;
    if (options.token === undefined) return token;
    if (token === undefined || token === "") throw new HttpFailure(403, "Permission denied");
    if (token !== options.token) throw new HttpFailure(403, "ACL not found");
    return token;
  };

  const serve = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    let body: unknown;
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch (error) {
        throw new HttpFailure(400, `Request decode failed: ${(error as Error).message}`);
      }
    }
    const path = decodeURIComponent(url.pathname);
    const token = authorize(req, url.searchParams);
    requests.push({ method: req.method ?? "", path, query: url.searchParams, token, body });
    const method = req.method ?? "GET";
    const needs = (wanted: string): void => {
      if (method !== wanted) throw new HttpFailure(405, `method ${method} not allowed`);
    };
    const deregister = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(path);
    const pass = /^\/v1\/agent\/check\/pass\/(.+)$/.exec(path);
    const healthQuery = /^\/v1\/health\/service\/(.+)$/.exec(path);
    if (path === "/v1/agent/service/register") {
      needs("PUT");
      registerService(body, url.searchParams.get("replace-existing-checks") === "true");
      res.writeHead(200).end();
    } else if (deregister !== null) {
      needs("PUT");
      const id = deregister[1] ?? "";
      if (!services.has(id))
        throw new HttpFailure(
          404,
          `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`,
        );
      removeService(id);
      res.writeHead(200).end();
    } else if (pass !== null) {
      needs("PUT");
      const checkId = pass[1] ?? "";
      const check = checks.get(checkId);
      if (check === undefined)
        throw new HttpFailure(
          404,
          `Unknown check ID "${checkId}". Ensure that the check ID is passed, not the check name.`,
        );
      if (check.Type !== "ttl")
        throw new HttpFailure(500, `CheckID "${check.CheckID}" does not have associated TTL`);
      setStatus(check, "passing", url.searchParams.get("note") ?? "");
      armTtl(check);
      res.writeHead(200).end();
    } else if (healthQuery !== null) {
      needs("GET");
      const name = healthQuery[1] ?? "";
      const wanted = Number(url.searchParams.get("index") ?? "0");
      if (!Number.isFinite(wanted) || wanted < 0) throw new HttpFailure(400, "Invalid index");
      const waitText = url.searchParams.get("wait");
      let wait = 5 * 60_000;
      if (waitText !== null) {
        const parsed = parseGoDuration(waitText);
        if (parsed === undefined) throw new HttpFailure(400, `Invalid wait time: ${waitText}`);
        wait = Math.min(parsed, 10 * 60_000);
      }
      if (wanted > 0 && indexOf(name) <= wanted) {
        wait += Math.random() * (wait / 16);
        await new Promise<void>((resolve) => {
          const waiter = { service: name, wake: () => finish() };
          const timer = setTimeout(() => finish(), wait);
          const finish = (): void => {
            clearTimeout(timer);
            waiters.delete(waiter);
            resolve();
          };
          waiters.add(waiter);
          res.once("close", finish);
        });
      }
      if (res.destroyed) return;
      const answer = JSON.stringify(health(name, url.searchParams));
      res
        .writeHead(200, {
          "content-type": "application/json",
          "x-consul-index": String(indexOf(name)),
          "x-consul-knownleader": "true",
          "x-consul-lastcontact": "0",
        })
        .end(answer);
    } else {
      throw new HttpFailure(404, "404 page not found");
    }
  };

  const server = http.createServer((req, res) => {
    if (frozen) {
      frozenRequests.add(res);
      res.once("close", () => frozenRequests.delete(res));
      return;
    }
    if (drops > 0) {
      drops -= 1;
      req.socket.destroy();
      return;
    }
    if (failures.n > 0) {
      failures.n -= 1;
      res.writeHead(failures.status, { "content-type": "text/plain" }).end(failures.body);
      return;
    }
    const url = new URL(req.url ?? "/", "http://fake");
    serve(req, res, url).catch((error: unknown) => {
      const status = error instanceof HttpFailure ? error.status : 500;
      if (!res.headersSent) res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
      res.end(error instanceof Error ? error.message : String(error));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    services,
    checks,
    get index() {
      return raft;
    },
    get waiting() {
      return waiters.size;
    },
    register: (definition) => registerService(definition, true),
    deregister: (id) => removeService(id),
    setCheck(checkId, status) {
      const check = checks.get(checkId);
      if (check === undefined) throw new Error(`fake consul: no check ${checkId}`);
      setStatus(check, status);
    },
    setNodeHealth(status) {
      if (nodeHealth === status) return;
      nodeHealth = status;
      touchAll();
    },
    resetIndex(to = 2) {
      raft = to;
      for (const name of serviceIndex.keys()) serviceIndex.set(name, to);
      for (const waiter of [...waiters]) waiter.wake();
    },
    failNext(n, status = 500, body = "rpc error: No cluster leader") {
      failures = { n, status, body };
    },
    dropNext(n) {
      drops = n;
    },
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const res of frozenRequests) res.destroy();
      frozenRequests.clear();
    },
    async close() {
      for (const key of [...timers.keys()]) clearTimer(key);
      for (const waiter of [...waiters]) waiter.wake();
      for (const res of frozenRequests) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
