import { createContext, createContextKey } from "@svckit/endpoint";
import { parseTraceparent, traceIdKey, traceIdOf } from "@svckit/log";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const VALID = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

describe("parseTraceparent", () => {
  it("returns the trace id of a valid value", () => {
    expect(parseTraceparent(VALID)).toBe(TRACE_ID);
    expect(parseTraceparent(`00-${TRACE_ID}-00f067aa0ba902b7-00`)).toBe(TRACE_ID);
  });

  it("accepts a future version with extra fields after a dash", () => {
    expect(parseTraceparent(`cc-${TRACE_ID}-00f067aa0ba902b7-01-what-the-future-holds`)).toBe(TRACE_ID);
    expect(parseTraceparent(`01-${TRACE_ID}-00f067aa0ba902b7-01`)).toBe(TRACE_ID);
  });

  it.each([
    ["empty", ""],
    ["garbage", "garbage"],
    ["upper-case hex", `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`],
    ["version ff", `ff-${TRACE_ID}-00f067aa0ba902b7-01`],
    ["all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
    ["all-zero parent id", `00-${TRACE_ID}-0000000000000000-01`],
    ["short trace id", `00-${TRACE_ID.slice(1)}-00f067aa0ba902b7-01`],
    ["long parent id", `00-${TRACE_ID}-00f067aa0ba902b7a-01`],
    ["data after a version 00 value", `${VALID}-extra`],
    ["future version without a dash", `cc-${TRACE_ID}-00f067aa0ba902b7-01extra`],
    ["leading space", ` ${VALID}`],
    ["trailing space", `${VALID} `],
    ["non-hex", `00-${TRACE_ID.slice(0, -1)}g-00f067aa0ba902b7-01`],
    ["one-digit flags", `00-${TRACE_ID}-00f067aa0ba902b7-1`],
    ["too long", `cc-${TRACE_ID}-00f067aa0ba902b7-01-${"x".repeat(600)}`],
    ["newline", `${VALID}\n`],
  ])("ignores %s", (_name, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });

  it("only ever returns 32 lower-case hex digits, never a piece of arbitrary input", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (value) => {
        const id = parseTraceparent(value);
        if (id !== undefined) expect(id).toMatch(/^[0-9a-f]{32}$/);
      }),
    );
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9a-f]{32}$/),
        fc.stringMatching(/^[0-9a-f]{16}$/),
        fc.stringMatching(/^[0-9a-f]{2}$/),
        (traceId, parentId, flags) => {
          const ok = !/^0+$/.test(traceId) && !/^0+$/.test(parentId);
          expect(parseTraceparent(`00-${traceId}-${parentId}-${flags}`)).toBe(ok ? traceId : undefined);
        },
      ),
    );
  });
});

describe("traceIdOf", () => {
  it("reads the shared trace id key, which any copy of the key agrees on", () => {
    expect(traceIdKey.id).toBe(Symbol.for("svckit:traceId"));
    const tracingPackagesKey = createContextKey<string | undefined>(undefined, {
      description: "traceId",
      shared: true,
    });
    expect(traceIdOf(createContext().with(tracingPackagesKey, "abc"))).toBe("abc");
  });

  it("prefers the key to the traceparent header", () => {
    const ctx = createContext({ metadata: { traceparent: VALID } });
    expect(traceIdOf(ctx)).toBe(TRACE_ID);
    expect(traceIdOf(ctx.with(traceIdKey, "fromspan"))).toBe("fromspan");
    expect(traceIdOf(ctx.with(traceIdKey, ""))).toBe(TRACE_ID);
  });

  it("ignores an invalid header and a repeated one", () => {
    expect(traceIdOf(createContext())).toBeUndefined();
    expect(traceIdOf(createContext({ metadata: { traceparent: "nope" } }))).toBeUndefined();
    expect(traceIdOf(createContext({ metadata: { traceparent: [VALID, VALID] } }))).toBeUndefined();
    expect(traceIdOf(createContext({ metadata: { TraceParent: VALID } }))).toBe(TRACE_ID);
  });
});
