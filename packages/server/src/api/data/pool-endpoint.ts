/**
 * @module api/data/pool-endpoint
 * What every data-plane route shares: the pool endpoint's path, resolving the pool and checking the
 * api-version and the identifier, and the response headers that say how the session was reached
 * (Azure's per-stage timings, and whether an earlier session ended and why).
 */

import type { FastifyReply, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { Allocation, PoolManager, Session } from '../../pool/pool-manager.js';
import { poolId } from '../../arm-id.js';
import type { PoolService } from '../../pool/pool-service.js';
import { DATA_VERSIONS, dataGeneration, requireApiVersion, type DataGeneration } from '../api-version.js';

export const POOL_ENDPOINT = '/subscriptions/:subscription/resourceGroups/:resourceGroup/sessionPools/:pool';

export type Query = Record<string, string | undefined>;

/** Azure's 2025-10-02-preview rule, widened to the 1–256 length the 2025-02-02-preview rule allows. */
const IDENTIFIER = /^[a-zA-Z0-9_|}{[\]:";'<>?/.,@#$%^&*()\-+=!~`]{1,256}$/;

export function requireIdentifier(value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new AppError(
      ErrorCode.InvalidIdentifier,
      'The identifier query parameter is required: it names the session.',
      {
        target: 'identifier',
      },
    );
  }
  if (!IDENTIFIER.test(value)) {
    throw new AppError(
      ErrorCode.InvalidIdentifier,
      'The identifier must be 1 to 256 letters, digits or ASCII punctuation (no spaces or control characters).',
      { target: 'identifier' },
    );
  }
  return value;
}

/**
 * The pool of a data-plane request (the caller was authorized on it as it arrived) and its query,
 * once its api-version is one of the data plane's. Azure's custom container paths (`.management/…`)
 * may leave the api-version out.
 */
export async function poolFor(
  pools: PoolService,
  request: FastifyRequest,
  options: { versionOptional?: boolean } = {},
): Promise<{ manager: PoolManager; query: Query; generation: DataGeneration }> {
  const params = request.params as { subscription: string; resourceGroup: string; pool: string };
  const query = request.query as Query;
  const generation =
    options.versionOptional && query['api-version'] === undefined
      ? 'v2'
      : dataGeneration(requireApiVersion(query['api-version'], DATA_VERSIONS));
  const manager = await pools.require(
    poolId(params.subscription, params.resourceGroup, params.pool),
    params.pool,
  );
  return { manager, query, generation };
}

/** Headers telling the client how its session was reached and how long each stage took. */
export function sessionHeaders(
  reply: FastifyReply,
  reached: { session: Session; allocation: Allocation },
  timings: { receivedAt: number; executionMs?: number },
): void {
  const { session, allocation } = reached;
  const overall = performance.now() - timings.receivedAt;
  const execution = timings.executionMs ?? 0;
  void reply
    .header('x-ms-session-guid', session.id)
    .header('x-ms-allocation-time', Math.round(allocation.durationMs))
    .header('x-ms-preparation-time', Math.max(0, Math.round(overall - allocation.durationMs - execution)))
    .header('x-ms-execution-request-time', Math.round(execution))
    .header('x-ms-overall-execution-time', Math.round(overall))
    .header(
      'x-sandpool-session',
      allocation.created ? (allocation.warm ? 'created-warm' : 'created-cold') : 'existing',
    );
  // Which node holds the session (a request any node received was served there).
  if (session.row.node !== null) void reply.header('x-sandpool-node', session.row.node);
  void reply.headers(previousSessionHeaders(allocation));
}

/** When the request replaced an ended session: how and when that one ended. */
export function previousSessionHeaders(allocation: Allocation): Record<string, string> {
  if (!allocation.previous) return {};
  return {
    'x-sandpool-previous-session-ended': allocation.previous.reason,
    'x-sandpool-previous-session-ended-at': allocation.previous.endedAt,
  };
}
