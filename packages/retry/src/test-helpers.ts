// Shared by the tests of this package only: excluded from the build (see tsconfig.json), never exported.
import type { Context, Endpoint } from "@svckit/endpoint";

/** One call an endpoint made by {@link controlled} received, which the test settles by hand. */
export interface Call<Req, Res> {
  readonly ctx: Context;
  readonly request: Req;
  resolve(value: Res): void;
  reject(reason: unknown): void;
}

/** An endpoint whose calls stay pending until the test settles them; it ignores its signal. */
export function controlled<Req = string, Res = string>(): {
  endpoint: Endpoint<Req, Res>;
  calls: Call<Req, Res>[];
} {
  const calls: Call<Req, Res>[] = [];
  const endpoint: Endpoint<Req, Res> = (ctx, request) =>
    new Promise<Res>((resolve, reject) => {
      calls.push({ ctx, request, resolve, reject });
    });
  return { endpoint, calls };
}

/** Awaits a promise that must reject and returns what it rejected with. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/** Tracks whether a promise has settled, without awaiting it. */
export function track<T>(promise: Promise<T>): { readonly settled: boolean; readonly promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

/** A random source that returns the given values in turn (the last one forever after). */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)] as number;
}
