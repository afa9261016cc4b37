import { Code, ServiceError } from "@svckit/endpoint";
import { createHealth, type HealthCheck } from "@svckit/health";
import { afterEach, describe, expect, it, vi } from "vitest";

afterEach(() => {
  vi.useRealTimers();
});

const passing: HealthCheck = () => undefined;

describe("createHealth: checks and aggregation", () => {
  it("no checks: passing; readiness also says it is serving", async () => {
    const health = createHealth();
    expect(await health.liveness()).toEqual({ status: "passing", checks: {} });
    expect(await health.readiness()).toEqual({ status: "passing", serving: true, checks: {} });
  });

  it("a check returning nothing passes; one returning a status reports it with its message", async () => {
    const health = createHealth({
      readiness: {
        db: async () => undefined,
        cache: () => ({ status: "warning", message: "cache is cold" }),
        quiet: () => ({ status: "passing" }),
      },
    });
    const report = await health.readiness();
    expect(report.status).toBe("warning");
    expect(report.checks).toEqual({
      db: { status: "passing", durationMs: expect.any(Number) },
      cache: { status: "warning", message: "cache is cold", durationMs: expect.any(Number) },
      quiet: { status: "passing", durationMs: expect.any(Number) },
    });
  });

  it.each([
    [["passing", "passing"], "passing"],
    [["passing", "warning"], "warning"],
    [["warning", "critical"], "critical"],
    [["critical", "passing", "warning"], "critical"],
  ] as const)("statuses %j aggregate to %s", async (statuses, expected) => {
    const health = createHealth();
    statuses.forEach((status, i) => {
      health.addLiveness(`c${i}`, () => ({ status }));
    });
    expect((await health.liveness()).status).toBe(expected);
  });

  it("a check that throws or rejects is critical with only the error's message", async () => {
    const secret = new Error("connect ECONNREFUSED 10.0.0.5:5432");
    (secret as Error & { password?: string }).password = "hunter2";
    const health = createHealth({
      liveness: {
        sync: () => {
          throw secret;
        },
        async: () => Promise.reject(new ServiceError(Code.UNAVAILABLE, "queue down")),
        odd: () => Promise.reject("a string"),
        empty: () => Promise.reject(new Error("")),
      },
    });
    const report = await health.liveness();
    expect(report.status).toBe("critical");
    expect(report.checks).toEqual({
      sync: {
        status: "critical",
        message: "connect ECONNREFUSED 10.0.0.5:5432",
        durationMs: expect.any(Number),
      },
      async: { status: "critical", message: "queue down", durationMs: expect.any(Number) },
      odd: { status: "critical", message: "check failed", durationMs: expect.any(Number) },
      empty: { status: "critical", message: "check failed", durationMs: expect.any(Number) },
    });
    expect(JSON.stringify(report)).not.toContain("hunter2");
    expect(JSON.stringify(report)).not.toContain("at ");
  });

  it("a check returning something else is critical with a message saying what was wrong", async () => {
    const health = createHealth({
      liveness: {
        bogus: (() => ({ status: "ok" })) as unknown as HealthCheck,
        missing: (() => ({ message: "hi" })) as unknown as HealthCheck,
        boolean: (() => true) as unknown as HealthCheck,
        nullish: (() => null) as unknown as HealthCheck,
        nullStatus: (() => ({ status: null })) as unknown as HealthCheck,
      },
    });
    const { checks } = await health.liveness();
    expect(checks.bogus?.message).toBe(
      'check returned an invalid status "ok": expected passing, warning or critical',
    );
    expect(checks.missing?.message).toBe(
      "check returned an invalid status undefined: expected passing, warning or critical",
    );
    expect(checks.boolean?.message).toBe("check returned boolean: expected nothing or { status, message }");
    expect(checks.nullish?.message).toBe("check returned null: expected nothing or { status, message }");
    expect(checks.nullStatus?.message).toBe(
      "check returned an invalid status null: expected passing, warning or critical",
    );
    for (const check of Object.values(checks)) expect(check.status).toBe("critical");
  });

  it("long messages are cut to 256 characters", async () => {
    const health = createHealth({
      liveness: { long: () => ({ status: "warning", message: "x".repeat(1_000) }) },
    });
    const message = (await health.liveness()).checks.long?.message ?? "";
    expect(message).toHaveLength(256);
    expect(message.endsWith("…")).toBe(true);
  });

  it("liveness and readiness checks are separate", async () => {
    const health = createHealth()
      .addLiveness("loop", passing)
      .addReadiness("db", () => ({ status: "critical", message: "down" }));
    expect(await health.liveness()).toMatchObject({
      status: "passing",
      checks: { loop: { status: "passing" } },
    });
    expect(await health.readiness()).toMatchObject({
      status: "critical",
      checks: { db: { message: "down" } },
    });
  });

  it("concurrent callers share one run of the checks; the next call runs them again", async () => {
    const check = vi.fn(async () => undefined);
    const health = createHealth({ readiness: { db: check } });
    const [a, b, c] = await Promise.all([health.readiness(), health.readiness(), health.readiness()]);
    expect(check).toHaveBeenCalledTimes(1);
    expect(a).toBe(b);
    expect(b).toBe(c);
    await health.readiness();
    expect(check).toHaveBeenCalledTimes(2);
  });
});

