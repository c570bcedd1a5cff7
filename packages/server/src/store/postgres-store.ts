/**
 * @module store/postgres-store
 * The store on PostgreSQL, for servers that share one database (a cluster): the same queries as the
 * embedded store (store/sql-store), the same migrations, run once under an advisory lock so nodes
 * starting together do not race. Its keyring is a file every node must hold the same copy of.
 */

import {
  Kysely,
  Migrator,
  PostgresDialect,
  sql,
  type PostgresPool,
  type PostgresPoolClient,
  type Transaction,
} from 'kysely';

import { migrations } from './migrations.js';
import { postgresPool } from './postgres-connection.js';
import { POOLS_CHANNEL, PoolChangeListener } from './postgres-notifications.js';
import type { Sealer } from './sealer.js';
import type { PoolRow } from './store.js';
import { camelCase, SqlStore, type Tables } from './sql-store.js';

/** The advisory lock the nodes take while one of them migrates (an arbitrary, fixed number). */
const MIGRATION_LOCK = 0x5a4d_b001;
/** The advisory lock the cluster's leader holds for as long as it lives. */
const LEADER_LOCK = 0x5a4d_b002;

export class PostgresStore extends SqlStore {
  protected override readonly rowLocks = true;
  /** The connection holding the leader's lock, while this node leads. */
  private leaderConnection: PostgresPoolClient | undefined;

  private readonly poolChanges: PoolChangeListener;

  private constructor(
    db: Kysely<Tables>,
    sealer: Sealer,
    private readonly pool: PostgresPool,
    url: string,
  ) {
    super(db, sealer);
    this.poolChanges = new PoolChangeListener(url);
  }

  override async putPool(pool: PoolRow): Promise<void> {
    await super.putPool(pool);
    await this.announcePoolChange();
  }

  override async deletePool(id: string): Promise<void> {
    await super.deletePool(id);
    await this.announcePoolChange();
  }

  override onPoolsChanged(listener: () => void): () => void {
    return this.poolChanges.subscribe(listener);
  }

  private async announcePoolChange(): Promise<void> {
    await sql`select pg_notify(${POOLS_CHANNEL}, '')`.execute(this.db);
  }

  protected override async lockPlacements(tx: Transaction<Tables>, poolId: string): Promise<void> {
    await sql`select pg_advisory_xact_lock(hashtext(${poolId}))`.execute(tx);
  }

  /**
   * Leadership is a session-level advisory lock on a connection of its own: it lasts exactly as
   * long as that connection, so a leader that dies (or loses the database) lets go of it by itself.
   */
  override async holdLeadership(): Promise<boolean> {
    if (this.leaderConnection) {
      try {
        await this.leaderConnection.query('select 1', []);
        return true;
      } catch {
        // The connection died and its lock with it: another node may lead now.
        this.leaderConnection.release();
        this.leaderConnection = undefined;
      }
    }
    const connection = await this.pool.connect();
    try {
      const { rows } = await connection.query<{ held: boolean }>('select pg_try_advisory_lock($1) as held', [
        LEADER_LOCK,
      ]);
      if (!rows[0]?.held) {
        connection.release();
        return false;
      }
    } catch (error) {
      connection.release();
      throw error;
    }
    this.leaderConnection = connection;
    return true;
  }

  override async close(): Promise<void> {
    await this.poolChanges.close();
    this.leaderConnection?.release();
    this.leaderConnection = undefined;
    await super.close();
  }

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
    const store = new PostgresStore(db, sealer, pool, url);
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
