/**
 * @module api/management/session-pools
 * The ARM-shaped management plane: `Microsoft.App/sessionPools` CRUD with long-running operations.
 * PUT answers 201 (or 200) with `Azure-AsyncOperation`; PATCH and DELETE answer 202 with `Location`;
 * both URLs are served here, so ARM clients poll this server as they would poll Azure.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { allows, allowsWithin, authorize } from '../../auth/roles.js';
import { AppError, ErrorCode } from '../../errors.js';
import { poolId, resourceGroupId, subscriptionId } from '../../arm-id.js';
import type { PoolService } from '../../pool/pool-service.js';
import { storedSpec } from '../../pool/pool-spec.js';
import type { OperationRow, PoolRow } from '../../store/store.js';
import { MANAGEMENT_VERSIONS, managementShape, requireApiVersion } from '../api-version.js';
import { mergePatch, optionalInteger } from '../wire.js';
import { poolRoutes } from '../schemas/pools.js';
import { toCurrentShape } from './pool-legacy-shapes.js';
import { parsePoolResource, validatePoolName, type PoolLimits } from './pool-parse.js';
import { poolResource } from './pool-render.js';

export interface ManagementDeps {
  pools: PoolService;
  limits: PoolLimits;
  /** Base URL of this server as clients reach it. */
  publicUrl: () => string;
}

export type PoolParams = { subscription: string; resourceGroup: string; name: string };
type Query = Record<string, string | undefined>;

const PAGE_SIZE = 100;
/** PATCH merges onto the resource in the current shape, whatever the request's version. */
const CURRENT_SHAPE_VERSION = '2025-07-01';
const MAX_PAGE_SIZE = 1000;
export const POOLS =
  '/subscriptions/:subscription/resourceGroups/:resourceGroup/providers/Microsoft.App/sessionPools';
const OPERATIONS = '/subscriptions/:subscription/providers/Microsoft.App/locations/:location';

/** The ARM id of the pool the route's parameters name. */
export const poolIdOf = (params: PoolParams) =>
  poolId(params.subscription, params.resourceGroup, params.name);

/** The pool the route's parameters name, or ARM's ResourceNotFound. */
export async function loadPool(pools: PoolService, params: PoolParams): Promise<PoolRow> {
  const pool = await pools.getPool(poolIdOf(params));
  if (!pool) {
    throw new AppError(
      ErrorCode.ResourceNotFound,
      `The Resource 'Microsoft.App/sessionPools/${params.name}' under resource group '${params.resourceGroup}' was not found.`,
    );
  }
  return pool;
}

