import { type Code, ServiceError, type ServiceErrorOptions } from "@svckit/endpoint";

/**
 * A {@link ServiceError} raised by the HTTP transport itself (unknown route, wrong method, body too
 * large, unsupported content type, bad timeout header), which must answer with a specific HTTP status
 * rather than the one the code maps to. The default error encoder uses `status`.
 *
 * @example
 * ```ts
 * throw new HttpError(415, Code.INVALID_ARGUMENT, 'unsupported content type "text/plain"');
 * ```
 */
export class HttpError extends ServiceError {
  /** The HTTP status to answer with. */
  readonly status: number;

  /**
   * @param status - the HTTP status to answer with.
   * @param code - the canonical code clients see.
   * @param message - what clients are told.
   * @param options - cause, details and metadata (metadata become response headers).
   */
  constructor(status: number, code: Code, message: string, options?: ServiceErrorOptions) {
    super(code, message, options);
    this.status = status;
  }
}
