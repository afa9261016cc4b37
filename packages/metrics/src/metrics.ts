import type { IncomingMessage, ServerResponse } from "node:http";
import {
  Code,
  type Context,
  callInfoKey,
  codeNames,
  type Endpoint,
  type GenericMiddleware,
  ServiceError,
} from "@svckit/endpoint";
import {
  Counter,
  Gauge,
  Histogram,
  type OpenMetricsContentType,
  type PrometheusContentType,
  Registry,
} from "prom-client";

/** A prom-client registry of either exposition format. */
export type MetricsRegistry = Registry<PrometheusContentType> | Registry<OpenMetricsContentType>;

/** Which side of a call a middleware wraps: a served endpoint or a client endpoint. */
export type CallKind = "server" | "client";

/** The states of a circuit breaker, as `@svckit/circuitbreaker` names them. */
export type BreakerState = "closed" | "open" | "halfOpen";

/**
 * What {@link Metrics.observeBreaker} needs of a circuit breaker. `@svckit/circuitbreaker`'s breakers
 * fit as they are; so does anything else with these three members.
 */
export interface ObservableBreaker {
  /** The breaker's name: a label value, so a fixed name from your code. */
  readonly name: string;
  /** The current state. */
  readonly state: BreakerState;
  /** Calls `listener` on every state change until the returned function is called. */
  subscribe(listener: (state: BreakerState, previous: BreakerState) => void): () => void;
}

/**
 * What a rate limiter tells {@link Metrics.recordRateLimitRejection} when it refuses a call:
 * `{ limiter }`, or `{ name }` as `@svckit/ratelimit`'s `onReject` passes it.
 */
export interface RateLimitRejection {
  /** The limiter's name: a label value, so a fixed name from your code. */
  readonly limiter?: string;
  /** The limiter's name, when `limiter` is not given (the shape of `@svckit/ratelimit`'s `onReject`). */
  readonly name?: string;
  /** The key that was limited (a user, an IP). Accepted but never a label: it is unbounded. */
  readonly key?: string;
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /**
   * Where the metrics are registered (default: a new `Registry`, so nothing is global). Pass
   * prom-client's `register` to share the global one with `collectDefaultMetrics()` and other libraries.
   */
  registry?: MetricsRegistry;
  /** Prepended to every metric name (default `"svckit_"`). */
  prefix?: string;
  /** Upper bounds of the duration histogram's buckets, in seconds (default {@link defaultBuckets}). */
  buckets?: readonly number[];
}

/** Options of {@link Metrics.middleware}. */
export interface MetricsMiddlewareOptions {
  /** The `endpoint` label: the endpoint's name as written in your code (e.g. `"sum"`). */
  name: string;
  /** The `kind` label: `"server"` (default) for served endpoints, `"client"` for client endpoints. */
  kind?: CallKind;
  /**
   * The `transport` label. On a server endpoint it defaults to the transport's `CallInfo` of each
   * call; on a client endpoint only this option tells it (the context there is the caller's). When
   * neither says, it is `"none"`.
   */
  transport?: string;
}

/** Request metrics, a `/metrics` handler and the hooks for breakers and limiters; see {@link createMetrics}. */
export interface Metrics {
  /** The registry the metrics live in. */
  readonly registry: MetricsRegistry;
  /**
   * A middleware counting calls, timing them and tracking those in flight, labelled with
   * `endpoint`, `kind`, `transport` and (except in flight) `code`, the code name.
   */
  middleware(options: MetricsMiddlewareOptions): GenericMiddleware;
  /**
   * Answers GET and HEAD with the registry's metrics in its content type; any other method gets 405.
   * A `node:http` request listener, a `createRouter` handler and an express handler alike.
   */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * Exports a breaker's state as `circuit_breaker_state{breaker}` (0 closed, 1 half-open, 2 open)
   * and counts its changes in `circuit_breaker_transitions_total{breaker, from, to}`. Returns a
   * function that stops observing and drops the state series. Throws if a breaker of that name is
   * observed already.
   */
  observeBreaker(breaker: ObservableBreaker): () => void;
  /**
   * Counts one refused call in `ratelimit_rejections_total{limiter}`. A bound function: pass it to a
   * limiter as its rejection callback. Never throws.
   */
  readonly recordRateLimitRejection: (event: RateLimitRejection) => void;
}

/** The default duration buckets, in seconds: 1 ms to 10 s. */
export const defaultBuckets: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

const NAME_PREFIX = /^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/;
const NO_TRANSPORT = "none";
const BREAKER_STATE_VALUES: Readonly<Record<BreakerState, number>> = { closed: 0, halfOpen: 1, open: 2 };
const REQUEST_LABELS = ["endpoint", "kind", "transport", "code"] as const;
const IN_FLIGHT_LABELS = ["endpoint", "kind", "transport"] as const;
const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

