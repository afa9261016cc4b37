import { type Context, context, createContextKey, ROOT_CONTEXT, type Span, trace } from "@opentelemetry/api";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { withSpan } from "./otel-context.js";
import { installOtel, resetOtel } from "./test-helpers.js";

const span = (n: number): Span =>
  trace.wrapSpanContext({
    traceId: n.toString(16).padStart(32, "0"),
    spanId: "00f067aa0ba902b7",
    traceFlags: 1,
  });

const keys = ["a", "b", "c"].map((k) => createContextKey(`svckit test ${k}`));
const SPAN_KEY = createContextKey("OpenTelemetry Context Key SPAN");

describe("withSpan", () => {
  it("gives the context trace.setSpan gives: the span, and every value of the parent", () => {
    const key = keys[0] as symbol;
    const parent = ROOT_CONTEXT.setValue(key, "kept");
    const ours = withSpan(parent, span(1));
    expect(trace.getSpan(ours)?.spanContext().traceId).toBe(span(1).spanContext().traceId);
    expect(ours.getValue(key)).toBe("kept");
    expect(trace.getSpan(trace.deleteSpan(ours))).toBeUndefined();
    expect(trace.getSpan(withSpan(withSpan(parent, span(1)), span(2)))?.spanContext().traceId).toBe(
      span(2).spanContext().traceId,
    );
  });

  it("behaves like BaseContext under any sequence of setValue and deleteValue (fuzzed)", () => {
    const op = fc.record({
      key: fc.constantFrom(...keys, SPAN_KEY),
      del: fc.boolean(),
      value: fc.integer(),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 12 }), fc.integer(), (ops, first) => {
        let ours: Context = withSpan(ROOT_CONTEXT, span(first));
        let base: Context = trace.setSpan(ROOT_CONTEXT, span(first));
        for (const { key, del, value } of ops) {
          ours = del ? ours.deleteValue(key) : ours.setValue(key, value);
          base = del ? base.deleteValue(key) : base.setValue(key, value);
        }
        for (const key of [...keys, SPAN_KEY]) {
          const a = ours.getValue(key);
          const b = base.getValue(key);
          if (key === SPAN_KEY && typeof a === "object") {
            expect((a as Span).spanContext()).toEqual((b as Span).spanContext());
          } else expect(a).toEqual(b);
        }
      }),
      { numRuns: 500 },
    );
  });

  describe("with a context manager", () => {
    afterEach(() => resetOtel());

    it("is the active context inside context.with, across an await", async () => {
      installOtel({ contextManager: true });
      const s = span(7);
      const seen = await context.with(withSpan(ROOT_CONTEXT, s), async () => {
        await new Promise((resolve) => setImmediate(resolve));
        return trace.getActiveSpan();
      });
      expect(seen).toBe(s);
    });
  });
});
