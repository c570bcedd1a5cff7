import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SqliteStore } from '../store/sqlite-store.js';
import { ForwardedPrincipals } from './forwarded-principal.js';
import type { Principal } from './roles.js';

const alice: Principal = {
  id: 'key:alice',
  grants: [{ role: 'SessionExecutor', scope: '*' }],
  keyId: 'alice',
};
const request = {
  method: 'POST',
  url: '/subscriptions/s/resourceGroups/rg/sessionPools/p/executions?identifier=u',
};

describe('ForwardedPrincipals', () => {
  it('hands a principal to another node of the same store, for that request only and for 30 seconds', async () => {
    const store = await SqliteStore.open(':memory:');
    const clock = { now: Date.parse('2026-11-30T10:00:00Z') };
    const sender = await ForwardedPrincipals.fromStore(store, () => clock.now);
    const receiver = await ForwardedPrincipals.fromStore(store, () => clock.now);
    const token = sender.sign(alice, request);
    assert.deepEqual(receiver.verify(token, request), { principal: alice, placed: undefined });

    const refusedFor = (text: string, forRequest = request) => {
      assert.throws(() => receiver.verify(text, forRequest), { code: 'AuthenticationFailed' });
    };
    refusedFor(token, { ...request, url: `${request.url}&identifier=other` });
    refusedFor(token, { ...request, method: 'DELETE' });
    const [claims = '', signature = ''] = token.split('.');
    const widened = Buffer.from(
      JSON.stringify({
        principal: { ...alice, grants: [{ role: 'Contributor', scope: '*' }] },
        expiresAt: clock.now + 1,
      }),
    ).toString('base64url');
    refusedFor(`${widened}.${signature}`);
    refusedFor(`${claims}.`);
    refusedFor('');

    const elsewhere = await ForwardedPrincipals.fromStore(
      await SqliteStore.open(':memory:'),
      () => clock.now,
    );
    refusedFor(elsewhere.sign(alice, request));

    clock.now += 30_000;
    refusedFor(token);
    await store.close();
  });
});
