// @svckit/auth-jwt on real servers: the same secured endpoints served over HTTP (transport-http) and
// gRPC (transport-grpc + codec-protobuf) on 127.0.0.1, called with svckit's clients (and raw HTTP for
// the headers). A valid token passes on both; every kind of bad token is refused on both with
// UNAUTHENTICATED and the same message; HTTP 401s carry WWW-Authenticate; scope and role policies
// answer PERMISSION_DENIED (403). Then a gateway: HTTP in with the user's token, gRPC out with a
// short-lived token it signs itself, which the service behind it verifies with the gateway's key.
import { generateKeyPairSync } from "node:crypto";
import { Client, credentials, Server, ServerCredentials } from "@grpc/grpc-js";
import {
  authenticate,
  authorize,
  claimsFrom,
  createJwtSigner,
  createJwtVerifier,
  type JwtSignerOptions,
  reissueIdentity,
  requireRoles,
  requireScopes,
  signToken,
} from "@svckit/auth-jwt";
import { parseProto } from "@svckit/codec-protobuf";
import { type CodeName, chain, createContext, type Endpoint, ServiceError } from "@svckit/endpoint";
import { bindService, createGrpcClient, createGrpcHandler } from "@svckit/transport-grpc";
import {
  createHttpClient,
  createHttpHandler,
  encodeJsonRequest,
  encodeJsonResponse,
  jsonRequestDecoder,
  jsonResponseDecoder,
} from "@svckit/transport-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  craft,
  fixedClock,
  NOW,
  NOW_S,
  newEcKeys,
  rsaKeys,
  validClaims,
} from "../packages/auth-jwt/src/test-helpers.js";
import { closeServers, listen, send } from "./support.js";

const proto = parseProto(`syntax = "proto3";
package authtest.v1;
service Orders {
  rpc Get (OrderRequest) returns (OrderReply);
  rpc Delete (OrderRequest) returns (OrderReply);
}
message OrderRequest { string id = 1; }
message OrderReply { string id = 1; string sub = 2; }`);
const ordersService = proto.service("authtest.v1.Orders");

interface OrderRequest {
  id: string;
}
interface OrderReply {
  id: string;
  sub: string;
}

const ISSUER = "https://idp.test/";
const idp = rsaKeys();
/** Another RSA key: a token it signs reaches the signature check and fails it. */
const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 });
/** The identity provider's signer: RS256, fixed clock. */
const idpSigner = (options: Partial<JwtSignerOptions> = {}) =>
  createJwtSigner({
    privateKey: idp.privateKey,
    kid: "idp-1",
    issuer: ISSUER,
    audience: "orders",
    clock: fixedClock,
    ...options,
  } as JwtSignerOptions);

const verifier = createJwtVerifier({
  publicKey: idp.publicKey.export({ type: "spki", format: "pem" }) as string,
  issuer: ISSUER,
  audience: "orders",
  realm: "orders",
  clock: fixedClock,
});

const get: Endpoint<OrderRequest, OrderReply> = async (ctx, { id }) => ({
  id,
  sub: String(claimsFrom(ctx)?.sub),
});
const secured = {
  get: chain<OrderRequest, OrderReply>(
    authenticate(verifier),
    authorize(requireScopes("orders:read"), { realm: "orders" }),
  )(get),
  delete: chain<OrderRequest, OrderReply>(
    authenticate(verifier),
    authorize(requireRoles("admin"), { realm: "orders" }),
  )(get),
};

let httpPort = 0;
let grpcServer: Server;
let grpcConn: Client;
type Clients = Record<"get" | "delete", Endpoint<OrderRequest, OrderReply>>;
const clients: Record<"http" | "grpc", Clients> = { http: {} as Clients, grpc: {} as Clients };
const asIs = <T>(_ctx: unknown, message: T): T => message;

beforeAll(async () => {
  const handlers = {
    get: createHttpHandler(secured.get, jsonRequestDecoder<OrderRequest>(), encodeJsonResponse),
    delete: createHttpHandler(secured.delete, jsonRequestDecoder<OrderRequest>(), encodeJsonResponse),
  };
  const http = await listen((req, res) => (req.url === "/delete" ? handlers.delete : handlers.get)(req, res));
  httpPort = http.port;

  // grpc-js refuses request metadata over 8 KiB by default; let the oversized token reach the verifier.
  grpcServer = new Server({ "grpc.max_metadata_size": 64 * 1024 });
  bindService(grpcServer, ordersService, {
    Get: createGrpcHandler(secured.get, asIs<OrderRequest>, asIs<OrderReply>),
    Delete: createGrpcHandler(secured.delete, asIs<OrderRequest>, asIs<OrderReply>),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) =>
      err === null ? resolve(port) : reject(err),
    ),
  );
  grpcConn = new Client(`127.0.0.1:${grpcPort}`, credentials.createInsecure());

  for (const [method, grpcMethod] of [
    ["get", "Get"],
    ["delete", "Delete"],
  ] as const) {
    clients.http[method] = createHttpClient<OrderRequest, OrderReply>(
      `${http.origin}/${method}`,
      "POST",
      encodeJsonRequest,
      jsonResponseDecoder<OrderReply>(),
    );
    clients.grpc[method] = createGrpcClient<OrderRequest, OrderReply, OrderRequest, OrderReply>(
      grpcConn,
      ordersService,
      grpcMethod,
      asIs<OrderRequest>,
      asIs<OrderReply>,
    );
  }
});

