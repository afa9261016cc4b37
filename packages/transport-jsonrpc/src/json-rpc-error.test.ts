import { background, Code, type CodeName, codeNames, ServiceError } from "@svckit/endpoint";
import {
  codeToJsonRpcCode,
  defaultJsonRpcErrorEncoder,
  JsonRpcError,
  JsonRpcErrorCode,
  jsonRpcCodeToCode,
} from "@svckit/transport-jsonrpc";
import { describe, expect, it } from "vitest";

const names = (Object.values(codeNames) as CodeName[]).filter((name) => name !== "OK");

describe("code tables", () => {
  it("has the specification's reserved codes", () => {
    expect(JsonRpcErrorCode).toEqual({
      PARSE_ERROR: -32700,
      INVALID_REQUEST: -32600,
      METHOD_NOT_FOUND: -32601,
      INVALID_PARAMS: -32602,
      INTERNAL_ERROR: -32603,
    });
  });

  it("maps every code into the server-error range, except INTERNAL to -32603", () => {
    for (const name of names) {
      const rpc = codeToJsonRpcCode[Code[name]];
      if (name === "INTERNAL") expect(rpc).toBe(-32603);
      else {
        expect(rpc).toBe(-32000 - Code[name]);
        expect(rpc).toBeLessThanOrEqual(-32000);
        expect(rpc).toBeGreaterThanOrEqual(-32099);
      }
    }
  });

  it("maps every code back to itself", () => {
    for (const name of names)
      expect([name, jsonRpcCodeToCode(codeToJsonRpcCode[Code[name]])]).toEqual([name, Code[name]]);
  });

  it("maps the reserved codes and the rest of the range", () => {
    expect(jsonRpcCodeToCode(-32700)).toBe(Code.INTERNAL);
    expect(jsonRpcCodeToCode(-32600)).toBe(Code.INTERNAL);
    expect(jsonRpcCodeToCode(-32601)).toBe(Code.UNIMPLEMENTED);
    expect(jsonRpcCodeToCode(-32602)).toBe(Code.INVALID_ARGUMENT);
    expect(jsonRpcCodeToCode(-32603)).toBe(Code.INTERNAL);
    for (const other of [-32000, -32017, -32099, -32100, -32604, -1, 0, 1, 1.5, Number.NaN]) {
      expect(jsonRpcCodeToCode(other)).toBe(Code.UNKNOWN);
    }
  });
});

describe("JsonRpcError", () => {
  it("is a ServiceError with a JSON-RPC code and data", () => {
    const cause = new Error("root");
    const e = new JsonRpcError(-32050, Code.UNAVAILABLE, "down", { data: { retry: 1 }, cause });
    expect(e).toBeInstanceOf(ServiceError);
    expect(e).toBeInstanceOf(Error);
    expect([e.rpcCode, e.code, e.message, e.data, e.cause, e.name]).toEqual([
      -32050,
      Code.UNAVAILABLE,
      "down",
      { retry: 1 },
      cause,
      "ServiceError",
    ]);
    expect(ServiceError.from(e)).toBe(e);
    expect(new JsonRpcError(1, Code.ABORTED, "x").data).toBeUndefined();
    expect(e.remote).toBe(false);
  });
});

describe("defaultJsonRpcErrorEncoder", () => {
  it("sends a ServiceError with its table code, message and data.code", () => {
    expect(defaultJsonRpcErrorEncoder(background, new ServiceError(Code.NOT_FOUND, "no user 42"))).toEqual({
      code: -32005,
      message: "no user 42",
      data: { code: "NOT_FOUND" },
    });
    const details = [{ type: "d", value: 1 }];
    expect(defaultJsonRpcErrorEncoder(background, new ServiceError(Code.ABORTED, "x", { details }))).toEqual({
      code: -32010,
      message: "x",
      data: { code: "ABORTED", details },
    });
  });

  it("sends a JsonRpcError constructed here as it is, reserved codes included", () => {
    expect(defaultJsonRpcErrorEncoder(background, new JsonRpcError(7, Code.UNKNOWN, "seven"))).toEqual({
      code: 7,
      message: "seven",
    });
    for (const rpcCode of [-32700, -32600, -32601, -32602, -32603, -32050]) {
      expect(
        defaultJsonRpcErrorEncoder(background, new JsonRpcError(rpcCode, Code.UNIMPLEMENTED, "m")),
      ).toEqual({ code: rpcCode, message: "m" });
    }
    expect(
      defaultJsonRpcErrorEncoder(background, new JsonRpcError(7, Code.UNKNOWN, "s", { data: [1] })),
    ).toEqual({
      code: 7,
      message: "s",
      data: [1],
    });
  });

  it("never sends the message of something that was not a ServiceError", () => {
    expect(defaultJsonRpcErrorEncoder(background, ServiceError.from(new Error("secret")))).toEqual({
      code: -32603,
      message: "internal error",
      data: { code: "INTERNAL" },
    });
  });
});
