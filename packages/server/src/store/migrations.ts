/**
 * @module store/migrations
 * The store's schema as Kysely migrations, written with the schema builder rather than SQL text so a
 * PostgreSQL store runs them too. Migrations only ever get appended; the Migrator records which ran.
 */

import { PostgresAdapter, sql, type ColumnDataType, type Kysely, type Migration } from 'kysely';
import type { ColumnDefinitionBuilder } from 'kysely';

/**
 * What differs between the databases, kept to column types: the auto-numbered `seq` (SQLite's
 * rowid alias, PostgreSQL's 64-bit identity) and 8-byte floats (SQLite's `real` is one already).
 */
function columnsFor(db: Kysely<unknown>) {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  const seqType: ColumnDataType = postgres ? 'bigint' : 'integer';
  const float: ColumnDataType = postgres ? 'double precision' : 'real';
  return {
    seqType,
    seq: (c: ColumnDefinitionBuilder) =>
      postgres ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement(),
    float,
  };
}

export const migrations: Record<string, Migration> = {
  '0001-initial': {
    async up(db: Kysely<unknown>) {
      const column = columnsFor(db);
      await db.schema
        .createTable('pools')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('subscription', 'text', (c) => c.notNull())
        .addColumn('resource_group', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('location', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('provisioning_state', 'text', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('status_message', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('operations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('pool_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('ended_at', 'text')
        .execute();
      await db.schema.createIndex('operations_by_status').on('operations').column('status').execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('pool_id', 'text', (c) => c.notNull())
        .addColumn('identifier', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('allocated_at', 'text')
        .addColumn('last_accessed_at', 'text')
        .addColumn('ended_at', 'text')
        .addColumn('end_reason', 'text')
        .addColumn('end_details', 'text')
        .execute();
      await db.schema
        .createIndex('sessions_by_pool_state')
        .on('sessions')
        .columns(['pool_id', 'state'])
        .execute();
      await db.schema
        .createIndex('sessions_by_identifier')
        .on('sessions')
        .columns(['pool_id', 'identifier', 'ended_at'])
        .execute();
      // At most one live session per identifier: the store refuses what single-flight must prevent.
      await db.schema
        .createIndex('one_live_session_per_identifier')
        .on('sessions')
        .columns(['pool_id', 'identifier'])
        .unique()
        .where(sql.ref('state'), '=', 'allocated')
        .execute();

      await db.schema
        .createTable('executions')
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('pool_id', 'text', (c) => c.notNull())
        .addColumn('identifier', 'text', (c) => c.notNull())
        .addColumn('session_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('code_bytes', 'integer', (c) => c.notNull())
        .addColumn('code_sha256', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('ended_at', 'text')
        .addPrimaryKeyConstraint('executions_pk', ['pool_id', 'identifier', 'id'])
        .execute();

      await db.schema
        .createTable('events')
        .addColumn('seq', column.seqType, column.seq)
        .addColumn('pool_id', 'text', (c) => c.notNull())
        .addColumn('session_id', 'text')
        .addColumn('identifier', 'text')
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('details', 'text')
        .addColumn('at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_by_pool').on('events').columns(['pool_id', 'seq']).execute();

      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('roles', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();

      await db.schema
        .createTable('settings')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002-audit': {
    async up(db: Kysely<unknown>) {
      const column = columnsFor(db);
      await db.schema
        .createTable('audit')
        .addColumn('seq', column.seqType, column.seq)
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('resource_group', 'text')
        .addColumn('pool', 'text')
        .addColumn('identifier', 'text')
        .addColumn('status', 'integer', (c) => c.notNull())
        .addColumn('duration_ms', column.float, (c) => c.notNull())
        .addColumn('request_id', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_by_time').on('audit').columns(['at']).execute();
    },
  },
  '0003-usage': {
    async up(db: Kysely<unknown>) {
      const column = columnsFor(db);
      await db.schema
        .createTable('usage_records')
        .addColumn('seq', column.seqType, column.seq)
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('pool_id', 'text', (c) => c.notNull())
        .addColumn('resource_group', 'text', (c) => c.notNull())
        .addColumn('pool', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('ended_at', 'text', (c) => c.notNull())
        .addColumn('seconds', column.float, (c) => c.notNull())
        .addColumn('cpu_seconds', column.float, (c) => c.notNull())
        .addColumn('memory_gib_seconds', column.float, (c) => c.notNull())
        .addColumn('executions', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('usage_by_end').on('usage_records').columns(['ended_at']).execute();
    },
  },
  '0004-client-request-id': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('audit').addColumn('client_request_id', 'text').execute();
    },
  },
  '0005-nodes': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('nodes')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('max_sandboxes', 'integer', (c) => c.notNull())
        .addColumn('draining', 'integer', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('lease_until', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0006-nodes-hold-sessions': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('sessions').addColumn('node', 'text').execute();
      await db.schema.alterTable('operations').addColumn('node', 'text').execute();
      await db.schema.createIndex('sessions_by_node').on('sessions').columns(['node', 'state']).execute();
    },
  },
  '0007-nodes-reserve-cpu-and-memory': {
    async up(db: Kysely<unknown>) {
      const column = columnsFor(db);
      await db.schema.alterTable('nodes').addColumn('max_cpu', column.float).execute();
      await db.schema.alterTable('nodes').addColumn('max_memory_bytes', column.float).execute();
    },
  },
  '0008-api-key-lineage': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('api_keys').addColumn('parent_key_id', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('expires_at', 'text').execute();
    },
  },
  '0009-audit-once-per-request': {
    async up(db: Kysely<unknown>) {
      // An entry is stored once per request, whatever retries its node's journal makes.
      await sql`DELETE FROM audit WHERE seq NOT IN (SELECT min(seq) FROM audit GROUP BY request_id)`.execute(
        db,
      );
      await db.schema.createIndex('audit_by_request').on('audit').column('request_id').unique().execute();
    },
  },
  '0010-session-deadline-and-attributes': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('sessions').addColumn('deadline', 'text').execute();
      await db.schema.alterTable('sessions').addColumn('attributes', 'text').execute();
      await db.schema
        .createIndex('sessions_by_identifier_across_pools')
        .on('sessions')
        .columns(['identifier', 'state'])
        .execute();
    },
  },
};
