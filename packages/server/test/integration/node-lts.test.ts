/**
 * NodeLTS pools end to end with real sandboxes and the real Node image: state across executions
 * (redeclared too), top-level await and `import`, the last expression's value, console output and a
 * child process's captured at the descriptor level, errors with their stack, time limits that keep
 * the session, memory that ends it, /mnt/data shared with the files API, the image's packages,
 * streamed output, the MCP tool, and JavaScript's share of the escape battery.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

import {
  ADMIN_KEY,
  DATA,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
  type TestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

describe('NodeLTS pools with real sandboxes', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('node-lts');
  assert.equal(
    await createPool(server, 'jspool', interpreterPool({ max: 12, ready: 2, containerType: 'NodeLTS' })),
    'Succeeded',
  );
  const run = async (identifier: string, code: string, extra: object = {}) => {
    const answer = await execute(server, 'jspool', identifier, code, extra);
    assert.equal(answer.status, 200, answer.text);
    return answer.json as {
      status: string;
      result: { stdout: string; stderr: string; executionResult: unknown } | null;
      error?: { code: string; message: string };
    };
  };
  const value = async (identifier: string, code: string) => {
    const answer = await run(identifier, code);
    assert.equal(answer.status, 'Succeeded', JSON.stringify(answer));
    return answer.result!.executionResult;
  };

  it('keeps variables and functions across executions, and answers the last expression', async () => {
    assert.equal(await value('state', 'const x = 41; function inc(n) { return n + 1 }\ninc(x)'), 42);
    assert.equal(await value('state', 'x * 2'), 82);
    // A notebook runs a cell again: its declarations may be declared again.
    assert.equal(await value('state', 'const x = 1; class Point { constructor(x) { this.x = x } }\nx'), 1);
    assert.equal(await value('state', 'new Point(3).x + x'), 4);
    assert.equal(await value('state', "'text'"), 'text');
    assert.equal(await value('state', 'let nothing; nothing'), null);
    assert.equal(
      await value('state', '({ a: 1, list: [1, 2, 3], map: new Map([[1, 2]]) })'),
      '{ a: 1, list: [ 1, 2, 3 ], map: Map(1) { 1 => 2 } }',
    );
    assert.equal(await value('state', '2n ** 64n'), '18446744073709551616n');
    assert.equal(await value('state', '1 / 0'), 'Infinity');
    assert.equal(await value('other-state', 'typeof x'), 'undefined', 'another identifier has its own state');
  });

  it('awaits at the top level, imports modules and loads the image’s packages', async () => {
    assert.equal(
      await value(
        'async',
        'const wait = (ms) => new Promise((r) => setTimeout(r, ms));\nawait wait(20);\nconst got = await Promise.resolve(5);\ngot * 2',
      ),
      10,
    );
    assert.equal(await value('async', 'got + 1'), 6, 'a declaration after an await lives on');
    assert.equal(await value('async', "import { join } from 'node:path';\njoin('a', 'b')"), 'a/b');
    assert.equal(await value('async', "const _ = require('lodash'); _.chunk([1, 2, 3, 4], 2).length"), 2);
    assert.equal(await value('async', "const { z } = await import('zod'); z.string().parse('ok')"), 'ok');
    assert.equal(await value('async', "require('dayjs')('2026-01-02').format('DD/MM/YYYY')"), '02/01/2026');
    const png = await value(
      'async',
      "const sharp = require('sharp');\n(await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } }).png().toBuffer()).subarray(1, 4).toString()",
    );
    assert.equal(png, 'PNG', 'sharp’s native library works in the sandbox');
  });

  it('captures console output and a child process’s at the descriptor level, and streams it', async () => {
    const answer = await run(
      'output',
      "console.log('out'); console.error('err'); require('node:child_process').execSync('echo child; echo child-err >&2', { stdio: 'inherit' }); process.stdout.write('raw')",
    );
    assert.equal(answer.result!.stdout, 'out\nchild\nraw');
    assert.equal(answer.result!.stderr, 'err\nchild-err\n');
    // More than a pipe holds, written while the agent's main thread is busy.
    const flood = await run('output', 'for (let i = 0; i < 30000; i++) console.log(i)', {
      outputStreamsMaxLength: 100,
    });
    assert.equal(flood.status, 'Succeeded');
    assert.equal(flood.result!.stdout.length, 100);

    const streamed = await fetch(`${server.url}${poolPath('jspool')}/executions?${DATA}&identifier=output`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN_KEY}`,
        'content-type': 'application/json',
        accept: 'text/event-stream',
      },
      body: JSON.stringify({
        code: "for (const i of [1, 2]) { console.log(i); await new Promise((r) => setTimeout(r, 100)) }\n'done'",
      }),
    });
    const events = await streamed.text();
    assert.match(events, /event: stdout\ndata: \{"text":"1\\n"\}/);
    assert.match(events, /event: result\ndata: .*"executionResult":"done"/);
  });

  it('reports errors with their stack, and a syntax error with its place', async () => {
    const thrown = await run('errors', 'function fail() { throw new TypeError("bad input") }\nfail()');
    assert.equal(thrown.status, 'Failed');
    assert.equal(thrown.error?.code, 'ExecutionError');
    assert.equal(thrown.error.message, 'TypeError: bad input');
    assert.match(thrown.result!.stderr, /TypeError: bad input\n\s+at fail \(<cell>:1:25\)/);
    assert.doesNotMatch(thrown.result!.stderr, /agent\.mjs|node:internal/);
    const syntax = await run('errors', 'let = ;');
    assert.match(syntax.error!.message, /^SyntaxError: .*\(1:\d+\)/);
    const value = await run('errors', 'throw 42');
    assert.match(value.error!.message, /42/);
    // A failure the code leaves behind (a rejected promise nobody awaits) does not end the session.
    await run('errors', "Promise.reject(new Error('later')); const still = 'alive'");
    assert.equal(await (async () => (await run('errors', 'still')).result!.executionResult)(), 'alive');
  });

  it('interrupts code past its time limit and keeps the session', async () => {
    await value('timeout', 'const kept = 7');
    const spinning = await run('timeout', 'while (true) {}', { timeoutInSeconds: 1 });
    assert.equal(spinning.status, 'Failed');
    assert.equal(spinning.error?.code, 'ExecutionTimeout');
    const waiting = await run('timeout', 'await new Promise(() => {})', { timeoutInSeconds: 1 });
    assert.equal(waiting.error?.code, 'ExecutionTimeout');
    assert.equal(await value('timeout', 'kept'), 7, 'the session and its state survive both');
  });

  it('ends a session that runs out of memory and says so to the next request', async () => {
    const lost = await run('hog', 'const hog = []; for (;;) hog.push(Buffer.alloc(64 * 1024 * 1024, 1))');
    assert.equal(lost.status, 'Failed');
    assert.equal(lost.error?.code, 'SessionLost');
    const next = await execute(server, 'jspool', 'hog', "'fresh'");
    assert.equal(next.json.result.executionResult, 'fresh');
    assert.equal(next.headers.get('x-sandpool-previous-session-ended'), 'oom');
  });

  it('shares /mnt/data with the files API, and serves its runtime and packages as metadata', async () => {
    await value('files', "require('node:fs').writeFileSync('from-js.txt', 'written by node'); process.cwd()");
    const listed = await server.request('GET', `${poolPath('jspool')}/files?${DATA}&identifier=files`);
    assert.ok(listed.json.value.some((f: { name: string }) => f.name === 'from-js.txt'));
    const form = new FormData();
    form.append('file', new Blob(['uploaded']), 'up.txt');
    const uploaded = await fetch(`${server.url}${poolPath('jspool')}/files?${DATA}&identifier=files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      body: form,
    });
    assert.equal(uploaded.status, 200);
    assert.equal(
      await value('files', "require('node:fs').readFileSync('/mnt/data/up.txt', 'utf8')"),
      'uploaded',
    );

    const metadata = await server.request('GET', `${poolPath('jspool')}/metadata?${DATA}`);
    assert.equal(metadata.json.containerType, 'NodeLTS');
    assert.equal(metadata.json.runtimes[0].name, 'node');
    assert.match(metadata.json.runtimes[0].version, /^24\./);
    const packages = metadata.json.preInstalledPackages.map((p: { name: string }) => p.name);
    for (const name of ['axios', 'lodash', 'dayjs', 'zod', 'csv-parse', 'exceljs', 'sharp'])
      assert.ok(packages.includes(name), name);
  });

  it('refuses Python, shell commands and background processes, naming what the pool takes', async () => {
    const shell = await server.request('POST', `${poolPath('jspool')}/executions?${DATA}&identifier=wrong`, {
      body: { shellCommand: 'ls' },
    });
    assert.equal(shell.status, 400);
    assert.match(shell.json.error.message, /send JavaScript in code/);
    const processes = await server.request(
      'POST',
      `${poolPath('jspool')}/processes?${DATA}&identifier=wrong`,
      {
        body: { command: 'ls' },
      },
    );
    assert.equal(processes.status, 400);
    assert.match(processes.json.error.message, /PythonLTS and Shell pools/);
  });

  it('runs JavaScript through the MCP server’s run_javascript tool', async () => {
    const client = new Client({ name: 'node-lts-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${server.url}${poolPath('jspool')}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
      }),
    );
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    assert.ok(names.includes('run_javascript'));
    assert.ok(
      !names.includes('run_python') &&
        !names.includes('run_shell_command') &&
        !names.includes('start_process'),
    );
    await client.callTool({ name: 'run_javascript', arguments: { code: 'const base = 40' } });
    const answer = (await client.callTool({
      name: 'run_javascript',
      arguments: { code: 'base + 2' },
    })) as CallToolResult;
    assert.match((answer.content[0] as { text: string }).text, /result: 42/);
    await client.close();
  });
});

describe('the escape battery, in JavaScript', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('node-escape');
  assert.equal(
    await createPool(server, 'hostilejs', interpreterPool({ max: 4, ready: 1, containerType: 'NodeLTS' })),
    'Succeeded',
  );
  const hostDir = mkdtempSync('/var/tmp/sandpool-test-hostsecret-');
  const hostMarker = join(hostDir, 'host-secret.txt');
  writeFileSync(hostMarker, 'host secret: never readable from a sandbox');
  after(() => rmSync(hostDir, { recursive: true, force: true }));
  const apiPort = Number(new URL(server.url).port);
  const witnessSecret = `witness-${process.pid}-${Date.now()}`;
  await execute(
    server,
    'hostilejs',
    'witness',
    `globalThis.secret = ${JSON.stringify(witnessSecret)}; require('node:fs').writeFileSync('secret.txt', secret)`,
  );

  /** Runs an attempt that answers 'refused: …' when the sandbox stopped it, anything else when it did not. */
  const attempt = async (name: string, body: string) => {
    const answer = await execute(
      server,
      'hostilejs',
      `attacker-${name}`,
      `const attempt = async (f) => { try { const got = await f(); return 'GOT ' + String(got).slice(0, 200) } catch (e) { return 'refused: ' + (e.code ?? e.message) } };\nawait attempt(async () => { ${body} })`,
    );
    assert.equal(answer.status, 200, answer.text);
    const stopped = await server.request(
      'DELETE',
      `${poolPath('hostilejs')}/session?${DATA}&identifier=attacker-${name}`,
    );
    assert.ok([204, 404].includes(stopped.status), stopped.text);
    return String(answer.json.result?.executionResult);
  };

  const attacks: [string, string, RegExp][] = [
    [
      'host-file',
      `return require('node:fs').readFileSync(${JSON.stringify(hostMarker)}, 'utf8')`,
      /^refused: ENOENT/,
    ],
    [
      'host-file-via-proc',
      `return require('node:fs').readFileSync('/proc/1/root' + ${JSON.stringify(hostMarker)}, 'utf8')`,
      /^refused: E(NOENT|ACCES)/,
    ],
    ['shadow', "return require('node:fs').readFileSync('/etc/shadow', 'utf8')", /^refused: E(NOENT|ACCES)/],
    [
      'write-rootfs',
      "require('node:fs').writeFileSync('/usr/local/bin/node', 'x'); return 'written'",
      /^refused: E(ROFS|ACCES|PERM|TXTBSY)/,
    ],
    [
      'api-port',
      `const net = require('node:net'); return await new Promise((ok, no) => { const s = net.connect(${apiPort}, '127.0.0.1', () => ok('connected')); s.on('error', no); setTimeout(() => no(new Error('ETIMEDOUT')), 3000) })`,
      /^refused: E(CONNREFUSED|NETUNREACH|TIMEDOUT)|^refused: ETIMEDOUT/,
    ],
    [
      'outside-dns',
      "return await require('node:dns').promises.lookup('example.com')",
      /^refused: (EAI_AGAIN|ENOTFOUND|ECONNREFUSED)/,
    ],
    [
      'mount',
      "return require('node:child_process').execSync('mount -t tmpfs none /mnt 2>&1').toString()",
      /^refused: /,
    ],
    ['kill-init', "process.kill(1, 'SIGKILL'); return 'sent'", /^refused: E(PERM|SRCH)|^GOT sent$/],
    [
      'other-witness',
      "const seen = require('node:fs').readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).length; if (seen < 20) throw new Error('few'); return seen + ' processes'",
      /^refused: few/,
    ],
    ['ptrace-host', `process.kill(${process.pid}, 0); return 'host process visible'`, /^refused: ESRCH/],
    [
      'capabilities',
      "return require('node:fs').readFileSync('/proc/self/status', 'utf8').match(/CapEff:\\s+(\\w+)/)[1] === '0000000000000000' ? (() => { throw new Error('none') })() : 'has capabilities'",
      /^refused: none/,
    ],
    [
      'no-new-privs',
      "return require('node:fs').readFileSync('/proc/self/status', 'utf8').match(/NoNewPrivs:\\s+(\\d)/)[1] === '1' ? (() => { throw new Error('set') })() : 'privileges may grow'",
      /^refused: set/,
    ],
  ];
  for (const [name, body, refused] of attacks) {
    it(`refuses ${name}`, async () => {
      assert.match(await attempt(name, body), refused);
    });
  }

  it('leaves the witness session and the server as they were', async () => {
    const witness = await execute(
      server,
      'hostilejs',
      'witness',
      "secret + ':' + require('node:fs').readFileSync('secret.txt', 'utf8')",
    );
    assert.equal(witness.json.result.executionResult, `${witnessSecret}:${witnessSecret}`);
  });
});
