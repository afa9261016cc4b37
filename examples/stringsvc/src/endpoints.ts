import type { Endpoint } from "@svckit/endpoint";
import type { StringService } from "./service.js";

/** The request of both endpoints. */
export interface StringRequest {
  /** The input string. */
  s: string;
}

/** The response of `uppercase`. */
export interface UppercaseResponse {
  /** The upper-cased string. */
  v: string;
}

/** The response of `count`. */
export interface CountResponse {
  /** The number of characters. */
  v: number;
}

/** The service's endpoints, one per method. */
export interface StringEndpoints {
  /** Upper-cases the request's `s`. */
  uppercase: Endpoint<StringRequest, UppercaseResponse>;
  /** Counts the request's `s`. */
  count: Endpoint<StringRequest, CountResponse>;
}

/** Wraps each service method as an endpoint. */
export function makeEndpoints(svc: StringService): StringEndpoints {
  return {
    uppercase: async (_ctx, req) => ({ v: await svc.uppercase(req.s) }),
    count: async (_ctx, req) => ({ v: await svc.count(req.s) }),
  };
}
