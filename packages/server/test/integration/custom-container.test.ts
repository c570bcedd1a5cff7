/**
 * Custom container pools end to end: a real server pulls an image the test built and pushed to a
 * real registry on loopback (with credentials), runs it under runc, and proxies requests to it by
 * identifier. Covers the pinned digest, typed pull failures, env and secrets, the forwarded
 * headers, streaming both ways, WebSocket upgrades, stopSession, exits with their code, liveness
 * and startup probes, and console logs.
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { describe, it } from 'node:test';

import { runCommand } from '../../src/sandbox/command.js';
import {
  buildAppImage,
  buildBusyboxImage,
  REGISTRY_PASSWORD,
  REGISTRY_USER,
  startRegistry,
  type TestRegistry,
} from '../registry.js';
import { ADMIN_KEY, MGMT, armPath, createPool, poolPath, startTestServer, until } from '../server-harness.js';
import { assertWebSocketEchoes } from '../websocket-echo.js';
import { skipReason } from './harness.js';

interface PoolOptions {
  image: string;
  registry?: TestRegistry;
  password?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; secretRef?: string }[];
  probes?: unknown[];
  lifecycle?: unknown;
  ready?: number;
  max?: number;
}

function customPool(options: PoolOptions) {
  return {
    location: 'local',
    properties: {
      containerType: 'CustomContainer',
      scaleConfiguration: {
        maxConcurrentSessions: options.max ?? 3,
        readySessionInstances: options.ready ?? 1,
      },
      dynamicPoolConfiguration: {
        lifecycleConfiguration: options.lifecycle ?? { lifecycleType: 'Timed', cooldownPeriodInSeconds: 300 },
      },
      secrets: [
        { name: 'token', value: 'very-secret-token' },
        ...(options.registry
          ? [{ name: 'registry-password', value: options.password ?? REGISTRY_PASSWORD }]
          : []),
      ],
      customContainerTemplate: {
        ...(options.registry && {
          registryCredentials: {
            server: options.registry.host,
            username: REGISTRY_USER,
            passwordSecretRef: 'registry-password',
          },
        }),
        containers: [
          {
            name: 'app',
            image: options.image,
            resources: { cpu: 0.5, memory: '0.5Gi' },
            ...(options.command && { command: options.command }),
            ...(options.args && { args: options.args }),
            env: options.env ?? [],
            probes: options.probes ?? [],
          },
        ],
        ingress: { targetPort: 8080 },
      },
      sessionNetworkConfiguration: { status: 'EgressDisabled' },
    },
  };
}

/** Parses the echo CGI's `key=value` lines. */
function fields(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

describe('custom container pools', { skip: skipReason }, async () => {
  const open = await startRegistry();
  const locked = await startRegistry({ auth: true });
  const image = await buildAppImage();
  await locked.push(image, 'team/app:1');
  await open.push(image, 'team/app:1');
  const inspected = await runCommand('skopeo', [
    'inspect', '--tls-verify=false', '--creds', `${REGISTRY_USER}:${REGISTRY_PASSWORD}`,
    '--format', '{{.Digest}}', `docker://${locked.host}/team/app:1`,
  ]); // prettier-ignore
  const digest = inspected.stdout.trim();
  const server = await startTestServer('custom', {
    env: { SANDPOOL_INSECURE_REGISTRIES: JSON.stringify([open.host, locked.host]) },
  });

  const events = async (pool: string, type: string) => {
    const answer = await server.request('GET', `${armPath(pool)}/events?${MGMT}&type=${type}`);
    return answer.json.value as {
      type: string;
      reason: string | null;
      identifier: string | null;
      details: any;
    }[];
  };
  const proxied = (
    pool: string,
    identifier: string,
    path: string,
    init: { method?: string; body?: Buffer; headers?: Record<string, string>; key?: string | null } = {},
  ) =>
    server.request(
      init.method ?? 'GET',
      `${poolPath(pool)}${path}${path.includes('?') ? '&' : '?'}identifier=${identifier}`,
      {
        ...(init.body && { raw: init.body }),
        ...(init.headers && { headers: init.headers }),
        ...(init.key !== undefined && { key: init.key }),
      },
    );

  it('pulls the image with the pool’s credentials at create, pins its digest and serves it by identifier', async () => {
    const body = customPool({
      image: `${locked.host}/team/app:1`,
      registry: locked,
      env: [
        { name: 'GREETING', value: 'from the pool' },
        { name: 'SECRET_TOKEN', secretRef: 'token' },
      ],
    });
    assert.equal(await createPool(server, 'webapp', body), 'Succeeded');
    const pool = await server.request('GET', `${armPath('webapp')}?${MGMT}`);
    assert.equal(pool.json.properties.provisioningState, 'Succeeded');
    assert.equal(pool.json.properties.imageStatus.digest, digest);
    assert.equal(pool.json.properties.customContainerTemplate.ingress.targetPort, 8080);
    assert.equal(pool.json.properties.customContainerTemplate.containers[0].env[1].secretRef, 'token');
    assert.ok(!pool.text.includes('very-secret-token'), 'secret values are never returned');
    const pulled = await events('webapp', 'imagePulled');
    assert.equal(pulled[0]?.details.digest, digest);

    const page = await proxied('webapp', 'alice', '/');
    assert.equal(page.status, 200, page.text);
    assert.equal(page.text, 'hello from the app\n');

    const echo = await proxied('webapp', 'alice', '/cgi-bin/echo?x=1', { headers: { 'x-custom': 'yes' } });
    const seen = fields(echo.text);
    assert.equal(seen.method, 'GET');
    assert.equal(seen.uri, '/cgi-bin/echo?x=1&identifier=alice');
    assert.equal(seen['forwarded-for'], '127.0.0.1');
    assert.equal(seen['forwarded-proto'], 'http');
    assert.equal(seen['forwarded-host'], new URL(server.url).host);
    assert.equal(seen['forwarded-prefix'], poolPath('webapp'));
    assert.equal(seen.authorization, '', 'the caller’s bearer token never reaches the container');
    assert.equal(seen.custom, 'yes');
    assert.equal(seen.greeting, 'from the pool', 'pool env overrides the image’s');
    assert.equal(seen.token, 'very-secret-token', 'secretRef env gets the secret’s value');
    assert.equal(seen.whoami, '1000', 'the container runs as the unprivileged sandbox user');

    const first = await server.request(
      'GET',
      `${poolPath('webapp')}/session?api-version=2025-02-02-preview&identifier=alice`,
    );
    assert.equal(first.status, 200, 'GET session is served by the pool, not proxied');
    const again = await proxied('webapp', 'alice', '/');
    assert.equal(again.status, 200);
    const same = await server.request(
      'GET',
      `${poolPath('webapp')}/session?api-version=2025-02-02-preview&identifier=alice`,
    );
    assert.equal(same.json.etag, first.json.etag, 'the same identifier reaches the same sandbox');
    const list = await server.request(
      'GET',
      `${poolPath('webapp')}/listSessions?api-version=2025-02-02-preview`,
    );
    assert.deepEqual(
      list.json.sessions.map((s: any) => s.identifier),
      ['alice'],
    );
    const metadata = await server.request(
      'GET',
      `${poolPath('webapp')}/metadata?api-version=2025-02-02-preview`,
    );
    assert.equal(metadata.json.containerType, 'CustomContainer');
    assert.equal(metadata.json.imageDigest, digest);
  });

  it('streams a large upload to the container and refuses callers without the right role', async () => {
    const upload = randomBytes(8 * 1024 * 1024);
    const answer = await proxied('webapp', 'bob', '/cgi-bin/echo', { method: 'POST', body: upload });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(fields(answer.text)['body-sha256'], createHash('sha256').update(upload).digest('hex'));

    const anonymous = await proxied('webapp', 'bob', '/', { key: null });
    assert.equal(anonymous.status, 401);
    const reader = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: 'reader', roles: ['Reader'] },
    });
    const refused = await proxied('webapp', 'bob', '/', { key: reader.json.key });
    assert.equal(refused.status, 403);
    assert.equal(refused.json.error.code, 'AuthorizationFailed');
    const missing = await server.request('GET', `${poolPath('webapp')}/anything`);
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error.code, 'InvalidIdentifier');
  });

  it('stops a session with POST .management/stopSession; the next request gets a new one', async () => {
    const before = await server.request(
      'GET',
      `${poolPath('webapp')}/session?api-version=2025-02-02-preview&identifier=alice`,
    );
    const stopped = await server.request(
      'POST',
      `${poolPath('webapp')}/.management/stopSession?api-version=2025-10-02-preview&identifier=alice`,
    );
    assert.equal(stopped.status, 200, stopped.text);
    assert.equal(stopped.text, 'Session alice in session pool webapp stopped.');
    const twice = await server.request(
      'POST',
      `${poolPath('webapp')}/.management/stopSession?identifier=alice`,
    );
    assert.equal(twice.status, 404);
    assert.equal((await proxied('webapp', 'alice', '/')).status, 200);
    const after = await server.request(
      'GET',
      `${poolPath('webapp')}/session?api-version=2025-02-02-preview&identifier=alice`,
    );
    assert.notEqual(after.json.etag, before.json.etag);
    const ended = await events('webapp', 'ended');
    assert.ok(ended.some((e) => e.identifier === 'alice' && e.reason === 'stopped'));
  });

  it('ends a session whose container exits with reason containerExit and its exit code, and keeps its console log', async () => {
    assert.equal((await proxied('webapp', 'carol', '/cgi-bin/exit?code=3')).status, 200);
    const ended = await until('the exit to be recorded', async () =>
      (await events('webapp', 'ended')).find((e) => e.identifier === 'carol'),
    );
    assert.equal(ended.reason, 'containerExit');
    assert.equal(ended.details.exitCode, 3);
    const logs = await server.request('GET', `${poolPath('webapp')}/.management/logs?identifier=carol`);
    assert.equal(logs.status, 200, logs.text);
    assert.equal(logs.json.live, false);
    const texts = logs.json.lines.map((l: any) => `${l.stream}:${l.text}`);
    assert.ok(
      texts.includes('stdout:app starting: greeting=from the pool token=set port=8080'),
      texts.join('\n'),
    );
    assert.ok(texts.includes('stderr:app exiting with 3'), texts.join('\n'));
    const next = await proxied('webapp', 'carol', '/');
    assert.equal(next.status, 200, 'the identifier gets a new session');
    assert.equal(next.headers.get('x-sandpool-previous-session-ended'), 'containerExit');
    assert.ok(
      Date.parse(next.headers.get('x-sandpool-previous-session-ended-at') ?? 'absent') > 0,
      'the proxy says when the previous session ended',
    );
  });

  it('streams request and response bodies both ways, and closes the container’s side when the client leaves', async () => {
    const body = customPool({
      image: `${open.host}/team/app:1`,
      command: ['/bin/busybox'],
      args: ['nc', '-ll', '-p', '8080', '-e', '/app/echo.sh'],
    });
    assert.equal(await createPool(server, 'echo', body), 'Succeeded');
    const url = new URL(`${server.url}${poolPath('echo')}/stream/path?identifier=dave`);
    const req = httpRequest(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'transfer-encoding': 'chunked' },
    });
    const response = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(response.statusCode, 200);
    let received = '';
    response.on('data', (chunk: Buffer) => (received += chunk.toString()));
    await until('the echoed request head', () =>
      received.includes('POST /stream/path?identifier=dave HTTP/1.1') ? true : undefined,
    );
    assert.match(received, /x-forwarded-prefix: \/subscriptions\//i);
    assert.doesNotMatch(received, /authorization/i);
    req.write('first-chunk');
    await until('the first chunk echoed before the request ends', () =>
      received.includes('first-chunk') ? true : undefined,
    );
    req.write('second-chunk');
    await until('the second chunk echoed', () => (received.includes('second-chunk') ? true : undefined));
    assert.ok(!response.complete, 'both bodies are still open: nothing was buffered to the end');
    req.destroy();
    const logs = await until('the container to see the connection close', async () => {
      const answer = await server.request('GET', `${poolPath('echo')}/.management/logs?identifier=dave`);
      const lines = (answer.json?.lines ?? []) as { text: string }[];
      return lines.some((l) => l.text.includes('connection closed: POST /stream/path')) ? lines : undefined;
    });
    assert.ok(logs.length > 0);
  });

  it('tunnels a WebSocket upgrade both ways', async () => {
    await assertWebSocketEchoes(server.url, `${poolPath('echo')}/ws?identifier=erin`);
  });

  it('replaces an unhealthy session when its liveness probe fails, and gates the warm set on the startup probe', async () => {
    const body = customPool({
      image: `${open.host}/team/app:1`,
      probes: [
        {
          type: 'Liveness',
          httpGet: { path: '/cgi-bin/health', port: 8080 },
          periodSeconds: 1,
          failureThreshold: 2,
        },
        { type: 'Startup', tcpSocket: { port: 8080 }, periodSeconds: 1, failureThreshold: 5 },
      ],
      lifecycle: { lifecycleType: 'OnContainerExit', maxAlivePeriodInSeconds: 600 },
    });
    assert.equal(await createPool(server, 'probed', body), 'Succeeded');
    assert.equal((await proxied('probed', 'frank', '/cgi-bin/sicken')).status, 200);
    const ended = await until('the liveness probe to end the session', async () =>
      (await events('probed', 'ended')).find((e) => e.identifier === 'frank'),
    );
    assert.equal(ended.reason, 'unhealthy');
    assert.match(ended.details.message, /liveness probe failed 2 times.*answered 500/);

    const failing = customPool({
      image: `${open.host}/team/app:1`,
      probes: [
        { type: 'Startup', httpGet: { path: '/missing', port: 8080 }, periodSeconds: 1, failureThreshold: 2 },
      ],
    });
    assert.equal(await createPool(server, 'neverready', failing), 'Failed');
    const pool = await server.request('GET', `${armPath('neverready')}?${MGMT}`);
    assert.equal(pool.json.properties.provisioningState, 'Failed');
    assert.equal(pool.json.properties.sessionStatus.readySessionCount, 0);
    assert.match(
      pool.json.properties.sessionStatus.lastStartError,
      /failed its startup probe 2 times: GET \/missing on port 8080 answered 404/,
    );
  });

  it('tells a Contributor why a start failed, never the output of the command it chose', async () => {
    const contributor = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: 'contributor', roles: [`Contributor:${armPath('leaky')}`] },
    });
    const key = contributor.json.key as string;
    const body = customPool({
      image: `${open.host}/team/app:1`,
      command: ['/bin/sh', '-c', 'echo "leak:$SECRET_TOKEN"; exit 3'],
      env: [{ name: 'SECRET_TOKEN', secretRef: 'token' }],
    });
    const created = await server.request('PUT', `${armPath('leaky')}?${MGMT}`, { key, body });
    assert.equal(created.status, 201, created.text);
    await until('the start to fail', async () => (await events('leaky', 'startFailed'))[0]);
    const seenByContributor = [
      (await server.request('GET', `${armPath('leaky')}?${MGMT}`, { key })).text,
      (await server.request('GET', `${armPath('leaky')}/events?${MGMT}`, { key })).text,
      (await server.request('GET', '/readyz', { key })).text,
      (await server.request('GET', '/readyz', { key: null })).text,
    ];
    for (const text of seenByContributor) {
      assert.ok(!text.includes('very-secret-token'), text);
      // The command's own text says `leak:$SECRET_TOKEN`; its output would say `leak:` and more.
      assert.ok(!/leak:[^$]/.test(text), text);
    }
    const pool = JSON.parse(seenByContributor[0]!) as { properties: { sessionStatus: any } };
    assert.equal(
      pool.properties.sessionStatus.lastStartError,
      'container app exited with code 3 before it was ready',
    );
    const failures = `${poolPath('leaky')}/.management/startFailures`;
    assert.equal((await server.request('GET', failures, { key })).status, 403);
    const excerpt = await server.request('GET', failures);
    assert.equal(excerpt.status, 200, excerpt.text);
    assert.ok(!excerpt.text.includes('very-secret-token'), excerpt.text);
    assert.ok(
      excerpt.json.value[0].console.includes('leak:[secret token]'),
      JSON.stringify(excerpt.json.value[0]),
    );
    assert.equal(excerpt.json.value[0].code, 'SandboxStartFailed');
  });

  it('survives sessions stopped while their liveness probes are in flight', async () => {
    const body = customPool({
      image: `${open.host}/team/app:1`,
      max: 4,
      ready: 2,
      probes: [
        {
          type: 'Liveness',
          httpGet: { path: '/cgi-bin/slow', port: 8080 },
          periodSeconds: 1,
          timeoutSeconds: 3,
          failureThreshold: 3,
        },
      ],
    });
    assert.equal(await createPool(server, 'raced', body), 'Succeeded');
    for (let round = 0; round < 12; round++) {
      const identifier = `race-${round}`;
      assert.equal((await proxied('raced', identifier, '/cgi-bin/echo')).status, 200);
      // A probe (one second long) is in flight most of the time: stop now, at a random point in it.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 1000));
      const stopped = await server.request(
        'POST',
        `${poolPath('raced')}/.management/stopSession?api-version=2025-10-02-preview&identifier=${identifier}`,
      );
      assert.equal(stopped.status, 200, stopped.text);
      assert.equal((await server.request('GET', '/healthz', { key: null })).status, 200);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.equal((await server.request('GET', '/healthz', { key: null })).status, 200, 'still up');
  });

  it('fails the pool with a typed reason when the image cannot be pulled, and serves nothing half-pulled', async () => {
    const cases = [
      { name: 'noimage', body: customPool({ image: `${open.host}/team/absent:1` }), code: 'ImageNotFound' },
      {
        name: 'badcreds',
        body: customPool({ image: `${locked.host}/team/app:1`, registry: locked, password: 'wrong' }),
        code: 'RegistryAuthFailed',
      },
    ];
    for (const { name, body, code } of cases) {
      const created = await server.request('PUT', `${armPath(name)}?${MGMT}`, { body });
      assert.equal(created.status, 201);
      const operation = await until('the operation to end', async () => {
        const status = await server.request(
          'GET',
          created.headers.get('azure-asyncoperation')!.slice(server.url.length),
        );
        return status.json.status === 'InProgress' ? undefined : status.json;
      });
      assert.equal(operation.status, 'Failed');
      assert.equal(operation.error.code, code, operation.error.message);
      const pool = await server.request('GET', `${armPath(name)}?${MGMT}`);
      assert.equal(pool.json.properties.provisioningState, 'Failed');
      assert.equal(pool.json.properties.imageStatus.digest, null);
      const request = await proxied(name, 'someone', '/');
      assert.equal(request.status, 503);
      assert.equal(request.json.error.code, 'SessionPoolNotReady');
      const failed = await events(name, 'imagePullFailed');
      assert.equal(failed[0]?.reason, code);
    }
  });

  it('keeps the pinned digest when the tag moves, and pulls again when the pool names another image', async () => {
    await locked.push(await buildBusyboxImage({ page: 'the moved tag\n' }), 'team/app:1');
    const pullsBefore = (await events('webapp', 'imagePulled')).length;
    const patched = await server.request('PATCH', `${armPath('webapp')}?${MGMT}`, {
      body: { properties: { scaleConfiguration: { maxConcurrentSessions: 8, readySessionInstances: 0 } } },
    });
    assert.equal(patched.status, 202, patched.text);
    const settled = () =>
      until('the update to settle', async () => {
        const pool = await server.request('GET', `${armPath('webapp')}?${MGMT}`);
        return pool.json.properties.provisioningState === 'InProgress' ? undefined : pool.json;
      });
    assert.equal(
      (await settled()).properties.imageStatus.digest,
      digest,
      'a moved tag needs a new image name',
    );
    assert.equal((await events('webapp', 'imagePulled')).length, pullsBefore, 'no second pull');
    assert.equal((await proxied('webapp', 'gina', '/')).text, 'hello from the app\n');
    await locked.push(await buildBusyboxImage({ page: 'version two\n' }), 'team/app:2');
    const replaced = await server.request('PUT', `${armPath('webapp')}?${MGMT}`, {
      body: customPool({ image: `${locked.host}/team/app:2`, registry: locked, max: 8 }),
    });
    assert.equal(replaced.status, 200, replaced.text);
    const pool = await settled();
    assert.equal(pool.properties.provisioningState, 'Succeeded');
    assert.notEqual(pool.properties.imageStatus.digest, digest);
    assert.equal((await events('webapp', 'imagePulled')).length, pullsBefore + 1);
    assert.equal(
      (await proxied('webapp', 'hank', '/')).text,
      'version two\n',
      'new sessions run the new image',
    );
    assert.equal(
      (await proxied('webapp', 'gina', '/')).text,
      'hello from the app\n',
      'allocated sessions keep theirs',
    );
  });
});
