/**
 * @module store/store
 * What Sandpool keeps across restarts, behind one interface: pools, their long-running operations,
 * sessions (ready sandboxes included, so a restarted server can reattach them), executions, lifecycle
 * events, API keys and server settings. The embedded implementation is SQLite ({@link SqliteStore});
 * a PostgreSQL one fills the same interface for several nodes. Rows carry plain JSON; the layers above
 * own its meaning. A failure that is the host's state, not a bug, leaves every implementation as
 * the store's own error: `StoreBusy` (locked past its timeout, or failing over) or
 * `ServerStorageFull`; callers never see a driver's codes.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type ProvisioningState = 'InProgress' | 'Succeeded' | 'Failed' | 'Canceled' | 'Deleting';

export interface PoolRow {
  /** The ARM resource id, lower-cased: unique per server. */
  id: string;
  subscription: string;
  resourceGroup: string;
  name: string;
  location: string;
  tags: Record<string, string>;
  /** The pool's template and scale settings (pool/pool-spec). */
  spec: JsonObject;
  provisioningState: ProvisioningState;
  /** Grows with every template change; sandboxes of older generations are replaced. */
  generation: number;
  /** Why the pool cannot reach its warm target, if it cannot. */
  statusMessage: string | null;
  createdAt: string;
  updatedAt: string;
}

export type OperationKind = 'create' | 'update' | 'delete';
export type OperationStatus = 'InProgress' | 'Succeeded' | 'Failed' | 'Canceled';

export interface OperationRow {
  id: string;
  poolId: string;
  kind: OperationKind;
  status: OperationStatus;
  /** The node running it; when that node is lost, the leader takes it over. Null: recorded before nodes were. */
  node: string | null;
  error: { code: string; message: string } | null;
  startedAt: string;
  endedAt: string | null;
}

export type SessionState = 'ready' | 'allocated' | 'ended';

export interface SessionRow {
  /** The sandbox id. */
  id: string;
  poolId: string;
  /** Null while the sandbox waits in the warm set. */
  identifier: string | null;
  state: SessionState;
  /**
   * The node that holds the sandbox. Null only for rows written before nodes were recorded: the node
   * that reconciles the store takes them as its own.
   */
  node: string | null;
  generation: number;
  createdAt: string;
  allocatedAt: string | null;
  lastAccessedAt: string | null;
  endedAt: string | null;
  endReason: string | null;
  /** What the sandbox layer knew about the end (exit code, signal). */
  endDetails: JsonObject | null;
  /** When the session ends by itself whatever its pool's lifecycle says (E2B's timeout); ISO time. */
  deadline: string | null;
  /** What a front door gave the session beyond its sandbox (pool/session-attributes); sealed at rest. */
  attributes: JsonObject | null;
}

export type ExecutionStatus = 'Running' | 'Succeeded' | 'Failed' | 'Canceled';

export interface ExecutionRow {
  id: string;
  poolId: string;
  identifier: string;
  sessionId: string;
  status: ExecutionStatus;
  principal: string;
  codeBytes: number;
  codeSha256: string;
  /** What the execution produced (api/data/executions renders it per API generation). */
  outcome: JsonObject;
  createdAt: string;
  endedAt: string | null;
}

export interface EventRow {
  seq: number;
  poolId: string;
  sessionId: string | null;
  identifier: string | null;
  type: string;
  reason: string | null;
  details: JsonObject | null;
  at: string;
}

export type NewEvent = Omit<EventRow, 'seq'>;

export interface EventQuery {
  afterSeq?: number;
  limit: number;
  types?: string[];
  identifier?: string;
  /** ISO time: only events at or after it. */
  since?: string;
}

/** Who did what, when, to which pool and session, and how it ended (the HTTP status). */
export interface AuditRow {
  seq: number;
  at: string;
  /** `key:<id>`, `<issuer>#<subject>`, or `unauthenticated`. */
  principal: string;
  /** e.g. `pool.createOrUpdate`, `code.execute`, `file.upload`, `key.create`. */
  action: string;
  resourceGroup: string | null;
  pool: string | null;
  identifier: string | null;
  status: number;
  durationMs: number;
  /** The id this server gave the request (x-ms-request-id). */
  requestId: string;
  /** What the client called its request (x-ms-client-request-id), as sent: a label, never a key. */
  clientRequestId: string | null;
}

