/**
 * @module store/sqlite-store
 * The embedded store: one SQLite file through Kysely (the queries are store/sql-store's). WAL mode
 * keeps readers off the writer's back and makes a kill -9 lose at most the transaction in flight,
 * never the file's consistency. Its keyring sits beside the file (`<file>.keys`) unless the caller
 * names another.
 */

import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';

import { Kysely, Migrator, SqliteDialect } from 'kysely';

import { migrations } from './migrations.js';
import { Sealer } from './sealer.js';
import { camelCase, SqlStore, type Tables } from './sql-store.js';
import { openSqlite } from './sqlite-connection.js';

export class SqliteStore extends SqlStore {
  private constructor(
    db: Kysely<Tables>,
    private readonly sqlite: DatabaseSync,
    sealer: Sealer,
  ) {
    super(db, sealer);
  }

  /**
   * Opens (creating if needed) the database at `path`, or an in-memory one for `:memory:`. The file
   * holds keys and every tenant's records, so it is root's alone: created 0600 (SQLite gives its WAL
   * and shared-memory files the database's mode), and an older, looser file is tightened.
   */
  static async open(path: string, sealer?: Sealer): Promise<SqliteStore> {
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      closeSync(openSync(path, 'a', 0o600));
      for (const file of [path, `${path}-wal`, `${path}-shm`]) chmodIfPresent(file, 0o600);
    }
    const { database: sqlite, kysely: database } = openSqlite(path);
    sqlite.exec('PRAGMA journal_mode = WAL');
    sqlite.exec('PRAGMA synchronous = NORMAL');
    sqlite.exec('PRAGMA busy_timeout = 5000');
    const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database }), plugins: [camelCase()] });
    const { error } = await new Migrator({
      db,
      provider: { getMigrations: () => Promise.resolve(migrations) },
    }).migrateToLatest();
    if (error) {
      await db.destroy();
      throw new Error(`cannot migrate the store at ${path}`, { cause: error });
    }
    const store = new SqliteStore(
      db,
      sqlite,
      sealer ?? (path === ':memory:' ? Sealer.ephemeral() : Sealer.fromFile(`${path}.keys`)),
    );
    await store.resealStale();
    return store;
  }

  /** The embedded store has one process: nobody else changes its pools, and nothing is announced. */
  onPoolsChanged(): () => void {
    return () => undefined;
  }

  /** SQLite's own integrity check; "ok" when the file is sound. */
  integrityCheck(): string {
    const row = this.sqlite.prepare('PRAGMA integrity_check').get() as { integrity_check: string };
    return row.integrity_check;
  }
}

function chmodIfPresent(file: string, mode: number): void {
  try {
    chmodSync(file, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
