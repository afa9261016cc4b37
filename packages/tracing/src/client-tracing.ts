import {
  type Attributes,
  type Context as OtelContext,
  context as otelContext,
  type Span,
  type TextMapPropagator,
  type Tracer,
} from "@opentelemetry/api";
import type { Context, Endpoint, GenericMiddleware } from "@svckit/endpoint";
import { ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL } from "./attributes.js";
import { newHeaderRecord, recordSetter } from "./carrier.js";
import { otelContextKey, traceIdKey, validTraceId } from "./context-keys.js";
import { resolvePropagator, resolveTracer, type TracingOptions } from "./options.js";
import { withSpan } from "./otel-context.js";
import { endedOk, endedWith, planSpan, type SpanPlan } from "./span-plan.js";

/** Options of {@link clientTracing}: what the client endpoint calls, since its context is the caller's. */
export interface ClientTracingOptions extends TracingOptions {
  /** The transport the client uses: `"http"`, `"grpc"`, or another name (becomes `rpc.system`). */
  transport: string;
  /** The HTTP method (`"POST"`), the full gRPC method (`"/pb.Add/Sum"`) or the RPC method name. */
  method: string;
  /** HTTP only: the URL template called (`"/users/:id"`), recorded as `url.template` and in the span name. */
  route?: string;
  /**
   * The URL the client calls. Recorded as `url.full` (credentials redacted), and gives `server.address`
   * and `server.port` unless those are set.
   */
  url?: string | URL;
  /** The peer's host name or address (`server.address`). */
  serverAddress?: string;
  /** The peer's port (`server.port`). */
  serverPort?: number;
  /** The span name. Default: `"POST"` / `"POST /users/:id"` (HTTP), `"pb.Add/Sum"` (gRPC), the method. */
  name?: string;
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { "http:": 80, "https:": 443 };

/** `server.*` and `url.full` attributes from the options, computed once. */
function peerAttributes(options: ClientTracingOptions): Attributes {
  const attributes: Attributes = {};
  let address: string | undefined;
  let port: number | undefined;
  if (options.url !== undefined) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new TypeError(`clientTracing: url ${JSON.stringify(String(options.url))} is not a valid URL`);
    }
    if (url.username !== "" || url.password !== "") {
      url = new URL(url.href);
      url.username = "REDACTED";
      if (url.password !== "") url.password = "REDACTED";
    }
    attributes[ATTR_URL_FULL] = url.href;
    address = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    port = url.port === "" ? DEFAULT_PORTS[url.protocol] : Number(url.port);
  }
  if (options.serverAddress !== undefined) address = options.serverAddress;
  if (options.serverPort !== undefined) {
    const p = options.serverPort;
    if (!Number.isInteger(p) || p < 0 || p > 65535) {
      throw new RangeError(`clientTracing: serverPort must be an integer from 0 to 65535, got ${p}`);
    }
    port = p;
  }
  if (address !== undefined && address !== "") attributes[ATTR_SERVER_ADDRESS] = address;
  if (port !== undefined) attributes[ATTR_SERVER_PORT] = port;
  return attributes;
}

/**
 * Traces each call a client endpoint makes: starts a CLIENT span whose parent is the span of the
 * svckit call in progress (what {@link serverTracing} or {@link withOtelContext} put under
 * {@link otelContextKey}), else the OTel active context; injects the span's trace context into the
 * context's outgoing metadata (so svckit's HTTP client sends it as headers and the gRPC client as
 * metadata), and calls the client with that context. Transport, method and peer come from `options`:
 * the context is the caller's and may describe the caller's own server call.
 *
 * @example
 * ```ts
 * const getUser = clientTracing({ transport: "http", method: "GET", route: "/users/:id", url: base })(
 *   createHttpClient(`${base}/users`, "GET", encodeGetUser, jsonResponseDecoder()),
 * );
 * ```
 */
export function clientTracing(options: ClientTracingOptions): GenericMiddleware {
  if (typeof options?.transport !== "string" || options.transport === "") {
    throw new TypeError("clientTracing: options.transport must be a non-empty string");
  }
  if (typeof options.method !== "string" || options.method === "") {
    throw new TypeError("clientTracing: options.method must be a non-empty string");
  }
  const tracer: Tracer = resolveTracer(options);
  const propagator: TextMapPropagator = resolvePropagator(options);
  const plan: SpanPlan = planSpan(
    "client",
    { transport: options.transport, method: options.method, route: options.route },
    options.name,
    options.attributes,
    peerAttributes(options),
  );

  return function clientTracingMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    // `.then` continuations instead of an async function, as serverTracing: one promise fewer per call.
    return function clientTraced(ctx: Context, request: Req): Promise<Res> {
      let parent: OtelContext;
      let span: Span;
      try {
        parent = ctx.value(otelContextKey) ?? otelContext.active();
        span = tracer.startSpan(plan.name, plan.options, parent);
      } catch (error) {
        return Promise.reject(error);
      }
      let recording = false;
      let pending: Promise<Res>;
      try {
        recording = span.isRecording();
        const otelCtx = withSpan(parent, span);
        let inner = ctx.with(otelContextKey, otelCtx);
        const carrier = newHeaderRecord();
        propagator.inject(otelCtx, carrier, recordSetter);
        for (const _ in carrier) {
          inner = inner.withOutgoingMetadata(carrier);
          break;
        }
        const traceId = validTraceId(span.spanContext());
        if (traceId !== undefined) inner = inner.with(traceIdKey, traceId);
        pending = otelContext.with(otelCtx, next, undefined, inner, request);
      } catch (error) {
        // A throwing propagator or client still gets its span ended, with the error on it.
        return Promise.reject(endedWith(span, plan, recording, error));
      }
      return Promise.resolve(pending).then(
        (response) => endedOk(span, plan, recording, response),
        (error: unknown) => {
          throw endedWith(span, plan, recording, error);
        },
      );
    };
  };
}
