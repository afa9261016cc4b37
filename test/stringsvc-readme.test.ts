// Replays every `curl` line of examples/stringsvc/README.md against the stringsvc router on a real
// server and compares the answer with the `# ...` line under it, so the README cannot drift from
// what the service says. Only the curl options the README uses are understood; any other fails.
import { readFileSync } from "node:fs";
import type http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeEndpoints } from "../examples/stringsvc/src/endpoints.js";
import { createStringService } from "../examples/stringsvc/src/service.js";
import { createStringsvcRouter } from "../examples/stringsvc/src/transport.js";
import { closeServers, listen, send, type TestServer } from "./support.js";

const readme = readFileSync(new URL("../examples/stringsvc/README.md", import.meta.url), "utf8");

interface CurlCall {
  readonly line: string;
  readonly expected: string;
}

/** Each `curl ...` line of the README with the `# answer` line that follows it. */
function curlCalls(text: string): CurlCall[] {
  const lines = text.split("\n");
  const calls: CurlCall[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith("curl ")) return;
    const next = lines[i + 1] ?? "";
    if (!next.startsWith("# ")) throw new Error(`no "# answer" line after: ${line}`);
    calls.push({ line, expected: next.slice(2) });
  });
  return calls;
}

/** Splits a shell command line into words: blanks separate, '...' quotes (no escapes inside). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unbalanced quote in: ${line}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === " ") {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "\\" || c === '"' || c === "$" || c === "`" || c === "|" || c === ">" || c === "<") {
      throw new Error(`unsupported shell syntax ${c} in: ${line}`);
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

interface CurlRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.OutgoingHttpHeaders;
  readonly body: string | undefined;
  /** What `-w` appends to the body; only ` %{http_code}\n` is understood. */
  readonly writeOut: ((status: number) => string) | undefined;
}

/** What curl would send for the README's subset of options: -s, -w, -H, -d, -X. */
function parseCurl(line: string): CurlRequest {
  const [command, ...args] = shellWords(line);
  expect(command).toBe("curl");
  let method: string | undefined;
  let url: URL | undefined;
  let body: string | undefined;
  let writeOut: CurlRequest["writeOut"];
  const headers: http.OutgoingHttpHeaders = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${arg} needs a value in: ${line}`);
      return v;
    };
    if (arg === "-s") continue;
    if (arg === "-X") method = value();
    else if (arg === "-d") body = value();
    else if (arg === "-H") {
      const h = value();
      const colon = h.indexOf(":");
      headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    } else if (arg === "-w") {
      const format = value();
      if (format !== " %{http_code}\\n") throw new Error(`unsupported -w format ${format}`);
      writeOut = (status) => ` ${status}`;
    } else if (!arg.startsWith("-") && url === undefined) url = new URL(arg);
    else throw new Error(`unsupported curl argument ${arg} in: ${line}`);
  }
  if (url === undefined) throw new Error(`no URL in: ${line}`);
  expect(url.origin).toBe("http://127.0.0.1:8080");
  // As curl: -d means POST and, without a content-type header, a form content type.
  if (body !== undefined && headers["content-type"] === undefined) {
    headers["content-type"] = "application/x-www-form-urlencoded";
  }
  return {
    method: method ?? (body === undefined ? "GET" : "POST"),
    path: url.pathname,
    headers,
    body,
    writeOut,
  };
}

describe("examples/stringsvc/README.md", () => {
  let server: TestServer;
  const calls = curlCalls(readme);

  beforeAll(async () => {
    server = await listen(createStringsvcRouter(makeEndpoints(createStringService())).handle);
  });
  afterAll(closeServers);

  it("documents the success and error answers with curl lines", () => {
    expect(calls.length).toBeGreaterThanOrEqual(10);
    expect(calls.filter((c) => c.line.includes("-w ")).length).toBeGreaterThanOrEqual(5);
  });

  it.each(calls)("$line answers as documented", async ({ line, expected }) => {
    const request = parseCurl(line);
    const res = await send(server.port, {
      method: request.method,
      path: request.path,
      headers: request.headers,
      body: request.body,
    });
    const printed = res.text + (request.writeOut?.(res.status) ?? "");
    expect(printed).toBe(expected);
  });
});
