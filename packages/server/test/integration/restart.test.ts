/**
 * Restart without loss: the server process is killed with SIGKILL and started again. Live sessions
 * keep their Python state, a sandbox killed while the server was down is recorded with its reason,
 * and nothing is orphaned.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { after, describe, it } from 'node:test';

import { runCommand } from '../../src/sandbox/command.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { OciDriver } from '../../src/sandbox/oci/oci-driver.js';
import {
  ADMIN_KEY,
  DATA,
  MGMT,
  armPath,
  eventually,
  poolPath,
  interpreterPool,
  removeServerState,
  testConfig,
  testServerEnv,
} from '../server-harness.js';
import { buildAppImage, startRegistry } from '../registry.js';
import { SANDBOX_STARTS, skipReason } from './harness.js';
import { call, startChild, type Child } from '../child-server.js';

const run = (child: Child, identifier: string, code: string) =>
  call(child, 'POST', `${poolPath('keep')}/executions?${DATA}&identifier=${identifier}`, { code });

// Interpreter sandboxes started by runc, and forked from a zygote, which outlives the server as conmon does.
for (const sandboxStart of SANDBOX_STARTS) {
  describe(`restart without loss (${sandboxStart.name})`, { skip: skipReason }, () => {
    const home = mkdtempSync(`/var/tmp/sandpool-test-restart-${sandboxStart.name}-`);
    const env = testServerEnv(`restart-${sandboxStart.name}`, home, sandboxStart.env);
    const config = testConfig(env);
    const children: ChildProcess[] = [];
    after(async () => {
      for (const child of children) child.kill('SIGKILL');
      await removeServerState(config);
    });

    it('keeps live sessions across kill -9 of the server and records what died meanwhile', async () => {
      const first = await startChild(env);
      children.push(first.process);
      const created = await call(
        first,
        'PUT',
        `${armPath('keep')}?${MGMT}`,
        interpreterPool({ max: 4, ready: 1 }),
      );
      assert.equal(created.status, 201);
      const kept = await run(first, 'kept', 'counter = 41');
      assert.equal(kept.json.status, 'Succeeded');
      const doomed = await run(first, 'doomed', 'x = 1');
      const doomedSandbox = doomed.headers.get('x-ms-session-guid')!;

      first.process.kill('SIGKILL');
      await new Promise((resolve) => first.process.once('exit', resolve));

      // While no server runs, something on the host kills one sandbox.
      const driver = OciDriver.fromConfig(config);
      const state = await driver.inspect(doomedSandbox);
      if (state.status !== 'running') assert.fail(`the sandbox should run, it is ${state.status}`);
      process.kill(state.pid, 'SIGKILL');

      const second = await startChild(env);
      children.push(second.process);
      const again = await run(second, 'kept', 'counter + 1');
      assert.equal(again.json.result.executionResult, 42, 'the Python state survived');
      assert.equal(again.headers.get('x-ms-session-guid'), kept.headers.get('x-ms-session-guid'));
      assert.equal(again.headers.get('x-sandpool-session'), 'existing');

      const replaced = await run(second, 'doomed', 'x');
      assert.equal(replaced.headers.get('x-sandpool-previous-session-ended'), 'killed');
      assert.equal(
        replaced.json.error.code,
        'ExecutionError',
        'the killed session’s state is gone, and said so',
      );

      // Nothing orphaned: once refills settle, what runs on the host is exactly what the store says is live.
      for (let settled = false; !settled; await new Promise((resolve) => setTimeout(resolve, 50))) {
        const status = (await call(second, 'GET', `${armPath('keep')}?${MGMT}`)).json.properties
          .sessionStatus;
        settled = status.startingSessionCount === 0 && status.readySessionCount === 1;
      }
      const store = await SqliteStore.open(config.paths.database);
      assert.equal(store.integrityCheck(), 'ok');
      const live = await store.listSessions(armPath('keep').toLowerCase(), ['ready', 'allocated']);
      await eventually(async () =>
        assert.deepEqual((await driver.list()).map((s) => s.id).sort(), live.map((s) => s.id).sort()),
      );
      const events = await store.listEvents(armPath('keep').toLowerCase(), { limit: 1000 });
      assert.ok(
        events.some((e) => e.type === 'ended' && e.sessionId === doomedSandbox && e.reason === 'killed'),
      );
      await store.close();

      second.process.kill('SIGTERM');
      const code = await new Promise((resolve) => second.process.once('exit', resolve));
      assert.equal(code, 0, 'a graceful shutdown exits 0');
    });
  });
}

describe('restart without loss: custom containers', { skip: skipReason }, async () => {
  const registry = await startRegistry();
  await registry.push(await buildAppImage(), 'team/app:1');
  const home = mkdtempSync('/var/tmp/sandpool-test-restart-custom-');
  chmodSync(home, 0o711);
  const env = testServerEnv('restart-custom', home, {
    SANDPOOL_INSECURE_REGISTRIES: JSON.stringify([registry.host]),
  });
  const config = testConfig(env);
  const children: ChildProcess[] = [];
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await removeServerState(config);
  });
  const visit = (child: Child, identifier: string, path: string) =>
    fetch(`${child.url}${poolPath('web')}${path}?identifier=${identifier}`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });

  it('reaches a live container session again after kill -9 of the server, its port bridge reopened', async () => {
    const first = await startChild(env);
    children.push(first.process);
    const created = await call(first, 'PUT', `${armPath('web')}?${MGMT}`, {
      location: 'local',
      properties: {
        containerType: 'CustomContainer',
        scaleConfiguration: { maxConcurrentSessions: 2, readySessionInstances: 1 },
        customContainerTemplate: {
          containers: [{ image: `${registry.host}/team/app:1` }],
          ingress: { targetPort: 8080 },
        },
      },
    });
    assert.equal(created.status, 201);
    let answer = await visit(first, 'kept', '/cgi-bin/echo');
    for (let i = 0; answer.status === 503 && i < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      answer = await visit(first, 'kept', '/cgi-bin/echo');
    }
    assert.equal(answer.status, 200, await answer.text());
    const before = await call(first, 'GET', `${poolPath('web')}/session?${DATA}&identifier=kept`);

    first.process.kill('SIGKILL');
    await new Promise((resolve) => first.process.once('exit', resolve));
    // While no server runs, the session's port bridge dies too.
    const bridges = await runCommand('pkill', [
      '-f',
      `${config.paths.stateDir}/${before.json.etag as string}/ports/`,
    ]);
    assert.equal(bridges.code, 0, 'the bridge outlived the server and was there to kill');

    const second = await startChild(env);
    children.push(second.process);
    const resumed = await call(second, 'GET', `${poolPath('web')}/session?${DATA}&identifier=kept`);
    assert.equal(resumed.json.etag, before.json.etag, 'the same sandbox');
    const again = await visit(second, 'kept', '/');
    assert.equal(again.status, 200);
    assert.equal(await again.text(), 'hello from the app\n');
    second.process.kill('SIGTERM');
    await new Promise((resolve) => second.process.once('exit', resolve));
  });
});
