/**
 * @module store/sql-store
 * The store's queries, written once with Kysely's query builder for every SQL database it runs on
 * (SQLite embedded, PostgreSQL for a cluster). JSON columns are text, times are ISO 8601 text (they
 * sort as they read), and pools' secret values and settings are sealed (store/sealer.ts) before
 * they reach a row. Each database's store opens its connection, migrates, and maps its errors.
 */

import { CamelCasePlugin, sql, type Kysely, type Selectable, type Transaction } from 'kysely';

import type {
  ApiKeyRow,
  AuditQuery,
  AuditRow,
  UsageRecord,
  EventQuery,
  EventRow,
  ExecutionRow,
  ExecutionStatus,
  JsonObject,
  NewAuditEntry,
  NewEvent,
  NodeRow,
  OperationRow,
  OperationStatus,
  Placement,
  PlacementRequest,
  PoolRow,
  SessionCount,
  SessionRow,
  SessionState,
  Store,
} from './store.js';
import type { Sealer } from './sealer.js';

/** Rows as stored: JSON columns are text. */
export interface Tables {
  pools: Omit<PoolRow, 'tags' | 'spec'> & { tags: string; spec: string };
  operations: Omit<OperationRow, 'error'> & { error: string | null };
  sessions: Omit<SessionRow, 'endDetails' | 'attributes'> & {
    endDetails: string | null;
    attributes: string | null;
  };
  executions: Omit<ExecutionRow, 'outcome'> & { outcome: string };
  events: Omit<EventRow, 'details' | 'seq'> & { details: string | null; seq: number | undefined };
  apiKeys: Omit<ApiKeyRow, 'roles'> & { roles: string };
  audit: Omit<AuditRow, 'seq'> & { seq: number | undefined };
  usageRecords: Omit<UsageRecord, 'tags'> & { tags: string; seq: number | undefined };
  settings: { key: string; value: string };
  nodes: Omit<NodeRow, 'draining'> & { draining: number };
}

/** Column names are snake_case in the database and camelCase here. */
export const camelCase = () => new CamelCasePlugin();

const json = (value: unknown): string => JSON.stringify(value);
const parse = (text: string): unknown => JSON.parse(text);
const parseOrNull = (text: string | null): unknown => (text === null ? null : parse(text));

export abstract class SqlStore implements Store {
  /** Each database tells of pool changes its own way (or, alone, has none to tell). */
  abstract onPoolsChanged(listener: () => void): () => void;

  protected constructor(
    protected readonly db: Kysely<Tables>,
    private readonly sealer: Sealer,
  ) {}

  /**
   * Makes placements of one pool wait for each other (PostgreSQL: a transaction-scoped advisory
   * lock). The embedded store runs one transaction at a time on its one connection already.
   */
  protected lockPlacements?(tx: Transaction<Tables>, poolId: string): Promise<void>;

  /** Whether ready rows are claimed with `FOR UPDATE SKIP LOCKED` (PostgreSQL). */
  protected readonly rowLocks: boolean = false;

  /** Seals again whatever is plain or sealed under an older key (after a rotation, or an upgrade). */
  protected async resealStale(): Promise<void> {
    for (const row of await this.db.selectFrom('settings').selectAll().execute()) {
      if (this.sealer.isStale(row.value)) await this.putSetting(row.key, this.sealer.open(row.value));
    }
    for (const row of await this.db.selectFrom('pools').selectAll().execute()) {
      const secrets = (parse(row.spec) as { secrets?: { value: string }[] }).secrets ?? [];
      if (secrets.some((secret) => this.sealer.isStale(secret.value))) await this.putPool(this.toPool(row));
    }
  }

  /** The spec with each secret's value passed through `transform`. */
  private static mapSecrets(spec: JsonObject, transform: (value: string) => string): JsonObject {
    const secrets = (spec as { secrets?: { name: string; value: string }[] }).secrets;
    if (!secrets) return spec;
    return { ...spec, secrets: secrets.map((secret) => ({ ...secret, value: transform(secret.value) })) };
  }

