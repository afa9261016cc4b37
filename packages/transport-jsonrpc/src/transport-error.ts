import type { Code } from "@svckit/endpoint";
import { JsonRpcError, JsonRpcErrorCode, type JsonRpcErrorOptions } from "./json-rpc-error.js";

/**
 * An error the server answers at the HTTP level (wrong HTTP method, content type or timeout header,
 * body too large or unreadable), with a specific HTTP status and an Invalid Request envelope.
 * Internal: users see it as a {@link JsonRpcError} with `rpcCode` -32600.
 */
export class TransportError extends JsonRpcError {
  /** The HTTP status to answer with. */
  readonly status: number;

  constructor(status: number, code: Code, message: string, options?: JsonRpcErrorOptions) {
    super(JsonRpcErrorCode.INVALID_REQUEST, code, message, options);
    this.status = status;
  }
}
