import { type App, type AppEvent, createApp, type Registrar, type Server } from "@svckit/app";
import { Code, ServiceError } from "@svckit/endpoint";
import { afterEach, describe, expect, it, vi } from "vitest";

/** A fake server that records start/stop into `log` and can be made to fail or hang. */
interface FakeServer extends Server {
  readonly name: string;
  readonly stopSignals: (AbortSignal | undefined)[];
  listening: boolean;
}

interface FakeOptions {
  /** Make start reject with this message. */
  failStart?: string;
  /** Resolve start only after this many microtask turns (default 1, so servers finish out of order). */
  startTurns?: number;
  /** Stop waits for the deadline signal to abort (a server with a stuck connection). */
  stopWaitsForDeadline?: boolean;
  /** Stop never resolves. */
  stopHangs?: boolean;
  /** Make stop reject. */
  failStop?: string;
  /** Start never resolves (e.g. a bind waiting on DNS). */
  startHangs?: boolean;
  /** With `stopWaitsForDeadline`: close this many ms after the deadline aborted (a forced close takes time). */
  closeDelay?: number;
}

function fakeServer(name: string, log: string[], options: FakeOptions = {}): FakeServer {
  const server: FakeServer = {
    name,
    stopSignals: [],
    listening: false,
    get endpoint() {
      return server.listening ? `fake://${name}` : undefined;
    },
    async start() {
      log.push(`start ${name}`);
      if (options.startHangs) await new Promise<never>(() => undefined);
      for (let i = 0; i < (options.startTurns ?? 1); i++) await Promise.resolve();
      if (options.failStart !== undefined) throw new Error(options.failStart);
      server.listening = true;
      log.push(`listening ${name}`);
    },
    async stop(deadline) {
      log.push(`stop ${name}`);
      server.stopSignals.push(deadline);
      await Promise.resolve();
      if (options.stopHangs) await new Promise<never>(() => undefined);
      if (options.stopWaitsForDeadline && deadline !== undefined && !deadline.aborted) {
        await new Promise<void>((resolve) => deadline.addEventListener("abort", () => resolve()));
        log.push(`forced ${name}`);
        if (options.closeDelay !== undefined) {
          await new Promise((resolve) => setTimeout(resolve, options.closeDelay));
        }
      }
      if (options.failStop !== undefined) throw new Error(options.failStop);
      server.listening = false;
      log.push(`closed ${name}`);
    },
  };
  return server;
}

function recorder(log: string[], servers: readonly FakeServer[] = []): Registrar {
  return {
    async register() {
      log.push(`register (listening: ${servers.map((s) => s.listening).join(",")})`);
    },
    async deregister() {
      log.push(`deregister (listening: ${servers.map((s) => s.listening).join(",")})`);
    },
  };
}

function readinessLog(log: string[]) {
  return {
    setServing: (serving: boolean) => log.push(`serving ${serving}`),
    shutdown: () => log.push("shutdown"),
  };
}

const hook = (log: string[], name: string) => async () => {
  log.push(name);
};

