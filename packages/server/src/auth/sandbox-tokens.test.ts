import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SqliteStore } from '../store/sqlite-store.js';
import { newTokenSeed, SandboxTokens, type SandboxClaims } from './sandbox-tokens.js';

const claims = (overrides: Partial<SandboxClaims> = {}): SandboxClaims => ({
  sandboxId: 'abcdefghij0123456789',
  poolId: '/subscriptions/s/resourcegroups/e2b/providers/microsoft.app/sessionpools/base',
  creator: { id: 'key:alice', keyId: 'alice', root: 'key:alice' },
  seed: 'seed-one',
  ...overrides,
});

describe('SandboxTokens', () => {
  it('gives every node of a store the same tokens, standing for the maker narrowed to the sandbox', async () => {
    const store = await SqliteStore.open(':memory:');
    const active = () => Promise.resolve(true);
    const [one, two] = [
      await SandboxTokens.fromStore(store, active),
      await SandboxTokens.fromStore(store, active),
    ];
    const token = one.accessToken(claims());
    assert.equal(two.accessToken(claims()), token);
    assert.deepEqual(await two.verify('access', token, claims()), {
      id: 'key:alice',
      grants: [{ role: 'SessionExecutor', scope: claims().poolId }],
      keyId: 'alice',
      root: 'key:alice',
      sandbox: claims().sandboxId,
    });
  });

  it('refuses a token for another sandbox, another seed, the other kind, or from another store', async () => {
    const tokens = await SandboxTokens.fromStore(await SqliteStore.open(':memory:'), () =>
      Promise.resolve(true),
    );
    const elsewhere = await SandboxTokens.fromStore(await SqliteStore.open(':memory:'), () =>
      Promise.resolve(true),
    );
    const token = tokens.accessToken(claims());
    const refused = (promise: Promise<unknown>) => assert.rejects(promise, { code: 'AuthenticationFailed' });
    await refused(tokens.verify('access', token, claims({ sandboxId: 'zzzzzzzzzz0123456789' })));
    await refused(tokens.verify('access', token, claims({ seed: newTokenSeed() })));
    await refused(tokens.verify('traffic', token, claims()));
    await refused(elsewhere.verify('access', token, claims()));
    await refused(tokens.verify('access', `${token}x`, claims()));
    assert.notEqual(tokens.trafficToken(claims()), token);
  });

  it('dies with the key that made the sandbox', async () => {
    let active = true;
    const tokens = await SandboxTokens.fromStore(await SqliteStore.open(':memory:'), () =>
      Promise.resolve(active),
    );
    const token = tokens.accessToken(claims());
    await tokens.verify('access', token, claims());
    active = false;
    await assert.rejects(tokens.verify('access', token, claims()), /revoked/);
  });
});
