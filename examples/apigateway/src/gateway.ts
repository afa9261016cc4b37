// The gateway: one HTTP listener that authenticates callers once, then routes POST /<service>/<method>
// to an instance of that service found by service discovery, balanced and retried, passing the body
// through untouched and the caller's verified identity on in metadata.
import { type App, type AppEvent, createApp, type HttpAppServer, httpServer } from "@svckit/app";
import {
  authenticate,
  createJwtSigner,
  createJwtVerifier,
  forwardIdentity,
  type JwtVerifierOptions,
  reissueIdentity,
} from "@svckit/auth-jwt";
import {
  Code,
  type Context,
  chain,
  type Endpoint,
  type GenericMiddleware,
  ServiceError,
  timeout,
} from "@svckit/endpoint";
import { createHealth, createHealthHandler } from "@svckit/health";
import { avoidFailedInstances, type BalancerName, createBalancedEndpoint } from "@svckit/lb";
import { type Logger, logging } from "@svckit/log";
import { createRetryBudget, retry } from "@svckit/retry";
import { createEndpointer, type Endpointer, type Instancer } from "@svckit/sd";
import {
  createHttpHandler,
  createJsonErrorEncoder,
  createRouter,
  type ErrorEncoder,
  HttpError,
  type HttpRequest,
  type HttpResponseInit,
  type HttpServerOptions,
  type Router,
} from "@svckit/transport-http";
import { createDiscovery, type Discovery } from "./discovery.js";
import {
  type BalancerFlag,
  type GatewayConfig,
  instanceBaseUrl,
  SERVICE_NAMES,
  type ServiceName,
} from "./flags.js";
import { createProxyClient, type ProxyRequest, type ProxyResponse } from "./upstream.js";

/** The methods of each service the gateway routes, by name, with their path on an instance. */
export const ROUTES: Readonly<Record<ServiceName, Readonly<Record<string, string>>>> = {
  addsvc: { sum: "/sum", concat: "/concat" },
  stringsvc: { uppercase: "/uppercase", count: "/count" },
};

/** `iss` of the tokens the gateway signs with `--identity reissue`. */
export const INTERNAL_ISSUER = "apigateway";
/** `aud` of the tokens the gateway signs with `--identity reissue`. */
export const INTERNAL_AUDIENCE = "svckit-internal";
/** Lifetime of the tokens the gateway signs with `--identity reissue`, in ms. */
export const INTERNAL_TOKEN_TTL = 60_000;

const BALANCERS: Readonly<Record<BalancerFlag, BalancerName>> = {
  "round-robin": "roundRobin",
  p2c: "p2c",
  least: "leastRequests",
  random: "random",
};

/** Response headers of an error (the gateway's own, or an instance's) that reach the caller. */
const PASSED_ERROR_HEADERS = new Set(["www-authenticate", "retry-after", "allow"]);

/**
 * The gateway's error answers: the status of the error's code (an `HttpError`'s own), the JSON body
 * `{"code": "<CODE>", "message": "...", "details"?: [...]}`, and of the error's metadata only
 * `www-authenticate`, `retry-after` and `allow`. An instance's error arrives with that instance's
 * response headers as metadata; its hop-by-hop and framing headers (`connection`, `keep-alive`,
 * `date`, ...) must not become the gateway's.
 */
export const gatewayErrorEncoder: ErrorEncoder = createJsonErrorEncoder({
  passHeader: (name) => PASSED_ERROR_HEADERS.has(name),
});

/** One routed service: its balanced, retried endpoint over the instances discovery reports. */
interface RoutedService {
  readonly name: ServiceName;
  readonly endpointer: Endpointer<ProxyRequest, ProxyResponse>;
  readonly call: Endpoint<ProxyRequest, ProxyResponse>;
}

/** What {@link createApigateway} needs besides the config. */
export interface ApigatewayOptions {
  /** Where lines go: one per listener, per call, per discovery change, retry and ejection. */
  readonly logger: Logger;
  /** The signals that stop it; default SIGTERM and SIGINT (`[]` in tests). */
  readonly signals?: readonly NodeJS.Signals[];
  /** How long calls in flight get to finish on stop, in ms; default 10 000. */
  readonly drainTimeout?: number;
}

/** A set-up gateway: run it with `app.run()` (or `start()` / `stop()`). */
export interface Apigateway {
  /** The lifecycle: waits for discovery's first answer, listens, drains on stop, closes discovery. */
  readonly app: App;
  /** The listener; tells its `address` once started. */
  readonly server: HttpAppServer;
  /** The router (`/healthz`, `/readyz`, `POST /<service>/<method>`), for tests without a listener. */
  readonly router: Router;
}

