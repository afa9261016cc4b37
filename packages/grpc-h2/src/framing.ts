// gRPC's length-prefixed messages: 1 byte compressed flag, 4 bytes big-endian length, the message.
import { Status } from "./protocol.js";

/** A framing error: the status the call ends with. */
export interface FrameError {
  readonly code: number;
  readonly details: string;
}

/** The method a {@link MessageSink} receives messages by. */
export const kMessage = Symbol("message");

/** Receives the messages a {@link FrameReader} cuts out of the byte stream. */
export interface MessageSink {
  /** One whole message; `compressed` is its compressed flag. */
  [kMessage](compressed: boolean, message: Buffer): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Cuts length-prefixed messages out of DATA chunks, whatever their boundaries. A message that arrives
 * within one chunk is handed over as a view of that chunk (no copy); only a message split across
 * chunks is concatenated. A length above `maxLength` is refused from its 5-byte prefix, before any of
 * the message is buffered.
 */
export class FrameReader {
  /** Bytes of a prefix split across chunks. */
  #prefix: Buffer | undefined = undefined;
  #prefixLength = 0;
  #compressed = false;
  /** The length of the message being read, or -1 while reading a prefix. */
  #length = -1;
  #parts: Buffer[] | undefined = undefined;
  #received = 0;

  constructor(
    /** The largest message accepted, in bytes. */
    readonly maxLength: number,
  ) {}

  /** Whether the bytes so far end on a message boundary (nothing half-read). */
  get atBoundary(): boolean {
    return this.#length < 0 && this.#prefixLength === 0;
  }

  /** Feeds one chunk; messages go to `sink`. Returns the error that ends the call, if the bytes are not valid. */
  write(chunk: Buffer, sink: MessageSink): FrameError | undefined {
    let offset = 0;
    const end = chunk.length;
    while (offset < end) {
      if (this.#length < 0) {
        if (this.#prefixLength === 0 && end - offset >= 5) {
          const error = this.#start(chunk[offset] as number, chunk.readUInt32BE(offset + 1));
          if (error !== undefined) return error;
          offset += 5;
        } else {
          if (this.#prefix === undefined) this.#prefix = Buffer.allocUnsafe(5);
          const prefix = this.#prefix;
          const take = Math.min(5 - this.#prefixLength, end - offset);
          chunk.copy(prefix, this.#prefixLength, offset, offset + take);
          this.#prefixLength += take;
          offset += take;
          if (this.#prefixLength < 5) return undefined;
          this.#prefixLength = 0;
          const error = this.#start(prefix[0] as number, prefix.readUInt32BE(1));
          if (error !== undefined) return error;
        }
        if (this.#length === 0) {
          this.#length = -1;
          sink[kMessage](this.#compressed, EMPTY);
          continue;
        }
      }
      const length = this.#length;
      const available = end - offset;
      if (this.#received === 0 && available >= length) {
        this.#length = -1;
        sink[kMessage](this.#compressed, chunk.subarray(offset, offset + length));
        offset += length;
        continue;
      }
      const take = Math.min(length - this.#received, available);
      if (this.#parts === undefined) this.#parts = [];
      this.#parts.push(chunk.subarray(offset, offset + take));
      this.#received += take;
      offset += take;
      if (this.#received === length) {
        const message = Buffer.concat(this.#parts, length);
        this.#parts = undefined;
        this.#received = 0;
        this.#length = -1;
        sink[kMessage](this.#compressed, message);
      }
    }
    return undefined;
  }

  #start(flag: number, length: number): FrameError | undefined {
    if (flag > 1) {
      return {
        code: Status.INTERNAL,
        details: `invalid message prefix: compressed flag ${flag} (expected 0 or 1)`,
      };
    }
    if (length > this.maxLength) {
      return {
        code: Status.RESOURCE_EXHAUSTED,
        details: `Received message larger than max (${length} vs ${this.maxLength})`,
      };
    }
    this.#compressed = flag === 1;
    this.#length = length;
    return undefined;
  }
}

/** Frames a message: the 5-byte prefix and the bytes, in one new buffer. */
export function frame(message: Uint8Array, compressed: boolean): Buffer {
  const length = message.byteLength;
  const out = Buffer.allocUnsafe(5 + length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(length, 1);
  out.set(message, 5);
  return out;
}
