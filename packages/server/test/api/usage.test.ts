/** Usage for cost attribution, under an injected clock so the seconds are exact. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FAKE_USAGE, FakeLauncher } from '../fake-launcher.js';
import {
  armPath,
  DATA,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
} from '../server-harness.js';

const tagged = (costCenter: string) => ({ ...interpreterPool({ max: 2, ready: 1 }), tags: { costCenter } });

describe('usage and cost attribution', async () => {
  const clock = { now: Date.parse('2026-11-26T12:00:00Z') };
  const server = await startTestServer('usage', { launcher: new FakeLauncher(), now: () => clock.now });
  await createPool(server, 'edu', tagged('edu'));
  await createPool(server, 'bank', tagged('bank'));
  await createPool(server, 'untagged', interpreterPool({ max: 1, ready: 0 }));
  const stop = (pool: string, identifier: string) =>
    server.request('DELETE', `${poolPath(pool)}/session?${DATA}&identifier=${identifier}`);
  const usage = async (query: string) => (await server.request('GET', `/sandpool/usage?${query}`)).json;

  it('sums session time, CPU, reserved memory, executions and prewarming cost by tag and by pool', async () => {
    clock.now += 10_000; // the ready sandboxes wait 10 s before anyone takes them
    await execute(server, 'edu', 'student-1', 'a');
    await execute(server, 'edu', 'student-1', 'b');
    await execute(server, 'bank', 'teller-1', 'c');
    await execute(server, 'untagged', 'x', 'd');
    clock.now += 60_000;
    await stop('edu', 'student-1');
    await stop('bank', 'teller-1');
    await stop('untagged', 'x');
    clock.now += 1_000; // windows are [since, until): until defaults to now

    const byTag = await usage('by=tag:costCenter&since=2026-11-26T00:00:00Z');
    assert.equal(byTag.by, 'tag:costCenter');
    const edu = byTag.value.find((t: any) => t.key === 'edu');
    assert.deepEqual(
      { ...edu, readySeconds: undefined, readyMemoryGibSeconds: undefined },
      {
        key: 'edu',
        sessions: 1,
        sessionSeconds: 60,
        cpuSeconds: FAKE_USAGE.cpuSeconds,
        memoryGibSeconds: 30, // 0.5 GiB reserved for 60 s
        executions: 2,
        readySeconds: undefined,
        readyMemoryGibSeconds: undefined,
      },
    );
    assert.ok(edu.readySeconds >= 10, `prewarming cost ${edu.readySeconds} s`);
    assert.equal(byTag.value.find((t: any) => t.key === 'bank').executions, 1);
    const none = byTag.value.find((t: any) => t.key === '(none)');
    assert.equal(none.sessions, 1, 'pools without the tag sum under (none)');

    const byPool = await usage('since=2026-11-26T00:00:00Z');
    assert.deepEqual(
      byPool.value.map((t: any) => [t.key, t.sessions]),
      [
        ['tests/bank', 1],
        ['tests/edu', 1],
        ['tests/untagged', 1],
      ],
    );
  });

  it('counts only what ended inside the window', async () => {
    assert.deepEqual((await usage('since=2026-11-27T00:00:00Z&until=2026-11-28T00:00:00Z')).value, []);
    assert.deepEqual((await usage('until=2026-11-26T11:00:00Z')).value, []);
  });

  it('refuses a bad grouping or time, and callers without a global role', async () => {
    const bad = await server.request('GET', '/sandpool/usage?by=team');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.target, 'by');
    assert.equal((await server.request('GET', '/sandpool/usage?since=soon')).json.error.target, 'since');
    const executor = await server.request('POST', '/sandpool/apiKeys', {
      body: { roles: [`SessionExecutor:${armPath('edu')}`] },
    });
    assert.equal((await server.request('GET', '/sandpool/usage', { key: executor.json.key })).status, 403);
  });
});
