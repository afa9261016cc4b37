import { randomUUID } from "node:crypto";
import { constants } from "node:os";
import { Code, MAX_TIMER_MS, ServiceError } from "@svckit/endpoint";

/**
 * Anything the app can start and stop: an HTTP or gRPC server (see `httpServer` and `grpcServer`), a
 * queue consumer, a cron loop.
 */
export interface Server {
  /** A name for logs and errors, e.g. `"http"`. */
  readonly name?: string;
  /**
   * Where clients reach it once started, e.g. `"http://10.0.0.7:8080"` or `"grpc://10.0.0.7:9090"`;
   * collected into {@link AppInfo.endpoints} for the registrar. `undefined` before start.
   */
  readonly endpoint?: string | undefined;
  /** Starts serving; resolves once it accepts work (e.g. the socket listens), rejects if it cannot. */
  start(): Promise<void>;
  /**
   * Stops accepting new work at once, lets work in flight finish, and resolves once everything is
   * closed. When `deadline` aborts (the app's drain timeout passed), closes whatever is left at once.
   */
  stop(deadline?: AbortSignal): Promise<void>;
}

/**
 * Registers this instance with a service registry and removes it again (go-kit's `sd.Registrar`;
 * `@svckit/sd` exports the same shape). The app registers only once every server listens, and
 * deregisters first thing on stop, before any server stops accepting.
 */
export interface Registrar {
  /** Adds the instance to the registry. */
  register(): Promise<void>;
  /** Removes the instance from the registry. */
  deregister(): Promise<void>;
}

/**
 * Told when the app can take traffic and when it stops: `@svckit/health`'s `Health` fits. The app
 * calls `setServing(false)` as it starts, `setServing(true)` once every server listens (before
 * registering), `setServing(false)` first thing on stop, and `shutdown()` (if present) right before
 * the servers stop, which is where a health service ends its long-lived watch streams so they do not
 * hold the drain up.
 */
export interface Readiness {
  /** Whether the instance takes traffic now. */
  setServing(serving: boolean): void;
  /** The servers are about to stop for good. */
  shutdown?(): void;
}

/** Who this instance is; hooks and a registrar factory get it. */
export interface AppInfo {
  /** A unique instance id (a random UUID unless given). */
  readonly id: string;
  /** The service name. */
  readonly name: string;
  /** The service version. */
  readonly version: string;
  /** Free-form metadata for the registry. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The servers' endpoints (`Server.endpoint`), known once they started; empty before. */
  readonly endpoints: readonly string[];
}

/**
 * A lifecycle hook (Kratos' `BeforeStart` etc.). `signal` aborts when the hook should give up: for
 * start hooks when the app is told to stop while starting, for stop hooks when `stopTimeout` passes.
 */
export type Hook = (info: AppInfo, signal: AbortSignal) => void | Promise<void>;

/** The app's state, in order. */
export type AppState = "idle" | "starting" | "running" | "stopping" | "stopped";

/** What the app tells {@link AppOptions.onEvent} (for logs and metrics). */
export type AppEvent =
  | { readonly type: "started"; readonly info: AppInfo; readonly ms: number }
  | { readonly type: "stopping"; readonly reason: string }
  | { readonly type: "deregistered" }
  | { readonly type: "draining" }
  | { readonly type: "drain-timeout"; readonly ms: number }
  | { readonly type: "stopped"; readonly ms: number }
  | { readonly type: "error"; readonly step: string; readonly error: ServiceError }
  | { readonly type: "exit"; readonly signal: string };