afterAll(async () => {
  grpcConn.close();
  grpcServer.forceShutdown();
  await closeServers();
});

/** Calls `method` over `transport` with `token` (or no authorization at all). */
function callWith(transport: "http" | "grpc", token: string | undefined, method: "get" | "delete" = "get") {
  const ctx = createContext({
    timeout: 5_000,
    outgoingMetadata: token === undefined ? undefined : { authorization: `Bearer ${token}` },
  });
  return clients[transport][method](ctx, { id: "o-1" });
}

async function outcome(call: Promise<OrderReply>): Promise<OrderReply | { code: CodeName; message: string }> {
  try {
    return await call;
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    return { code: err.codeName, message: err.message };
  }
}

const transports = ["http", "grpc"] as const;

describe("auth-jwt over HTTP and gRPC", () => {
  it.each(transports)("a valid token passes (%s)", async (transport) => {
    const token = await idpSigner().sign({ sub: "ada", scope: "orders:read" });
    expect(await callWith(transport, token)).toEqual({ id: "o-1", sub: "ada" });
  });

  it.each(transports)("the client middleware signs and attaches the token (%s)", async (transport) => {
    const client = signToken(idpSigner(), { claims: () => ({ sub: "svc-billing", scope: "orders:read" }) })(
      clients[transport].get,
    );
    expect(await client(createContext({ timeout: 5_000 }), { id: "o-2" })).toEqual({
      id: "o-2",
      sub: "svc-billing",
    });
  });

  const rsaPem = idp.publicKey.export({ type: "spki", format: "pem" }) as string;
  const refusals: [string, () => Promise<string | undefined>, string][] = [
    ["no token", async () => undefined, "missing bearer token"],
    ["garbage", async () => "garbage", "malformed token: not a compact JWS (three base64url parts)"],
    [
      "wrong signature",
      () => idpSigner({ privateKey: stranger.privateKey }).sign({ scope: "orders:read" }),
      "invalid signature",
    ],
    [
      "expired",
      () => idpSigner({ clock: () => NOW - 120_000 }).sign({ scope: "orders:read" }),
      "token expired",
    ],
    [
      "not yet valid",
      () => idpSigner().sign({ scope: "orders:read", nbf: NOW_S + 60 }),
      "token not yet valid",
    ],
    [
      "wrong issuer",
      () => idpSigner({ issuer: "https://evil.test/" }).sign({ scope: "orders:read" }),
      "wrong issuer",
    ],
    [
      "wrong audience",
      () => idpSigner({ audience: "billing" }).sign({ scope: "orders:read" }),
      "wrong audience",
    ],
    [
      "alg none",
      async () =>
        craft({ alg: "none", typ: "JWT" }, validClaims({ iss: ISSUER, aud: "orders", scope: "orders:read" })),
      "algorithm none is not allowed",
    ],
    [
      "HS256 signed with the RSA public key as secret",
      async () =>
        craft(
          { alg: "HS256", typ: "JWT" },
          validClaims({ iss: ISSUER, aud: "orders", scope: "orders:read" }),
          rsaPem,
        ),
      "algorithm HS256 is not allowed",
    ],
    [
      "oversized token",
      () => idpSigner().sign({ scope: "orders:read", pad: "x".repeat(9_000) }),
      "token too large: more than 8192 bytes",
    ],
  ];

  for (const transport of transports) {
    it.each(refusals)(`refuses %s with UNAUTHENTICATED (${transport})`, async (_name, makeToken, message) => {
      expect(await outcome(callWith(transport, await makeToken()))).toEqual({
        code: "UNAUTHENTICATED",
        message,
      });
    });
  }

  it.each(refusals)(
    "answers %s with HTTP 401 and a WWW-Authenticate challenge",
    async (name, makeToken, message) => {
      const token = await makeToken();
      const res = await send(httpPort, {
        path: "/get",
        headers: {
          "content-type": "application/json",
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
        body: JSON.stringify({ id: "o-1" }),
      });
      expect(res.status).toBe(401);
      expect(res.json()).toEqual({ code: "UNAUTHENTICATED", message });
      expect(res.headers["www-authenticate"]).toBe(
        name === "no token"
          ? 'Bearer realm="orders"'
          : `Bearer realm="orders", error="invalid_token", error_description="${message}"`,
      );
      if (token !== undefined) expect(res.text).not.toContain(token.split(".")[1]);
    },
  );

  it("sends the challenge to HTTP clients as error metadata, and to gRPC clients as a trailer", async () => {
    for (const transport of transports) {
      const err = await callWith(transport, "garbage").catch((e: ServiceError) => e);
      expect((err as ServiceError).metadata.get("www-authenticate"), transport).toBe(
        'Bearer realm="orders", error="invalid_token", error_description="malformed token: not a compact JWS (three base64url parts)"',
      );
    }
  });

  it.each(transports)("scope and role policies answer PERMISSION_DENIED (%s)", async (transport) => {
    const reader = await idpSigner().sign({ sub: "ada", scope: "profile", roles: ["user"] });
    expect(await outcome(callWith(transport, reader))).toEqual({
      code: "PERMISSION_DENIED",
      message: "missing scope: orders:read",
    });
    expect(await outcome(callWith(transport, reader, "delete"))).toEqual({
      code: "PERMISSION_DENIED",
      message: "missing role: admin",
    });
    const admin = await idpSigner().sign({ sub: "root", roles: ["admin"] });
    expect(await callWith(transport, admin, "delete")).toEqual({ id: "o-1", sub: "root" });
  });

  it("answers a policy refusal with HTTP 403 and an insufficient_scope challenge", async () => {
    const token = await idpSigner().sign({ sub: "ada", scope: "profile" });
    const res = await send(httpPort, {
      path: "/get",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ id: "o-1" }),
    });
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({ code: "PERMISSION_DENIED", message: "missing scope: orders:read" });
    expect(res.headers["www-authenticate"]).toBe(
      'Bearer realm="orders", error="insufficient_scope", error_description="missing scope: orders:read", scope="orders:read"',
    );
  });
});

