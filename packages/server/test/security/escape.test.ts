/**
 * The escape battery: every hostile program of ./attacks.ts runs as session code through the public
 * API, in real sandboxes of a real server. Each test asserts that the attack was refused, that the
 * server still answers, and that a witness session (its memory and its /mnt/data) is untouched.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';

import {
  DATA,
  MGMT,
  armPath,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
} from '../server-harness.js';
import { SANDBOX_STARTS, skipReason } from '../integration/harness.js';
import { AREAS, ATTACKS, PRELUDE, type Attack, type AttackContext } from './attacks.js';

const POOL = 'hostile';

describe('the escape battery', () => {
  it('covers every area the threat model names, with at least 40 attacks', () => {
    assert.ok(ATTACKS.length >= 40, `${ATTACKS.length} attacks`);
    assert.deepEqual([...new Set(ATTACKS.map((a) => a.area))].sort(), [...AREAS].sort());
  });

  it('lists every attack in SECURITY.md’s table', () => {
    const document = readFileSync(new URL('../../../../SECURITY.md', import.meta.url), 'utf8');
    const missing = ATTACKS.filter((a) => !document.includes(`| ${a.area} | ${a.name} |`));
    assert.deepEqual(
      missing.map((a) => a.name),
      [],
    );
  });
});

/**
 * The battery runs twice: against sandboxes runc starts, and against sandboxes forked from a zygote
 * (SANDPOOL_ZYGOTE), which build the same isolation themselves and must hold it as well.
 */
