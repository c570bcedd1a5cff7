/**
 * @module failure
 * How the CLI fails: every error becomes one message on stderr, a hint saying what to do next, and an
 * exit code scripts can branch on (see {@link ExitCode}; the README lists them).
 */

import { ApiError, ConnectionError, OperationFailedError } from '@sandpool/sdk';

export const ExitCode = {
  Ok: 0,
  /** The server failed (5xx) or a long-running operation ended in failure. */
  Failed: 1,
  /** Bad flags or arguments; nothing was sent. */
  Usage: 2,
  /** The server refused the request as invalid (400, 413, 415). */
  Refused: 3,
  /** The pool, session, file or operation does not exist. */
  NotFound: 4,
  /** No valid credential (401), or the credential lacks the role (403). */
  Unauthorized: 5,
  /** Try again later: the pool is full or busy (409, 429, 503). */
  Busy: 6,
  /** The server could not be reached. */
  Unreachable: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure the CLI itself detects, with its exit code and what to do about it. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** A mistake in the command line itself. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.Usage, 'See `sandpool <command> --help`.');
  }
}

export interface Failure {
  message: string;
  hint?: string;
  exitCode: ExitCode;
}

const HINTS: Record<string, string> = {
  AuthenticationFailed: 'Sign in with `sandpool login --endpoint <url> --api-key <key>`.',
  AuthorizationFailed:
    'Ask a Contributor for a key with the role this needs (`sandpool token create --roles …`).',
  ResourceNotFound: 'List the pools with `sandpool sessionpool list`.',
  SessionNotFound: 'List live sessions with `sandpool session list -n <pool>`.',
  FileNotFound: 'List the files with `sandpool session code-interpreter list-files`.',
  ProcessNotFound: 'List the session’s processes with `sandpool session process list`.',
  SessionPoolFull:
    'Every session is in use: stop one (`sandpool session stop`), wait, or raise `--max-sessions` with `sandpool sessionpool update`.',
  SessionPoolBusy: 'Another operation is running on this pool; try again in a moment.',
  SessionLost: 'The session’s sandbox ended and its state is gone; the next request starts a new session.',
  InvalidApiVersionParameter: 'This server speaks another API version; upgrade the CLI or the server.',
};

function exitCodeFor(status: number): ExitCode {
  if (status === 401 || status === 403) return ExitCode.Unauthorized;
  if (status === 404 || status === 410) return ExitCode.NotFound;
  if (status === 409 || status === 429 || status === 503) return ExitCode.Busy;
  if (status >= 500) return ExitCode.Failed;
  return ExitCode.Refused;
}

function causeCode(error: unknown): string | undefined {
  let cause: unknown = error;
  while (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cause = cause.cause;
  }
  return undefined;
}

export function describeFailure(error: unknown): Failure {
  if (error instanceof CliError) {
    return { message: error.message, ...(error.hint && { hint: error.hint }), exitCode: error.exitCode };
  }
  if (error instanceof ApiError) {
    const hint = HINTS[error.code];
    return {
      message: `${error.message}${error.target ? ` (${error.target})` : ''}`,
      ...(hint && { hint }),
      exitCode: exitCodeFor(error.status),
    };
  }
  if (error instanceof OperationFailedError) {
    return {
      message: `the operation failed: ${error.message}`,
      hint: 'See the pool’s state with `sandpool sessionpool show`.',
      exitCode: ExitCode.Failed,
    };
  }
  if (error instanceof ConnectionError) {
    const code = causeCode(error);
    const tls =
      code !== undefined &&
      (code.startsWith('ERR_TLS') || code.includes('CERT') || code.includes('SIGNATURE'));
    return {
      message: error.message,
      hint: tls
        ? 'The server’s certificate is not trusted: log in again with `--ca-file <sandpool home>/tls/cert.pem`.'
        : 'Is the server running? Start it with `sandpool serve`, or check the endpoint with `sandpool profile show`.',
      exitCode: ExitCode.Unreachable,
    };
  }
  return { message: error instanceof Error ? error.message : String(error), exitCode: ExitCode.Failed };
}