describe("a gateway re-signs identity for the services behind it", () => {
  it("HTTP in with the user's token, gRPC out with the gateway's short-lived token", async () => {
    const gatewayKeys = newEcKeys();
    // The service behind the gateway trusts only the gateway's key, issuer and audience.
    const internalVerifier = createJwtVerifier({
      publicKey: gatewayKeys.publicKey,
      issuer: "gateway",
      audience: "internal",
      clock: fixedClock,
    });
    const service = chain<OrderRequest, OrderReply>(
      authenticate(internalVerifier),
      authorize(requireScopes("orders:read")),
    )(async (ctx, { id }) => ({ id, sub: `${claimsFrom(ctx)?.sub} via ${claimsFrom(ctx)?.iss}` }));
    const server = new Server();
    bindService(server, ordersService, {
      Get: createGrpcHandler(service, asIs<OrderRequest>, asIs<OrderReply>),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
        err === null ? resolve(p) : reject(err),
      ),
    );
    const conn = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const internalSigner = createJwtSigner({
        privateKey: gatewayKeys.privateKey,
        issuer: "gateway",
        audience: "internal",
        expiresIn: 30_000,
        clock: fixedClock,
      });
      const upstream = reissueIdentity(internalSigner)(
        createGrpcClient<OrderRequest, OrderReply, OrderRequest, OrderReply>(
          conn,
          ordersService,
          "Get",
          asIs<OrderRequest>,
          asIs<OrderReply>,
        ),
      );
      // The gateway's own endpoint: verify the user's token, then call the service with the caller's context.
      const gateway = authenticate(verifier)(async (ctx, req: OrderRequest) => upstream(ctx, req));
      const { origin } = await listen(
        createHttpHandler(gateway, jsonRequestDecoder<OrderRequest>(), encodeJsonResponse),
      );
      const viaGateway = createHttpClient<OrderRequest, OrderReply>(
        `${origin}/orders`,
        "POST",
        encodeJsonRequest,
        jsonResponseDecoder<OrderReply>(),
      );

      const userToken = await idpSigner().sign({ sub: "ada", scope: "orders:read" });
      const ctx = createContext({
        timeout: 5_000,
        outgoingMetadata: { authorization: `Bearer ${userToken}` },
      });
      expect(await viaGateway(ctx, { id: "o-9" })).toEqual({ id: "o-9", sub: "ada via gateway" });

      // Straight to the service with the user's own token: not the gateway's key.
      const direct = createGrpcClient<OrderRequest, OrderReply, OrderRequest, OrderReply>(
        conn,
        ordersService,
        "Get",
        asIs<OrderRequest>,
        asIs<OrderReply>,
      );
      expect(await outcome(direct(ctx, { id: "o-9" }))).toEqual({
        code: "UNAUTHENTICATED",
        message: "algorithm RS256 is not allowed",
      });
      // A user without the scope gets through the gateway but not past the service's policy.
      const noScope = await idpSigner().sign({ sub: "eve", scope: "profile" });
      const eveCtx = createContext({
        timeout: 5_000,
        outgoingMetadata: { authorization: `Bearer ${noScope}` },
      });
      expect(await outcome(viaGateway(eveCtx, { id: "o-9" }))).toEqual({
        code: "PERMISSION_DENIED",
        message: "missing scope: orders:read",
      });
    } finally {
      conn.close();
      server.forceShutdown();
    }
  });
});
