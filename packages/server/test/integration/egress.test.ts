/**
 * Egress control with real sandboxes, against an "outside" the test builds itself: a network
 * namespace linked to the host, holding an HTTP server on 198.51.100.1 and .2, a private address
 * (10.99.77.1) and a DNS server. No traffic goes anywhere else: the pools' resolver is the test's.
 * EgressEnabled reaches the outside (and resolves names), EgressDisabled reaches nothing (not even
 * a lookup), an allowlist narrows it (to ports too, and its sessions resolve only its names), a pool
 * can name its own resolver, and in every mode the host, other sandboxes and private ranges stay
 * out of reach, each refusal recorded as an event.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { runCommand } from '../../src/sandbox/command.js';
import { buildAppImage, startRegistry } from '../registry.js';
import {
  MGMT,
  armPath,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

const NAMESPACE = `sp-test-out-${process.pid}`;
const HOST_LINK = `spout${process.pid}`.slice(0, 15);
const OUTSIDE = '198.51.100.1';
const OUTSIDE_OTHER = '198.51.100.2';
const OUTSIDE_PRIVATE = '10.99.77.1';
const DNS_SERVER = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'dns-server.mjs');

async function sh(file: string, args: string[]): Promise<void> {
  const result = await runCommand(file, args);
  if (result.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${result.stderr}`);
}

/** The outside: a namespace behind a veth from the host, with web servers and a DNS server in it. */
/** The names the outside's resolvers were asked, as they print them. */
const asked: string[] = [];

async function buildOutside(): Promise<() => Promise<void>> {
  const children: ChildProcess[] = [];
  const removeLinks = async () => {
    await runCommand('ip', ['netns', 'del', NAMESPACE]);
    await runCommand('ip', ['link', 'del', HOST_LINK]);
    await runCommand('ip', ['route', 'del', `${OUTSIDE_PRIVATE}/32`]);
  };
  // What a killed earlier run of this process id left.
  await removeLinks();
  const web = mkdtempSync('/var/tmp/sandpool-test-outside-');
  mkdirSync(join(web, 'cgi-bin'));
  writeFileSync(
    join(web, 'cgi-bin', 'echo'),
    '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "outside saw $REMOTE_ADDR"\n',
  );
  chmodSync(join(web, 'cgi-bin', 'echo'), 0o755);
  const teardown = async () => {
    for (const child of children) child.kill('SIGKILL');
    await removeLinks();
    rmSync(web, { recursive: true, force: true });
  };
  await sh('ip', ['netns', 'add', NAMESPACE]);
  await sh('ip', ['link', 'add', HOST_LINK, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NAMESPACE]);
  await sh('ip', ['addr', 'add', '198.51.100.254/24', 'dev', HOST_LINK]);
  await sh('ip', ['link', 'set', HOST_LINK, 'up']);
  await sh('ip', ['route', 'add', `${OUTSIDE_PRIVATE}/32`, 'via', OUTSIDE]);
  for (const args of [
    ['addr', 'add', `${OUTSIDE}/24`, 'dev', 'eth0'],
    ['addr', 'add', `${OUTSIDE_OTHER}/24`, 'dev', 'eth0'],
    ['addr', 'add', `${OUTSIDE_PRIVATE}/32`, 'dev', 'lo'],
    ['link', 'set', 'eth0', 'up'],
    ['link', 'set', 'lo', 'up'],
    ['route', 'add', 'default', 'via', '198.51.100.254'],
  ]) {
    await sh('ip', ['-n', NAMESPACE, ...args]);
  }
  const inside = (args: string[]) => {
    const child = spawn('ip', ['netns', 'exec', NAMESPACE, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    return child;
  };
  for (const address of [OUTSIDE, OUTSIDE_OTHER, OUTSIDE_PRIVATE]) {
    inside(['busybox', 'httpd', '-f', '-p', `${address}:8080`, '-h', web]);
  }
  inside(['busybox', 'httpd', '-f', '-p', `${OUTSIDE_OTHER}:8081`, '-h', web]);
  // The public resolver, and a bank's internal one that alone knows internal.test.
  const resolvers = [
    [OUTSIDE, `allowed.test=${OUTSIDE}`, `other.test=${OUTSIDE_OTHER}`],
    [OUTSIDE_OTHER, `internal.test=${OUTSIDE_OTHER}`],
  ];
  for (const args of resolvers) {
    const dns = inside([process.execPath, DNS_SERVER, ...args]);
    await new Promise((resolve, reject) => {
      dns.stdout.once('data', resolve);
      dns.once('exit', (code) => reject(new Error(`the DNS server exited with ${String(code)}`)));
    });
    dns.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n'))
        if (line.startsWith('asked ')) asked.push(line.slice(6));
    });
  }
  return teardown;
}

