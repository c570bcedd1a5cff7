import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import pg from 'pg';

import { AppError, ErrorCode } from '../errors.js';
import { pool, storeContract } from '../../test/store-contract.js';
import { postgresSkipReason, startPostgres, type PostgresServer } from '../../test/postgres-server.js';
import { PostgresStore, redactedUrl } from './postgres-store.js';
import { Sealer } from './sealer.js';

describe('PostgresStore on a real PostgreSQL server', { skip: postgresSkipReason }, () => {
  let server: PostgresServer;
  let databases = 0;
  const newDatabase = () => server.createDatabase(`sandpool_${databases++}`);
  before(() => {
    server = startPostgres();
  });
  after(() => server.remove());

  storeContract(async () => PostgresStore.open(await newDatabase(), Sealer.ephemeral()));

  it('keeps secret values and settings sealed in the database', async () => {
    const url = await newDatabase();
    const store = await PostgresStore.open(url, Sealer.ephemeral());
    await store.putSetting('tokens.signingKey', 'private-scalar-d');
    await store.putPool({
      ...pool('vault'),
      spec: { containerType: 'PythonLTS', secrets: [{ name: 'db-password', value: 'hunter2-password' }] },
    });
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    const rows = await raw.query<{ text: string }>(
      `SELECT spec AS text FROM pools UNION ALL SELECT value FROM settings`,
    );
    await raw.end();
    const onDisk = rows.rows.map((r) => r.text).join('\n');
    assert.ok(!onDisk.includes('hunter2-password'), 'a secret value in the clear');
    assert.ok(!onDisk.includes('private-scalar-d'), 'a setting in the clear');
    await store.close();
  });

  it('tells the other nodes at once when a node changes the pools (LISTEN/NOTIFY)', async () => {
    const url = await newDatabase();
    const sealer = Sealer.ephemeral();
    const [writer, reader] = await Promise.all([1, 2].map(() => PostgresStore.open(url, sealer)));
    let heard = 0;
    let connected!: () => void;
    const listening = new Promise<void>((resolve) => (connected = resolve));
    const stop = reader!.onPoolsChanged(() => {
      heard++;
      connected();
    });
    await listening;
    const before = heard;
    const changed = new Promise<void>((resolve) => {
      const unsubscribe = reader!.onPoolsChanged(() => {
        unsubscribe();
        resolve();
      });
    });
    await writer!.putPool(pool('announced'));
    await Promise.race([
      changed,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('no notification in 10 s')), 10_000).unref(),
      ),
    ]);
    assert.ok(heard > before, 'the change was heard');
    stop();
    await Promise.all([writer!.close(), reader!.close()]);
  });

  it('has one leader among the nodes, and leadership moves when the leader goes', async () => {
    const url = await newDatabase();
    const sealer = Sealer.ephemeral();
    const [first, second, third] = await Promise.all([1, 2, 3].map(() => PostgresStore.open(url, sealer)));
    const leaders = await Promise.all([first!, second!, third!].map((store) => store.holdLeadership()));
    assert.equal(leaders.filter(Boolean).length, 1);
    const leader = [first!, second!, third!][leaders.indexOf(true)]!;
    const others = [first!, second!, third!].filter((store) => store !== leader);
    await leader.close();
    const next = [];
    for (const store of others) next.push(await store.holdLeadership());
    assert.deepEqual(next.sort(), [false, true]);
    await Promise.all(others.map((store) => store.close()));
  });

  it('migrates once when several nodes start against one empty database together', async () => {
    const url = await newDatabase();
    const sealer = Sealer.ephemeral();
    const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open(url, sealer)));
    await stores[0]!.putPool(pool('shared'));
    for (const store of stores)
      assert.deepEqual(
        (await store.listPools()).map((p) => p.name),
        ['shared'],
      );
    await Promise.all(stores.map((store) => store.close()));
  });

  it('answers StoreBusy while the database is down, and reconnects by itself when it is back', async () => {
    const store = await PostgresStore.open(await newDatabase(), Sealer.ephemeral());
    await store.putPool(pool('steady'));
    server.stop();
    try {
      await assert.rejects(store.getPool(pool('steady').id), (error: unknown) => {
        assert.ok(error instanceof AppError, String(error));
        assert.equal(error.code, ErrorCode.StoreBusy);
        return true;
      });
    } finally {
      server.start();
    }
    // Connections the restart cut may fail once more each (StoreBusy, as a client retries); then the
    // pool has connected anew.
    let back: string | undefined;
    for (let attempt = 0; attempt < 20 && back === undefined; attempt++) {
      back = await store.getPool(pool('steady').id).then(
        (row) => row?.name,
        (error: unknown) => {
          assert.ok(error instanceof AppError && error.code === ErrorCode.StoreBusy, String(error));
          return undefined;
        },
      );
    }
    assert.equal(back, 'steady');
    await store.close();
  });

  it('never names the password of the URL it could not open', async () => {
    assert.equal(
      redactedUrl('postgres://sandpool:s3cret@db.internal:5432/sandpool'),
      'postgres://sandpool:***@db.internal:5432/sandpool',
    );
    await assert.rejects(
      PostgresStore.open('postgres://sandpool:s3cret@%2Fnonexistent:5432/none', Sealer.ephemeral()),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.doesNotMatch(error.message, /s3cret/);
        return true;
      },
    );
  });
});
