/**
 * The sandpool command against real servers with real sandboxes: run in process through main() with
 * captured output (as a shell would see it), and as a child process for exit codes, `serve` and
 * shell completion.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify, stripVTControlCharacters } from 'node:util';
import { describe, it } from 'node:test';

import { SandpoolClient } from '@sandpool/sdk';

import { skipReason } from '../../server/test/integration/harness.js';
import { buildAppImage, buildBusyboxImage, startRegistry } from '../../server/test/registry.js';
import {
  armPath,
  ADMIN_KEY,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  removeServerState,
  startTestServer,
  testConfig,
  testServerEnv,
  type TestServer,
} from '../../server/test/server-harness.js';
import { ExitCode } from '../src/failure.js';
import { shell } from './shell.js';

const bin = fileURLToPath(new URL('../bin/sandpool.js', import.meta.url));

describe('sandpool CLI against a real server', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('cli');
  const { sandpool, configDir } = shell();
  const scope = ['-g', RESOURCE_GROUP];

  it('logs in, keeps the profile private, and shows it without the secret', async () => {
    const login = await sandpool(
      'login',
      '--endpoint',
      server.url,
      '--api-key',
      ADMIN_KEY,
      '--subscription',
      SUBSCRIPTION,
      '--resource-group',
      RESOURCE_GROUP,
    );
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /Signed in to http:\/\/127\.0\.0\.1:\d+ as profile "default"/);
    assert.equal(statSync(join(configDir, 'profiles.json')).mode & 0o777, 0o600);
    const shown = await sandpool('profile', 'show');
    assert.equal(shown.json.endpoint, server.url);
    assert.equal(shown.json.subscription, SUBSCRIPTION);
    assert.equal(shown.json.resourceGroup, RESOURCE_GROUP);
    assert.ok(!shown.stdout.includes(ADMIN_KEY), 'the key is never printed');
  });

  it('refuses a wrong key at login, saying what to do', async () => {
    const other = shell();
    const run = await other.sandpool(
      'login',
      '--endpoint',
      server.url,
      '--api-key',
      `sp_000000000000_${'B'.repeat(43)}`,
    );
    assert.equal(run.code, ExitCode.Unauthorized);
    assert.match(run.stderr, /error: AuthenticationFailed/);
    assert.match(run.stderr, /hint: Sign in with `sandpool login/);
    assert.equal((await other.sandpool('sessionpool', 'list')).code, ExitCode.Usage, 'nothing was saved');
  });

  it('creates, shows, lists, updates and deletes pools with az’s flags', async () => {
    const created = await sandpool(
      'sessionpool',
      'create',
      '-n',
      'clipy',
      ...scope,
      '--max-sessions',
      '4',
      '--ready-sessions',
      '1',
      '--cooldown-period',
      '600',
    );
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.json.properties.provisioningState, 'Succeeded');
    assert.equal(
      created.json.properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds,
      600,
    );
    const shellPool = await sandpool(
      'sessionpool',
      'create',
      '-n',
      'clishell',
      '--container-type',
      'Shell',
      '--max-sessions',
      '2',
      '--ready-sessions',
      '0',
    );
    assert.equal(shellPool.code, 0, shellPool.stderr);

    const table = await sandpool('-o', 'table', 'sessionpool', 'show', '-n', 'clipy');
    const [header, dashes, row] = table.stdout.split('\n');
    assert.match(
      header!,
      /^Name\s+Location\s+ContainerType\s+MaxSessions\s+Ready\s+Allocated\s+ProvisioningState\s+Image\s+Endpoint$/,
    );
    assert.match(dashes!, /^-+\s+-+/);
    assert.match(row!, /^clipy\s+local\s+PythonLTS\s+4\s+/);

    const tsv = await sandpool('-o', 'tsv', 'sessionpool', 'list');
    assert.deepEqual(
      tsv.stdout
        .trim()
        .split('\n')
        .map((line) => line.split('\t')[0])
        .sort(),
      ['clipy', 'clishell'],
    );

    const updated = await sandpool('sessionpool', 'update', '-n', 'clipy', '--max-sessions', '6');
    assert.equal(updated.json.properties.scaleConfiguration.maxConcurrentSessions, 6);
    assert.equal(updated.json.properties.scaleConfiguration.readySessionInstances, 1);
  });

  it('shows a spinner on a terminal while it waits, and only there', async () => {
    const terminal = shell(
      { SANDPOOL_ENDPOINT: server.url, SANDPOOL_API_KEY: ADMIN_KEY },
      { terminal: true },
    );
    const created = await terminal.sandpool('sessionpool', 'create', '-n', 'spun', '--ready-sessions', '0');
    assert.equal(created.code, 0, created.stderr);
    const frames = stripVTControlCharacters(created.stderr);
    assert.match(frames, /⠋ creating session pool spun/);
    assert.match(frames, /✔ creating session pool spun\n$/);
    const deleted = await sandpool('sessionpool', 'delete', '-n', 'spun', '-g', 'sandpool');
    assert.equal(deleted.stderr, '', 'no spinner when stderr is not a terminal');
  });

  it('answers bad flags with exit code 2 before anything is sent', async () => {
    const contradictory = await sandpool(
      'sessionpool',
      'create',
      '-n',
      'never',
      '--lifecycle-type',
      'OnContainerExit',
      '--cooldown-period',
      '60',
    );
    assert.equal(contradictory.code, ExitCode.Usage);
    assert.match(contradictory.stderr, /--cooldown-period is for --lifecycle-type Timed/);
    const badNumber = await sandpool('sessionpool', 'create', '-n', 'never', '--max-sessions', 'lots');
    assert.equal(badNumber.code, ExitCode.Usage);
    const unknown = await sandpool('sessionpool', 'craete');
    assert.equal(unknown.code, ExitCode.Usage);
    assert.match(unknown.stderr, /Did you mean create\?/);
    assert.equal((await sandpool('sessionpool', 'show', '-n', 'never')).code, ExitCode.NotFound);
  });

  it('runs code, moves files and manages sessions with the code-interpreter verbs', async () => {
    const session = ['-n', 'clipy', '--identifier', 'cli-user'];
    await sandpool('session', 'code-interpreter', 'execute', ...session, '--code', 'x = 41');
    const codeFile = join(configDir, 'code.py');
    writeFileSync(codeFile, 'print("from a file")\nx + 1');
    const run = await sandpool(
      'session',
      'code-interpreter',
      'execute',
      ...session,
      '--code',
      `@${codeFile}`,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json.status, 'Succeeded');
    assert.equal(run.json.result.executionResult, 42);
    assert.equal(run.json.result.stdout, 'from a file\n');

    const local = join(configDir, 'report.bin');
    writeFileSync(local, Buffer.from([0, 1, 2, 255]));
    const uploaded = await sandpool(
      'session',
      'code-interpreter',
      'upload-file',
      ...session,
      '--filepath',
      local,
      '--path',
      'in',
    );
    assert.equal(uploaded.json.sizeInBytes, 4);
    const listed = await sandpool(
      '-o',
      'tsv',
      'session',
      'code-interpreter',
      'list-files',
      ...session,
      '--path',
      'in',
    );
    assert.match(listed.stdout, /^report\.bin\tFile\t4\t/);
    const content = await sandpool(
      'session',
      'code-interpreter',
      'show-file-content',
      ...session,
      '--filename',
      'in/report.bin',
    );
    assert.deepEqual([...Buffer.from(content.stdout, 'latin1')].slice(0, 2), [0, 1]);
    const metadata = await sandpool(
      'session',
      'code-interpreter',
      'show-file-metadata',
      ...session,
      '--filename',
      '/mnt/data/in/report.bin',
    );
    assert.equal(metadata.json.directory, '/mnt/data/in');
    assert.equal(
      (
        await sandpool(
          'session',
          'code-interpreter',
          'delete-file',
          ...session,
          '--filename',
          'in/report.bin',
        )
      ).code,
      0,
    );
    const gone = await sandpool(
      'session',
      'code-interpreter',
      'show-file-metadata',
      ...session,
      '--filename',
      'in/report.bin',
    );
    assert.equal(gone.code, ExitCode.NotFound);
    assert.match(gone.stderr, /hint: List the files/);

    const sessions = await sandpool('-o', 'tsv', 'session', 'list', '-n', 'clipy');
    assert.match(sessions.stdout, /^cli-user\t/m);
    assert.equal((await sandpool('session', 'show', ...session)).json.identifier, 'cli-user');
    assert.equal((await sandpool('session', 'stop', ...session)).code, 0);
    assert.equal((await sandpool('session', 'show', ...session)).code, ExitCode.NotFound);
  });

  it('shows a pool’s events and the audit trail', async () => {
    const events = await sandpool(
      '-o',
      'tsv',
      'sessionpool',
      'events',
      '-n',
      'clipy',
      '--type',
      'ended',
      '--since',
      '1h',
    );
    assert.equal(events.code, 0, events.stderr);
    assert.match(events.stdout, /\tended\tcli-user\tstopped\t/);
    const audit = await sandpool(
      '-o',
      'json',
      'audit',
      'list',
      '--action',
      'code.execute',
      '--pool',
      'clipy',
      '--since',
      '1h',
    );
    assert.equal(audit.code, 0, audit.stderr);
    assert.ok(audit.json.length >= 2);
    assert.ok(audit.json.every((e: any) => e.action === 'code.execute' && e.pool === 'clipy'));
    assert.equal((await sandpool('audit', 'list', '--since', 'last-week')).code, ExitCode.Usage);
    const usage = await sandpool('-o', 'csv', 'usage', '--by', 'pool', '--since', '1h');
    assert.equal(usage.code, 0, usage.stderr);
    const [header, ...rows] = usage.stdout.trim().split('\r\n');
    assert.equal(
      header,
      'Key,Sessions,SessionSeconds,CpuSeconds,MemoryGibSeconds,Executions,ReadySeconds,ReadyMemoryGibSeconds',
    );
    const clipy = rows.find((row) => row.startsWith('tests/clipy,'))?.split(',');
    assert.ok(clipy, usage.stdout);
    assert.ok(Number(clipy[1]) >= 1, 'the stopped session counts');
  });

  it('runs shell command lines in a Shell pool', async () => {
    const run = await sandpool(
      'session',
      'shell',
      'execute',
      '-n',
      'clishell',
      '-i',
      'cli-sh',
      '--command',
      'echo hi; exit 3',
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json.status, '3');
    assert.equal(run.json.result.stdout, 'hi\n');

    // --live prints what the command writes as it comes, then the result.
    const live = await sandpool(
      'session',
      'shell',
      'execute',
      '-n',
      'clishell',
      '-i',
      'cli-sh',
      '--live',
      '--output',
      'tsv',
      '--command',
      'echo streamed; echo complained >&2',
    );
    assert.equal(live.code, 0, live.stderr);
    assert.match(live.stdout, /^streamed\n/);
    assert.match(live.stderr, /complained/);
  });

  it('starts a background process, writes to it, follows its output and kills another', async () => {
    const at = ['-n', 'clishell', '-i', 'cli-sh'];
    const started = await sandpool('session', 'process', 'start', ...at, '--command', 'cat; echo bye >&2');
    assert.equal(started.code, 0, started.stderr);
    assert.equal(started.json.status, 'Running');
    const pid = String(started.json.pid);
    const wrote = await sandpool(
      'session',
      'process',
      'write',
      ...at,
      '--pid',
      pid,
      '--text',
      'typed\n',
      '--close',
    );
    assert.equal(wrote.code, 0, wrote.stderr);
    const followed = await sandpool('session', 'process', 'output', ...at, '--pid', pid, '--follow');
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, 'typed\n');
    assert.equal(followed.stderr, 'bye\n');

    const sleeper = await sandpool('session', 'process', 'start', ...at, '--command', 'sleep 60');
    const killed = await sandpool(
      'session',
      'process',
      'kill',
      ...at,
      '--pid',
      String(sleeper.json.pid),
      '--signal',
      'kill',
    );
    assert.equal(killed.code, 0, killed.stderr);
    const listed = await sandpool('session', 'process', 'list', ...at, '--output', 'tsv');
    assert.match(listed.stdout, new RegExp(`^${pid}\tExited\t0\t`, 'm'));
    const refused = await sandpool('session', 'process', 'kill', ...at, '--pid', '1', '--signal', 'STOP');
    assert.equal(refused.code, ExitCode.Usage);
    assert.match(refused.stderr, /--signal must be one of TERM, KILL, INT, HUP/);
    const missing = await sandpool('session', 'process', 'output', ...at, '--pid', '4000000');
    assert.equal(missing.code, ExitCode.NotFound, missing.stderr);
    assert.match(missing.stderr, /ProcessNotFound/);
  });

  it('reports a full pool with exit code 6 and what to do', async () => {
    await sandpool('session', 'shell', 'execute', '-n', 'clishell', '-i', 'fill', '--command', 'true');
    const full = await sandpool(
      'session',
      'shell',
      'execute',
      '-n',
      'clishell',
      '-i',
      'one-too-many',
      '--command',
      'true',
    );
    assert.equal(full.code, ExitCode.Busy);
    assert.match(full.stderr, /SessionPoolFull/);
    assert.match(full.stderr, /hint: Every session is in use/);
  });

  it('creates, uses, lists and revokes credentials', async () => {
    const created = await sandpool(
      'token',
      'create',
      '--roles',
      `SessionExecutor:${armPath('clipy')}`,
      '--name',
      'worker',
    );
    assert.equal(created.code, 0, created.stderr);
    const key = created.json.key as string;
    const worker = shell({
      SANDPOOL_ENDPOINT: server.url,
      SANDPOOL_API_KEY: key,
      SANDPOOL_SUBSCRIPTION: SUBSCRIPTION,
      SANDPOOL_RESOURCE_GROUP: RESOURCE_GROUP,
    });
    const run = await worker.sandpool(
      'session',
      'code-interpreter',
      'execute',
      '-n',
      'clipy',
      '-i',
      'w',
      '--code',
      '2 + 2',
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json.result.executionResult, 4);
    const forbidden = await worker.sandpool('sessionpool', 'list');
    assert.equal(forbidden.code, ExitCode.Unauthorized);
    assert.match(forbidden.stderr, /AuthorizationFailed/);

    const listed = await sandpool('-o', 'tsv', 'token', 'list');
    assert.ok(listed.stdout.split('\n').some((line) => line.startsWith(`${created.json.id}\tworker\t`)));
    const revoked = await sandpool('token', 'revoke', created.json.id);
    assert.ok(revoked.json.revokedAt);
    const refused = await worker.sandpool(
      'session',
      'code-interpreter',
      'execute',
      '-n',
      'clipy',
      '-i',
      'w',
      '--code',
      '1',
    );
    assert.equal(refused.code, ExitCode.Unauthorized);

    const token = await sandpool('token', 'create', '--roles', 'Reader', '--expires-in', '120');
    assert.match(token.json.token, /^ey/);
    assert.ok(Date.parse(token.json.expiresAt) > Date.now());
  });

  it('doctor: checks the host and the signed-in server, with a fix for each failure', async () => {
    const report = await sandpool('doctor');
    assert.equal(report.code, 0, report.stdout + report.stderr);
    for (const line of [
      '✔ runc: runc version',
      '✔ conmon:',
      '✔ cgroups:',
      '✔ code-interpreter image: python 3',
      '✔ server answers:',
      '✔ server: store: ok',
      '✔ server: runtime: ok',
    ]) {
      assert.ok(report.stdout.includes(line), `${line} in\n${report.stdout}`);
    }
    const json = await sandpool('-o', 'json', 'doctor');
    assert.ok(json.json.every((c: any) => typeof c.name === 'string' && typeof c.ok === 'boolean'));

    const bare = shell({ SANDPOOL_HOME: mkdtempSync(join(tmpdir(), 'sandpool-bare-')) });
    const broken = await bare.sandpool('doctor');
    assert.equal(broken.code, ExitCode.Failed);
    assert.match(broken.stdout, /✖ code-interpreter image: no image at .*\n {2}fix: Run scripts\/setup\.sh/);
    assert.ok(!broken.stdout.includes('server answers'), 'no server is checked without a profile');
  });

  it('deletes a pool and waits for it', async () => {
    assert.equal((await sandpool('sessionpool', 'delete', '-n', 'clishell', '--yes')).code, 0);
    assert.equal((await sandpool('sessionpool', 'show', '-n', 'clishell')).code, ExitCode.NotFound);
  });
});

describe('sandpool CLI over TLS', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('clitls', { env: { SANDPOOL_TLS: 'auto' } });
  const certificate = join(server.config.paths.tlsDir, 'self-signed.crt');

  it('refuses an untrusted certificate with a hint, and trusts the server’s own on its host', async () => {
    const stranger = shell({ SANDPOOL_HOME: mkdtempSync(join(tmpdir(), 'sandpool-nohome-')) });
    const refused = await stranger.sandpool('login', '--endpoint', server.url, '--api-key', ADMIN_KEY);
    assert.equal(refused.code, ExitCode.Unreachable);
    assert.match(refused.stderr, /hint: The server’s certificate is not trusted/);

    const local = shell({ SANDPOOL_HOME: server.config.home });
    const login = await local.sandpool('login', '--endpoint', server.url, '--api-key', ADMIN_KEY);
    assert.equal(login.code, 0, login.stderr);
    assert.equal((await local.sandpool('profile', 'show')).json.caFile, certificate);

    const explicit = shell();
    await explicit.sandpool(
      'login',
      '--endpoint',
      server.url,
      '--api-key',
      ADMIN_KEY,
      '--ca-file',
      certificate,
    );
    const listed = await explicit.sandpool('sessionpool', 'list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(listed.json, []);
    assert.ok(readFileSync(certificate).length > 0);
  });
});

describe('sandpool as a process', { skip: skipReason }, () => {
  const run = promisify(execFile);

  it('exits 0 for --version and 2 for an unknown command', async () => {
    assert.equal((await run(process.execPath, [bin, '--version'])).stdout.trim(), '0.1.0');
    await assert.rejects(
      run(process.execPath, [bin, 'sesionpool']),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, ExitCode.Usage);
        assert.match(error.stderr, /unknown command 'sesionpool'/);
        return true;
      },
    );
  });

  it('completes commands, flags and flag choices in bash', async () => {
    const complete = async (...words: string[]) => {
      const script = [
        `source <(${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} completion bash)`,
        `COMP_WORDS=(sandpool ${words.map((w) => JSON.stringify(w)).join(' ')})`,
        `COMP_CWORD=${words.length}`,
        '_sandpool',
        'printf "%s\\n" "${COMPREPLY[@]}"',
      ].join('\n');
      return (await run('bash', ['-c', script])).stdout.trim().split('\n').sort();
    };
    assert.deepEqual(await complete('sessionpool', 'cr'), ['create']);
    assert.deepEqual(await complete('session', 'code-interpreter', 'show-file-'), [
      'show-file-content',
      'show-file-metadata',
    ]);
    assert.deepEqual(await complete('sessionpool', 'create', '-n', 'p', '--container-type', ''), [
      'CustomContainer',
      'NodeLTS',
      'PythonLTS',
      'Shell',
    ]);
    assert.ok((await complete('sessionpool', 'create', '--max-')).includes('--max-sessions'));
  });

  it('serves: `sandpool serve` starts a working server with its default pool and stops on SIGTERM', async () => {
    const home = mkdtempSync('/var/tmp/sandpool-test-cliserve-');
    const env = testServerEnv('cliserve', home);
    const child = spawn(process.execPath, [bin, 'serve', '--default-pool', 'default'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let output = '';
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ready line in: ${output}`)), 60_000);
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          const match = /(http:\/\/127\.0\.0\.1:\d+)/.exec(output);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${output}`)));
      });
      const { sandpool } = shell({ SANDPOOL_ENDPOINT: url, SANDPOOL_API_KEY: ADMIN_KEY });
      const run = await sandpool(
        'session',
        'code-interpreter',
        'execute',
        '-n',
        'default',
        '-i',
        'u',
        '--code',
        '6 * 7',
      );
      assert.equal(run.json.result.executionResult, 42, run.stderr);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
      await removeServerState(testConfig(env));
    }
  });
});

describe('sandpool with custom containers', { skip: skipReason }, async () => {
  const registry = await startRegistry();
  await registry.push(await buildAppImage(), 'team/app:1');
  await registry.push(await buildBusyboxImage({ page: 'version two\n' }), 'team/app:2');
  const server = await startTestServer('clicustom', {
    env: { SANDPOOL_INSECURE_REGISTRIES: JSON.stringify([registry.host]) },
  });
  const scope = {
    SANDPOOL_ENDPOINT: server.url,
    SANDPOOL_API_KEY: ADMIN_KEY,
    SANDPOOL_SUBSCRIPTION: SUBSCRIPTION,
    SANDPOOL_RESOURCE_GROUP: RESOURCE_GROUP,
  };
  const { sandpool } = shell(scope);
  const client = new SandpoolClient({
    endpoint: server.url,
    credential: ADMIN_KEY,
    subscription: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
  });

  it('creates a pool from an image, reaches its sessions, reads their console, and rolls a new image', async () => {
    const created = await sandpool(
      'sessionpool', 'create', '-n', 'web', '--container-type', 'CustomContainer',
      '--image', `${registry.host}/team/app:1`, '--target-port', '8080',
      '--env-vars', 'GREETING=from-the-cli', '--max-sessions', '2', '--ready-sessions', '1',
    ); // prettier-ignore
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.json.properties.provisioningState, 'Succeeded');
    const digest = created.json.properties.imageStatus.digest as string;
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);

    const session = client.pool('web').session('u1');
    const answer = await session.fetch('/cgi-bin/echo?from=sdk', { headers: { 'x-custom': 'sdk' } });
    assert.equal(answer.status, 200);
    const text = await answer.text();
    assert.match(text, /greeting=from-the-cli/);
    assert.match(text, /custom=sdk/);
    assert.match(text, /uri=\/cgi-bin\/echo\?from=sdk&identifier=u1/);

    const logs = await sandpool('session', 'logs', '-n', 'web', '-i', 'u1', '-o', 'json');
    assert.equal(logs.code, 0, logs.stderr);
    assert.ok(
      (logs.json as { text: string }[]).some((line) => line.text.includes('greeting=from-the-cli')),
      logs.stdout,
    );
    assert.equal((await session.logs({ tail: 1 })).lines.length, 1);

    const updated = await sandpool(
      'sessionpool',
      'update',
      '-n',
      'web',
      '--image',
      `${registry.host}/team/app:2`,
    );
    assert.equal(updated.code, 0, updated.stderr);
    assert.notEqual(updated.json.properties.imageStatus.digest, digest);
    assert.equal(updated.json.properties.customContainerTemplate.containers[0].env[0].value, 'from-the-cli');
    assert.equal(await (await client.pool('web').session('u2').fetch('/')).text(), 'version two\n');
    const table = await sandpool('sessionpool', 'show', '-n', 'web', '-o', 'table');
    assert.match(table.stdout, /team\/app:2@sha256:/);
  });
});
