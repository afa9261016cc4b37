import { INVALID_SPANID, INVALID_TRACEID, isValidTraceId, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { createContext } from "@svckit/endpoint";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { traceIdKey, validTraceId, withOtelContext } from "./context-keys.js";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";

function spanContext(traceId: string, spanId: string) {
  return { traceId, spanId, traceFlags: 1 };
}

describe("validTraceId", () => {
  it.each([
    ["valid ids", TRACE_ID, SPAN_ID, TRACE_ID],
    [
      "upper-case hex (accepted by the OTel API too)",
      TRACE_ID.toUpperCase(),
      SPAN_ID,
      TRACE_ID.toUpperCase(),
    ],
    ["all-zero trace id", INVALID_TRACEID, SPAN_ID, undefined],
    ["all-zero span id (only the trace id counts)", TRACE_ID, INVALID_SPANID, TRACE_ID],
    ["short trace id", TRACE_ID.slice(1), SPAN_ID, undefined],
    ["long trace id", `${TRACE_ID}0`, SPAN_ID, undefined],
    ["non-hex in the trace id", `${TRACE_ID.slice(0, 31)}g`, SPAN_ID, undefined],
    ["a non-ASCII character in the trace id", `${TRACE_ID.slice(0, 31)}é`, SPAN_ID, undefined],
    [
      "a character code above 127 mapping past the table",
      `${TRACE_ID.slice(0, 31)}\u0130`,
      SPAN_ID,
      undefined,
    ],
    ["empty ids", "", "", undefined],
  ])("%s", (_name, traceId, spanId, expected) => {
    expect(validTraceId(spanContext(traceId, spanId))).toBe(expected);
  });

  it("rejects ids that are not strings instead of throwing", () => {
    expect(validTraceId({ traceId: 42, spanId: SPAN_ID, traceFlags: 1 } as never)).toBeUndefined();
  });

  it("agrees with @opentelemetry/api's isValidTraceId on arbitrary ids", () => {
    const hexOrNot = fc.oneof(
      fc.string({
        unit: fc.constantFrom(..."0123456789abcdefABCDEFgxz-\u00e9 "),
        minLength: 30,
        maxLength: 34,
      }),
      fc.string({ minLength: 32, maxLength: 32 }),
      fc.constantFrom(TRACE_ID, INVALID_TRACEID),
    );
    fc.assert(
      fc.property(hexOrNot, (traceId) => {
        expect(validTraceId(spanContext(traceId, SPAN_ID)) !== undefined).toBe(isValidTraceId(traceId));
      }),
      { numRuns: 5_000 },
    );
  });
});

describe("withOtelContext", () => {
  it("puts the trace id of a valid span context under traceIdKey, and none for an invalid one", () => {
    const valid = trace.setSpanContext(ROOT_CONTEXT, spanContext(TRACE_ID, SPAN_ID));
    expect(withOtelContext(createContext(), valid).value(traceIdKey)).toBe(TRACE_ID);
    const invalid = trace.setSpanContext(ROOT_CONTEXT, spanContext(INVALID_TRACEID, SPAN_ID));
    expect(withOtelContext(createContext(), invalid).value(traceIdKey)).toBeUndefined();
    expect(withOtelContext(createContext(), ROOT_CONTEXT).value(traceIdKey)).toBeUndefined();
  });
});
