/**
 * People as adversaries: a revoked or expiring credential, a tenant of another resource group, a
 * Reader after output, a caller burning someone else's budget, a pool's successor reading its
 * predecessor. Each test attacks one class through the public API of a real server (real HTTP, real
 * SQLite; sandboxes faked, since none of this is the sandbox's job) and pins the refusal.
 */

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { MAX_SESSIONS_PER_CALLER } from '../../src/api/mcp/mcp-routes.js';
import { FakeLauncher } from '../fake-launcher.js';
import {
  newKey,
  ADMIN_KEY,
  DATA,
  MGMT,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  armPath,
  createPool,
  execute,
  interpreterPool,
  pollAsyncOperation,
  poolPath,
  startTestServer,
  type TestServer,
} from '../server-harness.js';

const OTHER_GROUP = 'other-team';

async function newToken(server: TestServer, parent: string, body: object = {}) {
  const minted = await server.request('POST', '/sandpool/tokens', { key: parent, body });
  assert.equal(minted.status, 201, minted.text);
  return minted.json as { token: string; expiresAt: string };
}

const runIn = (server: TestServer, pool: string, key: string, group = RESOURCE_GROUP) =>
  server.request('POST', `${poolPath(pool, group)}/executions?${DATA}&identifier=tenant-1`, {
    key,
    body: { code: 'x' },
  });

/** Reads an event stream until it ends; rejects if it is still open after `ms`. */
async function streamEnds(response: Response, ms: number): Promise<void> {
  const reader = response.body!.getReader();
  const timeout = setTimeout(() => void reader.cancel(), ms);
  try {
    for (;;) {
      const { done } = await reader.read();
      if (done) return;
    }
  } finally {
    clearTimeout(timeout);
  }
}

