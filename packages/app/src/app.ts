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
   *
   * The app may call it while `start()` is still pending (it was told to stop during the start and
   * gave up waiting): then it should make sure that what the start binds is released.
   */
  stop(deadline?: AbortSignal): Promise<void>;
}

/**
 * Registers this instance with a service registry and removes it again (go-kit's `sd.Registrar`;
 * `@svckit/sd` exports the same shape). The app registers only once every server listens, and
 * deregisters first thing on stop, before any server stops accepting. A start undone after
 * `register()` was called (it failed, was given up on, or a later step failed) deregisters too.
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
 * hold the drain up. Undoing a failed or cancelled start calls both as well.
 */
export interface Readiness {
  /** Whether the instance takes traffic now. */
  setServing(serving: boolean): void;
  /**
   * The servers are about to stop for good. A promise it returns is waited for, as the other steps
   * before the drain are (see {@link AppOptions.stopTimeout}).
   */
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
 * start hooks when the app is told to stop while starting (the start no longer waits for them then),
 * for `beforeStop` hooks when the drain must begin (see {@link AppOptions.stopTimeout}), for
 * `afterStop` hooks when `stopTimeout` passes.
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
  /**
   * Run on stop after readiness went false, before deregistering. They share the time before the
   * drain with `deregister()` (see {@link AppOptions.stopTimeout}); their signal aborts when it is up.
   */
  beforeStop?: Hook | readonly Hook[];
  /** Run once the servers are closed. */
  afterStop?: Hook | readonly Hook[];
  /**
   * Process signals that stop the app. Default `["SIGTERM", "SIGINT"]`; `[]` for none. The first
   * signal received starts the stop (or joins one already begun by `app.stop()`); a second signal
   * received while the stop runs exits the process at once with code 1.
   */
  signals?: readonly NodeJS.Signals[];
  /** How long servers get to finish work in flight before their connections are closed, in ms (default 30 000). */
  drainTimeout?: number;
  /**
   * The longest the whole stop may take, in ms, counted from the stop request (default
   * `drainTimeout + 5000`); then the waits are cut and `run()` rejects DEADLINE_EXCEEDED. A stop
   * asked for during the start, and the undoing of a failed start, are bounded the same way.
   *
   * The budget is shared out so that the servers get their `drainTimeout`: the steps before the
   * drain (`beforeStop` hooks, `deregister()`, `deregisterDelay`, `readiness.shutdown()`) get
   * `stopTimeout − drainTimeout − margin` (4 s with the default), where `margin` is 1 s (a quarter of
   * `stopTimeout` when that is under 4 s); a step still running then is reported as an error and the
   * drain begins. A step that could begin only after that (an earlier one used the time up) is still
   * called and runs alongside the drain; it is reported only if it fails or is still running when the
   * drain is forced (or half the margin later, when the time before the drain ended at that forced
   * close). The drain is forced (what is left is closed) after `drainTimeout`, or `margin`
   * before `stopTimeout` at the latest, so that servers told to close at once finish in time. When
   * `stopTimeout` is not above `drainTimeout + margin`, the steps before the drain are bounded only by
   * that forced close.
   */
  stopTimeout?: number;
  /**
   * How long to wait after deregistering before the servers stop accepting, in ms (default 0), so
   * that registries, load balancers and readiness probes notice first. It is part of the time before
   * the drain (see {@link AppOptions.stopTimeout}): raise `stopTimeout` along with a long delay.
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
   * promise. Rejects (as `run()` does) when a stop step failed; after a start that failed (or was
   * cancelled and could not be undone in time) it settles as `run()` does, whenever it is called.
   */
  stop(): Promise<void>;
}

const DEFAULT_DRAIN_TIMEOUT = 30_000;
const STOP_SLACK = 5_000;
/** The most kept at the end of `stopTimeout` to close what the drain left (less when `stopTimeout` is short). */
const CLOSE_MARGIN = 1_000;

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

/**
 * Settles with `promise`, or rejects with `onAbort()` as soon as `signal` aborts. When `signal` has
 * already aborted, a `promise` that has already settled still wins (a step that finished at once,
 * e.g. a synchronous hook, is reported by its outcome).
 */
