// Shared by the tests of this package only: excluded from the build (see tsconfig.json), never exported.
import { ServiceError } from "@svckit/endpoint";

/** Epoch ms the fake clocks start at. */
export const T0 = Date.UTC(2030, 0, 1);

/** The rejection of `promise`; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/** The rejection of `promise` as a ServiceError; fails the test otherwise. */
export async function serviceRejection(promise: Promise<unknown>): Promise<ServiceError> {
  const err = await rejection(promise);
  if (!(err instanceof ServiceError)) throw new Error(`expected a ServiceError, got ${String(err)}`);
  return err;
}

/** Settles every call at once, like Promise.allSettled, as `"ok"` or the error's code name. */
export async function outcomes(calls: Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(calls);
  return settled.map((r) =>
    r.status === "fulfilled" ? "ok" : r.reason instanceof ServiceError ? r.reason.codeName : String(r.reason),
  );
}

/** An endpoint whose calls stay open until the test ends them, one by one or all. */
export function gate<T = string>(): {
  endpoint: (ctx: unknown, request: T) => Promise<T>;
  readonly started: T[];
  finish(index?: number): void;
  fail(error: unknown, index?: number): void;
} {
  const pending: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  const started: T[] = [];
  return {
    started,
    endpoint: (_ctx, request) =>
      new Promise<T>((resolve, reject) => {
        started.push(request);
        pending.push({ resolve: () => resolve(request), reject });
      }),
    finish(index = 0) {
      const [p] = pending.splice(index, 1);
      p?.resolve();
    },
    fail(error, index = 0) {
      const [p] = pending.splice(index, 1);
      p?.reject(error);
    },
  };
}
