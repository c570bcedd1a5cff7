/**
 * @module store/postgres-connection
 * The pool of connections the PostgreSQL store runs on: `pg`'s pool, seen by Kysely's PostgreSQL
 * dialect through a thin wrapper that turns the database's outages into the store's own errors. A
 * server that is down, restarting, failing over or refusing connections answers `StoreBusy` (the
 * client retries after `Retry-After`); a full disk `ServerStorageFull`. The pool reconnects by itself
 * on the next query, so nothing has to be restarted when the database comes back.
 */

import type { PostgresPool, PostgresPoolClient } from 'kysely';
import pg from 'pg';

import { AppError, ErrorCode } from '../errors.js';

/** 64-bit integers (the `seq` columns, counts) come back as numbers: they stay far below 2^53. */
const INT8_OID = 20;
const defaultParser = pg.types.getTypeParser as (oid: number, format?: string) => (text: string) => unknown;
const types = {
  getTypeParser: (oid: number, format?: string) =>
    oid === INT8_OID ? (text: string) => Number.parseInt(text, 10) : defaultParser(oid, format),
} as pg.CustomTypesConfig;

/** Socket errors and PostgreSQL's classes 08 (connection), 57P (operator intervention), 53300 and 40. */
const UNAVAILABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);

/** The store's error for what the database or its connection said; other errors pass unchanged. */
export function storeErrorOf(error: unknown): unknown {
  if (error instanceof AppError) return error;
  const code = (error as { code?: unknown }).code;
  const text = error instanceof Error ? error.message : '';
  if (code === '53100') {
    return new AppError(ErrorCode.ServerStorageFull, 'The disk holding the server’s store is full.', {
      cause: error,
    });
  }
  const unavailable =
    (typeof code === 'string' &&
      (UNAVAILABLE_ERRNO.has(code) ||
        code.startsWith('08') ||
        code.startsWith('57P') ||
        code.startsWith('40') ||
        code === '53300')) ||
    /Connection terminated|connection timeout|Client has encountered a connection error/i.test(text);
  if (unavailable) {
    return new AppError(ErrorCode.StoreBusy, 'The store is unavailable for a moment; retry shortly.', {
      cause: error,
    });
  }
  return error;
}

function wrapClient(client: pg.PoolClient): PostgresPoolClient {
  let broken: Error | undefined;
  // A connection that dies while checked out also emits `error`; its query has already failed.
  const onError = (error: Error) => (broken = error);
  client.on('error', onError);
  return {
    query: (async (text: string, values: unknown[]) => {
      try {
        return await client.query(text, values);
      } catch (error) {
        const mapped = storeErrorOf(error);
        // A connection the server dropped is closed on release, not handed to the next query.
        if (mapped instanceof AppError && mapped.code === ErrorCode.StoreBusy) broken = mapped;
        throw mapped;
      }
    }) as unknown as PostgresPoolClient['query'],
    release: () => {
      client.off('error', onError);
      client.release(broken);
    },
  };
}

/** A pool of at most `max` connections to `url`, in the shape Kysely's PostgresDialect takes. */
export function postgresPool(url: string, max = 10): PostgresPool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    types,
  });
  // An idle connection the server dropped (a restart) must not crash the process: the pool replaces it.
  pool.on('error', () => undefined);
  return {
    connect: async () => {
      try {
        return wrapClient(await pool.connect());
      } catch (error) {
        throw storeErrorOf(error);
      }
    },
    end: () => pool.end(),
  };
}
