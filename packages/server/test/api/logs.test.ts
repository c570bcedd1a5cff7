/** What the server logs: one line per request and per operation, and never a credential, a secret or code. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';

import { createLogger } from '../../src/observability/logger.js';
import { FakeLauncher } from '../fake-launcher.js';
import {
  ADMIN_KEY,
  DATA,
  MGMT,
  armPath,
  createPool,
  interpreterPool,
  poolPath,
  startTestServer,
} from '../server-harness.js';

describe('logs', async () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const server = await startTestServer('logs', {
    launcher: new FakeLauncher(),
    logger: createLogger('info', sink),
  });

  it('logs each request and execution by route template and size, never a key, a secret or the code', async () => {
    const withSecret = { ...interpreterPool({ max: 1, ready: 0 }) };
    (withSecret.properties as Record<string, unknown>).secrets = [
      { name: 'db-password', value: 'hunter2-secret-value' },
    ];
    await createPool(server, 'logged', withSecret);
    const key = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: 'leaky', roles: ['Reader'] },
    });
    const code = 'print("CODE-MARKER-7d1f")';
    await server.request('POST', `${poolPath('logged')}/executions?${DATA}&identifier=who`, {
      body: { code },
    });
    await server.request('GET', `${armPath('logged')}?${MGMT}`, { key: key.json.key });
    await new Promise((resolve) => setImmediate(resolve));

    const text = JSON.stringify(lines);
    for (const secret of [ADMIN_KEY, key.json.key, 'hunter2-secret-value', 'CODE-MARKER-7d1f']) {
      assert.ok(!text.includes(secret), `the log holds ${secret}`);
    }
    const requests = lines.filter((l) => l.msg === 'http.request');
    assert.ok(
      requests.some(
        (l) =>
          l.route ===
            '/subscriptions/:subscription/resourceGroups/:resourceGroup/sessionPools/:pool/executions' &&
          l.status === 200 &&
          typeof l.ms === 'number' &&
          l.principal === 'key:0123456789ab',
      ),
    );
    const execution = lines.find((l) => l.msg === 'code.execute');
    assert.ok(execution, 'an execution logs one line of its own');
    assert.equal(execution.codeBytes, Buffer.byteLength(code));
    assert.equal(execution.pool, 'logged');
  });
});
