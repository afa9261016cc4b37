// createJsonLogger on a file descriptor that answers EAGAIN or takes part of a write (a full pipe):
// fs.writeSync is replaced by a scripted one, since a real pipe cannot be made to do that on cue.
import { createJsonLogger } from "@svckit/log";
import { afterEach, describe, expect, it, vi } from "vitest";
import { flushAllOnExit } from "./json-logger.js";

type Step = "EAGAIN" | "EPIPE" | number;

const fake = vi.hoisted(() => ({
  /** The descriptor whose writes are scripted; others go to the real fs.writeSync. */
  fd: 1000,
  /** What the next writeSync calls do: throw that code, or take at most that many bytes. */
  script: [] as Step[],
  /** The bytes each writeSync call took, as text. */
  written: [] as string[],
  /** The same, as bytes (a short write may end inside a character). */
  bytes: [] as Buffer[],
  calls: 0,
}));

vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  // The logger hands a batch over as a string first, and what a short write left as bytes.
  const writeSync = (fd: number, data: Buffer | string, at?: number, size?: number): number => {
    if (fd !== fake.fd) {
      return typeof data === "string" ? real.writeSync(fd, data) : real.writeSync(fd, data, at, size);
    }
    const buffer = typeof data === "string" ? Buffer.from(data) : data;
    const offset = typeof data === "string" ? 0 : (at ?? 0);
    const length = typeof data === "string" ? buffer.length : (size ?? buffer.length - offset);
    fake.calls++;
    const step = fake.script.shift();
    if (step === "EAGAIN" || step === "EPIPE") {
      throw Object.assign(new Error(`${step}: fake`), { code: step });
    }
    const n = Math.min(step ?? length, length);
    const taken = Buffer.from(buffer.subarray(offset, offset + n));
    fake.written.push(taken.toString("utf8"));
    fake.bytes.push(taken);
    return n;
  };
  return { ...real, writeSync, default: { ...real, writeSync } };
});

const FAKE_FD = fake.fd;
const text = (): string => Buffer.concat(fake.bytes).toString("utf8");

afterEach(() => {
  fake.script.length = 0;
  fake.written.length = 0;
  fake.bytes.length = 0;
  fake.calls = 0;
});

describe("createJsonLogger on a file descriptor that does not keep up", () => {
  it("writes the rest of a partly taken batch", async () => {
    const logger = createJsonLogger({ destination: FAKE_FD, timestamp: false });
    fake.script.push(5, 7);
    logger.log("info", "one", {});
    logger.log("info", "two", {});
    await logger.flush();
    expect(fake.written.slice(0, 2)).toEqual(['{"lev', 'el":"in']);
    expect(text()).toBe('{"level":"info","message":"one"}\n{"level":"info","message":"two"}\n');
    await logger.close();
  });

  it("goes on from the right byte when a short write ends inside a multi-byte character", async () => {
    const logger = createJsonLogger({ destination: FAKE_FD, timestamp: false });
    // '{"level":"info","message":"' is 27 bytes; 28 takes the first of "é"'s two bytes.
    fake.script.push(28);
    logger.log("info", "é€😀", {});
    await logger.flush();
    expect(fake.bytes[0]?.length).toBe(28);
    expect(text()).toBe('{"level":"info","message":"é€😀"}\n');
    await logger.close();
  });

  it("keeps lines in order through EAGAIN and writes them on retry; flush waits for it", async () => {
    const logger = createJsonLogger({ destination: FAKE_FD, timestamp: false });
    fake.script.push(3, "EAGAIN", "EAGAIN");
    logger.log("info", "one", {});
    await new Promise((resolve) => setImmediate(resolve));
    expect(text()).toBe('{"l');
    logger.log("info", "two", {});
    await logger.flush();
    expect(text()).toBe('{"level":"info","message":"one"}\n{"level":"info","message":"two"}\n');
    expect(logger.dropped).toBe(0);
    await logger.close();
  });

  it("drops lines beyond maxBufferBytes while stalled, and notes how many", async () => {
    const logger = createJsonLogger({ destination: FAKE_FD, timestamp: false, maxBufferBytes: 100 });
    fake.script.push("EAGAIN");
    logger.log("info", "first", {});
    await new Promise((resolve) => setImmediate(resolve));
    const line = '{"level":"info","message":"line 0"}\n';
    for (let i = 0; i < 10; i++) logger.log("info", `line ${i}`, {});
    const fit = Math.floor(100 / line.length);
    expect(logger.dropped).toBe(10 - fit);
    await logger.flush();
    const lines = text().trimEnd().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { message: string }).message)).toEqual([
      "first",
      ...Array.from({ length: fit }, (_, i) => `line ${i}`),
      "dropped log lines: the destination did not keep up",
    ]);
    expect(JSON.parse(lines.at(-1) as string)).toMatchObject({ level: "warn", droppedLines: 10 - fit });
    await logger.close();
  });

  it("at exit, writes the stalled bytes and then the buffer, retrying EAGAIN a few times", async () => {
    const logger = createJsonLogger({ destination: FAKE_FD, timestamp: false });
    fake.script.push(4, "EAGAIN");
    logger.log("error", "one", {});
    await new Promise((resolve) => setImmediate(resolve));
    logger.log("error", "two", {});
    fake.script.push("EAGAIN", "EAGAIN", 2);
    flushAllOnExit();
    expect(text()).toBe('{"level":"error","message":"one"}\n{"level":"error","message":"two"}\n');
    await logger.close();
  });

  it("at exit, gives up on a descriptor that takes nothing for 2 s, without throwing, and counts what it lost", async () => {
    const onError = vi.fn();
    const logger = createJsonLogger({ destination: FAKE_FD, timestamp: false, onError });
    fake.script.push("EAGAIN");
    logger.log("error", "one", {});
    await new Promise((resolve) => setImmediate(resolve));
    logger.log("error", "two", {});
    fake.script.push(...Array.from({ length: 250 }, (): Step => "EAGAIN"));
    const calls = fake.calls;
    expect(() => flushAllOnExit()).not.toThrow();
    // The first try and 200 retries 10 ms apart.
    expect(fake.calls - calls).toBe(201);
    expect(logger.dropped).toBe(2);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]?.[0]).toMatchObject({ code: "EAGAIN" });
    fake.script.length = 0;
    await logger.close();
  });

  it("at exit, keeps retrying a slow descriptor as long as it takes something within 2 s", async () => {
    const logger = createJsonLogger({ destination: FAKE_FD, timestamp: false });
    fake.script.push("EAGAIN");
    logger.log("error", "one", {});
    await new Promise((resolve) => setImmediate(resolve));
    logger.log("error", "two", {});
    // 150 EAGAINs (1.5 s), 5 bytes, 150 more, then the rest: 300 in all, never 2 s without progress.
    const stalls = Array.from({ length: 150 }, (): Step => "EAGAIN");
    fake.script.push(...stalls, 5, ...stalls);
    flushAllOnExit();
    expect(text()).toBe('{"level":"error","message":"one"}\n{"level":"error","message":"two"}\n');
    expect(logger.dropped).toBe(0);
    await logger.close();
  });

  it("reports a write error once and counts the lines it lost", async () => {
    const onError = vi.fn();
    const logger = createJsonLogger({ destination: FAKE_FD, timestamp: false, onError });
    fake.script.push(10, "EPIPE");
    logger.log("info", "one", {});
    logger.log("info", "two", {});
    await logger.flush();
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]?.[0]).toMatchObject({ code: "EPIPE" });
    expect(logger.dropped).toBe(2); // "one" was cut after 10 bytes, "two" never written
    await logger.close();
  });
});
