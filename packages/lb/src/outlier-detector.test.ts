import { type CallOutcome, createOutlierDetector, type OutlierDetectionOptions } from "@svckit/lb";
import type { EndpointEntry, Instance } from "@svckit/sd";
import { describe, expect, it, vi } from "vitest";
import { cluster, fakeClock } from "./test-helpers.js";

type Entry = EndpointEntry<string, string>;

function setup(addresses: string[], options?: OutlierDetectionOptions) {
  const clock = fakeClock(1_000);
  const c = cluster(addresses);
  const detector = createOutlierDetector(c.endpointer, { now: clock.now, ...options });
  const entry = (address: string): Entry => {
    const found = c.endpointer.endpoints().find((e) => e.instance.address === address);
    if (found === undefined) throw new Error(`no entry ${address}`);
    return found;
  };
  const admitted = (): string[] => detector.endpoints().map((e) => e.instance.address);
  const fail = (address: string, times: number, outcome: CallOutcome = "failure"): void => {
    for (let i = 0; i < times; i++) detector.record(entry(address), outcome);
  };
  return { clock, c, detector, entry, admitted, fail };
}

describe("createOutlierDetector", () => {
  it("admits everything at first, as the source's own array", () => {
    const { c, detector } = setup(["a", "b"]);
    expect(detector.endpoints()).toBe(c.endpointer.endpoints());
    expect(detector.ejected()).toEqual([]);
  });

  it("ejects an instance after consecutiveFailures server failures in a row, and readmits it after baseEjectionTime", () => {
    const { clock, detector, admitted, fail } = setup(["a", "b", "c"], {
      consecutiveFailures: 3,
      baseEjectionTime: 10_000,
    });
    fail("a", 2);
    expect(admitted()).toEqual(["a", "b", "c"]);
    fail("a", 1);
    expect(admitted()).toEqual(["b", "c"]);
    expect(detector.ejected()).toEqual([{ address: "a" }]);
    clock.advance(9_999);
    expect(admitted()).toEqual(["b", "c"]);
    clock.advance(1);
    expect(admitted()).toEqual(["a", "b", "c"]);
    expect(detector.ejected()).toEqual([]);
  });

  it("uses 5 failures and 30 s by default", () => {
    const { clock, admitted, fail } = setup(["a", "b"]);
    fail("a", 4);
    expect(admitted()).toEqual(["a", "b"]);
    fail("a", 1);
    expect(admitted()).toEqual(["b"]);
    clock.advance(29_999);
    expect(admitted()).toEqual(["b"]);
    clock.advance(1);
    expect(admitted()).toEqual(["a", "b"]);
  });

  it("doubles each further ejection up to maxEjectionTime", () => {
    const onEject = vi.fn<(instance: Instance, duration: number) => void>();
    const { clock, admitted, fail } = setup(["a", "b"], {
      consecutiveFailures: 1,
      baseEjectionTime: 1_000,
      maxEjectionTime: 5_000,
      onEject,
    });
    const durations: number[] = [];
    for (let i = 0; i < 5; i++) {
      fail("a", 1);
      expect(admitted()).toEqual(["b"]);
      const duration = onEject.mock.calls.at(-1)?.[1] as number;
      durations.push(duration);
      clock.advance(duration - 1);
      expect(admitted()).toEqual(["b"]);
      clock.advance(1);
      expect(admitted()).toEqual(["a", "b"]);
    }
    expect(durations).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
    expect(onEject).toHaveBeenCalledWith({ address: "a" }, 1_000);
  });

  it("steps the ejection length back for each baseEjectionTime an instance stays admitted", () => {
    const onEject = vi.fn<(instance: Instance, duration: number) => void>();
    const { clock, fail } = setup(["a", "b"], { consecutiveFailures: 1, baseEjectionTime: 1_000, onEject });
    fail("a", 1); // 1 000
    clock.advance(1_000);
    fail("a", 1); // readmitted just now: 2 000
    clock.advance(2_000);
    clock.advance(1_000); // admitted for one base time: one step back
    fail("a", 1); // 2 000 again, not 4 000
    clock.advance(2_000);
    clock.advance(10_000); // long healthy: back to the start
    fail("a", 1);
    expect(onEject.mock.calls.map(([, d]) => d)).toEqual([1_000, 2_000, 2_000, 1_000]);
  });

  it("resets the count on a success (including a client error) and ignores cancelled calls", () => {
    const { admitted, fail } = setup(["a", "b"], { consecutiveFailures: 3 });
    fail("a", 2);
    fail("a", 1, "success");
    fail("a", 2);
    expect(admitted()).toEqual(["a", "b"]);
    fail("a", 5, "cancelled");
    expect(admitted()).toEqual(["a", "b"]);
    fail("a", 1);
    expect(admitted()).toEqual(["b"]);
  });

  it("never ejects the last admitted instance by default", () => {
    const { admitted, fail, detector } = setup(["a", "b"], { consecutiveFailures: 1 });
    fail("a", 1);
    fail("b", 10);
    expect(admitted()).toEqual(["b"]);
    expect(detector.ejected()).toEqual([{ address: "a" }]);
    const single = setup(["only"], { consecutiveFailures: 1 });
    single.fail("only", 10);
    expect(single.admitted()).toEqual(["only"]);
  });

  it("ejects the last one too with ejectLast", () => {
    const { admitted, fail, detector } = setup(["a", "b"], { consecutiveFailures: 1, ejectLast: true });
    fail("a", 1);
    fail("b", 1);
    expect(admitted()).toEqual([]);
    expect(detector.ejected().map((i) => i.address)).toEqual(["a", "b"]);
  });

  it("ejects at most maxEjectionPercent of the set at once, rounded down", () => {
    const { admitted, fail } = setup(["a", "b", "c", "d", "e"], {
      consecutiveFailures: 1,
      maxEjectionPercent: 50,
    });
    for (const x of ["a", "b", "c", "d"]) fail(x, 1);
    expect(admitted()).toEqual(["c", "d", "e"]);
    const none = setup(["a", "b", "c", "d", "e"], { consecutiveFailures: 1, maxEjectionPercent: 10 });
    none.fail("a", 3);
    expect(none.admitted()).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("tries to eject again on the next failure once room is made", () => {
    const { clock, admitted, fail } = setup(["a", "b"], { consecutiveFailures: 2, baseEjectionTime: 1_000 });
    fail("a", 2);
    fail("b", 3); // b cannot be ejected while a is out
    expect(admitted()).toEqual(["b"]);
    clock.advance(1_000);
    expect(admitted()).toEqual(["a", "b"]);
    fail("b", 1);
    expect(admitted()).toEqual(["a"]);
  });

  it("ignores what calls in flight on an ejected instance report", () => {
    const { admitted, fail, clock } = setup(["a", "b"], { consecutiveFailures: 2, baseEjectionTime: 1_000 });
    fail("a", 2);
    fail("a", 1, "success");
    expect(admitted()).toEqual(["b"]);
    clock.advance(1_000);
    fail("a", 1); // the count restarted at readmission: one failure is not enough
    expect(admitted()).toEqual(["a", "b"]);
  });

  it("follows the source: drops removed instances, starts re-added ones afresh", () => {
    const { c, admitted, fail, detector } = setup(["a", "b", "c"], { consecutiveFailures: 2 });
    fail("a", 2);
    fail("b", 1);
    expect(admitted()).toEqual(["b", "c"]);
    c.cache.update(["b", "c"]);
    expect(detector.ejected()).toEqual([]);
    c.cache.update(["a", "b", "c", "d"]);
    expect(admitted()).toEqual(["a", "b", "c", "d"]);
    fail("b", 1); // b's earlier failure still counts: it stayed
    expect(admitted()).toEqual(["a", "c", "d"]);
  });

  it("readmits ejected instances when discovery drops the healthy ones, so something is left to call", () => {
    const onReadmit = vi.fn();
    const { c, admitted, fail, detector } = setup(["a", "b", "c"], { consecutiveFailures: 1, onReadmit });
    fail("a", 1);
    expect(admitted()).toEqual(["b", "c"]);
    // Scale-down: only the ejected instance is left.
    c.cache.update(["a"]);
    expect(admitted()).toEqual(["a"]);
    expect(detector.ejected()).toEqual([]);
    expect(onReadmit).toHaveBeenCalledOnce();
  });

  it("after discovery shrinks, readmits the soonest-ending ejections until maxEjectionPercent holds", () => {
    const { c, clock, admitted, fail, detector } = setup(["a", "b", "c", "d"], {
      consecutiveFailures: 1,
      maxEjectionPercent: 50,
    });
    fail("a", 1);
    clock.advance(1);
    fail("b", 1); // ends 1 ms after a's
    expect(admitted()).toEqual(["c", "d"]);
    c.cache.update(["a", "b", "c"]); // 50% of 3 allows 1 ejected
    expect(detector.ejected().map((i) => i.address)).toEqual(["b"]);
    expect(admitted()).toEqual(["a", "c"]);
  });

  it("keeps the admitted array's identity until something changes", () => {
    const { detector, fail } = setup(["a", "b", "c"], { consecutiveFailures: 1 });
    fail("a", 1);
    const first = detector.endpoints();
    expect(detector.endpoints()).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it("calls onReadmit when an ejection ends", () => {
    const onReadmit = vi.fn();
    const { clock, admitted, fail } = setup(["a", "b"], {
      consecutiveFailures: 1,
      baseEjectionTime: 100,
      onReadmit,
    });
    fail("a", 1);
    clock.advance(100);
    expect(onReadmit).not.toHaveBeenCalled(); // readmission happens on the next look
    admitted();
    expect(onReadmit).toHaveBeenCalledExactlyOnceWith({ address: "a" });
  });

  it("ignores records for entries it does not know", () => {
    const { detector, admitted } = setup(["a", "b"], { consecutiveFailures: 1 });
    const stranger = cluster(["z"]).endpointer.endpoints()[0] as Entry;
    detector.record(stranger, "failure");
    expect(admitted()).toEqual(["a", "b"]);
  });

  describe("hooks that throw (regression)", () => {
    const hookError = new Error("metrics backend down");

    it("ignores what onEject throws: the ejection stands and record() returns", () => {
      const onEject = vi.fn(() => {
        throw hookError;
      });
      const { detector, admitted, fail } = setup(["a", "b"], { consecutiveFailures: 2, onEject });
      fail("a", 1);
      expect(() => fail("a", 1)).not.toThrow();
      expect(onEject).toHaveBeenCalledExactlyOnceWith({ address: "a" }, 30_000);
      expect(admitted()).toEqual(["b"]);
      expect(detector.ejected()).toEqual([{ address: "a" }]);
    });

    it("ignores what onReadmit throws: every instance due is readmitted and told", () => {
      const onReadmit = vi.fn(() => {
        throw hookError;
      });
      const { clock, detector, admitted, fail } = setup(["a", "b", "c"], {
        consecutiveFailures: 1,
        baseEjectionTime: 1_000,
        onReadmit,
      });
      fail("a", 1);
      fail("b", 1);
      expect(admitted()).toEqual(["c"]);
      clock.advance(1_000);
      expect(() => detector.endpoints()).not.toThrow();
      expect(onReadmit.mock.calls).toEqual([[{ address: "a" }], [{ address: "b" }]]);
      expect(admitted()).toEqual(["a", "b", "c"]);
      expect(detector.ejected()).toEqual([]);
    });
  });

  it("passes the source's error through", () => {
    const { c, detector } = setup(["a"]);
    expect(detector.error).toBeUndefined();
    c.cache.fail(new Error("dns down"));
    expect(detector.error?.message).toBe("dns down");
  });

  it.each([
    [{ consecutiveFailures: 0 }, "outlier detection: consecutiveFailures must be an integer >= 1, got 0"],
    [{ consecutiveFailures: 1.5 }, "outlier detection: consecutiveFailures must be an integer >= 1, got 1.5"],
    [{ baseEjectionTime: 0 }, "outlier detection: baseEjectionTime must be a finite number > 0, got 0"],
    [{ maxEjectionTime: -1 }, "outlier detection: maxEjectionTime must be a finite number > 0, got -1"],
    [
      { baseEjectionTime: 10, maxEjectionTime: 5 },
      "outlier detection: maxEjectionTime (5) must not be less than baseEjectionTime (10)",
    ],
    [{ maxEjectionPercent: 101 }, "outlier detection: maxEjectionPercent must be between 0 and 100, got 101"],
    [{ maxEjectionPercent: -1 }, "outlier detection: maxEjectionPercent must be between 0 and 100, got -1"],
  ])("rejects %o", (options, message) => {
    expect(() => createOutlierDetector(cluster([]).endpointer, options)).toThrow(new RangeError(message));
  });

  it("rejects a clock that is not a function", () => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid option
    expect(() => createOutlierDetector(cluster([]).endpointer, { now: 0 as any })).toThrow(
      new TypeError("outlier detection: now must be a function, got number"),
    );
  });

  it("accepts a baseEjectionTime above the default maximum without a maxEjectionTime", () => {
    const onEject = vi.fn();
    const { fail } = setup(["a", "b"], { consecutiveFailures: 1, baseEjectionTime: 600_000, onEject });
    fail("a", 1);
    expect(onEject).toHaveBeenCalledWith({ address: "a" }, 600_000);
  });
});
