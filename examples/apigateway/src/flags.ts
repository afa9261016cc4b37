// The apigateway's command line, read with node:util's parseArgs: `--flag value` or `--flag=value`.
// Everything here is pure (argv and env in, a config or an Error out), so main can answer --help and a
// bad command line before any server library is loaded, and the unit tests can pin every rule.
import { parseArgs } from "node:util";

/** Where the gateway finds the instances of each service. */
export type DiscoveryKind = "static" | "etcd" | "consul";

/** The balancer that spreads one service's calls over its instances. */
export type BalancerFlag = "round-robin" | "p2c" | "least" | "random";

/** The services the gateway routes to, by the first segment of the path. */
export const SERVICE_NAMES = ["addsvc", "stringsvc"] as const;

/** One of {@link SERVICE_NAMES}. */
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** How callers are authenticated at the edge. */
export type AuthConfig =
  | { readonly kind: "none" }
  | {
      readonly kind: "jwt";
      /** Shared HMAC secret (at least 32 bytes) the callers' tokens are signed with. */
      readonly secret?: string;
      /** A JWKS URL the callers' tokens are verified against (an OIDC provider's). */
      readonly jwksUrl?: string;
      /** The `iss` callers' tokens must carry, if set. */
      readonly issuer?: string;
      /** The `aud` callers' tokens must carry, if set. */
      readonly audience?: string;
    };

/** How the verified identity travels to the services. */
export type IdentityConfig =
  | { readonly kind: "forward" }
  | {
      readonly kind: "reissue";
      /** The HMAC secret (at least 32 bytes) the gateway signs its internal tokens with. */
      readonly secret: string;
    };

/** Everything the gateway is set up from. */
export interface GatewayConfig {
  /** Where the gateway listens, `host:port` (port 0 picks a free one). */
  readonly httpAddr: string;
  /** Where instances come from. */
  readonly sd: DiscoveryKind;
  /** The instances of each service for `sd: "static"`: base URLs such as `http://127.0.0.1:8081`. */
  readonly instances: Readonly<Record<ServiceName, readonly string[]>>;
  /** etcd's client URLs, for `sd: "etcd"`. */
  readonly etcdEndpoints: readonly string[];
  /** The etcd key prefix; a service's instances are the keys under `<prefix><service>/`. */
  readonly etcdPrefix: string;
  /** The Consul agent's HTTP API, for `sd: "consul"`. */
  readonly consulAddr: string;
  /** The balancer of every service. */
  readonly balancer: BalancerFlag;
  /** Attempts per gateway call, the first included (go-kit's `retryMax`). */
  readonly retryMax: number;
  /** Time limit of a whole gateway call, all attempts together, in ms (go-kit's `retryTimeout`). */
  readonly retryTimeout: number;
  /** Time limit of one attempt in ms, or 0 for none (the call's own limit still applies). */
  readonly attemptTimeout: number;
  /** Authentication at the edge. */
  readonly auth: AuthConfig;
  /** How the verified identity is passed on. */
  readonly identity: IdentityConfig;
}

/** What the command line asked for: the usage, or a gateway with this config. */
export type CommandLine = { readonly help: true } | { readonly help: false; readonly config: GatewayConfig };

/** The environment variable read when `--jwt-secret` is not given. */
export const JWT_SECRET_ENV = "APIGATEWAY_JWT_SECRET";
/** The environment variable read when `--identity-secret` is not given. */
export const IDENTITY_SECRET_ENV = "APIGATEWAY_IDENTITY_SECRET";

/** The usage text `--help` prints and a bad command line follows. */
export const usage = `usage: apigateway [flags]
  --http-addr host:port      where the gateway listens (default 127.0.0.1:8000; port 0 = a free port)
  --sd static|etcd|consul    where instances come from (default static)
  --addsvc list              addsvc HTTP instances for --sd static, comma-separated
                             (default http://127.0.0.1:8081; "" = none)
  --stringsvc list           stringsvc HTTP instances for --sd static (default http://127.0.0.1:8080)
  --etcd-endpoints list      etcd client URLs for --sd etcd (default http://127.0.0.1:2379)
  --etcd-prefix prefix       instances are the keys under <prefix><service>/ (default /services/)
  --consul-addr url          Consul agent for --sd consul (default http://127.0.0.1:8500)
  --balancer name            round-robin, p2c, least or random (default p2c)
  --retry-max n              attempts per call, the first included (default 3)
  --retry-timeout d          time limit of a call, all attempts together (default 1s)
  --attempt-timeout d        time limit of one attempt, 0 = none (default 0)
  --auth jwt|none            verify a bearer token on every call (default jwt)
  --jwt-secret s             HMAC secret of the callers' tokens, >= 32 bytes (or $${JWT_SECRET_ENV})
  --jwt-jwks-url url         verify the callers' tokens against this JWKS instead
  --jwt-issuer iss           required iss of the callers' tokens (default: not checked)
  --jwt-audience aud         required aud of the callers' tokens (default: not checked)
  --identity forward|reissue how the verified identity reaches the services (default forward):
                             forward = unsigned x-svckit-identity header (trusted network only),
                             reissue = a 60 s token signed with --identity-secret
  --identity-secret s        HMAC secret of the reissued tokens, >= 32 bytes (or $${IDENTITY_SECRET_ENV})
  -h, --help                 print this and exit
Durations: 250ms, 1s, 1.5s, 1m.`;

