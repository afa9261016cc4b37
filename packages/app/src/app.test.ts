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
  it("a server that cannot start: the others are stopped, nothing registers, run() rejects UNAVAILABLE", async () => {
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
      "listening c",
      "serving false",
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
    await expect(a.stop()).resolves.toBeUndefined();
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

  it("a registrar that fails: the servers that listen are stopped", async () => {
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

  it("stop() while starting: start hooks see their signal abort, the start completes, then the app stops", async () => {
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
    running.catch(() => undefined); // handled: rejection(running) reads it after the timers advance
    await Promise.resolve();
    expect(a.state).toBe("starting");
    const stopped = a.stop();
    release();
    await stopped;
    await running;
    expect(log).toEqual([
      "beforeStart signal aborted: true",
      "start a",
      "listening a",
      "register (listening: true)",
      "deregister (listening: true)",
      "stop a",
      "closed a",
    ]);
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
      'app stop did not finish within 3000 ms: beforeStop hook: did not finish within stopTimeout; server "hung": did not close within stopTimeout; afterStop hook: did not finish within stopTimeout',
    );
    expect(hung.stopSignals[0]?.aborted).toBe(true);
    expect(a.state).toBe("stopped");
  });

  it("stopTimeout defaults to drainTimeout + 5 s", async () => {
    vi.useFakeTimers();
    const a = app({ drainTimeout: 1_000, beforeStop: () => new Promise<never>(() => undefined) });
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
