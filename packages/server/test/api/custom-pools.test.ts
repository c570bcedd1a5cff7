/**
 * Custom container pools through the management API, without sandboxes or a registry: how the
 * template is read (and every bad value refused with its target), the pull's progress on the pool,
 * the pinned digest across updates, and a failed pull leaving the pool Failed with its code.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { AppError, ErrorCode } from '../../src/errors.js';
import { FakeImageSource, FakeLauncher } from '../fake-launcher.js';
import { MGMT, armPath, createPool, poolPath, startTestServer } from '../server-harness.js';

const IMAGE = 'registry.example:5000/team/app:1';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

function pool(container: Record<string, unknown> = {}, properties: Record<string, unknown> = {}) {
  return {
    location: 'local',
    properties: {
      containerType: 'CustomContainer',
      scaleConfiguration: { maxConcurrentSessions: 2, readySessionInstances: 1 },
      secrets: [{ name: 'pw', value: 'registry-password' }],
      customContainerTemplate: {
        containers: [{ name: 'app', image: IMAGE, ...container }],
        ingress: { targetPort: 8080 },
      },
      ...properties,
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('custom container pools (management)', async () => {
  const images = new FakeImageSource({ [IMAGE]: DIGEST });
  const server = await startTestServer('custom-api', { launcher: new FakeLauncher(), images });
  const get = async (name: string) => (await server.request('GET', `${armPath(name)}?${MGMT}`)).json;

  it('shows the pull’s progress on the pool, refuses sessions until it ends, then pins the digest', async () => {
    let release!: () => void;
    images.gate = () => new Promise((resolve) => (release = resolve));
    const created = await server.request('PUT', `${armPath('pulling')}?${MGMT}`, {
      body: pool(
        {
          env: [{ name: 'MODE', value: 'test' }],
          probes: [{ type: 'Liveness', tcpSocket: { port: 8080 } }],
        },
        {
          dynamicPoolConfiguration: { lifecycleConfiguration: { lifecycleType: 'OnContainerExit' } },
        },
      ),
    });
    assert.equal(created.status, 201, created.text);
    for (let i = 0; i < 100 && !(await get('pulling')).properties.imageStatus.pulling; i++) await sleep(10);
    const during = await get('pulling');
    assert.equal(during.properties.provisioningState, 'InProgress');
    assert.equal(during.properties.imageStatus.pulling.stage, 'downloading');
    assert.equal(during.properties.imageStatus.pulling.image, IMAGE);
    assert.equal(during.properties.imageStatus.digest, null);
    const early = await server.request('GET', `${poolPath('pulling')}/?identifier=u1`);
    assert.equal(early.status, 503);
    assert.equal(early.json.error.code, 'SessionPoolNotReady');
    assert.match(early.json.error.message, /pulling its image/);
    release();
    images.gate = () => Promise.resolve();
    for (let i = 0; i < 100 && (await get('pulling')).properties.provisioningState === 'InProgress'; i++)
      await sleep(10);
    const done = await get('pulling');
    assert.equal(done.properties.provisioningState, 'Succeeded');
    assert.equal(done.properties.imageStatus.digest, DIGEST);
    assert.equal(done.properties.imageStatus.pulling, undefined);
    assert.deepEqual(done.properties.dynamicPoolConfiguration.lifecycleConfiguration, {
      lifecycleType: 'OnContainerExit',
      maxAlivePeriodInSeconds: 3600,
    });
    const container = done.properties.customContainerTemplate.containers[0];
    assert.deepEqual(container.env, [{ name: 'MODE', value: 'test' }]);
    assert.deepEqual(container.probes[0], {
      type: 'Liveness',
      tcpSocket: { port: 8080 },
      initialDelaySeconds: 0,
      periodSeconds: 10,
      timeoutSeconds: 1,
      failureThreshold: 3,
      successThreshold: 1,
    });
  });

  it('pulls once: an update that keeps the image keeps its digest, a new image is pulled', async () => {
    const before = images.pulls.length;
    const patched = await server.request('PATCH', `${armPath('pulling')}?${MGMT}`, {
      body: { properties: { scaleConfiguration: { maxConcurrentSessions: 4, readySessionInstances: 0 } } },
    });
    assert.equal(patched.status, 202);
    for (let i = 0; i < 100 && (await get('pulling')).properties.provisioningState !== 'Succeeded'; i++)
      await sleep(10);
    assert.equal(images.pulls.length, before, 'no pull for a scale change');
    assert.equal((await get('pulling')).properties.imageStatus.digest, DIGEST);
    assert.equal(
      await createPool(server, 'pulling', pool({ image: 'registry.example:5000/team/app:2' })),
      'Succeeded',
    );
    assert.equal(images.pulls.at(-1), 'registry.example:5000/team/app:2');
  });

  it('leaves the pool Failed with the pull’s error code', async () => {
    images.failWith = new AppError(ErrorCode.ImageNotFound, 'cannot pull: the registry has no such image');
    try {
      const created = await server.request('PUT', `${armPath('missing')}?${MGMT}`, { body: pool() });
      const url = created.headers.get('azure-asyncoperation')!.slice(server.url.length);
      let operation = (await server.request('GET', url)).json;
      for (let i = 0; i < 100 && operation.status === 'InProgress'; i++) {
        await sleep(10);
        operation = (await server.request('GET', url)).json;
      }
      assert.equal(operation.status, 'Failed');
      assert.equal(operation.error.code, 'ImageNotFound');
      const failed = await get('missing');
      assert.equal(failed.properties.provisioningState, 'Failed');
      assert.equal(failed.properties.imageStatus.digest, null);
      const events = await server.request('GET', `${armPath('missing')}/events?${MGMT}&type=imagePullFailed`);
      assert.equal(events.json.value[0].reason, 'ImageNotFound');
    } finally {
      images.failWith = undefined;
    }
  });

  const template = 'properties.customContainerTemplate';
  const container = `${template}.containers[0]`;
  const invalid: [string, unknown, string, string][] = [
    [
      'no template',
      { location: 'l', properties: { containerType: 'CustomContainer' } },
      'InvalidParameter',
      template,
    ],
    [
      'two containers',
      {
        location: 'l',
        properties: {
          containerType: 'CustomContainer',
          customContainerTemplate: {
            containers: [{ image: IMAGE }, { image: IMAGE }],
            ingress: { targetPort: 80 },
          },
        },
      },
      'InvalidParameter',
      `${template}.containers`,
    ],
    [
      'no target port',
      pool({}, { customContainerTemplate: { containers: [{ image: IMAGE }] } }),
      'InvalidParameter',
      `${template}.ingress.targetPort`,
    ],
    ['a bad image reference', pool({ image: 'Not An Image' }), 'InvalidImageReference', `${container}.image`],
    [
      'an env secretRef to no secret',
      pool({ env: [{ name: 'X', secretRef: 'nope' }] }),
      'InvalidParameter',
      `${container}.env[0].secretRef`,
    ],
    [
      'an env var with value and secretRef',
      pool({ env: [{ name: 'X', value: 'v', secretRef: 'pw' }] }),
      'InvalidParameter',
      `${container}.env[0]`,
    ],
    [
      'two probes of one type',
      pool({
        probes: [
          { type: 'Liveness', tcpSocket: { port: 1 } },
          { type: 'Liveness', tcpSocket: { port: 2 } },
        ],
      }),
      'InvalidParameter',
      `${container}.probes`,
    ],
    [
      'a probe with both checks',
      pool({ probes: [{ type: 'Startup', tcpSocket: { port: 1 }, httpGet: { port: 1 } }] }),
      'InvalidParameter',
      `${container}.probes[0]`,
    ],
    [
      'an HTTPS probe',
      pool({ probes: [{ type: 'Startup', httpGet: { port: 1, scheme: 'HTTPS' } }] }),
      'InvalidParameter',
      `${container}.probes[0].httpGet.scheme`,
    ],
    [
      'a successThreshold above 1',
      pool({ probes: [{ type: 'Liveness', tcpSocket: { port: 1 }, successThreshold: 2 }] }),
      'InvalidParameter',
      `${container}.probes[0].successThreshold`,
    ],
    [
      'a probe port of 0',
      pool({ probes: [{ type: 'Liveness', tcpSocket: { port: 0 } }] }),
      'InvalidParameter',
      `${container}.probes[0].tcpSocket.port`,
    ],
    [
      'cpu above 2',
      pool({ resources: { cpu: 4, memory: '1Gi' } }),
      'InvalidParameter',
      `${container}.resources.cpu`,
    ],
    [
      'credentials for another registry',
      pool(
        {},
        {
          customContainerTemplate: {
            registryCredentials: { server: 'other.example', username: 'u', passwordSecretRef: 'pw' },
            containers: [{ image: IMAGE }],
            ingress: { targetPort: 80 },
          },
        },
      ),
      'InvalidParameter',
      `${template}.registryCredentials.server`,
    ],
    [
      'a managed identity',
      pool(
        {},
        {
          customContainerTemplate: {
            registryCredentials: { server: 'registry.example:5000', identity: 'system' },
            containers: [{ image: IMAGE }],
            ingress: { targetPort: 80 },
          },
        },
      ),
      'InvalidParameter',
      `${template}.registryCredentials.identity`,
    ],
    ['gVisor', pool({}, { sandboxRuntime: 'runsc' }), 'InvalidParameter', 'properties.sandboxRuntime'],
    [
      'an allowlist entry that is neither an address nor a name',
      pool(
        {},
        {
          sessionNetworkConfiguration: { status: 'EgressEnabled', egressAllowlist: ['pypi.org', 'http://x'] },
        },
      ),
      'InvalidParameter',
      'properties.sessionNetworkConfiguration.egressAllowlist[1]',
    ],
    [
      'an allowlist without egress',
      pool({}, { sessionNetworkConfiguration: { status: 'EgressDisabled', egressAllowlist: ['pypi.org'] } }),
      'InvalidParameter',
      'properties.sessionNetworkConfiguration.egressAllowlist',
    ],
    [
      'a cooldown with OnContainerExit',
      pool(
        {},
        {
          dynamicPoolConfiguration: {
            lifecycleConfiguration: { lifecycleType: 'OnContainerExit', cooldownPeriodInSeconds: 300 },
          },
        },
      ),
      'InvalidParameter',
      'properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds',
    ],
    [
      'a template on a PythonLTS pool',
      { location: 'l', properties: { containerType: 'PythonLTS', customContainerTemplate: {} } },
      'InvalidParameter',
      template,
    ],
    [
      'a preload list on a custom container pool',
      pool({}, { preloadModules: ['numpy'] }),
      'InvalidParameter',
      'properties.preloadModules',
    ],
    [
      'a preload entry that is no module name',
      {
        location: 'l',
        properties: { containerType: 'PythonLTS', preloadModules: ['numpy', 'os; import x'] },
      },
      'InvalidParameter',
      'properties.preloadModules[1]',
    ],
    [
      'a preload list that is no list',
      { location: 'l', properties: { containerType: 'PythonLTS', preloadModules: 'numpy' } },
      'InvalidParameter',
      'properties.preloadModules',
    ],
    [
      'more than 32 preloaded modules',
      {
        location: 'l',
        properties: {
          containerType: 'PythonLTS',
          preloadModules: Array.from({ length: 33 }, (_, i) => `m${i}`),
        },
      },
      'InvalidParameter',
      'properties.preloadModules',
    ],
  ];
  for (const [what, body, code, target] of invalid) {
    it(`rejects ${what} with ${code}`, async () => {
      const response = await server.request('PUT', `${armPath('invalid')}?${MGMT}`, { body });
      assert.equal(response.status, 400, response.text);
      assert.equal(response.json.error.code, code);
      assert.equal(response.json.error.target, target);
    });
  }
});
