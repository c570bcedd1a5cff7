/**
 * @module api/management/mcp-credential-routes
 * Azure's actions on a pool's platform MCP server key: `fetchMcpServerCredentials` (the key, made on
 * first fetch) and `rotateMcpServerCredentials` (a new one; the old is refused at once). Both need
 * Contributor on the pool, since the key runs code in every session of it, and a pool whose MCP
 * server is enabled. Azure's tutorial spells them `fetchMCPServerCredentials`; both spellings answer.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { McpServerKeys } from '../../pool/mcp-server-keys.js';
import { storedSpec } from '../../pool/pool-spec.js';
import type { PoolService } from '../../pool/pool-service.js';
import type { PoolRow } from '../../store/store.js';
import { MANAGEMENT_VERSIONS, requireApiVersion } from '../api-version.js';
import { mcpRoutes } from '../schemas/mcp.js';
import { loadPool, POOLS, type PoolParams } from './session-pools.js';

export function registerMcpCredentialRoutes(
  app: FastifyInstance,
  deps: { pools: PoolService; keys: McpServerKeys },
): void {
  /** The pool the request names, once the caller may manage its MCP key and the server is on. */
  async function enabledPool(request: FastifyRequest): Promise<PoolRow> {
    requireApiVersion(
      (request.query as Record<string, string | undefined>)['api-version'],
      MANAGEMENT_VERSIONS,
    );
    const params = request.params as PoolParams;
    const pool = await loadPool(deps.pools, params);
    if (!storedSpec(pool).mcpServer.enabled) {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `session pool ${pool.name} has no MCP server: set properties.mcpServerSettings.isMcpServerEnabled first`,
        { target: 'properties.mcpServerSettings.isMcpServerEnabled' },
      );
    }
    return pool;
  }

  for (const [action, schema, answer] of [
    ['fetch', mcpRoutes.fetchCredentials, (pool: PoolRow) => deps.keys.fetch(pool)],
    ['rotate', mcpRoutes.rotateCredentials, (pool: PoolRow) => deps.keys.rotate(pool)],
  ] as const) {
    const handler = async (request: FastifyRequest) => ({ apiKey: await answer(await enabledPool(request)) });
    app.post(`${POOLS}/:name/${action}McpServerCredentials`, schema, handler);
    app.post(
      `${POOLS}/:name/${action}MCPServerCredentials`,
      { ...schema, schema: { ...schema.schema, hide: true } },
      handler,
    );
  }
}
