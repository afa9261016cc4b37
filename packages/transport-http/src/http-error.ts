import { type Code, ServiceError, type ServiceErrorOptions } from "@svckit/endpoint";

/**
 * A {@link ServiceError} that must answer with a specific HTTP status rather than the one its code maps
 * to: raised by the HTTP transport itself (unknown route, wrong method, body too large, unsupported
 * content type, bad timeout header), and returned by the client for an upstream's end-to-end 4xx
 * answer (409, 410, 412, 413, 415, 416, 422, 423, 424, 428, 451) whose status the code would not give
 * back (413 is not 429), so a gateway that throws it on answers the upstream's status. The default error
 * encoder uses `status`.
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

/** Errors whose metadata the transport itself set (the router's `Allow` on a 405). */
const transportMetadata = new WeakSet<ServiceError>();

/**
 * Marks an error raised by this package as carrying headers the transport itself set (the router's
 * `Allow`): error encoders pass them whatever their `passHeader` says. Returns the error. Internal.
 */
export function withTransportHeaders<E extends ServiceError>(error: E): E {
  transportMetadata.add(error);
  return error;
}

/** Whether `error`'s metadata are headers the transport itself set (see {@link withTransportHeaders}). Internal. */
export function hasTransportHeaders(error: ServiceError): boolean {
  return transportMetadata.has(error);
}
