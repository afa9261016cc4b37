import { describe, expect, it } from "vitest";
import { parseChoice, parseCount, parseDuration, parseFlags } from "./flags.js";
import { goQuote, parseInt64 } from "./go-format.js";

const known = { "http-addr": "string", method: "string", help: "boolean", h: "boolean" } as const;

describe("parseFlags", () => {
  it("takes Go's single dash and Node's double dash, with a separate value or =value", () => {
    for (const args of [
      ["-http-addr", "127.0.0.1:1"],
      ["--http-addr", "127.0.0.1:1"],
      ["-http-addr=127.0.0.1:1"],
      ["--http-addr=127.0.0.1:1"],
    ]) {
      expect(parseFlags(args, known).values.get("http-addr")).toBe("127.0.0.1:1");
    }
  });

  it("keeps positionals in order around flags; negative numbers are arguments", () => {
    const parsed = parseFlags(["sum", "-method", "sum", "-5", "3"], known);
    expect(parsed.positionals).toEqual(["sum", "-5", "3"]);
    expect(parsed.values.get("method")).toBe("sum");
  });

  it("-- ends the flags", () => {
    expect(parseFlags(["--", "-method", "x"], known).positionals).toEqual(["-method", "x"]);
  });

  it("an empty value and a value with = are kept", () => {
    expect(parseFlags(["-http-addr="], known).values.get("http-addr")).toBe("");
    expect(parseFlags(["-method=a=b"], known).values.get("method")).toBe("a=b");
    expect(parseFlags(["-http-addr", ""], known).values.get("http-addr")).toBe("");
  });

  it("booleans take no value, or =true / =false", () => {
    expect(parseFlags(["-h"], known).values.get("h")).toBe(true);
    expect(parseFlags(["--help=false"], known).values.get("help")).toBe(false);
    expect(() => parseFlags(["--help=yes"], known)).toThrow(
      'flag -help takes no value (or =true / =false), got "yes"',
    );
  });

  it("an unknown flag and a missing value are errors naming the flag", () => {
    expect(() => parseFlags(["--port", "8080"], known)).toThrow("unknown flag --port");
    expect(() => parseFlags(["-port=8080"], known)).toThrow("unknown flag -port");
    expect(() => parseFlags(["-method"], known)).toThrow("flag -method needs a value");
  });

  it("names that are Object.prototype members are not flags", () => {
    expect(() => parseFlags(["--constructor"], known)).toThrow("unknown flag --constructor");
  });
});

describe("parseDuration and parseCount", () => {
  it.each([
    ["0", 0],
    ["500ms", 500],
    ["60s", 60_000],
    ["1.5s", 1_500],
    ["2m", 120_000],
    ["1h", 3_600_000],
  ])("%s is %i ms", (text, ms) => {
    expect(parseDuration("breaker-timeout", text)).toBe(ms);
  });

  it.each(["", "60", "-1s", "1d", "s", "1 s"])("%j is refused", (text) => {
    expect(() => parseDuration("breaker-timeout", text)).toThrow(
      `invalid duration "${text}" for -breaker-timeout: expected e.g. 500ms, 60s, 1m`,
    );
  });

  it("counts are whole numbers >= 0", () => {
    expect(parseCount("sum-rate", "0")).toBe(0);
    expect(parseCount("sum-rate", "100")).toBe(100);
    for (const bad of ["", "-1", "1.5", "1e3", "0x10", "abc", "1234567890"]) {
      expect(() => parseCount("sum-rate", bad)).toThrow(
        `invalid value "${bad}" for -sum-rate: expected a whole number >= 0`,
      );
    }
  });
});

describe("parseChoice", () => {
  it("takes one of the choices as given, and names them for anything else", () => {
    const engines = ["grpc-js", "h2"] as const;
    expect(parseChoice("grpc-engine", "h2", engines)).toBe("h2");
    expect(parseChoice("grpc-engine", "grpc-js", engines)).toBe("grpc-js");
    for (const value of ["H2", "", "grpc", "h2 "]) {
      expect(() => parseChoice("grpc-engine", value, engines)).toThrow(
        `invalid value "${value}" for -grpc-engine: expected grpc-js or h2`,
      );
    }
  });
});

describe("Go formatting", () => {
  it("parseInt64 reads decimal int64s, as strconv.ParseInt(s, 10, 64)", () => {
    expect(parseInt64("3")).toBe(3n);
    expect(parseInt64("-5")).toBe(-5n);
    expect(parseInt64("+7")).toBe(7n);
    expect(parseInt64("9223372036854775807")).toBe(2n ** 63n - 1n);
    expect(parseInt64("-9223372036854775808")).toBe(-(2n ** 63n));
    expect(() => parseInt64("9223372036854775808")).toThrow(
      'integer "9223372036854775808" is out of the 64-bit range',
    );
    for (const bad of ["", "x", "1.5", "0x10", " 1", "1e3"]) {
      expect(() => parseInt64(bad)).toThrow(`invalid integer "${bad}"`);
    }
  });

  it.each([
    ["abcd", '"abcd"'],
    ["", '""'],
    ['a"b', '"a\\"b"'],
    ["a\\b", '"a\\\\b"'],
    ["a\tb\nc\r", '"a\\tb\\nc\\r"'],
    ["\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'],
    ["héllo 世界 😀", '"héllo 世界 😀"'],
    ["\u00a0\u2028", '"\\u00a0\\u2028"'],
    ["\u{e0001}", '"\\U000e0001"'],
  ])("goQuote(%j) is %s, as Go's %%q", (s, quoted) => {
    expect(goQuote(s)).toBe(quoted);
  });
});