type RequestLabel = (typeof REQUEST_LABELS)[number];
type InFlightLabel = (typeof IN_FLIGHT_LABELS)[number];

/**
 * The series of one (endpoint, kind, transport). Calls and in-flight calls are plain numbers here,
 * handed to prom-client when something reads the metrics (its `collect` hook), so a call costs two
 * additions instead of two hashed label lookups. Durations go to prom-client at once, through children
 * resolved once per code.
 */
class Series {
  /** Calls in progress. */
  inFlight = 0;
  /** Calls that ended, per code. */
  readonly #calls = new Float64Array(17);
  /** What {@link Series.flushCalls} already added to the counter, per code. */
  readonly #flushed = new Float64Array(17);
  readonly #duration: Histogram<RequestLabel>;
  readonly #histograms: (Histogram.Internal<RequestLabel> | undefined)[] = [];
  readonly #codeLabels: (Record<RequestLabel, string> | undefined)[] = [];
  readonly labels: Readonly<Record<InFlightLabel, string>>;

  constructor(
    readonly endpoint: string,
    readonly kind: CallKind,
    readonly transport: string,
    duration: Histogram<RequestLabel>,
  ) {
    this.#duration = duration;
    this.labels = Object.freeze({ endpoint, kind, transport });
  }

  end(code: Code, seconds: number): void {
    this.inFlight--;
    this.#calls[code] = (this.#calls[code] as number) + 1;
    let histogram = this.#histograms[code];
    if (histogram === undefined) {
      histogram = this.#duration.labels(this.endpoint, this.kind, this.transport, codeNames[code]);
      this.#histograms[code] = histogram;
    }
    histogram.observe(seconds);
  }

  /** Adds the calls that ended since the last flush to `counter`. */
  flushCalls(counter: Counter<RequestLabel>): void {
    const calls = this.#calls;
    const flushed = this.#flushed;
    for (let code = 0; code < calls.length; code++) {
      const delta = (calls[code] as number) - (flushed[code] as number);
      if (delta <= 0) continue;
      let labels = this.#codeLabels[code];
      if (labels === undefined) {
        labels = { ...this.labels, code: codeNames[code as Code] };
        this.#codeLabels[code] = labels;
      }
      counter.inc(labels, delta);
      flushed[code] = calls[code] as number;
    }
  }
}

/**
 * What runs before prom-client reads a metric svckit made, per metric: one entry per
 * {@link createMetrics} that uses it (several may share a registry).
 */
const flushers = new WeakMap<object, Set<() => void>>();

/** The series of each requests counter svckit made, by that counter. */
const seriesOf = new WeakMap<object, Map<string, Series>>();

function flushBeforeCollect(this: object): void {
  const set = flushers.get(this);
  if (set !== undefined) for (const flush of set) flush();
}

function validateOptions(options: MetricsOptions): { prefix: string; buckets: number[] } {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("createMetrics: options must be an object");
  }
  const prefix = options.prefix ?? "svckit_";
  if (typeof prefix !== "string" || !NAME_PREFIX.test(prefix)) {
    throw new TypeError(
      `createMetrics: prefix must be empty or match [a-zA-Z_:][a-zA-Z0-9_:]*, got ${JSON.stringify(prefix)}`,
    );
  }
  const buckets = [...(options.buckets ?? defaultBuckets)];
  if (buckets.length === 0) throw new RangeError("createMetrics: buckets must not be empty");
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i] as number;
    if (typeof b !== "number" || !Number.isFinite(b) || b <= 0) {
      throw new RangeError(`createMetrics: buckets must be finite numbers > 0, got ${String(b)}`);
    }
    if (i > 0 && b <= (buckets[i - 1] as number)) {
      throw new RangeError("createMetrics: buckets must be strictly increasing");
    }
  }
  if (options.registry !== undefined && !(options.registry instanceof Registry)) {
    throw new TypeError(
      "createMetrics: registry must be a prom-client Registry (of the same prom-client copy)",
    );
  }
  return { prefix, buckets };
}

type MetricClass = typeof Counter | typeof Gauge | typeof Histogram;

/**
 * Registers a metric, or reuses the one of the same name a registry already holds (a second
 * {@link createMetrics} on a shared registry) if it has the same type and labels.
 */
function metric<M>(
  registry: MetricsRegistry,
  type: MetricClass,
  name: string,
  labelNames: readonly string[],
  create: () => M,
): M {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) {
    const made = create();
    flushers.set(made as object, new Set());
    return made;
  }
  const labels = (existing as unknown as { labelNames?: unknown }).labelNames;
  if (
    !flushers.has(existing) ||
    !(existing instanceof type) ||
    !Array.isArray(labels) ||
    labels.length !== labelNames.length ||
    labels.some((label, i) => label !== labelNames[i])
  ) {
    throw new Error(
      `createMetrics: the registry already has a metric "${name}" that this package did not make with the same type and labels; use another prefix or registry`,
    );
  }
  return existing as M;
}

