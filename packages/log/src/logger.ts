/** The levels svckit logs at, from least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** The structured fields of one log line. */
export type LogFields = Record<string, unknown>;

/**
 * What svckit logs through: one method, so pino, winston, bunyan, console or your own logger fits with
 * a few lines of glue. `createWinstonLogger` from `@svckit/log/winston` is the ready-made one.
 *
 * @example
 * ```ts
 * import pino from "pino";
 * const p = pino();
 * const logger: Logger = {
 *   log: (level, message, fields) => p[level](fields, message),
 *   isLevelEnabled: (level) => p.isLevelEnabled(level),
 * };
 * ```
 */
export interface Logger {
  /** Writes one line. It should not throw; svckit swallows it if it does. */
  log(level: LogLevel, message: string, fields: LogFields): void;
  /**
   * Whether lines at `level` would be written. Optional: when present, svckit skips building the
   * fields of a line nobody would see.
   */
  isLevelEnabled?(level: LogLevel): boolean;
}

/**
 * A logger that writes nothing and says every level is disabled, so callers skip building lines.
 *
 * @example
 * ```ts
 * const quiet = logging({ logger: noopLogger, name: "sum" });
 * ```
 */
export const noopLogger: Logger = Object.freeze({
  log(): void {},
  isLevelEnabled(): boolean {
    return false;
  },
});

/**
 * A logger that adds `fields` to every line of `logger` (a line's own fields win on a clash), for
 * loggers without a `child` of their own.
 *
 * @example
 * ```ts
 * const log = childLogger(logger, { service: "addsvc" });
 * log.log("info", "started", { port: 8080 }); // fields: { service: "addsvc", port: 8080 }
 * ```
 */
export function childLogger(logger: Logger, fields: LogFields): Logger {
  const base: LogFields = { ...fields };
  const child: Logger = {
    log(level, message, lineFields) {
      logger.log(level, message, { ...base, ...lineFields });
    },
  };
  if (typeof logger.isLevelEnabled === "function") {
    child.isLevelEnabled = (level) => logger.isLevelEnabled?.(level) ?? true;
  }
  return child;
}