function authMiddleware(config: GatewayConfig): GenericMiddleware | undefined {
  const { auth } = config;
  if (auth.kind === "none") return undefined;
  const options: JwtVerifierOptions = {
    ...(auth.secret === undefined ? {} : { secret: auth.secret }),
    ...(auth.jwksUrl === undefined ? {} : { jwksUrl: auth.jwksUrl }),
    ...(auth.issuer === undefined ? {} : { issuer: auth.issuer }),
    ...(auth.audience === undefined ? {} : { audience: auth.audience }),
    realm: "apigateway",
  };
  // One verifier for every route: one cache of verified tokens, one fetch of a remote key set.
  const verify = authenticate(createJwtVerifier(options));
  const quiet = withoutRefusalCause();
  return function edgeAuthentication<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return quiet(verify(next));
  };
}

/**
 * Refusals of a caller's token without their `cause`: jose's parse error of whatever a caller sent
 * (with three nested stacks) would otherwise fill the call's log line; the message says what failed.
 */
function withoutRefusalCause(): GenericMiddleware {
  return function withoutRefusalCauseMiddleware<Req, Res>(next: Endpoint<Req, Res>): Endpoint<Req, Res> {
    return async function refusedQuietly(ctx: Context, request: Req): Promise<Res> {
      try {
        return await next(ctx, request);
      } catch (err) {
        if (err instanceof ServiceError && err.code === Code.UNAUTHENTICATED && err.cause !== undefined) {
          throw new ServiceError(err.code, err.message, { details: err.details, metadata: err.metadata });
        }
        throw err;
      }
    };
  };
}

function identityMiddleware(config: GatewayConfig): GenericMiddleware | undefined {
  // Without authentication there is no verified identity to pass on (and the helpers would send
  // nothing anyway). A caller's own x-svckit-identity or authorization header is never passed on:
  // the gateway sends only the content type and what these middlewares put in the outgoing metadata.
  if (config.auth.kind === "none") return undefined;
  if (config.identity.kind === "forward") return forwardIdentity();
  return reissueIdentity(
    createJwtSigner({
      secret: config.identity.secret,
      issuer: INTERNAL_ISSUER,
      audience: INTERNAL_AUDIENCE,
      expiresIn: INTERNAL_TOKEN_TTL,
    }),
  );
}

