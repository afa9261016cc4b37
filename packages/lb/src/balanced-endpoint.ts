import {
  Code,
  type Context,
  type ContextKey,
  createContextKey,
  type Endpoint,
  type GenericMiddleware,
  ServiceError,
} from "@svckit/endpoint";
import type { EndpointEntry, Instance } from "@svckit/sd";
import {
  type Balancer,
  type CallOutcome,
  type Clock,
  checkFunction,
  type EndpointSource,
  type Rng,
} from "./balancer.js";
import { leastRequests } from "./least-requests.js";
import { createOutlierDetector, type OutlierDetectionOptions } from "./outlier-detector.js";
import { p2c } from "./p2c.js";
import { random } from "./random.js";
import { roundRobin } from "./round-robin.js";
import { weighted } from "./weighted.js";

/**
 * The context key under which a set of instance addresses travels that calls made with the context
 * should avoid: {@link balancerEndpoint} adds the address of every instance that fails a call with a
 * server failure, and picks outside the set while another instance is available (once the set covers
 * every instance, outside the latest failure it added; the set keeps every address). A retry layer puts a
 * fresh set on the context once per logical call ({@link withFailedInstances}), so each attempt goes to
 * an instance that has not failed yet, even when attempts run on derived contexts (per-attempt
 * timeouts). Shared across package copies: `Symbol.for("svckit:lb.failedInstances")`, so a retry
 * package can define the same key without depending on this one.
 *
 * @example
 * ```ts
 * const ctx2 = ctx.with(failedInstancesKey, new Set<string>());
 * ```
 */
export const failedInstancesKey: ContextKey<Set<string> | undefined> = createContextKey<
  Set<string> | undefined
>(undefined, { description: "lb.failedInstances", shared: true });

/**
 * Returns `ctx` with a fresh, empty {@link failedInstancesKey} set: calls made with it (or with contexts
 * derived from it) avoid the instances that already failed one of them. Call it once per logical call,
 * before the retries.
 *
 * @example
 * ```ts
 * const attempts = withFailedInstances(ctx);
 * for (let i = 0; i < 3; i++) {
 *   try { return await balanced(attempts, request); } catch (error) { if (i === 2) throw error; }
 * }
 * ```
 */
export function withFailedInstances(ctx: Context): Context {
  return ctx.with(failedInstancesKey, new Set<string>());
}

/**
 * A middleware that gives each call a fresh {@link failedInstancesKey} set: put it outside a retry
 * middleware, over a balanced endpoint, and each retry goes to an instance that has not failed this
 * call yet (while one is left), also when the retries run on per-attempt child contexts.
 *
 * @example
 * ```ts
 * const users = chain(avoidFailedInstances(), retry({ perAttemptTimeout: 200 }))(
 *   createBalancedEndpoint(endpointer, { service: "users" }),
 * );
 * ```
 */
export function avoidFailedInstances(): GenericMiddleware {
  return function avoidFailedInstancesMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return function avoidFailedInstancesEndpoint(ctx: Context, request: Req): Promise<Res> {
      return next(withFailedInstances(ctx), request);
    };
  };
}

/** The codes that count as server failures by default. */
export const defaultFailureCodes: readonly Code[] = Object.freeze([
  Code.UNAVAILABLE,
  Code.INTERNAL,
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
]);

/** Where {@link balancerEndpoint} reports outcomes for passive health checking. */
export interface OutcomeRecorder<Req = unknown, Res = unknown> {
  /** Reports how a call on `entry` ended. */
  record(entry: EndpointEntry<Req, Res>, outcome: CallOutcome): void;
  /** The instances left out now (named in the UNAVAILABLE message when nothing else is left). */
  ejected?(): readonly Instance[];
}

/** Options of {@link balancerEndpoint}. */
export interface BalancerEndpointOptions<Req = unknown, Res = unknown> {
  /** The service's name, for the UNAVAILABLE message. */
  service?: string;
  /** Where to report each call's outcome: the outlier detector the balancer picks from. */
  outlierDetector?: OutcomeRecorder<Req, Res>;
  /** The codes that count as server failures; default UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED. */
  failureCodes?: readonly Code[];
}

/** The balancers {@link createBalancedEndpoint} knows by name. */
export type BalancerName = "roundRobin" | "random" | "weighted" | "leastRequests" | "p2c";

/** Options of {@link createBalancedEndpoint}. */
export interface BalancedEndpointOptions<Req = unknown, Res = unknown> {
  /**
   * The balancer: a name, or a function making one over the source it is given (the outlier detector
   * when that is on). Default `"p2c"`: it adapts to slow and loaded instances at O(1) per call.
   */
  balancer?: BalancerName | ((source: EndpointSource<Req, Res>) => Balancer<Req, Res>);
  /** The service's name, for the UNAVAILABLE message. */
  service?: string;
  /** Passive health checking ({@link createOutlierDetector}'s options); on by default, `false` turns it off. */
  outlierDetection?: OutlierDetectionOptions | false;
  /** The codes that count as server failures; default UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED. */
  failureCodes?: readonly Code[];
  /** Random numbers in [0, 1) for the named `random`, `leastRequests` and `p2c` balancers; default `Math.random`. */
  rng?: Rng;
  /** Monotonic clock in ms for `p2c` and outlier detection; default `performance.now`. */
  now?: Clock;
}

