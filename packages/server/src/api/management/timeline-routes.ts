/**
 * @module api/management/timeline-routes
 * `GET …/sessionPools/{name}/timeline`: the pool's last hour minute by minute, as the dashboard
 * charts it (a Sandpool extension beside the ARM resource, readable by the pool's Readers).
 */

import type { FastifyInstance } from 'fastify';

import type { Metrics } from '../../observability/metrics.js';
import { metricLabelOf } from '../../pool/pool-recorder.js';
import type { PoolService } from '../../pool/pool-service.js';
import { MANAGEMENT_VERSIONS, requireApiVersion } from '../api-version.js';
import { timelineRoutes } from '../schemas/events.js';
import { optionalInteger } from '../wire.js';
import { loadPool, type PoolParams } from './session-pools.js';

export function registerTimelineRoutes(
  app: FastifyInstance,
  deps: { pools: PoolService; metrics: Metrics },
): void {
  app.get(
    '/subscriptions/:subscription/resourceGroups/:resourceGroup/providers/Microsoft.App/sessionPools/:name/timeline',
    timelineRoutes.get,
    async (request) => {
      const query = request.query as Record<string, string | undefined>;
      requireApiVersion(query['api-version'], MANAGEMENT_VERSIONS);
      const params = request.params as PoolParams;
      const pool = await loadPool(deps.pools, params);
      const minutes = optionalInteger(query.minutes, 'minutes', { min: 1, max: 60 });
      const { timeline } = deps.metrics;
      return {
        bucketSeconds: timeline.bucketMs / 1000,
        points: timeline.points(metricLabelOf(pool), minutes),
      };
    },
  );
}
