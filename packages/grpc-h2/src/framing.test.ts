import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type FrameError, FrameReader, frame, kMessage } from "./framing.js";

/** Feeds chunks to a reader; returns the messages (flag, bytes) and the first error. */
function read(chunks: readonly Uint8Array[], maxLength = 1 << 20) {
  const reader = new FrameReader(maxLength);
  const messages: [boolean, number[]][] = [];
  let error: FrameError | undefined;
  for (const chunk of chunks) {
    error = reader.write(Buffer.from(chunk), {
      [kMessage]: (compressed: boolean, message: Buffer) => messages.push([compressed, [...message]]),
    });
    if (error !== undefined) break;
  }
  return { messages, error, atBoundary: reader.atBoundary };
}

describe("frame", () => {
  it("prefixes the flag and the big-endian length", () => {
    expect([...frame(Uint8Array.of(7, 8, 9), false)]).toEqual([0, 0, 0, 0, 3, 7, 8, 9]);
    expect([...frame(new Uint8Array(0), true)]).toEqual([1, 0, 0, 0, 0]);
    expect(frame(new Uint8Array(70_000), false).readUInt32BE(1)).toBe(70_000);
  });
});

describe("FrameReader", () => {
  it("cuts several messages, empty ones included, out of one chunk", () => {
    const bytes = Buffer.concat([
      frame(Uint8Array.of(1), false),
      frame(new Uint8Array(0), true),
      frame(Uint8Array.of(2, 3), false),
    ]);
    expect(read([bytes])).toEqual({
      messages: [
        [false, [1]],
        [true, []],
        [false, [2, 3]],
      ],
      error: undefined,
      atBoundary: true,
    });
  });

  it("hands a message that fits in its chunk over as a view of the chunk (no copy)", () => {
    const chunk = frame(Uint8Array.of(4, 5, 6), false);
    const reader = new FrameReader(100);
    let seen: Buffer | undefined;
    reader.write(chunk, { [kMessage]: (_c: boolean, m: Buffer) => (seen = m) });
    expect(seen?.buffer).toBe(chunk.buffer);
    expect(seen?.byteOffset).toBe(chunk.byteOffset + 5);
  });

  it("is not at a boundary inside a prefix or a message", () => {
    const bytes = frame(Uint8Array.of(1, 2, 3), false);
    expect(read([bytes.subarray(0, 2)]).atBoundary).toBe(false);
    expect(read([bytes.subarray(0, 6)]).atBoundary).toBe(false);
    expect(read([bytes]).atBoundary).toBe(true);
  });

  it("refuses a compressed flag other than 0 and 1, also when the prefix is split", () => {
    const bad = Buffer.from([2, 0, 0, 0, 0]);
    const expected = { code: 13, details: "invalid message prefix: compressed flag 2 (expected 0 or 1)" };
    expect(read([bad]).error).toEqual(expected);
    expect(read([bad.subarray(0, 1), bad.subarray(1)]).error).toEqual(expected);
  });

  it("refuses a length above maxLength from the prefix", () => {
    expect(read([Buffer.from([0, 0, 0, 1, 0])], 255).error).toEqual({
      code: 8,
      details: "Received message larger than max (256 vs 255)",
    });
    expect(read([frame(new Uint8Array(255), false)], 255).messages.length).toBe(1);
  });

  it("yields the same messages however the bytes are split", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.uint8Array({ maxLength: 40 })), { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 30 }),
        (messages, cuts) => {
          const bytes = Buffer.concat(messages.map(([c, m]) => frame(m, c)));
          const chunks: Buffer[] = [];
          let at = 0;
          for (const cut of cuts) {
            if (at >= bytes.length) break;
            chunks.push(bytes.subarray(at, at + cut));
            at += cut;
          }
          if (at < bytes.length) chunks.push(bytes.subarray(at));
          const out = read(chunks);
          expect(out.error).toBeUndefined();
          expect(out.atBoundary).toBe(true);
          expect(out.messages).toEqual(messages.map(([c, m]) => [c, [...m]]));
        },
      ),
    );
  });
});
