// Retry + circuit breaker over real HTTP: a flaky upstream (every other call fails) behind
// chain(breaker, retry) keeps the client's success rate high; an upstream that is down makes the
// breaker open, and then calls fail fast without reaching it; once it is back, a trial call closes it.
import { type CircuitState, createCircuitBreaker } from "@svckit/circuitbreaker";
import { Code, chain, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { retry } from "@svckit/retry";
import {
  createHttpClient,
  createHttpHandler,
  encodeJsonRequest,
  encodeJsonResponse,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterEach, describe, expect, it } from "vitest";
import { closeServers, listen } from "./support.js";

afterEach(closeServers);

type Mode = "up" | "flaky" | "down";

interface Upstream {
  mode: Mode;
  /** Requests that reached the upstream's endpoint. */
  served: number;
}

async function startUpstream(): Promise<{ upstream: Upstream; url: string }> {
  const upstream: Upstream = { mode: "up", served: 0 };
  const double: Endpoint<{ n: number }, { v: number }> = async (_ctx, { n }) => {
    upstream.served++;
    const fail = upstream.mode === "down" || (upstream.mode === "flaky" && upstream.served % 2 === 0);
    if (fail) throw new ServiceError(Code.UNAVAILABLE, "upstream overloaded");
    return { v: n * 2 };
  };
  const { origin } = await listen(createHttpHandler(double, jsonRequestDecoder(), encodeJsonResponse));
  return { upstream, url: `${origin}/double` };
}

describe("retry + circuit breaker over HTTP", () => {
  it("keeps success high while the upstream is flaky, fails fast while it is down, recovers after", async () => {
    const { upstream, url } = await startUpstream();
    const client = createHttpClient<{ n: number }, { v: number }>(
      url,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder(),
    );
    const breaker = createCircuitBreaker({
      name: "upstream",
      volumeThreshold: 10,
      errorThresholdPercentage: 50,
      rollingCountTimeout: 500,
      rollingCountBuckets: 5,
      resetTimeout: 300,
    });
    const states: CircuitState[] = [];
    breaker.subscribe((state) => states.push(state));
    const call = chain(
      breaker.middleware,
      retry({ maxAttempts: 3, backoff: { initial: 1, max: 5 } }),
    )(client);
    const run = async (n: number): Promise<{ ok: boolean; error?: ServiceError }> => {
      try {
        const res = await call(createContext({ timeout: 2_000 }), { n });
        expect(res).toEqual({ v: n * 2 });
        return { ok: true };
      } catch (err) {
        return { ok: false, error: err as ServiceError };
      }
    };

    // Flaky: half the upstream calls fail; one retry hides each failure.
    upstream.mode = "flaky";
    const flaky = [];
    for (let i = 0; i < 100; i++) flaky.push(await run(i));
    const flakyOk = flaky.filter((r) => r.ok).length;
    expect(flakyOk).toBe(100);
    expect(upstream.served).toBeGreaterThanOrEqual(150);
    expect(breaker.state).toBe("closed");

    // Let the flaky phase's successes leave the breaker's rolling window.
    await new Promise((resolve) => setTimeout(resolve, 600));

    // Down: the breaker opens after its volume threshold, then calls fail fast without reaching it.
    upstream.mode = "down";
    const servedBefore = upstream.served;
    const down = [];
    for (let i = 0; i < 50; i++) down.push(await run(i));
    expect(down.every((r) => !r.ok)).toBe(true);
    expect(breaker.state).toBe("open");
    const reachedUpstream = upstream.served - servedBefore;
    // Each call before the breaker opened made 3 attempts; none after.
    expect(reachedUpstream).toBeLessThanOrEqual(3 * 10);
    const fastFailures = down.filter((r) => r.error?.message === 'circuit breaker "upstream" is open');
    expect(fastFailures.length).toBeGreaterThanOrEqual(40);
    for (const r of fastFailures) expect(r.error?.code).toBe(Code.UNAVAILABLE);
    const servedWhileOpen = upstream.served;
    for (let i = 0; i < 20; i++) await run(i);
    expect(upstream.served).toBe(servedWhileOpen);

    // Back up: after resetTimeout, one trial call closes the breaker.
    upstream.mode = "up";
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await run(7)).toEqual({ ok: true });
    expect(breaker.state).toBe("closed");
    expect(states).toEqual(["open", "halfOpen", "closed"]);
    breaker.shutdown();
  });
});
