import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { UsageTotals } from '@sandpool/sdk';

import { rankUsage } from '../src/usage-ranking.js';

const row = (key: string, memoryGibSeconds: number, readyMemoryGibSeconds = 0): UsageTotals => ({
  key,
  sessions: 1,
  sessionSeconds: 10,
  cpuSeconds: 1,
  memoryGibSeconds,
  executions: 1,
  readySeconds: 0,
  readyMemoryGibSeconds,
});

describe('rankUsage', () => {
  const rows = [row('rg/cheap', 1), row('rg/costly', 50), row('rg/gone', 20), row('other/warm', 5, 30)];

  it('ranks by reserved memory (sessions and prewarmed together) and marks pools that are gone', () => {
    const { shown, matching } = rankUsage(rows, ['rg/cheap', 'RG/Costly', 'other/warm'], {
      filter: '',
      limit: 10,
    });
    assert.equal(matching, 4);
    assert.deepEqual(
      shown.map((r) => `${r.key}${r.deleted ? ' (deleted)' : ''}`),
      ['rg/costly', 'other/warm', 'rg/gone (deleted)', 'rg/cheap'],
    );
  });

  it('shows the top rows and finds the rest by filter', () => {
    const top = rankUsage(rows, [], { filter: '', limit: 2 });
    assert.deepEqual(
      top.shown.map((r) => r.key),
      ['rg/costly', 'other/warm'],
    );
    assert.equal(top.matching, 4);
    const found = rankUsage(rows, [], { filter: 'CHEAP', limit: 2 });
    assert.deepEqual(
      found.shown.map((r) => r.key),
      ['rg/cheap'],
    );
  });
});
