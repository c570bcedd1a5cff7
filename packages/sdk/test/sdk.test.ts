/**
 * The SDK against a real Sandpool server with real sandboxes: pools through their long-running
 * operations, Python and Shell sessions, files, background processes, typed errors, keys and tokens,
 * and the examples.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';

import { ApiError, SandpoolClient } from '@sandpool/sdk';

import { skipReason } from '../../server/test/integration/harness.js';
import {
  armPath,
  ADMIN_KEY,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  startTestServer,
  type TestServer,
} from '../../server/test/server-harness.js';

const run = promisify(execFile);
const examples = fileURLToPath(new URL('../examples/', import.meta.url));

describe('SDK against a real server', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('sdk');
  const client = new SandpoolClient({
    endpoint: server.url,
    credential: ADMIN_KEY,
    subscription: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    pollIntervalMs: 50,
  });

  it('creates, lists, updates and reads pools, waiting for their operations', async () => {
    const created = await client.pools.createOrUpdate('sdkpython', { maxSessions: 4, readySessions: 1 });
    assert.equal(created.properties.provisioningState, 'Succeeded');
    assert.equal(created.properties.containerType, 'PythonLTS');
    await client.pools.createOrUpdate('sdkshell', {
      containerType: 'Shell',
      maxSessions: 2,
      readySessions: 1,
    });
    const names = (await client.pools.list()).map((p) => p.name).sort();
    assert.deepEqual(names, ['sdkpython', 'sdkshell']);
    const updated = await client.pools.update('sdkpython', {
      properties: { scaleConfiguration: { maxConcurrentSessions: 6 } },
    });
    assert.deepEqual(updated.properties.scaleConfiguration, {
      maxConcurrentSessions: 6,
      readySessionInstances: 1,
    });
  });

  it('runs Python with state per identifier, and moves files', async () => {
    const session = client.pool('sdkpython').session('sdk-user-1');
    await session.execute('x = 41');
    const result = await session.execute('print("hi")\nx + 1');
    assert.equal(result.status, 'Succeeded');
    assert.ok(result.result);
    assert.equal(result.result.executionResult, 42);
    assert.equal(result.result.stdout, 'hi\n');

    const uploaded = await session.files.upload('in.txt', new TextEncoder().encode('abc'));
    assert.equal(uploaded.sizeInBytes, 3);
    await session.files.upload('deep.txt', 'xyz', { path: 'sub' });
    assert.deepEqual(
      (await session.files.list({ recursive: true })).map((f) => `${f.directory}/${f.name}`).sort(),
      ['/mnt/data/in.txt', '/mnt/data/sub', '/mnt/data/sub/deep.txt'],
    );
    assert.equal(new TextDecoder().decode(await session.files.download('deep.txt', { path: 'sub' })), 'xyz');
    assert.equal((await session.files.get('in.txt')).type, 'File');
    await session.files.delete('in.txt');
    await assert.rejects(session.files.get('in.txt'), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 404);
      assert.equal(error.code, 'FileNotFound');
      assert.ok(error.requestId, 'the server’s request id travels with the error');
      return true;
    });
  });

  it('runs shell command lines and reads the exit status', async () => {
    const session = client.pool('sdkshell').session('sdk-shell');
    const listed = await session.run('echo hello; exit 4');
    assert.equal(listed.status, '4');
    assert.ok(listed.result);
    assert.equal(listed.result.exitCode, 4);
    assert.equal(listed.result.stdout, 'hello\n');
    const sh = await session.run('echo ${BASH_VERSION:-sh}', { shellType: 'sh' });
    assert.equal(sh.result?.stdout, 'sh\n');
    await session.stop();
  });

  it('runs a background process: starts, lists, writes stdin, follows output, kills', async () => {
    const session = client.pool('sdkshell').session('sdk-processes');
    const cat = await session.processes.start('cat; echo done >&2');
    assert.equal(cat.status, 'Running');
    await session.processes.write(cat.pid, 'one\n');
    await session.processes.write(cat.pid, 'two\n', { close: true });
    let output = await session.processes.output(cat.pid);
    while (output.process.status === 'Running') output = await session.processes.output(cat.pid);
    assert.equal(output.stdout.text, 'one\ntwo\n');
    assert.equal(output.stderr.text, 'done\n');
    assert.equal(output.process.exitCode, 0);
    const rest = await session.processes.output(cat.pid, { stdoutOffset: 4, maxChars: 2 });
    assert.equal(rest.stdout.text, 'tw');
    const sleeper = await session.processes.start('sleep 60', { shellType: 'sh' });
    assert.equal((await session.processes.kill(sleeper.pid, 'KILL')).pid, sleeper.pid);
    await assert.rejects(session.processes.output(4_000_000), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.code, 'ProcessNotFound');
      return true;
    });
    assert.deepEqual(
      (await session.processes.list()).map((p) => p.pid),
      [cat.pid, sleeper.pid],
    );
    await session.stop();
  });

  it('streams output as the code writes it, to callbacks and as an async iterator', async () => {
    const session = client.pool('sdkpython').session('sdk-stream');
    // The code waits for a file the test uploads only once the first line has arrived.
    const code =
      'import os, time\nprint("ready")\nwhile not os.path.exists("go"):\n    time.sleep(0.05)\nprint("done")\n7 * 6';
    const lines: string[] = [];
    const execution = await session.execute(code, {
      timeoutInSeconds: 60,
      onStdout: (text) => {
        lines.push(text);
        if (text.includes('ready')) void session.files.upload('go', new Blob(['go']));
      },
    });
    assert.equal(lines.join(''), 'ready\ndone\n');
    assert.equal(execution.result?.executionResult, 42);

    const kinds: string[] = [];
    const shell = client.pool('sdkshell').session('sdk-stream-shell');
    for await (const event of shell.stream('echo out; echo err >&2', { shellCommand: true })) {
      kinds.push(event.type);
      if (event.type === 'result') assert.equal(event.execution.status, '0');
    }
    // The two streams are read apart: their order between them is not kept; the result comes last.
    assert.deepEqual(kinds.slice(0, 2).sort(), ['stderr', 'stdout']);
    assert.equal(kinds[2], 'result');
    await shell.stop();
    await session.stop();
  });

  it('starts executions asynchronously and reads them by id; an operation-id makes retries idempotent', async () => {
    const session = client.pool('sdkpython').session('sdk-async');
    const started = await session.execute('import time\ntime.sleep(0.2)\n7', { async: true });
    assert.equal(started.status, 'Running');
    let finished = await session.getExecution(started.id);
    while (finished.status === 'Running') {
      await new Promise((resolve) => setTimeout(resolve, 50));
      finished = await session.getExecution(started.id);
    }
    assert.equal(finished.status, 'Succeeded');
    const first = await session.execute('import random\nrandom.random()', { operationId: 'op-1' });
    const again = await session.execute('import random\nrandom.random()', { operationId: 'op-1' });
    assert.equal(again.result?.executionResult, first.result?.executionResult);
  });

  it('lists sessions, reads one, stops it, and serves metadata', async () => {
    const pool = client.pool('sdkpython');
    const session = pool.session('sdk-listed');
    await session.execute('1');
    assert.ok((await pool.sessions()).some((s) => s.identifier === 'sdk-listed'));
    assert.equal((await session.info())?.identifier, 'sdk-listed');
    await session.stop();
    assert.equal(await session.info(), undefined);
    const [ended] = await client.pools.events('sdkpython', { types: ['ended'], identifier: 'sdk-listed' });
    assert.ok(ended);
    assert.equal(ended.reason, 'stopped');
    assert.equal(typeof (ended.details?.usage as { lifetimeSeconds?: unknown }).lifetimeSeconds, 'number');
    const stops = await client.audit.list({ action: 'session.stop', pool: 'sdkpython' });
    assert.ok(stops.some((entry) => entry.identifier === 'sdk-listed' && entry.status === 204));
    const metadata = await pool.metadata();
    assert.equal(metadata.containerType, 'PythonLTS');
    assert.ok(metadata.preInstalledPackages.some((p) => p.name.toLowerCase() === 'numpy'));
  });

  it('follows events live, reads the timeline and says who the credential is', async () => {
    const abort = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      for await (const event of client.pools.watchEvents('sdkpython', {
        types: ['allocated', 'ended'],
        signal: abort.signal,
      })) {
        if (event.identifier !== 'sdk-watched') continue;
        seen.push(`${event.type}${event.reason ? `:${event.reason}` : ''}`);
        if (seen.length === 2) abort.abort();
      }
    })();
    const session = client.pool('sdkpython').session('sdk-watched');
    await session.execute('1');
    await session.stop();
    await following;
    assert.deepEqual(seen, ['allocated', 'ended:stopped']);

    const timeline = await client.pools.timeline('sdkpython', { minutes: 10 });
    assert.equal(timeline.points.length, 10);
    assert.ok(timeline.points.reduce((n, p) => n + p.allocations, 0) >= 1);
    const me = await client.whoami();
    assert.ok(me.roles.includes('Contributor'));
  });

  it('throws typed errors with the server’s code and target', async () => {
    await assert.rejects(
      client.pool('sdkpython').session('bad id').execute('1'),
      (error: unknown) =>
        error instanceof ApiError && error.code === 'InvalidIdentifier' && error.status === 400,
    );
    await assert.rejects(
      client.pools.createOrUpdate('sdkpython', { containerType: 'Shell' }),
      (error: unknown) => error instanceof ApiError && error.target === 'properties.containerType',
    );
  });

  it('surfaces a full pool as SessionPoolFull after retrying with backoff', async () => {
    const patient = new SandpoolClient({
      endpoint: server.url,
      credential: ADMIN_KEY,
      subscription: SUBSCRIPTION,
      resourceGroup: RESOURCE_GROUP,
      retry: { retries: 2, baseDelayMs: 20 },
    });
    const shell = patient.pool('sdkshell');
    await shell.session('fill-1').run('true');
    await shell.session('fill-2').run('true');
    const started = Date.now();
    await assert.rejects(shell.session('fill-3').run('true'), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 429);
      assert.equal(error.code, 'SessionPoolFull');
      return true;
    });
    // Retry-After is 1 s, so two retries wait at least 2 s in all.
    assert.ok(Date.now() - started >= 2000, 'the retries honoured Retry-After');
    await shell.session('fill-1').stop();
    await shell.session('fill-2').stop();
  });

  it('creates and revokes keys, and works with a token credential that refreshes', async () => {
    const key = await client.keys.create({
      name: 'worker',
      roles: [`SessionExecutor:${armPath('sdkpython')}`],
    });
    assert.match(key.key, /^sp_/);
    assert.ok((await client.keys.list()).some((k) => k.id === key.id));
    let minted = 0;
    const worker = new SandpoolClient({
      endpoint: server.url,
      subscription: SUBSCRIPTION,
      resourceGroup: RESOURCE_GROUP,
      credential: async () => {
        minted++;
        return (
          await client.tokens.create({
            roles: [`SessionExecutor:${armPath('sdkpython')}`],
            expiresInSeconds: 60,
          })
        ).token;
      },
    });
    assert.equal((await worker.pool('sdkpython').session('w').execute('2 + 2')).result?.executionResult, 4);
    assert.ok(minted >= 1);
    await assert.rejects(
      worker.pools.list(),
      (error: unknown) => error instanceof ApiError && error.status === 403,
    );
    const revoked = await client.keys.revoke(key.id);
    assert.ok(revoked.revokedAt);
  });

  it('runs the README examples unchanged', async () => {
    const env = {
      ...process.env,
      SANDPOOL_ENDPOINT: server.url,
      SANDPOOL_API_KEY: ADMIN_KEY,
      SANDPOOL_SUBSCRIPTION: SUBSCRIPTION,
      SANDPOOL_RESOURCE_GROUP: RESOURCE_GROUP,
    };
    const quickstart = await run(process.execPath, ['--import', 'tsx', `${examples}quickstart.ts`], {
      env: { ...env, SANDPOOL_POOL: 'sdkpython' },
    });
    assert.match(quickstart.stdout, /stdout: hello from the sandbox\nvalue: 42\nsum: 6\n/);
    assert.match(quickstart.stdout, /refused: InvalidParameter timeoutInSeconds\nstopped/);
    const shell = await run(process.execPath, ['--import', 'tsx', `${examples}shell.ts`], {
      env: { ...env, SANDPOOL_POOL: 'sdkshell' },
    });
    assert.match(
      shell.stdout,
      /sum: 15 exit: 0\nexit: 1 stderr: cat: nothing.txt: No such file or directory/,
    );
  });

  it('deletes pools and waits until they are gone', async () => {
    await client.pools.delete('sdkshell');
    await assert.rejects(
      client.pools.get('sdkshell'),
      (error: unknown) => error instanceof ApiError && error.status === 404,
    );
    await client.pools.delete('sdkshell');
  });
});
