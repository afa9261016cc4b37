// Command-line flags as go-kit's binaries take them (Go's `flag` package: `-http-addr x`,
// `-http-addr=x`) and as Node users type them (`--http-addr x`, `--http-addr=x`). Numbers such as
// `-5` are arguments, not flags, so `addcli sum -5 3` works; `--` ends the flags.

/** A flag's kind: a string takes a value, a boolean does not. */
export type FlagKind = "string" | "boolean";

/** The parsed command line: each flag given (by its name, without dashes) and the other arguments in order. */
export interface ParsedFlags {
  readonly values: ReadonlyMap<string, string | boolean>;
  readonly positionals: readonly string[];
}

const FLAG = /^--?([A-Za-z][A-Za-z0-9-]*)(?:=([\s\S]*))?$/;

/**
 * Parses `args` against the known flags (`{ "http-addr": "string", help: "boolean" }`; `h` may be an
 * alias given as its own entry). Throws an `Error` naming the problem: an unknown flag, a string
 * flag without a value, a boolean with a value other than `true` or `false`.
 *
 * @example
 * ```ts
 * parseFlags(["-http-addr=:8081", "sum", "-5", "3"], { "http-addr": "string" });
 * // { values: Map { "http-addr" => ":8081" }, positionals: ["sum", "-5", "3"] }
 * ```
 */
export function parseFlags(args: readonly string[], known: Readonly<Record<string, FlagKind>>): ParsedFlags {
  const values = new Map<string, string | boolean>();
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    const match = FLAG.exec(arg);
    if (match === null) {
      positionals.push(arg);
      continue;
    }
    const name = match[1] as string;
    const inline = match[2];
    const kind = Object.hasOwn(known, name) ? known[name] : undefined;
    if (kind === undefined) throw new Error(`unknown flag ${arg.split("=")[0]}`);
    if (kind === "boolean") {
      if (inline !== undefined && inline !== "true" && inline !== "false") {
        throw new Error(`flag -${name} takes no value (or =true / =false), got "${inline}"`);
      }
      values.set(name, inline !== "false");
      continue;
    }
    if (inline !== undefined) {
      values.set(name, inline);
    } else if (i + 1 < args.length) {
      values.set(name, args[++i] as string);
    } else {
      throw new Error(`flag -${name} needs a value`);
    }
  }
  return { values, positionals };
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * A duration as Go's flags take it, in milliseconds: `500ms`, `60s`, `1.5m`, `1h`, or `0`. Throws an
 * `Error` for anything else.
 *
 * @example
 * ```ts
 * parseDuration("60s"); // 60000
 * ```
 */
export function parseDuration(flag: string, value: string): number {
  if (value === "0") return 0;
  const match = DURATION.exec(value);
  if (match === null) {
    throw new Error(`invalid duration "${value}" for -${flag}: expected e.g. 500ms, 60s, 1m`);
  }
  return Math.round(Number(match[1]) * (UNIT_MS[match[2] as string] as number));
}

/**
 * A whole number ≥ 0 (digits only, at most 9 of them). Throws an `Error` for anything else.
 *
 * @example
 * ```ts
 * parseCount("sum-rate", "10"); // 10
 * ```
 */
export function parseCount(flag: string, value: string): number {
  if (!/^\d{1,9}$/.test(value)) {
    throw new Error(`invalid value "${value}" for -${flag}: expected a whole number >= 0`);
  }
  return Number(value);
}

/**
 * One of `choices`, as given. Throws an `Error` naming the choices for anything else.
 *
 * @example
 * ```ts
 * parseChoice("grpc-engine", "h2", ["grpc-js", "h2"] as const); // "h2"
 * ```
 */
export function parseChoice<const C extends string>(flag: string, value: string, choices: readonly C[]): C {
  const choice = choices.find((c) => c === value);
  if (choice === undefined) {
    throw new Error(`invalid value "${value}" for -${flag}: expected ${choices.join(" or ")}`);
  }
  return choice;
}
