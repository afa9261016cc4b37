import protobuf from "protobufjs";

// 64-bit integers as bigint, both ways, without the `long` package on the hot path.
//
// Decoding: protobufjs' generated decoders read every 64-bit value through `reader.int64()`,
// `reader.uint64()`, ... on the reader they are given (packed fields and map keys too). The readers
// below override exactly those five methods to return a bigint, so decoded messages never hold a
// Long and nothing is converted afterwards. Map keys come out as decimal strings for free: the
// decoder stores `m[key]` with the bigint key.
//
// Encoding: protobufjs writers take a number or anything with `low` / `high` 32-bit halves.
// `toWire64` checks a bigint, an integer number or a decimal string against the field's range and
// returns a plain number when it is safe (no allocation) and `{ low, high }` otherwise.

const TWO_32 = 4294967296;

// The halves of the last 64-bit value read. Module state instead of a returned object keeps the
// read allocation-free; nothing else runs between a read and its use.
let lo = 0;
let hi = 0;

function outOfRange(reader: protobuf.Reader, length: number): RangeError {
  return new RangeError(`index out of range: ${reader.pos} + ${length} > ${reader.len}`);
}

/** Reads a varint of up to 10 bytes into `lo` / `hi`. */
function readVarint64(reader: protobuf.Reader): void {
  const buf = reader.buf;
  const len = reader.len;
  let pos = reader.pos;
  let b = 0;
  lo = 0;
  hi = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= len) throw outOfRange(reader, 1);
    b = buf[pos++] as number;
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) {
      lo >>>= 0;
      reader.pos = pos;
      return;
    }
  }
  if (pos >= len) throw outOfRange(reader, 1);
  b = buf[pos++] as number;
  lo = (lo | ((b & 0x7f) << 28)) >>> 0;
  hi = (b & 0x7f) >> 4;
  if (b < 0x80) {
    reader.pos = pos;
    return;
  }
  for (let shift = 3; shift < 32; shift += 7) {
    if (pos >= len) throw outOfRange(reader, 1);
    b = buf[pos++] as number;
    hi |= (b & 0x7f) << shift;
    if (b < 0x80) {
      hi >>>= 0;
      reader.pos = pos;
      return;
    }
  }
  throw new Error("invalid varint encoding");
}

function readFixed64(reader: protobuf.Reader): void {
  const pos = reader.pos;
  if (pos + 8 > reader.len) throw outOfRange(reader, 8);
  const buf = reader.buf;
  lo =
    ((buf[pos] as number) |
      ((buf[pos + 1] as number) << 8) |
      ((buf[pos + 2] as number) << 16) |
      ((buf[pos + 3] as number) << 24)) >>>
    0;
  hi =
    ((buf[pos + 4] as number) |
      ((buf[pos + 5] as number) << 8) |
      ((buf[pos + 6] as number) << 16) |
      ((buf[pos + 7] as number) << 24)) >>>
    0;
  reader.pos = pos + 8;
}

// Eight bytes to turn two 32-bit halves into one bigint (and back) without intermediate bigints.
const scratch = new DataView(new ArrayBuffer(8));

function unsignedValue(): bigint {
  // Below 2^53 the double is exact, and BigInt(number) is the cheapest way to a bigint.
  if (hi < 0x200000) return BigInt(hi * TWO_32 + lo);
  scratch.setUint32(0, lo, true);
  scratch.setUint32(4, hi, true);
  return scratch.getBigUint64(0, true);
}

function signedValue(): bigint {
  if (hi < 0x200000) return BigInt(hi * TWO_32 + lo);
  if (hi >= 0xffe00000) return BigInt((hi - TWO_32) * TWO_32 + lo); // -2^53 .. -1, exact
  scratch.setUint32(0, lo, true);
  scratch.setUint32(4, hi, true);
  return scratch.getBigInt64(0, true);
}

function zigZagDecode(): void {
  const mask = -(lo & 1);
  lo = (((lo >>> 1) | (hi << 31)) ^ mask) >>> 0;
  hi = ((hi >>> 1) ^ mask) >>> 0;
}

// Shared bigints for one-byte varints, the most common 64-bit values on the wire (0..127).
const small: readonly bigint[] = Array.from({ length: 128 }, (_, i) => BigInt(i));

const bigintMethods = {
  int64(this: protobuf.Reader): bigint {
    const pos = this.pos;
    if (pos < this.len) {
      const b = this.buf[pos] as number;
      if (b < 0x80) {
        this.pos = pos + 1;
        return small[b] as bigint;
      }
    }
    readVarint64(this);
    return signedValue();
  },
  uint64(this: protobuf.Reader): bigint {
    const pos = this.pos;
    if (pos < this.len) {
      const b = this.buf[pos] as number;
      if (b < 0x80) {
        this.pos = pos + 1;
        return small[b] as bigint;
      }
    }
    readVarint64(this);
    return unsignedValue();
  },
  sint64(this: protobuf.Reader): bigint {
    readVarint64(this);
    zigZagDecode();
    return signedValue();
  },
  fixed64(this: protobuf.Reader): bigint {
    readFixed64(this);
    return unsignedValue();
  },
  sfixed64(this: protobuf.Reader): bigint {
    readFixed64(this);
    return signedValue();
  },
};

