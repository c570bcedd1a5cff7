/**
 * @module pool-detail
 * One pool: its capacity, the last hour's allocation latency and executions, the live sessions
 * (stoppable by a Contributor or an executor), how long sessions sat idle before they ended, and
 * its events as they happen.
 */

import type { PoolEvent, SessionInfo } from '@sandpool/sdk';
import { useMemo, useState } from 'preact/hooks';

import { canStopSessions, type SignedIn } from './auth.js';
import { TimeChart } from './chart.js';
import {
  bytes,
  clockTime,
  count,
  cpuTime,
  duration,
  identifierHash,
  milliseconds,
  percent,
} from './format.js';
import { usePolled, useNow } from './live.js';
import { CapacityBar, CapacityFigures, ErrorNote, Figure, StartFailures } from './parts.js';
import { usePoolEvents } from './pool-events.js';
import { summarize } from './pool-summary.js';

const LATENCY_SERIES = [
  { label: 'p50', color: '#2f7ed8' },
  { label: 'p99', color: '#d9534f' },
];
/** The failed bar is drawn over the whole one, so each minute reads as a stack. */
const EXECUTION_SERIES = [
  { label: 'all', color: '#3c9d5d', bars: true },
  { label: 'failed or timed out', color: '#d9534f', bars: true },
];

/** Upper bounds (seconds) of the idle-time histogram's bars; the last bar is everything longer. */
const IDLE_BOUNDS = [5, 30, 60, 300, 900, 1800, 3600];

function idleLabel(index: number): string {
  const upper = IDLE_BOUNDS[index];
  const lower = index === 0 ? 0 : IDLE_BOUNDS[index - 1]!;
  return upper === undefined ? `≥ ${duration(lower)}` : `< ${duration(upper)}`;
}

function idleSecondsOf(event: PoolEvent): number | undefined {
  const usage = event.details?.usage as { idleSeconds?: unknown } | undefined;
  return typeof usage?.idleSeconds === 'number' ? usage.idleSeconds : undefined;
}

function IdleDistribution({
  ended,
  cooldownSeconds,
}: {
  ended: PoolEvent[];
  cooldownSeconds: number | undefined;
}) {
  const idles = ended.map(idleSecondsOf).filter((v): v is number => v !== undefined);
  if (idles.length === 0) return <p class="muted">No session has ended in the last 24 hours.</p>;
  const counts = Array.from({ length: IDLE_BOUNDS.length + 1 }, () => 0);
  for (const idle of idles) {
    const index = IDLE_BOUNDS.findIndex((bound) => idle < bound);
    counts[index === -1 ? IDLE_BOUNDS.length : index]! += 1;
  }
  const most = Math.max(...counts);
  const byCooldown = ended.filter((e) => e.reason === 'cooldown').length;
  return (
    <>
      <ol class="histogram" data-testid="idle-distribution">
        {counts.map((count, index) => (
          <li key={index}>
            <span class="label">{idleLabel(index)}</span>
            <span class="bar" style={{ width: `${most === 0 ? 0 : (count / most) * 100}%` }} />
            <span class="count">{count}</span>
          </li>
        ))}
      </ol>
      <p class="muted small">
        {count(idles.length, 'session')} ended; {percent(byCooldown / ended.length)} by the cooldown
        {cooldownSeconds !== undefined && ` (${duration(cooldownSeconds)})`}. Many sessions idling the whole
        cooldown means it could be shorter.
      </p>
    </>
  );
}

function StopButton({ onStop }: { onStop: () => Promise<void> }) {
  const [stage, setStage] = useState<'idle' | 'confirm' | 'stopping'>('idle');
  if (stage === 'stopping') return <button disabled>Stopping…</button>;
  if (stage === 'confirm') {
    return (
      <span class="confirm">
        <button
          type="button"
          class="danger"
          onClick={() => {
            setStage('stopping');
            void onStop().finally(() => setStage('idle'));
          }}
        >
          Confirm stop
        </button>
        <button type="button" class="quiet" onClick={() => setStage('idle')}>
          Cancel
        </button>
      </span>
    );
  }
  return (
    <button type="button" class="quiet" onClick={() => setStage('confirm')}>
      Stop
    </button>
  );
}

