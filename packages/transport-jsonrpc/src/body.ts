import type { IncomingMessage } from "node:http";
import { Code } from "@svckit/endpoint";
import { TransportError } from "./transport-error.js";

const EMPTY: Buffer = Buffer.alloc(0);

/** At most this many bytes of a declared body past the limit are read and dropped after a 413. */
const DRAIN_LIMIT = 1 << 20;

/**
 * The 413 answer. When what is left of a declared body is small, Node reads and drops it once the
 * answer is sent, so a client still writing sees the 413 (not a reset) and the connection is reused;
 * otherwise `connection: close` makes Node close the socket instead of reading on.
 */
function bodyTooLarge(limit: number, excess: number | undefined): TransportError {
  const close = excess === undefined || excess > DRAIN_LIMIT;
  return new TransportError(
    413,
    Code.RESOURCE_EXHAUSTED,
    `request body exceeds the limit of ${limit} bytes`,
    {
      metadata: close ? { connection: "close" } : undefined,
    },
  );
}

function clientLeft(cause: unknown): TransportError {
  return new TransportError(499, Code.CANCELLED, "client closed the request before the body was complete", {
    cause,
  });
}

/** Gets the whole body or the error that stopped reading it, exactly once. */
export type BodyCallback = (error: TransportError | undefined, body: Buffer) => void;

/**
 * Reads a request body into one Buffer of at most `limit` bytes. A declared `content-length` over
 * the limit fails at once; a body that grows past it stops being read (nothing more is kept).
 * Fails with 413, 400 when the body cannot be read, or 499 when the client goes away.
 */
export function readBody(req: IncomingMessage, limit: number, callback: BodyCallback): void {
  const declared = req.headers["content-length"];
  if (declared !== undefined) {
    const length = Number(declared);
    if (length > limit) {
      callback(bodyTooLarge(limit, length - limit), EMPTY);
      return;
    }
    if (length === 0) {
      callback(undefined, EMPTY);
      return;
    }
  } else if (req.headers["transfer-encoding"] === undefined || req.readableEnded) {
    // Neither content-length nor transfer-encoding: an HTTP/1.1 request without a body.
    callback(undefined, EMPTY);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  const finish = (error: TransportError | undefined, body: Buffer): void => {
    if (done) return;
    done = true;
    req.off("data", onData);
    req.off("end", onEnd);
    req.off("error", onError);
    req.off("close", onClose);
    callback(error, body);
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > limit) {
      req.pause();
      finish(bodyTooLarge(limit, undefined), EMPTY);
      return;
    }
    chunks.push(chunk);
  };
  const onEnd = (): void => {
    finish(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
  };
  const onError = (err: Error): void => {
    // A client hanging up mid-body shows up here as ECONNRESET ("aborted") before "close".
    finish(
      (err as { code?: unknown }).code === "ECONNRESET"
        ? clientLeft(err)
        : new TransportError(400, Code.INVALID_ARGUMENT, "request body could not be read", { cause: err }),
      EMPTY,
    );
  };
  const onClose = (): void => {
    if (!req.complete) finish(clientLeft(undefined), EMPTY);
  };
  req.on("data", onData);
  req.on("end", onEnd);
  req.on("error", onError);
  req.on("close", onClose);
}

/** Whether the request declares no body, or a `content-length` within `limit`. */
export function declaredWithin(req: IncomingMessage, limit: number): boolean {
  const declared = req.headers["content-length"];
  if (declared === undefined) return req.headers["transfer-encoding"] === undefined;
  return Number(declared) <= limit;
}