export type NewAuditEntry = Omit<AuditRow, 'seq'>;

export interface AuditQuery {
  afterSeq?: number;
  limit: number;
  since?: string;
  until?: string;
  principal?: string;
  action?: string;
  pool?: string;
}

/**
 * What one sandbox cost, recorded when its use ended: a session (allocation to end) or a ready
 * sandbox's wait (start to allocation or retirement, the price of prewarming).
 */
export interface UsageRecord {
  kind: 'session' | 'ready';
  poolId: string;
  resourceGroup: string;
  pool: string;
  /** The pool's tags when the record was made (cost centres, owners). */
  tags: Record<string, string>;
  startedAt: string;
  endedAt: string;
  seconds: number;
  /** Measured CPU time (sessions). */
  cpuSeconds: number;
  /** The pool's memory per session × seconds: what the sandbox reserved. */
  memoryGibSeconds: number;
  executions: number;
}

/** A server process of the service, as it registered: where other nodes reach it, and its lease. */
export interface NodeRow {
  name: string;
  /** The URL other nodes and operators reach it on. */
  url: string;
  /** How many sandboxes it may hold. */
  maxSandboxes: number;
  /** Cores its sandboxes may reserve together (null: registered before cores were counted, no limit). */
  maxCpu: number | null;
  /** Memory its sandboxes may reserve together, bytes (null: as for `maxCpu`). */
  maxMemoryBytes: number | null;
  /** It takes no new sessions and starts no sandboxes; its sessions run to their end. */
  draining: boolean;
  startedAt: string;
  /** It is live while this lies ahead; a node that stops renewing it is lost. */
  leaseUntil: string;
}

/** A new identifier's claim, decided by the store in one transaction so nodes never race on it. */
export interface PlacementRequest {
  poolId: string;
  identifier: string;
  /** Only ready sandboxes of the pool's current template are handed out. */
  generation: number;
  /** The pool's `maxConcurrentSessions`, counted across every node. */
  maxSessions: number;
  /** Nodes whose ready sandboxes the session may take, most preferred first. */
  nodes: string[];
  /** Where the session starts when no node has a ready sandbox for it (none: nowhere). */
  coldNode: string | undefined;
  /** The sandbox id a cold start gets. */
  coldId: string;
  at: string;
}

/**
 * What a placement found: the identifier's live session (placed before, maybe by another node); the
 * pool full; a ready sandbox now allocated to the identifier; a cold start recorded on `coldNode`;
 * or no node to place it on.
 */
export type Placement =
  | { kind: 'existing'; row: SessionRow }
  | { kind: 'full'; allocated: number }
  | { kind: 'warm'; row: SessionRow }
  | { kind: 'cold'; row: SessionRow }
  | { kind: 'noNode' };

/** How many live sandboxes one node holds for one pool, in one state. */
export interface SessionCount {
  poolId: string;
  node: string | null;
  state: 'ready' | 'allocated';
  count: number;
}

export interface ApiKeyRow {
  id: string;
  name: string;
  /** SHA-256 of the secret part, hex. */
  secretHash: string;
  /** Role grants, e.g. `Contributor` or `SessionExecutor:/subscriptions/<guid>/resourceGroups/<group>`. */
  roles: string[];
  createdAt: string;
  revokedAt: string | null;
  /**
   * The key whose derived credential (a token of it, or a key such a token made) made this one: this
   * key stops working with it. Null for a key made by a key of its own standing, or by an OIDC token.
   */
  parentKeyId: string | null;
  /** When the key stops working: its maker's expiry, when the maker had one (a token). */
  expiresAt: string | null;
}

export interface Store {
  /** Pools, filtered by subscription and resource group compared case-insensitively. */
  listPools(filter?: { subscription?: string; resourceGroup?: string }): Promise<PoolRow[]>;
  getPool(id: string): Promise<PoolRow | undefined>;
  putPool(pool: PoolRow): Promise<void>;
  /**
   * Deletes the pool and every record of its life (sessions, executions, events) in one
   * transaction, so a new pool of the same name starts empty. Usage records stay: they are the bill.
   */
  deletePool(id: string): Promise<void>;

  putOperation(operation: OperationRow): Promise<void>;
  getOperation(id: string): Promise<OperationRow | undefined>;
  listOperations(filter: { status: OperationStatus }): Promise<OperationRow[]>;

