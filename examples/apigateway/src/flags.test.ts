import { describe, expect, it } from "vitest";
import {
  type GatewayConfig,
  IDENTITY_SECRET_ENV,
  instanceBaseUrl,
  JWT_SECRET_ENV,
  parseCommandLine,
  parseDurationFlag,
} from "./flags.js";

const SECRET = "0123456789abcdef0123456789abcdef";
const NO_AUTH = ["--auth", "none"];

function config(args: readonly string[], env: Record<string, string> = {}): GatewayConfig {
  const cl = parseCommandLine(args, env);
  if (cl.help) throw new Error("asked for help");
  return cl.config;
}

function refusal(args: readonly string[], env: Record<string, string> = {}): string {
  try {
    parseCommandLine(args, env);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`accepted ${args.join(" ")}`);
}

describe("parseCommandLine", () => {
  it("has go-kit's apigateway defaults: static discovery of one local addsvc and stringsvc, 3 attempts", () => {
    expect(config([], { [JWT_SECRET_ENV]: SECRET })).toEqual({
      httpAddr: "127.0.0.1:8000",
      sd: "static",
      instances: { addsvc: ["http://127.0.0.1:8081"], stringsvc: ["http://127.0.0.1:8080"] },
      etcdEndpoints: ["http://127.0.0.1:2379"],
      etcdPrefix: "/services/",
      consulAddr: "http://127.0.0.1:8500",
      balancer: "p2c",
      retryMax: 3,
      retryTimeout: 1_000,
      attemptTimeout: 0,
      auth: { kind: "jwt", secret: SECRET },
      identity: { kind: "forward" },
    });
  });

  it("reads --flag value and --flag=value, and -h / --help", () => {
    expect(config([...NO_AUTH, "--http-addr", "127.0.0.1:0"]).httpAddr).toBe("127.0.0.1:0");
    expect(config([...NO_AUTH, "--http-addr=:9000"]).httpAddr).toBe(":9000");
    expect(parseCommandLine(["-h"]).help).toBe(true);
    expect(parseCommandLine(["--help"]).help).toBe(true);
  });

  it("takes comma-separated instance lists as host:port or URLs, and an empty list", () => {
    const c = config([
      ...NO_AUTH,
      "--addsvc",
      "127.0.0.1:8081, http://10.0.0.2:8081/,https://add.internal/v1/",
      "--stringsvc",
      "",
    ]);
    expect(c.instances.addsvc).toEqual([
      "http://127.0.0.1:8081",
      "http://10.0.0.2:8081",
      "https://add.internal/v1",
    ]);
    expect(c.instances.stringsvc).toEqual([]);
  });

  it("takes etcd and Consul settings with their --sd only", () => {
    const etcd = config([
      ...NO_AUTH,
      "--sd",
      "etcd",
      "--etcd-endpoints",
      "http://10.0.0.1:2379,http://10.0.0.2:2379",
      "--etcd-prefix",
      "/svc/",
    ]);
    expect(etcd).toMatchObject({
      sd: "etcd",
      etcdEndpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"],
      etcdPrefix: "/svc/",
    });
    expect(config([...NO_AUTH, "--sd", "consul", "--consul-addr", "http://consul:8500"])).toMatchObject({
      sd: "consul",
      consulAddr: "http://consul:8500",
    });
    expect(refusal([...NO_AUTH, "--sd", "etcd", "--addsvc", "127.0.0.1:1"])).toBe(
      "--addsvc is for --sd static, not --sd etcd",
    );
    expect(refusal([...NO_AUTH, "--consul-addr", "http://consul:8500"])).toBe(
      "--consul-addr is for --sd consul, not --sd static",
    );
    expect(refusal([...NO_AUTH, "--sd", "dns"])).toBe(
      '--sd: unknown value "dns", expected one of static, etcd, consul',
    );
    expect(refusal([...NO_AUTH, "--sd", "etcd", "--etcd-endpoints", "10.0.0.1:2379"])).toBe(
      '--etcd-endpoints: invalid URL "10.0.0.1:2379", expected http://host:port or https://host:port',
    );
  });

  it("maps balancer names and reads retries and durations", () => {
    const c = config([
      ...NO_AUTH,
      "--balancer",
      "round-robin",
      "--retry-max",
      "5",
      "--retry-timeout",
      "1.5s",
      "--attempt-timeout",
      "200ms",
    ]);
    expect(c).toMatchObject({
      balancer: "round-robin",
      retryMax: 5,
      retryTimeout: 1_500,
      attemptTimeout: 200,
    });
    expect(refusal([...NO_AUTH, "--balancer", "fastest"])).toBe(
      '--balancer: unknown value "fastest", expected one of round-robin, p2c, least, random',
    );
    expect(refusal([...NO_AUTH, "--retry-max", "0"])).toMatch(/^--retry-max: invalid value "0"/);
    expect(refusal([...NO_AUTH, "--retry-max", "two"])).toMatch(/^--retry-max: invalid value "two"/);
    expect(refusal([...NO_AUTH, "--retry-timeout", "0"])).toBe("--retry-timeout must be more than 0");
    expect(refusal([...NO_AUTH, "--retry-timeout", "5"])).toBe(
      '--retry-timeout: invalid duration "5", expected e.g. 250ms, 1s, 1m',
    );
  });

  it("needs a key source for --auth jwt, the default, and says how to turn auth off", () => {
    expect(refusal([])).toBe(
      `--auth jwt (the default) needs --jwt-secret (or $${JWT_SECRET_ENV}) or --jwt-jwks-url; use --auth none to run without authentication`,
    );
    expect(refusal(["--jwt-secret", "short"])).toBe(
      `--jwt-secret (or $${JWT_SECRET_ENV}) must be at least 32 bytes for HS256`,
    );
    expect(config(["--jwt-secret", SECRET, "--jwt-issuer", "idp", "--jwt-audience", "api"]).auth).toEqual({
      kind: "jwt",
      secret: SECRET,
      issuer: "idp",
      audience: "api",
    });
    expect(config(["--jwt-jwks-url", "https://idp.example/jwks.json"]).auth).toEqual({
      kind: "jwt",
      jwksUrl: "https://idp.example/jwks.json",
    });
    expect(refusal(["--jwt-secret", SECRET, "--jwt-jwks-url", "https://idp.example/jwks.json"])).toBe(
      "give --jwt-secret or --jwt-jwks-url, not both",
    );
    expect(refusal([...NO_AUTH, "--jwt-secret", SECRET])).toBe("--jwt-secret needs --auth jwt");
    expect(refusal(["--auth", "basic"])).toBe('--auth: unknown value "basic", expected one of jwt, none');
  });

  it("forwards the identity by default; reissuing needs a secret of its own", () => {
    expect(config(NO_AUTH).identity).toEqual({ kind: "forward" });
    expect(refusal([...NO_AUTH, "--identity", "reissue"])).toBe(
      `--identity reissue needs --identity-secret (or $${IDENTITY_SECRET_ENV})`,
    );
    expect(config([...NO_AUTH, "--identity", "reissue"], { [IDENTITY_SECRET_ENV]: SECRET }).identity).toEqual(
      {
        kind: "reissue",
        secret: SECRET,
      },
    );
    expect(refusal([...NO_AUTH, "--identity-secret", SECRET])).toBe(
      "--identity-secret needs --identity reissue",
    );
    expect(refusal([...NO_AUTH, "--identity", "reissue", "--identity-secret", "x"])).toBe(
      `--identity-secret (or $${IDENTITY_SECRET_ENV}) must be at least 32 bytes for HS256`,
    );
  });

  it("refuses unknown flags, missing values, stray arguments and bad addresses", () => {
    expect(refusal(["--bogus"])).toBe("unknown flag --bogus");
    expect(refusal(["--http-addr"])).toMatch(/--http-addr/);
    expect(refusal([...NO_AUTH, "serve"])).toBe('unexpected argument "serve"');
    expect(refusal([...NO_AUTH, "--http-addr", "8000"])).toBe(
      '--http-addr: invalid address "8000", expected host:port (e.g. 127.0.0.1:8000)',
    );
    expect(refusal([...NO_AUTH, "--http-addr", "127.0.0.1:70000"])).toMatch(/^--http-addr: invalid address/);
    expect(refusal([...NO_AUTH, "--addsvc", "ftp://x:1"])).toBe(
      'invalid instance address "ftp://x:1": expected host:port or http://host:port',
    );
  });
});

describe("parseDurationFlag", () => {
  it("reads ms, s and m, fractions and 0", () => {
    expect(parseDurationFlag("d", "250ms")).toBe(250);
    expect(parseDurationFlag("d", "1.5s")).toBe(1_500);
    expect(parseDurationFlag("d", "2m")).toBe(120_000);
    expect(parseDurationFlag("d", "0")).toBe(0);
    for (const bad of ["", "1", "1h", "-1s", "1 s", "s"]) expect(() => parseDurationFlag("d", bad)).toThrow();
  });
});

describe("instanceBaseUrl", () => {
  it("adds http:// to host:port, keeps URLs, drops trailing slashes, refuses the rest", () => {
    expect(instanceBaseUrl("127.0.0.1:8081")).toBe("http://127.0.0.1:8081");
    expect(instanceBaseUrl("[::1]:8081")).toBe("http://[::1]:8081");
    expect(instanceBaseUrl("https://gw.example/addsvc//")).toBe("https://gw.example/addsvc");
    for (const bad of ["", "http://", "ftp://h:1", "http://h:1/?q=1", "http://u:p@h:1"]) {
      expect(() => instanceBaseUrl(bad)).toThrow(/invalid instance address/);
    }
  });
});
