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
  const url = (pool: string, identifier: string) =>
    `/subscriptions/s/resourceGroups/g/sessionPools/${pool}/executions?api-version=x&identifier=${identifier}`;
  const refused = (fn: () => void) =>
    assert.throws(fn, (e: unknown) => e instanceof AppError && e.code === 'RateLimitExceeded');

  it('limits each caller, and each pool’s identifier across callers', () => {
    const limits = new RateLimits({ perPrincipal: 3, perIdentifier: 1, burstSeconds: 1, now: () => 0 });
    limits.check(principal('alice'), url('p', 'u1'));
    refused(() => limits.check(principal('bob'), url('p', 'u1')));
    limits.check(principal('bob'), url('P', 'u2'));
    limits.check(principal('bob'), url('q', 'u1'));
    limits.check(principal('alice'), '/sandpool/apiKeys');
    limits.check(principal('alice'), '/sandpool/apiKeys');
    refused(() => limits.check(principal('alice'), '/sandpool/apiKeys'));
  });

  it('reads the identifier decoded, so spelling it with escapes shares its bucket', () => {
    const limits = new RateLimits({ perPrincipal: 0, perIdentifier: 1, burstSeconds: 1, now: () => 0 });
    limits.check(principal('a'), url('p', 'ab'));
    refused(() => limits.check(principal('a'), url('p', '%61b')));
  });

  it('does nothing at rate 0', () => {
    const limits = new RateLimits({ perPrincipal: 0, perIdentifier: 0, burstSeconds: 1, now: () => 0 });
    for (let i = 0; i < 1000; i++) limits.check(principal('a'), url('p', 'u'));
  });
});
