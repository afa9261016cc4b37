import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type {
  AuthenticateOptions,
  AuthorizeOptions,
  JwksOptions,
  JwtCacheOptions,
  JwtSignerOptions,
  JwtVerifierOptions,
} from "@svckit/auth-jwt";
import { Code, type CodeName, codeToHttpStatus } from "@svckit/endpoint";
import { afterEach, describe, expect, it, vi } from "vitest";
import { firstBlock as readmeBlock, table as readmeTable } from "../../../test/readme-tools.js";

const readme = await readFile(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const firstBlock = (lang: string): string => readmeBlock(readme, lang);
const documented = (firstHeader: string, heading: string): string[] =>
  readmeTable(readme, firstHeader, heading)
    .map(([name]) => name as string)
    .sort();

afterEach(() => {
  vi.restoreAllMocks();
});

describe("README", () => {
  it("has an example shorter than 15 lines", () => {
    expect(firstBlock("ts").trimEnd().split("\n").length).toBeLessThan(15);
  });

  it("runs the example: the signed call passes, the bare one gets a Bearer challenge", async () => {
    const dir = await mkdtemp(join(tmpdir(), "svckit-auth-jwt-readme-"));
    const file = join(dir, "example.ts");
    await writeFile(file, firstBlock("ts"));
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(log.mock.calls).toEqual([["hello ada"], ["UNAUTHENTICATED", "Bearer"]]);
  });

  it("shows the install line with the peers", () => {
    expect(firstBlock("sh").trim()).toBe("pnpm add @svckit/auth-jwt @svckit/endpoint jose");
  });

  // Typed so that adding or removing an option fails to compile until these lists (and the README) follow.
  it("documents every verifier option and no other", () => {
    const options: Record<keyof JwtVerifierOptions, true> = {
      secret: true,
      publicKey: true,
      jwks: true,
      jwksUrl: true,
      jwksOptions: true,
      algorithms: true,
      issuer: true,
      audience: true,
      subject: true,
      typ: true,
      clockSkew: true,
      requireExp: true,
      requiredClaims: true,
      maxTokenAge: true,
      maxTokenSize: true,
      realm: true,
      clock: true,
      cache: true,
    };
    expect(documented("option", "## Verifier")).toEqual(Object.keys(options).sort());
    const cache: Record<keyof JwtCacheOptions, true> = { max: true, ttl: true };
    expect(documented("`cache` option", "### Verified-token cache")).toEqual(Object.keys(cache).sort());
  });

  it("documents every jwksOptions, authenticate, authorize and signer option", () => {
    const jwks: Record<keyof JwksOptions, true> = {
      cooldown: true,
      cacheMaxAge: true,
      timeout: true,
      headers: true,
      fetch: true,
    };
    expect(documented("`jwksOptions` option", "### Remote JWKS")).toEqual(Object.keys(jwks).sort());
    const authn: Record<keyof AuthenticateOptions, true> = { header: true, optional: true };
    expect(documented("`authenticate` option", "## Server")).toEqual(Object.keys(authn).sort());
    const authz: Record<keyof AuthorizeOptions, true> = { realm: true, message: true };
    expect(documented("`authorize` option", "## Authorization")).toEqual(Object.keys(authz).sort());
    const signer: Record<keyof JwtSignerOptions, true> = {
      secret: true,
      privateKey: true,
      algorithm: true,
      kid: true,
      issuer: true,
      audience: true,
      subject: true,
      claims: true,
      expiresIn: true,
      typ: true,
      clock: true,
    };
    expect(documented("signer option", "## Client")).toEqual(Object.keys(signer).sort());
  });

  it("gives each error's HTTP status as codeToHttpStatus does", () => {
    const rows = readmeTable(readme, "situation", "## Errors");
    expect(rows.length).toBeGreaterThan(15);
    for (const [situation, code, status] of rows) {
      expect(status, situation).toBe(String(codeToHttpStatus[Code[code as CodeName]]));
    }
  });
});
