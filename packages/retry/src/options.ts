import type { RetryBudget } from "./budget.js";

/** A short, safe rendering of a bad option value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  return typeof value;
}

/** Checks that `budget`, when given, has the two methods of a {@link RetryBudget}. */
export function checkBudget(budget: RetryBudget | undefined, who: string): RetryBudget | undefined {
  if (budget === undefined) return undefined;
  if (
    typeof budget !== "object" ||
    budget === null ||
    typeof budget.recordRequest !== "function" ||
    typeof budget.tryRetry !== "function"
  ) {
    throw new TypeError(`${who}: budget must have recordRequest() and tryRetry() methods`);
  }
  return budget;
}

/** Checks that an optional option is a function. */
export function checkFunction<F>(value: F | undefined, name: string, who: string): F | undefined {
  if (value !== undefined && typeof value !== "function") {
    throw new TypeError(`${who}: ${name} must be a function, got ${describe(value)}`);
  }
  return value;
}
