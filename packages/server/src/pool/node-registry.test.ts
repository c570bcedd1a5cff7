import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import pino from 'pino';

import { FakeImageSource, FakeLauncher } from '../../test/fake-launcher.js';
import { poolId } from '../arm-id.js';
import { EventFeed } from '../observability/event-feed.js';
import { Metrics } from '../observability/metrics.js';
import { SqliteStore } from '../store/sqlite-store.js';
import type { SessionRow, Store } from '../store/store.js';
import { ClusterView, type Reservation } from './cluster-view.js';
import { NodeRegistry } from './node-registry.js';
import { pythonPoolSpec } from './pool-spec.js';
import { PoolService } from './pool-service.js';

const ID = poolId('sub', 'rg', 'pool');

/** The pool both tests put: `ready` sandboxes wanted, five sessions at most. */
const poolOf = (ready: number) => ({
  subscription: 'sub',
  resourceGroup: 'rg',
  name: 'pool',
  location: 'local',
  tags: {},
  spec: pythonPoolSpec({ readySessionInstances: ready, maxConcurrentSessions: 5 }),
});

/** Ten sandbox slots and room in cores and memory for all of them: the nodes' default here. */
const TEN_SLOTS: Reservation = { sandboxes: 10, cpu: 64, memoryBytes: 64 * 1024 ** 3 };

/** A node as server.ts composes one, on a fake launcher, sharing `store` with the others. */
function node(store: Store, name: string, clock: { now: number }, capacity = TEN_SLOTS) {
  const launcher = new FakeLauncher();
  const now = () => clock.now;
  const cluster: ClusterView = new ClusterView({
    self: name,
    capacity,
    localReservation: () => pools.nodeReservation(),
    sizeOf: (poolId) => pools.sandboxSize(poolId),
    draining: (): boolean => registry.draining,
    memoryPressure: () => false,
    now,
  });
  const log = pino({ level: 'silent' });
  const pools: PoolService = new PoolService({
    store,
    launcher,
    log,
    now,
    refillParallelism: 2,
    metrics: new Metrics(),
    feed: new EventFeed(),
    reaperIntervalMs: 60_000,
    images: new FakeImageSource(),
    cluster,
  });
  const registry: NodeRegistry = new NodeRegistry({
    store,
    pools,
    cluster,
    log,
    now,
    name,
    capacity,
    leaseSeconds: 15,
  });
  return { pools, registry, launcher };
}

