import { Code, ServiceError } from "@svckit/endpoint";

/** The business logic: plain functions, no transport in sight. */
export interface StringService {
  /** Upper-cases `s`; an empty string is an error. */
  uppercase(s: string): Promise<string>;
  /** Counts the characters (Unicode code points) of `s`. */
  count(s: string): Promise<number>;
}

/** The error for an empty input, as in go-kit's stringsvc (`ErrEmpty`). */
export const errEmpty = (): ServiceError => new ServiceError(Code.INVALID_ARGUMENT, "empty string");

/** Creates the string service. */
export function createStringService(): StringService {
  return {
    async uppercase(s) {
      if (s === "") throw errEmpty();
      return s.toUpperCase();
    },
    async count(s) {
      let n = 0;
      for (const _ of s) n++;
      return n;
    },
  };
}
