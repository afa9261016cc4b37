import { type Attributes, type Span, SpanKind, type SpanOptions, SpanStatusCode } from "@opentelemetry/api";
import { Code, codeToHttpStatus, codeToString, ServiceError } from "@svckit/endpoint";
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  ATTR_SVCKIT_CODE,
  ATTR_URL_TEMPLATE,
} from "./attributes.js";

/** Which conventions a span follows: HTTP, gRPC, or generic RPC (any other transport). */
export type Protocol = "http" | "grpc" | "rpc";

/** What one call's span looks like, computed once per distinct call description, not per call. */
export interface SpanPlan {
  readonly name: string;
  /** Kind and the attributes known at start (shared by every span of the plan; never mutated). */
  readonly options: SpanOptions;
  readonly protocol: Protocol;
  readonly side: "server" | "client";
}

/** The call a span describes: a svckit `CallInfo` on servers, the client options on clients. */
export interface CallTarget {
  readonly transport: string;
  readonly method: string;
  readonly route?: string | undefined;
}

/** The HTTP methods the semantic conventions know; others are recorded as `_OTHER`. */
const KNOWN_HTTP_METHODS: ReadonlySet<string> = new Set([
  "CONNECT",
  "DELETE",
  "GET",
  "HEAD",
  "OPTIONS",
  "PATCH",
  "POST",
  "PUT",
  "TRACE",
]);

/**
 * The codes that are the server's fault, so a server span's status is ERROR (the RPC semantic
 * conventions' list for gRPC). Client faults (INVALID_ARGUMENT, NOT_FOUND, ...) leave it UNSET.
 */
const SERVER_FAULTS: ReadonlySet<Code> = new Set<Code>([
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
  Code.UNIMPLEMENTED,
  Code.INTERNAL,
  Code.UNAVAILABLE,
  Code.DATA_LOSS,
]);

/** `"/pb.Add/Sum"` → service `"pb.Add"`, method `"Sum"`, name `"pb.Add/Sum"`. */
function splitGrpcPath(path: string): { name: string; service: string | undefined; method: string } {
  const name = path.startsWith("/") ? path.slice(1) : path;
  const slash = name.lastIndexOf("/");
  return slash <= 0
    ? { name, service: undefined, method: name }
    : { name, service: name.slice(0, slash), method: name.slice(slash + 1) };
}

/**
 * Builds the span plan of a call. `extra` attributes go on top of the computed ones; `name`
 * replaces the computed span name.
 */
export function planSpan(
  side: "server" | "client",
  target: CallTarget | undefined,
  name: string | undefined,
  extra: Attributes | undefined,
  fixed?: Attributes,
): SpanPlan {
  const attributes: Attributes = {};
  let protocol: Protocol = "rpc";
  let spanName: string;
  if (target === undefined) {
    spanName = side === "server" ? "svckit.server" : "svckit.client";
  } else if (target.transport === "http") {
    protocol = "http";
    const known = KNOWN_HTTP_METHODS.has(target.method);
    attributes[ATTR_HTTP_REQUEST_METHOD] = known ? target.method : "_OTHER";
    if (!known) attributes[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = target.method;
    const route = target.route === "" ? undefined : target.route;
    if (route !== undefined) attributes[side === "server" ? ATTR_HTTP_ROUTE : ATTR_URL_TEMPLATE] = route;
    const verb = known ? target.method : "HTTP";
    spanName = route === undefined ? verb : `${verb} ${route}`;
  } else if (target.transport === "grpc") {
    protocol = "grpc";
    const path = splitGrpcPath(target.method);
    attributes[ATTR_RPC_SYSTEM] = "grpc";
    if (path.service !== undefined) attributes[ATTR_RPC_SERVICE] = path.service;
    attributes[ATTR_RPC_METHOD] = path.method;
    spanName = path.name;
  } else {
    attributes[ATTR_RPC_SYSTEM] = target.transport;
    attributes[ATTR_RPC_METHOD] = target.method;
    spanName = target.method;
  }
  if (fixed !== undefined) Object.assign(attributes, fixed);
  if (extra !== undefined) Object.assign(attributes, extra);
  return {
    name: name ?? spanName,
    options: { kind: side === "server" ? SpanKind.SERVER : SpanKind.CLIENT, attributes },
    protocol,
    side,
  };
}

/** Records a successful call on a recording span. */
export function recordSuccess(span: Span, plan: SpanPlan): void {
  if (plan.protocol === "http") span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, 200);
  else if (plan.protocol === "grpc") span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, Code.OK);
}

/**
 * The HTTP status of a failed call: the error's own `status` (an `HttpError`), else the one its code
 * maps to. On a client, an error that came without a response (connection failed, deadline, cancel)
 * has none: svckit's HTTP client puts the response headers on errors it decodes from a response, so an
 * error without metadata had none.
 */
function httpStatusOf(
  error: unknown,
  serviceError: ServiceError,
  side: "server" | "client",
): number | undefined {
  const own =
    typeof error === "object" && error !== null ? (error as { status?: unknown }).status : undefined;
  if (typeof own === "number" && Number.isInteger(own) && own >= 100 && own <= 599) return own;
  if (side === "client" && serviceError.metadata.size === 0) return undefined;
  return codeToHttpStatus[serviceError.code];
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { message?: unknown }).message === "string"
  ) {
    return (error as { message: string }).message;
  }
  return String(error);
}

/**
 * Records a failed call on a recording span: the code (`svckit.code`, and `rpc.grpc.status_code` or
 * `http.response.status_code`), the exception for anything that is not a ServiceError, and status ERROR
 * with `error.type` when the failure counts as an error for this kind of span.
 */
export function recordFailure(span: Span, plan: SpanPlan, error: unknown): void {
  const serviceError = ServiceError.from(error);
  const code = serviceError.code;
  const codeName = codeToString(code);
  span.setAttribute(ATTR_SVCKIT_CODE, codeName);
  let isError: boolean;
  if (plan.protocol === "http") {
    const status = httpStatusOf(error, serviceError, plan.side);
    if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    // HTTP semconv: a server fails on 5xx only (4xx is the client's fault); a client on any failure.
    isError = plan.side === "client" || status === undefined || status >= 500;
  } else {
    if (plan.protocol === "grpc") span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code);
    isError = plan.side === "client" || SERVER_FAULTS.has(code);
  }
  if (!(error instanceof ServiceError)) {
    span.recordException(error instanceof Error ? error : messageOf(error));
  }
  if (isError) {
    span.setAttribute(ATTR_ERROR_TYPE, codeName);
    span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(error) });
  }
}

/** Records `error` on a recording span and ends the span; returns `error`, for the caller to throw on. */
export function endedWith(span: Span, plan: SpanPlan, recording: boolean, error: unknown): unknown {
  try {
    if (recording) recordFailure(span, plan, error);
  } finally {
    span.end();
  }
  return error;
}

/** Records success on a recording span and ends the span; returns `response`. */
export function endedOk<Res>(span: Span, plan: SpanPlan, recording: boolean, response: Res): Res {
  try {
    if (recording) recordSuccess(span, plan);
  } finally {
    span.end();
  }
  return response;
}
