/**
 * @module errors
 * The one error registry: every error Sandpool reports has a stable code, and every code has exactly
 * one HTTP status (the compiler rejects a code without one). Wire bodies use Azure's shape,
 * `{ error: { code, message, target?, details? } }`, built by the API's single error handler.
 */

export const ErrorCode = {
  // 400
  InvalidSandboxSpec: 'InvalidSandboxSpec',
  InvalidAgentRequest: 'InvalidAgentRequest',
  // 404
  SandboxNotFound: 'SandboxNotFound',
  // 409
  SandboxAlreadyExists: 'SandboxAlreadyExists',
  // 410: the session's sandbox is gone; its state cannot be recovered
  SessionLost: 'SessionLost',
  // 500
  SandboxStartFailed: 'SandboxStartFailed',
  SandboxRuntimeError: 'SandboxRuntimeError',
  AgentProtocolError: 'AgentProtocolError',
  // 501
  RuntimeUnavailable: 'RuntimeUnavailable',
  // 503
  AgentUnavailable: 'AgentUnavailable',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const HTTP_STATUS: Record<ErrorCode, number> = {
  InvalidSandboxSpec: 400,
  InvalidAgentRequest: 400,
  SandboxNotFound: 404,
  SandboxAlreadyExists: 409,
  SessionLost: 410,
  SandboxStartFailed: 500,
  SandboxRuntimeError: 500,
  AgentProtocolError: 500,
  RuntimeUnavailable: 501,
  AgentUnavailable: 503,
};

export class AppError extends Error {
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.status = HTTP_STATUS[code];
    this.details = options.details;
  }
}