const balancerNames: readonly BalancerName[] = ["roundRobin", "random", "weighted", "leastRequests", "p2c"];

function outcomeOf(error: unknown, failureCodes: ReadonlySet<Code>, ctx: Context): CallOutcome {
  const code = error instanceof ServiceError ? error.code : ServiceError.from(error).code;
  // CANCELLED says nothing about the instance when the caller gave up; when the caller did not (an
  // AbortController timer inside the endpoint, a client library's own timeout), the instance was too
  // slow or went away: a failure.
  if (code === Code.CANCELLED) return ctx.aborted ? "cancelled" : "failure";
  return failureCodes.has(code) ? "failure" : "success";
}

/** The instances that failed calls made with one context object, and the latest of them. */
class FailedInstances {
  readonly addresses = new Set<string>();
  latest: string | undefined = undefined;
}

/**
 * Turns a {@link Balancer} into an endpoint that picks an entry per call and calls it, like go-kit's
 * `lb.Retry` without the retries. It tells a load-aware balancer when calls start and end, reports
 * outcomes to `outlierDetector`, and remembers failed instances so that later calls avoid them (while
 * another instance is available): in the {@link failedInstancesKey} set when the context has one, else
 * for the same context object, every instance that failed a call with it, until a call with it
 * succeeds. Once the failed instances are all there is, a call still avoids the latest of them, so a
 * retry does not land on the instance that just failed (the same-context set then starts over from
 * that instance; a {@link failedInstancesKey} set is left as it is). Errors from the picked endpoint
 * pass through unchanged.
 *
 * A call whose context is already cancelled or past its deadline when it arrives fails at once with
 * the context's `abortReason` (`CANCELLED` or `DEADLINE_EXCEEDED`) without a pick, so it counts against
 * no instance. A context that ends while the call is in flight is judged by the call's outcome as usual.
 *
 * Fails with `UNAVAILABLE` (`no endpoints available`, `... for service "users"` when `service` is set)
 * when there is nothing to pick; its `cause` is the source's error if it reported one.
 *
 * @example
 * ```ts
 * const healthy = createOutlierDetector(endpointer);
 * const call = balancerEndpoint(p2c(healthy), { service: "users", outlierDetector: healthy });
 * const user = await call(ctx, { id: 42 });
 * ```
 */
export function balancerEndpoint<Req, Res>(
  balancer: Balancer<Req, Res>,
  options?: BalancerEndpointOptions<Req, Res>,
): Endpoint<Req, Res> {
  if (typeof balancer?.pick !== "function") {
    throw new TypeError("balancerEndpoint: balancer must have a pick() method");
  }
  const failureCodes = new Set(options?.failureCodes ?? defaultFailureCodes);
  const detector = options?.outlierDetector;
  const service = options?.service;
  const prefix =
    service === undefined ? "no endpoints available" : `no endpoints available for service "${service}"`;
  // Failed instances per context, for callers that retry with the same context object. The sets are
  // this endpoint's own (balancers only read the avoid set during pick), so they change in place.
  const failedByContext = new WeakMap<Context, FailedInstances>();
  // The latest instance to fail a call made with each failedInstancesKey set, for when the set covers
  // every instance (the set itself is the caller's, and stays as it is).
  const latestByTracked = new WeakMap<Set<string>, string>();

  /**
   * What a call avoids: the failed set, unless it covers every instance (then a balancer would pick as
   * if nothing were avoided, and a retry could land on the instance that just failed); then at least
   * the latest failure. The context's own set starts over from it, so the next attempts go round the
   * others again; a failedInstancesKey set is left as it is. Without `balancer.source` that cannot be
   * told, and the set goes to the balancer as it is.
   */
  function avoidFor(
    tracked: Set<string> | undefined,
    failed: FailedInstances | undefined,
  ): ReadonlySet<string> | undefined {
    const avoid = tracked ?? failed?.addresses;
    if (avoid === undefined || avoid.size < 2) return avoid;
    const latest = tracked === undefined ? failed?.latest : latestByTracked.get(tracked);
    const source = balancer.source;
    if (latest === undefined || source === undefined) return avoid;
    for (const entry of source.endpoints()) {
      if (!avoid.has(entry.instance.address)) return avoid;
    }
    if (failed === undefined) return new Set([latest]);
    failed.addresses.clear();
    failed.addresses.add(latest);
    return failed.addresses;
  }

  function unavailable(): ServiceError {
    const ejected = detector?.ejected?.().length ?? 0;
    const cause = balancer.source?.error;
    if (ejected > 0) {
      return new ServiceError(
        Code.UNAVAILABLE,
        `${prefix}: all ${ejected} instance${ejected === 1 ? " is" : "s are"} ejected after consecutive failures`,
        cause === undefined ? undefined : { cause },
      );
    }
    // The discovery error stays in `cause` (for logs): its text may name internal hosts.
    return cause === undefined
      ? new ServiceError(Code.UNAVAILABLE, prefix)
      : new ServiceError(Code.UNAVAILABLE, `${prefix}: service discovery reported an error`, { cause });
  }

  return async function balanced(ctx: Context, request: Req): Promise<Res> {
    // A call whose context is already done (cancelled, or past its deadline) fails with that reason
    // before any pick: no instance is contacted, so none is charged for it (a transport client would
    // throw the same reason at once, which would otherwise count as the instance's failure).
    const done = ctx.abortReason;
    if (done !== undefined) throw done;
    const tracked = ctx.value(failedInstancesKey);
    const failedBefore = tracked === undefined ? failedByContext.get(ctx) : undefined;
    const entry = balancer.pick(avoidFor(tracked, failedBefore));
    if (entry === undefined) throw unavailable();
    const record = balancer.start?.(entry);
    let response: Res;
    try {
      response = await entry.endpoint(ctx, request);
    } catch (error) {
      const outcome = outcomeOf(error, failureCodes, ctx);
      record?.end(outcome);
      detector?.record(entry, outcome);
      if (outcome === "failure") {
        const address = entry.instance.address;
        if (tracked !== undefined) {
          tracked.add(address);
          latestByTracked.set(tracked, address);
        } else {
          // Add to the context's set (a concurrent call may have made one meanwhile): every instance
          // that failed a call with this context stays avoided until one of its calls succeeds (or
          // until the set covers every instance, see avoidFor).
          let failed = failedByContext.get(ctx);
          if (failed === undefined) {
            failed = new FailedInstances();
            failedByContext.set(ctx, failed);
          }
          failed.addresses.add(address);
          failed.latest = address;
        }
      }
      throw error;
    }
    record?.end("success");
    detector?.record(entry, "success");
    if (failedBefore !== undefined) failedByContext.delete(ctx);
    return response;
  };
}

