/**
 * @module overview
 * Every pool at a glance: ready, allocated and maximum sessions with the pool's pressure, the last
 * hour's allocations, executions and errors, the last day's usage per pool, costliest first, and
 * the nodes, with the audit entries waiting on the node answering.
 */

import type { PoolTimeline, UsageTotals } from '@sandpool/sdk';
import { useState } from 'preact/hooks';

import type { SignedIn } from './auth.js';
import { CapacityBar, CapacityFigures, ErrorNote, StartFailures } from './parts.js';
import { count, cpuTime, duration, gibTime, milliseconds } from './format.js';
import { usePolled } from './live.js';
import { AuditBacklogNote } from './audit-backlog.js';
import { NodesTable } from './nodes-table.js';
import { poolHref, summarize, type PoolSummary } from './pool-summary.js';
import { costOf, rankUsage } from './usage-ranking.js';

const DAY_MS = 86_400_000;

/** Totals of a timeline, for a card: counts summed, latency the worst minute's p99. */
function hourTotals(timeline: PoolTimeline | undefined) {
  const points = timeline?.points ?? [];
  const sum = (pick: (p: PoolTimeline['points'][number]) => number) =>
    points.reduce((n, p) => n + pick(p), 0);
  const p99s = points.map((p) => p.allocationP99Ms).filter((v): v is number => v !== null);
  return {
    allocations: sum((p) => p.allocations),
    executions: sum(
      (p) => p.executions.succeeded + p.executions.failed + p.executions.timeout + p.executions.lost,
    ),
    errors: sum((p) => p.executions.failed + p.executions.timeout + p.executions.lost),
    poolFull: sum((p) => p.poolFullRejections),
    worstP99Ms: p99s.length ? Math.max(...p99s) : null,
  };
}

function PoolCard({ auth, pool }: { auth: SignedIn; pool: PoolSummary }) {
  const timeline = usePolled(
    () => auth.client(pool.resourceGroup).pools.timeline(pool.name),
    10_000,
    `${pool.resourceGroup}/${pool.name}`,
  );
  const hour = hourTotals(timeline.data);
  return (
    <article class="card pool-card" data-testid={`pool-${pool.name}`}>
      <header>
        <h2>
          <a href={poolHref(pool)}>{pool.name}</a>
        </h2>
        <span class="badge">{pool.containerType}</span>
        {pool.provisioningState !== 'Succeeded' && <span class="badge warn">{pool.provisioningState}</span>}
      </header>
      <CapacityBar pool={pool} />
      <CapacityFigures pool={pool} />
      <p class="muted small" data-testid="hour">
        {timeline.data ? (
          <>
            Last hour: {count(hour.allocations, 'allocation')} (worst p99 {milliseconds(hour.worstP99Ms)}),{' '}
            {count(hour.executions, 'execution')}, {count(hour.errors, 'error')}
            {hour.poolFull > 0 && `, ${hour.poolFull} refused (pool full)`}
          </>
        ) : (
          'Last hour: loading…'
        )}
      </p>
      <StartFailures pool={pool} small />
    </article>
  );
}

/** How many pools the usage table shows before "show all". */
const TOP_POOLS = 10;

function UsageTable({ rows, livePools }: { rows: UsageTotals[]; livePools: string[] }) {
  const [filter, setFilter] = useState('');
  const [showAll, setShowAll] = useState(false);
  if (rows.length === 0) return <p class="muted">No session has ended in the last 24 hours.</p>;
  const { shown, matching } = rankUsage(rows, livePools, {
    filter,
    limit: showAll ? Number.POSITIVE_INFINITY : TOP_POOLS,
  });
  return (
    <>
      {rows.length > TOP_POOLS && (
        <p class="table-tools">
          <label>
            Find a pool{' '}
            <input
              type="search"
              value={filter}
              onInput={(event) => setFilter(event.currentTarget.value)}
              data-testid="usage-filter"
            />
          </label>
        </p>
      )}
      <div class="table-scroll">
        <table data-testid="usage">
          <thead>
            <tr>
              <th>Pool</th>
              <th
                class="num"
                title="Reserved memory, sessions and prewarmed sandboxes: what the table is ranked by"
              >
                Memory
              </th>
              <th class="num">Sessions</th>
              <th class="num">Session time</th>
              <th class="num">CPU</th>
              <th class="num">Executions</th>
              <th class="num" title="Time prewarmed sandboxes waited unused">
                Ready idle
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((row) => (
              <tr key={row.key} data-testid="usage-row" data-cost={costOf(row)}>
                <td>
                  {row.key} {row.deleted && <span class="badge ended">deleted</span>}
                </td>
                <td class="num">{gibTime(costOf(row))}</td>
                <td class="num">{row.sessions}</td>
                <td class="num">{duration(row.sessionSeconds)}</td>
                <td class="num">{cpuTime(row.cpuSeconds)}</td>
                <td class="num">{row.executions}</td>
                <td class="num">{duration(row.readySeconds)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {matching > shown.length && (
        <button type="button" class="quiet" onClick={() => setShowAll(true)}>
          Show all {matching} pools
        </button>
      )}
    </>
  );
}

export function Overview({ auth }: { auth: SignedIn }) {
  const pools = usePolled(() => auth.client().pools.list({ allResourceGroups: true }), 5000, 'pools');
  const usage = usePolled(
    () => auth.client().usage({ since: new Date(Date.now() - DAY_MS).toISOString() }),
    30_000,
    'usage',
  );
  const nodes = usePolled(() => auth.client().nodes.list(), 5000, 'nodes');
  const readiness = usePolled(() => auth.client().readiness(), 5000, 'readiness');
  const summaries = (pools.data ?? []).map(summarize);
  return (
    <>
      <h1>Session pools</h1>
      <ErrorNote error={pools.error} what="load the pools" />
      {pools.data && summaries.length === 0 && (
        <p class="muted">
          No pools yet: create one with <code>sandpool sessionpool create</code>.
        </p>
      )}
      <section class="grid" aria-label="Pools">
        {summaries.map((pool) => (
          <PoolCard key={`${pool.resourceGroup}/${pool.name}`} auth={auth} pool={pool} />
        ))}
      </section>
      <section class="card">
        <h2>Usage, last 24 hours</h2>
        <ErrorNote error={usage.error} what="load usage (it needs Reader on every pool)" />
        {usage.data && (
          <UsageTable
            rows={usage.data.value}
            livePools={summaries.map((pool) => `${pool.resourceGroup}/${pool.name}`)}
          />
        )}
      </section>
      <section class="card">
        <h2>Nodes</h2>
        <AuditBacklogNote readiness={readiness.data} />
        <ErrorNote error={nodes.error} what="load the nodes (it needs Reader on every pool)" />
        {nodes.data && <NodesTable nodes={nodes.data} now={Date.now()} />}
      </section>
    </>
  );
}
