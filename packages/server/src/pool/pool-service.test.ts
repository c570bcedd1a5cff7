import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import pino from 'pino';

import { FAKE_USAGE, FakeImageSource, FakeLauncher } from '../../test/fake-launcher.js';
import { AppError, ErrorCode } from '../errors.js';
import { EventFeed } from '../observability/event-feed.js';
import { Metrics } from '../observability/metrics.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { pythonPoolSpec, type PoolSpec } from './pool-spec.js';
import { poolId } from '../arm-id.js';
import { PoolService, type PoolDefinition } from './pool-service.js';
import { ClusterView } from './cluster-view.js';

/** This node alone: the cluster the embedded store has. */
const alone = () =>
  new ClusterView({
    self: 'node-a',
    capacity: { sandboxes: 1000, cpu: 1000, memoryBytes: 1024 ** 4 },
    localReservation: () => ({ sandboxes: 0, cpu: 0, memoryBytes: 0 }),
    sizeOf: () => undefined,
    draining: () => false,
    memoryPressure: () => false,
    now: Date.now,
  });

const spec = (overrides: Partial<PoolSpec> = {}): PoolSpec =>
  pythonPoolSpec({ maxConcurrentSessions: 4, ...overrides });

const definition = (overrides: Partial<PoolSpec> = {}): PoolDefinition => ({
  subscription: 'sub',
  resourceGroup: 'rg',
  name: 'pool',
  location: 'local',
  tags: {},
  spec: spec(overrides),
});

const ID = poolId('sub', 'rg', 'pool');

async function setup(overrides: Partial<PoolSpec> = {}) {
  const store = await SqliteStore.open(':memory:');
  const launcher = new FakeLauncher();
  const clock = { now: Date.parse('2026-11-26T12:00:00Z') };
  const service = new PoolService({
    store,
    launcher,
    log: pino({ level: 'silent' }),
    now: () => clock.now,
    refillParallelism: 2,
    metrics: new Metrics(),
    feed: new EventFeed(),
    reaperIntervalMs: 60_000,
    images: new FakeImageSource(),
    cluster: alone(),
  });
  await service.start();
  await service.put(definition(overrides));
  await service.settled(ID);
  return { store, launcher, clock, service, manager: service.manager(ID)! };
}

const isCode = (code: string) => (e: unknown) => e instanceof AppError && e.code === code;

