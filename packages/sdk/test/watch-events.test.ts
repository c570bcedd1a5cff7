/** watchEvents' resume logic against a scripted fetch: a dropped stream resumes after the last event seen. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ApiError, SandpoolClient, type PoolEvent } from '@sandpool/sdk';

const event = (id: number, type: PoolEvent['type'] = 'allocated'): PoolEvent => ({
  id: String(id),
  type,
  at: '2026-11-26T10:00:00.000Z',
  identifier: `user-${id}`,
  sessionId: null,
  reason: null,
  details: null,
});

const sse = (events: PoolEvent[]) =>
  new Response(events.map((e) => `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(''), {
    headers: { 'content-type': 'text/event-stream' },
  });

function clientAnswering(answers: ((request: Request) => Response)[]) {
  const requests: Request[] = [];
  const client = new SandpoolClient({
    endpoint: 'http://127.0.0.1:1',
    credential: 'k',
    retry: false,
    fetch: (input, init) => {
      const request = new Request(input, init);
      requests.push(request);
      const answer = answers.shift();
      return Promise.resolve(answer ? answer(request) : new Response(null, { status: 500 }));
    },
  });
  return { client, requests };
}

describe('watchEvents', () => {
  it('resumes a closed stream after the last event it delivered', async () => {
    const { client, requests } = clientAnswering([() => sse([event(1), event(2)]), () => sse([event(3)])]);
    const abort = new AbortController();
    const ids: string[] = [];
    for await (const e of client.pools.watchEvents('p', { signal: abort.signal, reconnectDelayMs: 1 })) {
      ids.push(e.id);
      if (ids.length === 3) abort.abort();
    }
    assert.deepEqual(ids, ['1', '2', '3']);
    assert.equal(requests[0]?.headers.get('accept'), 'text/event-stream');
    assert.equal(requests[0].headers.get('last-event-id'), null);
    assert.equal(requests[1]?.headers.get('last-event-id'), '2');
  });

  it('starts after a given event id, and ends with the ApiError of a refusal', async () => {
    const { client, requests } = clientAnswering([
      () =>
        Response.json(
          { error: { code: 'ResourceNotFound', message: 'no pool p' } },
          { status: 404, headers: { 'x-ms-error-code': 'ResourceNotFound' } },
        ),
    ]);
    await assert.rejects(
      async () => {
        for await (const e of client.pools.watchEvents('p', { after: '41' })) assert.fail(`got ${e.id}`);
      },
      (error: unknown) =>
        error instanceof ApiError && error.status === 404 && error.code === 'ResourceNotFound',
    );
    assert.equal(requests[0]?.headers.get('last-event-id'), '41');
  });
});
