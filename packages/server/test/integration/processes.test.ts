/**
 * Background processes end to end with real sandboxes: a process that outlives its request and is
 * followed by offset, stdin written and closed, a server reached from a foreground command, kill by
 * signal, the cap on running processes, processes ending with their session, bad input refused with
 * stable codes, and the authorization cases: no credential, a revoked key, a Reader, another pool's
 * or resource group's grant, and another session's processes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  DATA,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  armPath,
  createPool,
  interpreterPool,
  newKey,
  poolPath,
  startTestServer,
  until,
  type TestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

interface Process {
  pid: number;
  command: string;
  status: 'Running' | 'Exited';
  exitCode: number | null;
  startedAt: string;
  endedAt: string | null;
}

describe('background processes with real sandboxes', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('processes');
  assert.equal(
    await createPool(server, 'shells', interpreterPool({ max: 10, ready: 1, containerType: 'Shell' })),
    'Succeeded',
  );
  const at = (path: string, identifier: string, extra = '') =>
    `${poolPath('shells')}/${path}?${DATA}&identifier=${encodeURIComponent(identifier)}${extra}`;
  const start = async (identifier: string, command: string): Promise<Process> => {
    const started = await server.request('POST', at('processes', identifier), { body: { command } });
    assert.equal(started.status, 201, started.text);
    return started.json as Process;
  };
  const output = (identifier: string, pid: number, extra = '') =>
    server.request('GET', at(`processes/${pid}/output`, identifier, extra));
  const list = async (identifier: string): Promise<Process[]> =>
    (await server.request('GET', at('processes', identifier))).json.value as Process[];

  it('keeps a process running after its request and follows its output by offset', async () => {
    const process = await start(
      'follow',
      'for i in 1 2 3; do echo line $i; echo warn $i >&2; sleep 0.3; done; exit 4',
    );
    assert.equal(process.status, 'Running');
    assert.equal(process.exitCode, null);
    assert.match(process.command, /^for i in/);
    assert.ok(Date.parse(process.startedAt) <= Date.now());

    const first = await until('the first line', async () => {
      const read = await output('follow', process.pid);
      return read.json.stdout.length > 0 && read;
    });
    assert.equal(first.status, 200, first.text);
    assert.match(first.json.stdout.text, /^line 1\n/);
    assert.equal(first.json.stdout.offset, 0);
    assert.equal(first.json.stdout.nextOffset, first.json.stdout.text.length);

    const ended = await until('the process to exit', async () => {
      const read = await output('follow', process.pid, `&stdoutOffset=${first.json.stdout.nextOffset}`);
      return read.json.process.status === 'Exited' && read;
    });
    assert.equal(ended.json.process.exitCode, 4);
    assert.ok(ended.json.process.endedAt);
    assert.equal(`${first.json.stdout.text}${ended.json.stdout.text}`, 'line 1\nline 2\nline 3\n');
    assert.equal(ended.json.stdout.offset, first.json.stdout.nextOffset);
    assert.equal(ended.json.stderr.text, 'warn 1\nwarn 2\nwarn 3\n');
    assert.equal(ended.json.stdout.length, 'line 1\nline 2\nline 3\n'.length);

    const bounded = await output('follow', process.pid, '&maxChars=5');
    assert.equal(bounded.json.stdout.text, 'line ');
    assert.equal(bounded.json.stdout.nextOffset, 5);
    assert.deepEqual(
      (await list('follow')).map((p) => [p.pid, p.status, p.exitCode]),
      [[process.pid, 'Exited', 4]],
    );
  });

  it('writes to stdin, closes it, and serves a foreground command from a background server', async () => {
    const counter = await start('stdin', 'wc -c');
    const written = await server.request('POST', at(`processes/${counter.pid}/stdin`, 'stdin'), {
      body: { text: 'hello\n' },
    });
    assert.equal(written.status, 200, written.text);
    assert.equal(written.json.status, 'Running');
    await server.request('POST', at(`processes/${counter.pid}/stdin`, 'stdin'), {
      body: { text: 'x'.repeat(300_000), close: true },
    });
    const counted = await until('wc to count its input', async () => {
      const read = await output('stdin', counter.pid);
      return read.json.process.status === 'Exited' && read;
    });
    assert.equal(counted.json.stdout.text.trim(), String(6 + 300_000));
    const closed = await server.request('POST', at(`processes/${counter.pid}/stdin`, 'stdin'), {
      body: { text: 'late' },
    });
    assert.equal(closed.status, 409);
    assert.equal(closed.json.error.code, 'ProcessStdinUnavailable');

    // A process that never reads its stdin cannot hold the session: the write gives up after a second.
    const deaf = await start('stdin', 'sleep 60');
    const full = await server.request('POST', at(`processes/${deaf.pid}/stdin`, 'stdin'), {
      body: { text: 'y'.repeat(1_000_000) },
    });
    assert.equal(full.status, 409, full.text);
    assert.match(full.json.error.message, /not reading its stdin: \d+ of 1000000 bytes/);

    // A server in the background, reached by a command in the foreground of the same session.
    const web = await start('stdin', 'python3 -m http.server 8123 --bind 127.0.0.1');
    const fetched = await until('the background server to answer', async () => {
      const run = await server.request('POST', at('executions', 'stdin'), {
        body: { shellCommand: 'curl -sf http://127.0.0.1:8123/ >/dev/null && echo served' },
      });
      return run.json.result?.stdout === 'served\n' && run;
    });
    assert.equal(fetched.json.status, '0');
    const killed = await server.request('POST', at(`processes/${web.pid}/kill`, 'stdin', '&signal=INT'));
    assert.equal(killed.status, 200, killed.text);
    const gone = await until('the server to exit', async () => {
      const read = await output('stdin', web.pid);
      return read.json.process.status === 'Exited' && read.json.process;
    });
    assert.notEqual(gone.exitCode, null);
  });

  it('kills the process group, caps running processes, and ends them with their session', async () => {
    // The shell's child keeps running unless the whole group is signalled.
    const parent = await start('cap', 'sleep 300 & wait');
    const killed = await server.request('POST', at(`processes/${parent.pid}/kill`, 'cap', '&signal=KILL'));
    assert.equal(killed.status, 200);
    await until('the group to die', async () => {
      const ps = await server.request('POST', at('executions', 'cap'), {
        body: { shellCommand: 'pgrep -x sleep || true' },
      });
      return ps.json.result.stdout === '' && ps;
    });
    const exited = (await list('cap')).find((p) => p.pid === parent.pid)!;
    assert.equal(exited.exitCode, 137);

    for (let i = 0; i < 16; i++) await start('cap', 'sleep 300');
    const refused = await server.request('POST', at('processes', 'cap'), { body: { command: 'true' } });
    assert.equal(refused.status, 409);
    assert.equal(refused.json.error.code, 'TooManyProcesses');

    // They live in the session's sandbox: ending the session ends them, and a new session has none.
    assert.equal((await server.request('DELETE', at('session', 'cap'))).status, 204);
    assert.deepEqual(await list('cap'), []);
  });

  it('refuses bad input with stable codes and a process of another session', async () => {
    const cases: [string, string, object | undefined, number, string][] = [
      ['POST', at('processes', 'refused'), {}, 400, 'InvalidParameter'],
      ['POST', at('processes', 'refused'), { command: '' }, 400, 'InvalidParameter'],
      ['POST', at('processes', 'refused'), { command: 7 }, 400, 'InvalidParameter'],
      ['POST', at('processes', 'refused'), { command: 'true', shellType: 'zsh' }, 400, 'InvalidParameter'],
      ['POST', at('processes', 'refused'), { command: 'x'.repeat(65_537) }, 400, 'InvalidParameter'],
      ['POST', at('processes', 'refused'), [], 400, 'InvalidParameter'],
      ['GET', at('processes/0/output', 'refused'), undefined, 400, 'InvalidParameter'],
      ['GET', at('processes/abc/output', 'refused'), undefined, 400, 'InvalidParameter'],
      ['GET', at('processes/1/output', 'refused', '&maxChars=0'), undefined, 400, 'InvalidParameter'],
      ['GET', at('processes/1/output', 'refused', '&stdoutOffset=-1'), undefined, 400, 'InvalidParameter'],
      ['GET', at('processes/1/output', 'refused', '&stderrOffset=1.5'), undefined, 400, 'InvalidParameter'],
      ['POST', at('processes/1/kill', 'refused', '&signal=STOP'), undefined, 400, 'InvalidParameter'],
      ['POST', at('processes/1/stdin', 'refused'), { text: 1 }, 400, 'InvalidParameter'],
      ['POST', at('processes/1/stdin', 'refused'), { text: 'x', close: 'maybe' }, 400, 'InvalidParameter'],
      ['GET', `${poolPath('shells')}/processes?${DATA}`, undefined, 400, 'InvalidIdentifier'],
      ['GET', at('processes/99999/output', 'bad'), undefined, 404, 'ProcessNotFound'],
      ['POST', at('processes/99999/kill', 'bad'), undefined, 404, 'ProcessNotFound'],
      ['POST', at('processes/99999/stdin', 'bad'), { text: 'x' }, 404, 'ProcessNotFound'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const answer = await server.request(method, path, body === undefined ? {} : { body });
      assert.equal(answer.status, status, `${method} ${path} ${JSON.stringify(body)}: ${answer.text}`);
      assert.equal(answer.json.error.code, code, `${method} ${path}`);
    }
    // Refused input reached no session: its identifier never got one.
    assert.equal((await server.request('GET', at('session', 'refused'))).status, 404);
    const theirs = await start('theirs', 'sleep 60');
    const mine = await output('mine', theirs.pid);
    assert.equal(mine.status, 404, 'another identifier’s process is not found in mine');
    assert.equal(mine.json.error.code, 'ProcessNotFound');
  });

  it('refuses no credential, a revoked key, a Reader, and another pool’s or resource group’s grant', async () => {
    const process = await start('authz', 'sleep 60');
    const routes: [string, string, object | undefined][] = [
      ['POST', at('processes', 'authz'), { command: 'true' }],
      ['GET', at('processes', 'authz'), undefined],
      ['GET', at(`processes/${process.pid}/output`, 'authz'), undefined],
      ['POST', at(`processes/${process.pid}/stdin`, 'authz'), { text: 'x' }],
      ['POST', at(`processes/${process.pid}/kill`, 'authz'), undefined],
    ];
    const revoked = await newKey(server, ['SessionExecutor']);
    assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${revoked.id}`)).status, 200);
    const reader = await newKey(server, [`Reader:${armPath('shells')}`]);
    const otherPool = await newKey(server, [`SessionExecutor:${armPath('elsewhere')}`]);
    const otherGroup = await newKey(server, [
      `SessionExecutor:/subscriptions/${SUBSCRIPTION}/resourceGroups/other-than-${RESOURCE_GROUP}`,
    ]);
    const callers: [string, string | null, number][] = [
      ['no credential', null, 401],
      ['a revoked key', revoked.key, 401],
      ['a Reader', reader.key, 403],
      ['another pool', otherPool.key, 403],
      ['another resource group', otherGroup.key, 403],
    ];
    for (const [who, key, status] of callers) {
      for (const [method, path, body] of routes) {
        const answer = await server.request(method, path, { key, ...(body && { body }) });
        assert.equal(answer.status, status, `${who}: ${method} ${path}`);
      }
    }
    // Nothing the refused callers sent reached the session.
    assert.deepEqual(
      (await list('authz')).map((p) => [p.pid, p.status]),
      [[process.pid, 'Running']],
    );
  });
});
