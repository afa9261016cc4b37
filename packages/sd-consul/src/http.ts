import { Code, httpStatusToCode, MAX_TIMER_MS, ServiceError } from "@svckit/endpoint";

/** How to reach a Consul agent's HTTP API; shared by the registrar and the instancer. */
export interface ConsulConnectionOptions {
  /** The agent's HTTP API, e.g. `"http://127.0.0.1:8500"` (the default) or `"https://consul.local:8501"`. */
  url?: string;
  /** An ACL token, sent as the `X-Consul-Token` header. Default: none (Consul's anonymous token). */
  token?: string;
  /** The `fetch` to call (tests, proxies, custom TLS agents). Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Deadline of each request, in ms (default 5000). A blocking query gets its wait time on top. */
  requestTimeout?: number;
}

/** A Consul duration: a number of milliseconds, or a Go duration string such as `"10s"`, `"1m30s"`, `"500ms"`. */
export type ConsulDuration = number | string;

const goDuration = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const units: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** Milliseconds in a {@link ConsulDuration}; throws a RangeError for anything else or a value ≤ 0. */
export function durationMs(where: string, name: string, value: ConsulDuration): number {
  let ms = Number.NaN;
  if (typeof value === "number") ms = value;
  else if (typeof value === "string" && goDuration.test(value)) {
    ms = 0;
    for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
      ms += Number(amount) * (units[unit ?? "ms"] ?? 1);
    }
  }
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new RangeError(
      `${where}: ${name} must be a number of ms > 0 or a duration such as "10s", got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
  return ms;
}

/** A {@link ConsulDuration} as Consul reads it: strings as given, numbers as whole milliseconds. */
export function durationString(where: string, name: string, value: ConsulDuration): string {
  const ms = durationMs(where, name, value);
  return typeof value === "string" ? value : `${Math.max(1, Math.round(ms))}ms`;
}

/** Throws a TypeError unless `value` is a non-empty string. */
export function nonEmpty(where: string, name: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(
      `${where}: ${name} must be a non-empty string, got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
  return value;
}

/** Throws a RangeError unless `value` is absent or a finite number > 0; returns it or `fallback`. */
export function positive(where: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${where}: ${name} must be a finite number > 0, got ${String(value)}`);
  }
  // Node fires a longer timer after 1 ms (a DNS interval would poll in a loop).
  if (value > MAX_TIMER_MS) {
    throw new RangeError(`${where}: ${name} must be at most ${MAX_TIMER_MS} ms (24.8 days), got ${value}`);
  }
  return value;
}

/** The message of a thrown value, with the cause of a `fetch failed` TypeError (ECONNREFUSED, ...). */
export function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error && cause.message !== "" && !error.message.includes(cause.message)) {
    return `${error.message} (${cause.message})`;
  }
  return error.message;
}

/** The code for an HTTP error status from Consul: 5xx is UNAVAILABLE (no leader, RPC errors), else the usual map. */
export function codeForStatus(status: number): Code {
  if (status >= 500 && status !== 501) return Code.UNAVAILABLE;
  const code = httpStatusToCode(status);
  return code === Code.OK ? Code.UNKNOWN : code;
}

/** A validated connection. */
export interface Connection {
  readonly url: string;
  readonly token: string | undefined;
  readonly fetch: typeof fetch;
  readonly timeout: number;
}

export function connection(where: string, options: ConsulConnectionOptions): Connection {
  const raw = options.url ?? "http://127.0.0.1:8500";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError(`${where}: url must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`${where}: url must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (options.token !== undefined && typeof options.token !== "string") {
    throw new TypeError(`${where}: token must be a string`);
  }
  const fetchFn = options.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== "function") throw new TypeError(`${where}: fetch must be a function`);
  return {
    url: url.href.replace(/\/+$/, ""),
    token: options.token === "" ? undefined : options.token,
    fetch: fetchFn,
    timeout: positive(where, "requestTimeout", options.requestTimeout, 5_000),
  };
}

/** What {@link call} returns for a 2xx answer. */
export interface Answer {
  readonly headers: Headers;
  readonly text: string;
}

/**
 * Sends one request to Consul and reads the whole answer. Throws a ServiceError whose message starts
 * with `what`: DEADLINE_EXCEEDED after `timeout` ms, CANCELLED when `signal` aborts, UNAVAILABLE when
 * the agent cannot be reached, and the status's code for a non-2xx answer (with Consul's error text).
 */
export async function call(
  conn: Connection,
  method: "GET" | "PUT",
  path: string,
  what: string,
  options: { body?: unknown; timeout?: number; signal?: AbortSignal } = {},
): Promise<Answer> {
  const controller = new AbortController();
  const timeout = options.timeout ?? conn.timeout;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeout);
  const outer = options.signal;
  const onAbort = (): void => controller.abort();
  outer?.addEventListener("abort", onAbort, { once: true });
  const headers: Record<string, string> = { accept: "application/json" };
  if (conn.token !== undefined) headers["x-consul-token"] = conn.token;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] = "application/json";
  }
  try {
    if (outer?.aborted) throw new ServiceError(Code.CANCELLED, `${what}: cancelled`);
    const response = await conn.fetch(`${conn.url}${path}`, {
      method,
      headers,
      body,
      signal: controller.signal,
    });
    const text = await response.text();
    if (!response.ok) {
      const detail = text.trim().slice(0, 200);
      throw new ServiceError(
        codeForStatus(response.status),
        `${what}: HTTP ${response.status}${detail === "" ? "" : `: ${detail}`}`,
      );
    }
    return { headers: response.headers, text };
  } catch (error) {
    if (error instanceof ServiceError) throw error;
    if (timedOut) {
      throw new ServiceError(Code.DEADLINE_EXCEEDED, `${what}: no answer within ${timeout} ms`, {
        cause: error,
      });
    }
    if (outer?.aborted) throw new ServiceError(Code.CANCELLED, `${what}: cancelled`, { cause: error });
    throw new ServiceError(Code.UNAVAILABLE, `${what}: ${messageOf(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
  }
}

/** The delay before retry number `attempt` (0-based): `min` ms doubling up to `max`, with half jitter. */
export function backoff(attempt: number, min: number, max: number): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function noop(): void {}