function customPool(image: string, network: Record<string, unknown>) {
  return {
    location: 'local',
    properties: {
      containerType: 'CustomContainer',
      scaleConfiguration: { maxConcurrentSessions: 3, readySessionInstances: 1 },
      customContainerTemplate: { containers: [{ image }], ingress: { targetPort: 8080 } },
      sessionNetworkConfiguration: network,
    },
  };
}

describe('egress', { skip: skipReason }, async () => {
  const teardown = await buildOutside();
  after(teardown);
  const registry = await startRegistry();
  await registry.push(await buildAppImage(), 'team/app:1');
  const image = `${registry.host}/team/app:1`;
  const server = await startTestServer('egress', {
    env: {
      SANDPOOL_INSECURE_REGISTRIES: JSON.stringify([registry.host]),
      SANDPOOL_EGRESS_DNS_SERVER: OUTSIDE,
    },
  });
  const hostService = createServer((socket) => socket.end('host secret\n'));
  await new Promise<void>((resolve) => hostService.listen(0, '0.0.0.0', resolve));
  after(() => hostService.close());
  const hostPort = (hostService.address() as { port: number }).port;

  const inSession = async (pool: string, identifier: string, path: string) => {
    const answer = await server.request('GET', `${poolPath(pool)}${path}&identifier=${identifier}`);
    assert.equal(answer.status, 200, answer.text);
    return answer.text;
  };
  const connect = (pool: string, identifier: string, address: string, port = 8080) =>
    inSession(pool, identifier, `/cgi-bin/connect?${address}&${port}`);
  const deniedEvents = async (pool: string) => {
    const answer = await server.request('GET', `${armPath(pool)}/events?${MGMT}&type=egressDenied`);
    assert.equal(answer.status, 200, answer.text);
    return answer.json.value as { reason: string; identifier: string | null }[];
  };
  const gatewayOf = async (pool: string, identifier: string) =>
    /Server:\s+(\S+)/.exec(await inSession(pool, identifier, '/cgi-bin/resolve?allowed.test'))![1]!;

  it('EgressEnabled reaches the outside through NAT and resolves names with the pool’s resolver', async () => {
    assert.equal(
      await createPool(server, 'open', customPool(image, { status: 'EgressEnabled' })),
      'Succeeded',
    );
    const reached = await connect('open', 'a', OUTSIDE);
    assert.match(reached, /^connected/);
    assert.match(
      reached,
      /outside saw 198\.51\.100\.254/,
      'the outside sees the host’s address, not the sandbox’s',
    );
    const resolved = await inSession('open', 'a', '/cgi-bin/resolve?allowed.test');
    assert.match(resolved, /Address:? 198\.51\.100\.1/);
  });

  it('never reaches the host, private ranges or another sandbox, and records each refusal', async () => {
    const gateway = await gatewayOf('open', 'a');
    assert.match(await connect('open', 'a', gateway, hostPort), /^refused/, 'the host’s own services');
    assert.match(await connect('open', 'a', OUTSIDE_PRIVATE), /^refused/, 'a private address');
    await connect('open', 'b', OUTSIDE);
    const other = (await gatewayOf('open', 'b')).replace(/\.\d+$/, (last) => `.${Number(last.slice(1)) + 1}`);
    assert.match(await connect('open', 'a', other), /^refused/, 'another sandbox');
    const wanted = [`${OUTSIDE_PRIVATE}:8080`, `${gateway}:${hostPort}`, `${other}:8080`];
    for (let i = 0; i < 100; i++) {
      const reasons = (await deniedEvents('open')).map((e) => e.reason);
      if (wanted.every((reason) => reasons.includes(reason))) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const events = await deniedEvents('open');
    assert.ok(
      events.some((e) => e.reason === `${OUTSIDE_PRIVATE}:8080` && e.identifier === 'a'),
      JSON.stringify(events),
    );
    assert.ok(
      events.some((e) => e.reason === `${gateway}:${hostPort}`),
      JSON.stringify(events),
    );
    assert.ok(
      events.some((e) => e.reason === `${other}:8080` && e.identifier === 'a'),
      `an attempt on another sandbox is an event too: ${JSON.stringify(events)}`,
    );
    assert.equal(
      events.filter((e) => e.reason === `${OUTSIDE_PRIVATE}:8080`).length,
      1,
      'the retries of one connection are one event',
    );
  });

  it('an allowlist lets only its destinations through (domain names resolved by the pool’s resolver)', async () => {
    const body = customPool(image, { status: 'EgressEnabled', egressAllowlist: ['allowed.test'] });
    assert.equal(await createPool(server, 'listed', body), 'Succeeded');
    assert.match(await connect('listed', 'c', OUTSIDE), /^connected/);
    assert.match(await connect('listed', 'c', OUTSIDE_OTHER), /^refused/);
    const pool = await server.request('GET', `${armPath('listed')}?${MGMT}`);
    assert.deepEqual(pool.json.properties.sessionNetworkConfiguration.egressAllowlist, ['allowed.test']);
  });

  it('an allowlist’s sessions resolve only its names: no other name leaves the host', async () => {
    const allowed = await inSession('listed', 'c', '/cgi-bin/resolve?allowed.test');
    assert.match(allowed, /Address:? 198\.51\.100\.1/);
    await inSession('listed', 'c', '/cgi-bin/resolve?api.allowed.test');
    const leak = await inSession('listed', 'c', '/cgi-bin/resolve?c2VjcmV0.exfil.test');
    assert.doesNotMatch(leak, /Address:? 198/);
    assert.match(await inSession('listed', 'c', '/cgi-bin/resolve?other.test'), /NXDOMAIN|can't resolve/i);
    for (let i = 0; i < 50 && !asked.includes('api.allowed.test'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(asked.includes('api.allowed.test'), 'names under an allowed domain are asked');
    assert.ok(!asked.some((name) => name.includes('exfil') || name === 'other.test'), asked.join(' '));
    let events: { reason: string }[] = [];
    for (let i = 0; i < 50; i++) {
      events = await deniedEvents('listed');
      if (events.some((e) => e.reason === 'c2vjcmv0.exfil.test:53')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(
      events.some((e) => e.reason === 'c2vjcmv0.exfil.test:53'),
      `a refused lookup is an event (names compare lower-case): ${JSON.stringify(events)}`,
    );
  });

  it('an allowlist entry with a port opens that port alone', async () => {
    const body = customPool(image, {
      status: 'EgressEnabled',
      egressAllowlist: [`${OUTSIDE_OTHER}:8080/tcp`],
    });
    assert.equal(await createPool(server, 'ported', body), 'Succeeded');
    assert.match(await connect('ported', 'p', OUTSIDE_OTHER, 8080), /^connected/);
    assert.match(await connect('ported', 'p', OUTSIDE_OTHER, 8081), /^refused/, 'another port');
    assert.match(await connect('ported', 'p', OUTSIDE, 8080), /^refused/, 'another address');
    const refused = await server.request('PUT', `${armPath('badport')}?${MGMT}`, {
      body: customPool(image, { status: 'EgressEnabled', egressAllowlist: ['allowed.test:99999'] }),
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.error.target, 'properties.sessionNetworkConfiguration.egressAllowlist[0]');
  });

  it('a pool names its own resolver', async () => {
    const body = customPool(image, {
      status: 'EgressEnabled',
      egressAllowlist: ['internal.test'],
      dnsServer: OUTSIDE_OTHER,
    });
    assert.equal(await createPool(server, 'bank', body), 'Succeeded');
    assert.match(await inSession('bank', 'b', '/cgi-bin/resolve?internal.test'), /Address:? 198\.51\.100\.2/);
    assert.match(await connect('bank', 'b', 'internal.test'), /^connected/);
    const pool = await server.request('GET', `${armPath('bank')}?${MGMT}`);
    assert.equal(pool.json.properties.sessionNetworkConfiguration.dnsServer, OUTSIDE_OTHER);
    const disabled = await server.request('PUT', `${armPath('nodns')}?${MGMT}`, {
      body: customPool(image, { status: 'EgressDisabled', dnsServer: OUTSIDE }),
    });
    assert.equal(disabled.status, 400);
    assert.equal(disabled.json.error.target, 'properties.sessionNetworkConfiguration.dnsServer');
  });

  it('EgressDisabled reaches nothing but its own loopback', async () => {
    assert.equal(
      await createPool(server, 'closed', customPool(image, { status: 'EgressDisabled' })),
      'Succeeded',
    );
    assert.match(await connect('closed', 'd', OUTSIDE), /^refused/);
    assert.match(await connect('closed', 'd', '127.0.0.1'), /^connected/, 'its own loopback works');
    const before = asked.length;
    assert.doesNotMatch(await inSession('closed', 'd', '/cgi-bin/resolve?closed-leak.test'), /Address:? 198/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(asked.slice(before), [], 'no lookup leaves an EgressDisabled session');
  });

  it('gives code interpreter pools the same egress', async () => {
    const body = interpreterPool({ max: 2, ready: 1 });
    const pool = {
      ...body,
      properties: { ...body.properties, sessionNetworkConfiguration: { status: 'EgressEnabled' } },
    };
    assert.equal(await createPool(server, 'python', pool), 'Succeeded');
    const run = await execute(
      server,
      'python',
      'py',
      `import urllib.request\nurllib.request.urlopen('http://${OUTSIDE}:8080/cgi-bin/echo', timeout=5).read().decode()`,
    );
    assert.equal(run.status, 200, run.text);
    assert.match(run.json.result.executionResult, /outside saw 198\.51\.100\.254/);
  });
});
