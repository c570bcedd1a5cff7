/** The audit trail: what is recorded for each change and execution, and how it is read. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FakeLauncher } from '../fake-launcher.js';
import {
  DATA,
  MGMT,
  armPath,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
} from '../server-harness.js';

describe('audit trail', async () => {
  const server = await startTestServer('audit', { launcher: new FakeLauncher() });
  const audit = async (query = '') => (await server.request('GET', `/sandpool/audit?${query}`)).json;

  it('records changes and executions with principal, pool, identifier, status and duration', async () => {
    await createPool(server, 'audited', interpreterPool({ max: 2, ready: 0 }));
    await execute(server, 'audited', 'user-7', 'print(1)');
    await server.request('GET', `${poolPath('audited')}/session?${DATA}&identifier=user-7`);
    await server.request('DELETE', `${poolPath('audited')}/session?${DATA}&identifier=user-7`);

    const entries = (await audit()).value;
    assert.deepEqual(
      entries.map((e: any) => [e.action, e.pool, e.identifier, e.status]),
      [
        ['pool.createOrUpdate', 'audited', null, 201],
        ['code.execute', 'audited', 'user-7', 200],
        ['session.stop', 'audited', 'user-7', 204],
      ],
      'reads (GET session) are not audited',
    );
    for (const entry of entries) {
      assert.equal(entry.principal, 'key:0123456789ab');
      assert.equal(entry.resourceGroup, 'tests');
      assert.equal(typeof entry.durationMs, 'number');
      assert.match(entry.requestId, /^[0-9a-f-]{36}$/);
    }
    assert.ok(!JSON.stringify(entries).includes('print(1)'), 'code is never recorded');
  });

  it('records refused attempts too, unauthenticated ones included', async () => {
    const anonymous = await server.request('POST', `${poolPath('audited')}/executions?${DATA}&identifier=x`, {
      body: { code: '1' },
      key: null,
    });
    assert.equal(anonymous.status, 401);
    const reader = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: 'r', roles: ['Reader'] },
    });
    const denied = await server.request('DELETE', `${armPath('audited')}?${MGMT}`, { key: reader.json.key });
    assert.equal(denied.status, 403);
    const entries = (await audit()).value.slice(-3);
    assert.deepEqual(
      entries.map((e: any) => [e.action, e.principal, e.status]),
      [
        ['code.execute', 'unauthenticated', 401],
        ['key.create', 'key:0123456789ab', 201],
        ['pool.delete', `key:${reader.json.id}`, 403],
      ],
    );
  });

  it('narrows by action, pool, principal and time, and pages', async () => {
    assert.deepEqual(
      (await audit('action=code.execute')).value.map((e: any) => e.status),
      [200, 401],
    );
    assert.equal((await audit('pool=nosuchpool')).value.length, 0);
    assert.equal((await audit('principal=unauthenticated')).value.length, 1);
    assert.deepEqual((await audit('since=2999-01-01T00:00:00Z')).value, []);
    assert.deepEqual((await audit('until=2000-01-01T00:00:00Z')).value, []);
    const all = (await audit()).value;
    let page = await audit('$top=2');
    const paged = [...page.value];
    while (page.nextLink) {
      const next = new URL(page.nextLink);
      page = (await server.request('GET', `${next.pathname}${next.search}`)).json;
      paged.push(...page.value);
    }
    assert.deepEqual(
      paged.map((e: any) => e.id),
      all.map((e: any) => e.id),
      'reading the trail adds nothing to it',
    );
  });

  it('is for Readers and Contributors of every pool, and refuses bad filters', async () => {
    const executor = await server.request('POST', '/sandpool/apiKeys', {
      body: { roles: [`SessionExecutor:${armPath('audited')}`] },
    });
    assert.equal((await server.request('GET', '/sandpool/audit', { key: executor.json.key })).status, 403);
    const bad = await server.request('GET', '/sandpool/audit?since=last-week');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.target, 'since');
  });
});
