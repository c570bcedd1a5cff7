import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import pino from 'pino';

import { SqliteStore } from '../store/sqlite-store.js';
import { ConsoleLogArchive } from './console-log.js';
import { prune } from './retention.js';

const NOW = Date.parse('2026-11-30T12:00:00.000Z');
const iso = (hoursAgo: number) => new Date(NOW - hoursAgo * 3_600_000).toISOString();

describe('retention', () => {
  const dir = mkdtempSync(join(tmpdir(), 'retention-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('forgets each kind of record after its own period and keeps what is younger', async () => {
    const store = await SqliteStore.open(':memory:');
    const session = (id: string, endedHoursAgo: number) =>
      store.putSession({
        id,
        poolId: 'p',
        identifier: id,
        state: 'ended',
        node: 'node-a',
        generation: 1,
        createdAt: iso(endedHoursAgo + 1),
        allocatedAt: iso(endedHoursAgo + 1),
        lastAccessedAt: null,
        endedAt: iso(endedHoursAgo),
        endReason: 'stopped',
        endDetails: null,
        deadline: null,
        attributes: null,
      });
    await session('old', 3);
    await session('recent', 1);
    for (const hoursAgo of [3, 1]) {
      await store.appendEvent({
        poolId: 'p',
        sessionId: null,
        identifier: null,
        type: 'ready',
        reason: null,
        details: null,
        at: iso(hoursAgo),
      });
    }
    const usage = (hoursAgo: number) =>
      store.appendUsage({
        kind: 'ready',
        poolId: 'p',
        resourceGroup: 'rg',
        pool: 'p',
        tags: {},
        startedAt: iso(hoursAgo + 1),
        endedAt: iso(hoursAgo),
        seconds: 3600,
        cpuSeconds: 0,
        memoryGibSeconds: 1800,
        executions: 0,
      });
    // Usage is kept for days: three hours is well inside its period, 50 days is past it.
    await usage(3);
    await usage(50 * 24);

    // Nodes lost three hours and one hour ago, and one lost long ago that still holds a session
    // (no leader has ended it yet): only the first is forgotten.
    const node = (name: string, lostHoursAgo: number) =>
      store.putNode({
        name,
        url: `http://${name}`,
        maxSandboxes: 10,
        maxCpu: 4,
        maxMemoryBytes: 2 ** 33,
        draining: false,
        startedAt: iso(lostHoursAgo + 1),
        leaseUntil: iso(lostHoursAgo),
      });
    await node('gone', 3);
    await node('recently-lost', 1);
    await node('holding', 3);
    await store.putSession({
      id: 'held',
      poolId: 'p',
      identifier: 'held',
      state: 'allocated',
      node: 'holding',
      generation: 1,
      createdAt: iso(4),
      allocatedAt: iso(4),
      lastAccessedAt: iso(4),
      endedAt: null,
      endReason: null,
      endDetails: null,
      deadline: null,
      attributes: null,
    });

    const periods = { retentionHours: 2, auditRetentionDays: 30, usageRetentionDays: 31 };
    const deps = {
      store,
      consoleLogs: new ConsoleLogArchive(dir),
      log: pino({ level: 'silent' }),
      now: () => NOW,
    };
    // A node that does not lead the cluster leaves the shared store to the leader.
    await prune(periods, { ...deps, leads: () => false });
    assert.equal((await store.lastEndedSession('p', 'old'))?.id, 'old');
    await prune(periods, { ...deps, leads: () => true });

    assert.equal(await store.lastEndedSession('p', 'old'), undefined);
    assert.equal((await store.lastEndedSession('p', 'recent'))?.id, 'recent');
    assert.deepEqual(
      (await store.listEvents('p', { limit: 10 })).map((e) => e.at),
      [iso(1)],
    );
    assert.deepEqual(
      (await store.listNodes()).map((n) => n.name),
      ['holding', 'recently-lost'],
    );
    assert.deepEqual(
      (await store.listUsage({ since: iso(60 * 24), until: iso(0) })).map((u) => u.endedAt),
      [iso(3)],
    );
    await store.close();
  });
});