export function registerSessionPoolRoutes(app: FastifyInstance, deps: ManagementDeps): void {
  const { pools, publicUrl } = deps;

  /** The pool as the request's api-version shapes it. */
  const render = (pool: PoolRow, apiVersion: string) =>
    poolResource(pool, publicUrl(), pools.manager(pool.id)?.status(), managementShape(apiVersion));

  const operationUrl = (
    kind: 'Statuses' | 'Results',
    pool: PoolRow,
    operation: OperationRow,
    apiVersion: string,
  ) =>
    `${publicUrl()}/subscriptions/${pool.subscription}/providers/Microsoft.App/locations/${encodeURIComponent(pool.location)}/sessionPoolOperation${kind}/${operation.id}?api-version=${apiVersion}`;

  /** 202 Accepted for a PATCH or DELETE: where to poll, both ways ARM clients do. */
  const accepted = (reply: FastifyReply, pool: PoolRow, operation: OperationRow, apiVersion: string) =>
    reply
      .status(202)
      .header('location', operationUrl('Results', pool, operation, apiVersion))
      .header('azure-asyncoperation', operationUrl('Statuses', pool, operation, apiVersion))
      .header('retry-after', '1');

  /**
   * The pools of a subscription or resource group that the caller may read: all of them with a grant
   * on the scope (or wider), else those its narrower grants reach; AuthorizationFailed with none.
   */
  async function list(request: FastifyRequest, filter: { subscription: string; resourceGroup?: string }) {
    const query = request.query as Query;
    const apiVersion = requireApiVersion(query['api-version'], MANAGEMENT_VERSIONS);
    const scope =
      filter.resourceGroup === undefined
        ? subscriptionId(filter.subscription)
        : resourceGroupId(filter.subscription, filter.resourceGroup);
    if (!allowsWithin(request.principal, 'pools/read', scope)) {
      authorize(request.principal, 'pools/read', scope);
    }
    const top = optionalInteger(query.$top, '$top', { min: 1, max: MAX_PAGE_SIZE }) ?? PAGE_SIZE;
    const skip =
      optionalInteger(query.$skipToken, '$skipToken', { min: 0, max: Number.MAX_SAFE_INTEGER }) ?? 0;
    const all = (await pools.listPools(filter)).filter((pool) =>
      allows(request.principal, 'pools/read', pool.id),
    );
    const page = all.slice(skip, skip + top);
    const base = `${publicUrl()}${request.url.split('?')[0] ?? ''}`;
    return {
      value: page.map((pool) => render(pool, apiVersion)),
      ...(skip + top < all.length && {
        nextLink: `${base}?api-version=${apiVersion}&$top=${top}&$skipToken=${skip + top}`,
      }),
    };
  }

  app.get(
    '/subscriptions/:subscription/providers/Microsoft.App/sessionPools',
    poolRoutes.listBySubscription,
    (request) => {
      const { subscription } = request.params as { subscription: string };
      return list(request, { subscription });
    },
  );

  app.get(POOLS, poolRoutes.listByResourceGroup, (request) => {
    const { subscription, resourceGroup } = request.params as PoolParams;
    return list(request, { subscription, resourceGroup });
  });

  app.get(`${POOLS}/:name`, poolRoutes.get, async (request) => {
    const apiVersion = requireApiVersion((request.query as Query)['api-version'], MANAGEMENT_VERSIONS);
    const params = request.params as PoolParams;
    return render(await loadPool(pools, params), apiVersion);
  });

  app.put(`${POOLS}/:name`, poolRoutes.createOrUpdate, async (request, reply) => {
    const apiVersion = requireApiVersion((request.query as Query)['api-version'], MANAGEMENT_VERSIONS);
    const params = request.params as PoolParams;
    validatePoolName(params.name);
    const current = await pools.getPool(poolIdOf(params));
    const definition = parsePoolResource(
      toCurrentShape(request.body),
      params,
      deps.limits,
      current && storedSpec(current),
    );
    const { pool, operation, created } = await pools.put(definition);
    return reply
      .status(created ? 201 : 200)
      .header('azure-asyncoperation', operationUrl('Statuses', pool, operation, apiVersion))
      .header('retry-after', '1')
      .send(render(pool, apiVersion));
  });

  app.patch(`${POOLS}/:name`, poolRoutes.update, async (request, reply) => {
    const apiVersion = requireApiVersion((request.query as Query)['api-version'], MANAGEMENT_VERSIONS);
    const params = request.params as PoolParams;
    const current = await loadPool(pools, params);
    const patch = request.body;
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
      throw new AppError(
        ErrorCode.InvalidRequestContent,
        'The PATCH body must be a JSON object (a JSON merge patch).',
      );
    }
    const merged = mergePatch(render(current, CURRENT_SHAPE_VERSION), toCurrentShape(patch));
    const definition = parsePoolResource(
      merged,
      { subscription: current.subscription, resourceGroup: current.resourceGroup, name: current.name },
      deps.limits,
      storedSpec(current),
    );
    const { pool, operation } = await pools.put(definition);
    return accepted(reply, pool, operation, apiVersion).send(render(pool, apiVersion));
  });

  app.delete(`${POOLS}/:name`, poolRoutes.delete, async (request, reply) => {
    const apiVersion = requireApiVersion((request.query as Query)['api-version'], MANAGEMENT_VERSIONS);
    const params = request.params as PoolParams;
    const pool = await pools.getPool(poolIdOf(params));
    if (!pool) return reply.status(204).send();
    const operation = (await pools.delete(pool.id))!;
    return accepted(reply, pool, operation, apiVersion).send();
  });

  async function loadOperation(request: FastifyRequest): Promise<OperationRow & { apiVersion: string }> {
    const apiVersion = requireApiVersion((request.query as Query)['api-version'], MANAGEMENT_VERSIONS);
    const { operationId } = request.params as { operationId: string };
    const operation = await pools.getOperation(operationId);
    // An operation the caller may not read is one it cannot tell from one that does not exist.
    if (!operation || !allows(request.principal, 'pools/read', operation.poolId)) {
      throw new AppError(ErrorCode.OperationNotFound, `No operation ${operationId} is known.`);
    }
    return { ...operation, apiVersion };
  }

  // Azure-AsyncOperation: the operation's status document.
  app.get(
    `${OPERATIONS}/sessionPoolOperationStatuses/:operationId`,
    poolRoutes.operationStatus,
    async (request) => {
      const operation = await loadOperation(request);
      return {
        id: `${publicUrl()}${request.url.split('?')[0] ?? ''}`,
        name: operation.id,
        status: operation.status,
        startTime: operation.startedAt,
        ...(operation.endedAt && { endTime: operation.endedAt }),
        ...(operation.error && { error: operation.error }),
      };
    },
  );

  // Location: 202 while running; then the final result (the pool, or nothing for a delete).
  app.get(
    `${OPERATIONS}/sessionPoolOperationResults/:operationId`,
    poolRoutes.operationResult,
    async (request, reply: FastifyReply) => {
      const operation = await loadOperation(request);
      if (operation.status === 'InProgress') {
        return reply
          .status(202)
          .header('location', `${publicUrl()}${request.url}`)
          .header('retry-after', '1')
          .send();
      }
      if (operation.status === 'Failed') {
        throw new AppError(
          operation.error?.code === ErrorCode.SandboxStartFailed
            ? ErrorCode.SandboxStartFailed
            : ErrorCode.InternalServerError,
          operation.error?.message ?? 'the operation failed',
        );
      }
      if (operation.kind === 'delete') return reply.status(204).send();
      const pool = await pools.getPool(operation.poolId);
      return pool ? render(pool, operation.apiVersion) : reply.status(204).send();
    },
  );
}
