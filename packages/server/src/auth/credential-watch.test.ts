import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';

import { CredentialWatch, type CredentialEnd } from './credential-watch.js';

describe('CredentialWatch', () => {
  it('ends a connection when its key, or the key its token came from, is revoked', () => {
    const watch = new CredentialWatch(() => 0);
    const ended: string[] = [];
    watch.watch({ id: 'key:a', grants: [], keyId: 'a' }, (why) => ended.push(`key ${why}`));
    watch.watch({ id: 'sandpool#key:a', grants: [], keyId: 'a' }, (why) => ended.push(`token ${why}`));
    const stop = watch.watch({ id: 'key:b', grants: [], keyId: 'b' }, (why) => ended.push(`b ${why}`));
    watch.revoked('a');
    watch.revoked('a');
    stop();
    watch.revoked('b');
    assert.deepEqual(ended, ['key revoked', 'token revoked']);
  });

  it('ends a connection when its token expires', () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000 });
    try {
      const watch = new CredentialWatch(() => Date.now());
      const ended: CredentialEnd[] = [];
      watch.watch({ id: 't', grants: [], expiresAt: 61_000 }, (why) => ended.push(why));
      mock.timers.tick(59_999);
      assert.deepEqual(ended, []);
      mock.timers.tick(1);
      assert.deepEqual(ended, ['expired']);
    } finally {
      mock.timers.reset();
    }
  });
});