describe("createHealth: timeouts (fake timers)", () => {
  it("a check past its own timeout is critical, and its signal aborts", async () => {
    vi.useFakeTimers();
    let seen: AbortSignal | undefined;
    const health = createHealth({ timeout: 5_000 }).addReadiness(
      "slow",
      (signal) => {
        seen = signal;
        return new Promise<never>(() => undefined);
      },
      { timeout: 300 },
    );
    const report = health.readiness();
    await vi.advanceTimersByTimeAsync(299);
    expect(seen?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await report).toEqual({
      status: "critical",
      serving: true,
      checks: { slow: { status: "critical", message: "check timed out after 300 ms", durationMs: 300 } },
    });
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
      message: "check timed out after 300 ms",
    });
  });

  it("checks run concurrently, each with its timeout; the default timeout is 1000 ms", async () => {
    vi.useFakeTimers();
    const health = createHealth({
      liveness: {
        hangs: () => new Promise<never>(() => undefined),
        quick: () => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 200)),
        custom: { check: () => new Promise<never>(() => undefined), timeout: 500 },
      },
    });
    const report = health.liveness();
    await vi.advanceTimersByTimeAsync(1_000);
    expect((await report).checks).toEqual({
      hangs: { status: "critical", message: "check timed out after 1000 ms", durationMs: 1_000 },
      quick: { status: "passing", durationMs: 200 },
      custom: { status: "critical", message: "check timed out after 500 ms", durationMs: 500 },
    });
  });

  it("a check that answers in time is not aborted afterwards", async () => {
    vi.useFakeTimers();
    let seen: AbortSignal | undefined;
    const health = createHealth({
      liveness: {
        ok: (signal) => {
          seen = signal;
        },
      },
    });
    await health.liveness();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(seen?.aborted).toBe(false);
  });
});

describe("createHealth: serving", () => {
  it("readiness is critical without running checks while not serving; liveness is unaffected", async () => {
    const check = vi.fn(() => undefined);
    const health = createHealth({ readiness: { db: check }, liveness: { loop: check } });
    expect(health.serving).toBe(true);
    health.setServing(false);
    expect(health.serving).toBe(false);
    expect(await health.readiness()).toEqual({ status: "critical", serving: false, checks: {} });
    expect(check).not.toHaveBeenCalled();
    expect((await health.liveness()).status).toBe("passing");
    health.setServing(true);
    expect(await health.readiness()).toMatchObject({ status: "passing", serving: true });
  });

  it("can start not serving", async () => {
    const health = createHealth({ serving: false });
    expect((await health.readiness()).status).toBe("critical");
  });

  it("tells listeners of each change, once; a throwing listener does not stop the others", () => {
    const health = createHealth();
    const seen: boolean[] = [];
    health.onChange(() => {
      throw new Error("listener bug");
    });
    const off = health.onChange((serving) => seen.push(serving));
    health.setServing(true); // no change
    health.setServing(false);
    health.setServing(false);
    health.setServing(true);
    off();
    health.setServing(false);
    expect(seen).toEqual([false, true]);
  });

  it("shutdown is final: not serving, listeners told, serving again is FAILED_PRECONDITION", () => {
    const health = createHealth();
    const seen: boolean[] = [];
    health.onChange((serving) => seen.push(serving));
    health.shutdown();
    health.shutdown();
    expect([health.serving, health.shuttingDown]).toEqual([false, true]);
    expect(seen).toEqual([false]);
    expect(() => health.setServing(true)).toThrow("health has shut down: it cannot serve again");
    health.setServing(false);
    expect(seen).toEqual([false]);
  });
});

describe("createHealth: bad setup is refused", () => {
  function thrown(fn: () => unknown): ServiceError {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(ServiceError);
      return err as ServiceError;
    }
    throw new Error("did not throw");
  }

  it("a duplicate name is ALREADY_EXISTS", () => {
    const health = createHealth({ readiness: { db: passing } });
    expect(thrown(() => health.addReadiness("db", passing))).toMatchObject({
      code: Code.ALREADY_EXISTS,
      message: 'a check named "db" already exists',
    });
    // The same name may be used once for liveness and once for readiness.
    expect(() => health.addLiveness("db", passing)).not.toThrow();
  });

  it.each([
    [
      () => createHealth({ timeout: 0 }),
      "invalid timeout 0 for the health: expected a number of milliseconds > 0, at most 2147483647",
    ],
    [
      () => createHealth().addLiveness("x", passing, { timeout: Number.NaN }),
      'invalid timeout NaN for check "x": expected a number of milliseconds > 0, at most 2147483647',
    ],
    // Node fires a longer timer after 1 ms: every check would time out at once.
    [
      () => createHealth({ timeout: 2 ** 31 }),
      "invalid timeout 2147483648 for the health: expected a number of milliseconds > 0, at most 2147483647",
    ],
    [() => createHealth().addLiveness("", passing), "a check needs a non-empty name"],
    [
      () => createHealth({ liveness: { x: "nope" as unknown as HealthCheck } }),
      'check "x" is not a function: expected (signal) => result',
    ],
    [
      () => createHealth({ readiness: { x: { timeout: 5 } as unknown as HealthCheck } }),
      'check "x" is not a function: expected (signal) => result',
    ],
  ])("INVALID_ARGUMENT: %#", (fn, message) => {
    expect(thrown(fn)).toMatchObject({ code: Code.INVALID_ARGUMENT, message });
  });
});
