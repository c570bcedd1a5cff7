/**
 * The SDK's own logic against a server in process (no sandboxes, no sockets, no root): paging,
 * waiting for operations and their failures, typed errors, asynchronous executions. The same
 * calls against real sandboxes are in sdk.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ApiError, OperationFailedError, SandpoolClient } from '@sandpool/sdk';

import { startInMemoryServer } from '../../server/test/in-memory-server.js';
import { ADMIN_KEY, RESOURCE_GROUP, SUBSCRIPTION } from '../../server/test/server-harness.js';

describe('SDK against a server in process', async () => {
  const { endpoint, fetch, launcher } = await startInMemoryServer('sdk-memory');
  const client = new SandpoolClient({
    endpoint,
    fetch,
    credential: ADMIN_KEY,
    subscription: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    pollIntervalMs: 10,
  });
  await client.pools.createOrUpdate('memory', { maxSessions: 4, readySessions: 1 });

  it('follows nextLink through every page of a long list', async () => {
    const session = client.pool('memory').session('pager');
    // The audit trail pages at 100 entries: 105 executions make two pages.
    for (let i = 0; i < 105; i++) await session.execute(`print(${i})`);
    const entries = await client.audit.list({ action: 'code.execute', pool: 'memory' });
    assert.equal(entries.filter((entry) => entry.identifier === 'pager').length, 105);
  });

  it('waits for a pool operation and throws OperationFailedError when it fails', async () => {
    launcher.failWith = new Error('no room on this host');
    try {
      await assert.rejects(
        client.pools.createOrUpdate('doomed', { maxSessions: 2, readySessions: 1 }),
        (error: unknown) => {
          assert.ok(error instanceof OperationFailedError, String(error));
          assert.equal(error.code, 'SandboxStartFailed');
          assert.match(error.message, /no room on this host/);
          return true;
        },
      );
    } finally {
      launcher.failWith = undefined;
    }
    const pool = await client.pools.get('doomed');
    assert.equal(pool.properties.provisioningState, 'Failed');
    await client.pools.delete('doomed');
  });

  it('fetches and rotates a pool’s platform MCP key, and names its MCP endpoints', async () => {
    const memory = await client.pools.get('memory');
    await client.pools.createOrUpdate('agentic', {
      ...memory,
      properties: { ...memory.properties, mcpServerSettings: { isMcpServerEnabled: true } },
    });
    const key = await client.pools.mcpServerKey('agentic');
    assert.equal(await client.pools.mcpServerKey('agentic'), key);
    const rotated = await client.pools.mcpServerKey('agentic', { rotate: true });
    assert.notEqual(rotated, key);
    const pool = await client.pools.get('agentic');
    assert.equal(
      pool.properties.mcpServerSettings?.mcpServerEndpoint,
      `${endpoint}/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/sessionPools/agentic/platformMcp`,
    );
    assert.equal(
      client.pool('agentic').mcpUrl,
      `${endpoint}/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/sessionPools/agentic/mcp`,
    );
    await assert.rejects(client.pools.mcpServerKey('memory'), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.code, 'InvalidParameter');
      return true;
    });
    await client.pools.delete('agentic');
  });

  it('types a refusal with its status, stable code and the server’s request id', async () => {
    await assert.rejects(client.pools.get('absent'), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 404);
      assert.equal(error.code, 'ResourceNotFound');
      assert.ok(error.requestId);
      return true;
    });
    const stranger = new SandpoolClient({ endpoint, fetch, credential: 'not-a-key', retry: false });
    await assert.rejects(stranger.pools.list(), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 401);
      return true;
    });
  });

  it('starts an execution asynchronously and reads it to its end', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    launcher.run = async (code) => {
      await held;
      return `ran ${code}`;
    };
    try {
      const session = client.pool('memory').session('async');
      const started = await session.execute('slow()', { async: true });
      assert.equal(started.status, 'Running');
      assert.equal((await session.getExecution(started.id)).status, 'Running');
      release();
      let finished = await session.getExecution(started.id);
      while (finished.status === 'Running') finished = await session.getExecution(started.id);
      assert.equal(finished.status, 'Succeeded');
      assert.equal(finished.result?.stdout, 'ran slow()');
    } finally {
      launcher.run = (code) => Promise.resolve(code);
    }
  });
});
