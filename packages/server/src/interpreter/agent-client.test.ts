import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { AppError, ErrorCode } from '../errors.js';
import { AgentClient, type AgentControl } from './agent-client.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-client-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Behaviour = (request: { id: number; op: string; code?: string }, socket: Socket) => void;

const reply = (id: number, extra: Record<string, unknown> = {}) => ({
  id,
  ok: true,
  status: 'succeeded',
  interrupted: false,
  stdout: '',
  stderr: '',
  stdoutTruncated: false,
  stderrTruncated: false,
  result: null,
  images: [],
  error: null,
  durationMs: 1,
  ...extra,
});

let counter = 0;
/** A scripted stand-in for the Python agent, speaking the protocol on a real unix socket. */
function fakeAgent(
  behaviour: Behaviour,
  hello = '{"op":"hello","protocol":1,"pid":7}\n',
): Promise<{ path: string; server: Server }> {
  const path = join(dir, `agent-${counter++}.sock`);
  const server = createServer((socket) => {
    socket.write(hello);
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString();
      for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        behaviour(JSON.parse(line) as { id: number; op: string }, socket);
      }
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve({ path, server })));
}

function recordingControl(onInterrupt: () => void = () => undefined): AgentControl & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    interrupt: () => {
      calls.push('interrupt');
      onInterrupt();
      return Promise.resolve();
    },
    kill: () => {
      calls.push('kill');
      return Promise.resolve();
    },
  };
}

const options = { connectTimeoutMs: 2000, interruptGraceMs: 100 };
const isCode = (code: ErrorCode) => (error: unknown) => error instanceof AppError && error.code === code;

