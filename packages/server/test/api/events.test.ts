/** A pool's lifecycle events: paging and filters, and the live stream (server-sent events). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FakeLauncher } from '../fake-launcher.js';
import {
  ADMIN_KEY,
  DATA,
  MGMT,
  armPath,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
  type TestServer,
} from '../server-harness.js';

interface StreamedEvent {
  id: string;
  event: string;
  data: any;
}

/** Reads server-sent events from `url` until `count` arrived; returns them and the open response. */
async function readEvents(
  server: TestServer,
  path: string,
  count: number,
  headers: Record<string, string> = {},
) {
  const controller = new AbortController();
  const response = await fetch(`${server.url}${path}`, {
    headers: { authorization: `Bearer ${ADMIN_KEY}`, accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: StreamedEvent[] = [];
  let buffer = '';
  const next = async (wanted: number) => {
    while (events.length < wanted) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended after ${events.length} events`);
      buffer += value;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((line) => !line.startsWith(':'))
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]),
        );
        if (fields.data !== undefined) {
          events.push({ id: fields.id ?? '', event: fields.event ?? '', data: JSON.parse(fields.data) });
        }
      }
    }
    return events;
  };
  await next(count);
  return { events, next, close: () => controller.abort() };
}

describe('pool events', async () => {
  const server = await startTestServer('events', { launcher: new FakeLauncher() });
  await createPool(server, 'watched', interpreterPool({ max: 3, ready: 1 }));
  const events = (query = '') => server.request('GET', `${armPath('watched')}/events?${MGMT}${query}`);

  it('lists what happened, oldest first, narrowed by type, identifier and time, in pages', async () => {
    await execute(server, 'watched', 'alice', '1');
    await execute(server, 'watched', 'bob', '1');
    await server.request('DELETE', `${poolPath('watched')}/session?${DATA}&identifier=alice`);

    const all = await events();
    assert.equal(all.status, 200, all.text);
    const types = all.json.value.map((e: any) => e.type);
    assert.ok(types.includes('ready') && types.includes('allocated') && types.includes('ended'));
    const ids = all.json.value.map((e: any) => Number(e.id));
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );

    const ended = await events('&type=ended');
    assert.deepEqual(
      ended.json.value.map((e: any) => [e.identifier, e.reason]),
      [['alice', 'stopped']],
    );
    const bob = await events('&identifier=bob');
    assert.deepEqual(
      bob.json.value.map((e: any) => e.type),
      ['allocated'],
    );
    assert.deepEqual((await events('&since=2999-01-01T00:00:00Z')).json.value, []);

    let page = await events('&$top=2');
    assert.equal(page.json.value.length, 2);
    const paged = [...page.json.value];
    while (page.json.nextLink) {
      const next = new URL(page.json.nextLink);
      page = await server.request('GET', `${next.pathname}${next.search}`);
      paged.push(...page.json.value);
    }
    assert.deepEqual(
      paged.map((e: any) => e.id),
      all.json.value.map((e: any) => e.id),
    );
  });

  it('refuses bad filters and unknown pools with stable codes', async () => {
    assert.equal((await events('&type=exploded')).json.error.code, 'InvalidParameter');
    assert.equal((await events('&since=yesterday')).json.error.target, 'since');
    assert.equal((await events('&$top=0')).status, 400);
    const missing = await server.request('GET', `${armPath('nosuchpool')}/events?${MGMT}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, 'ResourceNotFound');
    const executor = await server.request('POST', '/sandpool/apiKeys', {
      body: { roles: [`SessionExecutor:${armPath('watched')}`] },
    });
    assert.equal(
      (await server.request('GET', `${armPath('watched')}/events?${MGMT}`, { key: executor.json.key }))
        .status,
      403,
    );
  });

  it('streams: replays what the client missed after Last-Event-ID, then new events as they happen', async () => {
    const listed = (await events()).json.value;
    const since = listed.at(-2).id;
    const stream = await readEvents(server, `${armPath('watched')}/events?${MGMT}`, 1, {
      'last-event-id': since,
    });
    assert.deepEqual(
      stream.events.map((e) => e.id),
      [listed.at(-1).id],
      'only what came after Last-Event-ID',
    );

    await execute(server, 'watched', 'carol', '1');
    const live = await stream.next(2);
    const carol = live.find((e) => e.data.identifier === 'carol');
    assert.ok(carol, 'the new allocation arrived live');
    assert.equal(carol.event, 'allocated');
    assert.equal(carol.id, carol.data.id);
    stream.close();
  });

  it('streams only the events that match its filters', async () => {
    const stream = await readEvents(
      server,
      `${armPath('watched')}/events?${MGMT}&type=ended&identifier=carol`,
      0,
    );
    await execute(server, 'watched', 'dave', '1');
    await server.request('DELETE', `${poolPath('watched')}/session?${DATA}&identifier=dave`);
    await server.request('DELETE', `${poolPath('watched')}/session?${DATA}&identifier=carol`);
    const [only] = await stream.next(1);
    assert.equal(only!.event, 'ended');
    assert.equal(only!.data.identifier, 'carol');
    assert.equal(only!.data.reason, 'stopped');
    stream.close();
  });

  it('ends open streams when the server closes, so closing never hangs', async () => {
    const other = await startTestServer('eventsclose', { launcher: new FakeLauncher() });
    await createPool(other, 'closing', interpreterPool({ max: 1, ready: 0 }));
    const stream = await readEvents(other, `${armPath('closing')}/events?${MGMT}`, 0);
    const closed = other.server.close().then(() => 'closed');
    const timeout = new Promise((resolve) => setTimeout(() => resolve('hung'), 5000).unref());
    assert.equal(await Promise.race([closed, timeout]), 'closed');
    await assert.rejects(stream.next(1), /the stream ended/);
  });
});
