/**
 * A server on PostgreSQL, end to end: real sandboxes, a real PostgreSQL server (test/postgres-server),
 * `sandpool serve` as a child process. State lives in the database: a server killed with SIGKILL and
 * started again takes up its sessions from there, and a database outage answers 503 StoreBusy
 * while the sessions already running keep running.
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
});