/** The rejection of `promise` (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  const outcome = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(ServiceError);
  return outcome as ServiceError;
}

const apps: App[] = [];
function app(options: Parameters<typeof createApp>[0]): App {
  const created = createApp({ signals: [], ...options });
  apps.push(created);
  return created;
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

describe("createApp: lifecycle order", () => {
  it("runs hooks, servers, readiness and the registrar in Kratos order, both ways", async () => {
    const log: string[] = [];
    const servers = [fakeServer("a", log, { startTurns: 3 }), fakeServer("b", log)];
    const a = app({
      servers,
      registrar: recorder(log, servers),
      readiness: readinessLog(log),
      beforeStart: [hook(log, "beforeStart 1"), hook(log, "beforeStart 2")],
      afterStart: hook(log, "afterStart"),
      beforeStop: hook(log, "beforeStop"),
      afterStop: [hook(log, "afterStop 1"), hook(log, "afterStop 2")],
    });
    expect(a.state).toBe("idle");
    await a.start();
    expect(a.state).toBe("running");
    expect(a.ready).toBe(true);
    expect(log).toEqual([
      "serving false",
      "beforeStart 1",
      "beforeStart 2",
      "start a",
      "start b",
      "listening b",
      "listening a",
      "serving true",
      "register (listening: true,true)",
      "afterStart",
    ]);
    log.length = 0;
    await a.stop();
    expect(a.state).toBe("stopped");
    expect(a.ready).toBe(false);
    expect(log).toEqual([
      "serving false",
      "beforeStop",
      "deregister (listening: true,true)",
      "shutdown",
      "stop a",
      "stop b",
      "closed a",
      "closed b",
      "afterStop 1",
      "afterStop 2",
    ]);
  });

  it("run() resolves once stop() has finished, and stop() called twice returns the same promise", async () => {
    const log: string[] = [];
    const a = app({ servers: [fakeServer("a", log)] });
    let finished = false;
    const running = a.run().then(() => {
      finished = true;
    });
    await vi.waitFor(() => expect(a.state).toBe("running"));
    expect(finished).toBe(false);
    const first = a.stop();
    expect(a.stop()).toBe(first);
    await first;
    await running;
    expect(finished).toBe(true);
    expect(log).toEqual(["start a", "listening a", "stop a", "closed a"]);
  });

  it("gives a registrar factory the instance with the endpoints the servers bound", async () => {
    const log: string[] = [];
    const factory = vi.fn((info: unknown) => {
      log.push(`factory ${JSON.stringify(info)}`);
      return recorder(log);
    });
    const a = app({
      id: "i-1",
      name: "stringsvc",
      version: "1.2.3",
      metadata: { zone: "a" },
      servers: [fakeServer("http", log), fakeServer("grpc", log)],
      registrar: factory,
    });
    expect(a.info).toEqual({
      id: "i-1",
      name: "stringsvc",
      version: "1.2.3",
      metadata: { zone: "a" },
      endpoints: [],
    });
    await a.start();
    expect(factory).toHaveBeenCalledTimes(1);
    expect(factory).toHaveBeenCalledWith({
      id: "i-1",
      name: "stringsvc",
      version: "1.2.3",
      metadata: { zone: "a" },
      endpoints: ["fake://http", "fake://grpc"],
    });
    expect(a.info.endpoints).toEqual(["fake://http", "fake://grpc"]);
  });

  it("hooks get the app info and a signal", async () => {
    const seen: unknown[] = [];
    const a = app({
      name: "svc",
      id: "x",
      beforeStart: (info, signal) => {
        seen.push([info.name, info.id, signal.aborted]);
      },
      afterStop: (info, signal) => {
        seen.push([info.name, signal.aborted]);
      },
    });
    await a.start();
    await a.stop();
    expect(seen).toEqual([
      ["svc", "x", false],
      ["svc", false],
    ]);
  });

  it("defaults: a random UUID id, name app, empty version and metadata", () => {
    const a = app({});
    expect(a.info.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.info).toMatchObject({ name: "app", version: "", metadata: {}, endpoints: [] });
    expect(app({}).info.id).not.toBe(a.info.id);
  });

  it("accepts several readiness objects and tells each", async () => {
    const one: string[] = [];
    const two: string[] = [];
    const a = app({ readiness: [readinessLog(one), { setServing: (s) => two.push(`serving ${s}`) }] });
    await a.start();
    await a.stop();
    expect(one).toEqual(["serving false", "serving true", "serving false", "shutdown"]);
    expect(two).toEqual(["serving false", "serving true", "serving false"]);
  });
});

describe("createApp: a failed start is rolled back", () => {
  it("a server that cannot start: the start fails at once, the others (started or still starting) are stopped, nothing registers, run() rejects UNAVAILABLE", async () => {
    const log: string[] = [];
    const events: AppEvent[] = [];
    const servers = [
      fakeServer("a", log),
      fakeServer("b", log, { failStart: "listen EADDRINUSE 127.0.0.1:8080" }),
      fakeServer("c", log, { startTurns: 5 }),
    ];
    const a = app({
      servers,
      registrar: recorder(log, servers),
      readiness: readinessLog(log),
      afterStart: hook(log, "afterStart"),
      beforeStop: hook(log, "beforeStop"),
      afterStop: hook(log, "afterStop"),
      onEvent: (e) => events.push(e),
    });
    const error = await rejection(a.run());
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toBe('app start failed: server "b": listen EADDRINUSE 127.0.0.1:8080');
    expect(error.cause).toBeInstanceOf(Error);
    expect(log).toEqual([
      "serving false",
      "start a",
      "start b",
      "start c",
      "listening a",
      // Not waiting for c: the failure of b undoes the start at once.
      "serving false",
      "shutdown",
      "listening c",
      "stop a",
      "stop c",
      "closed a",
      "closed c",
    ]);
    expect(a.state).toBe("stopped");
    expect(a.ready).toBe(false);
    expect(events.map((e) => e.type)).toEqual(["error"]);
    // A stopped app cannot start again.
    const again = await rejection(a.start());
    expect(again.code).toBe(Code.FAILED_PRECONDITION);
    expect(again.message).toBe('app "app" has stopped; create a new app to start again');
    // stop() settles as run() did: with the start's failure.
    await expect(a.stop()).rejects.toThrow(/^app start failed: /);
  });

  it("a before-start hook that throws: no server starts", async () => {
    const log: string[] = [];
    const a = app({
      servers: [fakeServer("a", log)],
      beforeStart: () => {
        throw new Error("config missing");
      },
    });
    const error = await rejection(a.start());
    expect(error).toMatchObject({
      code: Code.UNAVAILABLE,
      message: "app start failed: beforeStart hook: config missing",
    });
    expect(log).toEqual([]);
  });

  it("a registrar that fails: deregistered anyway (it may have registered), the servers that listen are stopped", async () => {
    const log: string[] = [];
    const a = app({
      servers: [fakeServer("a", log)],
      readiness: readinessLog(log),
      registrar: {
        register: () => Promise.reject(new Error("consul: connection refused")),
        deregister: hook(log, "deregister"),
      },
    });
    const error = await rejection(a.run());
    expect(error).toMatchObject({
      code: Code.UNAVAILABLE,
      message: "app start failed: register: consul: connection refused",
    });
    expect(log).toEqual([
      "serving false",
      "start a",
      "listening a",
      "serving true",
      "serving false",
      "deregister",
      "shutdown",
      "stop a",
      "closed a",
    ]);
  });

  it("a registrar factory that throws counts as a failed register", async () => {
    const a = app({
      registrar: () => {
        throw new Error("no address");
      },
    });
    expect((await rejection(a.run())).message).toBe("app start failed: register: no address");
  });

  it("an after-start hook that fails: deregistered, then the servers stop", async () => {
    const log: string[] = [];
    const servers = [fakeServer("a", log)];
    const a = app({
      servers,
      registrar: recorder(log, servers),
      afterStart: () => Promise.reject(new Error("warm-up failed")),
    });
    const error = await rejection(a.run());
    expect(error.message).toBe("app start failed: afterStart hook: warm-up failed");
    expect(log).toEqual([
      "start a",
      "listening a",
      "register (listening: true)",
      "deregister (listening: true)",
      "stop a",
      "closed a",
    ]);
  });

  it("a server whose start throws synchronously is handled like one that rejects", async () => {
    const a = app({
      servers: [
        {
          name: "sync",
          start: () => {
            throw new Error("bad config");
          },
          stop: async () => undefined,
        },
      ],
    });
    expect((await rejection(a.start())).message).toBe('app start failed: server "sync": bad config');
  });

  it("an unnamed server is called by its position", async () => {
    const a = app({
      servers: [
        { start: async () => undefined, stop: async () => undefined },
        { start: () => Promise.reject(new Error("x")), stop: async () => undefined },
      ],
    });
    expect((await rejection(a.start())).message).toBe('app start failed: server "server 1": x');
  });
});

describe("createApp: stop", () => {
  it("stop() before start: stopped at once, and run() then rejects FAILED_PRECONDITION", async () => {
    const log: string[] = [];
    const a = app({ servers: [fakeServer("a", log)] });
    await a.stop();
    expect(a.state).toBe("stopped");
    const error = await rejection(a.run());
    expect(error.code).toBe(Code.FAILED_PRECONDITION);
    expect(log).toEqual([]);
  });

  it("stop() while a start hook ignores its signal: the start gives up at once, nothing starts or registers", async () => {
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const servers = [fakeServer("a", log)];
    const a = app({
      servers,
      registrar: recorder(log, servers),
      beforeStart: async (_info, signal) => {
        await gate;
        log.push(`beforeStart signal aborted: ${signal.aborted}`);
      },
    });
    const running = a.run();
    await Promise.resolve();
    expect(a.state).toBe("starting");
    await a.stop();
    expect(a.state).toBe("stopped");
    await expect(running).resolves.toBeUndefined();
    release();
    await gate;
    await Promise.resolve();
    expect(log).toEqual(["beforeStart signal aborted: true"]);
  });

  it("a start hook that gives up because stop() was called: a clean stop, run() resolves", async () => {
    const log: string[] = [];
    const events: AppEvent[] = [];
    const a = app({
      servers: [fakeServer("a", log)],
      onEvent: (e) => events.push(e),
      beforeStart: (_info, signal) =>
        new Promise<void>((_resolve, reject) => {
          signal.addEventListener("abort", () => reject(signal.reason));
        }),
    });
    const running = a.run();
    running.catch(() => undefined); // handled: rejection(running) reads it after the timers advance
    await Promise.resolve();
    await a.stop();
    await expect(running).resolves.toBeUndefined();
    expect(events).toEqual([
      {
        type: "error",
        step: "beforeStart hook",
        error: expect.objectContaining({
          code: Code.CANCELLED,
          message: "app start cancelled by stop: beforeStart hook: the app is stopping",
        }),
      },
    ]);
    expect(log).toEqual([]);
  });

  it("a failing stop step does not stop the others; run() rejects INTERNAL naming each failure", async () => {
    const log: string[] = [];
    const servers = [fakeServer("a", log, { failStop: "EPIPE" }), fakeServer("b", log)];
    const events: string[] = [];
    const a = app({
      servers,
      registrar: {
        register: async () => undefined,
        deregister: () => Promise.reject(new Error("etcd down")),
      },
      beforeStop: () => {
        throw new Error("flush failed");
      },
      afterStop: hook(log, "afterStop"),
      onEvent: (e) => events.push(e.type === "error" ? `error ${e.step}` : e.type),
    });
    const running = a.run();
    running.catch(() => undefined); // handled: rejection(running) reads it after the timers advance
    await a.start();
    await a.stop().catch(() => undefined);
    const error = await rejection(running);
    expect(error.code).toBe(Code.INTERNAL);
    expect(error.message).toBe(
      'app stop finished with errors: beforeStop hook: flush failed; deregister: etcd down; server "a": EPIPE',
    );
    expect(error.cause).toBeInstanceOf(AggregateError);
    expect((error.cause as AggregateError).errors).toHaveLength(3);
    expect(log).toEqual([
      "start a",
      "start b",
      "listening a",
      "listening b",
      "stop a",
      "stop b",
      "closed b",
      "afterStop",
    ]);
    expect(events).toEqual([
      "started",
      "stopping",
      "error beforeStop hook",
      "error deregister",
      "deregistered",
      "draining",
      'error server "a"',
      "stopped",
    ]);
    expect(a.state).toBe("stopped");
  });

  it("stop() rejects like run() and never as an unhandled rejection", async () => {
    const a = app({ afterStop: () => Promise.reject(new Error("late")) });
    await a.start();
    const error = await rejection(a.stop());
    expect(error.message).toBe("app stop finished with errors: afterStop hook: late");
  });

  it("a readiness object or onEvent that throws does not break the lifecycle", async () => {
    const events: string[] = [];
    const a = app({
      readiness: {
        setServing: () => {
          throw new Error("nope");
        },
      },
      onEvent: (e) => {
        events.push(e.type);
        throw new Error("logger down");
      },
    });
    await a.start();
    await a.stop();
    expect(a.state).toBe("stopped");
    expect(events).toEqual(["error", "error", "started", "error", "stopping", "draining", "stopped"]);
  });
});

describe("createApp: deadlines (fake timers)", () => {
  it("servers get drainTimeout to finish, then their deadline signal aborts", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const events: AppEvent[] = [];
    const slow = fakeServer("slow", log, { stopWaitsForDeadline: true });
    const a = app({ servers: [slow], drainTimeout: 2_000, onEvent: (e) => events.push(e) });
    await a.start();
    const stopped = a.stop();
    await vi.advanceTimersByTimeAsync(1_999);
    expect(log).toEqual(["start slow", "listening slow", "stop slow"]);
    expect(slow.stopSignals[0]?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await stopped;
    expect(slow.stopSignals[0]?.aborted).toBe(true);
    expect(slow.stopSignals[0]?.reason).toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
      message: "drain timeout",
    });
    expect(log.slice(3)).toEqual(["forced slow", "closed slow"]);
    const timeout = events.find((e) => e.type === "drain-timeout");
    expect(timeout).toEqual({ type: "drain-timeout", ms: expect.any(Number) });
  });

  it("a stop that exceeds stopTimeout: remaining waits are cut, servers forced, run() rejects DEADLINE_EXCEEDED", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const hung = fakeServer("hung", log, { stopHangs: true });
    const a = app({
      servers: [hung],
      drainTimeout: 10_000,
      stopTimeout: 3_000,
      beforeStop: () => new Promise<never>(() => undefined),
      afterStop: hook(log, "afterStop"),
    });
    const running = a.run();
    running.catch(() => undefined); // handled: rejection(running) reads it after the timers advance
    await a.start();
    void a.stop().catch(() => undefined);
    await vi.advanceTimersByTimeAsync(3_000);
    const error = await rejection(running);
    expect(error.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(error.message).toBe(
      // beforeStop is cut when the drain must begin (3000 − 750 ms: stopTimeout is below drainTimeout);
      // the afterStop hook, which finishes at once, is reported by its outcome.
      'app stop did not finish within 3000 ms: beforeStop hook: did not finish within 2250 ms, before the drain; server "hung": did not close within stopTimeout',
    );
    expect(hung.stopSignals[0]?.aborted).toBe(true);
    expect(log.at(-1)).toBe("afterStop");
    expect(a.state).toBe("stopped");
  });

  it("stopTimeout defaults to drainTimeout + 5 s", async () => {
    vi.useFakeTimers();
    const a = app({ drainTimeout: 1_000, servers: [fakeServer("hung", [], { stopHangs: true })] });
    const running = a.run();
    running.catch(() => undefined); // handled: rejection(running) reads it after the timers advance
    await a.start();
    void a.stop().catch(() => undefined);
    await vi.advanceTimersByTimeAsync(5_999);
    expect(a.state).toBe("stopping");
    await vi.advanceTimersByTimeAsync(1);
    expect((await rejection(running)).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("deregisterDelay: servers keep accepting for that long after deregistering", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const servers = [fakeServer("a", log)];
    const a = app({ servers, registrar: recorder(log, servers), deregisterDelay: 1_500 });
    await a.start();
    const stopped = a.stop();
    await vi.advanceTimersByTimeAsync(1_499);
    expect(log.at(-1)).toBe("deregister (listening: true)");
    await vi.advanceTimersByTimeAsync(1);
    await stopped;
    expect(log.slice(-2)).toEqual(["stop a", "closed a"]);
  });
});

describe("createApp: signals", () => {
  // Emitted on the process object, not sent: nothing outside this test sees them.
  const SIGNAL = "SIGUSR2";

  it("the first signal stops the app, a second one during the stop exits with 1", async () => {
    const exit = vi.fn();
    const log: string[] = [];
    const events: AppEvent[] = [];
    const before = process.listenerCount(SIGNAL);
    let release!: () => void;
    const a = app({
      signals: [SIGNAL],
      exit,
      beforeStop: () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
      servers: [fakeServer("a", log)],
      onEvent: (e) => events.push(e),
    });
    const running = a.run();
    running.catch(() => undefined); // handled: rejection(running) reads it after the timers advance
    await vi.waitFor(() => expect(a.state).toBe("running"));
    expect(process.listenerCount(SIGNAL)).toBe(before + 1);
    process.emit(SIGNAL, SIGNAL);
    expect(a.state).toBe("stopping");
    expect(a.ready).toBe(false);
    expect(exit).not.toHaveBeenCalled();
    process.emit(SIGNAL, SIGNAL);
    expect(exit).toHaveBeenCalledTimes(1);
    expect(exit).toHaveBeenCalledWith(1);
    release();
    await running;
    expect(events.filter((e) => e.type === "stopping" || e.type === "exit")).toEqual([
      { type: "stopping", reason: SIGNAL },
      { type: "exit", signal: SIGNAL },
    ]);
    // Once stopped, the app no longer listens.
    expect(process.listenerCount(SIGNAL)).toBe(before);
  });

  it("listens from start until stopped, also after a failed start", async () => {
    const before = process.listenerCount(SIGNAL);
    const a = app({ signals: [SIGNAL], beforeStart: () => Promise.reject(new Error("x")) });
    await rejection(a.start());
    expect(process.listenerCount(SIGNAL)).toBe(before);
  });

  it("defaults to SIGTERM and SIGINT", async () => {
    const term = process.listenerCount("SIGTERM");
    const int = process.listenerCount("SIGINT");
    const a = createApp({});
    apps.push(a);
    await a.start();
    expect([process.listenerCount("SIGTERM"), process.listenerCount("SIGINT")]).toEqual([term + 1, int + 1]);
    await a.stop();
    expect([process.listenerCount("SIGTERM"), process.listenerCount("SIGINT")]).toEqual([term, int]);
  });
});

describe("createApp: options are checked", () => {
  it.each([
    [{ drainTimeout: -1 }, "invalid drainTimeout -1: expected a number of milliseconds from 0 to 2147483647"],
    [
      { stopTimeout: Number.NaN },
      "invalid stopTimeout NaN: expected a number of milliseconds from 0 to 2147483647",
    ],
    [
      { deregisterDelay: Number.POSITIVE_INFINITY },
      "invalid deregisterDelay Infinity: expected a number of milliseconds from 0 to 2147483647",
    ],
    // Node's timers fire a longer delay after 1 ms: a drain meant to wait long would force-close at once.
    [
      { drainTimeout: 3_000_000_000 },
      "invalid drainTimeout 3000000000: expected a number of milliseconds from 0 to 2147483647",
    ],
    [{ signals: ["SIGNOPE" as NodeJS.Signals] }, 'unknown signal "SIGNOPE"'],
  ])("%o → INVALID_ARGUMENT", (options, message) => {
    let caught: unknown;
    try {
      createApp(options);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ServiceError);
    expect(caught).toMatchObject({ code: Code.INVALID_ARGUMENT, message });
  });
});

/** Whether `promise` has settled, read after the timers advance: `"pending"`, `"resolved"` or the rejection's message. */
function outcomeOf(promise: Promise<unknown>): () => string {
  let outcome = "pending";
  promise.then(
    () => {
      outcome = "resolved";
    },
    (err: unknown) => {
      outcome = `rejected: ${err instanceof Error ? err.message : String(err)}`;
    },
  );
  return () => outcome;
}

