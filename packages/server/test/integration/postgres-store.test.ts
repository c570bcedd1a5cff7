/**
 * A server on PostgreSQL, end to end: real sandboxes, a real PostgreSQL server (test/postgres-server),
 * `sandpool serve` as a child process. State lives in the database: a server killed with SIGKILL and
 * started again takes up its sessions from there, and a database outage answers 503 StoreBusy
 * while the sessions already running keep running. The audit trail loses nothing to an outage: the
 * node's journal keeps the entries, across a kill -9, until the database takes them.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { call, startChild, type Child } from '../child-server.js';
import { postgresSkipReason, startPostgres, type PostgresServer } from '../postgres-server.js';
import {
  DATA,
  MGMT,
  armPath,
  interpreterPool,
  poolPath,
  removeServerState,
  testConfig,
  testServerEnv,
} from '../server-harness.js';
import { skipReason } from './harness.js';

const run = (child: Child, identifier: string, code: string) =>
  call(child, 'POST', `${poolPath('pgpool')}/executions?${DATA}&identifier=${identifier}`, { code });

describe('a server on PostgreSQL', { skip: skipReason ?? postgresSkipReason }, () => {
  let database: PostgresServer;
  const children: ChildProcess[] = [];
  const home = mkdtempSync('/var/tmp/sandpool-test-pg-');
  chmodSync(home, 0o711);
  let env: Record<string, string>;
  before(async () => {
    database = startPostgres();
    env = testServerEnv('pg', home, { SANDPOOL_STORE: await database.createDatabase('sandpool') });
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await removeServerState(testConfig(env));
    database.remove();
  });

  it('keeps pools and live sessions in the database across kill -9 of the server', async () => {
    const first = await startChild(env);
    children.push(first.process);
    const created = await call(
      first,
      'PUT',
      `${armPath('pgpool')}?${MGMT}`,
      interpreterPool({ max: 3, ready: 1 }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.json));
    assert.equal((await run(first, 'analyst', 'balance = 41')).json.status, 'Succeeded');
    // The audit entry is written once the answer has left: wait for it before the kill.
    while (
      (await call(first, 'GET', `/sandpool/audit?action=code.execute&pool=pgpool`)).json.value.length < 1
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    first.process.kill('SIGKILL');
    await new Promise((resolve) => first.process.once('exit', resolve));
    const second = await startChild(env);
    children.push(second.process);
    const again = await run(second, 'analyst', 'balance + 1');
    assert.equal(again.json.status, 'Succeeded');
    assert.equal(again.json.result.executionResult, 42, 'the session’s state survived the restart');
    const audit = await call(second, 'GET', `/sandpool/audit?action=code.execute&pool=pgpool`);
    assert.equal(audit.json.value.length, 2, 'the audit trail is in the database, both executions');
    second.process.kill('SIGTERM');
    await new Promise((resolve) => second.process.once('exit', resolve));
  });

  it('answers 503 StoreBusy while the database is down, and serves again once it is back', async () => {
    const child = await startChild(env);
    children.push(child.process);
    const created = await call(child, 'PUT', `${armPath('pgsteady')}?${MGMT}`, interpreterPool({ ready: 1 }));
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const steady = (code: string) =>
      call(child, 'POST', `${poolPath('pgsteady')}/executions?${DATA}&identifier=steady`, { code });
    assert.equal((await steady('x = 1')).json.status, 'Succeeded');
    database.stop();
    try {
      const refused = await call(child, 'PUT', `${armPath('other')}?${MGMT}`, interpreterPool());
      assert.equal(refused.status, 503);
      assert.equal(refused.json.error.code, 'StoreBusy');
      assert.ok(refused.headers.get('retry-after'));
    } finally {
      database.start();
    }
    let answer = await steady('x + 1');
    // A connection the restart cut may answer StoreBusy once more before the pool reconnects.
    for (let attempt = 0; attempt < 10 && answer.status === 503; attempt++) {
      answer = await steady('x + 1');
    }
    assert.equal(answer.json.status, 'Succeeded');
    assert.equal(answer.json.result.executionResult, 2, 'the session ran on while the database was down');
  });

  it('keeps every request’s audit entry through a database outage and a kill -9, in order, once each', async () => {
    const first = await startChild(env);
    children.push(first.process);
    const created = await call(first, 'PUT', `${armPath('pgaudit')}?${MGMT}`, interpreterPool({ ready: 1 }));
    assert.equal(created.status, 201, JSON.stringify(created.json));
    // Four clients, each sending one request after another: an execution (stored while the database
    // answers, 503 StoreBusy while it does not) and a token (made without the database).
    const answered: string[][] = [[], [], [], []];
    let load = true;
    const client = async (n: number) => {
      for (let i = 0; load; i++) {
        const answer =
          i % 2 === 0
            ? await call(
                first,
                'POST',
                `${poolPath('pgaudit')}/executions?${DATA}&identifier=client-${String(n)}`,
                { code: String(i) },
              )
            : await call(first, 'POST', '/sandpool/tokens', { expiresInSeconds: 60 });
        answered[n]!.push(answer.headers.get('x-ms-request-id')!);
      }
    };
    const clients = [0, 1, 2, 3].map(client);
    await new Promise((resolve) => setTimeout(resolve, 500));
    database.stop();
    let stopped = true;
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      load = false;
      await Promise.all(clients);
      // Every answered request's entry waits in the journal once its hook has run: let it settle.
      let waiting = -1;
      for (;;) {
        const ready = await call(first, 'GET', '/readyz');
        const now = ready.json.audit.waiting as number;
        if (now === waiting && now > 0) break;
        waiting = now;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.ok(waiting >= 8, `${String(waiting)} entries wait`);
      first.process.kill('SIGKILL');
      await new Promise((resolve) => first.process.once('exit', resolve));
      database.start();
      stopped = false;
    } finally {
      if (stopped) database.start();
    }

    const second = await startChild(env);
    children.push(second.process);
    const sent = answered.flat();
    let trail: string[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      trail = [];
      for (let after = 0; ;) {
        const page = await call(second, 'GET', `/sandpool/audit?$top=1000&$skipToken=${String(after)}`);
        if (page.status !== 200) break;
        const value = page.json.value as { id: string; requestId: string }[];
        trail.push(...value.map((entry) => entry.requestId));
        if (!page.json.nextLink) break;
        after = Number(value.at(-1)!.id);
      }
      if (sent.every((id) => trail.includes(id))) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const missing = sent.filter((id) => !trail.includes(id));
    assert.deepEqual(missing, [], `${String(missing.length)} of ${String(sent.length)} entries lost`);
    assert.equal(new Set(trail).size, trail.length, 'no entry twice');
    for (const [n, ids] of answered.entries()) {
      const positions = ids.map((id) => trail.indexOf(id));
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
        `client ${String(n)}’s entries in the order it sent them`,
      );
    }
    second.process.kill('SIGTERM');
    await new Promise((resolve) => second.process.once('exit', resolve));
  });
});
