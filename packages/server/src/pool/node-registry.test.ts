import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import pino from 'pino';

import { SqliteStore } from '../store/sqlite-store.js';
import { NodeRegistry } from './node-registry.js';
import type { PoolService } from './pool-service.js';

const idle = {
  nodeLoad: () => ({ sessions: 0, ready: 0, starting: 0 }),
  drainNode: () => Promise.resolve(),
} as unknown as PoolService;

describe('NodeRegistry', () => {
  it('refuses a second live node on one store until clustering exists, and takes over a lapsed lease', async () => {
    const store = await SqliteStore.open(':memory:');
    let now = Date.parse('2026-11-30T08:00:00.000Z');
    const registry = (name: string) =>
      new NodeRegistry({
        store,
        pools: idle,
        log: pino({ level: 'silent' }),
        now: () => now,
        name,
        maxSandboxes: 10,
        leaseSeconds: 15,
      });
    const first = registry('node-a');
    await first.start('http://a');
    await assert.rejects(registry('node-b').start('http://b'), /node-a holds this store/);
    // The same node restarting is not a second node.
    const again = registry('node-a');
    await again.start('http://a');
    first.stop();
    again.stop();
    now += 16_000;
    const successor = registry('node-b');
    await successor.start('http://b');
    assert.deepEqual(
      (await successor.list()).map((n) => `${n.name}:${n.live}`),
      ['node-a:false', 'node-b:true'],
    );
    successor.stop();
    await store.close();
  });
});
