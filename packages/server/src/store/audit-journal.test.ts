import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { auditEntry } from '../../test/store-contract.js';
import { AuditJournal } from './audit-journal.js';
import type { NewAuditEntry } from './store.js';

/** A store that refuses while `down`, and keeps each request id once, as the real ones do. */
class FlakyStore {
  down = false;
  readonly stored: string[] = [];
  attempts = 0;
  appendAudit(entries: readonly NewAuditEntry[]): Promise<void> {
    this.attempts++;
    if (this.down) return Promise.reject(new Error('the database is restarting'));
    for (const { requestId } of entries) if (!this.stored.includes(requestId)) this.stored.push(requestId);
    return Promise.resolve();
  }
}

const quiet = { storeFailed: () => undefined, caughtUp: () => undefined };

describe('AuditJournal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'audit-journal-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes through to the store in order and empties its file', async () => {
    const path = join(dir, 'through');
    const store = new FlakyStore();
    const journal = AuditJournal.open(path, store, quiet);
    for (const id of ['a', 'b', 'c']) journal.record(auditEntry(id));
    await journal.drained();
    assert.deepEqual(store.stored, ['a', 'b', 'c']);
    assert.equal(readFileSync(path, 'utf8'), '');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    await journal.close();
  });

  it('keeps entries through an outage, in order, and reports the outage and its end once', async () => {
    const path = join(dir, 'outage');
    const store = new FlakyStore();
    const reports: string[] = [];
    const journal = AuditJournal.open(path, store, {
      storeFailed: (_error, waiting) => reports.push(`failed with ${String(waiting)} waiting`),
      caughtUp: (stored) => reports.push(`caught up, ${String(stored)} stored`),
    });
    store.down = true;
    for (let i = 0; i < 5; i++) journal.record(auditEntry(`down-${String(i)}`));
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.ok(store.attempts >= 2, 'retried');
    const backlog = journal.backlog();
    assert.equal(backlog.waiting, 5);
    assert.equal(backlog.storeError, 'the database is restarting');
    assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 5, 'on disk meanwhile');
    store.down = false;
    journal.record(auditEntry('after'));
    await journal.drained();
    assert.deepEqual(store.stored, ['down-0', 'down-1', 'down-2', 'down-3', 'down-4', 'after']);
    assert.deepEqual(reports, ['failed with 5 waiting', 'caught up, 6 stored']);
    assert.deepEqual(journal.backlog(), { waiting: 0, oldestAt: null, storeError: null, full: false });
    await journal.close();
  });

  it('sends what a killed process left, before anything newer, and each request once', async () => {
    const path = join(dir, 'killed');
    const store = new FlakyStore();
    store.down = true;
    // A process that dies with entries waiting: nothing closes its journal.
    const first = AuditJournal.open(path, store, quiet);
    first.record(auditEntry('left-1'));
    first.record(auditEntry('left-2'));
    store.down = false;
    // The store took left-1 before the process died, but the answer never came back.
    store.stored.push('left-1');
    const second = AuditJournal.open(path, store, quiet);
    second.record(auditEntry('new'));
    await second.drained();
    assert.deepEqual(store.stored, ['left-1', 'left-2', 'new']);
    await second.close();
  });

  it('is full at its bound, and takes entries again once the store does', async () => {
    const path = join(dir, 'full');
    const store = new FlakyStore();
    store.down = true;
    const journal = AuditJournal.open(path, store, quiet, 3);
    for (const id of ['1', '2']) journal.record(auditEntry(id));
    assert.equal(journal.full, false);
    journal.record(auditEntry('3'));
    assert.equal(journal.full, true);
    assert.equal(journal.backlog().full, true);
    store.down = false;
    await journal.close();
    assert.deepEqual(store.stored, ['1', '2', '3'], 'close gave the store a last chance');
    assert.equal(readFileSync(path, 'utf8'), '');
  });

  it('passes over a last line cut short by a power loss', async () => {
    const path = join(dir, 'torn');
    const store = new FlakyStore();
    store.down = true;
    const first = AuditJournal.open(path, store, quiet);
    first.record(auditEntry('whole'));
    await first.close(0);
    appendFileSync(path, '{"requestId":"cut');
    store.down = false;
    const second = AuditJournal.open(path, store, quiet);
    await second.drained();
    assert.deepEqual(store.stored, ['whole']);
    await second.close();
  });
});