describe('AgentClient', () => {
  it('executes requests one at a time and returns the agent’s reply', async () => {
    const { path, server } = await fakeAgent((request, socket) => {
      setTimeout(
        () => socket.write(`${JSON.stringify(reply(request.id, { result: request.code ?? null }))}\n`),
        5,
      );
    });
    const client = await AgentClient.connect(path, recordingControl(), options);
    assert.equal(client.hello.pid, 7);
    const [a, b] = await Promise.all([
      client.execute({ code: 'a', timeoutMs: 1000, maxOutputChars: 10 }),
      client.execute({ code: 'b', timeoutMs: 1000, maxOutputChars: 10 }),
    ]);
    assert.equal(a.result, 'a');
    assert.equal(b.result, 'b');
    assert.equal(a.timedOut, false);
    client.close();
    server.close();
  });

  it('never interrupts an agent still starting; interrupts a listening agent that stays silent', async () => {
    // Starting: the socket appears only after the silence allowance has long passed.
    const slowPath = join(dir, `agent-${counter++}.sock`);
    const starting = recordingControl();
    const connecting = AgentClient.connect(slowPath, starting, options, 30);
    await new Promise((resolve) => setTimeout(resolve, 120));
    const slow = createServer((socket) => socket.write('{"op":"hello","protocol":1,"pid":8}\n'));
    await new Promise<void>((resolve) => slow.listen(slowPath, resolve));
    const started = await connecting;
    assert.deepEqual(starting.calls, [], 'an agent that was not listening yet is left to start');
    started.close();
    slow.close();

    // Orphaned code: the agent listens but greets only once interrupted.
    const busyPath = join(dir, `agent-${counter++}.sock`);
    let waiting: Socket | undefined;
    const busy = createServer((socket) => (waiting = socket));
    await new Promise<void>((resolve) => busy.listen(busyPath, resolve));
    const orphaned = recordingControl(() => waiting?.write('{"op":"hello","protocol":1,"pid":9}\n'));
    const reattached = await AgentClient.connect(busyPath, orphaned, options, 30);
    assert.equal(reattached.hello.pid, 9);
    assert.deepEqual(orphaned.calls, ['interrupt']);
    reattached.close();
    busy.close();
  });

  it('interrupts an execution that overruns and returns the interrupted reply', async () => {
    let pendingId = 0;
    let socketRef: Socket | undefined;
    const { path, server } = await fakeAgent((request, socket) => {
      pendingId = request.id;
      socketRef = socket;
    });
    const control = recordingControl(() =>
      socketRef?.write(`${JSON.stringify(reply(pendingId, { status: 'failed', interrupted: true }))}\n`),
    );
    const client = await AgentClient.connect(path, control, options);
    const outcome = await client.execute({ code: 'while True: pass', timeoutMs: 50, maxOutputChars: 10 });
    assert.equal(outcome.timedOut, true);
    assert.equal(outcome.interrupted, true);
    assert.deepEqual(control.calls, ['interrupt']);
    client.close();
    server.close();
  });

  it('kills the sandbox and reports the session lost when the interrupt is ignored', async () => {
    const { path, server } = await fakeAgent(() => undefined);
    const control = recordingControl();
    const client = await AgentClient.connect(path, control, options);
    await assert.rejects(
      client.execute({ code: 'x', timeoutMs: 30, maxOutputChars: 10 }),
      isCode(ErrorCode.SessionLost),
    );
    assert.deepEqual(control.calls, ['interrupt', 'kill']);
    client.close();
    server.close();
  });

  it('fails the connection on a malformed or unsolicited reply', async () => {
    for (const bad of [
      'not json',
      '{"id":99,"ok":true,"executions":1}',
      '{"id":1,"ok":true,"status":"weird"}',
    ]) {
      const { path, server } = await fakeAgent((_, socket) => socket.write(`${bad}\n`));
      const client = await AgentClient.connect(path, recordingControl(), options);
      await assert.rejects(
        client.execute({ code: 'x', timeoutMs: 1000, maxOutputChars: 10 }),
        isCode(ErrorCode.AgentProtocolError),
      );
      assert.equal(client.closed, true);
      server.close();
    }
  });

  it('reports the agent going away mid-execution', async () => {
    const { path, server } = await fakeAgent((_, socket) => socket.destroy());
    const client = await AgentClient.connect(path, recordingControl(), options);
    const closed = new Promise((resolve) => client.onClose(resolve));
    await assert.rejects(
      client.execute({ code: 'x', timeoutMs: 1000, maxOutputChars: 10 }),
      isCode(ErrorCode.AgentUnavailable),
    );
    await closed;
    server.close();
  });

  it('refuses an agent that speaks another protocol version', async () => {
    const { path, server } = await fakeAgent(() => undefined, '{"op":"hello","protocol":2,"pid":7}\n');
    await assert.rejects(
      AgentClient.connect(path, recordingControl(), options),
      isCode(ErrorCode.AgentProtocolError),
    );
    server.close();
  });

  it('never follows a symlink planted at the socket’s name', async () => {
    const { path, server } = await fakeAgent(() => undefined);
    const planted = join(dir, 'planted.sock');
    symlinkSync(path, planted);
    await assert.rejects(
      AgentClient.connect(planted, recordingControl(), { ...options, connectTimeoutMs: 100 }),
      isCode(ErrorCode.AgentUnavailable),
    );
    server.close();
  });

  it('gives up when no socket appears in time', async () => {
    await assert.rejects(
      AgentClient.connect(join(dir, 'absent.sock'), recordingControl(), { ...options, connectTimeoutMs: 50 }),
      isCode(ErrorCode.AgentUnavailable),
    );
  });
  it('trusts a process reply only in the shape its request asked for, and maps refusals by code', async () => {
    const info = { pid: 5, command: 'sleep 9', running: true, exitCode: null, startedAt: 1, endedAt: null };
    const answers: Record<string, unknown>[] = [
      { ok: true, process: info },
      // A list answered with one process, output without its streams: not what was asked.
      { ok: true, process: info },
      { ok: true, process: info },
      { ok: false, error: { code: 'ProcessNotFound', message: 'no background process 5' } },
      // An agent's code that is no refusal of the caller's (an object's own key included).
      { ok: false, error: { code: '__proto__', message: 'odd' } },
      // A time no Date holds.
      { ok: true, process: { ...info, startedAt: 1e300 } },
    ];
    const { path, server } = await fakeAgent((request, socket) =>
      socket.write(`${JSON.stringify({ id: request.id, ...answers.shift() })}\n`),
    );
    const client = await AgentClient.connect(path, recordingControl(), options);
    assert.equal((await client.process({ op: 'process.kill', pid: 5, signal: 'TERM' })).process?.pid, 5);
    await assert.rejects(client.process({ op: 'process.list' }), isCode(ErrorCode.AgentProtocolError));
    await assert.rejects(
      client.process({ op: 'process.output', pid: 5, stdoutOffset: 0, stderrOffset: 0, maxChars: 9 }),
      isCode(ErrorCode.AgentProtocolError),
    );
    await assert.rejects(client.process({ op: 'process.list' }), isCode(ErrorCode.ProcessNotFound));
    await assert.rejects(client.process({ op: 'process.list' }), isCode(ErrorCode.InvalidAgentRequest));
    await assert.rejects(
      client.process({ op: 'process.kill', pid: 5, signal: 'TERM' }),
      isCode(ErrorCode.AgentProtocolError),
    );
    client.close();
    server.close();
  });
  it('hands output and shown images of the request under way to its listeners, and refuses a malformed image', async () => {
    const image = { type: 'image', format: 'png', base64_data: 'iVBORw0KGgo=' };
    let round = 0;
    const { path, server } = await fakeAgent((request, socket) => {
      round++;
      const events =
        round === 1
          ? [
              { id: request.id, event: 'output', stream: 'stdout', text: 'drawing\n' },
              { id: request.id, event: 'image', image },
              // Another request's event (a late child process, say) reaches no one.
              { id: request.id + 100, event: 'image', image },
            ]
          : [{ id: request.id, event: 'image', image: { type: 'image', format: 'svg', base64_data: '' } }];
      for (const event of events) socket.write(`${JSON.stringify(event)}\n`);
      socket.write(`${JSON.stringify(reply(request.id, { images: [image] }))}\n`);
    });
    const client = await AgentClient.connect(path, recordingControl(), options);
    const seen: unknown[] = [];
    const result = await client.execute({
      code: 'plt.show()',
      timeoutMs: 1000,
      maxOutputChars: 100,
      onOutput: (stream, text) => seen.push([stream, text]),
      onImage: (shown) => seen.push(shown),
    });
    assert.deepEqual(seen, [['stdout', 'drawing\n'], image]);
    assert.deepEqual(result.images, [image]);
    await assert.rejects(
      client.execute({ code: 'x', timeoutMs: 1000, maxOutputChars: 100, onImage: () => undefined }),
      isCode(ErrorCode.AgentProtocolError),
    );
    client.close();
    server.close();
  });
});
