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
  /** The body is not valid JSON or not of the expected shape. */
  InvalidRequestContent: 'InvalidRequestContent',
  /** A value is out of range or of the wrong type; `target` names it. */
  InvalidParameter: 'InvalidParameter',
  MissingApiVersionParameter: 'MissingApiVersionParameter',
  InvalidApiVersionParameter: 'InvalidApiVersionParameter',
  InvalidIdentifier: 'InvalidIdentifier',
  InvalidFileName: 'InvalidFileName',
  /** The request's path does not decode (a malformed percent-escape). */
  InvalidUrl: 'InvalidUrl',
  /** A subscription segment that is not a GUID. */
  InvalidSubscriptionId: 'InvalidSubscriptionId',
  /** A resource group name outside Azure's charset or length. */
  InvalidResourceGroupName: 'InvalidResourceGroupName',
  /** A registry on loopback, link-local or a private range, which the operator did not allow. */
  RegistryNotAllowed: 'RegistryNotAllowed',
  /** A custom container's image reference does not parse. */
  InvalidImageReference: 'InvalidImageReference',
  /** The registry has no such repository, tag or digest. */
  ImageNotFound: 'ImageNotFound',
  /** The registry refused the pool's registry credentials (or asked for some). */
  RegistryAuthFailed: 'RegistryAuthFailed',
  /** The image has no variant for this host's OS and architecture. */
  ImagePlatformUnsupported: 'ImagePlatformUnsupported',
  /** The registry's manifest or config cannot be read as an OCI or Docker image. */
  ImageManifestInvalid: 'ImageManifestInvalid',
  // 401
  AuthenticationFailed: 'AuthenticationFailed',
  // 403
  AuthorizationFailed: 'AuthorizationFailed',
  // 404
  SandboxNotFound: 'SandboxNotFound',
  /** No node of that name has registered with the store. */
  NodeNotFound: 'NodeNotFound',
  /** No such session pool. */
  ResourceNotFound: 'ResourceNotFound',
  RouteNotFound: 'RouteNotFound',
  OperationNotFound: 'OperationNotFound',
  ExecutionNotFound: 'ExecutionNotFound',
  FileNotFound: 'FileNotFound',
  SessionNotFound: 'SessionNotFound',
  ApiKeyNotFound: 'ApiKeyNotFound',
  /** No MCP session of this id, for this caller and pool (ended, expired, or another caller's). */
  McpSessionNotFound: 'McpSessionNotFound',
  /** No background process of that pid in the session. */
  ProcessNotFound: 'ProcessNotFound',
  /** A code interpreter context (E2B's) the session does not have. */
  ContextNotFound: 'ContextNotFound',
  // 405
  /** The route answers other methods (`Allow` names them). */
  MethodNotAllowed: 'MethodNotAllowed',
  // 409
  /** A socket, FIFO or device under /mnt/data: the files API reads and writes regular files only. */
  NotARegularFile: 'NotARegularFile',
  SandboxAlreadyExists: 'SandboxAlreadyExists',
  /** The pool is being deleted or has an operation running. */
  SessionPoolBusy: 'SessionPoolBusy',
  /** The session runs as many background processes as it may; one must end first. */
  TooManyProcesses: 'TooManyProcesses',
  /** The session holds as many contexts as it may. */
  TooManyContexts: 'TooManyContexts',
  /** The process did not read its stdin within a second, or its stdin is closed. */
  ProcessStdinUnavailable: 'ProcessStdinUnavailable',
  // 410
  /** The session's sandbox is gone; its state cannot be recovered. */
  SessionLost: 'SessionLost',
  // 408
  /** The client sent its request too slowly (Node's headers or request timeout). */
  RequestTimeout: 'RequestTimeout',
  // 413
  PayloadTooLarge: 'PayloadTooLarge',
  // 415
  UnsupportedMediaType: 'UnsupportedMediaType',
  // 431
  /** The request line and headers exceed the HTTP parser's limit (16 KiB). */
  RequestHeadersTooLarge: 'RequestHeadersTooLarge',
  // 429
  /** Every slot of the pool is allocated (404 under poolFullStatus=404). */
  SessionPoolFull: 'SessionPoolFull',
  /** The caller, or the identifier, sent more requests than its rate limit allows; see Retry-After. */
  RateLimitExceeded: 'RateLimitExceeded',
  // 500
  InternalServerError: 'InternalServerError',
  SandboxStartFailed: 'SandboxStartFailed',
  SandboxRuntimeError: 'SandboxRuntimeError',
  AgentProtocolError: 'AgentProtocolError',
  // 501
  RuntimeUnavailable: 'RuntimeUnavailable',
  /** What E2B's API asks of a sandbox that Sandpool does not do yet (pause and resume, snapshots). */
  NotSupported: 'NotSupported',
  // 502
  /** No answer from the registry: refused, unknown host, TLS failure or timeout. */
  RegistryUnreachable: 'RegistryUnreachable',
  /** The pull failed for a reason the registry's answer does not name. */
  ImagePullFailed: 'ImagePullFailed',
  /** The custom container refused or dropped the proxied request (not listening, exited). */
  ContainerUnreachable: 'ContainerUnreachable',
  /** The node holding the identifier's session did not answer the forwarded request. */
  NodeUnreachable: 'NodeUnreachable',
  /** The E2B sandbox a request to a sandbox names does not run (it ended, or never was). */
  SandboxNotRunning: 'SandboxNotRunning',
  /** An E2B sandbox runs, but nothing in it listens on the port a request names. */
  SandboxPortClosed: 'SandboxPortClosed',
  // 503
  /** A custom container pool whose image is not pulled (still pulling, or the pull failed). */
  SessionPoolNotReady: 'SessionPoolNotReady',
  AgentUnavailable: 'AgentUnavailable',
  /** The store stayed locked by another process past its busy timeout. */
  StoreBusy: 'StoreBusy',
  ServiceShuttingDown: 'ServiceShuttingDown',
  /** This node is draining: it starts no new session (another node, or this one after a restart, will). */
  NodeDraining: 'NodeDraining',
  /** Every node is draining or full: none can take a new session. */
  NoNodeAvailable: 'NoNodeAvailable',
  /** The session moved to another node while the request was routed; a retry reaches it. */
  SessionElsewhere: 'SessionElsewhere',
  /** This node holds as many MCP sessions as it keeps; one ending makes room. */
  TooManyMcpSessions: 'TooManyMcpSessions',
  /** The store has not taken the audit trail's entries for so long that the node's journal is full. */
  AuditBacklogFull: 'AuditBacklogFull',
  // 507
  /** The session's /mnt/data is full. */
  SessionStorageFull: 'SessionStorageFull',
  /** The disk holding the server's store is full. */
  ServerStorageFull: 'ServerStorageFull',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const HTTP_STATUS: Record<ErrorCode, number> = {
  InvalidSandboxSpec: 400,
  InvalidAgentRequest: 400,
  InvalidRequestContent: 400,
  InvalidParameter: 400,
  MissingApiVersionParameter: 400,
  InvalidApiVersionParameter: 400,
  InvalidIdentifier: 400,
  InvalidFileName: 400,
  InvalidUrl: 400,
  InvalidSubscriptionId: 400,
  InvalidResourceGroupName: 400,
  RegistryNotAllowed: 400,
  InvalidImageReference: 400,
  ImageNotFound: 400,
  RegistryAuthFailed: 400,
  ImagePlatformUnsupported: 400,
  ImageManifestInvalid: 400,
  AuthenticationFailed: 401,
  AuthorizationFailed: 403,
  SandboxNotFound: 404,
  ResourceNotFound: 404,
  NodeNotFound: 404,
  RouteNotFound: 404,
  OperationNotFound: 404,
  ExecutionNotFound: 404,
  FileNotFound: 404,
  SessionNotFound: 404,
  ApiKeyNotFound: 404,
  McpSessionNotFound: 404,
  ProcessNotFound: 404,
  ContextNotFound: 404,
  MethodNotAllowed: 405,
  NotARegularFile: 409,
  SandboxAlreadyExists: 409,
  SessionPoolBusy: 409,
  TooManyProcesses: 409,
  TooManyContexts: 409,
  ProcessStdinUnavailable: 409,
  SessionLost: 410,
  RequestTimeout: 408,
  PayloadTooLarge: 413,
  RequestHeadersTooLarge: 431,
  UnsupportedMediaType: 415,
  SessionPoolFull: 429,
  RateLimitExceeded: 429,
  InternalServerError: 500,
  SandboxStartFailed: 500,
  SandboxRuntimeError: 500,
  AgentProtocolError: 500,
  RuntimeUnavailable: 501,
  NotSupported: 501,
  RegistryUnreachable: 502,
  ImagePullFailed: 502,
  ContainerUnreachable: 502,
  NodeUnreachable: 502,
  SandboxNotRunning: 502,
  SandboxPortClosed: 502,
  SessionPoolNotReady: 503,
  AgentUnavailable: 503,
  StoreBusy: 503,
  ServiceShuttingDown: 503,
  NodeDraining: 503,
  NoNodeAvailable: 503,
  SessionElsewhere: 503,
  TooManyMcpSessions: 503,
  AuditBacklogFull: 503,
  SessionStorageFull: 507,
  ServerStorageFull: 507,
};

export class AppError extends Error {
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  /** The request field the error is about, e.g. `properties.scaleConfiguration.maxConcurrentSessions`. */
  readonly target: string | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; target?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.status = HTTP_STATUS[code];
    this.details = options.details;
    this.target = options.target;
  }
}
