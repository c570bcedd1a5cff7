/**
 * A small host, stood for by capping the sandboxes' parent cgroup at 1.5 GiB (or 1 GiB) of this
 * machine's memory: admission stops where the sessions' sizes reach what the node may commit;
 * past an overcommitted node's pressure mark the node ends sandboxes by policy, ready ones and the
 * longest idle first, never the one mid-execution; when the kernel gets there first, its kill is
 * reported as the host's doing. Real sandboxes, real cgroups.
 */

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  DATA,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
  until,
  withoutNodeLabel,
  type TestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const CGROUP_ROOT = '/sys/fs/cgroup';

/** A server whose sandboxes may hold `sandboxGib` of this host together, under a cgroup parent of its own. */
async function smallHost(
  name: string,
  sandboxGib: number,
  env: Record<string, string>,
): Promise<{ server: TestServer; parent: string }> {
  const parent = `sandpool-test-${name}-${process.pid}`;
  const server = await startTestServer(name, {
    env: {
      SANDPOOL_CGROUP_PARENT: parent,
      SANDPOOL_MEMORY_RESERVE_GIB: String(totalmem() / GIB - sandboxGib),
      ...env,
    },
  });
  // After the server's own teardown (registered first) has removed its sandboxes.
  after(() => {
    for (const hierarchy of readdirSync(CGROUP_ROOT)) {
      try {
        rmdirSync(join(CGROUP_ROOT, hierarchy, parent));
      } catch {
        // Not in this hierarchy.
      }
    }
  });
  return { server, parent };
}

