/** Metrics and readiness through the API, with an in-memory launcher so failures can be staged. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FAKE_USAGE, FakeLauncher } from '../fake-launcher.js';
import { DATA, createPool, execute, interpreterPool, poolPath, startTestServer } from '../server-harness.js';

/** The value of one sample in a Prometheus exposition, e.g. `name{a="b"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics and readiness', async () => {
  const launcher = new FakeLauncher();
  const server = await startTestServer('operations', { launcher });
  await createPool(server, 'metered', interpreterPool({ max: 2, ready: 1 }));
  const pool = 'pool="tests/metered"';

  it('counts allocations, executions, ends and rejections with bounded labels', async () => {
    await execute(server, 'metered', 'secret-identifier-1', 'one');
    await execute(server, 'metered', 'secret-identifier-1', 'two');
    await execute(server, 'metered', 'secret-identifier-2', 'three');
    const full = await execute(server, 'metered', 'secret-identifier-3', 'four');
    assert.equal(full.status, 429);
    await server.request('DELETE', `${poolPath('metered')}/session?${DATA}&identifier=secret-identifier-2`);

    const scrape = await server.request('GET', '/metrics');
    assert.equal(scrape.status, 200);
    assert.match(scrape.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = scrape.text;
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

  it('serves metrics to a Reader of every pool only', async () => {
    assert.equal((await server.request('GET', '/metrics', { key: null })).status, 401);
    const executor = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: 'exec', roles: ['SessionExecutor:metered'] },
    });
    assert.equal((await server.request('GET', '/metrics', { key: executor.json.key })).status, 403);
    const scraper = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: 'prom', roles: ['Reader'] },
    });
    assert.equal((await server.request('GET', '/metrics', { key: scraper.json.key })).status, 200);
  });

  it('is ready when the store answers and every pool is at its warm target', async () => {
    const ready = await server.request('GET', '/readyz', { key: null });
    assert.equal(ready.status, 200, ready.text);
    assert.equal(ready.json.status, 'ready');
    assert.deepEqual(
      ready.json.checks.map((c: any) => [c.name, c.ok]),
      [
        ['store', true],
        ['runtime', true],
        ['pool tests/metered', true],
      ],
    );
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