function SessionsTable({
  sessions,
  now,
  onStop,
}: {
  sessions: SessionInfo[];
  now: number;
  onStop: ((identifier: string) => Promise<void>) | undefined;
}) {
  if (sessions.length === 0) return <p class="muted">No session is allocated.</p>;
  return (
    <div class="table-scroll">
      <table data-testid="sessions">
        <thead>
          <tr>
            <th>Session</th>
            <th class="num">Age</th>
            <th class="num">Idle</th>
            <th class="num">Ends in</th>
            <th class="num">CPU</th>
            <th class="num">Memory</th>
            <th class="num">Runs</th>
            {onStop && <th />}
          </tr>
        </thead>
        <tbody>
          {sessions.map((session) => (
            <tr key={session.etag} data-testid="session-row">
              <td>
                <code title="The identifier's hash">#{identifierHash(session.identifier)}</code>
              </td>
              <td class="num">{duration((now - Date.parse(session.createdAt)) / 1000)}</td>
              <td class="num">{duration((now - Date.parse(session.lastAccessedAt)) / 1000)}</td>
              <td class="num">{duration((Date.parse(session.expireAt) - now) / 1000)}</td>
              <td class="num">{session.usage ? cpuTime(session.usage.cpuSeconds) : '–'}</td>
              <td class="num">{session.usage ? bytes(session.usage.memoryBytes) : '–'}</td>
              <td class="num">{session.executions}</td>
              {onStop && (
                <td>
                  <StopButton onStop={() => onStop(session.identifier)} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function eventDetail(event: PoolEvent): string {
  const details = (event.details ?? {}) as Record<string, unknown>;
  switch (event.type) {
    case 'allocated':
      return `${details.warm === false ? 'cold' : 'warm'}${typeof details.durationMs === 'number' ? `, ${milliseconds(details.durationMs)}` : ''}`;
    case 'ended': {
      const idle = idleSecondsOf(event);
      return `${event.reason ?? ''}${idle === undefined ? '' : `, idle ${duration(idle)}`}`;
    }
    case 'startFailed':
    case 'imagePullFailed':
    case 'egressDenied':
      return event.reason ?? '';
    case 'imagePulled':
      return `${typeof details.image === 'string' ? details.image : ''}${typeof details.seconds === 'number' ? `, ${duration(details.seconds)}` : ''}`;
    case 'ready':
      return '';
  }
}

function EventList({ events }: { events: PoolEvent[] }) {
  if (events.length === 0) return <p class="muted">Nothing in the last hour.</p>;
  return (
    <ol class="events" data-testid="events">
      {events.slice(0, 50).map((event) => (
        <li key={event.id} data-type={event.type}>
          <time dateTime={event.at}>{clockTime(event.at)}</time>
          <span class={`badge ${event.type}`}>{event.type}</span>
          <span class="detail">{eventDetail(event)}</span>
          {event.identifier !== null && <code>#{identifierHash(event.identifier)}</code>}
        </li>
      ))}
    </ol>
  );
}

export function PoolDetail({
  auth,
  resourceGroup,
  name,
}: {
  auth: SignedIn;
  resourceGroup: string;
  name: string;
}) {
  const client = auth.client(resourceGroup);
  const key = `${resourceGroup}/${name}`;
  const pool = usePolled(() => client.pools.get(name), 5000, key);
  const timeline = usePolled(() => client.pools.timeline(name), 10_000, key);
  const sessions = usePolled(() => client.pool(name).sessions(), 5000, key);
  const events = usePoolEvents(auth, resourceGroup, name, (event) => {
    if (event.type === 'allocated' || event.type === 'ended') {
      sessions.refresh();
      timeline.refresh();
    }
    pool.refresh();
  });
  const now = useNow();
  const [stopError, setStopError] = useState<Error>();

  const chart = useMemo(() => {
    const points = timeline.data?.points ?? [];
    return {
      x: points.map((p) => Date.parse(p.at) / 1000),
      latency: [points.map((p) => p.allocationP50Ms), points.map((p) => p.allocationP99Ms)],
      executions: [
        points.map(
          (p) => p.executions.succeeded + p.executions.failed + p.executions.timeout + p.executions.lost,
        ),
        points.map((p) => p.executions.failed + p.executions.timeout + p.executions.lost),
      ],
    };
  }, [timeline.data]);

  const summary = pool.data && summarize(pool.data);
  const stop = canStopSessions(auth.principal, name)
    ? async (identifier: string) => {
        try {
          await client.pool(name).session(identifier).stop();
          setStopError(undefined);
        } catch (cause) {
          setStopError(cause instanceof Error ? cause : new Error(String(cause)));
        }
        sessions.refresh();
      }
    : undefined;

  return (
    <>
      <nav class="crumbs">
        <a href="#/">Pools</a> / {resourceGroup} /
      </nav>
      <h1>
        {name} {summary && <span class="badge">{summary.containerType}</span>}
        <span class={`live ${events.live ? 'on' : ''}`} data-testid="live">
          {events.live ? 'live' : 'connecting'}
        </span>
      </h1>
      <ErrorNote error={pool.error} what="load the pool" />
      {summary && (
        <section class="card">
          <CapacityBar pool={summary} />
          <CapacityFigures pool={summary} wide>
            <Figure label="Starting">{summary.starting}</Figure>
            <Figure label="Lifecycle" tone="text">
              {summary.cooldownSeconds !== undefined
                ? `cooldown ${duration(summary.cooldownSeconds)}`
                : `max alive ${duration(summary.maxAliveSeconds ?? 0)}`}
            </Figure>
            <Figure label="Each session" tone="text">
              {summary.cpu ?? '–'} CPU, {summary.memory ?? '–'},{' '}
              {summary.egress === 'EgressEnabled' ? 'egress on' : 'no egress'}
            </Figure>
          </CapacityFigures>
          <StartFailures pool={summary} />
        </section>
      )}
      <section class="charts">
        <TimeChart
          title="Allocation latency, last hour"
          testId="latency-chart"
          x={chart.x}
          series={LATENCY_SERIES}
          values={chart.latency}
          unit={(v) => milliseconds(v)}
        />
        <TimeChart
          title="Executions per minute"
          testId="executions-chart"
          x={chart.x}
          series={EXECUTION_SERIES}
          values={chart.executions}
          unit={(v) => String(v)}
        />
      </section>
      <ErrorNote error={timeline.error} what="load the timeline" />
      <section class="card">
        <h2>Sessions</h2>
        <ErrorNote error={sessions.error} what="load the sessions" />
        <ErrorNote error={stopError} what="stop the session" />
        {sessions.data && <SessionsTable sessions={sessions.data} now={now} onStop={stop} />}
      </section>
      <div class="columns">
        <section class="card">
          <h2>Idle time before the end, last 24 hours</h2>
          <IdleDistribution ended={events.ended} cooldownSeconds={summary?.cooldownSeconds} />
        </section>
        <section class="card">
          <h2>Recent events</h2>
          <ErrorNote error={events.error} what="load the events" />
          <EventList events={events.recent} />
        </section>
      </div>
    </>
  );
}