const BALANCERS: readonly BalancerFlag[] = ["round-robin", "p2c", "least", "random"];
const DISCOVERY: readonly DiscoveryKind[] = ["static", "etcd", "consul"];

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000 };

/**
 * A duration flag in milliseconds: `250ms`, `1s`, `1.5s`, `1m`, or `0`. Throws an `Error` naming the
 * flag for anything else.
 *
 * @example
 * ```ts
 * parseDurationFlag("retry-timeout", "1.5s"); // 1500
 * ```
 */
export function parseDurationFlag(flag: string, value: string): number {
  if (value === "0") return 0;
  const match = DURATION.exec(value);
  if (match === null) throw new Error(`--${flag}: invalid duration "${value}", expected e.g. 250ms, 1s, 1m`);
  return Math.round(Number(match[1]) * (UNIT_MS[match[2] as string] as number));
}

/**
 * The base URL of an HTTP instance: `127.0.0.1:8081` gets `http://`, a URL is kept, trailing slashes
 * go. Throws an `Error` for anything that is not an http(s) URL with a host once that is done.
 *
 * @example
 * ```ts
 * instanceBaseUrl("127.0.0.1:8081"); // "http://127.0.0.1:8081"
 * ```
 */
export function instanceBaseUrl(address: string): string {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `http://${address}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`invalid instance address "${address}": expected host:port or http://host:port`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    throw new Error(`invalid instance address "${address}": expected host:port or http://host:port`);
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new Error(`invalid instance address "${address}": no query, fragment or credentials`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/** A comma-separated list: items trimmed, empty items dropped (so `""` is the empty list). */
function list(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** `host:port`, `[ipv6]:port` or `:port` with a port of 0–65535 in digits. */
function checkListenAddr(value: string): string {
  const i = value.lastIndexOf(":");
  const port = value.slice(i + 1);
  const host = i < 0 ? "" : value.slice(0, i);
  if (i < 0 || !/^\d{1,5}$/.test(port) || Number(port) > 65535 || /\s/.test(host)) {
    throw new Error(`--http-addr: invalid address "${value}", expected host:port (e.g. 127.0.0.1:8000)`);
  }
  return value;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(`--${flag}: unknown value "${value}", expected one of ${allowed.join(", ")}`);
  }
  return value as T;
}

function checkUrl(flag: string, value: string): string {
  let protocol = "";
  try {
    protocol = new URL(value).protocol;
  } catch {
    // Not a URL at all: the same message as another scheme.
  }
  if (protocol !== "http:" && protocol !== "https:") {
    throw new Error(`--${flag}: invalid URL "${value}", expected http://host:port or https://host:port`);
  }
  return value;
}

function checkSecret(flag: string, env: string, value: string): string {
  if (Buffer.byteLength(value) < 32) {
    throw new Error(`--${flag} (or $${env}) must be at least 32 bytes for HS256`);
  }
  return value;
}

const OPTIONS = {
  "http-addr": { type: "string" },
  sd: { type: "string" },
  addsvc: { type: "string" },
  stringsvc: { type: "string" },
  "etcd-endpoints": { type: "string" },
  "etcd-prefix": { type: "string" },
  "consul-addr": { type: "string" },
  balancer: { type: "string" },
  "retry-max": { type: "string" },
  "retry-timeout": { type: "string" },
  "attempt-timeout": { type: "string" },
  auth: { type: "string" },
  "jwt-secret": { type: "string" },
  "jwt-jwks-url": { type: "string" },
  "jwt-issuer": { type: "string" },
  "jwt-audience": { type: "string" },
  identity: { type: "string" },
  "identity-secret": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** node:util's parseArgs over {@link OPTIONS}, its error for an unknown flag made short. */
function readArgs(args: readonly string[]) {
  try {
    return parseArgs({ args: [...args], strict: true, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    const unknown = /^Unknown option '([^']+)'/.exec((err as Error).message);
    if (unknown !== null) throw new Error(`unknown flag ${unknown[1]}`);
    throw err;
  }
}

/**
 * Reads the gateway's command line. `env` supplies the secrets not given as flags
 * ({@link JWT_SECRET_ENV}, {@link IDENTITY_SECRET_ENV}), so they need not show in `ps`. Throws an
 * `Error` whose message says what is wrong: an unknown flag, a missing value, a bad address, duration
 * or count, a flag that does not fit the discovery or auth chosen, a missing or short secret.
 *
 * @example
 * ```ts
 * const cl = parseCommandLine(["--auth", "none", "--addsvc", "127.0.0.1:8081,127.0.0.1:8091"], {});
 * if (!cl.help) console.log(cl.config.instances.addsvc); // ["http://127.0.0.1:8081", "http://127.0.0.1:8091"]
 * ```
 */
export function parseCommandLine(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): CommandLine {
  const { values, positionals } = readArgs(args);
  if (values.help === true) return { help: true };
  if (positionals.length > 0) throw new Error(`unexpected argument "${positionals[0]}"`);

  const httpAddr = checkListenAddr(values["http-addr"] ?? "127.0.0.1:8000");
  const sd = oneOf("sd", values.sd ?? "static", DISCOVERY);

  // Each backend's flags only make sense with that backend: a silently ignored flag hides a typo.
  const owners: Readonly<Record<string, DiscoveryKind>> = {
    addsvc: "static",
    stringsvc: "static",
    "etcd-endpoints": "etcd",
    "etcd-prefix": "etcd",
    "consul-addr": "consul",
  };
  for (const [flag, owner] of Object.entries(owners)) {
    if (values[flag as keyof typeof values] !== undefined && owner !== sd) {
      throw new Error(`--${flag} is for --sd ${owner}, not --sd ${sd}`);
    }
  }
  const instances: Record<ServiceName, readonly string[]> = {
    addsvc: list(values.addsvc ?? "http://127.0.0.1:8081").map(instanceBaseUrl),
    stringsvc: list(values.stringsvc ?? "http://127.0.0.1:8080").map(instanceBaseUrl),
  };
  const etcdEndpoints = list(values["etcd-endpoints"] ?? "http://127.0.0.1:2379").map((u) =>
    checkUrl("etcd-endpoints", u),
  );
  if (etcdEndpoints.length === 0) throw new Error("--etcd-endpoints: give at least one URL");
  const etcdPrefix = values["etcd-prefix"] ?? "/services/";
  if (etcdPrefix === "") throw new Error("--etcd-prefix must not be empty");
  const consulAddr = checkUrl("consul-addr", values["consul-addr"] ?? "http://127.0.0.1:8500");

  const balancer = oneOf("balancer", values.balancer ?? "p2c", BALANCERS);
  const retryMaxText = values["retry-max"] ?? "3";
  if (!/^\d{1,3}$/.test(retryMaxText) || Number(retryMaxText) < 1) {
    throw new Error(`--retry-max: invalid value "${retryMaxText}", expected a whole number from 1 to 999`);
  }
  const retryTimeout = parseDurationFlag("retry-timeout", values["retry-timeout"] ?? "1s");
  if (retryTimeout === 0) throw new Error("--retry-timeout must be more than 0");
  const attemptTimeout = parseDurationFlag("attempt-timeout", values["attempt-timeout"] ?? "0");

  const authKind = oneOf("auth", values.auth ?? "jwt", ["jwt", "none"] as const);
  const jwtFlags = ["jwt-secret", "jwt-jwks-url", "jwt-issuer", "jwt-audience"] as const;
  let auth: AuthConfig;
  if (authKind === "none") {
    const given = jwtFlags.find((f) => values[f] !== undefined);
    if (given !== undefined) throw new Error(`--${given} needs --auth jwt`);
    auth = { kind: "none" };
  } else {
    const secret = values["jwt-secret"] ?? env[JWT_SECRET_ENV];
    const jwksUrl = values["jwt-jwks-url"];
    if (jwksUrl !== undefined && values["jwt-secret"] !== undefined) {
      throw new Error("give --jwt-secret or --jwt-jwks-url, not both");
    }
    const issuer = values["jwt-issuer"];
    const audience = values["jwt-audience"];
    if (jwksUrl !== undefined) {
      auth = {
        kind: "jwt",
        jwksUrl: checkUrl("jwt-jwks-url", jwksUrl),
        ...(issuer === undefined ? {} : { issuer }),
        ...(audience === undefined ? {} : { audience }),
      };
    } else if (secret !== undefined && secret !== "") {
      auth = {
        kind: "jwt",
        secret: checkSecret("jwt-secret", JWT_SECRET_ENV, secret),
        ...(issuer === undefined ? {} : { issuer }),
        ...(audience === undefined ? {} : { audience }),
      };
    } else {
      throw new Error(
        `--auth jwt (the default) needs --jwt-secret (or $${JWT_SECRET_ENV}) or --jwt-jwks-url; ` +
          "use --auth none to run without authentication",
      );
    }
  }

  const identityKind = oneOf("identity", values.identity ?? "forward", ["forward", "reissue"] as const);
  let identity: IdentityConfig;
  if (identityKind === "reissue") {
    const secret = values["identity-secret"] ?? env[IDENTITY_SECRET_ENV];
    if (secret === undefined || secret === "") {
      throw new Error(`--identity reissue needs --identity-secret (or $${IDENTITY_SECRET_ENV})`);
    }
    identity = { kind: "reissue", secret: checkSecret("identity-secret", IDENTITY_SECRET_ENV, secret) };
  } else {
    if (values["identity-secret"] !== undefined)
      throw new Error("--identity-secret needs --identity reissue");
    identity = { kind: "forward" };
  }

  return {
    help: false,
    config: {
      httpAddr,
      sd,
      instances,
      etcdEndpoints,
      etcdPrefix,
      consulAddr,
      balancer,
      retryMax: Number(retryMaxText),
      retryTimeout,
      attemptTimeout,
      auth,
      identity,
    },
  };
}
