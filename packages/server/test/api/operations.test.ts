/**
 * Metrics, readiness and what the dashboard reads (the timeline, the principal, live session use)
 * through the API, with an in-memory launcher so failures can be staged.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FAKE_USAGE, FakeLauncher } from '../fake-launcher.js';
import {
  DATA,
  MGMT,
  armPath,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
  until,
  withoutNodeLabel,
} from '../server-harness.js';

/** The value of one sample in a Prometheus exposition, e.g. `name{a="b"}`. */
function sample(text: string, series: string): number | undefined {
  const line = withoutNodeLabel(text)
    .split('\n')
    .find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics and readiness', async () => {
  const launcher = new FakeLauncher();
  const server = await startTestServer('operations', { launcher });
  await createPool(server, 'metered', interpreterPool({ max: 2, ready: 1 }));
  const pool = 'pool="tests/metered"';

  it('counts allocations, executions, ends and rejections with bounded labels', async () => {
    // The warm set's refill after the first claim is held, so the second identifier starts cold.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let refills = 0;
    launcher.gate = () => (refills++ === 0 ? held : Promise.resolve());
    await execute(server, 'metered', 'secret-identifier-1', 'one');
    await execute(server, 'metered', 'secret-identifier-1', 'two');
    await execute(server, 'metered', 'secret-identifier-2', 'three');
    release();
    launcher.gate = () => Promise.resolve();
    const full = await execute(server, 'metered', 'secret-identifier-3', 'four');
    assert.equal(full.status, 429);
    await server.request('DELETE', `${poolPath('metered')}/session?${DATA}&identifier=secret-identifier-2`);

    const scrape = await server.request('GET', '/metrics');
    assert.equal(scrape.status, 200);
    assert.match(scrape.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = withoutNodeLabel(scrape.text);
    assert.match(
      scrape.text,
      /^sandpool_sessions\{[^}]*node="[^"]+"[^}]*\} 1$/m,
      'every series names its node',
    );
    assert.equal(
      sample(text, `sandpool_executions_total{${pool},container_type="PythonLTS",status="succeeded"}`),
      3,
    );
    assert.equal(sample(text, `sandpool_allocation_seconds_count{${pool},launch="warm"}`), 1);
    assert.equal(sample(text, `sandpool_allocation_seconds_count{${pool},launch="cold"}`), 1);
    assert.equal(sample(text, `sandpool_pool_full_rejections_total{${pool}}`), 1);
    assert.equal(sample(text, `sandpool_session_ends_total{${pool},reason="stopped"}`), 1);
    assert.equal(sample(text, `sandpool_sessions{${pool},state="allocated"}`), 1);
    assert.equal(sample(text, `sandpool_pool_max_sessions{${pool},container_type="PythonLTS"}`), 2);
    assert.equal(sample(text, `sandpool_pool_pressure{${pool}}`), 0.5);
    assert.ok((sample(text, `sandpool_sandbox_start_seconds_count{${pool}}`) ?? 0) >= 2);
    assert.ok(
      text.includes(
        'sandpool_http_request_seconds_count{method="POST",route="/subscriptions/:subscription/resourceGroups/:resourceGroup/sessionPools/:pool/executions",status="200"}',
      ),
      'requests are labelled by route template',
    );
    assert.ok(!text.includes('secret-identifier'), 'identifiers never become labels');
    assert.ok(text.includes('sandpool_process_resident_memory_bytes'), 'process metrics are there too');
    // One allocated session and one ready sandbox live, each using what the fake reports.
    assert.equal(sample(text, `sandpool_pool_memory_bytes{${pool}}`), 2 * FAKE_USAGE.memoryBytes);
    assert.equal(sample(text, `sandpool_pool_live_cpu_seconds{${pool}}`), 2 * FAKE_USAGE.cpuSeconds);
  });

  it('keeps the last hour minute by minute for the dashboard', async () => {
    const answer = await server.request('GET', `${armPath('metered')}/timeline?${MGMT}`);
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json.bucketSeconds, 60);
    const points: any[] = answer.json.points;
    assert.equal(points.length, 60, 'every minute of the hour, empty ones included');
    const total = (pick: (p: any) => number) => points.reduce((n: number, p) => n + pick(p), 0);
    // What the first test did (a minute may have turned between its requests, so summed).
    assert.equal(
      total((p) => p.allocations),
      2,
    );
    assert.equal(
      total((p) => p.coldAllocations),
      1,
    );
    assert.equal(
      total((p) => p.executions.succeeded),
      3,
    );
    assert.equal(
      total((p) => p.poolFullRejections),
      1,
    );
    assert.equal(
      total((p) => p.ends.stopped ?? 0),
      1,
    );
    assert.ok(points.some((p) => typeof p.allocationP99Ms === 'number'));
    assert.ok(Date.parse(points.at(-1).at) <= Date.now());

    const short = await server.request('GET', `${armPath('metered')}/timeline?${MGMT}&minutes=5`);
    assert.equal(short.json.points.length, 5);
    const bad = await server.request('GET', `${armPath('metered')}/timeline?${MGMT}&minutes=0`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'InvalidParameter');
    const missing = await server.request('GET', `${armPath('nosuchpool')}/timeline?${MGMT}`);
    assert.equal(missing.status, 404);
  });

  it('tells a credential who it is, and lists sessions with their runs and live use', async () => {
    const me = await server.request('GET', '/sandpool/whoami');
    assert.equal(me.status, 200);
    assert.equal(me.json.principal, 'key:0123456789ab');
    assert.ok(me.json.roles.includes('Contributor'));
    assert.equal(typeof me.json.defaultSubscription, 'string');
    assert.equal((await server.request('GET', '/sandpool/whoami', { key: null })).status, 401);

    const list = await server.request('GET', `${poolPath('metered')}/listSessions?${DATA}`);
    const [session] = list.json.sessions;
    assert.equal(session.identifier, 'secret-identifier-1');
    assert.equal(session.executions, 2);
    assert.deepEqual(session.usage, FAKE_USAGE);
  });

  it('lets a Contributor stop a session, and a Reader not', async () => {
    const key = async (roles: string[]) =>
      (await server.request('POST', '/sandpool/apiKeys', { body: { name: roles[0]!.split(':')[0], roles } }))
        .json.key;
    const operator = await key([`Contributor:${armPath('metered')}`]);
    const reader = await key([`Reader:${armPath('metered')}`]);
    const stop = (who: string) =>
      server.request('DELETE', `${poolPath('metered')}/session?${DATA}&identifier=secret-identifier-1`, {
        key: who,
      });
    const refused = await stop(reader);
    assert.equal(refused.status, 403);
    assert.match(refused.json.error.message, /sessions\/stop.*SessionExecutor or Contributor/);
    assert.equal((await stop(operator)).status, 204);
    const after = await server.request('GET', `${poolPath('metered')}/listSessions?${DATA}`);
    assert.deepEqual(after.json.sessions, []);
    // A Contributor still may not run code.
    const run = await server.request('POST', `${poolPath('metered')}/executions?${DATA}&identifier=op`, {
      key: operator,
      body: { code: '1' },
    });
    assert.equal(run.status, 403);
  });

  it('serves metrics to a Reader of every pool only', async () => {
    assert.equal((await server.request('GET', '/metrics', { key: null })).status, 401);
    const executor = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: 'exec', roles: [`SessionExecutor:${armPath('metered')}`] },
    });
    assert.equal((await server.request('GET', '/metrics', { key: executor.json.key })).status, 403);
    const scraper = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: 'prom', roles: ['Reader'] },
    });
    assert.equal((await server.request('GET', '/metrics', { key: scraper.json.key })).status, 200);
  });

  it('is ready when the store answers and every pool is at its warm target', async () => {
    // Without a credential: ready or not, and nothing else (no pool names, no failures).
    const bare = await server.request('GET', '/readyz', { key: null });
    assert.equal(bare.status, 200, bare.text);
    assert.deepEqual(bare.json, { status: 'ready' });
    const ready = await server.request('GET', '/readyz');
    assert.equal(ready.status, 200, ready.text);
    assert.equal(ready.json.status, 'ready');
    assert.deepEqual(
      ready.json.checks.map((c: any) => [c.name, c.ok]),
      [
        ['store', true],
        ['runtime', true],
        ['memory', true],
        ['audit', true],
        ['pool tests/metered', true],
      ],
    );
    // The audit entries waiting on this node for the store: none while it answers.
    assert.equal(ready.json.audit.waiting, 0);
    assert.equal(ready.json.audit.full, false);
    // The node's memory: committed against allocatable, and its sandboxes' use (the fake's: no limit).
    assert.deepEqual(ready.json.memory, {
      committedBytes: ready.json.memory.committedBytes,
      allocatableBytes: server.config.nodeMemoryGib * 1024 ** 3,
      sandboxLimitBytes: null,
      workingSetBytes: 0,
      pressureMarkBytes: null,
      underPressure: false,
    });
    assert.ok(ready.json.memory.committedBytes >= 512 * 1024 ** 2, 'its ready sandboxes reserve their size');
  });

  it('is not ready while its sandboxes are short of memory, and says how short', async () => {
    // Sizes of 0.5 GiB each against a 1 MiB limit the sandboxes fill: the guard sees pressure.
    launcher.memoryReading = { limitBytes: 1024 * 1024, workingSetBytes: 1024 * 1024 };
    try {
      const answer = await until('the node reports pressure', async () => {
        const readiness = await server.request('GET', '/readyz');
        return readiness.status === 503 && readiness;
      });
      const memory = answer.json.checks.find((c: any) => c.name === 'memory');
      assert.equal(memory.ok, false);
      assert.match(
        memory.detail,
        /the sandboxes hold 0\.00 GiB, above the mark of 0\.00 GiB .*no new session is admitted/,
      );
      assert.equal(answer.json.memory.underPressure, true);
      const scrape = await server.request('GET', '/metrics');
      assert.equal(sample(scrape.text, 'sandpool_node_memory_pressure'), 1);
      assert.equal(sample(scrape.text, 'sandpool_node_memory_bytes{kind="sandbox_limit"}'), 1024 * 1024);
    } finally {
      launcher.memoryReading = { limitBytes: null, workingSetBytes: 0 };
    }
    await until('the pressure lifts', async () => (await server.request('GET', '/readyz')).status === 200);
  });

  it('is not ready, saying why, while a pool cannot start sandboxes', async () => {
    launcher.failWith = new Error('image missing');
    try {
      await createPool(server, 'broken', interpreterPool({ max: 2, ready: 1 }));
      let answer = await server.request('GET', '/readyz', { key: null });
      for (let i = 0; i < 100 && answer.status === 200; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        answer = await server.request('GET', '/readyz', { key: null });
      }
      assert.equal(answer.status, 503);
      assert.deepEqual(answer.json, { status: 'notReady' });
      answer = await server.request('GET', '/readyz');
      assert.equal(answer.status, 503);
      assert.equal(answer.json.status, 'notReady');
      const broken = answer.json.checks.find((c: any) => c.name === 'pool tests/broken');
      assert.equal(broken.ok, false);
      assert.match(broken.detail, /sandbox starts failed in a row: image missing/);
      const scrape = await server.request('GET', '/metrics');
      assert.ok(
        (sample(scrape.text, 'sandpool_sandbox_start_failures_total{pool="tests/broken"}') ?? 0) >= 1,
      );
    } finally {
      launcher.failWith = undefined;
    }
  });
});
