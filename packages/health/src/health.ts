import { Code, MAX_TIMER_MS, ServiceError } from "@svckit/endpoint";

/** A check's or a report's status, as Consul names them; `critical` is the worst. */
export type HealthStatus = "passing" | "warning" | "critical";

/**
 * What a check returns: nothing (or `undefined`) for passing, or a status with a message. Throwing
 * (or rejecting) counts as critical with the error's message.
 */
export type CheckResult = undefined | { readonly status: HealthStatus; readonly message?: string };

/**
 * A named health check. `signal` aborts when the check's timeout passes; pass it on to whatever the
 * check waits for (a ping, a query).
 */
// biome-ignore lint/suspicious/noConfusingVoidType: `async () => { await db.ping(); }` returns Promise<void>, which must be a valid check.
export type HealthCheck = (signal: AbortSignal) => CheckResult | void | Promise<CheckResult | void>;

/** Options of one check. */
export interface CheckOptions {
  /** How long the check may take, in ms; then it counts as critical. Default: the health's `timeout`. */
  timeout?: number;
}

/** A check, alone or with its options. */
export type CheckSpec = HealthCheck | ({ readonly check: HealthCheck } & CheckOptions);

/** One check's outcome in a {@link HealthReport}. */
export interface CheckReport {
  /** The check's status. */
  readonly status: HealthStatus;
  /** The check's message, or the error's message when it threw (never a stack or a cause). */
  readonly message?: string;
  /** How long the check ran, in whole milliseconds. */
  readonly durationMs: number;
}

/** The aggregated outcome of a set of checks. */
export interface HealthReport {
  /** The worst status of the checks (`passing` when there are none); `critical` when not serving. */
  readonly status: HealthStatus;
  /** Readiness only: whether the instance takes traffic (`false` once shutting down). */
  readonly serving?: boolean;
  /** Each check's outcome, by name. Empty when readiness is not serving: checks are not run then. */
  readonly checks: Readonly<Record<string, CheckReport>>;
}

/** Options of {@link createHealth}. */
export interface HealthOptions {
  /** Liveness checks by name: is the process healthy, or should it be restarted? */
  liveness?: Readonly<Record<string, CheckSpec>>;
  /** Readiness checks by name: can the instance take traffic now? */
  readiness?: Readonly<Record<string, CheckSpec>>;
  /** The default time limit of each check, in ms (default 1000). */
  timeout?: number;
  /** Whether readiness starts serving (default `true`; `@svckit/app` sets it as its servers start and stop). */
  serving?: boolean;
}

/** Liveness and readiness state with named checks; see {@link createHealth}. */
export interface Health {
  /** Whether the instance takes traffic; readiness is critical while `false`. */
  readonly serving: boolean;
  /** `true` once {@link Health.shutdown} was called: not serving for good. */
  readonly shuttingDown: boolean;
  /** Marks the instance as taking traffic or not (the app calls it as it starts and stops). */
  setServing(serving: boolean): void;
  /** Not serving for good: the instance is going away. gRPC health watches are ended. */
  shutdown(): void;
  /** Adds a liveness check. */
  addLiveness(name: string, check: HealthCheck, options?: CheckOptions): Health;
  /** Adds a readiness check. */
  addReadiness(name: string, check: HealthCheck, options?: CheckOptions): Health;
  /** Runs the liveness checks (concurrent callers share one run). */
  liveness(): Promise<HealthReport>;
  /** Runs the readiness checks (concurrent callers share one run); critical without running them when not serving. */
  readiness(): Promise<HealthReport>;
  /** Calls `listener` whenever `serving` changes (and on shutdown); returns a function that removes it. */
  onChange(listener: (serving: boolean) => void): () => void;
}

const DEFAULT_TIMEOUT = 1_000;
/** Messages longer than this are cut, so a check cannot flood a probe's response. */
const MAX_MESSAGE = 256;
const STATUSES: ReadonlySet<string> = new Set<HealthStatus>(["passing", "warning", "critical"]);
const RANK: Readonly<Record<HealthStatus, number>> = { passing: 0, warning: 1, critical: 2 };

interface Entry {
  readonly check: HealthCheck;
  readonly timeout: number;
}

function checkTimeout(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  // Past 2^31 - 1 ms Node fires the timer after 1 ms: every check would time out at once.
  if (!Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `invalid timeout ${String(value)} for ${what}: expected a number of milliseconds > 0, at most ${MAX_TIMER_MS}`,
    );
  }
  return value;
}

function clip(message: string): string {
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
}

/** A check's return value as a report entry; anything unexpected is critical with a message saying so. */
function fromResult(result: unknown, durationMs: number): CheckReport {
  if (result === undefined) return { status: "passing", durationMs };
  if (typeof result === "object" && result !== null) {
    const { status, message } = result as { status?: unknown; message?: unknown };
    if (typeof status === "string" && STATUSES.has(status)) {
      return typeof message === "string" && message !== ""
        ? { status: status as HealthStatus, message: clip(message), durationMs }
        : { status: status as HealthStatus, durationMs };
    }
    return {
      status: "critical",
      message: clip(
        `check returned an invalid status ${typeof status === "string" ? JSON.stringify(status) : kindOf(status)}: expected passing, warning or critical`,
      ),
      durationMs,
    };
  }
  return {
    status: "critical",
    message: `check returned ${kindOf(result)}: expected nothing or { status, message }`,
    durationMs,
  };
}

/** `typeof`, except that `null` is named as such. */
function kindOf(value: unknown): string {
  return value === null ? "null" : typeof value;
}

