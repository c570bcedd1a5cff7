/**
 * The sandpool command against a server in process (no sandboxes, no sockets, no root): sign-in,
 * pool commands waiting for their operations, executions, output formats and the exit code of each
 * kind of failure. The same commands against real sandboxes are in cli.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { startInMemoryServer } from '../../server/test/in-memory-server.js';
import { ADMIN_KEY, RESOURCE_GROUP } from '../../server/test/server-harness.js';
import { ExitCode } from '../src/failure.js';
import { shell } from './shell.js';

describe('sandpool CLI against a server in process', async () => {
  const { endpoint, fetch } = await startInMemoryServer('cli-memory');
  const { sandpool } = shell({}, { fetch });
  const scope = ['-g', RESOURCE_GROUP];

  it('signs in, creates a pool and runs code in it', async () => {
    const login = await sandpool('login', '--endpoint', endpoint, '--api-key', ADMIN_KEY);
    assert.equal(login.code, ExitCode.Ok, login.stderr);
    const created = await sandpool('sessionpool', 'create', '-n', 'cli', ...scope, '--max-sessions', '1');
    assert.equal(created.code, ExitCode.Ok, created.stderr);
    assert.equal(created.json.properties.provisioningState, 'Succeeded');
    const ran = await sandpool(
      'session', 'code-interpreter', 'execute', '-n', 'cli', ...scope, '--identifier', 'u1', '--code', 'hello',
    ); // prettier-ignore
    assert.equal(ran.code, ExitCode.Ok, ran.stderr);
    // The fake instance echoes the code as its output.
    assert.equal(ran.json.result.stdout, 'hello');
    const table = await sandpool('sessionpool', 'list', ...scope, '-o', 'table');
    assert.match(table.stdout, /^Name\s/m);
    assert.match(table.stdout, /^cli\s/m);
  });

  it('exits with the code of each kind of failure and says what to do', async () => {
    const missing = await sandpool('sessionpool', 'show', '-n', 'absent', ...scope);
    assert.equal(missing.code, ExitCode.NotFound);
    assert.match(missing.stderr, /hint:/);
    // The pool holds one session: a second identifier finds it full.
    const full = await sandpool(
      'session', 'code-interpreter', 'execute', '-n', 'cli', ...scope, '--identifier', 'u2', '--code', 'x',
    ); // prettier-ignore
    assert.equal(full.code, ExitCode.Busy, full.stderr);
    const bad = await sandpool('sessionpool', 'create', '-n', 'cli2', ...scope, '--max-sessions', 'many');
    assert.equal(bad.code, ExitCode.Usage);
  });

  it('lists the nodes and drains this one', async () => {
    const listed = await sandpool('node', 'list');
    assert.equal(listed.code, ExitCode.Ok, listed.stderr);
    const [node] = listed.json as { name: string; live: boolean }[];
    assert.ok(node?.live);
    const stopped = await sandpool('session', 'stop', '-n', 'cli', ...scope, '--identifier', 'u1');
    assert.equal(stopped.code, ExitCode.Ok, stopped.stderr);
    const drained = await sandpool('node', 'drain', node.name, '--wait');
    assert.equal(drained.code, ExitCode.Ok, drained.stderr);
    assert.equal(drained.json.draining, true);
    const refused = await sandpool(
      'session', 'code-interpreter', 'execute', '-n', 'cli', ...scope, '--identifier', 'u3', '--code', 'x',
    ); // prettier-ignore
    assert.equal(refused.code, ExitCode.Busy, 'a draining node starts no session');
    assert.match(refused.stderr, /draining/);
  });
});
