/** Rate limits over HTTP: per caller and per identifier, 429 RateLimitExceeded with Retry-After. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FakeLauncher } from '../fake-launcher.js';
import { DATA, createPool, interpreterPool, poolPath, startTestServer } from '../server-harness.js';

describe('rate limits', async () => {
  // A clock that stands still unless a test moves it, so buckets refill only when told.
  const clock = { ms: Date.now() };
  const server = await startTestServer('ratelimits', {
    launcher: new FakeLauncher(),
    now: () => clock.ms,
    env: {
      SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '10',
      SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '2',
      SANDPOOL_RATE_LIMIT_BURST_SECONDS: '2',
    },
  });
  await createPool(server, 'limited', interpreterPool({ max: 4, ready: 0 }));
  const keyFor = async (name: string) => {
    const created = await server.request('POST', '/sandpool/apiKeys', {
      body: { name, roles: ['SessionExecutor'] },
    });
    assert.equal(created.status, 201, created.text);
    return created.json.key as string;
  };
  const run = (identifier: string, key?: string) =>
    server.request('POST', `${poolPath('limited')}/executions?${DATA}&identifier=${identifier}`, {
      body: { code: '1' },
      ...(key && { key }),
    });

  it('lets an identifier burst, then answers 429 RateLimitExceeded with Retry-After, for any caller', async () => {
    clock.ms += 60_000;
    const alice = await keyFor('alice');
    const bob = await keyFor('bob');
    for (let i = 0; i < 4; i++) assert.equal((await run('shared', alice)).status, 200);
    const refused = await run('shared', bob);
    assert.equal(refused.status, 429);
    assert.equal(refused.json.error.code, 'RateLimitExceeded');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(refused.json.error.message, /session identifier/);
    assert.equal((await run('other', bob)).status, 200, 'another identifier has its own bucket');
    clock.ms += 1_000;
    assert.equal((await run('shared', bob)).status, 200, 'the bucket refills with time');
  });

  it('limits each caller over all its requests, and leaves other callers alone', async () => {
    clock.ms += 60_000;
    const carol = await keyFor('carol');
    const dave = await keyFor('dave');
    const list = (key: string) =>
      server.request('GET', `${poolPath('limited')}/listSessions?${DATA}`, { key });
    const answers: string[] = [];
    for (let i = 0; i < 25; i++) {
      const response = await list(carol);
      answers.push(`${response.status} ${response.json.error?.code ?? ''}`.trim());
    }
    assert.deepEqual(answers.slice(0, 20), Array(20).fill('200'));
    assert.deepEqual(answers.slice(20), Array(5).fill('429 RateLimitExceeded'));
    assert.equal((await list(dave)).status, 200);
    assert.equal(
      (await server.request('GET', '/healthz', { key: null })).status,
      200,
      'probes are not limited',
    );
  });
});