/**
 * Makes one endpoint over every instance of a service: an outlier detector (unless
 * `outlierDetection: false`) over `source`, the chosen balancer over that, and
 * {@link balancerEndpoint} over the balancer. Compose retries (`@svckit/retry`) outside it; each
 * attempt can reach another instance.
 *
 * @example
 * ```ts
 * const endpointer = createEndpointer(instancer, (instance) => ({ endpoint: clientFor(instance.address) }));
 * const call = createBalancedEndpoint(endpointer, { balancer: "p2c", service: "users" });
 * const user = await call(ctx, { id: 42 });
 * ```
 */
export function createBalancedEndpoint<Req, Res>(
  source: EndpointSource<Req, Res>,
  options?: BalancedEndpointOptions<Req, Res>,
): Endpoint<Req, Res> {
  if (typeof source?.endpoints !== "function") {
    throw new TypeError("createBalancedEndpoint: source must have an endpoints() method");
  }
  const rng = options?.rng;
  const now = options?.now;
  if (rng !== undefined) checkFunction(rng, "createBalancedEndpoint: rng");
  if (now !== undefined) checkFunction(now, "createBalancedEndpoint: now");
  const detection = options?.outlierDetection;
  const detector =
    detection === false
      ? undefined
      : createOutlierDetector(
          source,
          now === undefined || detection?.now !== undefined ? detection : { ...detection, now },
        );
  const from: EndpointSource<Req, Res> = detector ?? source;
  const choice = options?.balancer ?? "p2c";
  let balancer: Balancer<Req, Res>;
  if (typeof choice === "function") {
    balancer = choice(from);
  } else {
    switch (choice) {
      case "roundRobin":
        balancer = roundRobin(from);
        break;
      case "random":
        balancer = random(from, rng === undefined ? undefined : { rng });
        break;
      case "weighted":
        balancer = weighted(from);
        break;
      case "leastRequests":
        balancer = leastRequests(from, rng === undefined ? undefined : { rng });
        break;
      case "p2c":
        balancer = p2c(from, {
          ...(rng === undefined ? {} : { rng }),
          ...(now === undefined ? {} : { now }),
        });
        break;
      default:
        throw new TypeError(
          `createBalancedEndpoint: unknown balancer ${JSON.stringify(choice)}; expected one of ${balancerNames.join(", ")} or a function`,
        );
    }
  }
  const endpointOptions: BalancerEndpointOptions<Req, Res> = {};
  if (options?.service !== undefined) endpointOptions.service = options.service;
  if (options?.failureCodes !== undefined) endpointOptions.failureCodes = options.failureCodes;
  if (detector !== undefined) endpointOptions.outlierDetector = detector;
  return balancerEndpoint(balancer, endpointOptions);
}