// The readers are built the way protobufjs builds BufferReader (a constructor function and
// Object.create), which constructs about twice as fast as `class extends` over a function.

/** A protobufjs Reader that yields bigints for 64-bit fields and keeps unknown fields for checks. */
const BigIntReader = function BigIntReader(this: protobuf.Reader, buffer: Uint8Array): void {
  protobuf.Reader.call(this, buffer);
  this.discardUnknown = false;
} as unknown as new (
  buffer: Uint8Array,
) => protobuf.Reader;

/** The same over a Node.js Buffer: protobufjs reads strings from Buffers faster. */
const BigIntBufferReader = function BigIntBufferReader(this: protobuf.Reader, buffer: Uint8Array): void {
  protobuf.BufferReader.call(this, buffer);
  this.discardUnknown = false;
} as unknown as new (
  buffer: Uint8Array,
) => protobuf.Reader;

BigIntReader.prototype = Object.assign(Object.create(protobuf.Reader.prototype), bigintMethods, {
  constructor: BigIntReader,
});
BigIntBufferReader.prototype = Object.assign(Object.create(protobuf.BufferReader.prototype), bigintMethods, {
  constructor: BigIntBufferReader,
  // `bytes` fields are plain Uint8Array views over the input, as from a Uint8Array, not Buffers.
  raw(this: protobuf.Reader, start: number, end: number): Uint8Array {
    const buf = this.buf;
    return new Uint8Array(buf.buffer, buf.byteOffset + start, end - start);
  },
});

const isBuffer: (value: Uint8Array) => boolean =
  typeof Buffer === "function" ? (value) => Buffer.isBuffer(value) : () => false;

/** A reader over `bytes` whose 64-bit reads give bigints and which keeps unknown fields. */
export function bigintReader(bytes: Uint8Array): protobuf.Reader {
  return isBuffer(bytes) ? new BigIntBufferReader(bytes) : new BigIntReader(bytes);
}

// ---------------------------------------------------------------------------------------------------
// Encoding side

/** What a protobufjs writer accepts for a 64-bit field: a safe integer, or the two 32-bit halves. */
export type Wire64 = number | { low: number; high: number; unsigned: boolean };

const MAX_SAFE = 9007199254740991n;
const MIN_SAFE = -9007199254740991n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const decimal = /^-?\d{1,20}$/;

/**
 * Converts an accepted 64-bit input (bigint, integer number or decimal string) to what the writer
 * takes, or returns a string saying what is wrong with it.
 */
export function toWire64(value: unknown, unsigned: boolean, typeName: string): Wire64 | string {
  let big: bigint;
  if (typeof value === "bigint") {
    // Number() rounds monotonically, so a safe result means the bigint itself is a safe integer.
    const n = Number(value);
    if (Number.isSafeInteger(n)) return unsigned && n < 0 ? `out of range for ${typeName}` : n;
    big = value;
  } else if (typeof value === "number") {
    if (!Number.isInteger(value)) return `expected ${typeName}, got a number that is not an integer`;
    if (Number.isSafeInteger(value)) {
      if (unsigned && value < 0) return `out of range for ${typeName}`;
      return value === 0 ? 0 : value; // -0 → 0
    }
    big = BigInt(value);
  } else if (typeof value === "string") {
    if (!decimal.test(value)) return `expected ${typeName}, got a string that is not a decimal integer`;
    big = BigInt(value);
  } else {
    return `expected ${typeName} (a bigint, an integer number or a decimal string), got ${describe(value)}`;
  }
  if (unsigned ? big < 0n || big > UINT64_MAX : big < INT64_MIN || big > INT64_MAX) {
    return `out of range for ${typeName}`;
  }
  if (big >= MIN_SAFE && big <= MAX_SAFE) return Number(big);
  scratch.setBigUint64(0, BigInt.asUintN(64, big), true);
  return { low: scratch.getInt32(0, true), high: scratch.getInt32(4, true), unsigned };
}

/** Checks a 64-bit map key: undefined when it is a canonical decimal in range, else what is wrong. */
export function checkKey64(key: string, unsigned: boolean, typeName: string): string | undefined {
  if (!/^-?(0|[1-9]\d{0,19})$/.test(key) || key === "-0") return `key is not a decimal ${typeName}`;
  const big = BigInt(key);
  if (unsigned ? big < 0n || big > UINT64_MAX : big < INT64_MIN || big > INT64_MAX) {
    return `key is out of range for ${typeName}`;
  }
  return undefined;
}

/** A short description of a value's type for error messages (never the value itself). */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return "a Uint8Array";
  if (value instanceof Map) return "a Map";
  const t = typeof value;
  if (t === "object") return "an object";
  if (t === "undefined") return "undefined";
  return t === "bigint" || t === "boolean" || t === "number" || t === "string" || t === "symbol"
    ? `a ${t}`
    : "a function";
}
