/**
 * What every store must do, whatever database is under it: one suite, run against SQLite
 * (src/store/sqlite-store.test.ts) and a real PostgreSQL server (src/store/postgres-store.test.ts).
 * `open` hands each test a store of its own, empty.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';

import type { NewAuditEntry, PoolRow, SessionRow, Store } from '../src/store/store.js';

const at = '2026-11-26T12:00:00.000Z';

export const pool = (name: string, resourceGroup = 'rg'): PoolRow => ({
  id: `/subscriptions/s/resourcegroups/${resourceGroup}/providers/microsoft.app/sessionpools/${name}`,
  subscription: 's',
  resourceGroup,
  name,
  location: 'local',
  tags: { costCenter: 'ml' },
  spec: { containerType: 'PythonLTS', scale: { max: 10 } },
  provisioningState: 'Succeeded',
  generation: 1,
  statusMessage: null,
  createdAt: at,
  updatedAt: at,
});

export const session = (
  id: string,
  poolId: string,
  identifier: string | null,
  state: SessionRow['state'],
): SessionRow => ({
  id,
  poolId,
  identifier,
  state,
  node: 'node-a',
  generation: 1,
  createdAt: at,
  allocatedAt: state === 'ready' ? null : at,
  lastAccessedAt: null,
  endedAt: state === 'ended' ? at : null,
  endReason: state === 'ended' ? 'cooldown' : null,
  endDetails: null,
  deadline: null,
  attributes: null,
});

/** An execution's audit entry, told apart by its request id. */
export const auditEntry = (requestId: string): NewAuditEntry => ({
  at: '2026-12-01T00:00:00.000Z',
  principal: 'key:a',
  action: 'code.execute',
  resourceGroup: 'rg',
  pool: 'p',
  identifier: 'u',
  status: 200,
  durationMs: 1,
  requestId,
  clientRequestId: null,
});

