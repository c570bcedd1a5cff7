/**
 * @module store/postgres-store
 * The store on PostgreSQL, for servers that share one database (a cluster): the same queries as the
 * embedded store (store/sql-store), the same migrations, run once under an advisory lock so nodes
 * starting together do not race. Its keyring is a file every node must hold the same copy of.
 */

import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';

import { migrations } from './migrations.js';
import { postgresPool } from './postgres-connection.js';
import type { Sealer } from './sealer.js';
import { camelCase, SqlStore, type Tables } from './sql-store.js';

/** The advisory lock the nodes take while one of them migrates (an arbitrary, fixed number). */
const MIGRATION_LOCK = 0x5a4d_b001;

export class PostgresStore extends SqlStore {
  /** Connects to the database at `url`, bringing its schema up to date. */
  static async open(url: string, sealer: Sealer): Promise<PostgresStore> {
    const pool = postgresPool(url);
    const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }), plugins: [camelCase()] });
    try {
      await db.connection().execute(async (connection) => {
        await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(connection);
        try {
          const { error } = await new Migrator({
            db: connection,
            provider: { getMigrations: () => Promise.resolve(migrations) },
          }).migrateToLatest();
          if (error)
            throw error instanceof Error ? error : new Error('the migration failed', { cause: error });
        } finally {
          await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(connection);
        }
      });
    } catch (error) {
      await db.destroy();
      throw new Error(`cannot migrate the store at ${redactedUrl(url)}`, { cause: error });
    }
    const store = new PostgresStore(db, sealer);
    await store.resealStale();
    return store;
  }
}

/** The URL without its password, for messages and logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'the configured PostgreSQL URL';
  }
}
