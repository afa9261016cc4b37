import { Code, type CodeName, codeNames, createMetadata, ServiceError } from "@svckit/endpoint";
import { describe, expect, it } from "vitest";

const defaultMessages: readonly (readonly [Code, string])[] = [
  [Code.CANCELLED, "operation was cancelled"],
  [Code.UNKNOWN, "unknown error"],
  [Code.INVALID_ARGUMENT, "invalid argument"],
  [Code.DEADLINE_EXCEEDED, "deadline exceeded"],
  [Code.NOT_FOUND, "not found"],
  [Code.ALREADY_EXISTS, "already exists"],
  [Code.PERMISSION_DENIED, "permission denied"],
  [Code.RESOURCE_EXHAUSTED, "resource exhausted"],
  [Code.FAILED_PRECONDITION, "failed precondition"],
  [Code.ABORTED, "aborted"],
  [Code.OUT_OF_RANGE, "out of range"],
  [Code.UNIMPLEMENTED, "unimplemented"],
  [Code.INTERNAL, "internal error"],
  [Code.UNAVAILABLE, "unavailable"],
  [Code.DATA_LOSS, "data loss"],
  [Code.UNAUTHENTICATED, "unauthenticated"],
];

/** An error shaped like a ServiceError made by another installed copy of the package. */
class ForeignServiceError extends Error {
  readonly code: number;
  readonly details: readonly { type: string; value: unknown }[];
  readonly metadata: Iterable<[string, string]>;
  constructor(code: number, message: string) {
    super(message);
    this.name = "ServiceError";
    this.code = code;
    this.details = [{ type: "foreign.Detail", value: 1 }];
    this.metadata = createMetadata({ "x-foreign": "yes" });
  }
}