describe('NodeRegistry', () => {
  it('shares one store between live nodes, splits the warm set and places sessions on the node that holds a ready sandbox', async () => {
    const store = await SqliteStore.open(':memory:');
    const clock = { now: Date.parse('2026-11-30T08:00:00.000Z') };
    const a = node(store, 'node-a', clock);
    const b = node(store, 'node-b', clock);
    await a.pools.start();
    await b.pools.start();
    await a.registry.start('http://a');
    await b.registry.start('http://b');
    await a.registry.tick();
    await a.pools.put(poolOf(4));
    await a.registry.tick();
    await b.registry.tick();
    await a.pools.settled(ID);
    await b.pools.manager(ID)!.whenWarm();
    await a.registry.tick();
    assert.deepEqual(
      [a.pools.manager(ID)!.status().ready, b.pools.manager(ID)!.status().ready],
      [2, 2],
      'four ready sandboxes, two on each node',
    );
    assert.deepEqual(
      (await a.registry.list()).map((n) => `${n.name}:${n.live}:${n.load.ready}`),
      ['node-a:true:2', 'node-b:true:2'],
    );

    // Node a takes its own two ready sandboxes first (its refills held back), then b's: that request
    // goes to b.
    const held: (() => void)[] = [];
    a.launcher.gate = () => new Promise((resolve) => held.push(resolve));
    const routes = [];
    let placement: SessionRow | undefined;
    for (const identifier of ['u1', 'u2', 'u3']) {
      const reach = await a.pools.manager(ID)!.reach(identifier, { create: true });
      if ('node' in reach) placement = reach.placed;
      routes.push('node' in reach ? reach.node : undefined);
    }
    assert.deepEqual(routes, [undefined, undefined, 'node-b']);
    assert.equal(placement?.node, 'node-b');
    a.launcher.gate = () => Promise.resolve();
    for (const release of held) release();
    // b binds the ready sandbox a placed the session on, as a forwarded request tells it: without
    // placing it again.
    let placements = 0;
    const place = store.placeSession.bind(store);
    store.placeSession = (request) => {
      placements++;
      return place(request);
    };
    const onB = await b.pools.manager(ID)!.reach('u3', { create: true, placed: placement, stay: true });
    assert.ok('here' in onB);
    assert.equal(onB.here.allocation.warm, true);
    assert.equal(placements, 0, 'the holder placed nothing');
    assert.deepEqual(await a.pools.manager(ID)!.reach('u3', { create: false }), { node: 'node-b' });
    const elsewhere = await b.pools.manager(ID)!.reach('u1', { create: true });
    assert.equal('node' in elsewhere && elsewhere.node, 'node-a');

    // The max counts across nodes: 3 allocated, 2 more fit, the sixth is refused.
    await b.pools.manager(ID)!.acquire('u4');
    await b.pools.manager(ID)!.acquire('u5');
    await assert.rejects(a.pools.manager(ID)!.acquire('u6'), { code: 'SessionPoolFull' });

    // Node a stops renewing: once its lease has run out, the leader (b) ends what it held.
    await a.registry.stop();
    clock.now += 16_000;
    await b.registry.tick();
    const ended = await store.lastEndedSession(ID, 'u1');
    assert.equal(ended?.endReason, 'hostLost');
    assert.equal(ended.node, 'node-a');
    assert.deepEqual(
      (await b.registry.list()).map((n) => `${n.name}:${n.live}`),
      ['node-a:false', 'node-b:true'],
    );
    // u1's next request lands on b, with a new session.
    const again = await b.pools.manager(ID)!.reach('u1', { create: true });
    assert.equal('here' in again && again.here.allocation.created, true);

    // a comes back: what the cluster ended is let go of, and not recorded a second time.
    const events = (await store.listEvents(ID, { limit: 1000, types: ['ended'] })).length;
    clock.now += 1_000;
    await a.registry.tick();
    assert.equal(a.pools.manager(ID)!.getSession('u1'), undefined);
    assert.equal((await store.listEvents(ID, { limit: 1000, types: ['ended'] })).length, events);

    await b.registry.stop();
    await a.pools.stop();
    await b.pools.stop();
    await store.close();
  });

  it('places by the cores and memory a node may reserve, not only its slots, and stops its warm set at its room', async () => {
    const store = await SqliteStore.open(':memory:');
    const clock = { now: Date.parse('2026-11-30T08:00:00.000Z') };
    // Sessions of 0.25 cores and 512 MiB: a fits four by cores, b two by memory; both have ten slots.
    const a = node(store, 'node-a', clock, { ...TEN_SLOTS, cpu: 1 });
    const b = node(store, 'node-b', clock, { ...TEN_SLOTS, memoryBytes: 1024 ** 3 });
    await a.pools.start();
    await b.pools.start();
    await a.registry.start('http://a');
    await b.registry.start('http://b');
    await a.pools.put({
      ...poolOf(0),
      spec: pythonPoolSpec({ readySessionInstances: 0, maxConcurrentSessions: 8 }),
    });
    await a.pools.settled(ID);
    await b.registry.tick();
    const look = async () => {
      await a.registry.tick();
      await b.registry.tick();
    };
    const placed: (string | undefined)[] = [];
    for (let user = 1; user <= 6; user++) {
      const identifier = `u${user}`;
      const reach = await a.pools.manager(ID)!.reach(identifier, { create: true });
      if ('node' in reach) {
        await b.pools.manager(ID)!.reach(identifier, { create: true, placed: reach.placed, stay: true });
      }
      placed.push('node' in reach ? reach.node : 'node-a');
      await look();
    }
    assert.deepEqual(placed, ['node-a', 'node-a', 'node-a', 'node-a', 'node-b', 'node-b']);
    await assert.rejects(a.pools.manager(ID)!.acquire('u7'), { code: 'NoNodeAvailable' });
    assert.deepEqual(
      (await a.registry.list()).map(
        (n) => `${n.name}:${n.maxCpu}:${n.load.sessions}:${n.load.cpu}:${n.load.memoryBytes / 1024 ** 2}`,
      ),
      ['node-a:1:4:1:2048', 'node-b:64:2:0.5:1024'],
    );

    // A ready target of four with room for one sandbox left, on a: b, full, takes no share, and a's
    // warm set stops at its room.
    await a.pools.manager(ID)!.stop('u1');
    await look();
    await a.pools.put({
      ...poolOf(4),
      spec: pythonPoolSpec({ readySessionInstances: 4, maxConcurrentSessions: 8 }),
    });
    await a.pools.settled(ID);
    await look();
    assert.equal(a.pools.manager(ID)!.status().ready, 1, 'the one sandbox a has room for');
    assert.equal(b.pools.manager(ID)!.status().ready, 0, 'b has none');

    await a.registry.stop();
    await b.registry.stop();
    await a.pools.stop();
    await b.pools.stop();
    await store.close();
  });

  it('drains: no new placement here, the ready sandboxes retired, drained once its sessions end', async () => {
    const store = await SqliteStore.open(':memory:');
    const clock = { now: Date.parse('2026-11-30T08:00:00.000Z') };
    const a = node(store, 'node-a', clock);
    await a.pools.start();
    await a.registry.start('http://a');
    await a.pools.put(poolOf(1));
    await a.pools.settled(ID);
    const manager = a.pools.manager(ID)!;
    await manager.acquire('kept');
    const drained = await a.registry.drain('node-a');
    assert.equal(drained.draining, true);
    assert.equal(drained.drained, false, 'one session still runs');
    await assert.rejects(manager.acquire('new'), { code: 'NodeDraining' });
    assert.equal(manager.status().ready, 0);
    await manager.stop('kept');
    assert.equal((await a.registry.list())[0]!.drained, true);
    await a.registry.stop();
    await a.pools.stop();
    await store.close();
  });
});
