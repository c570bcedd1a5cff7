import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { expiredReason, sessionExpiry, startBackoffMs, warmTarget } from './policy.js';
import type { Lifecycle, PoolSpec } from './pool-spec.js';

const timed: Lifecycle = { type: 'Timed', cooldownSeconds: 300 };
const onExit: Lifecycle = { type: 'OnContainerExit', maxAliveSeconds: 3600 };
const t0 = 1_000_000;

describe('session expiry', () => {
  const cases: [
    string,
    Lifecycle,
    { allocatedAt: number; lastAccessedAt: number; busy: boolean },
    number,
    string | undefined,
  ][] = [
    [
      'idle Timed before the cooldown',
      timed,
      { allocatedAt: t0, lastAccessedAt: t0, busy: false },
      t0 + 299_999,
      undefined,
    ],
    [
      'idle Timed at the cooldown',
      timed,
      { allocatedAt: t0, lastAccessedAt: t0, busy: false },
      t0 + 300_000,
      'cooldown',
    ],
    [
      'a later request resets the cooldown',
      timed,
      { allocatedAt: t0, lastAccessedAt: t0 + 200_000, busy: false },
      t0 + 400_000,
      undefined,
    ],
    [
      'a busy Timed session outlives its cooldown',
      timed,
      { allocatedAt: t0, lastAccessedAt: t0, busy: true },
      t0 + 900_000,
      undefined,
    ],
    [
      'OnContainerExit ignores activity',
      onExit,
      { allocatedAt: t0, lastAccessedAt: t0 + 3_500_000, busy: false },
      t0 + 3_600_000,
      'maxAlive',
    ],
    [
      'OnContainerExit ends even while busy',
      onExit,
      { allocatedAt: t0, lastAccessedAt: t0, busy: true },
      t0 + 3_600_001,
      'maxAlive',
    ],
    [
      'OnContainerExit before its period',
      onExit,
      { allocatedAt: t0, lastAccessedAt: t0, busy: false },
      t0 + 3_599_999,
      undefined,
    ],
  ];
  for (const [name, lifecycle, times, now, expected] of cases) {
    it(name, () => assert.equal(expiredReason(lifecycle, times, now), expected));
  }

  it('reports when and why', () => {
    assert.deepEqual(sessionExpiry(timed, { allocatedAt: t0, lastAccessedAt: t0 + 5, busy: false }), {
      at: t0 + 300_005,
      reason: 'cooldown',
    });
  });
});

describe('warm target', () => {
  const spec = (max: number, ready: number) =>
    ({ maxConcurrentSessions: max, readySessionInstances: ready }) as PoolSpec;
  const cases: [number, number, number, number][] = [
    // max, ready, allocated → target
    [10, 5, 0, 5],
    [10, 5, 6, 4],
    [10, 5, 10, 0],
    [10, 0, 3, 0],
    [3, 3, 3, 0],
  ];
  for (const [max, ready, allocated, target] of cases) {
    it(`max ${max}, ready ${ready}, ${allocated} allocated → ${target}`, () =>
      assert.equal(warmTarget(spec(max, ready), allocated), target));
  }
});

describe('start backoff', () => {
  it('doubles from a second up to a minute', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 6, 7, 20].map(startBackoffMs),
      [0, 1000, 2000, 4000, 32_000, 60_000, 60_000],
    );
  });
});
