/**
 * @module parts
 * Small pieces several views share.
 */

import { ApiError } from '@sandpool/sdk';

import type { PoolSummary } from './pool-summary.js';

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