describe("createApp: a stop during the start (regression: stop() hung while a start step hung)", () => {
  it("register() hangs: the start gives up at once, deregisters (it may have registered) and stops the servers", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const events: AppEvent[] = [];
    const a = app({
      servers: [fakeServer("a", log)],
      readiness: readinessLog(log),
      drainTimeout: 100,
      stopTimeout: 300,
      registrar: {
        register: () => {
          log.push("register");
          return new Promise<void>(() => undefined);
        },
        deregister: hook(log, "deregister"),
      },
      onEvent: (e) => events.push(e),
    });
    const running = outcomeOf(a.run());
    await vi.advanceTimersByTimeAsync(0);
    expect(a.state).toBe("starting");
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(0);
    expect([stopped(), running(), a.state]).toEqual(["resolved", "resolved", "stopped"]);
    expect(log).toEqual([
      "serving false",
      "start a",
      "listening a",
      "serving true",
      "register",
      "serving false",
      "deregister",
      "shutdown",
      "stop a",
      "closed a",
    ]);
    expect(events).toEqual([
      {
        type: "error",
        step: "register",
        error: expect.objectContaining({
          code: Code.CANCELLED,
          message: "app start cancelled by stop: register: the app is stopping",
        }),
      },
    ]);
  });

  it("the registrar factory hangs: the start gives up; nothing registered, nothing to deregister", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const a = app({
      servers: [fakeServer("a", log)],
      registrar: () => new Promise<Registrar>(() => undefined),
    });
    void a.run();
    await vi.advanceTimersByTimeAsync(0);
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped()).toBe("resolved");
    expect(log).toEqual(["start a", "listening a", "stop a", "closed a"]);
  });

  it("a server whose start hangs: never ready or registered; it is stopped too, with the one that started", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const servers = [fakeServer("a", log), fakeServer("hang", log, { startHangs: true })];
    const a = app({ servers, registrar: recorder(log, servers), readiness: readinessLog(log) });
    void a.run();
    await vi.advanceTimersByTimeAsync(0);
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped()).toBe("resolved");
    expect(log).toEqual([
      "serving false",
      "start a",
      "start hang",
      "listening a",
      "serving false",
      "shutdown",
      "stop a",
      "stop hang",
      "closed a",
      "closed hang",
    ]);
    expect(a.ready).toBe(false);
  });

  it("an afterStart hook that ignores its signal: the start gives up; deregistered, servers stopped", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const servers = [fakeServer("a", log)];
    const a = app({
      servers,
      registrar: recorder(log, servers),
      afterStart: () => new Promise<void>(() => undefined),
    });
    void a.run();
    await vi.advanceTimersByTimeAsync(0);
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped()).toBe("resolved");
    expect(log).toEqual([
      "start a",
      "listening a",
      "register (listening: true)",
      "deregister (listening: true)",
      "stop a",
      "closed a",
    ]);
  });

  it("a step is not begun once the stop was asked for, even if the step under way finished", async () => {
    const log: string[] = [];
    const servers = [fakeServer("a", log)];
    const a = app({
      servers,
      registrar: recorder(log, servers),
      // Finishes (resolves) as soon as the stop is asked for.
      beforeStart: (_info, signal) =>
        new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve())),
    });
    const running = a.run();
    await Promise.resolve();
    await a.stop();
    await running;
    expect(log).toEqual([]);
  });

  it("undoing the start is bounded by stopTimeout counted from the stop request", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const hung = fakeServer("hung", log, { stopHangs: true });
    const a = app({
      servers: [hung],
      drainTimeout: 1_000,
      stopTimeout: 3_000,
      registrar: {
        register: () => new Promise<void>(() => undefined),
        deregister: () => new Promise<void>(() => undefined),
      },
    });
    const running = outcomeOf(a.run());
    await vi.advanceTimersByTimeAsync(500); // register hangs for a while before the stop
    const stopped = outcomeOf(a.stop());
    // deregister is cut at 3000 − 1000 − 750 ms; the drain is forced 750 ms before stopTimeout.
    await vi.advanceTimersByTimeAsync(1_249);
    expect(hung.stopSignals).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(hung.stopSignals[0]?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(hung.stopSignals[0]?.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(749);
    expect(stopped()).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    const expected =
      'rejected: app stop did not finish within 3000 ms: deregister: did not finish within 1250 ms, before the drain; server "hung": did not close within stopTimeout';
    expect([stopped(), running(), a.state]).toEqual([expected, expected, "stopped"]);
  });

  it("undoing a failed start is bounded by stopTimeout from the failure and drains with drainTimeout", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const hung = fakeServer("hung", log, { stopHangs: true });
    const a = app({
      servers: [hung, fakeServer("b", log, { failStart: "EADDRINUSE" })],
      drainTimeout: 500,
      stopTimeout: 2_000,
    });
    const running = outcomeOf(a.run());
    await vi.advanceTimersByTimeAsync(499);
    expect(hung.stopSignals[0]?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(hung.stopSignals[0]?.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(1_499);
    expect(running()).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(running()).toBe('rejected: app start failed: server "b": EADDRINUSE');
    expect(a.state).toBe("stopped");
  });
});

