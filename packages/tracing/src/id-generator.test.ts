import { isValidSpanId, isValidTraceId } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { background } from "@svckit/endpoint";
import { createIdGenerator, serverTracing } from "@svckit/tracing";
import { describe, expect, it } from "vitest";
import { idGeneratorFrom } from "./id-generator.js";

describe("createIdGenerator", () => {
  it("makes valid, distinct lowercase hex ids, across many refills of its pool", () => {
    const ids = createIdGenerator();
    const traceIds = new Set<string>();
    const spanIds = new Set<string>();
    // 20,000 of each: 960,000 hex characters, about 117 pools of 8,192.
    for (let i = 0; i < 20_000; i++) {
      const traceId = ids.generateTraceId();
      const spanId = ids.generateSpanId();
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(isValidTraceId(traceId)).toBe(true);
      expect(isValidSpanId(spanId)).toBe(true);
      traceIds.add(traceId);
      spanIds.add(spanId);
    }
    expect(traceIds.size).toBe(20_000);
    expect(spanIds.size).toBe(20_000);
  });

  it("uses every hex digit about equally (random bytes, not a counter)", () => {
    const ids = createIdGenerator();
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      for (const c of ids.generateTraceId()) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    // 320,000 digits, 20,000 expected each; a fair source stays within ±5% with overwhelming odds.
    expect(counts.size).toBe(16);
    for (const n of counts.values()) expect(Math.abs(n - 20_000)).toBeLessThan(1_000);
  });

  it("never gives an all-zero id: it takes the next one", () => {
    // The first pool is all zeros, the next all 0xab: the zero ids are skipped until the pool refills.
    let fills = 0;
    const ids = idGeneratorFrom((bytes) => {
      bytes.fill(fills++ === 0 ? 0 : 0xab);
    });
    expect(ids.generateSpanId()).toBe("ab".repeat(8));
    expect(ids.generateTraceId()).toBe("ab".repeat(16));
    // Zero bytes in an id that is not all zero are fine.
    let next = 0;
    const mixed = idGeneratorFrom((bytes) => {
      for (let i = 0; i < bytes.length; i++) bytes[i] = i % 8 === 7 ? 1 + (next++ % 200) : 0;
    });
    expect(mixed.generateSpanId()).toBe("0000000000000001");
  });

  it("is taken by the OTel SDK as its idGenerator: spans of a traced call carry its ids", async () => {
    const made: string[] = [];
    const ids = createIdGenerator();
    const recording = {
      generateTraceId: () => {
        const id = ids.generateTraceId();
        made.push(id);
        return id;
      },
      generateSpanId: () => {
        const id = ids.generateSpanId();
        made.push(id);
        return id;
      },
    };
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      idGenerator: recording,
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const traced = serverTracing({ tracer: provider.getTracer("t") })(async () => "ok");
    await expect(traced(background, undefined)).resolves.toBe("ok");
    const [span] = exporter.getFinishedSpans() as ReadableSpan[];
    expect(span).toBeDefined();
    expect(made).toEqual([span?.spanContext().spanId, span?.spanContext().traceId]);
    await provider.shutdown();
  });
});
