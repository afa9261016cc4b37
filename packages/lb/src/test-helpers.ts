// Test-only helpers for the balancer tests: a seeded rng, a fake clock, and a small cluster of
// instances behind a real endpointer whose endpoints the test can steer.
import type { Context } from "@svckit/endpoint";
import {
  createEndpointer,
  createInstanceCache,
  type Endpointer,
  type InstanceCache,
  type InstanceInit,
} from "@svckit/sd";
import { weighted } from "./weighted.js";

/** A seeded pseudo-random generator (mulberry32), for reproducible distributions. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An rng that returns the given values in turn, then repeats the last one. */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)] as number;
}

/** A clock the test moves by hand. */
export function fakeClock(start = 0): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

export type Behaviour = (ctx: Context, request: string) => Promise<string> | string;

export interface Cluster {
  cache: InstanceCache;
  endpointer: Endpointer<string, string>;
  /** The address of every call, in order. */
  calls: string[];
  /** Sets what the instance at `address` does (default: answers with its address). */
  behave(address: string, behaviour: Behaviour): void;
}

/** Instances behind a real cache and endpointer; each endpoint answers with its address unless told otherwise. */
export function cluster(instances: Iterable<InstanceInit>): Cluster {
  const cache = createInstanceCache(instances);
  const calls: string[] = [];
  const behaviours = new Map<string, Behaviour>();
  const endpointer = createEndpointer<string, string>(cache, (instance) => ({
    endpoint: async (ctx, request) => {
      calls.push(instance.address);
      const behaviour = behaviours.get(instance.address);
      return behaviour === undefined ? instance.address : behaviour(ctx, request);
    },
  }));
  return {
    cache,
    endpointer,
    calls,
    behave: (address, behaviour) => {
      behaviours.set(address, behaviour);
    },
  };
}

/** Counts how often each value occurs. */
export function tally(values: Iterable<string | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[String(v)] = (out[String(v)] ?? 0) + 1;
  return out;
}

/** A promise with its resolve and reject. */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve: (v: T) => void = () => undefined;
  let reject: (e: unknown) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Runs `weighted` over instances `s0..` (always there, weights `stay`) and `f0..` (weights `flap`, there
 * at step t when `steps[t][i]`), one pick per step, and returns the largest |picks − share| seen for any
 * instance, its share summed over the steps it was there (weight / total weight of that step's set).
 */
export function worstLag(
  stay: readonly number[],
  flap: readonly number[],
  steps: readonly (readonly boolean[])[],
): number {
  const stayers = stay.map((weight, i) => ({ address: `s${i}`, weight }));
  const flappers = flap.map((weight, i) => ({ address: `f${i}`, weight }));
  const { cache, endpointer } = cluster(stayers);
  const balancer = weighted(endpointer);
  const picked = new Map<string, number>();
  const share = new Map<string, number>();
  let worst = 0;
  for (const present of steps) {
    const set = [...stayers, ...flappers.filter((_, i) => present[i])];
    cache.update(set);
    const total = set.reduce((sum, x) => sum + x.weight, 0);
    for (const x of set) share.set(x.address, (share.get(x.address) ?? 0) + x.weight / total);
    const a = balancer.pick()?.instance.address ?? "";
    picked.set(a, (picked.get(a) ?? 0) + 1);
    for (const [k, v] of share) worst = Math.max(worst, Math.abs((picked.get(k) ?? 0) - v));
  }
  return worst;
}