describe("createApp: a failed start shuts readiness down (regression: health Watch streams held the drain)", () => {
  it("readiness.shutdown() runs before the servers stop, so a server waiting on its streams closes at once", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    let shutdown!: () => void;
    const streamsEnded = new Promise<void>((resolve) => {
      shutdown = resolve;
    });
    // A gRPC server with an open health Watch: its graceful stop waits until the health service ends it.
    const grpc: Server = {
      name: "grpc",
      start: async () => undefined,
      stop: async (deadline) => {
        log.push("stop grpc");
        await Promise.race([
          streamsEnded,
          new Promise<void>((resolve) => deadline?.addEventListener("abort", () => resolve())),
        ]);
        log.push(deadline?.aborted ? "grpc forced" : "grpc closed");
      },
    };
    const events: string[] = [];
    const a = app({
      servers: [grpc, fakeServer("http", log, { failStart: "EADDRINUSE" })],
      drainTimeout: 10_000,
      readiness: [
        {
          setServing: () => undefined,
          shutdown: () => {
            log.push("shutdown");
            shutdown();
          },
        },
        {
          setServing: () => undefined,
          shutdown: () => {
            throw new Error("already closed");
          },
        },
      ],
      onEvent: (e) => events.push(e.type === "error" ? `error ${e.step}: ${e.error.message}` : e.type),
    });
    const running = outcomeOf(a.run());
    await vi.advanceTimersByTimeAsync(0);
    expect(running()).toBe('rejected: app start failed: server "http": EADDRINUSE');
    expect(log).toEqual(["start http", "shutdown", "stop grpc", "grpc closed"]);
    expect(events).toEqual([
      'error server "http": app start failed: server "http": EADDRINUSE',
      "error readiness shutdown: readiness shutdown: already closed",
    ]);
  });
});

