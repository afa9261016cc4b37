import { constants as bufferConstants } from "node:buffer";
import { deflate, gunzip, gzip, inflate } from "node:zlib";
import type { FrameError } from "./framing.js";
import { Status } from "./protocol.js";

type Done = (error: FrameError | undefined, bytes: Buffer) => void;

const EMPTY = Buffer.alloc(0);
const MAX_BUFFER = bufferConstants.MAX_LENGTH;

/**
 * Decompresses one message (`gzip` or `deflate`, zlib off the main thread), refusing output larger
 * than `maxLength` (RESOURCE_EXHAUSTED) and bytes that do not decompress (INTERNAL).
 */
export function decompress(encoding: "gzip" | "deflate", bytes: Buffer, maxLength: number, done: Done): void {
  const limit = Math.max(1, Math.min(maxLength, MAX_BUFFER));
  const callback = (error: Error | null, out: Buffer): void => {
    if (error === null) {
      if (out.length > maxLength) done(tooLarge(maxLength), EMPTY);
      else done(undefined, out);
    } else if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      done(tooLarge(maxLength), EMPTY);
    } else {
      done({ code: Status.INTERNAL, details: `Failed to decompress message (${encoding})` }, EMPTY);
    }
  };
  if (encoding === "gzip") gunzip(bytes, { maxOutputLength: limit }, callback);
  else inflate(bytes, { maxOutputLength: limit }, callback);
}

function tooLarge(maxLength: number): FrameError {
  return {
    code: Status.RESOURCE_EXHAUSTED,
    details: `Received message that decompresses to a size larger than ${maxLength}`,
  };
}

/** Compresses one message with `gzip` or `deflate`. */
export function compress(
  encoding: "gzip" | "deflate",
  bytes: Uint8Array,
  done: (error: Error | null, out: Buffer) => void,
): void {
  if (encoding === "gzip") gzip(bytes, done);
  else deflate(bytes, done);
}