function until<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => unknown): Promise<T> {
  if (signal.aborted) return Promise.race([promise, Promise.reject(onAbort())]);
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

/**
 * Runs a start step: not begun once `signal` has aborted, and given up (rejecting with the abort
 * reason) as soon as it aborts, whether or not the step listens to it.
 */
function startStep<T>(signal: AbortSignal, fn: () => T | Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return until(attempt(fn), signal, () => signal.reason);
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

/** An AbortController that aborts `ms` from now with `reason`; `timer` is for clearing it. */
function abortAfter(ms: number, reason: () => ServiceError): { signal: AbortSignal; timer: NodeJS.Timeout } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(reason()), ms);
  return { signal: controller.signal, timer };
}

/**
 * The deadlines of one stop (or of undoing a failed start), all counted from the moment it was asked
 * for; see {@link AppOptions.stopTimeout}.
 */
interface StopClock {
  /** Aborts when the steps before the drain must give way to it. */
  readonly preDrain: AbortSignal;
  /** `preDrain`'s time, in ms from the stop request. */
  readonly preDrainMs: number;
  /**
   * Aborts when a step before the drain that began only after `preDrain` (an earlier one used the
   * time up) is no longer waited for: when the drain is forced, or half the margin after `preDrain`
   * if that is later (when `preDrain` is the forced close itself).
   */
  readonly late: AbortSignal;
  /** Aborts when the drain must be forced so what is left closes before `deadline`. */
  readonly force: AbortSignal;
  /** Aborts after `stopTimeout`: every wait is cut. */
  readonly deadline: AbortSignal;
  /** Clears the timers. */
  dispose(): void;
}

/** Where a server is in the start: `starting` until its `start()` resolves. */
type ServerStatus = "starting" | "started";

