/**
 * Shell pools end to end with real sandboxes: command lines through `POST executions` with
 * `shellCommand`, the exit status in `status`, time limits, and files shared with the files API.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  DATA,
  MGMT,
  armPath,
  createPool,
  interpreterPool,
  poolPath,
  startTestServer,
  type TestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

describe('Shell pools with real sandboxes', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('shell');
  assert.equal(
    await createPool(server, 'shells', interpreterPool({ max: 10, ready: 1, containerType: 'Shell' })),
    'Succeeded',
  );
  const at = (path: string, identifier: string) =>
    `${poolPath('shells')}/${path}?${DATA}&identifier=${encodeURIComponent(identifier)}`;
  const run = (identifier: string, shellCommand: string, extra: object = {}) =>
    server.request('POST', at('executions', identifier), { body: { shellCommand, ...extra } });

  it('runs a command line in /mnt/data and reports its exit status as a string', async () => {
    const ok = await run('exit-codes', 'pwd; echo out; echo err >&2');
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.status, '0');
    assert.equal(ok.json.result.stdout, '/mnt/data\nout\n');
    assert.equal(ok.json.result.stderr, 'err\n');
    assert.equal(ok.json.result.exitCode, 0);
    assert.equal(typeof ok.json.result.executionTimeInMilliseconds, 'number');

    const failed = await run('exit-codes', 'ls /no/such/dir; exit 3');
    assert.equal(failed.json.status, '3');
    assert.match(failed.json.result.stderr, /No such file or directory/);
    assert.equal(failed.json.error, undefined, 'a non-zero exit is a result, not an error');

    const signalled = await run('exit-codes', 'kill -TERM $$');
    assert.equal(signalled.json.status, String(128 + 15));
  });

  it('runs bash by default and sh when shellType says so', async () => {
    const bash = await run('shells', 'echo ${BASH_VERSION:+bash}');
    assert.equal(bash.json.result.stdout, 'bash\n');
    const sh = await run('shells', 'echo ${BASH_VERSION:-plain sh}', { shellType: 'sh' });
    assert.equal(sh.json.result.stdout, 'plain sh\n');
    const bad = await run('shells', 'true', { shellType: 'zsh' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'InvalidParameter');
  });

  it('keeps files between commands and shares them with the files API; shell state starts fresh', async () => {
    await run('files', 'echo hello > greeting.txt; cd /tmp; export LEFT=1');
    const content = await server.request('GET', at('files/greeting.txt/content', 'files'));
    assert.equal(content.text, 'hello\n');
    const form = new FormData();
    form.append('file', new Blob(['uploaded\n']), 'in.txt');
    const uploaded = await server.request('POST', at('files', 'files'), { raw: form });
    assert.equal(uploaded.status, 200, uploaded.text);
    const next = await run('files', 'cat in.txt; pwd; echo "LEFT=${LEFT:-unset}"');
    assert.equal(next.json.result.stdout, 'uploaded\n/mnt/data\nLEFT=unset\n');
  });

  it('stops a command at its time limit with status 124 and keeps the session usable', async () => {
    const slow = await run('slow', 'echo started; sleep 30 & sleep 30', { timeoutInSeconds: 1 });
    assert.equal(slow.status, 200, slow.text);
    assert.equal(slow.json.status, '124');
    assert.equal(slow.json.error.code, 'ExecutionTimeout');
    assert.equal(slow.json.result.stdout, 'started\n');
    const after = await run('slow', 'pgrep sleep || echo none');
    assert.equal(after.json.result.stdout, 'none\n', 'the whole process group is gone');
    assert.equal(after.headers.get('x-sandpool-session'), 'existing');
  });

  it('does not wait for background processes that keep running', async () => {
    const background = await run('background', 'sleep 60 > /dev/null 2>&1 & echo spawned');
    assert.equal(background.json.status, '0');
    assert.equal(background.json.result.stdout, 'spawned\n');
    const still = await run('background', 'pgrep -c sleep');
    assert.equal(still.json.result.stdout, '1\n');
  });

  it('cuts output to outputStreamsMaxLength', async () => {
    const flood = await run('flood', 'yes | head -c 100000', { outputStreamsMaxLength: 10 });
    assert.equal(flood.json.result.stdout, 'y\ny\ny\ny\ny\n');
    assert.equal(flood.json.result.outputStreamsMaxLength, 10);
  });

  it('answers async executions and GET executions/{id} in the Shell shape', async () => {
    const started = await run('async', 'echo later', { executionType: 'Asynchronous' });
    assert.equal(started.status, 202);
    const path = new URL(started.headers.get('operation-location')!).pathname;
    const query = new URL(started.headers.get('operation-location')!).search;
    for (let i = 0; i < 200; i++) {
      const polled = await server.request('GET', `${path}${query}`);
      if (polled.json.status !== 'Running') {
        assert.equal(polled.json.status, '0');
        assert.equal(polled.json.result.stdout, 'later\n');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.fail('the async shell execution did not finish');
  });

  it('refuses Python bodies, legacy routes and a container type change, each saying what to do', async () => {
    const python = await server.request('POST', at('executions', 'wrong'), { body: { code: 'print(1)' } });
    assert.equal(python.status, 400);
    assert.equal(python.json.error.code, 'InvalidParameter');
    assert.match(python.json.error.message, /shellCommand/);
    const legacy = await server.request(
      'POST',
      `${poolPath('shells')}/code/execute?api-version=2024-02-02-preview&identifier=wrong`,
      { body: { properties: { code: 'print(1)' } } },
    );
    assert.equal(legacy.status, 400);
    assert.match(legacy.json.error.message, /POST executions/);
    const changed = await server.request('PUT', `${armPath('shells')}?${MGMT}`, {
      body: interpreterPool({ containerType: 'PythonLTS' }),
    });
    assert.equal(changed.status, 400);
    assert.equal(changed.json.error.target, 'properties.containerType');
    const shown = await server.request('GET', `${armPath('shells')}?${MGMT}`);
    assert.equal(shown.json.properties.containerType, 'Shell');
  });
});
