/**
 * @module api/usage-routes
 * `GET /sandpool/usage`: the usage ledger summed over a window, by pool or by a pool tag, so teams
 * can tie spend to an owner (a cost centre tag, say) and see what prewarming costs.
 */

import type { FastifyInstance } from 'fastify';
import type { Static } from 'typebox';

import { AppError, ErrorCode } from '../errors.js';
import type { Store, UsageRecord } from '../store/store.js';
import { usageRoutes, type UsageTotals } from './schemas/usage.js';
import { optionalTime } from './wire.js';

const DEFAULT_WINDOW_MS = 30 * 86_400_000;
const NO_TAG = '(none)';

type Totals = Static<typeof UsageTotals>;

/** The key a record is summed under: its pool, or the value of one of its pool's tags. */
function keyOf(by: string): (record: UsageRecord) => string {
  if (by === 'pool') return (record) => `${record.resourceGroup}/${record.pool}`;
  const tag = /^tag:(.{1,256})$/.exec(by)?.[1];
  if (tag === undefined) {
    throw new AppError(ErrorCode.InvalidParameter, 'by must be pool or tag:<name>, e.g. tag:costCenter', {
      target: 'by',
    });
  }
  return (record) => record.tags[tag] ?? NO_TAG;
}

/** Sums records by key; numbers are rounded to milliseconds and mebibyte-seconds. */
export function sumUsage(records: UsageRecord[], key: (record: UsageRecord) => string): Totals[] {
  const totals = new Map<string, Totals>();
  for (const record of records) {
    const name = key(record);
    const sum = totals.get(name) ?? {
      key: name,
      sessions: 0,
      sessionSeconds: 0,
      cpuSeconds: 0,
      memoryGibSeconds: 0,
      executions: 0,
      readySeconds: 0,
      readyMemoryGibSeconds: 0,
    };
    if (record.kind === 'session') {
      sum.sessions++;
      sum.sessionSeconds += record.seconds;
      sum.cpuSeconds += record.cpuSeconds;
      sum.memoryGibSeconds += record.memoryGibSeconds;
      sum.executions += record.executions;
    } else {
      sum.readySeconds += record.seconds;
      sum.readyMemoryGibSeconds += record.memoryGibSeconds;
    }
    totals.set(name, sum);
  }
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return [...totals.values()]
    .map((t) => ({
      ...t,
      sessionSeconds: round(t.sessionSeconds),
      cpuSeconds: round(t.cpuSeconds),
      memoryGibSeconds: round(t.memoryGibSeconds),
      readySeconds: round(t.readySeconds),
      readyMemoryGibSeconds: round(t.readyMemoryGibSeconds),
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
}

export function registerUsageRoutes(app: FastifyInstance, deps: { store: Store; now: () => number }): void {
  app.get('/sandpool/usage', usageRoutes.get, async (request) => {
    const query = request.query as Record<string, string | undefined>;
    const now = deps.now();
    const since = optionalTime(query.since, 'since') ?? new Date(now - DEFAULT_WINDOW_MS).toISOString();
    const until = optionalTime(query.until, 'until') ?? new Date(now).toISOString();
    const by = query.by ?? 'pool';
    const key = keyOf(by);
    const records = await deps.store.listUsage({ since, until });
    return { since, until, by, value: sumUsage(records, key) };
  });
}
