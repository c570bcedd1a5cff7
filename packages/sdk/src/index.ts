/**
 * @module @sandpool/sdk
 * TypeScript client for Sandpool, and for Azure Container Apps dynamic sessions (same wire
 * contract): pools, sessions by identifier, executions and files. Runs in Node 24+ and browsers.
 */

export {
  SandpoolClient,
  // Reached through a client (client.pools, client.pool(name).session(id)…), never constructed.
  type Pools,
  type Pool,
  type Session,
  type Files,
  type Processes,
  type Keys,
  type Tokens,
  type Audit,
  type Nodes,
  type SandpoolClientOptions,
  type ExecuteOptions,
  type WaitOption,
  type Execution,
  type ShellExecution,
  type ExecutionEvent,
  type Image,
  type FileInfo,
  type BackgroundProcess,
  type ProcessOutput,
  type SessionInfo,
  type ApiKey,
  type PoolEvent,
  type AuditEntry,
  type NodeInfo,
  type Readiness,
  type Principal,
  type PoolTimeline,
  type ConsoleLog,
  type UsageTotals,
  type ManagementApiVersion,
  type DataApiVersion,
} from './client.js';
export { SandpoolError, ApiError, ConnectionError, OperationFailedError } from './errors.js';
export { poolDefinition, type PoolOptions, type SessionPool } from './pool-definition.js';
export type { RetryOptions } from './retry.js';
export type { components, paths } from './schema.gen.js';