  private toSession(row: Selectable<Tables['sessions']>): SessionRow {
    return {
      ...row,
      endDetails: parseOrNull(row.endDetails) as JsonObject | null,
      attributes: row.attributes === null ? null : (parse(this.sealer.open(row.attributes)) as JsonObject),
    };
  }

  private toPool(row: Selectable<Tables['pools']>): PoolRow {
    const spec = SqlStore.mapSecrets(parse(row.spec) as JsonObject, (value) => this.sealer.open(value));
    return { ...row, tags: parse(row.tags) as PoolRow['tags'], spec };
  }

  async listPools(filter: { subscription?: string; resourceGroup?: string } = {}): Promise<PoolRow[]> {
    let query = this.db.selectFrom('pools').selectAll().orderBy('id');
    // ARM compares subscription and resource group names case-insensitively.
    if (filter.subscription !== undefined) {
      query = query.where(sql<string>`lower(subscription)`, '=', filter.subscription.toLowerCase());
    }
    if (filter.resourceGroup !== undefined) {
      query = query.where(sql<string>`lower(resource_group)`, '=', filter.resourceGroup.toLowerCase());
    }
    return (await query.execute()).map((row) => this.toPool(row));
  }

  async getPool(id: string): Promise<PoolRow | undefined> {
    const row = await this.db.selectFrom('pools').selectAll().where('id', '=', id).executeTakeFirst();
    return row && this.toPool(row);
  }

  async putPool(pool: PoolRow): Promise<void> {
    const spec = SqlStore.mapSecrets(pool.spec, (value) => this.sealer.seal(value));
    const row = { ...pool, tags: json(pool.tags), spec: json(spec) };
    await this.db
      .insertInto('pools')
      .values(row)
      .onConflict((c) => c.column('id').doUpdateSet(row))
      .execute();
  }

