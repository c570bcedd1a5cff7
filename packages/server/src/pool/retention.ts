/**
 * @module pool/retention
 * What the server forgets, and when: execution records (output and images) and ended sessions (which
 * answer "how did my last one end") after the retention period, with events, archived console logs
 * and nodes lost that long ago (hosts a cluster scaled away; one that comes back registers again);
 * audit records and the usage ledger after their own, longer periods. Runs once a minute.
 */

import type { Logger } from 'pino';

import type { Store } from '../store/store.js';
import type { ConsoleLogArchive } from './console-log.js';

const PRUNE_INTERVAL_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

export interface RetentionPeriods {
  retentionHours: number;
  auditRetentionDays: number;
  usageRetentionDays: number;
}

export interface RetentionDeps {
  store: Store;
  consoleLogs: ConsoleLogArchive;
  log: Logger;
  now: () => number;
  /** Whether this node leads the cluster: the store is pruned by one node, each node's log archive by itself. */
  leads: () => boolean;
}

/** Removes what is past its period now. */
export async function prune(periods: RetentionPeriods, deps: RetentionDeps): Promise<void> {
  const now = deps.now();
  const cutoff = new Date(now - periods.retentionHours * HOUR_MS).toISOString();
  const archive = deps.consoleLogs.prune(now - periods.retentionHours * HOUR_MS);
  if (!deps.leads()) {
    await archive;
    return;
  }
  await Promise.all([
    archive,
    deps.store.deleteExecutionsEndedBefore(cutoff),
    deps.store.deleteSessionsEndedBefore(cutoff),
    deps.store.deleteEventsBefore(cutoff),
    deps.store.deleteNodesLostBefore(cutoff),
    deps.store.deleteAuditBefore(new Date(now - periods.auditRetentionDays * DAY_MS).toISOString()),
    deps.store.deleteUsageBefore(new Date(now - periods.usageRetentionDays * DAY_MS).toISOString()),
  ]);
}

/** Prunes once a minute until the returned function is called. */
export function keepPruning(periods: RetentionPeriods, deps: RetentionDeps): () => void {
  const timer = setInterval(() => {
    prune(periods, deps).catch((error: unknown) => deps.log.error({ err: error }, 'pruning failed'));
  }, PRUNE_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