function sendJson(res: ServerResponse, status: number, headers: Record<string, string>, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": JSON_CONTENT_TYPE,
    "content-length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}

/**
 * Creates Prometheus metrics for svckit: a middleware per endpoint recording
 * `<prefix>requests_total`, `<prefix>request_duration_seconds` and `<prefix>requests_in_flight`,
 * a handler serving them, and hooks exporting circuit breaker states and rate-limit rejections.
 *
 * Labels only ever hold bounded values: endpoint names and kinds from your code, transport names from
 * the transports or your options, and code names; never paths, ids or other request data. Each
 * middleware resolves its prom-client children once per (endpoint, kind, transport, code).
 *
 * @example
 * ```ts
 * const metrics = createMetrics();
 * const sum = metrics.middleware({ name: "sum" })(sumEndpoint);
 * const router = createRouter()
 *   .post("/sum", createHttpHandler(sum, jsonRequestDecoder(), encodeJsonResponse))
 *   .get("/metrics", metrics.handler);
 * ```
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const { prefix, buckets } = validateOptions(options);
  const registry: MetricsRegistry = options.registry ?? new Registry();
  const registers = [registry];

  const requests = metric(registry, Counter, `${prefix}requests_total`, REQUEST_LABELS, () => {
    return new Counter<RequestLabel>({
      name: `${prefix}requests_total`,
      help: "Calls of svckit endpoints by endpoint, kind (server or client), transport and code.",
      labelNames: REQUEST_LABELS,
      registers,
      collect: flushBeforeCollect,
    });
  });
  const duration = metric(registry, Histogram, `${prefix}request_duration_seconds`, REQUEST_LABELS, () => {
    return new Histogram<RequestLabel>({
      name: `${prefix}request_duration_seconds`,
      help: "Duration of calls of svckit endpoints in seconds, by endpoint, kind, transport and code.",
      labelNames: REQUEST_LABELS,
      buckets,
      registers,
    });
  });
  const inFlight = metric(registry, Gauge, `${prefix}requests_in_flight`, IN_FLIGHT_LABELS, () => {
    return new Gauge<InFlightLabel>({
      name: `${prefix}requests_in_flight`,
      help: "Calls of svckit endpoints in progress, by endpoint, kind and transport.",
      labelNames: IN_FLIGHT_LABELS,
      registers,
      collect: flushBeforeCollect,
    });
  });

  // The series live with the metrics they feed, so every Metrics sharing them (one registry, one
  // prefix) counts into the same numbers and each number is handed to prom-client once.
  let allSeries = seriesOf.get(requests);
  if (allSeries === undefined) {
    const created = new Map<string, Series>();
    allSeries = created;
    seriesOf.set(requests, created);
    flushers.get(requests)?.add(() => {
      for (const series of created.values()) series.flushCalls(requests);
    });
    flushers.get(inFlight)?.add(() => {
      for (const series of created.values()) inFlight.set(series.labels, series.inFlight);
    });
  }
  const seriesMap = allSeries;
  function seriesFor(endpoint: string, kind: CallKind, transport: string): Series {
    const key = `${kind}\n${transport}\n${endpoint}`;
    let series = seriesMap.get(key);
    if (series === undefined) {
      series = new Series(endpoint, kind, transport, duration);
      seriesMap.set(key, series);
    }
    return series;
  }

  function middleware(mwOptions: MetricsMiddlewareOptions): GenericMiddleware {
    if (typeof mwOptions !== "object" || mwOptions === null) {
      throw new TypeError("metrics.middleware: options are required");
    }
    const { name, transport } = mwOptions;
    const kind = mwOptions.kind ?? "server";
    if (typeof name !== "string" || name === "") {
      throw new TypeError("metrics.middleware: options.name must be a non-empty string");
    }
    if (kind !== "server" && kind !== "client") {
      throw new TypeError(
        `metrics.middleware: options.kind must be "server" or "client", got ${String(kind)}`,
      );
    }
    if (transport !== undefined && (typeof transport !== "string" || transport === "")) {
      throw new TypeError("metrics.middleware: options.transport must be a non-empty string");
    }
    // A client endpoint, or a server endpoint with a transport given, has one series; a server
    // endpoint takes the transport of each call's CallInfo and keeps the last series it used.
    const fixed =
      transport !== undefined || kind === "client"
        ? seriesFor(name, kind, transport ?? NO_TRANSPORT)
        : undefined;
    let last = fixed;
    const resolve = (ctx: Context): Series => {
      if (fixed !== undefined) return fixed;
      const callTransport = ctx.value(callInfoKey)?.transport || NO_TRANSPORT;
      if (last === undefined || last.transport !== callTransport) last = seriesFor(name, kind, callTransport);
      return last;
    };

    return function metricsMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
      return async function metricsEndpoint(ctx: Context, request: Req): Promise<Res> {
        const series = resolve(ctx);
        series.inFlight++;
        const start = performance.now();
        let code: Code = Code.OK;
        try {
          return await next(ctx, request);
        } catch (err) {
          code = ServiceError.from(err).code;
          throw err;
        } finally {
          series.end(code, (performance.now() - start) / 1000);
        }
      };
    };
  }

  function handler(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method;
    if (method !== "GET" && method !== "HEAD") {
      sendJson(
        res,
        405,
        { allow: "GET, HEAD" },
        {
          code: "UNIMPLEMENTED",
          message: `method ${String(method)} is not allowed: the metrics endpoint answers GET and HEAD`,
        },
      );
      return;
    }
    registry.metrics().then(
      (text) => {
        if (res.headersSent || res.destroyed) return;
        res.writeHead(200, {
          "content-type": registry.contentType,
          "content-length": String(Buffer.byteLength(text)),
          "cache-control": "no-store",
        });
        res.end(method === "HEAD" ? undefined : text);
      },
      () => {
        if (res.headersSent || res.destroyed) return;
        sendJson(res, 500, {}, { code: "INTERNAL", message: "collecting the metrics failed" });
      },
    );
  }

  let breakerState: Gauge<"breaker"> | undefined;
  let breakerTransitions: Counter<"breaker" | "from" | "to"> | undefined;
  const observed = new Set<string>();

  function observeBreaker(breaker: ObservableBreaker): () => void {
    if (typeof breaker !== "object" || breaker === null || typeof breaker.subscribe !== "function") {
      throw new TypeError("metrics.observeBreaker: expected a breaker with name, state and subscribe");
    }
    const name = breaker.name;
    if (typeof name !== "string" || name === "") {
      throw new TypeError("metrics.observeBreaker: the breaker's name must be a non-empty string");
    }
    if (observed.has(name)) {
      throw new Error(
        `metrics.observeBreaker: a breaker named "${name}" is observed already; stop observing it first`,
      );
    }
    breakerState ??= metric(registry, Gauge, `${prefix}circuit_breaker_state`, ["breaker"], () => {
      return new Gauge<"breaker">({
        name: `${prefix}circuit_breaker_state`,
        help: "State of each circuit breaker: 0 closed, 1 half-open, 2 open.",
        labelNames: ["breaker"],
        registers,
      });
    });
    breakerTransitions ??= metric(
      registry,
      Counter,
      `${prefix}circuit_breaker_transitions_total`,
      ["breaker", "from", "to"],
      () => {
        return new Counter<"breaker" | "from" | "to">({
          name: `${prefix}circuit_breaker_transitions_total`,
          help: "State changes of each circuit breaker, by breaker, previous and new state.",
          labelNames: ["breaker", "from", "to"],
          registers,
        });
      },
    );
    const gauge = breakerState;
    const transitions = breakerTransitions;
    const state = gauge.labels(name);
    const set = (value: BreakerState): void => {
      if (Object.hasOwn(BREAKER_STATE_VALUES, value)) state.set(BREAKER_STATE_VALUES[value]);
    };
    set(breaker.state);
    const unsubscribe = breaker.subscribe((next, previous) => {
      if (!Object.hasOwn(BREAKER_STATE_VALUES, next) || !Object.hasOwn(BREAKER_STATE_VALUES, previous))
        return;
      set(next);
      transitions.labels(name, previous, next).inc();
    });
    observed.add(name);
    let stopped = false;
    return function stopObserving(): void {
      if (stopped) return;
      stopped = true;
      unsubscribe();
      gauge.remove(name);
      observed.delete(name);
    };
  }

  let rejections: Counter<"limiter"> | undefined;
  const rejectionChildren = new Map<string, Counter.Internal>();
  const recordRateLimitRejection = (event: RateLimitRejection): void => {
    try {
      const given = event?.limiter ?? event?.name;
      const limiter = typeof given === "string" && given !== "" ? given : "unknown";
      let child = rejectionChildren.get(limiter);
      if (child === undefined) {
        rejections ??= metric(registry, Counter, `${prefix}ratelimit_rejections_total`, ["limiter"], () => {
          return new Counter<"limiter">({
            name: `${prefix}ratelimit_rejections_total`,
            help: "Calls refused by each rate limiter.",
            labelNames: ["limiter"],
            registers,
          });
        });
        child = rejections.labels(limiter);
        rejectionChildren.set(limiter, child);
      }
      child.inc();
    } catch {
      // Counting must never fail the limiter's caller.
    }
  };

  return { registry, middleware, handler, observeBreaker, recordRateLimitRejection };
}
