import type { IncomingMessage, ServerResponse } from "node:http";
import { background, Code } from "@svckit/endpoint";
import { HttpError, withTransportHeaders } from "./http-error.js";
import { defaultErrorEncoder, type ErrorEncoder, type HttpHandler, originForm } from "./server.js";

/** Options of {@link createRouter}. */
export interface RouterOptions {
  /** Writes the router's own errors (404, 405, 400 for a malformed path); default {@link defaultErrorEncoder}. */
  errorEncoder?: ErrorEncoder;
}

/** A small method + path router for `node:http`; see {@link createRouter}. */
export interface Router {
  /**
   * Adds a route. `path` is literal segments and `:name` parameters, e.g. `/users/:id/posts`. A literal
   * may be written as it reads (`/café`, `/a b`): what a client must percent-encode is encoded here,
   * so `/café` answers `/caf%C3%A9`.
   */
  route(method: string, path: string, handler: HttpHandler): Router;
  /**
   * Adds a GET route. HEAD is answered by it too, unless a route that fits the request's path has a HEAD
   * of its own (`route("HEAD", ...)`): that one answers, whatever the two routes' specificity.
   */
  get(path: string, handler: HttpHandler): Router;
  /** Adds a POST route. */
  post(path: string, handler: HttpHandler): Router;
  /** Adds a PUT route. */
  put(path: string, handler: HttpHandler): Router;
  /** Adds a PATCH route. */
  patch(path: string, handler: HttpHandler): Router;
  /** Adds a DELETE route. */
  delete(path: string, handler: HttpHandler): Router;
  /** The request listener: pass it to `http.createServer`. */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
}

type Methods = Map<string, HttpHandler>;

/** What the router puts on `req.route`, as express does: the matched route template. */
interface RouteTag {
  readonly path: string;
}

interface ExactRoute {
  readonly tag: RouteTag;
  readonly methods: Methods;
}

interface ParamRoute {
  /** The segments, a literal normalised and a parameter as NUL and its name: one route when equal. */
  readonly pattern: string;
  /** A literal segment, or `undefined` with the parameter name at the same index of `names`. */
  readonly segments: readonly (string | undefined)[];
  readonly names: readonly (string | undefined)[];
  readonly methods: Methods;
  readonly tag: RouteTag;
}

