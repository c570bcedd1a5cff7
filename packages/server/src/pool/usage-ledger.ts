/**
 * @module pool/usage-ledger
 * What an instance cost, in the ledger's terms: its seconds, the memory it reserved over them, and
 * for a session the CPU its cgroup counted and the executions it ran. Usage by cost tag sums these.
 */

import type { PoolRow, UsageRecord } from '../store/store.js';
import type { Instance } from './instance.js';
import type { PoolSpec } from './pool-spec.js';

const GIB = 1024 ** 3;

/** What a session used, stored with its end (CPU and peak memory when its cgroup could be read). */
export interface SessionUsage {
  lifetimeSeconds: number;
  idleSeconds: number;
  cpuSeconds?: number;
  peakMemoryBytes?: number;
}

/** The ledger's record of one instance's use from `startedAt` until `endedAtMs`. */
export function ledgerEntry(
  pool: PoolRow,
  spec: Pick<PoolSpec, 'memoryBytes'>,
  use: {
    kind: 'session' | 'ready';
    startedAt: string;
    endedAtMs: number;
    cpuSeconds?: number;
    executions?: number;
  },
): UsageRecord {
  const seconds = Math.max(0, use.endedAtMs - Date.parse(use.startedAt)) / 1000;
  return {
    kind: use.kind,
    poolId: pool.id,
    resourceGroup: pool.resourceGroup,
    pool: pool.name,
    tags: pool.tags,
    startedAt: use.startedAt,
    endedAt: new Date(use.endedAtMs).toISOString(),
    seconds,
    cpuSeconds: use.cpuSeconds ?? 0,
    memoryGibSeconds: (spec.memoryBytes / GIB) * seconds,
    executions: use.executions ?? 0,
  };
}

/**
 * What a session used by `now`: lifetime, idle time before the end, and the CPU time and peak memory
 * its cgroup counted (absent when the instance is already gone). Read before the instance is destroyed.
 */
export async function measureSession(
  instance: Instance,
  times: { allocatedAt: number; lastAccessedAt: number },
  now: number,
): Promise<SessionUsage> {
  const measured = await instance.usage().catch(() => undefined);
  return {
    lifetimeSeconds: Math.max(0, now - times.allocatedAt) / 1000,
    idleSeconds: Math.max(0, now - times.lastAccessedAt) / 1000,
    ...(measured && {
      cpuSeconds: Math.round(measured.cpuSeconds * 1000) / 1000,
      peakMemoryBytes: measured.peakMemoryBytes,
    }),
  };
}