describe('tenants and credentials as adversaries', async () => {
  const launcher = new FakeLauncher();
  const server = await startTestServer('tenants', { launcher });
  await createPool(server, 'alpha', interpreterPool({ max: 30, ready: 0 }));
  await createPool(server, 'beta', interpreterPool({ max: 4, ready: 0 }));
  await createPool(server, 'alpha', interpreterPool({ max: 4, ready: 0 }), OTHER_GROUP);

  it('a token and its event stream die with the key they came from', async () => {
    const { id, key } = await newKey(server, [
      `SessionExecutor:${armPath('alpha')}`,
      `Reader:${armPath('alpha')}`,
      'Contributor',
    ]);
    const { token } = await newToken(server, key, { roles: [`SessionExecutor:${armPath('alpha')}`] });
    const { token: grandchild } = await newToken(server, token);
    assert.equal((await runIn(server, 'alpha', token)).status, 200);
    const { token: admin } = await newToken(server, key, { roles: ['Contributor'] });
    const stream = await fetch(`${server.url}${armPath('alpha')}/events?${MGMT}`, {
      headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
    });
    assert.equal(stream.status, 200);
    const ended = streamEnds(stream, 5_000);

    assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${id}`)).status, 200);
    await ended;
    for (const derived of [token, grandchild]) {
      const refused = await runIn(server, 'alpha', derived);
      assert.equal(refused.status, 401, refused.text);
      assert.match(refused.json.error.message, /revoked/);
    }
    const permanent = await server.request('POST', '/sandpool/apiKeys', {
      key: admin,
      body: { roles: ['SessionExecutor'] },
    });
    assert.equal(permanent.status, 401, 'a revoked key’s token makes no new key');
  });

  it('a derived token never outlives, nor outranks, its parent', async () => {
    const { key } = await newKey(server, [`SessionExecutor:${armPath('alpha')}`]);
    const short = await newToken(server, key, { expiresInSeconds: 60 });
    const renewed = await newToken(server, short.token, { expiresInSeconds: 86_400 });
    assert.ok(
      Date.parse(renewed.expiresAt) <= Date.parse(short.expiresAt),
      `${renewed.expiresAt} > ${short.expiresAt}`,
    );
    const wider = await server.request('POST', '/sandpool/tokens', {
      key: short.token,
      body: { roles: [`SessionExecutor:/subscriptions/${SUBSCRIPTION}`] },
    });
    assert.equal(wider.status, 403);
  });

  it('a grant on a pool reaches no pool of the same name in another group or subscription', async () => {
    const { key: executor } = await newKey(server, [`SessionExecutor:${armPath('alpha')}`]);
    assert.equal((await runIn(server, 'alpha', executor)).status, 200);
    assert.equal((await runIn(server, 'alpha', executor, OTHER_GROUP)).status, 403);
    assert.equal((await runIn(server, 'beta', executor)).status, 403);

    const { key: contributor } = await newKey(server, [`Contributor:${armPath('alpha')}`]);
    const body = interpreterPool({ max: 2, ready: 0 });
    const put = (name: string, group: string) =>
      server.request('PUT', `${armPath(name, group)}?${MGMT}`, { key: contributor, body });
    assert.equal((await put('alpha', OTHER_GROUP)).status, 403, 'no overwrite of another team’s pool');
    assert.equal((await put('gamma', OTHER_GROUP)).status, 403, 'no new pools elsewhere');
    const otherSubscription = armPath('alpha').replace(SUBSCRIPTION, '99999999-2222-3333-4444-555555555555');
    assert.equal(
      (await server.request('PUT', `${otherSubscription}?${MGMT}`, { key: contributor, body })).status,
      403,
    );
    assert.equal(
      (await server.request('DELETE', `${armPath('alpha', OTHER_GROUP)}?${MGMT}`, { key: contributor }))
        .status,
      403,
    );
    assert.equal((await server.request('GET', `${armPath('alpha', OTHER_GROUP)}?${MGMT}`)).status, 200);

    // A resource group's grant reaches its pools and nothing beyond.
    const groupScope = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}`;
    const { key: groupOwner } = await newKey(server, [`Contributor:${groupScope}`]);
    const inGroup = await server.request('PUT', `${armPath('delta')}?${MGMT}`, { key: groupOwner, body });
    assert.equal(inGroup.status, 201, inGroup.text);
    const listed = await server.request(
      'GET',
      `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.App/sessionPools?${MGMT}`,
      { key: groupOwner },
    );
    assert.equal(listed.status, 200);
    const groups = new Set(listed.json.value.map((p: { id: string }) => p.id.split('/')[4]));
    assert.deepEqual([...groups], [RESOURCE_GROUP]);
    const outside = await server.request('PUT', `${armPath('delta', OTHER_GROUP)}?${MGMT}`, {
      key: groupOwner,
      body,
    });
    assert.equal(outside.status, 403);
    // A role spelt by bare pool name is refused rather than read as "that name anywhere".
    const bare = await server.request('POST', '/sandpool/apiKeys', {
      body: { roles: ['SessionExecutor:alpha'] },
    });
    assert.equal(bare.status, 400);
    assert.equal(bare.json.error.target, 'roles');
  });

  it('serves a pool’s start failures to its Session Executors only', async () => {
    const path = (group = RESOURCE_GROUP) => `${poolPath('alpha', group)}/.management/startFailures`;
    const { id, key: executor } = await newKey(server, [`SessionExecutor:${armPath('alpha')}`]);
    const { key: contributor } = await newKey(server, [`Contributor:${armPath('alpha')}`]);
    const { key: elsewhere } = await newKey(server, [`SessionExecutor:${armPath('beta')}`]);
    const answer = await server.request('GET', path(), { key: executor });
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(answer.json, { value: [] });
    assert.equal((await server.request('GET', path(), { key: contributor })).status, 403, 'wrong role');
    assert.equal((await server.request('GET', path(), { key: elsewhere })).status, 403, 'another pool');
    assert.equal(
      (await server.request('GET', path(OTHER_GROUP), { key: executor })).status,
      403,
      'another group',
    );
    assert.equal((await server.request('GET', path(), { key: null })).status, 401, 'no credential');
    assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${id}`)).status, 200);
    assert.equal((await server.request('GET', path(), { key: executor })).status, 401, 'revoked');
  });

  it('subscription and resource group segments follow Azure’s rules, before anything is created', async () => {
    const body = interpreterPool({ max: 1, ready: 0 });
    const cases: [string, string, string][] = [
      ['not-a-guid', RESOURCE_GROUP, 'InvalidSubscriptionId'],
      [SUBSCRIPTION, 'bad%01group', 'InvalidResourceGroupName'],
      [SUBSCRIPTION, 'ends-with-dot.', 'InvalidResourceGroupName'],
      [SUBSCRIPTION, 'g'.repeat(91), 'InvalidResourceGroupName'],
    ];
    for (const [subscription, group, code] of cases) {
      const path = `/subscriptions/${subscription}/resourceGroups/${group}/providers/Microsoft.App/sessionPools/ctl?${MGMT}`;
      const answer = await server.request('PUT', path, { body });
      assert.equal(answer.status, 400, `${path}: ${answer.text}`);
      assert.equal(answer.json.error.code, code);
    }
    const all = await server.request(
      'GET',
      `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.App/sessionPools?${MGMT}`,
    );
    assert.ok(!all.json.value.some((p: { name: string }) => p.name === 'ctl'), 'nothing was created');
  });

  it('readiness names no pool without a credential, and only readable pools with one', async () => {
    const bare = await server.request('GET', '/readyz', { key: null });
    assert.deepEqual(Object.keys(bare.json), ['status']);
    assert.ok(!bare.text.includes('alpha'));
    const { key } = await newKey(server, [`Reader:${armPath('alpha')}`]);
    const scoped = await server.request('GET', '/readyz', { key });
    const names = scoped.json.checks.map((c: { name: string }) => c.name);
    assert.ok(names.includes(`pool ${RESOURCE_GROUP}/alpha`), names.join());
    assert.ok(!names.includes(`pool ${RESOURCE_GROUP}/beta`), names.join());
    const forged = await server.request('GET', '/readyz', { key: 'sp_000000000000_' + 'B'.repeat(43) });
    assert.equal(forged.status, 401);
  });

  it('a pool created again under a deleted one’s name starts empty', async () => {
    await createPool(server, 'reborn', interpreterPool({ max: 2, ready: 0 }));
    const headers = { 'operation-id': 'op-first' };
    const first = await server.request('POST', `${poolPath('reborn')}/executions?${DATA}&identifier=u`, {
      headers,
      body: { code: 'first life' },
    });
    assert.equal(first.json.result.stdout, 'first life');
    const deleted = await server.request('DELETE', `${armPath('reborn')}?${MGMT}`);
    assert.equal(deleted.status, 202);
    await pollAsyncOperation(server, deleted.headers.get('azure-asyncoperation')!);
    await createPool(server, 'reborn', interpreterPool({ max: 2, ready: 0 }));

    const read = await server.request(
      'GET',
      `${poolPath('reborn')}/executions/op-first?${DATA}&identifier=u`,
    );
    assert.equal(read.status, 404, read.text);
    const again = await server.request('POST', `${poolPath('reborn')}/executions?${DATA}&identifier=u`, {
      headers,
      body: { code: 'second life' },
    });
    assert.equal(again.json.result.stdout, 'second life', 'the new code ran; nothing was replayed');
    assert.equal(again.headers.get('x-sandpool-previous-session-ended'), null);
    const events = await server.request('GET', `${armPath('reborn')}/events?${MGMT}`);
    const ended = events.json.value.filter((e: { type: string }) => e.type === 'ended');
    assert.deepEqual(ended, [], 'the old life’s ends are gone with it');
  });

  it('execution output is for Session Executors, and a scoped Contributor polls its own operations', async () => {
    const ran = await execute(server, 'alpha', 'reader-target', 'private output');
    const id = ran.json.id as string;
    const { key: reader } = await newKey(server, [`Reader:${armPath('alpha')}`]);
    const path = `${poolPath('alpha')}/executions/${id}?${DATA}&identifier=reader-target`;
    assert.equal((await server.request('GET', path, { key: reader })).status, 403);
    assert.equal((await server.request('GET', path)).status, 200);

    const groupScope = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${OTHER_GROUP}`;
    const { key: owner } = await newKey(server, [`Contributor:${groupScope}`]);
    const created = await server.request('PUT', `${armPath('epsilon', OTHER_GROUP)}?${MGMT}`, {
      key: owner,
      body: interpreterPool({ max: 1, ready: 0 }),
    });
    assert.equal(created.status, 201, created.text);
    const poll = created.headers.get('azure-asyncoperation')!.replace(server.url, '');
    assert.equal((await server.request('GET', poll, { key: owner })).status, 200);
    const { key: stranger } = await newKey(server, [`Contributor:${armPath('alpha')}`]);
    const hidden = await server.request('GET', poll, { key: stranger });
    assert.equal(hidden.status, 404);
    assert.equal(hidden.json.error.code, 'OperationNotFound');
  });

  it('the audit keeps an id the server made, and the client’s own id only as a label', async () => {
    const answer = await server.request(
      'POST',
      `${poolPath('alpha')}/executions?${DATA}&identifier=audited`,
      {
        headers: { 'x-ms-client-request-id': 'forged-id' },
        body: { code: '1' },
      },
    );
    const ours = answer.headers.get('x-ms-request-id')!;
    assert.notEqual(ours, 'forged-id');
    assert.equal(answer.headers.get('x-ms-client-request-id'), 'forged-id');
    const audit = await server.request('GET', '/sandpool/audit?$top=1000');
    const entry = audit.json.value.find((e: { identifier: string | null }) => e.identifier === 'audited');
    assert.equal(entry.requestId, ours);
    assert.equal(entry.clientRequestId, 'forged-id');
  });

  it('bounds every field of a result, whatever the agent answers, and says which it cut', async () => {
    launcher.answer = (code) =>
      code === 'flood'
        ? {
            result: 'v'.repeat(2 * 1024 * 1024),
            stdout: 'o'.repeat(5000),
            status: 'failed',
            error: { name: 'E', message: 'm'.repeat(100_000), traceback: 't'.repeat(5000) },
            images: Array.from({ length: 40 }, () => ({ type: 'image', format: 'png', base64_data: 'A' })),
          }
        : {};
    try {
      const answer = await execute(server, 'alpha', 'flood', 'flood', { outputStreamsMaxLength: 100 });
      const stored = await server.request(
        'GET',
        `${poolPath('alpha')}/executions/${answer.json.id}?${DATA}&identifier=flood`,
      );
      for (const body of [answer.json, stored.json]) {
        assert.equal(body.result.executionResult.length, 100);
        assert.equal(body.result.stdout.length, 100);
        assert.equal(body.result.stderr.length, 100);
        assert.equal(body.result.images.length, 16);
        assert.ok(body.error.message.length <= 4096, String(body.error.message.length));
        assert.deepEqual([...body.result.truncated].sort(), [
          'error',
          'executionResult',
          'images',
          'stderr',
          'stdout',
        ]);
      }
      assert.ok(stored.text.length < 10_000, `stored ${stored.text.length} characters`);
    } finally {
      launcher.answer = () => ({});
    }
  });

  it('refuses sockets and FIFOs a session planted, for reading and for writing, with a 4xx', async () => {
    const planted = await execute(server, 'alpha', 'planter', 'x');
    const dataDir = launcher.sandboxes.get(planted.headers.get('x-ms-session-guid')!)!.dataDir;
    execFileSync('mkfifo', [join(dataDir, 'pipe')]);
    const socket = createServer();
    await new Promise<void>((resolve) => socket.listen(join(dataDir, 'sock'), resolve));
    try {
      const files = `${poolPath('alpha')}/files`;
      for (const name of ['pipe', 'sock']) {
        for (const path of [
          `${files}/${name}/content?${DATA}&identifier=planter`,
          `${files}/content/${name}?${DATA}&identifier=planter`,
        ]) {
          const read = await server.request('GET', path, { timeoutMs: 5_000 });
          if (read.status === 404 && read.json?.error?.code === 'RouteNotFound') continue;
          assert.equal(read.status, 409, `${path}: ${read.text}`);
          assert.equal(read.json.error.code, 'NotARegularFile');
        }
        const form = new FormData();
        form.append('file', new Blob(['payload']), name);
        const upload = await fetch(`${server.url}${files}/upload?${DATA}&identifier=planter`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_KEY}` },
          body: form,
          signal: AbortSignal.timeout(5_000),
        });
        const text = await upload.text();
        assert.equal(upload.status, 409, `upload over ${name}: ${text}`);
        assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'NotARegularFile');
      }
      assert.equal((await server.request('GET', '/healthz', { key: null })).status, 200);
    } finally {
      socket.close();
    }
  });

  it('serves downloads inert: attachment, no sniffing, a sandboxing CSP', async () => {
    const form = new FormData();
    form.append('file', new Blob(['<script>alert(document.cookie)</script>']), 'page.html');
    const upload = await fetch(`${server.url}${poolPath('alpha')}/files/upload?${DATA}&identifier=html`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      body: form,
    });
    assert.equal(upload.status, 200, await upload.text());
    const download = await server.request(
      'GET',
      `${poolPath('alpha')}/files/page.html/content?${DATA}&identifier=html`,
    );
    assert.equal(download.status, 200);
    assert.match(download.headers.get('content-disposition') ?? 'missing', /^attachment;/);
    assert.equal(download.headers.get('x-content-type-options'), 'nosniff');
    assert.match(download.headers.get('content-security-policy') ?? 'missing', /\bsandbox\b/);
  });
});

describe('rate limits turned against other tenants', async () => {
  const launcher = new FakeLauncher();
  const server = await startTestServer('tenants-rate', {
    launcher,
    env: {
      SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '0',
      SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '1',
      SANDPOOL_RATE_LIMIT_BURST_SECONDS: '1',
    },
  });
  await createPool(server, 'victim', interpreterPool({ max: 2, ready: 0 }));
  await createPool(server, 'victim', interpreterPool({ max: 2, ready: 0 }), OTHER_GROUP);

  it('a caller without a role spends nothing of another team’s identifier budget', async () => {
    const { key: stranger } = await newKey(server, [`SessionExecutor:${armPath('victim', OTHER_GROUP)}`]);
    for (let i = 0; i < 10; i++) {
      const refused = await runIn(server, 'victim', stranger);
      assert.equal(refused.status, 403, refused.text);
    }
    // Same pool name, same identifier, other group: a budget of its own.
    assert.equal((await runIn(server, 'victim', stranger, OTHER_GROUP)).status, 200);
    assert.equal((await runIn(server, 'victim', ADMIN_KEY)).status, 200, 'the victim’s budget is whole');
  });

  it('a doubled slash reaches the same bucket', async () => {
    const path = (prefix: string) =>
      `${prefix}${poolPath('victim').slice(1)}/executions?${DATA}&identifier=slashes`;
    assert.equal((await server.request('POST', path('/'), { body: { code: '1' } })).status, 200);
    const second = await server.request('POST', path('//'), { body: { code: '1' } });
    assert.equal(second.status, 429, second.text);
  });
});

/** An MCP client of the pool's Sandpool MCP server, with its transport (to end its session). */
async function mcpClient(server: TestServer, pool: string, key: string) {
  const client = new Client({ name: 'tenant', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${server.url}${poolPath(pool)}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${key}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

describe('trust, second pass: the five ways around the role model', async () => {
  const launcher = new FakeLauncher();
  const server = await startTestServer('tenants-trust', {
    launcher,
    env: { SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '5', SANDPOOL_RATE_LIMIT_BURST_SECONDS: '1' },
  });
  const withMcp = () => {
    const body = interpreterPool({ max: 40, ready: 0 });
    return { ...body, properties: { ...body.properties, mcpServerSettings: { isMcpServerEnabled: true } } };
  };
  await createPool(server, 'agents', withMcp());
  const PREVIEW = 'api-version=2025-10-02-preview';

  it('gives a pool’s MCP key only to who may run code in the pool and manage it', async () => {
    const { key: contributor } = await newKey(server, [`Contributor:${armPath('agents')}`]);
    const { key: executor } = await newKey(server, [`SessionExecutor:${armPath('agents')}`]);
    const { key: both } = await newKey(server, [
      `Contributor:${armPath('agents')}`,
      `SessionExecutor:${armPath('agents')}`,
    ]);
    for (const action of ['fetchMcpServerCredentials', 'rotateMcpServerCredentials']) {
      const path = `${armPath('agents')}/${action}?${PREVIEW}`;
      const asContributor = await server.request('POST', path, { key: contributor });
      assert.equal(asContributor.status, 403, `${action} as a Contributor: ${asContributor.text}`);
      assert.equal(
        (await server.request('POST', path, { key: executor })).status,
        403,
        `${action}, executor`,
      );
    }
    const fetched = await server.request(
      'POST',
      `${armPath('agents')}/fetchMcpServerCredentials?${PREVIEW}`,
      {
        key: both,
      },
    );
    assert.equal(fetched.status, 200, fetched.text);
    const call = await fetch(`${server.url}${poolPath('agents')}/platformMcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-ms-apikey': fetched.json.apiKey },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: {
          name: 'runPythonCodeInRemoteEnvironment',
          arguments: { environmentId: 'e1', pythonCode: 'k' },
        },
      }),
    });
    assert.equal(((await call.json()) as { result: { isError: boolean } }).result.isError, false);
  });

  it('ends a key made by a derived token with the key the token came from, and with the token', async () => {
    const { id: rootId, key: root } = await newKey(server, [
      `Contributor:${armPath('agents')}`,
      `SessionExecutor:${armPath('agents')}`,
    ]);
    const { token, expiresAt } = await newToken(server, root, { expiresInSeconds: 60 });
    const made = await server.request('POST', '/sandpool/apiKeys', {
      key: token,
      body: { name: 'minted by a token', roles: [`SessionExecutor:${armPath('agents')}`] },
    });
    assert.equal(made.status, 201, made.text);
    assert.equal(made.json.expiresAt, expiresAt, 'it expires with the token that made it');
    const minted = made.json.key as string;
    assert.equal((await runIn(server, 'agents', minted)).status, 200);
    // A token of the minted key: the same lineage.
    const { token: grandchild } = await newToken(server, minted);
    const peer = await server.request('POST', '/sandpool/apiKeys', {
      key: root,
      body: { roles: [`SessionExecutor:${armPath('agents')}`] },
    });
    assert.equal(peer.json.expiresAt, null, 'a key made by a key of its own standing does not expire');
    const opened = await mcpClient(server, 'agents', minted);

    assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${rootId}`)).status, 200);
    for (const [what, credential] of [
      ['the minted key', minted],
      ['a token of the minted key', grandchild],
    ] as const) {
      const refused = await runIn(server, 'agents', credential);
      assert.equal(refused.status, 401, `${what}: ${refused.text}`);
    }
    assert.equal((await runIn(server, 'agents', peer.json.key)).status, 200, 'a peer key lives on');
    const afterRevocation = await fetch(`${server.url}${poolPath('agents')}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${peer.json.key as string}`,
        'mcp-session-id': opened.transport.sessionId!,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    assert.equal(afterRevocation.status, 404, 'the minted key’s MCP session ended with its root');
    await opened.client.close();
  });

  it('keeps an MCP session’s own sandbox from everyone else: not listed, not reachable', async () => {
    const { key: owner } = await newKey(server, [`SessionExecutor:${armPath('agents')}`]);
    const { client, transport } = await mcpClient(server, 'agents', owner);
    const ran = await client.callTool({ name: 'run_python', arguments: { code: 'left behind' } });
    assert.equal(ran.isError, false);
    const sessionId = transport.sessionId!;
    const { key: reader } = await newKey(server, [`Reader:${armPath('agents')}`]);
    const listed = await server.request('GET', `${poolPath('agents')}/listSessions?${DATA}`, { key: reader });
    assert.equal(listed.status, 200);
    assert.ok(!listed.text.includes(sessionId), `a Reader sees no MCP session’s sandbox: ${listed.text}`);
    const { key: otherExecutor } = await newKey(server, [`SessionExecutor:${armPath('agents')}`]);
    // The identifier the previous release used names a new session of its own.
    const guessed = await server.request(
      'POST',
      `${poolPath('agents')}/executions?${DATA}&identifier=mcp-${sessionId}`,
      { key: otherExecutor, body: { code: 'x' } },
    );
    assert.equal(guessed.status, 200, guessed.text);
    assert.match(guessed.headers.get('x-sandpool-session') ?? '', /^created-/, 'a new session of its own');
    // The private identifier spelt out is refused, however it is encoded.
    for (const spelt of [encodeURIComponent(`private mcp ${sessionId}`), `private+mcp+${sessionId}`]) {
      const refused = await server.request(
        'POST',
        `${poolPath('agents')}/executions?${DATA}&identifier=${spelt}`,
        {
          key: otherExecutor,
          body: { code: 'x' },
        },
      );
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.json.error.code, 'InvalidIdentifier');
    }
    // Through MCP, another caller names it no better, and does not see it listed.
    const other = await mcpClient(server, 'agents', otherExecutor);
    const named = await other.client.callTool({
      name: 'list_files',
      arguments: { identifier: `private mcp ${sessionId}` },
    });
    assert.equal(named.isError, true);
    assert.match(JSON.stringify(named.content), /InvalidIdentifier/);
    const sessions = await other.client.callTool({ name: 'list_sessions', arguments: {} });
    assert.ok(!JSON.stringify(sessions).includes(`private mcp ${sessionId}`));
    await other.client.close();
    await client.close();
  });

  it('charges MCP tool calls to the identifier’s rate limit, and caps a caller’s MCP sessions', async () => {
    const { key } = await newKey(server, [`SessionExecutor:${armPath('agents')}`]);
    const { client } = await mcpClient(server, 'agents', key);
    // The identifier's bucket holds 5: the HTTP API and MCP spend the same one.
    assert.equal((await runIn(server, 'agents', key)).status, 200);
    const answers = [];
    for (let i = 0; i < 8; i++) {
      answers.push(
        await client.callTool({ name: 'run_python', arguments: { code: '1', identifier: 'tenant-1' } }),
      );
    }
    const limited = answers.filter((answer) => JSON.stringify(answer.content).includes('RateLimitExceeded'));
    assert.ok(limited.length >= 3, `${String(limited.length)} of 8 MCP calls were over the limit`);
    assert.equal((await runIn(server, 'agents', key)).status, 429, 'the HTTP API sees the same bucket');
    await client.close();

    // One caller's tokens are one caller: together they open at most MAX_SESSIONS_PER_CALLER.
    const { key: opener } = await newKey(server, [`SessionExecutor:${armPath('agents')}`]);
    const clients = [];
    let refusal: unknown;
    for (let i = 0; i < MAX_SESSIONS_PER_CALLER + 1; i++) {
      const { token } = await newToken(server, opener);
      try {
        clients.push(await mcpClient(server, 'agents', token));
      } catch (error) {
        refusal = error;
        break;
      }
    }
    assert.equal(clients.length, MAX_SESSIONS_PER_CALLER);
    assert.match(String(refusal), /TooManyMcpSessions/);
    // Ending one makes room for another.
    await clients[0]!.transport.terminateSession();
    const again = await mcpClient(server, 'agents', (await newToken(server, opener)).token);
    for (const opened of [...clients.slice(1), again]) {
      await opened.transport.terminateSession();
      await opened.client.close();
    }
  });

  it('charges a caller’s tokens to the key they came from, and the platform MCP key to its pool', async () => {
    // A clock that stands still while the limits are counted: buckets refill by the test's word only.
    let clock = Date.now();
    const limited = await startTestServer('tenants-caller', {
      launcher,
      now: () => clock,
      env: { SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '4', SANDPOOL_RATE_LIMIT_BURST_SECONDS: '1' },
    });
    await createPool(limited, 'agents', withMcp());
    const { key } = await newKey(limited, [
      `SessionExecutor:${armPath('agents')}`,
      `Contributor:${armPath('agents')}`,
    ]);
    clock += 10_000;
    // Four requests' worth: three tokens (each a bucket of its own before), then one run with each.
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) tokens.push((await newToken(limited, key)).token);
    const statuses = [];
    for (const token of tokens) statuses.push((await runIn(limited, 'agents', token)).status);
    assert.deepEqual(statuses, [200, 429, 429], 'the key’s tokens spend the key’s budget');
    clock += 10_000;

    const fetched = await limited.request(
      'POST',
      `${armPath('agents')}/fetchMcpServerCredentials?${PREVIEW}`,
    );
    const mcpKey = fetched.json.apiKey as string;
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      const answer = await fetch(`${limited.url}${poolPath('agents')}/platformMcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-ms-apikey': mcpKey },
        body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/list' }),
      });
      codes.push(answer.status);
    }
    assert.ok(codes.includes(429), `the MCP key has a caller’s limit: ${codes.join(',')}`);
  });

  it('keeps the host’s state unlistable by local accounts', () => {
    const mode = statSync(server.config.home).mode & 0o777;
    assert.equal(mode, 0o711, `home is ${mode.toString(8)}`);
    const asNobody = (args: string[]) =>
      spawnSync('runuser', ['-u', 'nobody', '--', ...args], { encoding: 'utf8' });
    const listing = asNobody(['ls', server.config.home]);
    assert.notEqual(listing.status, 0);
    assert.match(listing.stderr, /Permission denied/);
    for (const file of [server.config.paths.database, server.config.paths.storeKeys]) {
      const read = asNobody(['cat', file]);
      assert.notEqual(read.status, 0, file);
      assert.match(read.stderr, /Permission denied/);
    }
  });
});
