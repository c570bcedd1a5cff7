/**
 * Streamed executions with real sandboxes (`Accept: text/event-stream` on `POST executions`): output
 * arrives while the code still runs (the code waits for a file the test writes only after it has
 * read the first line), Shell commands stream too, the output cap holds for the events, images and
 * the result come last, and a client that leaves does not stop the run.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { describe, it } from 'node:test';

import {
  ADMIN_KEY,
  DATA,
  createPool,
  interpreterPool,
  poolPath,
  startTestServer,
  type TestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

interface StreamEvent {
  event: string;
  data: Record<string, any>;
}

/** POSTs an execution asking for events; calls `onEvent` for each as it arrives; resolves with them all. */
async function streamed(
  server: TestServer,
  pool: string,
  identifier: string,
  body: Record<string, unknown>,
  onEvent: (event: StreamEvent) => Promise<void> | void = () => undefined,
  signal?: AbortSignal,
): Promise<{ status: number; headers: Headers; events: StreamEvent[] }> {
  const response = await fetch(`${server.url}${poolPath(pool)}/executions?${DATA}&identifier=${identifier}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      'content-type': 'application/json',
      accept: 'text/event-stream',
    },
    body: JSON.stringify(body),
    ...(signal && { signal }),
  });
  const events: StreamEvent[] = [];
  let buffered = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as Record<string, any>;
      events.push({ event, data });
      await onEvent({ event, data });
    }
  }
  return { status: response.status, headers: response.headers, events };
}

describe('streamed executions', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('streaming');
  assert.equal(await createPool(server, 'live', interpreterPool({ max: 4, ready: 1 })), 'Succeeded');
  assert.equal(
    await createPool(server, 'liveshell', interpreterPool({ max: 2, ready: 1, containerType: 'Shell' })),
    'Succeeded',
  );
  const upload = (pool: string, identifier: string, name: string) => {
    const form = new FormData();
    form.append('file', new Blob(['go']), name);
    return fetch(`${server.url}${poolPath(pool)}/files?${DATA}&identifier=${identifier}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      body: form,
    });
  };

  it('streams Python output while the code runs, then the same result the JSON answer has', async () => {
    // The code goes on only once the test has seen its first line: output that waited for the end
    // would leave it waiting until its time limit.
    const code =
      'import os, time\nprint("ready")\nwhile not os.path.exists("go"):\n    time.sleep(0.05)\nprint("done")\n6 * 7';
    const { status, headers, events } = await streamed(
      server,
      'live',
      'streamer',
      { code, timeoutInSeconds: 60 },
      async ({ event, data }) => {
        if (event === 'stdout' && String(data.text).includes('ready')) {
          assert.equal((await upload('live', 'streamer', 'go')).status, 200);
        }
      },
    );
    assert.equal(status, 200);
    assert.match(headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.ok(headers.get('x-ms-session-guid'));
    assert.ok(headers.get('operation-id'));
    const stdout = events.filter((e) => e.event === 'stdout').map((e) => e.data.text as string);
    assert.equal(stdout.join(''), 'ready\ndone\n');
    const last = events.at(-1)!;
    assert.equal(last.event, 'result');
    assert.equal(last.data.status, 'Succeeded');
    assert.equal(last.data.result.executionResult, 42);
    assert.equal(last.data.result.stdout, 'ready\ndone\n');
  });

  it('streams a Shell command’s output and keeps the events within outputStreamsMaxLength', async () => {
    const { events } = await streamed(
      server,
      'liveshell',
      'shell-streamer',
      {
        shellCommand: 'echo ready; while [ ! -e go ]; do sleep 0.05; done; echo done >&2',
        timeoutInSeconds: 60,
      },
      async ({ event, data }) => {
        if (event === 'stdout' && String(data.text).includes('ready')) {
          await upload('liveshell', 'shell-streamer', 'go');
        }
      },
    );
    assert.deepEqual(
      events.map((e) => e.event),
      ['stdout', 'stderr', 'result'],
    );
    assert.equal(events.at(-1)!.data.status, '0');

    const capped = await streamed(server, 'live', 'capped', {
      code: 'print("x" * 100)',
      outputStreamsMaxLength: 10,
    });
    const text = capped.events
      .filter((e) => e.event === 'stdout')
      .map((e) => e.data.text as string)
      .join('');
    assert.equal(text, 'x'.repeat(10));
    assert.deepEqual(capped.events.at(-1)!.data.result.truncated, ['stdout']);
  });

  it('sends a figure as an image event when the code shows it, and the rest before the result', async () => {
    // The code goes on only once the test has seen the shown figure: an image held for the end would
    // leave it waiting until its time limit.
    const code = [
      'import os, time, matplotlib.pyplot as plt',
      'plt.plot([1, 2])',
      'plt.show()',
      'while not os.path.exists("go"):',
      '    time.sleep(0.05)',
      'plt.figure()',
      'plt.plot([2, 1])',
    ].join('\n');
    const { events } = await streamed(
      server,
      'live',
      'figures',
      { code, timeoutInSeconds: 60 },
      async ({ event }) => {
        if (event === 'image') await upload('live', 'figures', 'go');
      },
    );
    assert.deepEqual(
      events.map((e) => e.event),
      ['image', 'image', 'result'],
    );
    assert.equal(events[0]!.data.format, 'png');
    assert.notEqual(events[0]!.data.base64_data, events[1]!.data.base64_data);
    const result = events.at(-1)!.data;
    assert.deepEqual(
      result.result.images.map((image: { base64_data: string }) => image.base64_data),
      [events[0]!.data.base64_data, events[1]!.data.base64_data],
      'the result has the images in the order they came',
    );
  });

  it('keeps running a run whose client left', async () => {
    // node:http rather than fetch: the client leaves by destroying its socket on the first event.
    await new Promise<void>((resolve, reject) => {
      const outgoing = httpRequest(
        `${server.url}${poolPath('live')}/executions?${DATA}&identifier=leaver`,
        {
          method: 'POST',
          agent: false,
          headers: {
            authorization: `Bearer ${ADMIN_KEY}`,
            'content-type': 'application/json',
            accept: 'text/event-stream',
          },
        },
        (response) => {
          response.once('data', () => {
            outgoing.destroy();
            resolve();
          });
        },
      );
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ECONNRESET') reject(error);
      });
      outgoing.end(
        JSON.stringify({
          code: 'import time\nprint("started")\ntime.sleep(1)\nopen("finished", "w").write("yes")',
        }),
      );
    });
    // The run goes on: the file it writes last appears.
    let finished = false;
    for (let tries = 0; tries < 100 && !finished; tries++) {
      const listed = await server.request('GET', `${poolPath('live')}/files?${DATA}&identifier=leaver`);
      finished = (listed.json.value as { name: string }[]).some((file) => file.name === 'finished');
      if (!finished) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(finished, 'the run finished after its client left');
  });
});
