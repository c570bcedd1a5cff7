import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { FakeLauncher } from '../fake-launcher.js';
import {
  ADMIN_KEY,
  MGMT,
  SUBSCRIPTION,
  armPath,
  createPool,
  pollAsyncOperation,
  interpreterPool,
  startTestServer,
  type TestServer,
} from '../server-harness.js';

async function pollLocation(server: TestServer, url: string) {
  const path = url.slice(server.url.length);
  for (let i = 0; i < 200; i++) {
    const response = await server.request('GET', path);
    if (response.status !== 202) return response;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('operation did not finish');
}

describe('management plane (ARM sessionPools)', async () => {
  const launcher = new FakeLauncher();
  const server = await startTestServer('mgmt', { launcher });

  it('creates a pool as a long-running operation and serves it back', async () => {
    const created = await server.request('PUT', `${armPath('alpha')}?${MGMT}`, {
      body: { ...interpreterPool({ max: 6, ready: 2 }), tags: { costCenter: 'ml' } },
    });
    assert.equal(created.status, 201);
    assert.equal(created.json.properties.provisioningState, 'InProgress');
    const asyncOperation = created.headers.get('azure-asyncoperation')!;
    assert.match(asyncOperation, /sessionPoolOperationStatuses\/[0-9a-f-]+\?api-version=2025-07-01$/);
    assert.equal(await pollAsyncOperation(server, asyncOperation), 'Succeeded');

    const pool = await server.request('GET', `${armPath('alpha')}?${MGMT}`);
    assert.equal(pool.status, 200);
    assert.equal(pool.json.id, armPath('alpha'));
    assert.equal(pool.json.type, 'Microsoft.App/sessionPools');
    assert.deepEqual(pool.json.tags, { costCenter: 'ml' });
    const properties = pool.json.properties;
    assert.equal(properties.provisioningState, 'Succeeded');
    assert.deepEqual(properties.scaleConfiguration, { maxConcurrentSessions: 6, readySessionInstances: 2 });
    assert.deepEqual(properties.dynamicPoolConfiguration.lifecycleConfiguration, {
      lifecycleType: 'Timed',
      cooldownPeriodInSeconds: 300,
    });
    assert.equal(
      properties.poolManagementEndpoint,
      `${server.url}/subscriptions/${SUBSCRIPTION}/resourceGroups/tests/sessionPools/alpha`,
    );
    assert.equal(properties.sessionStatus.readySessionCount, 2);
  });

  it('reads keys and enums in any case and ignores unknown properties', async () => {
    const body = {
      LOCATION: 'local',
      Properties: {
        containertype: 'pythonlts',
        ScaleConfiguration: { MaxConcurrentSessions: 3, readysessioninstances: 0 },
        dynamicPoolConfiguration: { lifecycleConfiguration: { type: 'timed', coolDownPeriodInSeconds: 600 } },
        sessionNetworkConfiguration: { status: 'egressdisabled' },
        someFutureProperty: { x: 1 },
      },
    };
    assert.equal(await createPool(server, 'casing', body), 'Succeeded');
    const pool = await server.request('GET', `${armPath('casing')}?${MGMT}`);
    assert.equal(pool.json.properties.containerType, 'PythonLTS');
    assert.equal(pool.json.properties.scaleConfiguration.maxConcurrentSessions, 3);
    assert.equal(
      pool.json.properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds,
      600,
    );
    assert.equal(pool.json.properties.someFutureProperty, undefined);
  });

  it('lists by resource group and by subscription with nextLink paging', async () => {
    await createPool(server, 'beta');
    await createPool(server, 'gamma');
    const names: string[] = [];
    let next: string | undefined =
      `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.App/sessionPools?${MGMT}&$top=2`;
    while (next) {
      const page = await server.request('GET', next);
      assert.equal(page.status, 200);
      assert.ok(page.json.value.length <= 2);
      names.push(...page.json.value.map((p: { name: string }) => p.name));
      next = page.json.nextLink?.slice(server.url.length);
    }
    assert.deepEqual(names.sort(), ['alpha', 'beta', 'casing', 'gamma']);
    const byGroup = await server.request(
      'GET',
      `/subscriptions/${SUBSCRIPTION}/resourceGroups/tests/providers/Microsoft.App/sessionPools?${MGMT}`,
    );
    assert.equal(byGroup.json.value.length, 4);
    const otherGroup = await server.request(
      'GET',
      `/subscriptions/${SUBSCRIPTION}/resourceGroups/other/providers/Microsoft.App/sessionPools?${MGMT}`,
    );
    assert.deepEqual(otherGroup.json.value, []);
  });

  it('merges a PATCH and answers 202 with a Location to poll', async () => {
    const patched = await server.request('PATCH', `${armPath('beta')}?${MGMT}`, {
      body: { properties: { scaleConfiguration: { maxConcurrentSessions: 8 } }, tags: { team: 'a' } },
    });
    assert.equal(patched.status, 202);
    const final = await pollLocation(server, patched.headers.get('location')!);
    assert.equal(final.status, 200);
    assert.equal(final.json.properties.scaleConfiguration.maxConcurrentSessions, 8);
    assert.equal(final.json.properties.scaleConfiguration.readySessionInstances, 1, 'untouched fields stay');
    assert.deepEqual(final.json.tags, { team: 'a' });
  });

  it('keeps write-only secret values across updates', async () => {
    const body = interpreterPool();
    await createPool(server, 'secrets', {
      ...body,
      properties: { ...body.properties, secrets: [{ name: 'token', value: 's3cret' }] },
    });
    const pool = await server.request('GET', `${armPath('secrets')}?${MGMT}`);
    assert.deepEqual(pool.json.properties.secrets, [{ name: 'token' }]);
    assert.ok(!pool.text.includes('s3cret'));
    await server.request('PUT', `${armPath('secrets')}?${MGMT}`, { body: pool.json });
    const stored = await server.server.store.getPool(armPath('secrets').toLowerCase());
    assert.deepEqual((stored?.spec as { secrets: unknown }).secrets, [{ name: 'token', value: 's3cret' }]);
  });

  it('deletes a pool as a long-running operation, draining its sessions', async () => {
    const before = launcher.live().length;
    const deleted = await server.request('DELETE', `${armPath('gamma')}?${MGMT}`);
    assert.equal(deleted.status, 202);
    const final = await pollLocation(server, deleted.headers.get('location')!);
    assert.equal(final.status, 204);
    assert.equal(launcher.live().length, before - 1, 'the ready sandbox was destroyed');
    const gone = await server.request('GET', `${armPath('gamma')}?${MGMT}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.json.error.code, 'ResourceNotFound');
    assert.equal(gone.headers.get('x-ms-error-code'), 'ResourceNotFound');
    assert.equal((await server.request('DELETE', `${armPath('gamma')}?${MGMT}`)).status, 204);
  });

  const invalid: [string, string, unknown, string, string | undefined][] = [
    ['an upper-case pool name', 'BadName', interpreterPool(), 'InvalidParameter', 'sessionPoolName'],
    ['a too-short pool name', 'ab', interpreterPool(), 'InvalidParameter', 'sessionPoolName'],
    ['a pool name with a dash', 'my-pool', interpreterPool(), 'InvalidParameter', 'sessionPoolName'],
    ['no location', 'valid', { properties: {} }, 'InvalidParameter', 'location'],
    ['a body that is not an object', 'valid', [1, 2], 'InvalidRequestContent', undefined],
    [
      'a cooldown under 300',
      'valid',
      interpreterPool({ cooldown: 299 }),
      'InvalidParameter',
      'properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds',
    ],
    [
      'a cooldown over 3600',
      'valid',
      interpreterPool({ cooldown: 3601 }),
      'InvalidParameter',
      'properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds',
    ],
    [
      'more ready than max sessions',
      'valid',
      interpreterPool({ max: 2, ready: 3 }),
      'InvalidParameter',
      'properties.scaleConfiguration.readySessionInstances',
    ],
    [
      'max sessions over the server limit',
      'valid',
      interpreterPool({ max: 601, ready: 0 }),
      'InvalidParameter',
      'properties.scaleConfiguration.maxConcurrentSessions',
    ],
    [
      'max sessions as a fraction',
      'valid',
      interpreterPool({ max: 2.5 }),
      'InvalidParameter',
      'properties.scaleConfiguration.maxConcurrentSessions',
    ],
    [
      'an unknown container type',
      'valid',
      { location: 'l', properties: { containerType: 'Cobol' } },
      'InvalidParameter',
      'properties.containerType',
    ],
    [
      'cpu out of range',
      'valid',
      { location: 'l', properties: { sessionResources: { cpu: 8 } } },
      'InvalidParameter',
      'properties.sessionResources.cpu',
    ],
    [
      'memory out of range',
      'valid',
      { location: 'l', properties: { sessionResources: { memory: '16Gi' } } },
      'InvalidParameter',
      'properties.sessionResources.memory',
    ],
    [
      'Manual pool management',
      'valid',
      { location: 'l', properties: { poolManagementType: 'Manual' } },
      'InvalidParameter',
      'properties.poolManagementType',
    ],
  ];
  for (const [what, name, body, code, target] of invalid) {
    it(`rejects ${what} with ${code}`, async () => {
      const response = await server.request('PUT', `${armPath(name)}?${MGMT}`, { body });
      assert.equal(response.status, 400, response.text);
      assert.equal(response.json.error.code, code);
      assert.equal(response.json.error.target, target);
      assert.ok(response.json.error.message.length > 10);
    });
  }

  it('reads and answers the 2024-02-02-preview shape', async () => {
    const v = 'api-version=2024-02-02-preview';
    const body = {
      location: 'local',
      properties: {
        containerType: 'JupyterPython',
        maxConcurrentSessions: 7,
        dynamicPoolConfiguration: { executionType: 'Timed', coolDownPeriodInSecond: 400 },
      },
    };
    const created = await server.request('PUT', `${armPath('legacy')}?${v}`, { body });
    assert.equal(created.status, 201, created.text);
    await pollAsyncOperation(server, created.headers.get('azure-asyncoperation')!);
    const old = (await server.request('GET', `${armPath('legacy')}?${v}`)).json.properties;
    assert.equal(old.containerType, 'JupyterPython');
    assert.equal(old.maxConcurrentSessions, 7);
    assert.deepEqual(old.dynamicPoolConfiguration, { executionType: 'Timed', coolDownPeriodInSecond: 400 });
    const current = (await server.request('GET', `${armPath('legacy')}?${MGMT}`)).json.properties;
    assert.equal(current.containerType, 'PythonLTS');
    assert.equal(current.scaleConfiguration.maxConcurrentSessions, 7);
    assert.equal(current.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds, 400);

    const patched = await server.request('PATCH', `${armPath('legacy')}?${v}`, {
      body: { properties: { maxConcurrentSessions: 9 } },
    });
    assert.equal(patched.status, 202);
    assert.equal(patched.json.properties.maxConcurrentSessions, 9);
    const after = (await server.request('GET', `${armPath('legacy')}?${MGMT}`)).json.properties;
    assert.deepEqual(after.scaleConfiguration, {
      maxConcurrentSessions: 9,
      readySessionInstances: current.scaleConfiguration.readySessionInstances,
    });
    assert.equal(after.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds, 400);
  });

  it('reads and answers the 2024-08 and 2024-10 preview shape', async () => {
    const body = {
      location: 'local',
      properties: {
        containerType: 'PythonLTS',
        scaleConfiguration: { maxConcurrentSessions: 5, readySessionInstances: 1 },
        dynamicPoolConfiguration: { executionType: 'Timed', cooldownPeriodInSeconds: 500 },
      },
    };
    await server.request('PUT', `${armPath('preview')}?api-version=2024-08-02-preview`, { body });
    const old = (await server.request('GET', `${armPath('preview')}?api-version=2024-10-02-preview`)).json
      .properties;
    assert.deepEqual(old.dynamicPoolConfiguration, { executionType: 'Timed', cooldownPeriodInSeconds: 500 });
    assert.deepEqual(old.scaleConfiguration, { maxConcurrentSessions: 5, readySessionInstances: 1 });
    const current = (await server.request('GET', `${armPath('preview')}?${MGMT}`)).json.properties;
    assert.deepEqual(current.dynamicPoolConfiguration, {
      lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: 500 },
    });
    const bad = await server.request('PUT', `${armPath('preview')}?api-version=2024-08-02-preview`, {
      body: {
        ...body,
        properties: { ...body.properties, dynamicPoolConfiguration: { executionType: 'Forever' } },
      },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.target, 'properties.dynamicPoolConfiguration.executionType');
  });

  it('requires a known api-version', async () => {
    const missing = await server.request('GET', armPath('alpha'));
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error.code, 'MissingApiVersionParameter');
    const unknown = await server.request('GET', `${armPath('alpha')}?api-version=2019-01-01`);
    assert.equal(unknown.json.error.code, 'InvalidApiVersionParameter');
  });

  it('refuses container types this server does not run', async () => {
    const response = await server.request('PUT', `${armPath('alpha')}?${MGMT}`, {
      body: { location: 'l', properties: { containerType: 'FunctionsPython' } },
    });
    assert.equal(response.status, 400);
    assert.equal(response.json.error.target, 'properties.containerType');
  });

  it('serves its OpenAPI document without a credential, as committed', async () => {
    const document = await server.request('GET', '/openapi.json', { key: null });
    assert.equal(document.status, 200);
    assert.equal(document.json.openapi, '3.1.0');
    assert.deepEqual(
      document.json,
      JSON.parse(readFileSync(new URL('../../../../openapi.json', import.meta.url), 'utf8')),
    );
  });

  it('answers through inject() as through a socket', async () => {
    const injected = await server.server.app.inject({
      method: 'GET',
      url: `${armPath('alpha')}?${MGMT}`,
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    assert.equal(injected.statusCode, 200);
    assert.equal(injected.json<{ name: string }>().name, 'alpha');
    assert.equal((await server.server.app.inject({ url: '/healthz' })).statusCode, 200);
  });

  it('answers unknown routes with a coded 404', async () => {
    const response = await server.request('GET', '/nothing/here');
    assert.equal(response.status, 404);
    assert.equal(response.json.error.code, 'RouteNotFound');
  });
});

describe('first start', async () => {
  const server = await startTestServer('first', {
    launcher: new FakeLauncher(),
    env: { SANDPOOL_DEFAULT_POOL: 'default' },
  });

  it('creates the default pool and registers the admin key hashed', async () => {
    const pool = await server.request(
      'GET',
      `/subscriptions/${server.config.defaultSubscription}/resourceGroups/${server.config.defaultResourceGroup}/providers/Microsoft.App/sessionPools/default?${MGMT}`,
    );
    assert.equal(pool.status, 200);
    assert.equal(pool.json.properties.containerType, 'PythonLTS');
    assert.equal(server.server.bootstrapKey, ADMIN_KEY);
    const keys = await server.server.store.listApiKeys();
    assert.equal(keys.length, 1);
    assert.deepEqual(keys[0]!.roles, ['Contributor', 'SessionExecutor', 'Reader']);
    const secret = ADMIN_KEY.split('_')[2]!;
    assert.notEqual(keys[0]!.secretHash, secret);
    for (const file of ['sandpool.db', 'sandpool.db-wal']) {
      const path = join(server.config.home, file);
      assert.ok(
        !existsSync(path) || !readFileSync(path).includes(secret),
        `${file} holds no key in the clear`,
      );
    }
  });
});

describe('HTTPS', async () => {
  const server = await startTestServer('tls', {
    launcher: new FakeLauncher(),
    env: { SANDPOOL_TLS: 'auto' },
  });

  it('serves over a generated self-signed certificate that clients can pin', async () => {
    assert.ok(server.url.startsWith('https://127.0.0.1:'));
    const ca = readFileSync(join(server.config.paths.tlsDir, 'self-signed.crt'));
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        `${server.url}${armPath('alpha')}?${MGMT}`,
        { ca, headers: { authorization: `Bearer ${ADMIN_KEY}` } },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve(`${res.statusCode} ${text}`));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.match(body, /^404 .*ResourceNotFound/);
    assert.match(server.server.tlsFingerprint ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('uses the operator’s certificate and key when given', async () => {
    const dir = server.config.paths.tlsDir;
    const given = await startTestServer('tls-given', {
      launcher: new FakeLauncher(),
      env: {
        SANDPOOL_TLS: 'auto',
        SANDPOOL_TLS_CERT: join(dir, 'self-signed.crt'),
        SANDPOOL_TLS_KEY: join(dir, 'self-signed.key'),
      },
    });
    assert.equal(given.server.tlsFingerprint, server.server.tlsFingerprint);
    assert.ok(!existsSync(given.config.paths.tlsDir), 'nothing was generated');
  });
});