  async deletePool(id: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('pools').where('id', '=', id).execute();
      await tx.deleteFrom('sessions').where('poolId', '=', id).execute();
      await tx.deleteFrom('executions').where('poolId', '=', id).execute();
      await tx.deleteFrom('events').where('poolId', '=', id).execute();
    });
  }

  async putOperation(operation: OperationRow): Promise<void> {
    const row = { ...operation, error: operation.error && json(operation.error) };
    await this.db
      .insertInto('operations')
      .values(row)
      .onConflict((c) => c.column('id').doUpdateSet(row))
      .execute();
  }

  async getOperation(id: string): Promise<OperationRow | undefined> {
    const row = await this.db.selectFrom('operations').selectAll().where('id', '=', id).executeTakeFirst();
    return row && { ...row, error: parseOrNull(row.error) as OperationRow['error'] };
  }

  async listOperations(filter: { status: OperationStatus }): Promise<OperationRow[]> {
    const rows = await this.db
      .selectFrom('operations')
      .selectAll()
      .where('status', '=', filter.status)
      .orderBy('startedAt')
      .execute();
    return rows.map((row) => ({ ...row, error: parseOrNull(row.error) as OperationRow['error'] }));
  }

  async putSession(session: SessionRow): Promise<void> {
    const row = {
      ...session,
      endDetails: session.endDetails && json(session.endDetails),
      attributes: session.attributes && this.sealer.seal(json(session.attributes)),
    };
    await this.db
      .insertInto('sessions')
      .values(row)
      .onConflict((c) => c.column('id').doUpdateSet(row))
      .execute();
  }

  async listSessions(poolId: string, states?: SessionState[], node?: string): Promise<SessionRow[]> {
    let query = this.db.selectFrom('sessions').selectAll().where('poolId', '=', poolId);
    if (states) query = query.where('state', 'in', states);
    if (node !== undefined)
      query = query.where((eb) => eb.or([eb('node', '=', node), eb('node', 'is', null)]));
    return (await query.orderBy('createdAt').execute()).map((row) => this.toSession(row));
  }

  async liveSession(poolId: string, identifier: string): Promise<SessionRow | undefined> {
    const row = await this.db
      .selectFrom('sessions')
      .selectAll()
      .where('poolId', '=', poolId)
      .where('identifier', '=', identifier)
      .where('state', '=', 'allocated')
      .executeTakeFirst();
    return row && this.toSession(row);
  }

  placeSession(request: PlacementRequest): Promise<Placement> {
    return this.db.transaction().execute(async (tx): Promise<Placement> => {
      await this.lockPlacements?.(tx, request.poolId);
      const live = tx
        .selectFrom('sessions')
        .where('poolId', '=', request.poolId)
        .where('state', '=', 'allocated');
      const existing = await live.selectAll().where('identifier', '=', request.identifier).executeTakeFirst();
      if (existing) return { kind: 'existing', row: this.toSession(existing) };
      const { allocated } = await live
        .select((eb) => eb.fn.countAll<number | string>().as('allocated'))
        .executeTakeFirstOrThrow();
      if (Number(allocated) >= request.maxSessions) return { kind: 'full', allocated: Number(allocated) };
      const allocation = {
        identifier: request.identifier,
        state: 'allocated' as const,
        allocatedAt: request.at,
        lastAccessedAt: request.at,
      };
      const ready =
        request.nodes.length === 0
          ? undefined
          : await tx
              .selectFrom('sessions')
              .selectAll()
              .where('poolId', '=', request.poolId)
              .where('state', '=', 'ready')
              .where('generation', '=', request.generation)
              .where('node', 'in', request.nodes)
              .orderBy(
                sql`case ${sql.ref('node')} ${sql.join(
                  request.nodes.map((node, rank) => sql`when ${node} then ${rank}`),
                  sql` `,
                )} end`,
              )
              .orderBy('createdAt')
              .limit(1)
              .$if(this.rowLocks, (query) => query.forUpdate().skipLocked())
              .executeTakeFirst();
      if (ready) {
        await tx.updateTable('sessions').set(allocation).where('id', '=', ready.id).execute();
        return { kind: 'warm', row: this.toSession({ ...ready, ...allocation }) };
      }
      if (request.coldNode === undefined) return { kind: 'noNode' };
      const cold: SessionRow = {
        id: request.coldId,
        poolId: request.poolId,
        generation: request.generation,
        node: request.coldNode,
        createdAt: request.at,
        endedAt: null,
        endReason: null,
        endDetails: null,
        deadline: null,
        attributes: null,
        ...allocation,
      };
      await tx
        .insertInto('sessions')
        .values({ ...cold, endDetails: null, attributes: null })
        .execute();
      return { kind: 'cold', row: cold };
    });
  }

  async findLiveSession(identifier: string, poolIds: readonly string[]): Promise<SessionRow | undefined> {
    if (poolIds.length === 0) return undefined;
    const row = await this.db
      .selectFrom('sessions')
      .selectAll()
      .where('identifier', '=', identifier)
      .where('state', '=', 'allocated')
      .where('poolId', 'in', poolIds)
      .executeTakeFirst();
    return row && this.toSession(row);
  }

  async countSessions(): Promise<SessionCount[]> {
    const rows = await this.db
      .selectFrom('sessions')
      .select(['poolId', 'node', 'state', (eb) => eb.fn.countAll<number | string>().as('count')])
      .where('state', 'in', ['ready', 'allocated'])
      .groupBy(['poolId', 'node', 'state'])
      .execute();
    return rows.map((row) => ({
      ...row,
      state: row.state as SessionCount['state'],
      count: Number(row.count),
    }));
  }

  endNodeSessions(node: string, reason: string, at: string): Promise<SessionRow[]> {
    return this.db.transaction().execute(async (tx) => {
      const rows = await tx
        .selectFrom('sessions')
        .selectAll()
        .where('node', '=', node)
        .where('state', 'in', ['ready', 'allocated'])
        .execute();
      if (rows.length === 0) return [];
      const end = { state: 'ended' as const, endedAt: at, endReason: reason };
      await tx
        .updateTable('sessions')
        .set(end)
        .where(
          'id',
          'in',
          rows.map((row) => row.id),
        )
        .execute();
      return rows.map((row) => this.toSession({ ...row, ...end }));
    });
  }

  async deleteSession(id: string): Promise<void> {
    await this.db.deleteFrom('sessions').where('id', '=', id).execute();
  }

  async deleteSessionsEndedBefore(endedBefore: string): Promise<number> {
    const result = await this.db
      .deleteFrom('sessions')
      .where('state', '=', 'ended')
      .where('endedAt', '<', endedBefore)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async lastEndedSession(poolId: string, identifier: string): Promise<SessionRow | undefined> {
    const row = await this.db
      .selectFrom('sessions')
      .selectAll()
      .where('poolId', '=', poolId)
      .where('identifier', '=', identifier)
      .where('state', '=', 'ended')
      .orderBy('endedAt', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && this.toSession(row);
  }

  async putExecution(execution: ExecutionRow): Promise<void> {
    const row = { ...execution, outcome: json(execution.outcome) };
    await this.db
      .insertInto('executions')
      .values(row)
      .onConflict((c) => c.columns(['poolId', 'identifier', 'id']).doUpdateSet(row))
      .execute();
  }

  async listExecutions(filter: { status: ExecutionStatus }): Promise<ExecutionRow[]> {
    const rows = await this.db
      .selectFrom('executions')
      .selectAll()
      .where('status', '=', filter.status)
      .execute();
    return rows.map((row) => ({ ...row, outcome: parse(row.outcome) as JsonObject }));
  }

  async deleteExecutionsEndedBefore(endedBefore: string): Promise<number> {
    const result = await this.db
      .deleteFrom('executions')
      .where('endedAt', '<', endedBefore)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async getExecution(poolId: string, identifier: string, id: string): Promise<ExecutionRow | undefined> {
    const row = await this.db
      .selectFrom('executions')
      .selectAll()
      .where('poolId', '=', poolId)
      .where('identifier', '=', identifier)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && { ...row, outcome: parse(row.outcome) as JsonObject };
  }

  async appendEvent(event: NewEvent): Promise<number> {
    const { seq } = await this.db
      .insertInto('events')
      .values({ ...event, seq: undefined, details: event.details && json(event.details) })
      .returning('seq')
      .executeTakeFirstOrThrow();
    return Number(seq);
  }

  async listEvents(poolId: string, query: EventQuery): Promise<EventRow[]> {
    let select = this.db
      .selectFrom('events')
      .selectAll()
      .where('poolId', '=', poolId)
      .where('seq', '>', query.afterSeq ?? 0);
    if (query.types?.length) select = select.where('type', 'in', query.types);
    if (query.identifier !== undefined) select = select.where('identifier', '=', query.identifier);
    if (query.since !== undefined) select = select.where('at', '>=', query.since);
    const rows = await select.orderBy('seq').limit(query.limit).execute();
    return rows.map((row) => ({
      ...row,
      seq: row.seq!,
      details: parseOrNull(row.details) as JsonObject | null,
    }));
  }

  async deleteEventsBefore(before: string): Promise<number> {
    const result = await this.db.deleteFrom('events').where('at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async appendAudit(entries: readonly NewAuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.db
      .insertInto('audit')
      .values(entries.map((entry) => ({ ...entry, seq: undefined })))
      .onConflict((c) => c.column('requestId').doNothing())
      .execute();
  }

  async listAudit(query: AuditQuery): Promise<AuditRow[]> {
    let select = this.db
      .selectFrom('audit')
      .selectAll()
      .where('seq', '>', query.afterSeq ?? 0);
    if (query.since !== undefined) select = select.where('at', '>=', query.since);
    if (query.until !== undefined) select = select.where('at', '<', query.until);
    if (query.principal !== undefined) select = select.where('principal', '=', query.principal);
    if (query.action !== undefined) select = select.where('action', '=', query.action);
    if (query.pool !== undefined) select = select.where('pool', '=', query.pool);
    const rows = await select.orderBy('seq').limit(query.limit).execute();
    return rows.map((row) => ({ ...row, seq: row.seq! }));
  }

  async deleteAuditBefore(before: string): Promise<number> {
    const result = await this.db.deleteFrom('audit').where('at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async appendUsage(record: UsageRecord): Promise<void> {
    await this.db
      .insertInto('usageRecords')
      .values({ ...record, tags: json(record.tags), seq: undefined })
      .execute();
  }

  async listUsage(window: { since: string; until: string }): Promise<UsageRecord[]> {
    const rows = await this.db
      .selectFrom('usageRecords')
      .selectAll()
      .where('endedAt', '>=', window.since)
      .where('endedAt', '<', window.until)
      .orderBy('seq')
      .execute();
    return rows.map((row) => ({
      kind: row.kind,
      poolId: row.poolId,
      resourceGroup: row.resourceGroup,
      pool: row.pool,
      tags: parse(row.tags) as Record<string, string>,
      startedAt: row.startedAt,
      endedAt: row.endedAt,
      seconds: row.seconds,
      cpuSeconds: row.cpuSeconds,
      memoryGibSeconds: row.memoryGibSeconds,
      executions: row.executions,
    }));
  }

  async deleteUsageBefore(before: string): Promise<number> {
    const result = await this.db.deleteFrom('usageRecords').where('endedAt', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async putApiKey(key: ApiKeyRow): Promise<void> {
    const row = { ...key, roles: json(key.roles) };
    await this.db
      .insertInto('apiKeys')
      .values(row)
      .onConflict((c) => c.column('id').doUpdateSet(row))
      .execute();
  }

  async getApiKey(id: string): Promise<ApiKeyRow | undefined> {
    const row = await this.db.selectFrom('apiKeys').selectAll().where('id', '=', id).executeTakeFirst();
    return row && { ...row, roles: parse(row.roles) as string[] };
  }

  async listApiKeys(): Promise<ApiKeyRow[]> {
    const rows = await this.db.selectFrom('apiKeys').selectAll().orderBy('createdAt').execute();
    return rows.map((row) => ({ ...row, roles: parse(row.roles) as string[] }));
  }

  async putNode(node: NodeRow): Promise<void> {
    const row = { ...node, draining: node.draining ? 1 : 0 };
    await this.db
      .insertInto('nodes')
      .values(row)
      .onConflict((c) => c.column('name').doUpdateSet(row))
      .execute();
  }

  async getNode(name: string): Promise<NodeRow | undefined> {
    const row = await this.db.selectFrom('nodes').selectAll().where('name', '=', name).executeTakeFirst();
    return row && { ...row, draining: row.draining === 1 };
  }

  async listNodes(): Promise<NodeRow[]> {
    const rows = await this.db.selectFrom('nodes').selectAll().orderBy('name').execute();
    return rows.map((row) => ({ ...row, draining: row.draining === 1 }));
  }

  async deleteNodesLostBefore(before: string): Promise<number> {
    const result = await this.db
      .deleteFrom('nodes')
      .where('leaseUntil', '<', before)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('sessions')
              .select('sessions.id')
              .whereRef('sessions.node', '=', 'nodes.name')
              .where('sessions.state', 'in', ['ready', 'allocated']),
          ),
        ),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async getSetting(key: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('settings')
      .select('value')
      .where('key', '=', key)
      .executeTakeFirst();
    return row && this.sealer.open(row.value);
  }

  async putSetting(key: string, plain: string): Promise<void> {
    const value = this.sealer.seal(plain);
    await this.db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((c) => c.column('key').doUpdateSet({ value }))
      .execute();
  }

  async initSetting(key: string, plain: string): Promise<string> {
    await this.db
      .insertInto('settings')
      .values({ key, value: this.sealer.seal(plain) })
      .onConflict((c) => c.column('key').doNothing())
      .execute();
    return (await this.getSetting(key))!;
  }

  holdLeadership(): Promise<boolean> {
    return Promise.resolve(true);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