const METHOD_PATTERN = /^[A-Z]+$/;
/** The scheme of an absolute URI (RFC 3986 §3.1), as a request target not in origin form may start. */
const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * In a route's literal segment: a percent-escape, a run of characters a path segment may not hold as
 * they are (outside RFC 3986's pchar: unreserved, sub-delims, ":", "@"), or a "%" that starts no escape.
 */
const LITERAL_PART = /%([0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@%]+|%/g;
/**
 * In a request path: a percent-escape, its hex digits captured, or a character a path segment may not
 * hold as it is but that Node's parser lets through and clients send unescaped (fetch sends `[]^|` as
 * they are, curl all of them). `#` is not one: a client sending it leaked a fragment.
 */
const ESCAPE_OR_RAW = /%([0-9A-Fa-f]{2})|["<>[\\\]^`{|}]/g;
/** A raw character of {@link ESCAPE_OR_RAW}. */
const RAW = /["<>[\\\]^`{|}]/;
/** The escape of a raw character of {@link ESCAPE_OR_RAW}, as a route's literal holds it. */
const RAW_ESCAPE = /%(?:22|3C|3E|5[B-E]|60|7[B-D])/;
/** A "%" that starts no escape. */
const LONE_PERCENT = /%(?![0-9A-Fa-f]{2})/;
/** A character a path segment holds as it is (RFC 3986 pchar but "%"): the escapes compared decoded. */
const PCHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;

/**
 * The normal form of a percent-escape for matching: an escaped character a segment may hold as it is
 * (a letter, digit, `-._~`, a sub-delim `!$&'()*+,;=`, `:` or `@`) decoded, any other escape (`%2F`,
 * `%25`, `%3F`, non-ASCII bytes) with upper-case hex digits. RFC 3986 §6.2.2 decodes only the
 * unreserved characters; the router also decodes the sub-delims, `:` and `@`, which
 * `encodeURIComponent` escapes but a route literal holds as they are (`/v1/things:batch`). Decoding
 * never yields a `%` or a `/`, so it adds no escape and no segment.
 */
function normalEscape(hex: string): string {
  const c = Number.parseInt(hex, 16);
  const char = String.fromCharCode(c);
  return c < 0x80 && PCHAR.test(char) ? char : `%${hex.toUpperCase()}`;
}

/**
 * {@link ESCAPE_OR_RAW}'s `replace` callback: an escape in normal form (see {@link normalEscape}), a raw
 * character as the escape a route's literal holds for it (`|` as `%7C`).
 */
function normalMatch(match: string, hex: string | undefined): string {
  return hex !== undefined ? normalEscape(hex) : `%${match.charCodeAt(0).toString(16).toUpperCase()}`;
}

/**
 * A request path with its percent-escapes in normal form (see {@link normalEscape}) and the characters
 * clients send unescaped although a segment may not hold them (`"<>[\]^\`{|}`) escaped, as a route's
 * literal holds them: `/a|b` and `/a%7cb` are `/a%7Cb`. A segment where a `%` starts no escape (`%zz`,
 * `%%32%65`) is left as it is: it is malformed, so it equals no literal (a route's literals are well-formed), and as a parameter `decodeURIComponent` refuses it (400), as it
 * would have before normalising. Normalising it would join the lone `%` to the characters an escape
 * after it stands for (`%%32%65` → `%2e`) and make a new escape. Idempotent: a segment left as it is
 * stays malformed, and a normalised one holds no `%` but at the start of a kept escape.
 * Internal (exported for its tests).
 */
export function normalizePath(path: string): string {
  if (!LONE_PERCENT.test(path)) return path.replace(ESCAPE_OR_RAW, normalMatch);
  return path
    .split("/")
    .map((segment) => (LONE_PERCENT.test(segment) ? segment : segment.replace(ESCAPE_OR_RAW, normalMatch)))
    .join("/");
}

/**
 * A route's literal segment as a client sends it, in the normal form {@link normalizePath} gives request
 * paths: characters outside pchar percent-encoded as UTF-8, a lone `%` as `%25`, escapes normalised.
 */
function literalSegment(segment: string, path: string): string {
  try {
    return segment.replace(LITERAL_PART, (part: string, hex: string | undefined) =>
      hex !== undefined ? normalEscape(hex) : part === "%" ? "%25" : encodeURIComponent(part),
    );
  } catch {
    // encodeURIComponent throws on a lone surrogate: no client can send it.
    throw new TypeError(`router: path "${path}" has a character that cannot be percent-encoded`);
  }
}

/** The Allow header for the methods of every route that fits a path. */
function allowHeader(all: readonly Methods[]): string {
  const list = new Set<string>();
  for (const methods of all) for (const m of methods.keys()) list.add(m);
  if (list.has("GET")) list.add("HEAD");
  return [...list].sort().join(", ");
}

/**
 * Orders parameter routes so that, of two routes fitting the same path, the one with a literal segment
 * where the other has a parameter (at the first position where they differ) comes first: `/users/me/:tab`
 * before `/users/:id/posts`, whatever the order they were added in.
 */
function moreSpecific(a: ParamRoute, b: ParamRoute): number {
  if (a.segments.length !== b.segments.length) return a.segments.length - b.segments.length;
  for (let i = 0; i < a.segments.length; i++) {
    const aLiteral = a.segments[i] !== undefined;
    if (aLiteral !== (b.segments[i] !== undefined)) return aLiteral ? -1 : 1;
  }
  return 0;
}

/**
 * Creates a router that dispatches on method and path, with `:name` path parameters (put on
 * `req.params`, where {@link HttpRequest.params} reads them, and the matched template on
 * `req.route.path`, as in express, where the handler reads it into the context's `CallInfo`). Matching is exact:
 * no trailing-slash or case folding, the query string is ignored; percent-escapes are compared in
 * normal form (`/files/m%65` is `/files/me`), literal segments are percent-encoded where a client must
 * (`/café` answers `/caf%C3%A9`), a character clients send unescaped although a path may not hold it
 * matches its escape (`/a|b` is `/a%7Cb`), and an absolute-form target (`http://host/sum`) is matched by
 * its path. A GET route answers HEAD too unless a route that fits has a HEAD of its own. Routes are put
 * in order once before the first request after they changed, so adding them is linear. An unknown path
 * answers 404, a known path with another method 405 with an `Allow` header (passed
 * by any error encoder), a malformed percent-escape 400; all with the same JSON error body as handlers.
 *
 * @example
 * ```ts
 * const router = createRouter()
 *   .post("/uppercase", uppercaseHandler)
 *   .get("/users/:id", getUserHandler);
 * http.createServer(router.handle).listen(8080);
 * ```
 */
export function createRouter(options: RouterOptions = {}): Router {
  const errorEncoder = options.errorEncoder ?? defaultErrorEncoder;
  const exact = new Map<string, ExactRoute>();
  /** Most specific first (see `moreSpecific`) once sorted: sorted before the first request after a change. */
  const withParams: ParamRoute[] = [];
  /** Whether `withParams` is in order; adding a route only appends, so setup stays linear. */
  let sorted = true;
  /** Whether any route has a HEAD of its own: until one does, a HEAD request looks up GET at once. */
  let ownHead = false;
  /** Whether a literal holds the escape of a character clients send raw (`%7C` for `|`, see {@link RAW}). */
  let rawLiterals = false;
  /** The parameter routes by shape (parameters as NUL, whatever their names): one lookup per route added. */
  const byShape = new Map<string, ParamRoute[]>();

  function fail(res: ServerResponse, error: HttpError): void {
    try {
      errorEncoder(background, error, res);
    } catch (failure) {
      if (!res.headersSent) defaultErrorEncoder(background, error, res);
      else if (!res.writableEnded) res.destroy(failure instanceof Error ? failure : undefined);
    }
  }

  function methodsFor(path: string, method: string): Methods {
    if (!path.startsWith("/")) throw new TypeError(`router: path must start with "/", got "${path}"`);
    // Literal segments as a client sends them; the template as written stays the route's tag. A
    // segment is a parameter by how it is written (`:id`): an escaped literal may start with ":" once
    // normalised (`%3Abatch` is `:batch`), so the two are told apart here, not by the normal form.
    const written = path.split("/").slice(1);
    const names = written.map((p) => {
      if (!p.startsWith(":")) return undefined;
      const name = p.slice(1);
      if (!/^[A-Za-z_$][\w$]*$/.test(name))
        throw new TypeError(`router: bad parameter name "${p}" in "${path}"`);
      return name;
    });
    const segments = written.map((p, i) => (names[i] === undefined ? literalSegment(p, path) : undefined));
    if (!rawLiterals)
      rawLiterals = segments.some((literal) => literal !== undefined && RAW_ESCAPE.test(literal));
    if (names.every((name) => name === undefined)) {
      const key = `/${segments.join("/")}`;
      let route = exact.get(key);
      if (route === undefined) {
        route = { tag: Object.freeze({ path }), methods: new Map() };
        exact.set(key, route);
      }
      return route.methods;
    }
    // A parameter as NUL and its name: a normalised literal holds no NUL (it is sent as %00).
    const pattern = segments.map((literal, i) => literal ?? `\0${names[i]}`).join("/");
    // The same shape with other parameter names (`/:a/x` and `/:b/x`) matches the same paths: the same
    // method on both would leave one of them unreachable.
    const shape = segments.map((literal) => literal ?? "\0").join("/");
    const sameShape = byShape.get(shape) ?? [];
    const clash = sameShape.find((r) => r.pattern !== pattern && r.methods.has(method));
    if (clash !== undefined) {
      throw new Error(`router: ${method} ${path} is already routed as ${clash.tag.path}`);
    }
    const existing = sameShape.find((r) => r.pattern === pattern);
    if (existing !== undefined) return existing.methods;
    const route: ParamRoute = {
      pattern,
      segments,
      names,
      methods: new Map(),
      tag: Object.freeze({ path }),
    };
    sameShape.push(route);
    byShape.set(shape, sameShape);
    withParams.push(route);
    sorted = false;
    return route.methods;
  }

  /** Whether `route` fits the path's segments: every literal equal, every parameter non-empty. */
  function fits(route: ParamRoute, parts: readonly string[]): boolean {
    if (route.segments.length !== parts.length) return false;
    for (let i = 0; i < parts.length; i++) {
      const literal = route.segments[i];
      if (literal === undefined ? parts[i] === "" : literal !== parts[i]) return false;
    }
    return true;
  }

  /** The route's parameters from a path it fits, percent-decoded; a 400 for a malformed escape. */
  function paramsOf(route: ParamRoute, parts: readonly string[]): Record<string, string> | HttpError {
    const params = Object.create(null) as Record<string, string>;
    for (let i = 0; i < parts.length; i++) {
      const name = route.names[i];
      if (name === undefined) continue;
      try {
        params[name] = decodeURIComponent(parts[i] as string);
      } catch {
        return new HttpError(400, Code.INVALID_ARGUMENT, "malformed percent-encoding in the request path");
      }
    }
    return params;
  }

  /** Answers with a parameter route that fits the path and has a handler for the request. */
  function answer(
    req: IncomingMessage,
    res: ServerResponse,
    route: ParamRoute,
    parts: readonly string[],
    handler: HttpHandler,
  ): void {
    const params = paramsOf(route, parts);
    if (params instanceof HttpError) {
      fail(res, params);
      return;
    }
    (req as { params?: Record<string, string> }).params = params;
    (req as { route?: RouteTag }).route = route.tag;
    handler(req, res);
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const target = req.url ?? "/";
    let url = target;
    if (target.charCodeAt(0) !== 47 /* "/" */) {
      // An absolute-form target (`POST http://host/sum HTTP/1.1`) is matched by its path; one with
      // another scheme (`foo://evil/files/me`) names no resource of this server.
      url = originForm(target);
      if (url === target && URI_SCHEME.test(target)) {
        const shown = JSON.stringify(target.slice(0, 200));
        fail(
          res,
          new HttpError(
            400,
            Code.INVALID_ARGUMENT,
            `unsupported request target ${shown}: expected a path or an http(s) URL`,
          ),
        );
        return;
      }
    }
    const q = url.indexOf("?");
    const asSent = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? "GET";
    // Compared in normal form: `/files/m%65` is `/files/me`, `/caf%c3%a9` is `/caf%C3%A9`, `/things%3Abatch`
    // is `/things:batch`, `/a|b` is `/a%7Cb`; a segment with a malformed escape is left as it is.
    // Raw characters are looked for only when a literal holds one: else they fit no literal either way,
    // and a parameter decodes to the same value.
    const path = asSent.includes("%") || (rawLiterals && RAW.test(asSent)) ? normalizePath(asSent) : asSent;
    const found = exact.get(path);
    // HEAD falls back to GET only when no fitting route has a HEAD of its own. While no route has one,
    // a HEAD looks up GET at once (`wanted`); else the GET of the first fitting route that has one is
    // kept (`fallback`, of `fallbackRoute` or of the exact route) until every fitting route was asked.
    const wanted = method === "HEAD" && !ownHead ? "GET" : method;
    let fallback: HttpHandler | undefined;
    let fallbackRoute: ParamRoute | undefined;
    // The fitting routes that lack the method, for the 405's Allow header.
    let others: Methods[] | undefined;
    if (found !== undefined) {
      const handler = found.methods.get(wanted);
      if (handler !== undefined) {
        (req as { route?: RouteTag }).route = found.tag;
        handler(req, res);
        return;
      }
      if (wanted === "HEAD") fallback = found.methods.get("GET");
      if (fallback === undefined) others = [found.methods];
    }
    if (withParams.length > 0) {
      if (!sorted) {
        // Stable: routes as specific as each other stay in the order they were added.
        withParams.sort(moreSpecific);
        sorted = true;
      }
      const parts = path.split("/").slice(1);
      // Most specific first (see `moreSpecific`): the first fitting route with the method answers.
      for (const route of withParams) {
        if (!fits(route, parts)) continue;
        const handler = route.methods.get(wanted);
        if (handler !== undefined) {
          answer(req, res, route, parts, handler);
          return;
        }
        if (wanted === "HEAD" && fallback === undefined) {
          fallback = route.methods.get("GET");
          if (fallback !== undefined) {
            fallbackRoute = route;
            continue;
          }
        }
        if (others === undefined) others = [route.methods];
        else others.push(route.methods);
      }
      if (fallbackRoute !== undefined && fallback !== undefined) {
        answer(req, res, fallbackRoute, parts, fallback);
        return;
      }
    }
    if (fallback !== undefined && found !== undefined) {
      (req as { route?: RouteTag }).route = found.tag;
      fallback(req, res);
      return;
    }
    if (others === undefined) {
      fail(res, new HttpError(404, Code.NOT_FOUND, `no route for ${method} ${asSent.slice(0, 200)}`));
      return;
    }
    // Allow is required on a 405 (RFC 9110 §15.5.6): an error encoder passes it whatever its passHeader says.
    fail(
      res,
      withTransportHeaders(
        new HttpError(405, Code.UNIMPLEMENTED, `method ${method} is not allowed on ${asSent.slice(0, 200)}`, {
          metadata: { allow: allowHeader(others) },
        }),
      ),
    );
  }

  const router: Router = {
    route(method, path, handler) {
      const m = method.toUpperCase();
      if (!METHOD_PATTERN.test(m)) throw new TypeError(`router: bad method "${method}"`);
      const methods = methodsFor(path, m);
      if (methods.has(m)) throw new Error(`router: ${m} ${path} is already routed`);
      methods.set(m, handler);
      if (m === "HEAD") ownHead = true;
      return router;
    },
    get: (path, handler) => router.route("GET", path, handler),
    post: (path, handler) => router.route("POST", path, handler),
    put: (path, handler) => router.route("PUT", path, handler),
    patch: (path, handler) => router.route("PATCH", path, handler),
    delete: (path, handler) => router.route("DELETE", path, handler),
    handle,
  };
  return router;
}
