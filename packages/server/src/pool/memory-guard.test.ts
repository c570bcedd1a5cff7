import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import pino from 'pino';

import { FakeImageSource, FakeLauncher, FAKE_USAGE } from '../../test/fake-launcher.js';
import { poolId } from '../arm-id.js';
import { AppError, ErrorCode } from '../errors.js';
import { EventFeed } from '../observability/event-feed.js';
import { Metrics } from '../observability/metrics.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { pythonPoolSpec } from './pool-spec.js';
import { ClusterView } from './cluster-view.js';
import { MemoryGuard, pressureVictims } from './memory-guard.js';
import { PoolService } from './pool-service.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const ID = poolId('sub', 'rg', 'pool');

describe('pressureVictims', () => {
  const candidate = (name: string, kind: 'ready' | 'session', lastUsedAt: number, busy = false) => ({
    name,
    kind,
    lastUsedAt,
    busy,
    bytes: 100,
  });

  it('takes ready sandboxes, then the longest idle sessions, until enough is freed', () => {
    const victims = pressureVictims(
      [
        candidate('recent', 'session', 30),
        candidate('oldest', 'session', 10),
        candidate('ready', 'ready', 40),
        candidate('middle', 'session', 20),
      ],
      250,
    );
    assert.deepEqual(
      victims.map((v) => v.name),
      ['ready', 'oldest', 'middle'],
    );
  });

  it('takes a session mid-request only when nothing else is left', () => {
    const candidates = [candidate('busy', 'session', 1, true), candidate('idle', 'session', 50)];
    assert.deepEqual(
      pressureVictims(candidates, 100).map((v) => v.name),
      ['idle'],
    );
    assert.deepEqual(
      pressureVictims(candidates, 150).map((v) => v.name),
      ['idle', 'busy'],
    );
  });

  it('takes nobody when nothing is in excess', () => {
    assert.deepEqual(pressureVictims([candidate('ready', 'ready', 1)], 0), []);
  });
});

/** A node on a fake launcher whose cluster view hears the guard, as server.ts composes them. */
async function node() {
  const store = await SqliteStore.open(':memory:');
  const launcher = new FakeLauncher();
  const clock = { now: Date.parse('2026-11-30T12:00:00Z') };
  const log = pino({ level: 'silent' });
  const cluster: ClusterView = new ClusterView({
    self: 'node-a',
    capacity: { sandboxes: 100, cpu: 100, memoryBytes: 100 * GIB },
    localReservation: () => pools.nodeReservation(),
    sizeOf: (id) => pools.sandboxSize(id),
    draining: () => false,
    memoryPressure: (): boolean => guard.underPressure,
    now: () => clock.now,
  });
  const pools: PoolService = new PoolService({
    store,
    launcher,
    log,
    now: () => clock.now,
    refillParallelism: 2,
    metrics: new Metrics(),
    feed: new EventFeed(),
    reaperIntervalMs: 60_000,
    images: new FakeImageSource(),
    cluster,
  });
  const guard: MemoryGuard = new MemoryGuard({
    read: () => launcher.memory(),
    committedBytes: () => pools.nodeReservation().memoryBytes,
    allocatableBytes: 100 * GIB,
    pressureRatio: 0.9,
    candidates: () => pools.pressureCandidates(),
    log,
    intervalMs: 60_000,
  });
  await pools.start();
  await pools.put({
    subscription: 'sub',
    resourceGroup: 'rg',
    name: 'pool',
    location: 'local',
    tags: {},
    spec: pythonPoolSpec({ maxConcurrentSessions: 10, readySessionInstances: 1 }),
  });
  await pools.settled(ID);
  return { store, launcher, clock, pools, guard, manager: pools.manager(ID)! };
}

const isCode = (code: string) => (e: unknown) => e instanceof AppError && e.code === code;

describe('MemoryGuard', () => {
  it('ends the ready sandbox and the longest idle session, never the one mid-execution, and refuses new sessions meanwhile', async () => {
    const { store, launcher, clock, guard, manager } = await node();
    let finish: () => void = () => undefined;
    launcher.run = (code) =>
      code === 'hold'
        ? new Promise((resolve) => {
            finish = () => resolve('done');
          })
        : Promise.resolve(code);
    for (const identifier of ['a', 'b', 'c', 'd']) {
      await manager.acquire(identifier);
      clock.now += 60_000;
    }
    // Each session holds 200 MiB; the ready sandbox 1 MiB (the fake's usage).
    for (const identifier of ['a', 'b', 'c', 'd']) {
      const instance = launcher.sandboxes.get(manager.getSession(identifier)!.id)!;
      instance.usage = () => Promise.resolve({ ...FAKE_USAGE, memoryBytes: 200 * MIB });
    }
    // `a`, idle longest, is in the middle of an execution.
    const session = manager.getSession('a')!;
    const running = manager.execute(session, { code: 'hold', timeoutMs: 60_000, maxOutputChars: 1000 });
    // 4 sessions and 1 ready of 0.5 GiB each are 2.5 GiB committed against a 1 GiB limit.
    launcher.memoryReading = { limitBytes: GIB, workingSetBytes: 0.95 * GIB };
    await manager.whenWarm();
    assert.equal(manager.status().ready, 1);
    await guard.check();

    assert.equal(guard.underPressure, true);
    assert.equal(manager.status().ready, 0, 'the ready sandbox went first, and none refills');
    assert.ok(manager.getSession('a'), 'the session mid-execution is spared');
    assert.equal(manager.getSession('b'), undefined, 'the longest idle session ends');
    assert.ok(manager.getSession('c') && manager.getSession('d'), 'the rest stay: enough was freed');
    const ended = await store.lastEndedSession(ID, 'b');
    assert.equal(ended?.endReason, 'hostMemoryPressure');
    await assert.rejects(manager.acquire('e'), (error: unknown) => {
      assert.ok(isCode(ErrorCode.NoNodeAvailable)(error));
      assert.match((error as AppError).message, /this node: its sandboxes are short of memory/);
      assert.deepEqual((error as AppError).details, { retryAfterSeconds: 5 });
      return true;
    });
    const status = guard.status();
    assert.equal(status.committedBytes, 1.5 * GIB);
    assert.equal(status.pressureMarkBytes, 0.9 * GIB);

    // The freed memory shows: pressure lifts below the mark less the margin, and sessions are admitted.
    launcher.memoryReading = { limitBytes: GIB, workingSetBytes: 0.7 * GIB };
    await guard.check();
    assert.equal(guard.underPressure, false);
    await manager.acquire('e');
    finish();
    assert.equal((await running).stdout, 'done');
  });

  it('stays out while the sessions’ sizes fit in the limit: no sandbox can push another out', async () => {
    const { launcher, guard, manager } = await node();
    await manager.acquire('a');
    // 1 session and 1 ready of 0.5 GiB fit in 2 GiB, however full it looks.
    launcher.memoryReading = { limitBytes: 2 * GIB, workingSetBytes: 1.99 * GIB };
    await guard.check();
    assert.equal(guard.underPressure, false);
    assert.equal(guard.status().pressureMarkBytes, null);
    assert.ok(manager.getSession('a'));
    await manager.acquire('b');
  });

  it('stays out when the sandboxes have no limit', async () => {
    const { launcher, guard } = await node();
    launcher.memoryReading = { limitBytes: null, workingSetBytes: 100 * GIB };
    await guard.check();
    assert.equal(guard.underPressure, false);
  });
});
