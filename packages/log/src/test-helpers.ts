// Shared by this package's tests; not part of the build.
import { Writable } from "node:stream";
import { expect } from "vitest";

/** A parsed log line. */
export type Record_ = Record<string, unknown>;

/** A stream that keeps each chunk it is given, as a string. */
export function capture(): {
  stream: Writable;
  chunks: string[];
  lines: () => string[];
  records: () => Record_[];
} {
  const chunks: string[] = [];
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  const lines = (): string[] => {
    const text = chunks.join("");
    expect(text === "" || text.endsWith("\n")).toBe(true);
    return text === "" ? [] : text.slice(0, -1).split("\n");
  };
  return { stream, chunks, lines, records: () => lines().map((l) => JSON.parse(l) as Record_) };
}
