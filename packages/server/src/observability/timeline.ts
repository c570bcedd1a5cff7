/**
 * @module observability/timeline
 * The last hour of each pool, minute by minute, for the dashboard: allocations with their latency
 * percentiles, executions by status, session ends by reason and pool-full refusals. Prometheus keeps
 * the long history; this answers "what is happening now" without one, and is lost on restart.
 */

/** Latency samples kept per minute; past this a reservoir keeps an even sample of them. */
const SAMPLES_PER_BUCKET = 2048;

/** How an execution ended, in the bounded words metrics and the timeline count it under. */
export type ExecutionEnd = 'succeeded' | 'failed' | 'timeout' | 'lost';

export interface TimelinePoint {
  /** Start of the minute. */
  at: string;
  allocations: number;
  /** Allocations started on demand because no ready sandbox was left. */
  coldAllocations: number;
  allocationP50Ms: number | null;
  allocationP99Ms: number | null;
  executions: Record<ExecutionEnd, number>;
  ends: Record<string, number>;
  poolFullRejections: number;
}

interface Bucket {
  start: number;
  allocations: number;
  coldAllocations: number;
  latencies: number[];
  executions: Record<ExecutionEnd, number>;
  ends: Record<string, number>;
  poolFullRejections: number;
}

const emptyBucket = (start: number): Bucket => ({
  start,
  allocations: 0,
  coldAllocations: 0,
  latencies: [],
  executions: { succeeded: 0, failed: 0, timeout: 0, lost: 0 },
  ends: {},
  poolFullRejections: 0,
});

/** The value below which `fraction` of the sorted samples fall (nearest rank). */
export function percentile(sorted: readonly number[], fraction: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil(fraction * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] ?? null;
}

export class Timeline {
  private readonly pools = new Map<string, Bucket[]>();

  constructor(
    private readonly now: () => number,
    private readonly random: () => number = Math.random,
    readonly bucketMs = 60_000,
    readonly buckets = 60,
  ) {}

  recordAllocation(pool: string, warm: boolean, ms: number): void {
    const bucket = this.current(pool);
    bucket.allocations += 1;
    if (!warm) bucket.coldAllocations += 1;
    if (bucket.latencies.length < SAMPLES_PER_BUCKET) bucket.latencies.push(ms);
    else {
      const slot = Math.floor(this.random() * bucket.allocations);
      if (slot < SAMPLES_PER_BUCKET) bucket.latencies[slot] = ms;
    }
  }

  recordExecution(pool: string, status: ExecutionEnd): void {
    this.current(pool).executions[status] += 1;
  }

  recordEnd(pool: string, reason: string): void {
    const ends = this.current(pool).ends;
    ends[reason] = (ends[reason] ?? 0) + 1;
  }

  recordPoolFull(pool: string): void {
    this.current(pool).poolFullRejections += 1;
  }

  /** The pool's last `minutes` (at most the kept hour), oldest first, empty minutes included. */
  points(pool: string, minutes = this.buckets): TimelinePoint[] {
    const span = Math.min(Math.max(1, minutes), this.buckets);
    const newest = this.bucketStart(this.now());
    const byStart = new Map((this.pools.get(pool) ?? []).map((b) => [b.start, b]));
    const points: TimelinePoint[] = [];
    for (let i = span - 1; i >= 0; i--) {
      const start = newest - i * this.bucketMs;
      const bucket = byStart.get(start) ?? emptyBucket(start);
      const sorted = [...bucket.latencies].sort((a, b) => a - b);
      points.push({
        at: new Date(start).toISOString(),
        allocations: bucket.allocations,
        coldAllocations: bucket.coldAllocations,
        allocationP50Ms: percentile(sorted, 0.5),
        allocationP99Ms: percentile(sorted, 0.99),
        executions: { ...bucket.executions },
        ends: { ...bucket.ends },
        poolFullRejections: bucket.poolFullRejections,
      });
    }
    return points;
  }

  /** Drops a deleted pool's history. */
  forget(pool: string): void {
    this.pools.delete(pool);
  }

  private bucketStart(at: number): number {
    return at - (at % this.bucketMs);
  }

  private current(pool: string): Bucket {
    const start = this.bucketStart(this.now());
    let buckets = this.pools.get(pool);
    if (!buckets) {
      buckets = [];
      this.pools.set(pool, buckets);
    }
    const last = buckets.at(-1);
    if (last?.start === start) return last;
    const bucket = emptyBucket(start);
    buckets.push(bucket);
    const oldest = start - (this.buckets - 1) * this.bucketMs;
    while (buckets[0] && buckets[0].start < oldest) buckets.shift();
    return bucket;
  }
}
