import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { SqliteStore } from './sqlite-store.js';
import type { PoolRow } from './store.js';
import { pool, storeContract } from '../../test/store-contract.js';

describe('SqliteStore', () => {
  storeContract(() => SqliteStore.open(':memory:'));

  it('survives kill -9 of a writer in the middle of its writes', async () => {
    const dir = mkdtempSync('/var/tmp/sandpool-store-');
    after(() => rmSync(dir, { recursive: true }));
    const path = join(dir, 'store.db');
    const writer = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        new URL('../../test/fixtures/write-events-forever.ts', import.meta.url).pathname,
        path,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    // The writer prints once it has written a first batch; kill it while it keeps writing.
    await new Promise((resolve) => writer.stdout.once('data', resolve));
    await new Promise((resolve) => setTimeout(resolve, 200));
    writer.kill('SIGKILL');
    await new Promise((resolve) => writer.once('exit', resolve));

    const store = await SqliteStore.open(path);
    assert.equal(store.integrityCheck(), 'ok');
    const events = await store.listEvents('p', { limit: 1_000_000 });
    assert.ok(events.length >= 100, `only ${events.length} events survived`);
    events.forEach((e, i) => assert.equal(e.seq, i + 1, 'events are contiguous'));
    await store.close();
  });
});

describe('SqliteStore on the host', () => {
  const dir = mkdtempSync('/var/tmp/sandpool-store-host-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const secretPool = (value: string): PoolRow => ({
    ...pool('vault'),
    spec: { containerType: 'PythonLTS', secrets: [{ name: 'db-password', value }] },
  });

  it('is root’s alone: the file, its WAL and its keyring are 0600 even after a looser file', async () => {
    const path = join(dir, 'modes.db');
    writeFileSync(path, '', { mode: 0o644 });
    chmodSync(path, 0o644);
    const store = await SqliteStore.open(path);
    await store.putSetting('k', 'v');
    for (const file of [path, `${path}-wal`, `${path}.keys`]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
    }
    await store.close();
  });

  it('seals settings and secret values at rest, and re-seals them under a rotated key', async () => {
    const path = join(dir, 'sealed.db');
    const first = await SqliteStore.open(path);
    await first.putSetting('tokens.signingKey', 'private-scalar-d');
    await first.putPool(secretPool('hunter2-password'));
    await first.close();
    const onDisk = () =>
      [path, `${path}-wal`]
        .map((file) => (existsSync(file) ? readFileSync(file).toString('latin1') : ''))
        .join('');
    assert.ok(!onDisk().includes('hunter2-password'), 'a secret value in the clear');
    assert.ok(!onDisk().includes('private-scalar-d'), 'a setting in the clear');

    const oldKey = readFileSync(`${path}.keys`, 'utf8').trim();
    writeFileSync(`${path}.keys`, `${randomBytes(32).toString('base64')}\n${oldKey}\n`);
    const rotated = await SqliteStore.open(path);
    assert.equal(await rotated.getSetting('tokens.signingKey'), 'private-scalar-d');
    await rotated.close();
    // Every value was sealed again under the new key: the old one can go.
    writeFileSync(`${path}.keys`, readFileSync(`${path}.keys`, 'utf8').split('\n')[0]! + '\n');
    const reopened = await SqliteStore.open(path);
    const [vault] = await reopened.listPools();
    assert.deepEqual((vault!.spec as { secrets: unknown }).secrets, [
      { name: 'db-password', value: 'hunter2-password' },
    ]);
    assert.equal(await reopened.getSetting('tokens.signingKey'), 'private-scalar-d');
    await reopened.close();
  });
});