function routeService(
  name: ServiceName,
  instancer: Instancer,
  config: GatewayConfig,
  logger: Logger,
): RoutedService {
  const endpointer = createEndpointer<ProxyRequest, ProxyResponse>(
    instancer,
    (instance) => ({ endpoint: createProxyClient(instanceBaseUrl(instance.address)) }),
    {
      onError: (error, { during, instance }) =>
        logger.log("warn", `${name}: endpoint ${during} failed`, {
          service: name,
          instance: instance?.address,
          error: error instanceof Error ? error.message : String(error),
        }),
    },
  );
  const balanced = createBalancedEndpoint(endpointer, {
    balancer: BALANCERS[config.balancer],
    service: name,
    outlierDetection: {
      onEject: (instance, ms) =>
        logger.log("warn", `${name}: ejected ${instance.address} after consecutive failures`, {
          service: name,
          instance: instance.address,
          ms,
        }),
      onReadmit: (instance) =>
        logger.log("info", `${name}: readmitted ${instance.address}`, {
          service: name,
          instance: instance.address,
        }),
    },
  });
  // go-kit's lb.Retry(max, timeout, balancer): at most `retryMax` attempts within `retryTimeout` in
  // all, each on an instance that has not failed this call yet (while one is left), UNAVAILABLE
  // (refused, reset, cut off, an open breaker) and attempt timeouts only: an instance's answer such as
  // 400 "can't sum two zeroes" is final. A budget keeps retries to 20 % of calls (plus 10 per second)
  // so a dead service does not get three times the load.
  const call = chain<ProxyRequest, ProxyResponse>(
    timeout(config.retryTimeout),
    avoidFailedInstances(),
    retry({
      maxAttempts: config.retryMax,
      backoff: { initial: 10, max: 100 },
      ...(config.attemptTimeout > 0 ? { perAttemptTimeout: config.attemptTimeout } : {}),
      budget: createRetryBudget(),
      onRetry: ({ attempt, delay, error }) =>
        logger.log("warn", `${name}: retrying after attempt ${attempt} failed`, {
          service: name,
          attempt,
          delayMs: Math.round(delay),
          code: error instanceof ServiceError ? error.codeName : "UNKNOWN",
          error: error instanceof Error ? error.message : String(error),
        }),
    }),
  )(balanced);
  return { name, endpointer, call };
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function encodeProxyResponse(_ctx: Context, response: ProxyResponse): HttpResponseInit {
  return {
    status: response.status,
    ...(response.contentType === undefined ? {} : { contentType: response.contentType }),
    body: response.body,
  };
}

function unknownRoute(request: HttpRequest): ServiceError {
  const { service = "", method = "" } = request.params;
  if (!(SERVICE_NAMES as readonly string[]).includes(service)) {
    return new HttpError(
      404,
      Code.NOT_FOUND,
      `unknown service "${service}": the gateway routes ${SERVICE_NAMES.map((s) => `/${s}/<method>`).join(" and ")}`,
    );
  }
  const methods = Object.keys(ROUTES[service as ServiceName]);
  return new HttpError(
    404,
    Code.NOT_FOUND,
    `unknown method "${method}" of ${service}: expected ${methods.join(" or ")}`,
  );
}

/**
 * Sets up the gateway from its config: discovery (static, etcd or Consul) for addsvc and stringsvc,
 * one endpointer per service making a pass-through HTTP client per instance, the configured
 * balancer with passive health checking, retries within `retryTimeout`, authentication at the edge
 * (unless `auth: none`) and the verified identity passed on (forwarded or reissued), all on one HTTP
 * listener with `/healthz` and `/readyz`. Rejects with a `TypeError` for a secret or key source the
 * verifier or signer cannot use.
 *
 * @example
 * ```ts
 * const { config } = parseCommandLine(["--auth", "none"]) as { config: GatewayConfig };
 * const { app } = await createApigateway(config, { logger: createWinstonLogger() });
 * await app.run(); // until SIGTERM or SIGINT
 * ```
 */
export async function createApigateway(
  config: GatewayConfig,
  options: ApigatewayOptions,
): Promise<Apigateway> {
  const { logger } = options;
  const auth = authMiddleware(config);
  const identity = identityMiddleware(config);
  const discovery: Discovery = await createDiscovery(config);

  const services = SERVICE_NAMES.map((name) =>
    routeService(name, discovery.instancers[name], config, logger),
  );
  const unsubscribes = services.map(({ name }) =>
    discovery.instancers[name].subscribe(({ instances, error }) => {
      if (error !== undefined) {
        logger.log("warn", `${name}: discovery failed, keeping ${instances.length} instances`, {
          service: name,
          error: error.message,
        });
        return;
      }
      logger.log("info", `${name}: ${instances.length} instance${instances.length === 1 ? "" : "s"}`, {
        service: name,
        instances: instances.map((i) => i.address),
      });
    }),
  );

  // Readiness stays 200 without instances (the other service may have some), with a warning that says so.
  const health = createHealth();
  for (const { name, endpointer } of services) {
    health.addReadiness(name, () =>
      endpointer.endpoints().length > 0
        ? undefined
        : { status: "warning", message: `no instances of ${name}` },
    );
  }

  const handlerOptions: HttpServerOptions = { errorEncoder: gatewayErrorEncoder };
  const router = createRouter({ errorEncoder: gatewayErrorEncoder });
  const healthHandler = createHealthHandler(health);
  router.get("/healthz", healthHandler).get("/readyz", healthHandler);
  for (const service of services) {
    for (const [method, path] of Object.entries(ROUTES[service.name])) {
      const forward: Endpoint<ProxyRequest, ProxyResponse> =
        identity === undefined ? service.call : identity(service.call);
      const endpoint = chain<ProxyRequest, ProxyResponse>(
        logging({ logger, name: `${service.name}/${method}` }),
        ...(auth === undefined ? [] : [auth]),
      )(forward);
      router.post(
        `/${service.name}/${method}`,
        createHttpHandler(
          endpoint,
          (_ctx, request): ProxyRequest => ({
            path,
            contentType: header(request.headers["content-type"]),
            body: request.body,
          }),
          encodeProxyResponse,
          handlerOptions,
        ),
      );
    }
  }
  // Anything else of the form /<service>/<method> is a 404 that says what the gateway does route. The
  // decoder refuses every request, so the endpoint never runs.
  router.post(
    "/:service/:method",
    createHttpHandler<ProxyRequest, ProxyResponse>(
      async () => {
        throw new ServiceError(Code.INTERNAL, "internal error");
      },
      (_ctx, request) => {
        throw unknownRoute(request);
      },
      encodeProxyResponse,
      handlerOptions,
    ),
  );

  const server = httpServer(router.handle, { address: config.httpAddr, name: "HTTP" });
  const app = createApp({
    name: "apigateway",
    servers: [server],
    readiness: health,
    drainTimeout: options.drainTimeout ?? 10_000,
    ...(options.signals === undefined ? {} : { signals: options.signals }),
    // Route only once discovery has answered (or failed) once, so the first calls find the instances.
    beforeStart: () => discovery.ready(),
    afterStart: () => {
      logger.log("info", `${server.name} listening on ${server.address}`, {
        transport: server.name,
        addr: server.address,
        sd: config.sd,
        auth: config.auth.kind,
        identity: config.auth.kind === "none" ? "none" : config.identity.kind,
      });
    },
    afterStop: async () => {
      for (const unsubscribe of unsubscribes) unsubscribe();
      await Promise.all(services.map((s) => s.endpointer.close()));
      await discovery.close();
    },
    onEvent: (event: AppEvent) => {
      if (event.type === "stopping") logger.log("info", "shutting down", { signal: event.reason });
      else if (event.type === "drain-timeout") {
        logger.log("warn", "drain timeout", { ms: Math.round(event.ms) });
      } else if (event.type === "exit") console.error(`apigateway: ${event.signal} again, exiting now`);
    },
  });
  return { app, server, router };
}
