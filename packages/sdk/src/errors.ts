/**
 * @module errors
 * What the SDK throws. {@link ApiError}: the server answered with an error (Azure's error body, its
 * stable `code`). {@link ConnectionError}: no answer at all. {@link OperationFailedError}: a
 * long-running pool operation ended in failure. All three are {@link SandpoolError}s.
 */

export class SandpoolError extends Error {
  override name = 'SandpoolError';
}

/** Thrown when the server answers with a 4xx or 5xx. */
export class ApiError extends SandpoolError {
  override name = 'ApiError';

  constructor(
    /** The HTTP status. */
    readonly status: number,
    /** The stable error code, e.g. `SessionPoolFull`, `InvalidParameter`, `SessionLost`. */
    readonly code: string,
    message: string,
    /** The request field or parameter at fault, when the server names one. */
    readonly target: string | undefined,
    /** The server's request id (`x-ms-request-id`), to find the request in its logs. */
    readonly requestId: string | undefined,
  ) {
    super(`${code}: ${message}`);
  }
}

/** Thrown when the server cannot be reached or the connection breaks before an answer. */
export class ConnectionError extends SandpoolError {
  override name = 'ConnectionError';
}

/** Thrown when a pool's create, update or delete operation ends as `Failed`. */
export class OperationFailedError extends SandpoolError {
  override name = 'OperationFailedError';

  constructor(
    readonly operationId: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

interface WireError {
  error?: { code?: unknown; message?: unknown; target?: unknown };
}

/** The {@link ApiError} for a response whose body (parsed, if it was JSON) is `body`. */
export function apiErrorFrom(response: Response, body: unknown): ApiError {
  const error = (body as WireError | undefined)?.error;
  const code =
    typeof error?.code === 'string' ? error.code : (response.headers.get('x-ms-error-code') ?? 'HttpError');
  const message =
    typeof error?.message === 'string' ? error.message : `HTTP ${response.status} ${response.statusText}`;
  return new ApiError(
    response.status,
    code,
    message,
    typeof error?.target === 'string' ? error.target : undefined,
    response.headers.get('x-ms-request-id') ?? undefined,
  );
}
