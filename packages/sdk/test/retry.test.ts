import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ConnectionError } from '../src/errors.js';
import { retryingFetch } from '../src/retry.js';

/** A fetch that answers from a script and records what it was asked. */
function scripted(answers: (Response | Error)[]) {
  const calls: { method: string; body: string }[] = [];
  const fetch = async (input: Parameters<typeof globalThis.fetch>[0]) => {
    const request = input as Request;
    calls.push({ method: request.method, body: await request.text() });
    const answer = answers.shift();
    if (answer === undefined) throw new Error('no scripted answer left');
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { fetch: fetch, calls };
}

function harness(answers: (Response | Error)[], options = {}) {
  const { fetch, calls } = scripted(answers);
  const waits: number[] = [];
  const retrying = retryingFetch(
    { retries: 3, baseDelayMs: 100, maxDelayMs: 1000, ...options },
    {
      fetch,
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
      random: () => 1,
    },
  );
  return { retrying, calls, waits };
}

const full = (retryAfter?: string) =>
  new Response('{"error":{"code":"SessionPoolFull","message":"full"}}', {
    status: 429,
    headers: retryAfter ? { 'retry-after': retryAfter } : {},
  });

describe('retrying fetch', () => {
  it('retries 429 and 503, resending the body, with exponential waits', async () => {
    const { retrying, calls, waits } = harness([
      full(),
      new Response('', { status: 503 }),
      new Response('ok'),
    ]);
    const response = await retrying('http://h/executions', { method: 'POST', body: '{"code":"1"}' });
    assert.equal(await response.text(), 'ok');
    assert.deepEqual(
      calls.map((c) => c.body),
      ['{"code":"1"}', '{"code":"1"}', '{"code":"1"}'],
    );
    assert.deepEqual(waits, [100, 200]);
  });

  it('never waits less than Retry-After, nor more than the cap', async () => {
    const { retrying, waits } = harness([full('0.5'), full('30'), new Response('ok')]);
    await retrying('http://h/x', { method: 'GET' });
    assert.deepEqual(waits, [500, 1000]);
  });

  it('draws each wait at random below the exponential bound (full jitter)', async () => {
    const { fetch } = scripted([full(), full(), new Response('ok')]);
    const waits: number[] = [];
    const retrying = retryingFetch(
      { retries: 3, baseDelayMs: 100 },
      { fetch, sleep: (ms) => (waits.push(ms), Promise.resolve()), random: () => 0.25 },
    );
    await retrying('http://h/x');
    assert.deepEqual(waits, [25, 50]);
  });

  it('returns the last 429 once the retries are spent', async () => {
    const { retrying, calls } = harness([full(), full(), full(), full()]);
    const response = await retrying('http://h/x');
    assert.equal(response.status, 429);
    assert.equal(calls.length, 4);
  });

  it('passes other statuses through at once', async () => {
    const { retrying, calls } = harness([new Response('', { status: 500 })]);
    assert.equal((await retrying('http://h/x')).status, 500);
    assert.equal(calls.length, 1);
  });

  it('retries a connection failure only for methods that change nothing', async () => {
    const get = harness([new TypeError('fetch failed'), new Response('ok')]);
    assert.equal(await (await get.retrying('http://h/x')).text(), 'ok');
    const post = harness([new TypeError('fetch failed')]);
    await assert.rejects(post.retrying('http://h/x', { method: 'POST', body: '{}' }), ConnectionError);
    assert.equal(post.calls.length, 1, 'a POST that may have run is not sent twice');
  });
});
