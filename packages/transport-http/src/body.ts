import type { IncomingMessage, ServerResponse } from "node:http";
import { Code } from "@svckit/endpoint";
import { HttpError } from "./http-error.js";

const EMPTY = Buffer.alloc(0);

/** Up to this many bytes past the limit of a declared body are read and thrown away after a 413. */
const DISCARD_LIMIT = 1 << 20;

/**
 * The 413 error. When a declared body exceeds the limit by at most {@link DISCARD_LIMIT} bytes, Node
 * reads and discards it after the answer (nothing is buffered) so a keep-alive client, still writing,
 * gets the 413 rather than a reset socket, and the connection stays usable. A larger excess or an
 * undeclared (chunked) body makes the server answer with `connection: close` (see {@link closesConnection}),
 * so Node closes the socket instead of reading on.
 */
function tooLarge(limit: number, excess: number | undefined): HttpError {
  const error = new HttpError(
    413,
    Code.RESOURCE_EXHAUSTED,
    `request body exceeds the limit of ${limit} bytes`,
  );
  if (excess === undefined || excess > DISCARD_LIMIT) closing.add(error);
  return error;
}

/** The errors of {@link readBody} after which the connection must close rather than read on. */
const closing = new WeakSet<HttpError>();

/**
 * Whether the connection must close after answering `error` (a body too large to read to its end):
 * the server sets `connection: close` on the response itself, whatever error encoder writes it (an
 * error's own `connection` metadata is never passed on as a header).
 */
export function closesConnection(error: HttpError): boolean {
  return closing.has(error);
}

function clientGone(cause: unknown): HttpError {
  return new HttpError(499, Code.CANCELLED, "client closed the request before the body was complete", {
    cause,
  });
}

/**
 * Sends `100 Continue` to a client that waits for it (`Expect: 100-continue`) before sending a body
 * the server is about to read. Node sends it itself before the `request` event unless the server
 * listens to `checkContinue`; with such a listener (which lets a body over the limit be refused with
 * 413 before the client sends it) nobody else would, and the client would wait.
 */
function continueIfExpected(req: IncomingMessage, res: ServerResponse): void {
  const expect = req.headers.expect;
  if (expect === undefined || expect.trim().toLowerCase() !== "100-continue") return;
  // `_sent100`: set by `writeContinue`, also when Node answered the expectation itself.
  if ((res as { _sent100?: boolean })._sent100 === true || res.headersSent) return;
  res.writeContinue();
}

/** Whether the request declares no body, or a `content-length` within `limit`. */
export function declaredWithin(req: IncomingMessage, limit: number): boolean {
  const declared = req.headers["content-length"];
  if (declared === undefined) return req.headers["transfer-encoding"] === undefined;
  return Number(declared) <= limit;
}

/** Receives a request body, or the error that ended reading it; called exactly once. */
export type BodyCallback = (error: HttpError | undefined, body: Buffer) => void;

/**
 * Reads a request body into one Buffer, refusing more than `limit` bytes: a declared
 * `content-length` over the limit fails before reading anything, and a body that grows past it stops
 * being read at once (nothing more is buffered). Fails with an {@link HttpError} 413, with 400 when
 * the body cannot be read, or 499 CANCELLED when the client leaves. A callback rather than a promise:
 * this runs once per request and the handler continues synchronously from it.
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  callback: BodyCallback,
  res?: ServerResponse,
): void {
  const declared = req.headers["content-length"];
  if (declared !== undefined) {
    const length = Number(declared);
    if (length > limit) {
      callback(tooLarge(limit, length - limit), EMPTY);
      return;
    }
    if (length === 0) {
      callback(undefined, EMPTY);
      return;
    }
  } else if (req.headers["transfer-encoding"] === undefined) {
    // No content-length and no transfer-encoding: HTTP/1.1 says there is no body.
    callback(undefined, EMPTY);
    return;
  }
  if (req.readableEnded) {
    callback(undefined, EMPTY);
    return;
  }
  if (res !== undefined) continueIfExpected(req, res);
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  let size = 0;
  let settled = false;
  const fail = (error: HttpError): void => {
    if (settled) return;
    settled = true;
    req.off("data", onData);
    req.off("end", onEnd);
    req.off("error", onError);
    req.off("close", onClose);
    callback(error, EMPTY);
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > limit) {
      req.pause();
      fail(tooLarge(limit, undefined));
      return;
    }
    if (first === undefined) first = chunk;
    else if (chunks === undefined) chunks = [first, chunk];
    else chunks.push(chunk);
  };
  // After "end" the request emits nothing that matters ("close" is checked against req.complete,
  // a late "error" finds `settled`), so the success path leaves the listeners in place: cheaper
  // than removing them.
  const onEnd = (): void => {
    if (settled) return;
    settled = true;
    callback(undefined, chunks !== undefined ? Buffer.concat(chunks, size) : (first ?? EMPTY));
  };
  const onError = (err: Error): void => {
    // A client that hangs up mid-body makes Node emit "aborted" (ECONNRESET) here before "close".
    fail(
      (err as { code?: unknown }).code === "ECONNRESET"
        ? clientGone(err)
        : new HttpError(400, Code.INVALID_ARGUMENT, "request body could not be read", { cause: err }),
    );
  };
  const onClose = (): void => {
    if (req.complete) return;
    fail(clientGone(undefined));
  };
  req.on("data", onData);
  req.on("end", onEnd);
  req.on("error", onError);
  req.on("close", onClose);
}
