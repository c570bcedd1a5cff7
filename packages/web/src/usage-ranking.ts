/**
 * @module usage-ranking
 * The overview's usage table at scale: pools ranked by what they cost (the memory they reserved,
 * sessions and prewarmed sandboxes together, then session time), the top few shown and the rest
 * behind a filter, and pools that no longer exist marked as deleted rather than mixed in unlabelled.
 */

import type { UsageTotals } from '@sandpool/sdk';

export interface RankedUsage extends UsageTotals {
  /** The pool is gone; its usage stays, since it is the bill. */
  deleted: boolean;
}

/** What a row costs, in reserved GiB-seconds: the figure the table is ranked by. */
export const costOf = (row: UsageTotals) => row.memoryGibSeconds + row.readyMemoryGibSeconds;

/**
 * The rows to show: ranked by cost (then session time, then name), narrowed to keys containing
 * `filter` (case-insensitive), at most `limit` of them. `livePools` holds `<resource group>/<name>`
 * of the pools that exist now.
 */
export function rankUsage(
  rows: UsageTotals[],
  livePools: Iterable<string>,
  view: { filter: string; limit: number },
): { shown: RankedUsage[]; matching: number } {
  const live = new Set([...livePools].map((key) => key.toLowerCase()));
  const needle = view.filter.trim().toLowerCase();
  const ranked = rows
    .filter((row) => needle === '' || row.key.toLowerCase().includes(needle))
    .map((row) => ({ ...row, deleted: !live.has(row.key.toLowerCase()) }))
    .sort(
      (a, b) => costOf(b) - costOf(a) || b.sessionSeconds - a.sessionSeconds || a.key.localeCompare(b.key),
    );
  return { shown: ranked.slice(0, view.limit), matching: ranked.length };
}
