/**
 * @module store/sqlite-connection
 * Node's built-in SQLite (`node:sqlite`) in the shape Kysely's SQLite dialect drives. Kysely asks
 * each statement whether it returns rows (`reader`); node:sqlite answers that with the statement's
 * result columns, and takes parameters spread rather than as one array. Failures that are the
 * host's state, not a bug (the file locked by another process past the busy timeout, its disk
 * full), leave here as the store's own errors, so nothing above the store knows SQLite's codes.
 * Kysely prepares every query it runs; preparing costs about as much as running a small statement,
 * so each SQL text is prepared once and kept (SQLite re-prepares a kept statement itself when the
 * schema changes under it).
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';

import type { SqliteDatabase, SqliteStatement } from 'kysely';

import { AppError, ErrorCode } from '../errors.js';

/** SQLite's primary result codes (the low byte of node:sqlite's `errcode`) that are the host's state. */
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_FULL = 13;
/** An extended code: a write the disk refused. */
const SQLITE_IOERR_WRITE = 778;
const ENOSPC = -28;

/** The store's error for a driver failure that is the host's state; the failure itself otherwise. */
function translated(error: unknown): unknown {
  const errcode = (error as { errcode?: unknown }).errcode;
  const primary = typeof errcode === 'number' ? errcode & 0xff : undefined;
  if (primary === SQLITE_BUSY || primary === SQLITE_LOCKED) {
    return new AppError(ErrorCode.StoreBusy, 'The store is locked by another process; retry shortly.', {
      cause: error,
    });
  }
  if (
    primary === SQLITE_FULL ||
    errcode === SQLITE_IOERR_WRITE ||
    (error as { errno?: unknown }).errno === ENOSPC
  ) {
    return new AppError(ErrorCode.ServerStorageFull, 'The disk holding the server’s store is full.', {
      cause: error,
    });
  }
  return error;
}

function guarded<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw translated(error);
  }
}

function statement(prepared: StatementSync): SqliteStatement {
  const args = (parameters: ReadonlyArray<unknown>) => parameters as SQLInputValue[];
  return {
    reader: prepared.columns().length > 0,
    all: (parameters) => guarded(() => prepared.all(...args(parameters))),
    run: (parameters) => guarded(() => prepared.run(...args(parameters))),
    iterate: (parameters) => guarded(() => prepared.iterate(...args(parameters))),
  };
}

/**
 * A rollback of a transaction SQLite already rolled back: it does that by itself on some errors (a
 * full disk among them), and the rollback Kysely then sends would fail and hide the error that
 * caused it.
 */
const NOTHING_TO_ROLL_BACK: SqliteStatement = {
  reader: false,
  all: () => [],
  run: () => ({ changes: 0, lastInsertRowid: 0 }),
  iterate: () => [][Symbol.iterator](),
};

/**
 * How many prepared statements a connection keeps. The store's queries are a few dozen texts; an
 * `in (…)` list makes one text per length, and the least recently used goes first.
 */
const KEPT_STATEMENTS = 256;

/** Prepared statements by their SQL text, the least recently used first. */
class StatementCache {
  private readonly kept = new Map<string, SqliteStatement>();

  constructor(private readonly database: DatabaseSync) {}

  get(sql: string): SqliteStatement {
    let kept = this.kept.get(sql);
    if (kept) {
      this.kept.delete(sql);
    } else {
      kept = guarded(() => statement(this.database.prepare(sql)));
      if (this.kept.size >= KEPT_STATEMENTS) this.kept.delete(this.kept.keys().next().value!);
    }
    this.kept.set(sql, kept);
    return kept;
  }
}

/** Opens the database file (created 0600 by the caller's umask) for Kysely. */
export function openSqlite(path: string): { database: DatabaseSync; kysely: SqliteDatabase } {
  const database = new DatabaseSync(path);
  const statements = new StatementCache(database);
  return {
    database,
    kysely: {
      close: () => database.close(),
      prepare: (sql) =>
        sql === 'rollback' && !database.isTransaction ? NOTHING_TO_ROLL_BACK : statements.get(sql),
    },
  };
}