for (const sandboxStart of SANDBOX_STARTS) {
  describe(`escape battery through the public API (${sandboxStart.name})`, { skip: skipReason }, async () => {
    const server = await startTestServer(`escape-${sandboxStart.name}`, { env: sandboxStart.env });
    assert.equal(await createPool(server, POOL, interpreterPool({ max: 8, ready: 2 })), 'Succeeded');
    const at = (path: string, identifier: string, query = '') =>
      `${poolPath(POOL)}/${path}?${DATA}&identifier=${encodeURIComponent(identifier)}${query}`;

    const hostDir = mkdtempSync('/var/tmp/sandpool-test-hostsecret-');
    const hostMarker = join(hostDir, 'host-secret.txt');
    writeFileSync(hostMarker, 'host secret: never readable from a sandbox');
    const loopback = await listen();
    let loopbackConnections = 0;
    loopback.on('connection', (socket) => {
      loopbackConnections++;
      socket.destroy();
    });
    after(() => {
      loopback.close();
      rmSync(hostDir, { recursive: true, force: true });
    });
    const context: AttackContext = {
      hostMarker,
      apiPort: Number(new URL(server.url).port),
      loopbackPort: (loopback.address() as { port: number }).port,
      hostPid: process.pid,
      witnessSecret: `witness-${process.pid}-${Date.now()}`,
    };
    const hostName = hostname();

    const witness = await execute(
      server,
      POOL,
      'witness',
      `secret = ${JSON.stringify(context.witnessSecret)}\nopen("/mnt/data/witness-secret.txt", "w").write(secret)`,
    );
    assert.equal(witness.json?.status, 'Succeeded', witness.text);

    async function run(attack: Attack, identifier: string) {
      const response = await execute(server, POOL, identifier, `${PRELUDE}\n${attack.code(context)}`, {
        timeoutInSeconds: attack.timeoutInSeconds ?? 30,
      });
      assert.ok(response.status < 500, `${response.status} ${response.text.slice(0, 500)}`);
      return { response, outcome: outcomeOf(response) };
    }

    async function assertUnharmed() {
      assert.equal((await server.request('GET', '/healthz', { key: null })).status, 200);
      const secret = await execute(server, POOL, 'witness', 'secret');
      assert.equal(secret.json?.result?.executionResult, context.witnessSecret, secret.text);
      const file = await server.request('GET', at('files/witness-secret.txt/content', 'witness'));
      assert.equal(file.text, context.witnessSecret);
      assert.equal(hostname(), hostName);
      assert.equal(readFileSync(hostMarker, 'utf8'), 'host secret: never readable from a sandbox');
    }

    for (const [index, attack] of ATTACKS.entries()) {
      it(`${attack.area}: ${attack.name}`, async (t) => {
        const identifier = attack.ownSession ? `attacker-${index}` : 'attacker';
        await before(attack, identifier);
        const { response, outcome } = await run(attack, identifier);
        t.diagnostic(`outcome: ${outcome}`);
        assert.ok(
          attack.expect.includes(outcome),
          `outcome ${JSON.stringify(outcome)}, expected one of ${attack.expect.join(', ')}\n${response.text.slice(0, 2000)}`,
        );
        await check(attack, identifier, response);
        await assertUnharmed();
        if (attack.ownSession) await server.request('DELETE', at('session', identifier));
      });
    }

    it('accepted no connection on the host loopback service', () => {
      assert.equal(loopbackConnections, 0);
    });

    /** Setup an attack needs through the API before its program runs. */
    async function before(attack: Attack, identifier: string) {
      if (attack.name.startsWith('unpack a decompression bomb')) {
        // Concatenated gzip members: 24 × 64 MiB of zeros, 1.5 GiB unpacked, ~1.5 MB uploaded.
        const member = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
        const bomb = Buffer.concat(Array.from({ length: 24 }, () => member));
        const form = new FormData();
        form.append('file', new Blob([bomb]), 'bomb.gz');
        const uploaded = await server.request('POST', at('files', identifier), { raw: form });
        assert.equal(uploaded.status, 200, uploaded.text);
        assert.equal(uploaded.json.sizeInBytes, bomb.length, 'the server stores uploads as sent');
      }
    }

    /** What an attack asserts through the API after its program ran. */
    async function check(attack: Attack, identifier: string, response: { text: string; json: any }) {
      if (attack.name.startsWith('flood')) {
        const { stdout, stderr, outputStreamsMaxLength } = response.json.result;
        assert.equal(stdout.length, outputStreamsMaxLength);
        assert.equal(stderr.length, outputStreamsMaxLength);
        assert.ok(response.text.length < 3 * outputStreamsMaxLength + 4096, `${response.text.length} bytes`);
      }
      if (attack.name === 'memory bomb') {
        const ended = await server.request(
          'GET',
          `${armPath(POOL)}/events?${MGMT}&type=ended&identifier=${identifier}`,
        );
        assert.deepEqual(
          ended.json.value.map((e: { reason: string }) => e.reason),
          ['oom'],
        );
        const fresh = await execute(server, POOL, identifier, '"a new session"');
        assert.equal(fresh.json.result.executionResult, 'a new session');
      }
      if (attack.name.startsWith('spin the CPU')) {
        const after = await execute(server, POOL, identifier, '"still here"');
        assert.equal(after.json.result.executionResult, 'still here');
      }
      if (attack.name.startsWith('a symlink in /mnt/data')) {
        for (const path of ['files/leak.txt/content', 'files/leak.txt']) {
          const download = await server.request('GET', at(path, identifier));
          assert.ok(download.status >= 400 && download.status < 500, `${path}: ${download.status}`);
          assert.doesNotMatch(download.text, /host secret/);
        }
      }
      if (attack.name.startsWith('a symlinked directory')) {
        const listed = await server.request('GET', at('files', identifier, '&path=hostdir'));
        assert.equal(listed.status, 400, listed.text);
        assert.doesNotMatch(listed.text, /host-secret/);
        const form = new FormData();
        form.append('file', new Blob(['planted by a sandbox']), 'planted.txt');
        const uploaded = await server.request('POST', at('files', identifier, '&path=hostdir'), {
          raw: form,
        });
        assert.equal(uploaded.status, 400, uploaded.text);
        assert.deepEqual(readdirSync(join(context.hostMarker, '..')), ['host-secret.txt']);
        const removed = await server.request('DELETE', at('files/hostdir', identifier));
        assert.ok(removed.status < 500);
        assert.equal(readFileSync(context.hostMarker, 'utf8').length > 0, true);
      }
    }
  });
}

/** The attack's outcome: its program's answer, or how the API reported it failing. */
function outcomeOf(response: { status: number; json: any; text: string }): string {
  const body = response.json;
  if (response.status !== 200) return body?.error?.code ?? `HTTP ${response.status}`;
  if (body.status === 'Succeeded') return String(body.result.executionResult);
  const code: string = body.error?.code ?? '';
  if (code === 'ExecutionError') return /^(\w+):/.exec(body.error.message)?.[1] ?? code;
  return code;
}

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
