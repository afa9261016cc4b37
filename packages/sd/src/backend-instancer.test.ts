import { BackendInstancer, type InstanceInit, type InstancerState } from "@svckit/sd";
import { describe, expect, it, vi } from "vitest";

/** A backend whose lookups the test answers by hand. */
class ManualInstancer extends BackendInstancer {
  stops = 0;
  constructor(onError?: (error: Error) => void) {
    super(onError);
  }
  answer(instances: InstanceInit[]): void {
    this.cache.update(instances);
    this.settle();
  }
  failure(error: unknown): void {
    this.cache.fail(error);
    this.settle();
  }
  skip(error: unknown): void {
    this.tell(error);
  }
  protected stop(): void {
    this.stops++;
  }
}

const settled = async (p: Promise<InstancerState>): Promise<boolean> => {
  let done = false;
  void p.then(() => {
    done = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe("BackendInstancer", () => {
  it("is ready once the first lookup answered, with that state; later settles change nothing", async () => {
    const instancer = new ManualInstancer();
    expect(await settled(instancer.ready())).toBe(false);
    instancer.answer(["10.0.0.1:80"]);
    const first = await instancer.ready();
    expect(first.instances.map((i) => i.address)).toEqual(["10.0.0.1:80"]);
    instancer.answer(["10.0.0.2:80"]);
    expect(await instancer.ready()).toBe(first);
    expect(instancer.current().instances.map((i) => i.address)).toEqual(["10.0.0.2:80"]);
    instancer.close();
  });

  it("is ready after a failed first lookup too, with the error", async () => {
    const instancer = new ManualInstancer();
    instancer.failure(new Error("backend down"));
    const state = await instancer.ready();
    expect(state.instances).toEqual([]);
    expect(state.error?.message).toBe("backend down");
    instancer.close();
  });

  it("close() calls stop() once, settles ready() and drops listeners", async () => {
    const instancer = new ManualInstancer();
    const listener = vi.fn();
    instancer.subscribe(listener);
    expect(listener).toHaveBeenCalledTimes(1);
    instancer.close();
    instancer.close();
    expect(instancer.stops).toBe(1);
    expect(await settled(instancer.ready())).toBe(true);
    instancer.answer(["10.0.0.1:80"]);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(instancer.current().instances).toEqual([]);
  });

  it("sends invalid instances, listener errors and told errors to onError, never throwing", () => {
    const errors: Error[] = [];
    const instancer = new ManualInstancer((error) => errors.push(error));
    instancer.subscribe((state) => {
      if (state.instances.length > 0) throw new Error("listener broke");
    });
    expect(() => instancer.answer([{ address: "10.0.0.9:80", weight: -1 }])).not.toThrow();
    expect(() => instancer.answer(["10.0.0.1:80"])).not.toThrow();
    instancer.skip("a malformed entry");
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringContaining("InstanceCache.update"),
      "listener broke",
      "a malformed entry",
    ]);
    expect(errors.every((e) => e instanceof Error)).toBe(true);
    instancer.close();
  });

  it("ignores an onError that throws, and works without one", () => {
    const throwing = new ManualInstancer(() => {
      throw new Error("onError broke");
    });
    expect(() => throwing.skip(new Error("x"))).not.toThrow();
    throwing.close();
    const silent = new ManualInstancer();
    expect(() => silent.skip(new Error("x"))).not.toThrow();
    silent.close();
  });
});