async function metric(server: TestServer, series: string): Promise<number> {
  const text = withoutNodeLabel((await server.request('GET', '/metrics')).text);
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

/**
 * A pool that preloads nothing: the data stack a pool gets by default would put its zygote's
 * 300 MiB inside the small host, and these tests count every MiB of it.
 */
function bareInterpreterPool(overrides: Parameters<typeof interpreterPool>[0]) {
  const body = interpreterPool(overrides);
  return { ...body, properties: { ...body.properties, preloadModules: [] } };
}

/** Holds `mib` MiB in the session's interpreter, touched (a zero-filled buffer would not be). */
const hold = (mib: number) => `x = b"\\x01" * (${mib} << 20)\nlen(x)`;

async function holding(server: TestServer, pool: string, identifier: string): Promise<number> {
  const answer = await execute(server, pool, identifier, 'len(x)');
  assert.equal(answer.status, 200, answer.text);
  assert.equal(answer.headers.get('x-sandpool-session'), 'existing', `${identifier} kept its session`);
  return Number(answer.json.result.executionResult) / MIB;
}

describe('a node short of memory', { skip: skipReason, concurrency: true }, () => {
  it('caps its sandboxes, admits sessions only while their sizes fit, and kills nobody inside its own limit', async () => {
    const { server, parent } = await smallHost('memadmit', 1.5, { SANDPOOL_MEMORY_OVERCOMMIT: '1' });
    const limit = Number(readFileSync(join(CGROUP_ROOT, 'memory', parent, 'memory.limit_in_bytes'), 'utf8'));
    assert.equal(limit, 1.5 * GIB, 'the sandboxes’ parent cgroup carries the hard limit');
    await createPool(server, 'admit', bareInterpreterPool({ max: 10, ready: 1 }));

    // Three sandboxes of 0.5 GiB fill the 1.5 GiB the node may commit: two sessions and the ready one.
    for (const identifier of ['a', 'b', 'c']) {
      const answer = await execute(server, 'admit', identifier, hold(400));
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.json.result.executionResult, 400 * MIB);
    }
    const refused = await execute(server, 'admit', 'd', '1');
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json.error.code, 'NoNodeAvailable');
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.match(refused.json.error.message, /reserve 1\.50 GiB of the 1\.50 GiB of memory it may commit/);

    // /readyz shows the guard's latest reading, taken every 500 ms: the next one has all three.
    const ready = await until('the guard reads the three sessions’ memory', async () => {
      const answer = await server.request('GET', '/readyz');
      return answer.json.memory.workingSetBytes > 1.1 * GIB && answer;
    });
    assert.equal(ready.json.memory.committedBytes, 1.5 * GIB);
    assert.equal(ready.json.memory.allocatableBytes, 1.5 * GIB);
    assert.equal(ready.json.memory.sandboxLimitBytes, 1.5 * GIB);
    assert.equal(
      ready.json.memory.pressureMarkBytes,
      null,
      'the sizes fit in the limit: no pressure is possible',
    );

    // 1.2 GiB held in a 1.5 GiB host, each inside its own limit: everyone keeps theirs.
    for (const identifier of ['a', 'b', 'c']) assert.equal(await holding(server, 'admit', identifier), 400);
    assert.equal(await metric(server, 'sandpool_node_memory_bytes{kind="committed"}'), 1.5 * GIB);
    assert.equal(await metric(server, 'sandpool_node_memory_bytes{kind="allocatable"}'), 1.5 * GIB);
    assert.equal(await metric(server, 'sandpool_node_memory_bytes{kind="sandbox_limit"}'), 1.5 * GIB);

    // A session that ends makes room for the next.
    const stop = await server.request('DELETE', `${poolPath('admit')}/session?${DATA}&identifier=a`);
    assert.equal(stop.status, 204, stop.text);
    const admitted = await until('d is admitted', async () => {
      const answer = await execute(server, 'admit', 'd', '"in"');
      return answer.status === 200 && answer;
    });
    assert.equal(admitted.json.result.executionResult, 'in');
  });

  it('overcommitted, ends the ready sandbox and the longest idle session at the mark, never the one mid-execution', async () => {
    const { server } = await smallHost('mempress', 1.5, {
      SANDPOOL_MEMORY_OVERCOMMIT: '4',
      SANDPOOL_MEMORY_CHECK_INTERVAL_MS: '100',
    });
    await createPool(server, 'press', bareInterpreterPool({ max: 10, ready: 1 }));
    // Oldest first: a, b, c, d each hold 250 MiB; 6 GiB may be committed against a 1.5 GiB limit.
    for (const identifier of ['a', 'b', 'c', 'd']) {
      const answer = await execute(server, 'press', identifier, hold(250));
      assert.equal(answer.status, 200, answer.text);
    }
    const before = (await server.request('GET', '/readyz')).json.memory;
    assert.equal(before.pressureMarkBytes, 0.9 * 1.5 * GIB);
    assert.equal(before.underPressure, false);

    // a, idle longest, is in the middle of an execution when the node crosses its mark.
    const busy = execute(server, 'press', 'a', 'import time\ntime.sleep(4)\nlen(x)');
    await new Promise((resolve) => setTimeout(resolve, 500));
    // e takes the working set 40 MiB past the mark, 110 MiB under the hard limit.
    const { workingSetBytes } = (await server.request('GET', '/readyz')).json.memory;
    const push = Math.ceil((before.pressureMarkBytes - workingSetBytes) / MIB) + 40;
    assert.ok(push > 0 && push < 450, `e holds ${push} MiB`);
    assert.equal((await execute(server, 'press', 'e', hold(push))).status, 200);

    await until('the node ends a session', async () =>
      (await metric(server, 'sandpool_memory_pressure_ends_total{pool="tests/press",kind="session"}')) >= 1
        ? true
        : undefined,
    );
    assert.equal(
      await metric(server, 'sandpool_memory_pressure_ends_total{pool="tests/press",kind="ready"}'),
      1,
      'the ready sandbox went first',
    );
    const mid = await busy;
    assert.equal(mid.status, 200, mid.text);
    assert.equal(mid.json.result.executionResult, 250 * MIB, 'the session mid-execution kept its memory');
    assert.equal(await holding(server, 'press', 'c'), 250);
    assert.equal(await holding(server, 'press', 'd'), 250);
    assert.equal(await holding(server, 'press', 'e'), push);
    // b, the longest idle, paid; its next request hears why, once the pressure has lifted.
    const next = await until('b is admitted again', async () => {
      const answer = await execute(server, 'press', 'b', '"fresh"');
      return answer.status === 200 && answer;
    });
    assert.equal(next.headers.get('x-sandpool-previous-session-ended'), 'hostMemoryPressure');
    assert.equal(await metric(server, 'sandpool_session_ends_total{pool="tests/press",reason="oom"}'), 0);
    assert.equal((await server.request('GET', '/healthz')).status, 200);
  });

  it('reports a kill by the kernel at the sandboxes’ limit as the host’s, and the server lives on', async () => {
    // The guard checks once a minute: the kernel acts first.
    const { server } = await smallHost('memkernel', 1, {
      SANDPOOL_MEMORY_OVERCOMMIT: '4',
      SANDPOOL_MEMORY_PRESSURE_PERCENT: '99',
      SANDPOOL_MEMORY_CHECK_INTERVAL_MS: '60000',
    });
    await createPool(server, 'kern', bareInterpreterPool({ max: 10, ready: 0 }));
    for (const identifier of ['a', 'b']) {
      const answer = await execute(server, 'kern', identifier, hold(400));
      assert.equal(answer.status, 200, answer.text);
    }
    // c's 400 MiB, inside its own 512 MiB, takes the three past the 1 GiB they share.
    await execute(server, 'kern', 'c', hold(400));
    await until('the kernel’s kill is recorded', async () =>
      (await metric(server, 'sandpool_session_ends_total{pool="tests/kern",reason="hostMemoryPressure"}')) >=
      1
        ? true
        : undefined,
    );
    assert.equal(await metric(server, 'sandpool_session_ends_total{pool="tests/kern",reason="oom"}'), 0);
    assert.equal((await server.request('GET', '/healthz')).status, 200);
  });
});
