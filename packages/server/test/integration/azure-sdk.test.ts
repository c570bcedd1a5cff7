/**
 * Microsoft's ARM SDK (@azure/arm-appcontainers 4) manages pools on
 * Sandpool over HTTPS exactly as it would on Azure: create, get, list, update and delete, with the
 * SDK's own long-running-operation pollers. Only the endpoint, the CA and the credential change.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { ContainerAppsAPIClient } from '@azure/arm-appcontainers';
import type { TokenCredential } from '@azure/core-auth';

import { ADMIN_KEY, RESOURCE_GROUP, SUBSCRIPTION, startTestServer } from '../server-harness.js';
import { skipReason } from './harness.js';

/** An API key handed to the SDK the way any TokenCredential hands it a token. */
const credential: TokenCredential = {
  getToken: () => Promise.resolve({ token: ADMIN_KEY, expiresOnTimestamp: Date.now() + 3_600_000 }),
};

describe('@azure/arm-appcontainers against Sandpool', { skip: skipReason }, async () => {
  const server = await startTestServer('azure-sdk', { env: { SANDPOOL_TLS: 'auto' } });
  const client = new ContainerAppsAPIClient(credential, SUBSCRIPTION, {
    endpoint: server.url,
    tlsOptions: { ca: readFileSync(join(server.config.paths.tlsDir, 'self-signed.crt')) },
    retryOptions: { maxRetries: 0 },
  });
  const pools = client.containerAppsSessionPools;
  const poll = { updateIntervalInMs: 50 };

  it('creates a pool and waits for its long-running operation', async () => {
    const pool = await pools.createOrUpdate(
      RESOURCE_GROUP,
      'sdkpool',
      {
        location: 'westus2',
        tags: { owner: 'sdk-test' },
        containerType: 'PythonLTS',
        poolManagementType: 'Dynamic',
        scaleConfiguration: { maxConcurrentSessions: 4, readySessionInstances: 1 },
        dynamicPoolConfiguration: {
          lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: 300 },
        },
        sessionNetworkConfiguration: { status: 'EgressDisabled' },
      },
      poll,
    );
    assert.equal(pool.provisioningState, 'Succeeded');
    assert.equal(pool.name, 'sdkpool');
    assert.equal(
      pool.poolManagementEndpoint,
      `${server.url}/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/sessionPools/sdkpool`,
    );
  });

  it('gets and lists pools', async () => {
    const pool = await pools.get(RESOURCE_GROUP, 'sdkpool');
    assert.equal(pool.scaleConfiguration?.maxConcurrentSessions, 4);
    assert.deepEqual(pool.tags, { owner: 'sdk-test' });
    const byGroup = [];
    for await (const p of pools.listByResourceGroup(RESOURCE_GROUP)) byGroup.push(p.name);
    assert.deepEqual(byGroup, ['sdkpool']);
    const bySubscription = [];
    for await (const p of pools.listBySubscription()) bySubscription.push(p.name);
    assert.deepEqual(bySubscription, ['sdkpool']);
  });

  it('updates a pool with a PATCH long-running operation', async () => {
    const updated = await pools.update(
      RESOURCE_GROUP,
      'sdkpool',
      { scaleConfiguration: { maxConcurrentSessions: 8 } },
      poll,
    );
    assert.equal(updated.scaleConfiguration?.maxConcurrentSessions, 8);
    assert.equal(updated.scaleConfiguration.readySessionInstances, 1);
  });

  it('deletes a pool and then reports it missing in ARM’s terms', async () => {
    await pools.delete(RESOURCE_GROUP, 'sdkpool', poll);
    await assert.rejects(pools.get(RESOURCE_GROUP, 'sdkpool'), (error: any) => {
      assert.equal(error.statusCode, 404);
      assert.equal(error.code, 'ResourceNotFound');
      return true;
    });
  });

  it('surfaces validation errors as ARM errors with their code', async () => {
    await assert.rejects(
      async () =>
        await pools.createOrUpdate(
          RESOURCE_GROUP,
          'badpool',
          { location: 'westus2', scaleConfiguration: { maxConcurrentSessions: 2, readySessionInstances: 5 } },
          poll,
        ),
      (error: any) => {
        assert.equal(error.statusCode, 400);
        assert.equal(error.code, 'InvalidParameter');
        assert.match(error.message, /readySessionInstances/);
        return true;
      },
    );
  });
});
