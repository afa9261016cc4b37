import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SpanStatusCode } from "@opentelemetry/api";
import {
  type CallInfo,
  Code,
  type CodeName,
  codeToHttpStatus,
  createContext,
  type Endpoint,
  ServiceError,
} from "@svckit/endpoint";
import {
  type ClientTracingOptions,
  clientTracing,
  type ServerTracingOptions,
  serverTracing,
} from "@svckit/tracing";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";
import { installOtel, PARENT_SPAN_ID, parseTraceparent, resetOtel, TRACE_ID } from "./test-helpers.js";

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const readme = await readFile(join(packageDir, "README.md"), "utf8");

const firstBlock = (lang: string): string => readmeBlock(readme, lang);
const table = (firstHeader: string, heading?: string): string[][] =>
  readmeTable(readme, firstHeader, heading);

afterEach(() => {
  vi.restoreAllMocks();
  resetOtel();
});

describe("README", () => {
  it("has an example shorter than 15 lines", () => {
    expect(firstBlock("ts").trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example, which prints the traceparent the client sends", async () => {
    // Written inside the package so that the OpenTelemetry packages resolve from it.
    const dir = await mkdtemp(join(packageDir, ".readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, firstBlock("ts"));
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    const dir_ = vi.spyOn(console, "dir").mockImplementation(() => undefined); // ConsoleSpanExporter
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(log).toHaveBeenCalledTimes(1);
    const sent = parseTraceparent(log.mock.calls[0]?.[0] as string);
    expect(sent.traceId).toBe(TRACE_ID);
    expect(sent.spanId).not.toBe(PARENT_SPAN_ID);
    expect(sent.flags).toBe("01");
    // The console exporter printed the client span, then the server span.
    const printed = dir_.mock.calls.map(([span]) => span as { name: string; kind: number; traceId: string });
    expect(printed.map((s) => [s.name, s.traceId])).toEqual([
      ["GET", TRACE_ID],
      ["svckit.server", TRACE_ID],
    ]);
  });

  it("shows the install lines with the peers", () => {
    expect(firstBlock("sh").trim().split("\n")).toEqual([
      "pnpm add @svckit/tracing @svckit/endpoint @opentelemetry/api",
      "pnpm add @opentelemetry/sdk-trace-base @opentelemetry/core",
    ]);
  });

  it("documents every option and no other", () => {
    // Typed so that adding or removing an option fails to compile until this list (and the README) follows.
    const server: Record<keyof ServerTracingOptions, "both" | "server"> = {
      tracer: "both",
      tracerProvider: "both",
      propagator: "both",
      attributes: "both",
      name: "both",
    };
    const client: Record<keyof ClientTracingOptions, "both" | "client"> = {
      tracer: "both",
      tracerProvider: "both",
      propagator: "both",
      attributes: "both",
      name: "both",
      transport: "client",
      method: "client",
      route: "client",
      url: "client",
      serverAddress: "client",
      serverPort: "client",
    };
    const documented = Object.fromEntries(
      table("option", "## Options").map(([name, where]) => [name, where]),
    );
    expect(documented).toEqual({ ...server, ...client });
  });

  it("has the span status of every code as the middlewares set it", async () => {
    const rows = table("code", "## Errors");
    const names = (Object.keys(Code) as CodeName[]).filter((name) => name !== "OK");
    expect(rows.map(([code]) => code)).toEqual(names);

    const otel = installOtel();
    const status = (): string => {
      const spans = otel.spans();
      const last = spans[spans.length - 1];
      return last?.status.code === SpanStatusCode.ERROR ? "ERROR" : "unset";
    };
    async function run(
      info: CallInfo | undefined,
      wrap: (e: Endpoint<string, string>) => Endpoint<string, string>,
      code: Code,
    ) {
      const failing: Endpoint<string, string> = async () => {
        throw new ServiceError(code, "failed");
      };
      const ctx = createContext(info === undefined ? {} : { callInfo: info });
      await expect(wrap(failing)(ctx, "x")).rejects.toBeInstanceOf(ServiceError);
      return status();
    }
    const httpServer = serverTracing();
    const grpcServer = serverTracing();
    const client = clientTracing({ transport: "grpc", method: "/pb.Add/Sum" });
    for (const [name, httpStatus, http, grpc, clientStatus] of rows) {
      const code = Code[name as CodeName];
      expect({ name, status: Number(httpStatus) }).toEqual({ name, status: codeToHttpStatus[code] });
      expect({ name, http: await run({ transport: "http", method: "POST" }, httpServer, code) }).toEqual({
        name,
        http,
      });
      expect({
        name,
        grpc: await run({ transport: "grpc", method: "/pb.Add/Sum" }, grpcServer, code),
      }).toEqual({
        name,
        grpc,
      });
      expect({ name, client: await run(undefined, client, code) }).toEqual({ name, client: clientStatus });
    }
  });
});