describe("createApp: signals after app.stop() (regression: the first SIGTERM exited at once)", () => {
  const SIGNAL = "SIGUSR2";

  it("a first signal during a stop begun by app.stop() joins it; only a second one exits", async () => {
    const exit = vi.fn();
    let release!: () => void;
    const inFlight = new Promise<void>((resolve) => {
      release = resolve;
    });
    const events: AppEvent[] = [];
    const a = app({
      signals: [SIGNAL],
      exit,
      servers: [{ name: "slow", start: async () => undefined, stop: () => inFlight }],
      onEvent: (e) => events.push(e),
    });
    await a.start();
    const stopped = a.stop();
    process.emit(SIGNAL, SIGNAL);
    expect(exit).not.toHaveBeenCalled();
    process.emit(SIGNAL, SIGNAL);
    expect(exit).toHaveBeenCalledTimes(1);
    expect(exit).toHaveBeenCalledWith(1);
    release();
    await stopped;
    expect(events.filter((e) => e.type === "stopping" || e.type === "exit")).toEqual([
      { type: "stopping", reason: "stop()" },
      { type: "exit", signal: SIGNAL },
    ]);
  });

  it("a first signal while starting cancels the start; a second one during the undo exits", async () => {
    vi.useFakeTimers();
    const exit = vi.fn();
    const a = app({
      signals: [SIGNAL],
      exit,
      servers: [fakeServer("hang", [], { startHangs: true, stopHangs: true })],
      stopTimeout: 1_000,
    });
    const running = outcomeOf(a.run());
    await vi.advanceTimersByTimeAsync(0);
    process.emit(SIGNAL, SIGNAL);
    await vi.advanceTimersByTimeAsync(0);
    expect(a.state).toBe("stopping");
    expect(exit).not.toHaveBeenCalled();
    process.emit(SIGNAL, SIGNAL);
    expect(exit).toHaveBeenCalledWith(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(running()).toBe(
      'rejected: app stop did not finish within 1000 ms: server "hang": did not close within stopTimeout',
    );
  });
});

describe("createApp: the stop budget (regression: a hanging deregister left the servers no drain)", () => {
  it("deregister hangs: cut when the drain must begin; the servers get their full drainTimeout", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const events: string[] = [];
    const web = fakeServer("web", log, { stopWaitsForDeadline: true });
    const a = app({
      servers: [web],
      drainTimeout: 1_000,
      stopTimeout: 3_000,
      registrar: { register: async () => undefined, deregister: () => new Promise<void>(() => undefined) },
      onEvent: (e) => events.push(e.type === "error" ? `error ${e.step}` : e.type),
    });
    await a.start();
    const stopped = outcomeOf(a.stop());
    // stopTimeout − drainTimeout − 750 ms (a quarter of stopTimeout, under 1 s) kept to close what is left.
    await vi.advanceTimersByTimeAsync(1_249);
    expect(web.stopSignals).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(web.stopSignals[0]?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(999);
    expect(web.stopSignals[0]?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(web.stopSignals[0]?.aborted).toBe(true);
    expect(stopped()).toBe(
      "rejected: app stop finished with errors: deregister: did not finish within 1250 ms, before the drain",
    );
    expect(log.slice(-3)).toEqual(["stop web", "forced web", "closed web"]);
    expect(events).toEqual([
      "started",
      "stopping",
      "error deregister",
      "deregistered",
      "draining",
      "drain-timeout",
      "stopped",
    ]);
  });

  it("with the defaults, beforeStop hooks and deregister share 4 s; the hooks' signal aborts then", async () => {
    vi.useFakeTimers();
    let hookSignal: AbortSignal | undefined;
    const a = app({
      beforeStop: (_info, signal) => {
        hookSignal = signal;
        return new Promise<void>(() => undefined);
      },
    });
    await a.start();
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(3_999);
    expect(hookSignal?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(hookSignal?.aborted).toBe(true);
    expect(stopped()).toBe(
      "rejected: app stop finished with errors: beforeStop hook: did not finish within 4000 ms, before the drain",
    );
  });

  it("stopTimeout below drainTimeout: the drain is forced before the stop deadline, and a server that then closes is not reported", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const web = fakeServer("web", log, { stopWaitsForDeadline: true, closeDelay: 10 });
    const a = app({ servers: [web], drainTimeout: 10_000, stopTimeout: 2_000 });
    await a.start();
    const stopped = outcomeOf(a.stop());
    // 2000 − min(1000, 2000 / 4) ms.
    await vi.advanceTimersByTimeAsync(1_499);
    expect(web.stopSignals[0]?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(web.stopSignals[0]?.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(10);
    expect(stopped()).toBe("resolved");
    expect(log.slice(-3)).toEqual(["stop web", "forced web", "closed web"]);
  });
});

describe("createApp: steps begun once the time before the drain was up (regression: reported as overrunning it with 0 ms)", () => {
  /** A registrar whose deregister logs `deregistered` after `ms` (never, for `Infinity`). */
  function slowDeregister(log: string[], ms: number): Registrar {
    return {
      register: async () => undefined,
      deregister: () =>
        new Promise<void>((resolve) => {
          log.push("deregister");
          if (ms === Number.POSITIVE_INFINITY) return;
          setTimeout(() => {
            log.push("deregistered");
            resolve();
          }, ms);
        }),
    };
  }

  it("a beforeStop hook used the time up: deregister and an async readiness.shutdown still run, alongside the drain, and are not reported when they finish", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const events: string[] = [];
    const web = fakeServer("web", log);
    const a = app({
      servers: [web],
      drainTimeout: 100,
      stopTimeout: 400, // margin 100 ms: 200 ms before the drain, forced at 300 ms
      beforeStop: () => new Promise<void>((resolve) => setTimeout(resolve, 250)),
      registrar: slowDeregister(log, 5),
      readiness: {
        setServing: () => undefined,
        shutdown: () => {
          log.push("shutdown");
          return new Promise<void>((resolve) => setTimeout(resolve, 10));
        },
      },
      onEvent: (e) => events.push(e.type === "error" ? `error ${e.error.message}` : e.type),
    });
    await a.start();
    log.length = 0;
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(199);
    expect(log).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    // Both begun at 200 ms, and the drain with them (they are not waited for first).
    expect(log).toEqual(["deregister", "shutdown", "stop web", "closed web"]);
    await vi.advanceTimersByTimeAsync(5);
    expect(log.at(-1)).toBe("deregistered");
    expect(stopped()).toBe("pending"); // shutdown still running, and still waited for
    await vi.advanceTimersByTimeAsync(5);
    expect(stopped()).toBe(
      "rejected: app stop finished with errors: beforeStop hook: did not finish within 200 ms, before the drain",
    );
    expect(events).toEqual([
      "started",
      "stopping",
      "error beforeStop hook: did not finish within 200 ms, before the drain",
      "draining",
      "deregistered",
      "stopped",
    ]);
  });

  it("such a step is reported if it fails, or is still running when the drain is forced; the stop then ends", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const a = app({
      drainTimeout: 100,
      stopTimeout: 400,
      beforeStop: () => new Promise<void>(() => undefined),
      registrar: slowDeregister(log, Number.POSITIVE_INFINITY),
      readiness: {
        setServing: () => undefined,
        shutdown: () => {
          throw new Error("boom");
        },
      },
    });
    await a.start();
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(299);
    expect(stopped()).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(stopped()).toBe(
      "rejected: app stop finished with errors: beforeStop hook: did not finish within 200 ms, before the drain; " +
        "readiness shutdown: boom; " +
        "deregister: begun once the 200 ms before the drain had run out, not finished within 300 ms",
    );
  });

  it("when the time before the drain ends at the forced close (stopTimeout not above drainTimeout + margin), such a step gets half the margin", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const a = app({
      drainTimeout: 10_000,
      stopTimeout: 2_000, // margin 500 ms: steps before the drain and the drain itself forced at 1500 ms
      beforeStop: () => new Promise<void>(() => undefined),
      registrar: slowDeregister(log, 200),
    });
    await a.start();
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(1_500);
    expect(log).toEqual(["deregister"]);
    await vi.advanceTimersByTimeAsync(200);
    expect(log).toEqual(["deregister", "deregistered"]);
    expect(stopped()).toBe(
      "rejected: app stop finished with errors: beforeStop hook: did not finish within 1500 ms, before the drain",
    );
  });
});

describe("createApp: a server failing while another still starts (regression: run() waited for the slow one)", () => {
  it("one server fails at once while another's start hangs: run() rejects at once naming it; the other is stopped", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const events: AppEvent[] = [];
    const a = app({
      servers: [
        fakeServer("a", log, { failStart: "listen EADDRINUSE 127.0.0.1:8080" }),
        fakeServer("b", log, { startHangs: true }),
      ],
      onEvent: (e) => events.push(e),
    });
    const running = outcomeOf(a.run());
    await vi.advanceTimersByTimeAsync(0);
    expect(running()).toBe('rejected: app start failed: server "a": listen EADDRINUSE 127.0.0.1:8080');
    expect(a.state).toBe("stopped");
    expect(log).toEqual(["start a", "start b", "stop b", "closed b"]);
    expect(events).toEqual([
      {
        type: "error",
        step: 'server "a"',
        error: expect.objectContaining({
          code: Code.UNAVAILABLE,
          message: 'app start failed: server "a": listen EADDRINUSE 127.0.0.1:8080',
        }),
      },
    ]);
  });

  it("a stop after the failure, while the other server is still slow to start, does not hide the failure", async () => {
    vi.useFakeTimers();
    const events: string[] = [];
    const slow: Server = {
      name: "b",
      start: () => new Promise<void>((resolve) => setTimeout(resolve, 2_000)),
      stop: async () => undefined,
    };
    const a = app({
      servers: [fakeServer("a", [], { failStart: "EADDRINUSE" }), slow],
      onEvent: (e) => events.push(e.type === "error" ? `error ${e.error.message}` : e.type),
    });
    const running = outcomeOf(a.run());
    await vi.advanceTimersByTimeAsync(100);
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(0);
    expect(running()).toBe('rejected: app start failed: server "a": EADDRINUSE');
    expect(stopped()).toBe(running()); // stop() settles as run() does
    expect(events).toEqual(['error app start failed: server "a": EADDRINUSE']);
  });

  it("a stop asked for in the very moment a server failed: the start is reported failed, naming each server that had failed", async () => {
    const log: string[] = [];
    const events: AppEvent[] = [];
    let stopped: Promise<void> | undefined;
    const failsWithStop = (name: string): Server => ({
      name,
      start: () => {
        // The stop comes before the app has seen the failure.
        queueMicrotask(() => {
          stopped ??= a.stop();
        });
        return Promise.reject(new Error(`${name}: listen EADDRINUSE`));
      },
      stop: async () => undefined,
    });
    const a = app({
      servers: [failsWithStop("a"), fakeServer("b", log, { startHangs: true }), failsWithStop("c")],
      onEvent: (e) => events.push(e),
    });
    const error = await rejection(a.run());
    const message = 'app start failed: server "a": a: listen EADDRINUSE; server "c": c: listen EADDRINUSE';
    expect(error).toMatchObject({ code: Code.UNAVAILABLE, message });
    expect(error.cause).toBeInstanceOf(AggregateError);
    expect((await rejection(stopped as Promise<void>)).message).toBe(message);
    expect(events).toEqual([
      {
        type: "error",
        step: 'server "a"',
        error: expect.objectContaining({ code: Code.UNAVAILABLE, message }),
      },
    ]);
    expect(log).toEqual(["start b", "stop b", "closed b"]);
  });
});

