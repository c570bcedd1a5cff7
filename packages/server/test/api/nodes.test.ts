/**
 * Nodes and draining, through the API with the fake launcher: the server registers itself with a
 * lease, a drain stops new sessions and ready sandboxes while live sessions run on, and the node
 * reports itself drained once they have ended. Who may list and drain, tried as everyone else.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FakeLauncher } from '../fake-launcher.js';
import {
  MGMT,
  armPath,
  createPool,
  execute,
  interpreterPool,
  newKey,
  poolPath,
  DATA,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  startTestServer,
} from '../server-harness.js';

describe('nodes', async () => {
  const launcher = new FakeLauncher();
  const server = await startTestServer('nodes', { launcher, env: { SANDPOOL_NODE_NAME: 'node-a' } });
  await createPool(server, 'drainme', interpreterPool({ max: 4, ready: 2 }));

  it('lists this node, live, with what it holds', async () => {
    const listed = await server.request('GET', '/sandpool/nodes');
    assert.equal(listed.status, 200, listed.text);
    const [node] = listed.json.value as {
      name: string;
      live: boolean;
      draining: boolean;
      url: string;
      load: { ready: number };
    }[];
    assert.equal(node?.name, 'node-a');
    assert.equal(node.live, true);
    assert.equal(node.draining, false);
    assert.equal(node.url, server.url);
    assert.equal(node.load.ready, 2);
  });

  it('only a role on every pool lists or drains nodes; no one else, and no revoked key', async () => {
    const reader = await newKey(server, ['Reader']);
    const scoped = await newKey(server, [`Contributor:${armPath('drainme')}`]);
    const group = await newKey(server, [
      `Contributor:/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}`,
    ]);
    const executor = await newKey(server, ['SessionExecutor']);
    const revoked = await newKey(server, ['Contributor']);
    assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${revoked.id}`)).status, 200);
    const drain = (key: string | null) => server.request('POST', '/sandpool/nodes/node-a/drain', { key });
    const list = (key: string | null) => server.request('GET', '/sandpool/nodes', { key });
    assert.equal((await list(reader.key)).status, 200);
    assert.equal((await drain(reader.key)).status, 403, 'a Reader cannot drain');
    assert.equal((await list(scoped.key)).status, 403, 'a role on one pool is not a role on the node');
    assert.equal((await drain(scoped.key)).status, 403);
    assert.equal((await list(group.key)).status, 403, 'nor is a role on one resource group');
    assert.equal((await drain(group.key)).status, 403);
    assert.equal((await list(executor.key)).status, 403);
    assert.equal((await drain(revoked.key)).status, 401);
    assert.equal((await list(null)).status, 401);
    assert.equal((await drain(null)).status, 401);
    const other = await server.request('POST', '/sandpool/nodes/node-z/drain');
    assert.equal(other.status, 404);
    assert.equal(other.json.error.code, 'NodeNotFound');
  });

  it('drains: no new session, no ready sandbox, live sessions run on, then drained', async () => {
    assert.equal((await execute(server, 'drainme', 'before', 'x')).status, 200);
    const drained = await server.request('POST', '/sandpool/nodes/node-a/drain');
    assert.equal(drained.status, 200, drained.text);
    assert.equal(drained.json.draining, true);
    assert.equal(drained.json.drained, false, 'a session still runs');
    assert.equal(drained.json.load.ready, 0, 'the ready sandboxes were retired');

    const refused = await execute(server, 'drainme', 'after', 'y');
    assert.equal(refused.status, 503);
    assert.equal(refused.json.error.code, 'NodeDraining');
    assert.ok(refused.headers.get('retry-after'));
    assert.equal((await execute(server, 'drainme', 'before', 'still')).status, 200, 'live sessions run on');

    const ends = await server.request('GET', `${armPath('drainme')}/events?${MGMT}&type=ended`);
    assert.ok(
      (ends.json.value as { reason: string }[]).some((event) => event.reason === 'nodeDrained'),
      'ready sandboxes end with reason nodeDrained',
    );
    assert.equal(
      (await server.request('DELETE', `${poolPath('drainme')}/session?${DATA}&identifier=before`)).status,
      204,
    );
    const after = await server.request('GET', '/sandpool/nodes');
    const [node] = after.json.value as { drained: boolean; load: { sessions: number } }[];
    assert.equal(node?.load.sessions, 0);
    assert.equal(node.drained, true);
  });
});
