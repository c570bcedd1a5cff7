import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SqliteStore } from '../store/sqlite-store.js';
import { ApiKeys } from './api-keys.js';
import type { Principal } from './roles.js';

const executor = [{ role: 'SessionExecutor' as const, scope: '*' }];

describe('ApiKeys', () => {
  it('gives a key made by a token its maker’s expiry and root, and ends it with either', async () => {
    let clock = Date.parse('2026-12-07T12:00:00.000Z');
    const keys = new ApiKeys(await SqliteStore.open(':memory:'), () => clock);
    const revoked: string[] = [];
    keys.onRevoked((id) => revoked.push(id));
    const root = await keys.create('root', executor);
    const token: Principal = {
      id: `sandpool#key:${root.key.id}`,
      grants: executor,
      keyId: root.key.id,
      root: `key:${root.key.id}`,
      expiresAt: clock + 60_000,
    };
    const child = await keys.create('child', executor, { maker: token });
    assert.equal(child.key.parentKeyId, root.key.id);
    assert.equal(child.key.expiresAt, '2026-12-07T12:01:00.000Z');
    const childPrincipal = await keys.verify(child.secret);
    assert.equal(childPrincipal.root, `key:${root.key.id}`, 'it spends its root’s budget');
    assert.equal(childPrincipal.expiresAt, clock + 60_000, 'streams it opens end at its expiry');
    // A key the child makes is derived too: it dies with the child, which dies with the root.
    const grandchild = await keys.create('grandchild', executor, { maker: childPrincipal });
    assert.equal(grandchild.key.parentKeyId, child.key.id);
    assert.equal((await keys.verify(grandchild.secret)).root, `key:${root.key.id}`);
    const peer = await keys.create('peer', executor, { maker: await keys.verify(root.secret) });
    assert.equal(peer.key.parentKeyId, null, 'a key made by a key of its own standing is a peer');
    assert.equal(peer.key.expiresAt, null);

    await keys.revoke(root.key.id);
    assert.deepEqual(revoked.sort(), [root.key.id, child.key.id, grandchild.key.id].sort());
    await assert.rejects(keys.verify(child.secret), /AuthenticationFailed|not valid/);
    await assert.rejects(keys.verify(grandchild.secret), /not valid/);
    assert.equal(await keys.isActive(grandchild.key.id), false);
    await keys.verify(peer.secret);

    const other = await keys.create('other root', executor);
    const expiring = await keys.create('expiring', executor, {
      maker: { id: 'https://issuer#alice', grants: executor, expiresAt: clock + 1_000 },
    });
    assert.equal(expiring.key.parentKeyId, null, 'an OIDC token passes on no key');
    await keys.verify(expiring.secret);
    clock += 1_000;
    await assert.rejects(keys.verify(expiring.secret), /not valid/);
    await keys.verify(other.secret);
  });
});
