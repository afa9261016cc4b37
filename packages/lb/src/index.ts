/**
 * Load balancing over the entries of an `Endpointer` (`@svckit/sd`), after go-kit's `sd/lb`, with
 * more balancers and passive health checking: {@link roundRobin}, {@link random}, {@link weighted}
 * (nginx's smooth weighted round robin, EEVDF scheduling above 16 instances), {@link leastRequests}
 * (exact, or Envoy's k random choices) and {@link p2c} (power of two choices with peak-EWMA latency)
 * each pick one entry per call in O(log n) or better, so sets of thousands of instances are fine;
 * {@link createOutlierDetector} leaves out instances that keep failing for a growing while;
 * {@link balancerEndpoint} and {@link createBalancedEndpoint} turn it all into one `Endpoint` that
 * fails with `UNAVAILABLE` when nothing is left to call and lets a retry layer reach another instance
 * ({@link failedInstancesKey}).
 *
 * @packageDocumentation
 */

export type {
  BalancedEndpointOptions,
  BalancerEndpointOptions,
  BalancerName,
  OutcomeRecorder,
} from "./balanced-endpoint.js";
export {
  avoidFailedInstances,
  balancerEndpoint,
  createBalancedEndpoint,
  defaultFailureCodes,
  failedInstancesKey,
  withFailedInstances,
} from "./balanced-endpoint.js";
export type { Balancer, CallOutcome, CallRecord, Clock, EndpointSource, Rng } from "./balancer.js";
export type { LeastRequestsOptions } from "./least-requests.js";
export { leastRequests } from "./least-requests.js";
export type { OutlierDetectionOptions, OutlierDetector } from "./outlier-detector.js";
export { createOutlierDetector } from "./outlier-detector.js";
export type { P2cOptions } from "./p2c.js";
export { p2c } from "./p2c.js";
export type { RandomOptions } from "./random.js";
export { random } from "./random.js";
export { roundRobin } from "./round-robin.js";
export { weighted } from "./weighted.js";
