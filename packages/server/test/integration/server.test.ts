/** The server end to end over HTTP, with real sandboxes: executions, files, sessions, pool limits. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import {
  DATA,
  MGMT,
  armPath,
  createPool,
  execute,
  poolPath,
  interpreterPool,
  startTestServer,
  type TestServer,
  until,
  withoutNodeLabel,
} from '../server-harness.js';
import { skipReason } from './harness.js';

describe('server with real sandboxes', { skip: skipReason }, async () => {
  const clock = { offsetMs: 0 };
  const server: TestServer = await startTestServer('server', { now: () => Date.now() + clock.offsetMs });
  assert.equal(await createPool(server, 'pyt', interpreterPool({ max: 16, ready: 2 })), 'Succeeded');
  const at = (path: string, identifier: string) =>
    `${poolPath('pyt')}/${path}?${DATA}&identifier=${encodeURIComponent(identifier)}`;

  it('keeps Python state per identifier and reports how the session was reached', async () => {
    const first = await execute(server, 'pyt', 'state-1', 'x = 6 * 7\nprint("hello")');
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.status, 'Succeeded');
    assert.equal(first.json.result.stdout, 'hello\n');
    assert.equal(first.headers.get('x-sandpool-session'), 'created-warm');
    for (const header of [
      'x-ms-allocation-time',
      'x-ms-preparation-time',
      'x-ms-execution-request-time',
      'x-ms-overall-execution-time',
    ]) {
      assert.match(first.headers.get(header) ?? '', /^\d+$/, header);
    }
    const second = await execute(server, 'pyt', 'state-1', 'x');
    assert.equal(second.json.result.executionResult, 42);
    assert.equal(second.headers.get('x-sandpool-session'), 'existing');
    assert.equal(second.headers.get('x-ms-session-guid'), first.headers.get('x-ms-session-guid'));
    const other = await execute(server, 'pyt', 'state-2', 'x');
    assert.equal(other.json.status, 'Failed');
    assert.equal(other.json.error.code, 'ExecutionError');
    assert.match(other.json.result.stderr, /NameError: name 'x' is not defined/);
  });

  it('returns matplotlib figures as PNG images', async () => {
    const response = await execute(
      server,
      'pyt',
      'plot',
      'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()',
    );
    const image = response.json.result.executionResult;
    assert.equal(image.type, 'image');
    assert.equal(image.format, 'png');
    assert.deepEqual([...Buffer.from(image.base64_data, 'base64').subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  });

  it('cuts output streams at outputStreamsMaxLength', async () => {
    const response = await execute(server, 'pyt', 'flood', 'print("a" * 10000)', {
      outputStreamsMaxLength: 100,
    });
    assert.equal(response.json.result.stdout.length, 100);
    assert.equal(response.json.result.outputStreamsMaxLength, 100);
  });

  it('interrupts code past its timeout and keeps the session', async () => {
    await execute(server, 'pyt', 'slow', 'kept = "yes"');
    const response = await execute(server, 'pyt', 'slow', 'import time\ntime.sleep(60)', {
      timeoutInSeconds: 1,
    });
    assert.equal(response.json.status, 'Failed');
    assert.equal(response.json.error.code, 'ExecutionTimeout');
    assert.equal((await execute(server, 'pyt', 'slow', 'kept')).json.result.executionResult, 'yes');
  });

  it('runs asynchronous executions and serves their result by id', async () => {
    const accepted = await server.request('POST', at('executions', 'async'), {
      body: { code: 'import time\ntime.sleep(0.3)\nprint("done")\n7 * 6', executionType: 'Asynchronous' },
      headers: { 'operation-id': 'my-op-1' },
    });
    assert.equal(accepted.status, 202);
    assert.equal(accepted.json.status, 'Running');
    assert.equal(accepted.headers.get('operation-id'), 'my-op-1');
    const location = accepted.headers.get('operation-location')!.slice(server.url.length);
    let final: any;
    await until('the async execution', async () => {
      final = (await server.request('GET', location)).json;
      return final.status !== 'Running';
    });
    assert.equal(final.status, 'Succeeded');
    assert.equal(final.result.stdout, 'done\n');
    assert.equal(final.result.executionResult, 42);
  });

  it('moves files in and out of /mnt/data and never follows a link the sandbox planted', async () => {
    const form = new FormData();
    form.append('file', new Blob(['a,b\n1,2\n']), '/mnt/data/input.csv');
    const uploaded = await server.request('POST', at('files', 'files'), { raw: form });
    assert.equal(uploaded.status, 200, uploaded.text);
    assert.equal(uploaded.json.name, 'input.csv');
    assert.equal(uploaded.json.sizeInBytes, 8);

    const code = [
      'import os, pandas as pd',
      'df = pd.read_csv("/mnt/data/input.csv")',
      'df.assign(c=df.a + df.b).to_csv("/mnt/data/output.csv", index=False)',
      'os.symlink("/etc/shadow", "/mnt/data/shadow")',
      'os.symlink("/", "/mnt/data/root")',
      'open("/mnt/data/input.csv", "a").write("3,4\\n")',
      'int(df.a.sum())',
    ].join('\n');
    const ran = await execute(server, 'pyt', 'files', code);
    assert.equal(ran.json.status, 'Succeeded', ran.text);
    assert.equal(ran.json.result.executionResult, 1);

    const listed = await server.request('GET', at('files', 'files'));
    assert.deepEqual(listed.json.value.map((f: { name: string }) => f.name).sort(), [
      'input.csv',
      'output.csv',
    ]);
    const content = await server.request('GET', at('files/output.csv/content', 'files'));
    assert.equal(content.text, 'a,b,c\n1,2,3\n');
    assert.equal(content.headers.get('content-type'), 'text/csv');

    const link = await server.request('GET', at('files/shadow/content', 'files'));
    assert.ok(link.status >= 400 && link.status < 500, `a planted link answers ${link.status}`);
    assert.ok(!link.text.includes('root:'), 'host files never leak');
    const throughDir = await server.request('GET', `${at('files/passwd/content', 'files')}&path=root%2Fetc`);
    assert.equal(throughDir.status, 400);
    assert.equal((await server.request('DELETE', at('files/input.csv', 'files'))).status, 204);
    assert.equal(
      (await execute(server, 'pyt', 'files', 'import os\nos.path.exists("/mnt/data/input.csv")')).json.result
        .executionResult,
      false,
    );
  });

  it('gives concurrent first requests for one identifier one session', async () => {
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => execute(server, 'pyt', 'burst', '1')),
    );
    const sandboxes = new Set(responses.map((r) => r.headers.get('x-ms-session-guid')));
    assert.equal(sandboxes.size, 1);
    assert.ok(responses.every((r) => r.status === 200));
    const created = responses.filter((r) => r.headers.get('x-sandpool-session')?.startsWith('created'));
    assert.ok(created.length >= 1);
  });

  it('serves the session, lists sessions and frees a slot on DELETE', async () => {
    await execute(server, 'pyt', 'listed', '1');
    const session = await server.request('GET', at('session', 'listed'));
    assert.equal(session.status, 200);
    assert.equal(session.json.identifier, 'listed');
    assert.ok(Date.parse(session.json.expireAt) - Date.parse(session.json.lastAccessedAt) === 300_000);
    const list = await server.request('GET', `${poolPath('pyt')}/listSessions?${DATA}`);
    assert.ok(
      list.json.sessions.some(
        (s: { identifier: string; etag: string }) =>
          s.identifier === 'listed' && s.etag === session.json.etag,
      ),
    );
    assert.equal((await server.request('DELETE', at('session', 'listed'))).status, 204);
    assert.equal((await server.request('GET', at('session', 'listed'))).status, 404);
    const fresh = await execute(server, 'pyt', 'listed', '1');
    assert.equal(fresh.headers.get('x-sandpool-previous-session-ended'), 'stopped');
  });

  it('serves the image’s runtime and packages as metadata', async () => {
    const metadata = await server.request('GET', `${poolPath('pyt')}/metadata?${DATA}`);
    assert.equal(metadata.json.runtimes[0].name, 'python');
    assert.ok(metadata.json.preInstalledPackages.some((p: { name: string }) => p.name === 'numpy'));
  });

  it('ends a session whose sandbox ran out of memory and says so to the next request', async () => {
    const lost = await execute(server, 'pyt', 'hog', 'hog = b"x" * (1024 * 1024 * 1024)');
    assert.equal(lost.json.status, 'Failed');
    assert.equal(lost.json.error.code, 'SessionLost');
    const next = await execute(server, 'pyt', 'hog', '"fresh"');
    assert.equal(next.json.result.executionResult, 'fresh');
    assert.equal(next.headers.get('x-sandpool-previous-session-ended'), 'oom');
  });

  it('is ready, and its metrics show what happened: starts, a timeout, an out-of-memory end', async () => {
    assert.deepEqual((await server.request('GET', '/readyz', { key: null })).json, { status: 'ready' });
    const ready = await server.request('GET', '/readyz');
    assert.equal(ready.status, 200, ready.text);
    assert.ok(ready.json.checks.some((c: any) => c.name === 'runtime' && c.ok));
    const text = withoutNodeLabel((await server.request('GET', '/metrics')).text);
    const value = (series: string) =>
      Number(
        text
          .split('\n')
          .find((line) => line.startsWith(`${series} `))
          ?.split(' ')[1] ?? NaN,
      );
    assert.ok(value('sandpool_sandbox_start_seconds_count{pool="tests/pyt"}') >= 2);
    assert.ok(value('sandpool_sandbox_start_seconds_sum{pool="tests/pyt"}') > 0);
    assert.ok(
      value('sandpool_executions_total{pool="tests/pyt",container_type="PythonLTS",status="timeout"}') >= 1,
    );
    assert.ok(value('sandpool_session_ends_total{pool="tests/pyt",reason="oom"}') >= 1);
    // Each live interpreter holds some MiB; their cgroups say how many.
    assert.ok(value('sandpool_pool_memory_bytes{pool="tests/pyt"}') > 10 * 1024 * 1024);
    assert.ok(value('sandpool_pool_live_cpu_seconds{pool="tests/pyt"}') > 0);
  });

  it('starts a pool’s sessions with its preload list imported, its names unbound', async () => {
    const body = interpreterPool({ max: 2, ready: 1 });
    const preloaded = { ...body, properties: { ...body.properties, preloadModules: ['numpy', 'pandas'] } };
    assert.equal(await createPool(server, 'pre', preloaded), 'Succeeded');
    const pool = await server.request('GET', `${armPath('pre')}?${MGMT}`);
    assert.deepEqual(pool.json.properties.preloadModules, ['numpy', 'pandas']);
    const probe = 'import sys\n("pandas" in sys.modules, "numpy" in sys.modules, "pandas" in globals())';
    const first = await execute(server, 'pre', 'ds-1', probe);
    assert.equal(first.headers.get('x-sandpool-session'), 'created-warm');
    assert.equal(first.json.result.executionResult, '(True, True, False)');
    const used = await execute(
      server,
      'pre',
      'ds-1',
      'import pandas as pd\nint(pd.DataFrame({"a": [1, 2]})["a"].sum())',
    );
    assert.equal(used.json.result.executionResult, 3);
    // A pool that names no list gets the data stack where its sandboxes are forked (this server's
    // default), and shows no list; an empty list imports nothing ahead.
    const named = await server.request('GET', `${armPath('pyt')}?${MGMT}`);
    assert.equal(named.json.properties.preloadModules, undefined);
    const byDefault = await execute(server, 'pyt', 'default-preload', probe);
    assert.equal(byDefault.json.result.executionResult, '(True, True, False)');
    const none = { ...body, properties: { ...body.properties, preloadModules: [] } };
    assert.equal(await createPool(server, 'nopre', none), 'Succeeded');
    assert.deepEqual(
      (await server.request('GET', `${armPath('nopre')}?${MGMT}`)).json.properties.preloadModules,
      [],
    );
    const plain = await execute(server, 'nopre', 'no-preload', probe);
    assert.equal(plain.json.result.executionResult, '(False, False, False)');

    const broken = { ...body, properties: { ...body.properties, preloadModules: ['no_such_module_xyz'] } };
    assert.equal(await createPool(server, 'badpre', broken), 'Failed');
    const failed = await server.request('GET', `${armPath('badpre')}?${MGMT}`);
    assert.match(
      failed.json.properties.sessionStatus.lastStartError,
      /preload of no_such_module_xyz failed: ModuleNotFoundError: No module named 'no_such_module_xyz'/,
    );
    for (const name of ['pre', 'nopre', 'badpre']) {
      assert.ok(
        [200, 202, 204].includes((await server.request('DELETE', `${armPath(name)}?${MGMT}`)).status),
      );
    }
  });

  it('records what an ended session used, read from its cgroup', async () => {
    const burn =
      'import time\nblock = bytearray(150 * 1024 * 1024)\nend = time.time() + 1.5\nwhile time.time() < end: pass';
    assert.equal((await execute(server, 'pyt', 'costly', burn)).json.status, 'Succeeded');
    await server.request('DELETE', at('session', 'costly'));
    const ended = await server.request(
      'GET',
      `${armPath('pyt')}/events?${MGMT}&type=ended&identifier=costly`,
    );
    const usage = ended.json.value[0].details.usage;
    assert.ok(usage.cpuSeconds >= 0.2, `cpuSeconds ${usage.cpuSeconds}`);
    assert.ok(usage.peakMemoryBytes >= 150 * 1024 * 1024, `peakMemoryBytes ${usage.peakMemoryBytes}`);
    assert.ok(usage.lifetimeSeconds >= 1.5);
    const text = withoutNodeLabel((await server.request('GET', '/metrics')).text);
    assert.match(text, /^sandpool_session_cpu_seconds_total\{pool="tests\/pyt"\} (0\.[2-9]|[1-9])/m);
    assert.match(text, /^sandpool_session_idle_seconds_count\{pool="tests\/pyt"\} [1-9]/m);
  });

  it('ends idle sessions after the cooldown (injected clock)', async () => {
    await execute(server, 'pyt', 'idle', 'state = 1');
    clock.offsetMs += 301_000;
    await until(
      'the reaper',
      async () => (await server.request('GET', at('session', 'idle'))).status === 404,
    );
    const next = await execute(server, 'pyt', 'idle', 'state');
    assert.equal(next.headers.get('x-sandpool-previous-session-ended'), 'cooldown');
    assert.equal(next.json.error.code, 'ExecutionError', 'the state went with the session');
  });
});

describe('pool limits, updates and deletion with real sandboxes', { skip: skipReason }, async () => {
  const server = await startTestServer('limits');
  await createPool(server, 'small', interpreterPool({ max: 2, ready: 1 }));
  const status = async () =>
    (await server.request('GET', `${armPath('small')}?${MGMT}`)).json.properties.sessionStatus;

  it('answers 429 when full and refills after a session ends', async () => {
    assert.equal((await execute(server, 'small', 'a', '1')).status, 200);
    assert.equal((await execute(server, 'small', 'b', '1')).status, 200);
    const full = await execute(server, 'small', 'c', '1');
    assert.equal(full.status, 429);
    assert.equal(full.json.error.code, 'SessionPoolFull');
    await server.request('DELETE', `${poolPath('small')}/session?${DATA}&identifier=a`);
    await until('the warm set to refill', async () => (await status()).readySessionCount === 1);
    assert.equal(
      (await execute(server, 'small', 'c', '1')).headers.get('x-sandpool-session'),
      'created-warm',
    );
  });

  it('replaces ready sandboxes on a template change and keeps allocated sessions', async () => {
    await execute(server, 'small', 'b', 'kept = True');
    await server.request('DELETE', `${poolPath('small')}/session?${DATA}&identifier=c`);
    await until('a ready sandbox', async () => (await status()).readySessionCount === 1);
    const readyBefore = (
      await server.server.store.listSessions(armPath('small').toLowerCase(), ['ready'])
    )[0]!.id;
    const patched = await server.request('PATCH', `${armPath('small')}?${MGMT}`, {
      body: { properties: { sessionResources: { cpu: 0.5 } } },
    });
    assert.equal(patched.status, 202);
    await until('the new warm set', async () => {
      const ready = await server.server.store.listSessions(armPath('small').toLowerCase(), ['ready']);
      return ready.length === 1 && ready[0]!.id !== readyBefore;
    });
    assert.equal((await execute(server, 'small', 'b', 'kept')).json.result.executionResult, true);
  });

  it('drains a deleted pool, and forgets its sessions with it', async () => {
    const id = armPath('small').toLowerCase();
    const live = await server.server.store.listSessions(id, ['ready', 'allocated']);
    assert.ok(live.length > 0, 'the pool had sandboxes to drain');
    const deleted = await server.request('DELETE', `${armPath('small')}?${MGMT}`);
    assert.equal(deleted.status, 202);
    await until(
      'the delete',
      async () =>
        (await server.request('GET', deleted.headers.get('location')!.slice(server.url.length))).status ===
        204,
    );
    assert.deepEqual(await server.server.store.listSessions(id), [], 'its records went with it');
    for (const session of live) {
      assert.ok(!existsSync(join(server.config.paths.stateDir, session.id)), `sandbox ${session.id} is gone`);
    }
  });
});