  putSession(session: SessionRow): Promise<void>;
  /**
   * Sessions of a pool in the given states (all states when omitted); with `node`, only those that
   * node holds (and those no node was recorded for).
   */
  listSessions(poolId: string, states?: SessionState[], node?: string): Promise<SessionRow[]>;
  /** The identifier's live session, on whichever node holds it. */
  liveSession(poolId: string, identifier: string): Promise<SessionRow | undefined>;
  /** Places a new identifier's session (see {@link PlacementRequest}); one placement at a time per pool. */
  placeSession(request: PlacementRequest): Promise<Placement>;
  /** Live sandboxes per pool, node and state, across the cluster. */
  countSessions(): Promise<SessionCount[]>;
  /**
   * Ends every live sandbox `node` holds (a lost node), recording `reason` and `at`; returns the
   * rows as they were ended, so each end is recorded once.
   */
  endNodeSessions(node: string, reason: string, at: string): Promise<SessionRow[]>;
  /** Forgets one session row (a cold start's placement whose sandbox never started). */
  deleteSession(id: string): Promise<void>;
  /** Forgets sessions that ended before `endedBefore` (ISO time); returns how many. */
  deleteSessionsEndedBefore(endedBefore: string): Promise<number>;
  /** The live session of an identifier in any of `poolIds` (an identifier unique across them). */
  findLiveSession(identifier: string, poolIds: readonly string[]): Promise<SessionRow | undefined>;
  /** The most recently ended session that had this identifier. */
  lastEndedSession(poolId: string, identifier: string): Promise<SessionRow | undefined>;

  putExecution(execution: ExecutionRow): Promise<void>;
  getExecution(poolId: string, identifier: string, id: string): Promise<ExecutionRow | undefined>;
  listExecutions(filter: { status: ExecutionStatus }): Promise<ExecutionRow[]>;
  /** Forgets executions that ended before `endedBefore` (ISO time); returns how many. */
  deleteExecutionsEndedBefore(endedBefore: string): Promise<number>;

  appendEvent(event: NewEvent): Promise<number>;
  /** The pool's events after `afterSeq`, oldest first, narrowed by type, identifier and time. */
  listEvents(poolId: string, query: EventQuery): Promise<EventRow[]>;
  deleteEventsBefore(before: string): Promise<number>;

  /**
   * Appends entries in the order given, in one transaction; an entry whose request id is stored
   * already is passed over, so a batch sent again after an answer was lost lands once.
   */
  appendAudit(entries: readonly NewAuditEntry[]): Promise<void>;
  /** Audit entries after `afterSeq`, oldest first, narrowed by time, principal, action and pool. */
  listAudit(query: AuditQuery): Promise<AuditRow[]>;
  deleteAuditBefore(before: string): Promise<number>;

  appendUsage(record: UsageRecord): Promise<void>;
  /** Records whose use ended in [since, until). */
  listUsage(window: { since: string; until: string }): Promise<UsageRecord[]>;
  deleteUsageBefore(before: string): Promise<number>;

  putApiKey(key: ApiKeyRow): Promise<void>;
  getApiKey(id: string): Promise<ApiKeyRow | undefined>;
  listApiKeys(): Promise<ApiKeyRow[]>;

  putNode(node: NodeRow): Promise<void>;
  getNode(name: string): Promise<NodeRow | undefined>;
  listNodes(): Promise<NodeRow[]>;
  /** Forgets nodes whose lease ran out before `before` and that hold nothing live; returns how many. */
  deleteNodesLostBefore(before: string): Promise<number>;

  getSetting(key: string): Promise<string | undefined>;
  putSetting(key: string, value: string): Promise<void>;
  /** Stores `value` unless the key has one already; returns what the key holds afterwards. */
  initSetting(key: string, value: string): Promise<string>;

  /**
   * Calls `listener` when another process may have changed the pools (PostgreSQL: LISTEN/NOTIFY),
   * and once on connecting; returns what stops it. The embedded store has no other process.
   */
  onPoolsChanged(listener: () => void): () => void;

  /**
   * Whether this process leads the cluster's shared duties now, becoming leader if nobody is. A
   * PostgreSQL store holds an advisory lock for as long as its connection lives, so leadership moves
   * when the leader dies; the embedded store has one process, always the leader.
   */
  holdLeadership(): Promise<boolean>;

  close(): Promise<void>;
}
