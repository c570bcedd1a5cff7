/**
 * @module parts
 * Small pieces several views share.
 */

import { ApiError } from '@sandpool/sdk';
import type { ComponentChildren } from 'preact';

import { percent } from './format.js';
import { pressure, type PoolSummary } from './pool-summary.js';

/** Ready and allocated sessions against the pool's maximum. */
export function CapacityBar({ pool }: { pool: PoolSummary }) {
  const width = (n: number) => `${pool.max === 0 ? 0 : Math.min(100, (n / pool.max) * 100)}%`;
  return (
    <div
      class="capacity"
      role="img"
      aria-label={`${pool.allocated} allocated and ${pool.ready} ready of ${pool.max}`}
    >
      <span class="allocated" style={{ width: width(pool.allocated) }} />
      <span class="ready" style={{ width: width(pool.ready) }} />
    </div>
  );
}

export function Figure({
  label,
  testId,
  tone = '',
  children,
}: {
  label: string;
  testId?: string;
  /** A CSS class for the value: `text` for words, `warm`/`hot` for a level that needs attention. */
  tone?: string;
  children: ComponentChildren;
}) {
  return (
    <div>
      <dt>{label}</dt>
      <dd class={tone} data-testid={testId}>
        {children}
      </dd>
    </div>
  );
}

/** Ready, allocated, max and pressure, then whatever figures the view adds. */
export function CapacityFigures({
  pool,
  wide = false,
  children,
}: {
  pool: PoolSummary;
  wide?: boolean;
  children?: ComponentChildren;
}) {
  const level = pressure(pool);
  return (
    <dl class={wide ? 'figures wide' : 'figures'}>
      <Figure label="Ready" testId="ready">
        {pool.ready} {wide && <small>of {pool.readyTarget}</small>}
      </Figure>
      <Figure label="Allocated" testId="allocated">
        {pool.allocated}
      </Figure>
      <Figure label="Max">{pool.max}</Figure>
      <Figure label="Pressure" testId="pressure" tone={level >= 0.9 ? 'hot' : level >= 0.7 ? 'warm' : ''}>
        {percent(level)}
      </Figure>
      {children}
    </dl>
  );
}

/** Shown while the pool's sandboxes fail to start, with the last reason. */
export function StartFailures({ pool, small = false }: { pool: PoolSummary; small?: boolean }) {
  if (pool.startFailures === 0) return null;
  return (
    <p class={small ? 'error small' : 'error'}>
      {pool.startFailures} sandbox starts failed in a row: {pool.lastStartError}
    </p>
  );
}

export function ErrorNote({ error, what }: { error: Error | undefined; what: string }) {
  if (!error) return null;
  const detail =
    error instanceof ApiError ? `${error.status} ${error.code}: ${error.message}` : error.message;
  return (
    <p class="error" role="alert">
      Cannot {what}. {detail}
    </p>
  );
}