describe('PoolService and PoolManager', () => {
  it('fills the warm set and succeeds the create operation', async () => {
    const { store, launcher, manager } = await setup();
    assert.equal(manager.status().ready, 2);
    assert.equal(launcher.live().length, 2);
    assert.equal((await store.getPool(ID))?.provisioningState, 'Succeeded');
    assert.equal((await store.listSessions(ID, ['ready'])).length, 2);
  });

  it('stops gracefully: starts under way finish and are recorded, writes land, before the store closes', async () => {
    const { store, launcher, service, manager } = await setup();
    let release: () => void = () => undefined;
    launcher.gate = () =>
      new Promise<void>((resolve) => {
        release = resolve;
      });
    // Taking a ready sandbox starts a replacement, held at the gate.
    await manager.acquire('user-1');
    assert.equal(manager.status().starting, 1);
    const errors: string[] = [];
    const stopped = service.stop().catch((error: unknown) => errors.push(String(error)));
    release();
    await stopped;
    assert.deepEqual(errors, []);
    assert.equal((await store.listSessions(ID, ['ready'])).length, 2, 'the replacement was recorded');
    assert.equal((await store.listSessions(ID, ['allocated'])).length, 1);
    const events = (await store.listEvents(ID, { limit: 100 })).map((event) => event.type);
    assert.equal(events.filter((type) => type === 'ready').length, 3, 'its ready event landed too');
    await store.close();
    assert.equal(launcher.live().length, 3, 'every sandbox keeps running for the next start');
    assert.ok(
      launcher.live().every((sandbox) => sandbox.released),
      'and was let go',
    );
  });

  it('gives concurrent first requests for one identifier one session', async () => {
    const { manager, launcher } = await setup();
    const [a, b] = await Promise.all([manager.acquire('user-1'), manager.acquire('user-1')]);
    assert.equal(a.session, b.session);
    assert.equal(manager.status().allocated, 1);
    assert.equal(a.allocation.warm, true);
    assert.equal(launcher.live().length, 3, 'the taken sandbox is replaced');
  });

  it('answers SessionPoolFull past maxConcurrentSessions and frees the slot on stop', async () => {
    const { manager } = await setup({ maxConcurrentSessions: 2, readySessionInstances: 1 });
    await manager.acquire('a');
    await manager.acquire('b');
    await assert.rejects(manager.acquire('c'), isCode(ErrorCode.SessionPoolFull));
    assert.equal(await manager.stop('a'), true);
    await manager.acquire('c');
  });

  it('takes a ready sandbox the store recorded a moment before the warm set held it', async () => {
    const { store, manager } = await setup({ readySessionInstances: 1 });
    // Ready rows land in the store and then wait, as a slow commit would, before the warm set holds them.
    const put = store.putSession.bind(store);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    store.putSession = async (row) => {
      await put(row);
      if (row.state === 'ready') await held;
    };
    await manager.acquire('first');
    while ((await store.listSessions(ID, ['ready'])).length === 0 || manager.status().ready > 0) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const second = manager.acquire('second');
    setTimeout(release, 20);
    const { allocation, session } = await second;
    assert.equal(allocation.warm, true, 'the recorded sandbox, not a second start under its id');
    assert.equal((await store.liveSession(ID, 'second'))?.id, session.id);
  });

  it('names the end of a session the leader ended just before the new one was placed', async () => {
    const { manager, store, clock } = await setup();
    const at = new Date(clock.now).toISOString();
    await store.putSession({
      id: 'on-lost-node',
      poolId: ID,
      generation: 0,
      node: 'node-z',
      identifier: 'moved',
      state: 'allocated',
      createdAt: at,
      allocatedAt: at,
      lastAccessedAt: at,
      endedAt: null,
      endReason: null,
      endDetails: null,
      deadline: null,
      attributes: null,
    });
    // The leader's end commits between the request's arrival and its placement.
    const place = store.placeSession.bind(store);
    store.placeSession = async (request) => {
      await store.endNodeSessions('node-z', 'hostLost', at);
      return place(request);
    };
    const { allocation } = await manager.acquire('moved');
    assert.equal(allocation.created, true);
    assert.equal(allocation.previous?.reason, 'hostLost');
  });

  it('gives the identifier back when its cold start fails: no session, and no end to report', async () => {
    const { manager, launcher, store } = await setup({ readySessionInstances: 0 });
    launcher.failWith = new Error('image missing');
    await assert.rejects(manager.acquire('unlucky'), /image missing/);
    launcher.failWith = undefined;
    assert.equal(await store.liveSession(ID, 'unlucky'), undefined);
    assert.equal(await store.lastEndedSession(ID, 'unlucky'), undefined);
    assert.equal((await manager.acquire('unlucky')).allocation.previous, undefined);
  });

  it('starts on demand when the warm set is empty', async () => {
    const { manager } = await setup({ readySessionInstances: 0 });
    const { allocation } = await manager.acquire('cold');
    assert.equal(allocation.warm, false);
    assert.equal(allocation.created, true);
  });

  it('counts a sandbox against the node from its start on demand until its destroy has finished', async () => {
    // Admission compares what the node reserves with its limits: a sandbox the count missed would be
    // admitted past them, and its start fail at the host's limit instead of being refused.
    const { service, manager, launcher } = await setup({ readySessionInstances: 0 });
    let started!: () => void;
    const starting = new Promise<void>((resolve) => (started = resolve));
    let releaseStart!: () => void;
    launcher.gate = () => {
      started();
      return new Promise<void>((resolve) => (releaseStart = resolve));
    };
    const claim = manager.acquire('cold');
    await starting;
    assert.equal(service.nodeReservation().sandboxes, 1, 'while it starts');
    releaseStart();
    const { session } = await claim;
    assert.equal(service.nodeReservation().sandboxes, 1, 'while it runs');
    const instance = launcher.sandboxes.get(session.instance.id)!;
    const destroy = instance.destroy.bind(instance);
    let releaseDestroy!: () => void;
    const destroying = new Promise<void>((resolve) => (releaseDestroy = resolve));
    instance.destroy = async () => {
      await destroying;
      await destroy();
    };
    const stopped = manager.stop('cold');
    for (let turns = 0; manager.status().ending !== 1; turns++) {
      assert.ok(turns < 100, 'the destroy began');
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(manager.status().allocated, 0);
    assert.equal(service.nodeReservation().sandboxes, 1, 'while it is destroyed');
    releaseDestroy();
    await stopped;
    assert.equal(service.nodeReservation().sandboxes, 0, 'once it is gone');
  });

  it('backs off after failing starts instead of retrying in a loop, and says why', async () => {
    const { manager, launcher, store, service } = await setup({ readySessionInstances: 1 });
    launcher.failWith = new AppError(ErrorCode.SandboxStartFailed, 'image missing');
    const before = launcher.starts;
    await manager.acquire('x').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(launcher.starts - before <= 2, `${launcher.starts - before} starts in 100 ms`);
    assert.equal(manager.status().lastStartError, 'image missing');
    const events = await store.listEvents(ID, { limit: 100 });
    assert.ok(events.some((e) => e.type === 'startFailed' && e.reason === 'SandboxStartFailed'));
    await service.put(definition({ readySessionInstances: 2 }));
    await assert.doesNotReject(service.settled(ID), 'a failed operation is recorded, not thrown');
    assert.equal((await store.getPool(ID))?.provisioningState, 'Failed');
  });

  it('ends idle Timed sessions after the cooldown and tells the next request why', async () => {
    const { manager, clock, store } = await setup();
    const first = await manager.acquire('user-1');
    clock.now += 299_000;
    await manager.reap();
    assert.equal(manager.getSession('user-1'), first.session, 'still alive before the cooldown');
    await manager.withSession('user-1', () => Promise.resolve(), { serialize: true });
    clock.now += 299_000;
    await manager.reap();
    assert.ok(manager.getSession('user-1'), 'the request reset the cooldown');
    clock.now += 2_000;
    await manager.reap();
    assert.equal(manager.getSession('user-1'), undefined);
    const second = await manager.acquire('user-1');
    assert.deepEqual(second.allocation.previous?.reason, 'cooldown');
    const ended = await store.listEvents(ID, { limit: 100 });
    assert.ok(ended.some((e) => e.type === 'ended' && e.reason === 'cooldown' && e.identifier === 'user-1'));
  });

  it('keeps a session busy with a long request alive past its cooldown', async () => {
    const { manager, clock, launcher } = await setup();
    let release!: () => void;
    launcher.run = () => new Promise((resolve) => (release = () => resolve('done')));
    const running = manager.withSession(
      'u',
      (s) => s.instance.execute({ code: '', timeoutMs: 1, maxOutputChars: 1 }),
      {
        serialize: true,
      },
    );
    await new Promise((resolve) => setImmediate(resolve));
    clock.now += 3_600_000;
    await manager.reap();
    assert.ok(manager.getSession('u'));
    release();
    await running;
  });

  it('runs executions of one session one at a time', async () => {
    const { manager, launcher } = await setup();
    launcher.run = (code) => new Promise((resolve) => setTimeout(() => resolve(code), 5));
    const results = await Promise.all(
      ['1', '2', '3'].map((code) =>
        manager.withSession('u', (s) => s.instance.execute({ code, timeoutMs: 1, maxOutputChars: 1 }), {
          serialize: true,
        }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.value.stdout),
      ['1', '2', '3'],
    );
    assert.equal(launcher.sandboxes.get(results[0]!.session.instance.id)?.maxRunning, 1);
  });

  it('records how a sandbox that died ended, and what the session used', async () => {
    const { manager, launcher, store, clock } = await setup();
    const { session } = await manager.acquire('u');
    clock.now += 30_000;
    await manager.withSession('u', () => Promise.resolve(), { serialize: true });
    clock.now += 90_000;
    launcher.sandboxes
      .get(session.instance.id)!
      .die({ status: 'exited', cause: 'oom', exitCode: 137, signal: 'SIGKILL' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(manager.getSession('u'), undefined);
    const row = (await store.listSessions(ID)).find((s) => s.id === session.instance.id)!;
    assert.equal(row.endReason, 'oom');
    assert.deepEqual(row.endDetails, {
      exitCode: 137,
      signal: 'SIGKILL',
      usage: {
        lifetimeSeconds: 120,
        idleSeconds: 90,
        cpuSeconds: FAKE_USAGE.cpuSeconds,
        peakMemoryBytes: FAKE_USAGE.peakMemoryBytes,
      },
    });
  });

  it('replaces ready sandboxes on a template change and leaves allocated ones alone', async () => {
    const { manager, launcher, service } = await setup();
    const { session } = await manager.acquire('u');
    await service.settled(ID);
    const readyBefore = launcher.live().filter((s) => s.id !== session.instance.id);
    await service.put(definition({ cpu: 0.5 }));
    await service.settled(ID);
    assert.ok(readyBefore.every((s) => s.destroyed));
    assert.equal(manager.getSession('u'), session);
    assert.equal(launcher.live().filter((s) => s.spec.cpu === 0.5).length, 2);
  });

  it('creates one manager for concurrent PUTs of a new pool', async () => {
    const { service, launcher } = await setup({ readySessionInstances: 0 });
    const other = { ...definition({ readySessionInstances: 1 }), name: 'twin' };
    const results = await Promise.all([service.put(other), service.put(other), service.put(other)]);
    assert.deepEqual(
      results.map((r) => r.created),
      [true, false, false],
    );
    await service.settled(poolId('sub', 'rg', 'twin'));
    assert.equal(launcher.live().length, 1, 'one warm sandbox, not one per PUT');
  });

  it('drains a deleted pool', async () => {
    const { service, launcher, store } = await setup();
    await service.manager(ID)!.acquire('u');
    const operation = await service.delete(ID);
    await service.settled(ID);
    assert.equal((await store.getOperation(operation!.id))?.status, 'Succeeded');
    assert.equal(launcher.live().length, 0);
    assert.equal(service.manager(ID), undefined);
    assert.equal(await store.getPool(ID), undefined);
  });

  it('reattaches live sandboxes after a restart and records the dead ones', async () => {
    const { store, launcher, service } = await setup();
    const manager = service.manager(ID)!;
    const alive = (await manager.acquire('alive')).session.instance.id;
    const dead = (await manager.acquire('dead')).session.instance.id;
    await service.stop();
    launcher.sandboxes.get(dead)!.destroyed = true;
    const orphan = await launcher.start('orphan-1', spec());

    const restarted = new PoolService({
      store,
      launcher,
      log: pino({ level: 'silent' }),
      now: () => Date.now(),
      refillParallelism: 2,
      metrics: new Metrics(),
      feed: new EventFeed(),
      reaperIntervalMs: 60_000,
      images: new FakeImageSource(),
      cluster: alone(),
    });
    await restarted.start();
    const again = restarted.manager(ID)!;
    assert.equal(again.getSession('alive')?.instance.id, alive);
    assert.equal(again.getSession('dead'), undefined);
    assert.equal((await store.lastEndedSession(ID, 'dead'))?.endReason, 'hostLost');
    assert.equal(launcher.sandboxes.get(orphan.id)?.destroyed, true);
    await restarted.stop();
  });
});