describe("ServiceError", () => {
  it("is an Error with name ServiceError, a code and a message", () => {
    const err = new ServiceError(Code.NOT_FOUND, "no user 42");
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err.name).toBe("ServiceError");
    expect(err.code).toBe(Code.NOT_FOUND);
    expect(err.codeName).toBe("NOT_FOUND");
    expect(err.message).toBe("no user 42");
    expect(String(err)).toBe("ServiceError: no user 42");
    expect(err.stack).toContain("ServiceError: no user 42");
    expect(Object.keys(err)).not.toContain("name");
  });

  it.each(defaultMessages)("code %i has the default message %j", (code, message) => {
    const err = new ServiceError(code);
    expect(err.message).toBe(message);
    expect(err.code).toBe(code);
    expect(err.codeName).toBe(codeNames[code]);
  });

  it("keeps an empty message as given", () => {
    expect(new ServiceError(Code.INTERNAL, "").message).toBe("");
  });

  it("turns OK into UNKNOWN: an error is never answered as a success", () => {
    const err = new ServiceError(Code.OK);
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.message).toBe("unknown error");
    expect(new ServiceError(Code.OK, "boom").toJSON()).toEqual({ code: "UNKNOWN", message: "boom" });
    const foreign = ServiceError.from(new ForeignServiceError(0, "boom"));
    expect(foreign.code).toBe(Code.UNKNOWN);
    expect(foreign.message).toBe("boom");
  });

  it("turns a code outside the table into UNKNOWN", () => {
    const err = new ServiceError(99 as Code);
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.codeName).toBe("UNKNOWN");
    expect(err.message).toBe("unknown error");
    expect(new ServiceError(-1 as Code, "custom").message).toBe("custom");
  });

  it("has no details, empty metadata and no cause by default", () => {
    const err = new ServiceError(Code.INTERNAL);
    expect(err.details).toEqual([]);
    expect(err.metadata.size).toBe(0);
    expect(err.cause).toBeUndefined();
    expect("cause" in err).toBe(false);
  });

  it("carries details, metadata and cause", () => {
    const cause = new Error("db down");
    const details = [{ type: "google.rpc.BadRequest", value: { field: "s" } }];
    const err = new ServiceError(Code.INVALID_ARGUMENT, "bad s", {
      cause,
      details,
      metadata: { "Retry-After": "5", "X-Multi": ["a", "b"] },
    });
    expect(err.cause).toBe(cause);
    expect(err.details).toEqual(details);
    expect(err.metadata.get("retry-after")).toBe("5");
    expect(err.metadata.getAll("x-multi")).toEqual(["a", "b"]);
  });

  it("keeps a falsy cause that is not undefined", () => {
    expect(new ServiceError(Code.INTERNAL, "x", { cause: 0 }).cause).toBe(0);
    expect(new ServiceError(Code.INTERNAL, "x", { cause: null }).cause).toBeNull();
  });

  describe("toJSON", () => {
    it("has code name and message, and details only when there are some", () => {
      expect(new ServiceError(Code.NOT_FOUND, "gone").toJSON()).toEqual({
        code: "NOT_FOUND",
        message: "gone",
      });
      const details = [{ type: "t", value: [1, 2] }];
      expect(new ServiceError(Code.ABORTED, "retry", { details }).toJSON()).toEqual({
        code: "ABORTED",
        message: "retry",
        details,
      });
    });

    it("never includes the cause, metadata or stack", () => {
      const err = new ServiceError(Code.INTERNAL, "internal error", {
        cause: new Error("secret db password"),
        metadata: { "x-secret": "s3cret" },
      });
      const json = JSON.stringify(err);
      expect(JSON.parse(json)).toEqual({ code: "INTERNAL", message: "internal error" });
      expect(json).not.toContain("secret");
      expect(json).not.toContain("s3cret");
      expect(Object.keys(err.toJSON())).toEqual(["code", "message"]);
    });

    it("never includes the cause even with details", () => {
      const err = new ServiceError(Code.INTERNAL, "m", {
        cause: { password: "hunter2" },
        details: [{ type: "t", value: 1 }],
      });
      expect(JSON.stringify(err)).not.toContain("hunter2");
      expect(Object.keys(err.toJSON())).toEqual(["code", "message", "details"]);
    });
  });

  describe("from", () => {
    it("returns a ServiceError (and a subclass) unchanged", () => {
      const err = new ServiceError(Code.NOT_FOUND, "gone");
      expect(ServiceError.from(err)).toBe(err);
      expect(ServiceError.from(err, Code.UNAVAILABLE)).toBe(err);
      class NotFound extends ServiceError {
        constructor() {
          super(Code.NOT_FOUND, "nf");
        }
      }
      const sub = new NotFound();
      expect(ServiceError.from(sub)).toBe(sub);
    });

    it.each([
      ["a DOMException AbortError", new DOMException("stopped", "AbortError")],
      ["an Error named AbortError", Object.assign(new Error("stopped"), { name: "AbortError" })],
      ["AbortSignal.abort()'s reason", AbortSignal.abort().reason as unknown],
    ])("maps %s to CANCELLED, keeping it as cause", (_label, reason) => {
      const err = ServiceError.from(reason);
      expect(err.code).toBe(Code.CANCELLED);
      expect(err.message).toBe("operation was cancelled");
      expect(err.cause).toBe(reason);
    });

    it.each([
      ["a DOMException TimeoutError", new DOMException("slow", "TimeoutError")],
      ["an Error named TimeoutError", Object.assign(new Error("slow"), { name: "TimeoutError" })],
    ])("maps %s to DEADLINE_EXCEEDED, keeping it as cause", (_label, reason) => {
      const err = ServiceError.from(reason);
      expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
      expect(err.message).toBe("deadline exceeded");
      expect(err.cause).toBe(reason);
    });

    it("maps AbortSignal.timeout's reason to DEADLINE_EXCEEDED", async () => {
      const signal = AbortSignal.timeout(1);
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      expect(ServiceError.from(signal.reason).code).toBe(Code.DEADLINE_EXCEEDED);
    });

    it.each([
      ["a plain Error", new Error("db password is hunter2")],
      ["a TypeError", new TypeError("x is not a function")],
      ["a string", "db password is hunter2"],
      ["undefined", undefined],
      ["null", null],
      ["a number", 42],
      ["an object named AbortError (not an Error)", { name: "AbortError", message: "x" }],
      ["an Error named ServiceError without a code", Object.assign(new Error("x"), { name: "ServiceError" })],
      [
        "an Error named ServiceError with a code out of range",
        Object.assign(new Error("x"), { name: "ServiceError", code: 404 }),
      ],
    ])("maps %s to INTERNAL with a generic message, keeping it as cause", (_label, reason) => {
      const err = ServiceError.from(reason);
      expect(err).toBeInstanceOf(ServiceError);
      expect(err.code).toBe(Code.INTERNAL);
      expect(err.message).toBe("internal error");
      expect(err.cause).toBe(reason);
      expect(JSON.stringify(err)).toBe('{"code":"INTERNAL","message":"internal error"}');
    });

    it.each([
      [Code.UNKNOWN, "unknown error"],
      [Code.UNAVAILABLE, "unavailable"],
      [Code.CANCELLED, "operation was cancelled"],
    ] as const)("uses the fallback code %i for unknown values", (fallback, message) => {
      const cause = new Error("boom");
      const err = ServiceError.from(cause, fallback);
      expect(err.code).toBe(fallback);
      expect(err.message).toBe(message);
      expect(err.cause).toBe(cause);
    });

    it("keeps the abort/timeout mapping regardless of the fallback", () => {
      expect(ServiceError.from(new DOMException("x", "AbortError"), Code.UNKNOWN).code).toBe(Code.CANCELLED);
      expect(ServiceError.from(new DOMException("x", "TimeoutError"), Code.UNKNOWN).code).toBe(
        Code.DEADLINE_EXCEEDED,
      );
    });

    it("rebuilds an error of another copy of the package as a full instance, keeping code and message", () => {
      const foreign = new ForeignServiceError(Code.NOT_FOUND, "no such user");
      const err = ServiceError.from(foreign);
      expect(Object.getPrototypeOf(err)).toBe(ServiceError.prototype);
      expect(err.code).toBe(Code.NOT_FOUND);
      expect(err.codeName).toBe("NOT_FOUND");
      expect(err.message).toBe("no such user");
      expect(err.details).toEqual([{ type: "foreign.Detail", value: 1 }]);
      expect(err.metadata.get("x-foreign")).toBe("yes");
      expect(err.cause).toBe(foreign);
      expect(err.toJSON()).toEqual({
        code: "NOT_FOUND",
        message: "no such user",
        details: [{ type: "foreign.Detail", value: 1 }],
      });
    });

    it("rebuilds a bare look-alike (name and code only) without crashing", () => {
      const bare = Object.assign(new Error("limited"), {
        name: "ServiceError",
        code: Code.RESOURCE_EXHAUSTED,
      });
      const err = ServiceError.from(bare);
      expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
      expect(err.message).toBe("limited");
      expect(err.details).toEqual([]);
      expect(err.metadata.size).toBe(0);
      expect(err.toJSON()).toEqual({ code: "RESOURCE_EXHAUSTED", message: "limited" });
    });

    it("drops look-alike metadata that does not iterate as pairs instead of throwing", () => {
      const odd = Object.assign(new Error("odd"), {
        name: "ServiceError",
        code: Code.ABORTED,
        metadata: [[1, 2]],
      });
      const err = ServiceError.from(odd);
      expect(err.code).toBe(Code.ABORTED);
      expect(err.metadata.size).toBe(0);
    });
  });

  describe("instanceof", () => {
    it("recognises a structurally identical error from another copy of the package", () => {
      const foreign = new ForeignServiceError(Code.UNAVAILABLE, "down");
      expect(foreign instanceof ServiceError).toBe(true);
      const bare = Object.assign(new Error("x"), { name: "ServiceError", code: 0 });
      expect(bare instanceof ServiceError).toBe(true);
    });

    it.each([
      ["a plain Error", new Error("x")],
      ["an Error named ServiceError without a code", Object.assign(new Error("x"), { name: "ServiceError" })],
      [
        "an Error named ServiceError with a string code",
        Object.assign(new Error("x"), { name: "ServiceError", code: "5" }),
      ],
      [
        "an Error named ServiceError with a code out of range",
        Object.assign(new Error("x"), { name: "ServiceError", code: 17 }),
      ],
      ["an Error with a code but another name", Object.assign(new Error("x"), { code: 5 })],
      ["a non-Error object", { name: "ServiceError", code: 5, message: "x" }],
      ["a string", "ServiceError"],
      ["null", null],
      ["undefined", undefined],
    ])("rejects %s", (_label, value) => {
      expect(value instanceof ServiceError).toBe(false);
    });

    it("keeps a subclass's instanceof strict", () => {
      class RateLimited extends ServiceError {
        constructor() {
          super(Code.RESOURCE_EXHAUSTED, "slow down");
        }
      }
      const limited = new RateLimited();
      expect(limited instanceof RateLimited).toBe(true);
      expect(limited instanceof ServiceError).toBe(true);
      expect(limited.name).toBe("ServiceError");
      expect(new ServiceError(Code.RESOURCE_EXHAUSTED) instanceof RateLimited).toBe(false);
      expect(new ForeignServiceError(Code.RESOURCE_EXHAUSTED, "x") instanceof RateLimited).toBe(false);
    });
  });

  it("codeName agrees with codeNames for every code", () => {
    for (const [code] of defaultMessages) {
      const name: CodeName = new ServiceError(code).codeName;
      expect(name).toBe(codeNames[code]);
    }
  });
});