/** Options of {@link createApp}. */
export interface AppOptions {
  /** The instance id; default a random UUID. */
  id?: string;
  /** The service name; default `"app"`. */
  name?: string;
  /** The service version; default `""`. */
  version?: string;
  /** Metadata for the registry; default none. */
  metadata?: Readonly<Record<string, string>>;
  /** The servers, started together and stopped together. */
  servers?: readonly Server[];
  /**
   * The registrar, or a function that makes one from the instance's {@link AppInfo} once the servers
   * listen (so it can register the ports they actually bound).
   */
  registrar?: Registrar | ((info: AppInfo) => Registrar | Promise<Registrar>);
  /** Told when the app takes traffic and when it stops (e.g. `@svckit/health`'s `Health`). */
  readiness?: Readiness | readonly Readiness[];
  /** Run before the servers start; a failure aborts the start. */
  beforeStart?: Hook | readonly Hook[];
  /** Run after the servers started and the instance is registered; a failure stops the app. */
  afterStart?: Hook | readonly Hook[];
  /** Run on stop after readiness went false, before deregistering. */
  beforeStop?: Hook | readonly Hook[];
  /** Run once the servers are closed. */
  afterStop?: Hook | readonly Hook[];
  /** Process signals that stop the app; a second one exits at once. Default `["SIGTERM", "SIGINT"]`; `[]` for none. */
  signals?: readonly NodeJS.Signals[];
  /** How long servers get to finish work in flight before their connections are closed, in ms (default 30 000). */
  drainTimeout?: number;
  /** The longest the whole stop may take, in ms (default `drainTimeout + 5000`); then `run()` rejects. */
  stopTimeout?: number;
  /**
   * How long to wait after deregistering before the servers stop accepting, in ms (default 0), so
   * that registries, load balancers and readiness probes notice first.
   */
  deregisterDelay?: number;
  /** Exits the process on a second signal; default `process.exit` (tests pass their own). */
  exit?: (code: number) => void;
  /** Told of every lifecycle event; must not throw. */
  onEvent?: (event: AppEvent) => void;
}

/** An application: see {@link createApp}. */
export interface App {
  /** Who this instance is; `endpoints` fill in once the servers started. */
  readonly info: AppInfo;
  /** Where the app is in its life. */
  readonly state: AppState;
  /** `true` from the moment every server listens until stop begins. */
  readonly ready: boolean;
  /**
   * Starts the app (if it has not started) and resolves once it has stopped, by signal or by
   * {@link App.stop}. Rejects if the start fails (after stopping what had started) or the stop
   * finished with errors.
   */
  run(): Promise<void>;
  /**
   * Starts the app: resolves once every server listens, it is registered and the after-start hooks
   * ran; calling it again while starting or running returns the same promise. Rejects
   * FAILED_PRECONDITION once the app is stopping or stopped: an app runs once.
   */
  start(): Promise<void>;
  /**
   * Stops the app gracefully and resolves once it has stopped; calling it again returns the same
   * promise. Rejects (as `run()` does) when a stop step failed.
   */
  stop(): Promise<void>;
}

const DEFAULT_DRAIN_TIMEOUT = 30_000;
const STOP_SLACK = 5_000;

function list<T>(value: T | readonly T[] | undefined): readonly T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

function checkDuration(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  // Past 2^31 - 1 ms (24.8 days) Node's timers fire after 1 ms instead.
  if (!Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) {
    throw new ServiceError(
      Code.INVALID_ARGUMENT,
      `invalid ${name} ${String(value)}: expected a number of milliseconds from 0 to ${MAX_TIMER_MS}`,
    );
  }
  return value;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function serverName(server: Server, index: number): string {
  return server.name ?? `server ${index}`;
}

/** Settles with `promise`, or rejects with `onAbort()` as soon as `signal` aborts. */
function until<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(onAbort());
    signal.addEventListener("abort", abort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", abort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", abort);
        reject(err);
      },
    );
  });
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Runs `fn` (which may throw synchronously) as a promise. */
function attempt<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err);
  }
}

const noop = (): void => undefined;

class Application implements App {
  readonly #id: string;
  readonly #name: string;
  readonly #version: string;
  readonly #metadata: Readonly<Record<string, string>>;
  readonly #servers: readonly Server[];
  readonly #registrarOption: AppOptions["registrar"];
  readonly #readiness: readonly Readiness[];
  readonly #beforeStart: readonly Hook[];
  readonly #afterStart: readonly Hook[];
  readonly #beforeStop: readonly Hook[];
  readonly #afterStop: readonly Hook[];
  readonly #signals: readonly NodeJS.Signals[];
  readonly #drainTimeout: number;
  readonly #stopTimeout: number;
  readonly #deregisterDelay: number;
  readonly #exit: (code: number) => void;
  readonly #onEvent: (event: AppEvent) => void;

