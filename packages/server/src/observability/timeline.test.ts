import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { percentile, Timeline } from './timeline.js';

const MINUTE = 60_000;
const T0 = Date.parse('2026-11-26T10:00:00Z');

function clock(start = T0) {
  const state = { now: start };
  return { state, now: () => state.now };
}

describe('timeline', () => {
  it('takes the nearest-rank percentile', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(sorted, 0.5), 50);
    assert.equal(percentile(sorted, 0.99), 99);
    assert.equal(percentile([7], 0.99), 7);
    assert.equal(percentile([], 0.5), null);
  });

  it('counts each minute apart, with its allocation latency percentiles', () => {
    const { state, now } = clock(T0 + 5_000);
    const timeline = new Timeline(now);
    for (let ms = 1; ms <= 100; ms++) timeline.recordAllocation('rg/a', ms !== 100, ms);
    timeline.recordExecution('rg/a', 'succeeded');
    timeline.recordExecution('rg/a', 'timeout');
    state.now += MINUTE;
    timeline.recordEnd('rg/a', 'cooldown');
    timeline.recordEnd('rg/a', 'cooldown');
    timeline.recordPoolFull('rg/a');

    const [first, second] = timeline.points('rg/a', 2);
    assert.deepEqual(first, {
      at: '2026-11-26T10:00:00.000Z',
      allocations: 100,
      coldAllocations: 1,
      allocationP50Ms: 50,
      allocationP99Ms: 99,
      executions: { succeeded: 1, failed: 0, timeout: 1, lost: 0 },
      ends: {},
      poolFullRejections: 0,
    });
    assert.equal(second?.at, '2026-11-26T10:01:00.000Z');
    assert.deepEqual(second.ends, { cooldown: 2 });
    assert.equal(second.poolFullRejections, 1);
    assert.equal(second.allocationP50Ms, null);
  });

  it('answers every minute of the span, empty ones too, and keeps pools apart', () => {
    const { state, now } = clock();
    const timeline = new Timeline(now);
    timeline.recordAllocation('rg/a', true, 3);
    state.now += 10 * MINUTE;
    const points = timeline.points('rg/a');
    assert.equal(points.length, 60);
    assert.equal(points.at(-1)?.at, new Date(T0 + 10 * MINUTE).toISOString());
    assert.equal(points.filter((p) => p.allocations > 0).length, 1);
    assert.equal(points.at(-11)?.allocations, 1);
    assert.ok(timeline.points('rg/b').every((p) => p.allocations === 0));
  });

  it('forgets minutes older than the hour, and a deleted pool', () => {
    const { state, now } = clock();
    const timeline = new Timeline(now);
    timeline.recordExecution('rg/a', 'failed');
    state.now += 60 * MINUTE;
    timeline.recordExecution('rg/a', 'lost');
    const points = timeline.points('rg/a');
    assert.equal(
      points.reduce((n, p) => n + p.executions.failed, 0),
      0,
      'an hour ago is gone',
    );
    assert.equal(points.at(-1)?.executions.lost, 1);
    timeline.forget('rg/a');
    assert.ok(timeline.points('rg/a').every((p) => p.executions.lost === 0));
  });

  it('samples latencies evenly once a minute has more than it keeps', () => {
    const { now } = clock();
    // A seeded generator (LCG) so the sample is the same on every run.
    let seed = 42;
    const random = () => (seed = (Math.imul(seed, 1_664_525) + 1_013_904_223) >>> 0) / 2 ** 32;
    const timeline = new Timeline(now, random);
    for (let i = 0; i < 3000; i++) timeline.recordAllocation('rg/a', true, 10);
    for (let i = 0; i < 7000; i++) timeline.recordAllocation('rg/a', true, 20);
    const [point] = timeline.points('rg/a', 1);
    assert.equal(point?.allocations, 10_000);
    // Keeping only the first samples would put the median at 10; an even sample has 70% at 20.
    assert.equal(point.allocationP50Ms, 20);
    assert.equal(point.allocationP99Ms, 20);
  });
});
