/**
 * @module store/sqlite-connection
 * Node's built-in SQLite (`node:sqlite`) in the shape Kysely's SQLite dialect drives. Kysely asks
 * each statement whether it returns rows (`reader`); node:sqlite answers that with the statement's
 * result columns, and takes parameters spread rather than as one array.
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';

import type { SqliteDatabase, SqliteStatement } from 'kysely';

function statement(prepared: StatementSync): SqliteStatement {
  const args = (parameters: ReadonlyArray<unknown>) => parameters as SQLInputValue[];
  return {
    reader: prepared.columns().length > 0,
    all: (parameters) => prepared.all(...args(parameters)),
    run: (parameters) => prepared.run(...args(parameters)),
    iterate: (parameters) => prepared.iterate(...args(parameters)),
  };
}

/** Opens the database file (created 0600 by the caller's umask) for Kysely. */
export function openSqlite(path: string): { database: DatabaseSync; kysely: SqliteDatabase } {
  const database = new DatabaseSync(path);
  return {
    database,
    kysely: {
      close: () => database.close(),
      prepare: (sql) => statement(database.prepare(sql)),
    },
  };
}