  #state: AppState = "idle";
  #ready = false;
  #endpoints: readonly string[] = [];
  #registrar: Registrar | undefined;
  #started: Server[] = [];
  #startPromise: Promise<void> | undefined;
  #stopPromise: Promise<void> | undefined;
  #stopReason = "stop()";
  /** Aborts when a stop is asked for while starting: start hooks give up. */
  readonly #startAbort = new AbortController();
  /** Settles when the app has stopped (or failed to start); what `run()` waits for. */
  readonly #done: Promise<void>;
  #settleDone!: (error: unknown) => void;
  readonly #onSignal = (signal: NodeJS.Signals): void => this.#signal(signal);

  constructor(options: AppOptions) {
    this.#id = options.id ?? randomUUID();
    this.#name = options.name ?? "app";
    this.#version = options.version ?? "";
    this.#metadata = Object.freeze({ ...options.metadata });
    this.#servers = [...(options.servers ?? [])];
    this.#registrarOption = options.registrar;
    this.#readiness = list(options.readiness);
    this.#beforeStart = list(options.beforeStart);
    this.#afterStart = list(options.afterStart);
    this.#beforeStop = list(options.beforeStop);
    this.#afterStop = list(options.afterStop);
    this.#signals = [...(options.signals ?? ["SIGTERM", "SIGINT"])];
    for (const signal of this.#signals) {
      if (!Object.hasOwn(constants.signals, signal)) {
        throw new ServiceError(Code.INVALID_ARGUMENT, `unknown signal ${JSON.stringify(signal)}`);
      }
    }
    this.#drainTimeout = checkDuration("drainTimeout", options.drainTimeout, DEFAULT_DRAIN_TIMEOUT);
    this.#stopTimeout = checkDuration("stopTimeout", options.stopTimeout, this.#drainTimeout + STOP_SLACK);
    this.#deregisterDelay = checkDuration("deregisterDelay", options.deregisterDelay, 0);
    this.#exit = options.exit ?? ((code) => process.exit(code));
    this.#onEvent = options.onEvent ?? noop;
    this.#done = new Promise<void>((resolve, reject) => {
      this.#settleDone = (error) => (error === undefined ? resolve() : reject(error));
    });
    this.#done.catch(noop);
  }

  get info(): AppInfo {
    return {
      id: this.#id,
      name: this.#name,
      version: this.#version,
      metadata: this.#metadata,
      endpoints: this.#endpoints,
    };
  }

  get state(): AppState {
    return this.#state;
  }

  get ready(): boolean {
    return this.#ready;
  }

  async run(): Promise<void> {
    try {
      await this.start();
    } catch (err) {
      // A start cancelled by stop() or a signal is a clean stop, not a failure.
      if (!this.#startAbort.signal.aborted) throw err;
    }
    return this.#done;
  }

  start(): Promise<void> {
    if (this.#state === "stopping" || this.#state === "stopped") {
      return Promise.reject(
        new ServiceError(
          Code.FAILED_PRECONDITION,
          `app ${JSON.stringify(this.#name)} has stopped; create a new app to start again`,
        ),
      );
    }
    if (this.#startPromise === undefined) {
      this.#startPromise = this.#start();
      this.#startPromise.catch(noop);
    }
    return this.#startPromise;
  }

  stop(): Promise<void> {
    if (this.#stopPromise === undefined) {
      if (this.#state === "idle") {
        this.#state = "stopped";
        this.#settleDone(undefined);
        this.#stopPromise = Promise.resolve();
      } else {
        this.#startAbort.abort(new ServiceError(Code.CANCELLED, "the app is stopping"));
        // Running: readiness goes false now, not a tick later. Starting: stop once the start settled;
        // a failed start has already undone itself.
        this.#stopPromise =
          this.#state === "running"
            ? this.#stop()
            : (this.#startPromise ?? Promise.resolve()).then(
                () => this.#stop(),
                () => undefined,
              );
        this.#stopPromise.catch(noop);
      }
    }
    return this.#stopPromise;
  }

  #emit(event: AppEvent): void {
    try {
      this.#onEvent(event);
    } catch {
      // onEvent must not throw; a logger failing must not change the lifecycle.
    }
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.#stopPromise !== undefined) {
      this.#emit({ type: "exit", signal });
      this.#exit(1);
      return;
    }
    this.#stopReason = signal;
    void this.stop();
  }

  #listen(): void {
    for (const signal of this.#signals) process.on(signal, this.#onSignal);
  }

  #unlisten(): void {
    for (const signal of this.#signals) process.off(signal, this.#onSignal);
  }

  #setServing(serving: boolean): void {
    for (const readiness of this.#readiness) {
      try {
        readiness.setServing(serving);
      } catch (err) {
        this.#emit({
          type: "error",
          step: "readiness",
          error: this.#failure(Code.INTERNAL, "readiness", err),
        });
      }
    }
  }

  #failure(code: Code, step: string, err: unknown): ServiceError {
    return new ServiceError(code, `${step}: ${messageOf(err)}`, { cause: err });
  }

  async #runHooks(hooks: readonly Hook[], signal: AbortSignal): Promise<void> {
    for (const hook of hooks) await attempt(() => hook(this.info, signal));
  }

  async #start(): Promise<void> {
    const t0 = performance.now();
    this.#state = "starting";
    this.#listen();
    // Not ready until every server listens, whatever the readiness object started as.
    this.#setServing(false);
    const signal = this.#startAbort.signal;
    let step = "beforeStart hook";
    try {
      await this.#runHooks(this.#beforeStart, signal);

      step = "server";
      const results = await Promise.allSettled(this.#servers.map((server) => attempt(() => server.start())));
      this.#started = this.#servers.filter((_, i) => results[i]?.status === "fulfilled");
      const failed = results.findIndex((r) => r.status === "rejected");
      if (failed >= 0) {
        const server = this.#servers[failed] as Server;
        step = `server ${JSON.stringify(serverName(server, failed))}`;
        throw (results[failed] as PromiseRejectedResult).reason;
      }
      this.#endpoints = Object.freeze(
        this.#servers.map((s) => s.endpoint).filter((e): e is string => e !== undefined),
      );
      this.#ready = true;
      this.#setServing(true);

      step = "register";
      const option = this.#registrarOption;
      if (option !== undefined) {
        const registrar = typeof option === "function" ? await attempt(() => option(this.info)) : option;
        await attempt(() => registrar.register());
        this.#registrar = registrar;
      }

      step = "afterStart hook";
      await this.#runHooks(this.#afterStart, signal);
    } catch (err) {
      // Told to stop while starting: what started is undone and the app counts as stopped cleanly.
      const cancelled = signal.aborted;
      const error = cancelled
        ? this.#failure(Code.CANCELLED, `app start cancelled by stop: ${step}`, err)
        : this.#failure(Code.UNAVAILABLE, `app start failed: ${step}`, err);
      this.#emit({ type: "error", step, error });
      await this.#rollback();
      this.#settleDone(cancelled ? undefined : error);
      throw error;
    }
    this.#state = "running";
    this.#emit({ type: "started", info: this.info, ms: performance.now() - t0 });
  }

  /** Undoes a failed start: not ready, deregistered, started servers stopped. */
  async #rollback(): Promise<void> {
    this.#state = "stopping";
    this.#ready = false;
    this.#setServing(false);
    const registrar = this.#registrar;
    this.#registrar = undefined;
    if (registrar !== undefined) {
      await attempt(() => registrar.deregister()).catch((err: unknown) =>
        this.#emit({
          type: "error",
          step: "deregister",
          error: this.#failure(Code.INTERNAL, "deregister", err),
        }),
      );
    }
    await this.#stopServers(this.#started, new AbortController().signal);
    this.#state = "stopped";
    this.#unlisten();
  }

  /** Stops `servers` with a drain deadline `drainTimeout` from now (or when `stopSignal` aborts). */
  async #stopServers(servers: readonly Server[], stopSignal: AbortSignal): Promise<ServiceError[]> {
    const errors: ServiceError[] = [];
    if (servers.length === 0) return errors;
    const drain = new AbortController();
    const t0 = performance.now();
    const force = (): void => {
      if (drain.signal.aborted) return;
      this.#emit({ type: "drain-timeout", ms: performance.now() - t0 });
      drain.abort(new ServiceError(Code.DEADLINE_EXCEEDED, "drain timeout"));
    };
    const timer = setTimeout(force, this.#drainTimeout);
    if (stopSignal.aborted) force();
    else stopSignal.addEventListener("abort", force, { once: true });
    const results = await Promise.allSettled(
      servers.map((server) =>
        until(
          attempt(() => server.stop(drain.signal)),
          stopSignal,
          () => new ServiceError(Code.DEADLINE_EXCEEDED, "did not close within stopTimeout"),
        ),
      ),
    );
    clearTimeout(timer);
    stopSignal.removeEventListener("abort", force);
    results.forEach((result, i) => {
      if (result.status === "fulfilled") return;
      const server = servers[i] as Server;
      const step = `server ${JSON.stringify(serverName(server, this.#servers.indexOf(server)))}`;
      const error = this.#failure(Code.INTERNAL, step, result.reason);
      errors.push(error);
      this.#emit({ type: "error", step, error });
    });
    return errors;
  }

  async #stop(): Promise<void> {
    const t0 = performance.now();
    this.#state = "stopping";
    this.#ready = false;
    this.#setServing(false);
    this.#emit({ type: "stopping", reason: this.#stopReason });

    const deadline = new AbortController();
    const timer = setTimeout(
      () =>
        deadline.abort(
          new ServiceError(Code.DEADLINE_EXCEEDED, `app stop did not finish within ${this.#stopTimeout} ms`),
        ),
      this.#stopTimeout,
    );
    const signal = deadline.signal;
    const errors: ServiceError[] = [];
    const step = async (name: string, fn: () => void | Promise<void>): Promise<void> => {
      try {
        await until(
          attempt(fn),
          signal,
          () => new ServiceError(Code.DEADLINE_EXCEEDED, "did not finish within stopTimeout"),
        );
      } catch (err) {
        const error = this.#failure(Code.INTERNAL, name, err);
        errors.push(error);
        this.#emit({ type: "error", step: name, error });
      }
    };

    for (const hook of this.#beforeStop) await step("beforeStop hook", () => hook(this.info, signal));
    const registrar = this.#registrar;
    this.#registrar = undefined;
    if (registrar !== undefined) {
      await step("deregister", () => registrar.deregister());
      this.#emit({ type: "deregistered" });
    }
    await delay(this.#deregisterDelay, signal);
    for (const readiness of this.#readiness) {
      await step("readiness shutdown", () => readiness.shutdown?.());
    }
    this.#emit({ type: "draining" });
    errors.push(...(await this.#stopServers(this.#started, signal)));
    for (const hook of this.#afterStop) await step("afterStop hook", () => hook(this.info, signal));

    clearTimeout(timer);
    this.#unlisten();
    this.#state = "stopped";
    this.#emit({ type: "stopped", ms: performance.now() - t0 });
    let error: ServiceError | undefined;
    if (signal.aborted) {
      error = new ServiceError(
        Code.DEADLINE_EXCEEDED,
        `app stop did not finish within ${this.#stopTimeout} ms: ${errors.map((e) => e.message).join("; ")}`,
        { cause: new AggregateError(errors) },
      );
    } else if (errors.length > 0) {
      error = new ServiceError(
        Code.INTERNAL,
        `app stop finished with errors: ${errors.map((e) => e.message).join("; ")}`,
        { cause: new AggregateError(errors) },
      );
    }
    this.#settleDone(error);
    if (error !== undefined) throw error;
  }
}

/**
 * Creates an application (Kratos' `kratos.New`): servers, a registrar, readiness, hooks and signals,
 * with one lifecycle.
 *
 * Start: before-start hooks → every server starts (if one fails, the ones that started are stopped
 * and `run()` rejects) → ready (`readiness.setServing(true)`) → register → after-start hooks.
 *
 * Stop (a signal or `app.stop()`): not ready (`setServing(false)`) → before-stop hooks → deregister →
 * `deregisterDelay` → `readiness.shutdown()` → servers stop accepting and drain their work in flight
 * for up to `drainTimeout`, then close what is left → after-stop hooks → `run()` resolves. A second
 * signal exits the process with code 1 at once.
 *
 * @example
 * ```ts
 * const app = createApp({
 *   name: "stringsvc",
 *   servers: [httpServer(router.handle, { address: ":8080" })],
 *   readiness: health,
 *   drainTimeout: 10_000,
 * });
 * await app.run(); // until SIGTERM / SIGINT, then drained and closed
 * ```
 */
export function createApp(options: AppOptions = {}): App {
  return new Application(options);
}