/** Runs one check within its timeout; never rejects. */
function runCheck(entry: Entry): Promise<CheckReport> {
  const t0 = performance.now();
  const elapsed = (): number => Math.round(performance.now() - t0);
  const controller = new AbortController();
  return new Promise<CheckReport>((resolve) => {
    let settled = false;
    const settle = (report: CheckReport): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(report);
    };
    const timer = setTimeout(() => {
      settle({
        status: "critical",
        message: `check timed out after ${entry.timeout} ms`,
        durationMs: elapsed(),
      });
      controller.abort(new ServiceError(Code.DEADLINE_EXCEEDED, `check timed out after ${entry.timeout} ms`));
    }, entry.timeout);
    const fail = (err: unknown): void =>
      settle({
        status: "critical",
        message: clip(err instanceof Error && err.message !== "" ? err.message : "check failed"),
        durationMs: elapsed(),
      });
    try {
      Promise.resolve(entry.check(controller.signal)).then(
        (result) => settle(fromResult(result, elapsed())),
        fail,
      );
    } catch (err) {
      fail(err);
    }
  });
}

async function runAll(entries: ReadonlyMap<string, Entry>): Promise<HealthReport> {
  const names = [...entries.keys()];
  const reports = await Promise.all([...entries.values()].map(runCheck));
  let worst: HealthStatus = "passing";
  const checks: Record<string, CheckReport> = {};
  reports.forEach((report, i) => {
    checks[names[i] as string] = report;
    if (RANK[report.status] > RANK[worst]) worst = report.status;
  });
  return { status: worst, checks };
}

class HealthState implements Health {
  readonly #liveness = new Map<string, Entry>();
  readonly #readiness = new Map<string, Entry>();
  readonly #timeout: number;
  readonly #listeners = new Set<(serving: boolean) => void>();
  #serving: boolean;
  #shuttingDown = false;
  #livenessRun: Promise<HealthReport> | undefined;
  #readinessRun: Promise<HealthReport> | undefined;

  constructor(options: HealthOptions) {
    this.#timeout = checkTimeout(options.timeout, DEFAULT_TIMEOUT, "the health");
    this.#serving = options.serving ?? true;
    for (const [name, spec] of Object.entries(options.liveness ?? {})) this.#add(this.#liveness, name, spec);
    for (const [name, spec] of Object.entries(options.readiness ?? {}))
      this.#add(this.#readiness, name, spec);
  }

  get serving(): boolean {
    return this.#serving;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  setServing(serving: boolean): void {
    if (serving && this.#shuttingDown) {
      throw new ServiceError(Code.FAILED_PRECONDITION, "health has shut down: it cannot serve again");
    }
    if (serving === this.#serving) return;
    this.#serving = serving;
    this.#notify();
  }

  shutdown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    this.#serving = false;
    this.#notify();
  }

  addLiveness(name: string, check: HealthCheck, options: CheckOptions = {}): Health {
    this.#add(this.#liveness, name, { check, ...options });
    return this;
  }

  addReadiness(name: string, check: HealthCheck, options: CheckOptions = {}): Health {
    this.#add(this.#readiness, name, { check, ...options });
    return this;
  }

  liveness(): Promise<HealthReport> {
    if (this.#livenessRun === undefined) {
      this.#livenessRun = runAll(this.#liveness).finally(() => {
        this.#livenessRun = undefined;
      });
    }
    return this.#livenessRun;
  }

  readiness(): Promise<HealthReport> {
    if (!this.#serving) return Promise.resolve({ status: "critical", serving: false, checks: {} });
    if (this.#readinessRun === undefined) {
      this.#readinessRun = runAll(this.#readiness)
        .then((report) => ({ status: report.status, serving: true, checks: report.checks }))
        .finally(() => {
          this.#readinessRun = undefined;
        });
    }
    return this.#readinessRun;
  }

  onChange(listener: (serving: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(this.#serving);
      } catch {
        // A listener's failure must not stop the others nor the caller (the app's stop).
      }
    }
  }

  #add(entries: Map<string, Entry>, name: string, spec: CheckSpec): void {
    if (typeof name !== "string" || name === "") {
      throw new ServiceError(Code.INVALID_ARGUMENT, "a check needs a non-empty name");
    }
    if (entries.has(name)) {
      throw new ServiceError(Code.ALREADY_EXISTS, `a check named ${JSON.stringify(name)} already exists`);
    }
    const check = typeof spec === "function" ? spec : spec?.check;
    if (typeof check !== "function") {
      throw new ServiceError(
        Code.INVALID_ARGUMENT,
        `check ${JSON.stringify(name)} is not a function: expected (signal) => result`,
      );
    }
    const timeout = typeof spec === "function" ? undefined : spec.timeout;
    entries.set(name, {
      check,
      timeout: checkTimeout(timeout, this.#timeout, `check ${JSON.stringify(name)}`),
    });
  }
}

/**
 * Creates liveness and readiness state with named checks. Each check gets its own timeout and an
 * `AbortSignal`; a report's status is the worst of its checks' (`passing` < `warning` < `critical`).
 * Readiness is also critical while not serving, which `@svckit/app` sets first thing on stop
 * (it accepts a `Health` as its `readiness`). Serve it with {@link createHealthHandler} over HTTP and
 * {@link addHealthService} over gRPC.
 *
 * @example
 * ```ts
 * const health = createHealth({
 *   readiness: { db: { check: (signal) => db.ping({ signal }), timeout: 500 } },
 * });
 * http.createServer(createHealthHandler(health)).listen(8081); // GET /healthz, GET /readyz
 * ```
 */
export function createHealth(options: HealthOptions = {}): Health {
  return new HealthState(options);
}
