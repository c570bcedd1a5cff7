import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { openSqlite } from './sqlite-connection.js';

describe('openSqlite', () => {
  it('prepares each SQL text once and keeps the most recently used 256', () => {
    const { database, kysely } = openSqlite(':memory:');
    try {
      database.exec('create table t (n integer)');
      const insert = kysely.prepare('insert into t (n) values (?)');
      assert.equal(
        kysely.prepare('insert into t (n) values (?)'),
        insert,
        'the same text, the same statement',
      );
      insert.run([1]);
      insert.run([2]);
      const texts = Array.from({ length: 256 }, (_, i) => `select n + ${i} as m from t order by n`);
      for (const text of texts) kysely.prepare(text);
      const kept = kysely.prepare(texts[255]!);
      assert.equal(kysely.prepare(texts[255]!), kept, 'a recent text is still kept');
      assert.notEqual(kysely.prepare('insert into t (n) values (?)'), insert, 'the oldest went first');
      // A statement prepared again, or used again, answers as a new one would.
      // node:sqlite's rows have no prototype.
      assert.deepEqual(
        kept.all([]).map((row) => ({ ...(row as object) })),
        [{ m: 256 }, { m: 257 }],
      );
      assert.equal(kept.reader, true);
    } finally {
      database.close();
    }
  });

  it('answers a rollback with nothing to roll back without an error', () => {
    const { database, kysely } = openSqlite(':memory:');
    try {
      assert.deepEqual(kysely.prepare('rollback').run([]), { changes: 0, lastInsertRowid: 0 });
    } finally {
      database.close();
    }
  });
});
