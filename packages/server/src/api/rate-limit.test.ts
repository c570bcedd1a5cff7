import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { AppError } from '../errors.js';
import { RateLimits, TokenBuckets } from './rate-limit.js';

describe('TokenBuckets', () => {
  it('grants a burst, then one request per 1/rate seconds, and says how long to wait', () => {
    const clock = { now: 0 };
    const buckets = new TokenBuckets(2, 2, () => clock.now);
    for (let i = 0; i < 4; i++) assert.equal(buckets.take('a'), 0, `burst request ${i}`);
    assert.equal(buckets.take('a'), 0.5);
    clock.now += 250;
    assert.equal(buckets.take('a'), 0.25);
    clock.now += 250;
    assert.equal(buckets.take('a'), 0);
    assert.equal(buckets.take('b'), 0, 'keys are independent');
  });

  it('never stores more than a full burst, however long a key was idle', () => {
    const clock = { now: 0 };
    const buckets = new TokenBuckets(1, 1, () => clock.now);
    buckets.take('a');
    clock.now += 3_600_000;
    assert.equal(buckets.take('a'), 0);
    assert.ok(buckets.take('a') > 0);
  });
});

describe('RateLimits', () => {
  const principal = (id: string) => ({ id, grants: [] });
  const pool = (name: string, group = 'g') =>
    `/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/${group}/providers/microsoft.app/sessionpools/${name}`;
  const refused = (fn: () => void) =>
    assert.throws(fn, (e: unknown) => e instanceof AppError && e.code === 'RateLimitExceeded');

  it('limits each caller', () => {
    const limits = new RateLimits({ perPrincipal: 2, perIdentifier: 0, burstSeconds: 1, now: () => 0 });
    limits.checkCaller(principal('alice'));
    limits.checkCaller(principal('alice'));
    refused(() => limits.checkCaller(principal('alice')));
    limits.checkCaller(principal('bob'));
  });

  it('limits each pool’s identifier across callers, pools of one name in two groups apart', () => {
    const limits = new RateLimits({ perPrincipal: 0, perIdentifier: 1, burstSeconds: 1, now: () => 0 });
    limits.checkIdentifier(pool('p'), 'u1');
    refused(() => limits.checkIdentifier(pool('p'), 'u1'));
    limits.checkIdentifier(pool('p'), 'u2');
    limits.checkIdentifier(pool('q'), 'u1');
    limits.checkIdentifier(pool('p', 'other'), 'u1');
  });

  it('does nothing at rate 0', () => {
    const limits = new RateLimits({ perPrincipal: 0, perIdentifier: 0, burstSeconds: 1, now: () => 0 });
    for (let i = 0; i < 1000; i++) {
      limits.checkCaller(principal('a'));
      limits.checkIdentifier(pool('p'), 'u');
    }
  });
});
