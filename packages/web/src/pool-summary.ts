/**
 * @module pool-summary
 * What the views read from a pool's ARM resource, in one place.
 */

import type { SessionPool } from '@sandpool/sdk';

export interface PoolSummary {
  name: string;
  resourceGroup: string;
  containerType: string;
  provisioningState: string;
  ready: number;
  allocated: number;
  starting: number;
  max: number;
  readyTarget: number;
  startFailures: number;
  lastStartError: string | null;
  cooldownSeconds: number | undefined;
  maxAliveSeconds: number | undefined;
  egress: string;
  cpu: number | undefined;
  memory: string | undefined;
}

export function summarize(pool: SessionPool): PoolSummary {
  const p = pool.properties;
  const status = p.sessionStatus;
  const lifecycle = p.dynamicPoolConfiguration?.lifecycleConfiguration;
  return {
    name: pool.name ?? '',
    resourceGroup: /\/resourceGroups\/([^/]+)\//i.exec(pool.id ?? '')?.[1] ?? 'sandpool',
    containerType: p.containerType ?? '',
    provisioningState: p.provisioningState ?? 'Unknown',
    ready: status?.readySessionCount ?? 0,
    allocated: status?.allocatedSessionCount ?? 0,
    starting: status?.startingSessionCount ?? 0,
    max: p.scaleConfiguration?.maxConcurrentSessions ?? 0,
    readyTarget: p.scaleConfiguration?.readySessionInstances ?? 0,
    startFailures: status?.consecutiveStartFailures ?? 0,
    lastStartError: status?.lastStartError ?? null,
    cooldownSeconds: lifecycle?.cooldownPeriodInSeconds,
    maxAliveSeconds: lifecycle?.maxAlivePeriodInSeconds,
    egress: p.sessionNetworkConfiguration?.status ?? 'EgressDisabled',
    cpu: p.sessionResources?.cpu,
    memory: p.sessionResources?.memory,
  };
}

export const poolHref = (pool: Pick<PoolSummary, 'resourceGroup' | 'name'>) =>
  `#/pools/${encodeURIComponent(pool.resourceGroup)}/${encodeURIComponent(pool.name)}`;

export const pressure = (pool: PoolSummary) => (pool.max === 0 ? 0 : pool.allocated / pool.max);
