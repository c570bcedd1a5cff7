/**
 * E2B's own SDKs from npm, unchanged, against a running Sandpool with real sandboxes: the newest `e2b`
 * and `@e2b/code-interpreter` on the single-URL route, and e2b 2.50 on the `/sandboxes` path
 * generation. Every call below is one a user makes; the assertions are what their code relies on.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';

import { Sandbox as CodeSandbox } from '@e2b/code-interpreter';
import {
  CommandExitError,
  FileNotFoundError,
  FilesystemEventType,
  Sandbox,
  SandboxError,
  SandboxNotFoundError,
} from 'e2b';
import { Sandbox as OlderSandbox } from 'e2b-2-50';

import { armPath, DATA, poolPath, startTestServer, SUBSCRIPTION, until } from '../server-harness.js';

const DOMAIN = 'sandpool.test';
const GROUP = 'e2b';

/** A sandbox's tokens, which the SDK keeps on the instance without a public getter. */
const tokensOf = (sandbox: Sandbox) =>
  sandbox as unknown as { envdAccessToken: string; trafficAccessToken: string };

/**
 * A GET to the server with this Host header, as an SDK before 2.7 or `getHost(port)` sends it (fetch
 * will not set Host): its status and body.
 */
function getByHost(
  serverUrl: string,
  host: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const { port } = new URL(serverUrl);
  return new Promise((resolve, reject) => {
    const sent = httpRequest({ host: '127.0.0.1', port, path, headers: { ...headers, host } }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    sent.on('error', reject);
    sent.end();
  });
}

describe('E2B SDKs against Sandpool', async () => {
  const server = await startTestServer('e2b', {
    env: {
      SANDPOOL_E2B_TEMPLATES: '["base","code-interpreter-v1"]',
      SANDPOOL_DEFAULT_SUBSCRIPTION: SUBSCRIPTION,
    },
  });
  const keyWith = async (roles: string[]): Promise<{ id: string; e2bKey: string }> => {
    const made = await server.request('POST', '/sandpool/apiKeys', { body: { name: 'e2b user', roles } });
    assert.equal(made.status, 201, made.text);
    return { id: made.json.id, e2bKey: made.json.e2bKey };
  };
  const user = await keyWith(['SessionExecutor', 'Reader']);
  const options = (apiKey = user.e2bKey) => ({
    apiKey,
    apiUrl: server.url,
    sandboxUrl: server.url,
    domain: DOMAIN,
  });

  describe('lifecycle', () => {
    it('creates with metadata and env vars, lists by filter, connects, moves the timeout and kills', async () => {
      const run = `run-${Date.now()}`;
      const sandbox = await Sandbox.create('base', {
        ...options(),
        metadata: { run, role: 'first' },
        envs: { GREETING: 'hello' },
        timeoutMs: 120_000,
      });
      const other = await Sandbox.create('base', { ...options(), metadata: { run, role: 'second' } });
      assert.match(sandbox.sandboxId, /^[a-z0-9]{20}$/);

      const info = await sandbox.getInfo();
      assert.equal(info.templateId, 'base');
      assert.deepEqual(info.metadata, { run, role: 'first' });
      assert.equal(info.state, 'running');
      const lifetime = info.endAt.getTime() - info.startedAt.getTime();
      assert.ok(Math.abs(lifetime - 120_000) < 2_000, `lifetime ${lifetime} ms`);

      const env = await sandbox.commands.run(
        'echo "$GREETING $E2B_SANDBOX $E2B_SANDBOX_ID $E2B_TEMPLATE_ID"',
      );
      assert.equal(env.stdout.trim(), `hello true ${sandbox.sandboxId} base`);

      const byMetadata = await Sandbox.list({
        ...options(),
        query: { metadata: { run, role: 'second' } },
      }).nextItems();
      assert.deepEqual(
        byMetadata.map((s) => s.sandboxId),
        [other.sandboxId],
      );
      const pages = Sandbox.list({ ...options(), query: { metadata: { run } }, limit: 1 });
      const seen: string[] = [];
      while (pages.hasNext) seen.push(...(await pages.nextItems()).map((s) => s.sandboxId));
      assert.deepEqual(seen.sort(), [sandbox.sandboxId, other.sandboxId].sort());
      assert.deepEqual(
        await Sandbox.list({ ...options(), query: { metadata: { run }, state: ['paused'] } }).nextItems(),
        [],
      );

      await sandbox.setTimeout(600_000);
      const extended = (await sandbox.getInfo()).endAt.getTime();
      assert.ok(extended - Date.now() > 590_000, 'setTimeout moves the deadline');
      const connected = await Sandbox.connect(sandbox.sandboxId, { ...options(), timeoutMs: 60_000 });
      assert.equal(
        (await connected.getInfo()).endAt.getTime(),
        extended,
        'connect never shortens the lifetime',
      );
      assert.equal((await connected.commands.run('echo again')).stdout, 'again\n');

      assert.equal(await sandbox.kill(), true);
      assert.equal(await sandbox.isRunning(), false);
      await assert.rejects(Sandbox.getInfo(sandbox.sandboxId, options()), SandboxNotFoundError);
      await assert.rejects(Sandbox.connect(sandbox.sandboxId, options()), SandboxNotFoundError);
      assert.equal(await Sandbox.kill(sandbox.sandboxId, options()), false, 'a second kill finds nothing');
      await other.kill();
    });

    it('ends a sandbox at its deadline, and the session ended stopped is gone from both APIs', async () => {
      const sandbox = await Sandbox.create('base', { ...options(), timeoutMs: 2_000 });
      assert.equal(await sandbox.isRunning(), true);
      await until('the deadline passes', async () => !(await sandbox.isRunning()), 10_000);
      await assert.rejects(sandbox.getInfo(), SandboxNotFoundError);
    });

    it('reports metrics within the asked range', async () => {
      const sandbox = await Sandbox.create('base', options());
      const metrics = await until('a first sample', async () => {
        const samples = await sandbox.getMetrics();
        return samples.length > 0 && samples;
      });
      assert.ok(
        metrics[0]!.memUsed > 0 && metrics[0]!.memTotal >= metrics[0]!.memUsed,
        JSON.stringify(metrics[0]),
      );
      assert.ok(metrics[0]!.cpuCount >= 1);
      const past = await sandbox.getMetrics({
        start: new Date(Date.now() - 3_600_000),
        end: new Date(Date.now() - 1_800_000),
      });
      assert.deepEqual(past, []);
      await sandbox.kill();
    });

    it('refuses what Sandpool does not have with E2B’s error, never ignoring it', async () => {
      const sandbox = await Sandbox.create('base', options());
      await assert.rejects(sandbox.pause(), (error: Error) => /not supported/i.test(error.message));
      await sandbox.kill();
      await assert.rejects(Sandbox.create('no-such-template', options()), (error: Error) =>
        /no-such-template/.test(error.message),
      );
    });
  });

  describe('commands', () => {
    it('runs with exit codes, env vars, working directory, stdin, background and kill', async () => {
      const sandbox = await Sandbox.create('base', options());
      const whoami = await sandbox.commands.run('id -un; pwd; echo "$HOME"');
      assert.equal(whoami.stdout, 'user\n/home/user\n/home/user\n');

      const failed = await sandbox.commands
        .run('echo out; echo err >&2; exit 3')
        .catch((error: unknown) => error);
      assert.ok(failed instanceof CommandExitError, String(failed));
      assert.equal(failed.exitCode, 3);
      assert.equal(failed.stdout, 'out\n');
      assert.equal(failed.stderr, 'err\n');

      // Commands that end at once, many at a time: none loses its output to the race with its start.
      const quick = await Promise.all(
        Array.from({ length: 12 }, (_, i) => sandbox.commands.run(`echo ${i}`)),
      );
      assert.deepEqual(
        quick.map((result) => result.stdout),
        Array.from({ length: 12 }, (_, i) => `${i}\n`),
      );

      const scoped = await sandbox.commands.run('echo "$ONLY_HERE"; pwd', {
        envs: { ONLY_HERE: 'yes' },
        cwd: '/tmp',
      });
      assert.equal(scoped.stdout, 'yes\n/tmp\n');

      const streamed: string[] = [];
      const cat = await sandbox.commands.run('cat', {
        background: true,
        stdin: true,
        onStdout: (data) => void streamed.push(data),
      });
      await sandbox.commands.sendStdin(cat.pid, 'first line\n');
      await sandbox.commands.closeStdin(cat.pid);
      const catDone = await cat.wait();
      assert.equal(catDone.stdout, 'first line\n');
      assert.equal(streamed.join(''), 'first line\n');

      const sleeper = await sandbox.commands.run('sleep 300', { background: true });
      const listed = await sandbox.commands.list();
      assert.ok(
        listed.some((p) => p.pid === sleeper.pid && p.args.includes('sleep 300')),
        JSON.stringify(listed),
      );
      const reattached = await sandbox.commands.connect(sleeper.pid);
      assert.equal(await sandbox.commands.kill(sleeper.pid), true);
      await assert.rejects(reattached.wait(), (error: unknown) => error instanceof CommandExitError);
      assert.equal(await sandbox.commands.kill(sleeper.pid), false, 'a gone process is not found');

      await assert.rejects(sandbox.commands.run('id -u', { user: 'root' }), SandboxError);
      await sandbox.kill();
    });

    it('kill resets every open stream: a background command and a runCode in flight both fail', async () => {
      const sandbox = await CodeSandbox.create(options());
      const waiting = await sandbox.commands.run('sleep 300', { background: true });
      const waited = waiting.wait().then(
        () => 'finished',
        (error: unknown) => error,
      );
      const running = sandbox.runCode('import time\nprint("started", flush=True)\ntime.sleep(300)').then(
        () => 'finished',
        (error: unknown) => error,
      );
      await until('the sleep is running', async () => (await sandbox.commands.list()).length > 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await sandbox.kill();
      const [commandOutcome, codeOutcome] = await Promise.all([waited, running]);
      assert.ok(commandOutcome instanceof Error, `the command's wait ${String(commandOutcome)}`);
      assert.ok(codeOutcome instanceof Error, `runCode ${String(codeOutcome)}`);
    });

    it('gives a terminal: PTY with input, resize and kill', async () => {
      const sandbox = await Sandbox.create('base', options());
      const decoder = new TextDecoder();
      let screen = '';
      const terminal = await sandbox.pty.create({
        cols: 80,
        rows: 24,
        onData: (data) => void (screen += decoder.decode(data)),
      });
      await sandbox.pty.sendInput(terminal.pid, new TextEncoder().encode('stty size; tty\n'));
      // The terminal's size, then its device: a pseudo-terminal of the sandbox's own.
      await until('the size and the terminal are echoed', () => /24 80\r\n\/dev\/pts\/\d+/.test(screen));
      await sandbox.pty.resize(terminal.pid, { cols: 100, rows: 40 });
      await sandbox.pty.sendInput(terminal.pid, new TextEncoder().encode('stty size\n'));
      await until('the new size is echoed', () => /40 100/.test(screen));
      assert.equal(await sandbox.pty.kill(terminal.pid), true);
      await assert.rejects(terminal.wait());
      await sandbox.kill();
    });
  });

  describe('files', () => {
    it('writes, reads, lists, moves, removes and reports, gzip too', async () => {
      const sandbox = await Sandbox.create('base', options());
      const written = await sandbox.files.write('notes/a.txt', 'alpha');
      assert.equal(written.path, '/home/user/notes/a.txt');
      assert.equal(await sandbox.files.read('/home/user/notes/a.txt'), 'alpha');
      const bytes = new Uint8Array([0, 1, 2, 250, 255]);
      await sandbox.files.write('/tmp/raw.bin', bytes.buffer);
      assert.deepEqual(await sandbox.files.read('/tmp/raw.bin', { format: 'bytes' }), bytes);

      await sandbox.files.write([
        { path: 'notes/deep/b.txt', data: 'beta' },
        { path: 'notes/c.txt', data: 'gamma' },
      ]);
      const shallow = await sandbox.files.list('notes');
      assert.deepEqual(shallow.map((e) => e.name).sort(), ['a.txt', 'c.txt', 'deep']);
      const deep = await sandbox.files.list('notes', { depth: 2 });
      assert.ok(
        deep.some((e) => e.path === '/home/user/notes/deep/b.txt'),
        JSON.stringify(deep.map((e) => e.path)),
      );

      const info = await sandbox.files.getInfo('notes/a.txt');
      assert.equal(info.type, 'file');
      assert.equal(info.size, 5);
      assert.equal(info.owner, 'user');
      assert.equal(await sandbox.files.exists('notes/missing'), false);
      assert.equal(await sandbox.files.makeDir('made/here'), true);
      assert.equal(
        await sandbox.files.makeDir('made/here'),
        false,
        'an existing directory is not made again',
      );

      const moved = await sandbox.files.rename('notes/a.txt', 'notes/renamed.txt');
      assert.equal(moved.path, '/home/user/notes/renamed.txt');
      await sandbox.files.remove('notes/deep');
      assert.equal(await sandbox.files.exists('notes/deep/b.txt'), false);
      await assert.rejects(sandbox.files.read('notes/a.txt'), FileNotFoundError);

      const compressed = await server.request(
        'POST',
        `/files?path=${encodeURIComponent('/tmp/zipped.txt')}&username=user`,
        {
          raw: gzipSync('compressed body'),
          headers: {
            'content-type': 'application/octet-stream',
            'content-encoding': 'gzip',
            'e2b-sandbox-id': sandbox.sandboxId,
            'e2b-sandbox-port': '49983',
            'x-access-token': tokensOf(sandbox).envdAccessToken,
          },
          key: null,
        },
      );
      assert.equal(compressed.status, 200, compressed.text);
      assert.equal(await sandbox.files.read('/tmp/zipped.txt'), 'compressed body');
      await sandbox.kill();
    });

    it('watches a directory recursively', async () => {
      const sandbox = await Sandbox.create('base', options());
      await sandbox.files.makeDir('watched/inner');
      const events: { name: string; type: FilesystemEventType }[] = [];
      const watch = await sandbox.files.watchDir('watched', (event) => void events.push(event), {
        recursive: true,
      });
      await sandbox.files.write('watched/inner/new.txt', 'x');
      await sandbox.files.remove('watched/inner/new.txt');
      await until('the write and the removal are seen', () =>
        events.some((e) => e.name === 'inner/new.txt' && e.type === FilesystemEventType.REMOVE),
      );
      assert.ok(
        events.some((e) => e.name === 'inner/new.txt' && e.type === FilesystemEventType.WRITE),
        JSON.stringify(events),
      );
      await watch.stop();
      await sandbox.kill();
    });

    it('signs upload and download URLs that work without the key, and not once expired', async () => {
      const sandbox = await Sandbox.create('base', options());
      const upload = await sandbox.uploadUrl('/tmp/signed.txt', { useSignatureExpiration: 60 });
      const form = new FormData();
      form.append('file', new Blob(['signed body']), 'signed.txt');
      const uploaded = await fetch(upload, { method: 'POST', body: form });
      assert.equal(uploaded.status, 200, await uploaded.text());
      const download = await sandbox.downloadUrl('/tmp/signed.txt', { useSignatureExpiration: 60 });
      assert.doesNotMatch(download, new RegExp(sandbox.sandboxId), 'the single URL names no sandbox');
      assert.equal(await (await fetch(download)).text(), 'signed body');
      const tampered = download.replace('signed.txt', 'other.txt');
      assert.equal((await fetch(tampered)).status, 401);
      const expired = await sandbox.downloadUrl('/tmp/signed.txt', { useSignatureExpiration: 1 });
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      assert.equal((await fetch(expired)).status, 401);
      await sandbox.kill();
    });
  });

  describe('code interpreter', () => {
    it('keeps state, streams output and returns rich results', async () => {
      const sandbox = await CodeSandbox.create(options());
      const printed: string[] = [];
      const first = await sandbox.runCode('x = 41\nprint("hi")\nx + 1', {
        onStdout: (m) => void printed.push(m.line),
      });
      assert.equal(first.text, '42');
      assert.deepEqual(first.logs.stdout, ['hi\n']);
      assert.deepEqual(printed, ['hi\n']);
      assert.equal((await sandbox.runCode('x')).text, '41', 'state survives between calls');
      assert.ok(first.executionCount! >= 1);

      const chart = await sandbox.runCode(
        'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 5, 6], label="line")\nplt.title("rising")\nplt.show()',
      );
      const figure = chart.results[0]!;
      assert.ok(figure.png && Buffer.from(figure.png, 'base64').subarray(1, 4).toString() === 'PNG');
      assert.ok(figure.chart);
      assert.equal(figure.chart.type, 'line');
      assert.equal(figure.chart.title, 'rising');

      const picture = await sandbox.runCode('from PIL import Image\nImage.new("RGB", (3, 2), "red")');
      const pixels = Buffer.from(picture.results[0]!.png!, 'base64');
      assert.equal(pixels.subarray(1, 4).toString(), 'PNG');
      assert.equal(pixels.readUInt32BE(16), 3, 'the image is 3 pixels wide');

      const frame = await sandbox.runCode(
        'import pandas as pd\npd.DataFrame({"a": [1, 2], "b": [3.5, None]})',
      );
      assert.match(frame.results[0]!.html!, /<table/);
      assert.deepEqual(frame.results[0]!.data, { a: [1, 2], b: [3.5, null] });

      const broken = await sandbox.runCode('def f():\n    return 1 / 0\nf()');
      assert.ok(broken.error);
      assert.equal(broken.error.name, 'ZeroDivisionError');
      assert.equal(broken.error.value, 'division by zero');
      assert.match(broken.error.traceback, /return 1 \/ 0/);

      const html = await sandbox.runCode(
        'class Bold:\n    def _repr_html_(self):\n        return "<b>bold</b>"\ndisplay(Bold())\n1;',
      );
      assert.deepEqual(
        html.results.map((r) => r.html),
        ['<b>bold</b>'],
      );
      await sandbox.kill();
    });

    it('keeps contexts apart, each with its own directory, and restarts and removes them', async () => {
      const sandbox = await CodeSandbox.create(options());
      const context = await sandbox.createCodeContext({ cwd: '/tmp', language: 'python' });
      assert.equal(context.cwd, '/tmp');
      assert.equal((await sandbox.runCode('import os\nos.getcwd()', { context })).text, '/tmp');
      await sandbox.runCode('y = "in context"', { context });
      assert.equal((await sandbox.runCode('y', { context })).text, 'in context');
      assert.equal(
        (await sandbox.runCode('"y" in globals()')).text,
        'False',
        'the default context does not see it',
      );
      assert.ok((await sandbox.listCodeContexts()).some((c) => c.id === context.id));
      await sandbox.restartCodeContext(context);
      assert.equal(
        (await sandbox.runCode('"y" in globals()', { context })).text,
        'False',
        'a restart clears the state',
      );
      await sandbox.removeCodeContext(context);
      assert.ok(!(await sandbox.listCodeContexts()).some((c) => c.id === context.id));
      await assert.rejects(sandbox.runCode('1', { context }));
      await assert.rejects(sandbox.createCodeContext({ language: 'r' }), /501|not supported/i);
      await sandbox.kill();
    });
  });

  describe('older SDK and the other front door', () => {
    it('e2b 2.50 creates on /sandboxes and runs commands', async () => {
      const sandbox = await OlderSandbox.create('base', options());
      assert.equal((await sandbox.commands.run('echo older')).stdout, 'older\n');
      await sandbox.files.write('old.txt', 'from 2.50');
      assert.equal(await sandbox.files.read('old.txt'), 'from 2.50');
      await sandbox.kill();
    });

    it('reaches a sandbox started through E2B by its identifier through Azure’s API, and the other way round', async () => {
      const sandbox = await CodeSandbox.create(options());
      await sandbox.runCode('shared = "from e2b"');
      const at = `${poolPath('code-interpreter-v1', GROUP)}/executions?${DATA}&identifier=${sandbox.sandboxId}`;
      const azure = await server.request('POST', at, {
        body: { code: 'print(shared)', codeInputType: 'Inline', executionType: 'Synchronous' },
      });
      assert.equal(azure.status, 200, azure.text);
      assert.equal(azure.json.result.stdout, 'from e2b\n');
      await sandbox.kill();
      const ended = await server.request(
        'GET',
        `${poolPath('code-interpreter-v1', GROUP)}/sessions/${sandbox.sandboxId}?${DATA}`,
      );
      assert.equal(ended.status, 404, 'killed through E2B, gone through Azure');
    });
  });

  describe('routing by host name', () => {
    it('reaches envd at {port}-{id}.{domain}, as SDKs before 2.7 and getHost() address it', async () => {
      const sandbox = await Sandbox.create('base', options());
      const statusAt = async (host: string, token: string) =>
        (await getByHost(server.url, host, '/health', { 'x-access-token': token })).status;
      const token = tokensOf(sandbox).envdAccessToken;
      assert.equal(sandbox.getHost(49983), `49983-${sandbox.sandboxId}.${DOMAIN}`);
      assert.equal(await statusAt(sandbox.getHost(49983), token), 204);
      assert.equal(await statusAt(`49983-${'b'.repeat(20)}.${DOMAIN}`, token), 502);
      await sandbox.kill();
      assert.equal(await statusAt(sandbox.getHost(49983), token), 502);
    });
  });

  describe('sandbox ports', () => {
    it('passes requests on to a server the sandbox runs, by the port header or host name, with its traffic token', async () => {
      const sandbox = await Sandbox.create('base', options());
      const { trafficAccessToken, envdAccessToken } = tokensOf(sandbox);
      await sandbox.files.write('/tmp/site/hello.txt', 'served from the sandbox');
      await sandbox.commands.run('python3 -m http.server 8000 --bind 127.0.0.1 --directory /tmp/site', {
        background: true,
      });
      const at = (path: string, headers: Record<string, string>, init: RequestInit = {}) =>
        fetch(`${server.url}${path}`, {
          ...init,
          headers: { 'e2b-sandbox-id': sandbox.sandboxId, 'e2b-sandbox-port': '8000', ...headers },
        });
      const served = await until('the server listens', async () => {
        const answer = await at('/hello.txt', { 'e2b-traffic-access-token': trafficAccessToken });
        return answer.status === 200 && answer;
      });
      assert.equal(await served.text(), 'served from the sandbox');
      assert.equal((await at('/missing', { 'x-access-token': envdAccessToken })).status, 404);
      assert.equal((await at('/hello.txt', {})).status, 401, 'a port takes the sandbox’s token');
      const closed = await fetch(`${server.url}/`, {
        headers: {
          'e2b-sandbox-id': sandbox.sandboxId,
          'e2b-sandbox-port': '8001',
          'e2b-traffic-access-token': trafficAccessToken,
        },
      });
      assert.equal(closed.status, 502);
      assert.equal(((await closed.json()) as { error_code: string }).error_code, 'SandboxPortClosed');

      // The program sees the request's own headers, never a credential the caller sent.
      await sandbox.files.write(
        '/tmp/echo.py',
        [
          'import http.server, json',
          'class Echo(http.server.BaseHTTPRequestHandler):',
          '    def do_GET(self):',
          '        body = json.dumps(dict(self.headers)).encode()',
          '        self.send_response(200)',
          '        self.end_headers()',
          '        self.wfile.write(body)',
          'http.server.HTTPServer(("127.0.0.1", 8002), Echo).serve_forever()',
        ].join('\n'),
      );
      await sandbox.commands.run('python3 /tmp/echo.py', { background: true });
      const echoed = await until('the echo server listens', async () => {
        const answer = await fetch(`${server.url}/`, {
          headers: {
            'e2b-sandbox-id': sandbox.sandboxId,
            'e2b-sandbox-port': '8002',
            'e2b-traffic-access-token': trafficAccessToken,
            authorization: `Bearer ${user.e2bKey}`,
            'x-api-key': user.e2bKey,
            'x-custom': 'kept',
          },
        });
        return answer.status === 200 && ((await answer.json()) as Record<string, string>);
      });
      assert.equal(echoed['x-custom'] ?? echoed['X-Custom'], 'kept');
      assert.doesNotMatch(JSON.stringify(echoed), new RegExp(`${trafficAccessToken}|${user.e2bKey}`));

      assert.deepEqual(
        await getByHost(server.url, sandbox.getHost(8000), '/hello.txt', {
          'e2b-traffic-access-token': trafficAccessToken,
        }),
        { status: 200, body: 'served from the sandbox' },
      );
      await sandbox.kill();
    });
  });

  describe('authorization', () => {
    it('refuses no key, an unknown key, a revoked key and a key without the role', async () => {
      const bare = await server.request('POST', '/v2/sandboxes', { body: { templateID: 'base' }, key: null });
      assert.equal(bare.status, 401);
      assert.equal(bare.json.code, 401);
      assert.equal(typeof bare.json.message, 'string');
      await assert.rejects(
        Sandbox.create('base', options(`e2b_${'0'.repeat(40)}`)),
        /401|unauthori[sz]ed|invalid/i,
      );
      const revoked = await keyWith(['SessionExecutor']);
      assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${revoked.id}`)).status, 200);
      await assert.rejects(
        Sandbox.create('base', options(revoked.e2bKey)),
        /401|unauthori[sz]ed|revoked|invalid/i,
      );
      const reader = await keyWith(['Reader']);
      await assert.rejects(Sandbox.create('base', options(reader.e2bKey)), /403|forbidden|permission/i);
      const otherPool = await keyWith([`SessionExecutor:${armPath('code-interpreter-v1', GROUP)}`]);
      await assert.rejects(Sandbox.create('base', options(otherPool.e2bKey)), /403|forbidden|permission/i);
      const otherGroup = await keyWith([
        `SessionExecutor:/subscriptions/${SUBSCRIPTION}/resourceGroups/tests`,
      ]);
      await assert.rejects(Sandbox.create('base', options(otherGroup.e2bKey)), /403|forbidden|permission/i);
    });

    it('keeps two users’ sandboxes invisible to each other', async () => {
      const other = await keyWith(['SessionExecutor']);
      const mine = await Sandbox.create('base', options());
      const theirs = await Sandbox.create('base', options(other.e2bKey));
      const theirList = await Sandbox.list(options(other.e2bKey)).nextItems();
      assert.deepEqual(
        theirList.map((s) => s.sandboxId),
        [theirs.sandboxId],
      );
      await assert.rejects(Sandbox.getInfo(mine.sandboxId, options(other.e2bKey)), SandboxNotFoundError);
      await assert.rejects(Sandbox.connect(mine.sandboxId, options(other.e2bKey)), SandboxNotFoundError);
      assert.equal(await Sandbox.kill(mine.sandboxId, options(other.e2bKey)), false);
      assert.equal(await mine.isRunning(), true);
      const wrongToken = await server.request('POST', '/process.Process/List', {
        body: {},
        headers: {
          'e2b-sandbox-id': mine.sandboxId,
          'e2b-sandbox-port': '49983',
          'x-access-token': tokensOf(theirs).envdAccessToken,
        },
        key: null,
      });
      assert.equal(wrongToken.status, 401, 'one sandbox’s access token does not open another');
      await Promise.all([mine.kill(), theirs.kill()]);
    });

    it('answers 502 with E2B’s body for an unknown sandbox', async () => {
      const id = 'a'.repeat(20);
      const reply = await server.request('GET', '/health', {
        headers: { 'e2b-sandbox-id': id, 'e2b-sandbox-port': '49983' },
        key: null,
      });
      assert.equal(reply.status, 502);
      assert.equal(reply.json.code, 502);
      assert.equal(reply.json.message, 'The sandbox was not found');
      assert.equal(reply.json.sandboxId, id);
    });
  });
});