/** A server whose `start()` failed, and why. */
interface ServerFailure {
  readonly server: Server;
  readonly error: unknown;
}

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
  /** Set right before `register()` is called, so a register abandoned or failed is undone too. */
  #registrar: Registrar | undefined;
  /** The servers whose start was called and did not fail, in the order given. */
  readonly #status = new Map<Server, ServerStatus>();
  #startPromise: Promise<void> | undefined;
  #stopPromise: Promise<void> | undefined;
  /** The clock of the stop, made when the stop is asked for (or when a start fails). */
  #clock: StopClock | undefined;
  #stopReason = "stop()";
  /** How many of `signals` the process received. */
  #signalsReceived = 0;
  /** Aborts when a stop is asked for while starting: the start gives up on the step it waits for. */
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
      // A start cancelled by stop() or a signal is a stop, not a failure: run() settles as the stop does.
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
    if (this.#stopPromise !== undefined) return this.#stopPromise;
    if (this.#state === "idle") {
      this.#state = "stopped";
      this.#settleDone(undefined);
      this.#stopPromise = Promise.resolve();
    } else if (this.#state === "running") {
      // Readiness goes false now, not a tick later.
      this.#stopPromise = this.#stop(this.#stopClock());
    } else if (this.#state === "starting") {
      // The stop clock starts now. The start gives up on the step it waits for and undoes itself
      // within it; if it finished first after all, it is stopped as usual.
      const clock = this.#stopClock();
      this.#startAbort.abort(new ServiceError(Code.CANCELLED, "the app is stopping"));
      const starting = this.#startPromise ?? Promise.resolve();
      this.#stopPromise = starting.then(
        () => this.#stop(clock),
        () => this.#done,
      );
    } else {
      // A failed start is being (or was) undone: that is the stop; it settles once that is over, as
      // run() does (and as a stop() made a moment earlier, while the start still ran, does).
      this.#stopPromise = (this.#startPromise ?? Promise.resolve()).then(
        () => this.#done,
        () => this.#done,
      );
    }
    this.#stopPromise.catch(noop);
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
    this.#signalsReceived += 1;
    // The first signal stops the app, or joins a stop already under way (app.stop(), say from a
    // preStop endpoint, before the orchestrator's SIGTERM); the next one means "now".
    if (this.#signalsReceived > 1) {
      this.#emit({ type: "exit", signal });
      this.#exit(1);
      return;
    }
    if (this.#stopPromise === undefined) this.#stopReason = signal;
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

  /** The clock of this app's stop, started on the first call. */
  #stopClock(): StopClock {
    if (this.#clock !== undefined) return this.#clock;
    const stopTimeout = this.#stopTimeout;
    const margin = Math.min(CLOSE_MARGIN, stopTimeout / 4);
    const forceMs = stopTimeout - margin;
    const share = stopTimeout - this.#drainTimeout - margin;
    const preDrainMs = share > 0 ? share : forceMs;
    const lateMs = Math.max(forceMs, preDrainMs + margin / 2);
    const preDrain = abortAfter(
      preDrainMs,
      () =>
        new ServiceError(Code.DEADLINE_EXCEEDED, `did not finish within ${preDrainMs} ms, before the drain`),
    );
    const late = abortAfter(
      lateMs,
      () =>
        new ServiceError(
          Code.DEADLINE_EXCEEDED,
          `begun once the ${preDrainMs} ms before the drain had run out, not finished within ${lateMs} ms`,
        ),
    );
    const force = abortAfter(
      forceMs,
      () => new ServiceError(Code.DEADLINE_EXCEEDED, "stop timeout: closing what is left"),
    );
    const deadline = abortAfter(
      stopTimeout,
      () => new ServiceError(Code.DEADLINE_EXCEEDED, `app stop did not finish within ${stopTimeout} ms`),
    );
    this.#clock = {
      preDrain: preDrain.signal,
      preDrainMs,
      late: late.signal,
      force: force.signal,
      deadline: deadline.signal,
      dispose() {
        clearTimeout(preDrain.timer);
        clearTimeout(late.timer);
        clearTimeout(force.timer);
        clearTimeout(deadline.timer);
      },
    };
    return this.#clock;
  }

  async #start(): Promise<void> {
    const t0 = performance.now();
    this.#state = "starting";
    this.#listen();
    // Not ready until every server listens, whatever the readiness object started as.
    this.#setServing(false);
    const signal = this.#startAbort.signal;
    let step = "beforeStart hook";
    /** The servers whose start() failed, in the order they failed. */
    const failures: ServerFailure[] = [];
    try {
      for (const hook of this.#beforeStart) await startStep(signal, () => hook(this.info, signal));

      step = "server";
      await startStep(signal, () => this.#startServers(failures));
      this.#endpoints = Object.freeze(
        this.#servers.map((s) => s.endpoint).filter((e): e is string => e !== undefined),
      );
      // Told to stop meanwhile: never ready, never registered.
      if (signal.aborted) throw signal.reason;
      this.#ready = true;
      this.#setServing(true);

      step = "register";
      const option = this.#registrarOption;
      if (option !== undefined) {
        const registrar =
          typeof option === "function" ? await startStep(signal, () => option(this.info)) : option;
        await startStep(signal, () => {
          // Remembered first: a register whose answer was lost may still have registered.
          this.#registrar = registrar;
          return registrar.register();
        });
      }

      step = "afterStart hook";
      for (const hook of this.#afterStart) await startStep(signal, () => hook(this.info, signal));
    } catch (err) {
      // Told to stop while starting: what started is undone and the app stops as a stop would. A
      // server that had failed to start by then (the stop came in the same moment) is still the
      // start's failure: it is reported, never hidden behind the cancellation.
      const cancelled = signal.aborted && failures.length === 0;
      let error: ServiceError;
      if (failures.length > 0) {
        step = this.#serverStep((failures[0] as ServerFailure).server);
        error = new ServiceError(
          Code.UNAVAILABLE,
          `app start failed: ${failures.map((f) => `${this.#serverStep(f.server)}: ${messageOf(f.error)}`).join("; ")}`,
          {
            cause:
              failures.length === 1 ? failures[0]?.error : new AggregateError(failures.map((f) => f.error)),
          },
        );
      } else {
        error = cancelled
          ? this.#failure(Code.CANCELLED, `app start cancelled by stop: ${step}`, err)
          : this.#failure(Code.UNAVAILABLE, `app start failed: ${step}`, err);
      }
      this.#emit({ type: "error", step, error });
      // A failed start is undone within stopTimeout from now; a cancelled one within the stop's.
      const outcome = await this.#rollback(this.#stopClock());
      this.#settleDone(cancelled ? outcome : error);
      throw error;
    }
    this.#state = "running";
    this.#emit({ type: "started", info: this.info, ms: performance.now() - t0 });
  }

  /**
   * Starts every server together. Resolves once all of them listen; rejects as soon as one fails,
   * without waiting for the others (the rollback stops those still starting). Each failure is added
   * to `failures` as it happens.
   */
  #startServers(failures: ServerFailure[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let pending = this.#servers.length;
      if (pending === 0) resolve();
      for (const server of this.#servers) {
        this.#status.set(server, "starting");
        attempt(() => server.start()).then(
          () => {
            this.#status.set(server, "started");
            pending -= 1;
            if (pending === 0) resolve();
          },
          (err: unknown) => {
            this.#status.delete(server);
            failures.push({ server, error: err });
            reject(err);
          },
        );
      }
    });
  }

  /** `server "http"`, or `server "server 1"` for an unnamed one: how steps and errors name a server. */
  #serverStep(server: Server): string {
    return `server ${JSON.stringify(serverName(server, this.#servers.indexOf(server)))}`;
  }

  /**
   * Runs a step before the drain, then `after` (once the step is over or given up).
   *
   * Begun before `clock.preDrain` aborts, the step is waited for until then, and reported as an
   * error if it fails or is still running at that point (it is no longer waited for).
   *
   * Begun after that (an earlier step used the time up), it has had no time, so it is not reported
   * for that: it is started and added to `late` instead of being waited for, runs alongside the
   * drain, and is reported only if it fails or is still running when `clock.late` aborts. The stop
   * waits for `late` together with the servers.
   */
  async #preDrainStep(
    name: string,
    clock: StopClock,
    errors: ServiceError[],
    late: Promise<void>[],
    fn: () => void | Promise<void>,
    after: () => void = noop,
    ordered = true,
  ): Promise<void> {
    if (clock.preDrain.aborted) {
      // Late hooks in order: one begins once the late hook before it has settled (or was given up).
      // deregister() and readiness.shutdown() do not wait for them: a hook that hangs must not keep
      // the instance advertised through the drain, nor the streams that would hold the drain up open.
      const previous = (ordered ? late.at(-1) : undefined) ?? Promise.resolve();
      late.push(previous.then(() => this.#bounded(name, errors, clock.late, fn)).then(after));
      return;
    }
    await this.#bounded(name, errors, clock.preDrain, fn);
    after();
  }

  /** Runs `fn` until `bound` aborts; records it in `errors` if it fails or is still running then. */
  async #bounded(
    name: string,
    errors: ServiceError[],
    bound: AbortSignal,
    fn: () => void | Promise<void>,
  ): Promise<void> {
    try {
      await until(attempt(fn), bound, () => bound.reason);
    } catch (err) {
      this.#record(name, err, errors);
    }
  }

  #record(step: string, err: unknown, errors: ServiceError[]): void {
    const error = this.#failure(Code.INTERNAL, step, err);
    errors.push(error);
    this.#emit({ type: "error", step, error });
  }

  /**
   * Undoes a failed or cancelled start within `clock`: not ready, deregistered (if `register()` was
   * called), readiness shut down, and the servers that started or are still starting stopped with a
   * drain. Returns the stop error (as {@link #outcome}), if any.
   */
  async #rollback(clock: StopClock): Promise<ServiceError | undefined> {
    this.#state = "stopping";
    this.#ready = false;
    this.#setServing(false);
    const errors: ServiceError[] = [];
    const late: Promise<void>[] = [];
    const registrar = this.#registrar;
    this.#registrar = undefined;
    if (registrar !== undefined) {
      await this.#preDrainStep("deregister", clock, errors, late, () => registrar.deregister());
    }
    for (const readiness of this.#readiness) {
      await this.#preDrainStep(
        "readiness shutdown",
        clock,
        errors,
        late,
        () => readiness.shutdown?.(),
        noop,
        false,
      );
    }
    const servers = this.#servers.filter((server) => this.#status.has(server));
    const [serverErrors] = await Promise.all([this.#stopServers(servers, clock), Promise.all(late)]);
    errors.push(...serverErrors);
    clock.dispose();
    this.#state = "stopped";
    this.#unlisten();
    return this.#outcome(errors, clock);
  }

  /**
   * Stops `servers` with a drain deadline: `drainTimeout` from now, or when `clock.force` aborts;
   * gives up waiting for them when `clock.deadline` aborts.
   */
  async #stopServers(servers: readonly Server[], clock: StopClock): Promise<ServiceError[]> {
    const errors: ServiceError[] = [];
    if (servers.length === 0) return errors;
    const drain = new AbortController();
    const t0 = performance.now();
    const force = (reason: ServiceError): void => {
      if (drain.signal.aborted) return;
      this.#emit({ type: "drain-timeout", ms: performance.now() - t0 });
      drain.abort(reason);
    };
    const onForce = (): void => force(clock.force.reason as ServiceError);
    const timer = setTimeout(
      () => force(new ServiceError(Code.DEADLINE_EXCEEDED, "drain timeout")),
      this.#drainTimeout,
    );
    if (clock.force.aborted) onForce();
    else clock.force.addEventListener("abort", onForce, { once: true });
    const results = await Promise.allSettled(
      servers.map((server) =>
        until(
          attempt(() => server.stop(drain.signal)),
          clock.deadline,
          () => new ServiceError(Code.DEADLINE_EXCEEDED, "did not close within stopTimeout"),
        ),
      ),
    );
    clearTimeout(timer);
    clock.force.removeEventListener("abort", onForce);
    results.forEach((result, i) => {
      if (result.status === "fulfilled") return;
      this.#record(this.#serverStep(servers[i] as Server), result.reason, errors);
    });
    return errors;
  }

  /** The error a stop with `errors` ends with: DEADLINE_EXCEEDED past `stopTimeout`, else INTERNAL. */
  #outcome(errors: readonly ServiceError[], clock: StopClock): ServiceError | undefined {
    const messages = errors.map((e) => e.message).join("; ");
    if (clock.deadline.aborted) {
      return new ServiceError(
        Code.DEADLINE_EXCEEDED,
        `app stop did not finish within ${this.#stopTimeout} ms: ${messages}`,
        { cause: new AggregateError(errors) },
      );
    }
    if (errors.length > 0) {
      return new ServiceError(Code.INTERNAL, `app stop finished with errors: ${messages}`, {
        cause: new AggregateError(errors),
      });
    }
    return undefined;
  }

  async #stop(clock: StopClock): Promise<void> {
    const t0 = performance.now();
    this.#state = "stopping";
    this.#ready = false;
    this.#setServing(false);
    this.#emit({ type: "stopping", reason: this.#stopReason });

    const errors: ServiceError[] = [];
    /** Steps before the drain that began only once its time was up: they run alongside the drain. */
    const late: Promise<void>[] = [];
    for (const hook of this.#beforeStop) {
      // A hook begun late gets the bound it is given then (clock.late), not a signal that has aborted.
      await this.#preDrainStep("beforeStop hook", clock, errors, late, () =>
        hook(this.info, clock.preDrain.aborted ? clock.late : clock.preDrain),
      );
    }
    const registrar = this.#registrar;
    this.#registrar = undefined;
    if (registrar !== undefined) {
      await this.#preDrainStep(
        "deregister",
        clock,
        errors,
        late,
        () => registrar.deregister(),
        () => this.#emit({ type: "deregistered" }),
        false,
      );
    }
    await delay(this.#deregisterDelay, clock.preDrain);
    for (const readiness of this.#readiness) {
      await this.#preDrainStep(
        "readiness shutdown",
        clock,
        errors,
        late,
        () => readiness.shutdown?.(),
        noop,
        false,
      );
    }
    this.#emit({ type: "draining" });
    const [serverErrors] = await Promise.all([this.#stopServers(this.#servers, clock), Promise.all(late)]);
    errors.push(...serverErrors);
    for (const hook of this.#afterStop) {
      try {
        await until(
          attempt(() => hook(this.info, clock.deadline)),
          clock.deadline,
          () => new ServiceError(Code.DEADLINE_EXCEEDED, "did not finish within stopTimeout"),
        );
      } catch (err) {
        this.#record("afterStop hook", err, errors);
      }
    }

    clock.dispose();
    this.#unlisten();
    this.#state = "stopped";
    this.#emit({ type: "stopped", ms: performance.now() - t0 });
    const error = this.#outcome(errors, clock);
    this.#settleDone(error);
    if (error !== undefined) throw error;
  }
}

/**
 * Creates an application (Kratos' `kratos.New`): servers, a registrar, readiness, hooks and signals,
 * with one lifecycle.
 *
 * Start: before-start hooks → every server starts (if one fails, the start fails at once, without
 * waiting for the others, and is undone: `readiness.shutdown()`, the servers that started or are
 * still starting stopped, and `run()` rejects naming it) → ready
 * (`readiness.setServing(true)`) → register → after-start hooks. A stop asked for during the start
 * gives up on the step under way at once and undoes the start within `stopTimeout`.
 *
 * Stop (a signal or `app.stop()`): not ready (`setServing(false)`) → before-stop hooks → deregister →
 * `deregisterDelay` → `readiness.shutdown()` (these share the time the drain leaves: see
 * {@link AppOptions.stopTimeout}) → servers stop accepting and drain their work in flight for up to
 * `drainTimeout`, then close what is left → after-stop hooks → `run()` resolves. A second signal
 * received during the stop exits the process with code 1 at once.
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