export function storeContract(open: () => Promise<Store>): void {
  it('keeps pools with their JSON intact and filters by resource group', async () => {
    const store = await open();
    await store.putPool(pool('a'));
    await store.putPool(pool('b', 'other'));
    await store.putPool({ ...pool('a'), generation: 2 });
    assert.equal((await store.listPools()).length, 2);
    assert.deepEqual(
      (await store.listPools({ subscription: 's', resourceGroup: 'rg' })).map((p) => p.name),
      ['a'],
    );
    assert.deepEqual(
      (await store.listPools({ subscription: 'S', resourceGroup: 'RG' })).map((p) => p.name),
      ['a'],
      'names compare case-insensitively, as in ARM',
    );
    const a = (await store.getPool(pool('a').id))!;
    assert.equal(a.generation, 2);
    assert.deepEqual(a.spec, pool('a').spec);
    assert.deepEqual(a.tags, { costCenter: 'ml' });
    await store.deletePool(pool('a').id);
    assert.equal(await store.getPool(pool('a').id), undefined);
    await store.close();
  });

  it('refuses a second live session for one identifier', async () => {
    const store = await open();
    const poolId = pool('a').id;
    await store.putSession(session('s1', poolId, 'user-1', 'allocated'));
    await assert.rejects(store.putSession(session('s2', poolId, 'user-1', 'allocated')));
    await store.putSession(session('s1', poolId, 'user-1', 'ended'));
    await store.putSession(session('s2', poolId, 'user-1', 'allocated'));
    assert.deepEqual(
      (await store.listSessions(poolId, ['allocated', 'ready'])).map((s) => s.id),
      ['s2'],
    );
    assert.equal((await store.lastEndedSession(poolId, 'user-1'))?.endReason, 'cooldown');
    await store.close();
  });

  it('places a new identifier once: its live session, a ready sandbox by node preference, a cold start, or none', async () => {
    const store = await open();
    const poolId = pool('a').id;
    const request = (identifier: string, nodes: string[], coldNode: string | undefined, maxSessions = 10) =>
      store.placeSession({
        poolId,
        identifier,
        generation: 1,
        maxSessions,
        nodes,
        coldNode,
        coldId: `cold-${identifier}`,
        at,
      });
    await store.putSession({ ...session('r-a', poolId, null, 'ready'), node: 'node-a' });
    await store.putSession({ ...session('r-b', poolId, null, 'ready'), node: 'node-b' });
    await store.putSession({ ...session('r-old', poolId, null, 'ready'), node: 'node-c', generation: 0 });

    const first = await request('u1', ['node-b', 'node-a'], 'node-a');
    assert.deepEqual(
      [first.kind, first.kind === 'warm' && first.row.id],
      ['warm', 'r-b'],
      'the preferred node first',
    );
    const again = await request('u1', ['node-a'], 'node-a');
    assert.deepEqual([again.kind, again.kind === 'existing' && again.row.node], ['existing', 'node-b']);
    const second = await request('u2', ['node-b', 'node-a'], 'node-a');
    assert.equal(second.kind === 'warm' && second.row.id, 'r-a');
    // node-c's sandbox is of an older template: never handed out.
    const cold = await request('u3', ['node-c', 'node-b'], 'node-c');
    assert.deepEqual(cold.kind === 'cold' && [cold.row.id, cold.row.node, cold.row.state], [
      'cold-u3',
      'node-c',
      'allocated',
    ]);
    assert.equal((await request('u4', ['node-a'], undefined)).kind, 'noNode');
    // A cold start that never ran gives its identifier back.
    await store.deleteSession('cold-u3');
    assert.equal(await store.liveSession(poolId, 'u3'), undefined);
    assert.deepEqual(await request('u5', ['node-a'], 'node-a', 2), { kind: 'full', allocated: 2 });
    assert.equal((await store.liveSession(poolId, 'u1'))?.node, 'node-b');

    // Concurrent placements of one identifier make one session; of many, never more than the max.
    const racing = await Promise.all(Array.from({ length: 8 }, () => request('same', ['node-a'], 'node-a')));
    assert.equal(new Set(racing.map((p) => p.kind !== 'full' && p.kind !== 'noNode' && p.row.id)).size, 1);
    const crowd = await Promise.all(
      Array.from({ length: 12 }, (_, i) => request(`crowd-${String(i)}`, ['node-a'], 'node-a', 10)),
    );
    assert.equal(crowd.filter((p) => p.kind === 'cold').length, 7, 'three were allocated already');

    const counts = await store.countSessions();
    assert.deepEqual(
      counts
        .filter((c) => c.state === 'allocated')
        .map((c) => `${c.node ?? ''}:${String(c.count)}`)
        .sort(),
      ['node-a:9', 'node-b:1'],
    );
    const ended = await store.endNodeSessions('node-b', 'hostLost', at);
    assert.deepEqual(
      ended.map((row) => `${row.id}:${row.state}:${row.endReason ?? ''}`),
      ['r-b:ended:hostLost'],
    );
    assert.equal(await store.liveSession(poolId, 'u1'), undefined);
    assert.deepEqual(await store.endNodeSessions('node-b', 'hostLost', at), [], 'each end is returned once');
    await store.close();
  });

  it('keeps the first value of a setting initialised twice, and one leader', async () => {
    const store = await open();
    assert.equal(await store.initSetting('cluster.key', 'first'), 'first');
    assert.equal(await store.initSetting('cluster.key', 'second'), 'first');
    assert.equal(await store.holdLeadership(), true);
    assert.equal(await store.holdLeadership(), true, 'a leader stays leader');
    await store.close();
  });

  it('forgets executions that ended before the cutoff, never running ones', async () => {
    const store = await open();
    const execution = (id: string, endedAt: string | null) => ({
      id,
      poolId: 'p',
      identifier: 'u',
      sessionId: 's',
      status: endedAt ? ('Succeeded' as const) : ('Running' as const),
      principal: 'key:x',
      codeBytes: 1,
      codeSha256: 'x',
      outcome: {},
      createdAt: at,
      endedAt,
    });
    await store.putExecution(execution('old', '2026-11-25T00:00:00.000Z'));
    await store.putExecution(execution('new', '2026-11-26T11:00:00.000Z'));
    await store.putExecution(execution('running', null));
    assert.equal(await store.deleteExecutionsEndedBefore('2026-11-26T00:00:00.000Z'), 1);
    assert.equal(await store.getExecution('p', 'u', 'old'), undefined);
    assert.ok(await store.getExecution('p', 'u', 'new'));
    assert.ok(await store.getExecution('p', 'u', 'running'));
    await store.close();
  });

  it('pages events in order', async () => {
    const store = await open();
    for (let i = 0; i < 5; i++) {
      await store.appendEvent({
        poolId: 'p',
        sessionId: null,
        identifier: null,
        type: 'test',
        reason: String(i),
        details: { i },
        at,
      });
    }
    const first = await store.listEvents('p', { limit: 2 });
    const next = await store.listEvents('p', { afterSeq: first.at(-1)!.seq, limit: 10 });
    assert.deepEqual(
      [...first, ...next].map((e) => e.reason),
      ['0', '1', '2', '3', '4'],
    );
    assert.deepEqual(next[0]?.details, { i: 2 });
    await store.close();
  });

  it('narrows events by type, identifier and time, and prunes old ones', async () => {
    const store = await open();
    const add = (type: string, identifier: string | null, when: string) =>
      store.appendEvent({
        poolId: 'p',
        sessionId: null,
        identifier,
        type,
        reason: null,
        details: null,
        at: when,
      });
    await add('allocated', 'a', '2026-11-26T10:00:00.000Z');
    await add('ended', 'a', '2026-11-26T11:00:00.000Z');
    await add('ended', 'b', '2026-11-26T12:00:00.000Z');
    await add('ready', null, '2026-11-26T12:30:00.000Z');
    await store.appendEvent({
      poolId: 'other',
      sessionId: null,
      identifier: 'a',
      type: 'ended',
      reason: null,
      details: null,
      at,
    });
    const pick = async (query: Parameters<typeof store.listEvents>[1]) =>
      (await store.listEvents('p', query)).map((e) => `${e.type}:${e.identifier ?? '-'}`);
    assert.deepEqual(await pick({ limit: 10, types: ['ended'] }), ['ended:a', 'ended:b']);
    assert.deepEqual(await pick({ limit: 10, identifier: 'a' }), ['allocated:a', 'ended:a']);
    assert.deepEqual(await pick({ limit: 10, since: '2026-11-26T11:30:00.000Z' }), ['ended:b', 'ready:-']);
    assert.deepEqual(
      await pick({ limit: 10, types: ['ended', 'ready'], since: '2026-11-26T11:00:00.000Z' }),
      ['ended:a', 'ended:b', 'ready:-'],
    );
    assert.equal(await store.deleteEventsBefore('2026-11-26T11:30:00.000Z'), 2);
    assert.deepEqual(await pick({ limit: 10 }), ['ended:b', 'ready:-']);
    await store.close();
  });

  it('keeps an audit trail it can narrow and prune', async () => {
    const store = await open();
    let requests = 0;
    const entry = (action: string, principal: string, when: string) =>
      store.appendAudit([
        {
          at: when,
          principal,
          action,
          resourceGroup: 'rg',
          pool: 'p',
          identifier: null,
          status: 200,
          durationMs: 1.5,
          requestId: `r${String(++requests)}`,
          clientRequestId: null,
        },
      ]);
    await entry('pool.update', 'key:a', '2026-11-01T00:00:00.000Z');
    await entry('code.execute', 'key:b', '2026-11-20T00:00:00.000Z');
    await entry('code.execute', 'key:a', '2026-11-25T00:00:00.000Z');
    const actions = async (query: Partial<Parameters<typeof store.listAudit>[0]>) =>
      (await store.listAudit({ limit: 10, ...query })).map((e) => `${e.action}/${e.principal}`);
    assert.deepEqual(await actions({ principal: 'key:a' }), ['pool.update/key:a', 'code.execute/key:a']);
    assert.deepEqual(await actions({ action: 'code.execute', since: '2026-11-21T00:00:00.000Z' }), [
      'code.execute/key:a',
    ]);
    assert.deepEqual(await actions({ until: '2026-11-20T00:00:00.000Z' }), ['pool.update/key:a']);
    assert.equal(await store.deleteAuditBefore('2026-11-15T00:00:00.000Z'), 1);
    assert.equal((await store.listAudit({ limit: 10 })).length, 2);
    await store.close();
  });

  it('stores a batch of audit entries in its order, each request once however often it is sent', async () => {
    const store = await open();
    await store.appendAudit(['r3', 'r1', 'r2'].map(auditEntry));
    // A batch sent again after its answer was lost, with newer entries behind it.
    await store.appendAudit(['r1', 'r2', 'r4'].map(auditEntry));
    await store.appendAudit([]);
    const ids = (await store.listAudit({ limit: 10 })).map((e) => e.requestId);
    assert.deepEqual(ids, ['r3', 'r1', 'r2', 'r4']);
    await store.close();
  });

  it('forgets a deleted pool’s sessions, executions and events with it', async () => {
    const store = await open();
    const p = pool('gone');
    await store.putPool(p);
    await store.putSession(session('s1', p.id, 'u', 'ended'));
    await store.putExecution({
      id: 'op',
      poolId: p.id,
      identifier: 'u',
      sessionId: 's1',
      status: 'Succeeded',
      principal: 'key:x',
      codeBytes: 1,
      codeSha256: '0',
      outcome: {},
      createdAt: at,
      endedAt: at,
    });
    await store.appendEvent({
      poolId: p.id,
      sessionId: 's1',
      identifier: 'u',
      type: 'ended',
      reason: 'cooldown',
      details: null,
      at,
    });
    await store.deletePool(p.id);
    assert.equal(await store.getExecution(p.id, 'u', 'op'), undefined);
    assert.equal(await store.lastEndedSession(p.id, 'u'), undefined);
    assert.deepEqual(await store.listEvents(p.id, { limit: 10 }), []);
    await store.close();
  });

  it('keeps settings and secret values as they were put, and the usage ledger in order', async () => {
    const store = await open();
    await store.putSetting('tokens.signingKey', 'private-scalar-d');
    await store.putSetting('tokens.signingKey', 'rotated-scalar');
    assert.equal(await store.getSetting('tokens.signingKey'), 'rotated-scalar');
    assert.equal(await store.getSetting('absent'), undefined);
    const vault: PoolRow = {
      ...pool('vault'),
      spec: { containerType: 'PythonLTS', secrets: [{ name: 'db-password', value: 'hunter2-password' }] },
    };
    await store.putPool(vault);
    assert.deepEqual((await store.getPool(vault.id))?.spec, vault.spec);
    const usage = (endedAt: string, seconds: number) =>
      store.appendUsage({
        kind: 'session',
        poolId: vault.id,
        resourceGroup: 'rg',
        pool: 'vault',
        tags: { team: 'risk' },
        startedAt: at,
        endedAt,
        seconds,
        cpuSeconds: 0.125,
        memoryGibSeconds: seconds / 2,
        executions: 3,
      });
    await usage('2026-11-26T12:00:01.000Z', 1.5);
    await usage('2026-11-26T12:00:02.000Z', 2.25);
    const ledger = await store.listUsage({ since: at, until: '2026-11-27T00:00:00.000Z' });
    assert.deepEqual(
      ledger.map((u) => [u.seconds, u.cpuSeconds, u.tags.team]),
      [
        [1.5, 0.125, 'risk'],
        [2.25, 0.125, 'risk'],
      ],
    );
    assert.equal(await store.deleteUsageBefore('2026-11-26T12:00:02.000Z'), 1);
    await store.close();
  });

  it('registers nodes and renews their leases', async () => {
    const store = await open();
    const node = {
      name: 'node-b',
      url: 'https://10.0.0.2:8443',
      maxSandboxes: 600,
      maxCpu: 32.5,
      maxMemoryBytes: 96 * 1024 ** 3,
      draining: false,
      startedAt: at,
      leaseUntil: '2026-11-26T12:00:15.000Z',
    };
    await store.putNode(node);
    // A node from before cores and memory were counted.
    await store.putNode({ ...node, name: 'node-a', maxCpu: null, maxMemoryBytes: null });
    await store.putNode({ ...node, draining: true, leaseUntil: '2026-11-26T12:00:30.000Z' });
    assert.deepEqual(
      (await store.listNodes()).map((n) => `${n.name}:${n.draining}:${n.leaseUntil}`),
      ['node-a:false:2026-11-26T12:00:15.000Z', 'node-b:true:2026-11-26T12:00:30.000Z'],
    );
    assert.deepEqual(await store.getNode('node-b'), {
      ...node,
      draining: true,
      leaseUntil: '2026-11-26T12:00:30.000Z',
    });
    assert.deepEqual(
      [(await store.getNode('node-a'))?.maxCpu, (await store.getNode('node-a'))?.maxMemoryBytes],
      [null, null],
    );
    assert.equal(await store.getNode('absent'), undefined);
    // Lost nodes are forgotten once long gone, unless they still hold something live.
    await store.putSession({ ...session('on-b', pool('a').id, 'u', 'allocated'), node: 'node-b' });
    assert.equal(await store.deleteNodesLostBefore('2026-11-26T12:01:00.000Z'), 1);
    assert.deepEqual(
      (await store.listNodes()).map((n) => n.name),
      ['node-b'],
    );
    await store.close();
  });
}