describe("createApp: second review of the stop budget and failed starts", () => {
  it("stop() after a failed start settles as run() does, whether called while starting or while undoing", async () => {
    for (const turns of [0, 1, 3, 10]) {
      const log: string[] = [];
      const a = app({
        servers: [
          fakeServer("bad", log, { failStart: "boom" }),
          fakeServer("slow", log, { startHangs: true }),
        ],
      });
      const running = a.run();
      for (let i = 0; i < turns; i++) await Promise.resolve();
      const [run, stop] = await Promise.allSettled([running, a.stop()]);
      expect(stop).toEqual(run);
      // A stop before the failure cancels the start (both resolve); after it, both reject with it.
      if (turns >= 3) {
        expect(run).toMatchObject({
          status: "rejected",
          reason: { message: 'app start failed: server "bad": boom' },
        });
      }
    }
  });

  it("a beforeStop hook begun late gets a signal that aborts when late steps stop being waited for, not one already aborted", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    let lateSignal: AbortSignal | undefined;
    const a = app({
      servers: [fakeServer("web", log)],
      drainTimeout: 400,
      stopTimeout: 1_000, // margin 250 ms: 350 ms before the drain, forced at 750 ms
      beforeStop: [
        () => new Promise<void>(() => undefined), // hangs, ignores its signal
        (_info, signal) => {
          lateSignal = signal;
          return new Promise<void>((resolve, reject) => {
            const timer = setTimeout(resolve, 20);
            signal.addEventListener("abort", () => {
              clearTimeout(timer);
              reject(signal.reason);
            });
          });
        },
      ],
    });
    await a.start();
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(350);
    expect(lateSignal?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(stopped()).toBe(
      "rejected: app stop finished with errors: beforeStop hook: did not finish within 350 ms, before the drain",
    );
  });

  it("a late hook that hangs does not keep deregister waiting until the servers have closed", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const a = app({
      servers: [fakeServer("web", log)],
      drainTimeout: 400,
      stopTimeout: 1_000,
      beforeStop: [() => new Promise<void>(() => undefined), () => new Promise<void>(() => undefined)],
      registrar: {
        register: async () => undefined,
        deregister: async () => {
          log.push(`deregister at ${Date.now()}`);
        },
      },
    });
    await a.start();
    log.length = 0;
    const t0 = Date.now();
    void a.stop().catch(() => undefined);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(log[0]).toBe(`deregister at ${t0 + 350}`); // at the end of the time before the drain
    expect(log.indexOf("closed web")).toBeGreaterThan(0);
  });

  it("late hooks run one after another, in order; deregister does not wait for them", async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const a = app({
      servers: [fakeServer("web", log)],
      drainTimeout: 400,
      stopTimeout: 1_000,
      beforeStop: [
        () => new Promise<void>(() => undefined),
        async () => {
          log.push("hook begin");
          await new Promise((resolve) => setTimeout(resolve, 50));
          log.push("hook end");
        },
      ],
      registrar: {
        register: async () => undefined,
        deregister: async () => {
          log.push("deregister");
        },
      },
    });
    await a.start();
    log.length = 0;
    const stopped = outcomeOf(a.stop());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(log.filter((l) => !l.includes("web"))).toEqual(["hook begin", "deregister", "hook end"]);
    expect(stopped()).toMatch(/^rejected: app stop finished with errors: beforeStop hook: did not finish/);
  });
});
