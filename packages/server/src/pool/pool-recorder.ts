/**
 * @module pool/pool-recorder
 * Every fact about one pool recorded through one call: the store's event log and the live feed, the
 * metrics (and with them the timeline), the usage ledger and the log. Writes nobody awaits stay in
 * view until they land, so a stopping server closes its store after them; a deleted pool records
 * nothing more, so no late write lands among the records of a new pool of the same name.
 */

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { DeniedConnection } from '../sandbox/driver.js';
import type { JsonObject, PoolRow, SessionRow, Store } from '../store/store.js';
import type { EventFeed } from '../observability/event-feed.js';
import type { Metrics } from '../observability/metrics.js';
import type { ExecutionEnd } from '../observability/timeline.js';
import type { EndReason, PoolSpec } from './pool-spec.js';
import { ledgerEntry, type SessionUsage } from './usage-ledger.js';

/** How long the retries of one refused connection count as that connection. */
const DENIED_DEDUP_MS = 60_000;

export interface PoolRecorderDeps {
  store: Store;
  feed: EventFeed;
  metrics: Metrics;
  log: Logger;
  now: () => number;
}

/** A pool's metrics label: unique across resource groups, bounded like the pools themselves. */
export const metricLabelOf = (pool: Pick<PoolRow, 'resourceGroup' | 'name'>) =>
  `${pool.resourceGroup}/${pool.name}`;

/** A failed start: why (a typed reason and message, never the container's output). */
export interface StartFailure {
  /** Its console log, for custom containers, is archived under this id. */
  sandboxId: string;
  at: string;
  code: string;
  message: string;
}

/** How an instance's end came to be recorded, beyond its row. */
export interface EndRecord {
  /** A session's measured use (absent for a ready instance, or one found dead after a restart). */
  usage?: SessionUsage;
  /** Executions the session ran while this server served it. */
  executions?: number;
  /** The instance died while no server watched it: when is unknown, so nothing is billed. */
  whileServerWasDown?: boolean;
}

export class PoolRecorder {
  private readonly writes = new Set<Promise<unknown>>();
  private forgotten = false;
  /** Refused connections already recorded, by connection, with when they were first seen. */
  private readonly deniedSeen = new Map<string, number>();

  constructor(
    private pool: PoolRow,
    private spec: PoolSpec,
    private readonly deps: PoolRecorderDeps,
  ) {}

  get label(): string {
    return metricLabelOf(this.pool);
  }

  /** The pool changed: later records carry its new tags and memory. */
  update(pool: PoolRow, spec: PoolSpec): void {
    this.pool = pool;
    this.spec = spec;
  }

  /** The pool is deleted with its records: nothing more is recorded for it. */
  forget(): void {
    this.forgotten = true;
    this.deps.metrics.timeline.forget(this.label);
  }

  get isForgotten(): boolean {
    return this.forgotten;
  }

  /** Resolves when every write made so far has landed (or failed and been logged). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.writes]);
  }

  /** An instance started from the pool's template in `seconds`. */
  started(seconds: number): void {
    this.deps.metrics.recordSandboxStart(this.label, seconds);
  }

  /** A started instance joined the warm set. */
  ready(instanceId: string): void {
    void this.event('ready', { sessionId: instanceId });
  }

  /**
   * An instance failed to start. A start for the warm set is retried after a backoff and announced
   * (`retried`); an on-demand start's error goes to the request that asked for it.
   */
  startFailed(retried?: {
    failure: StartFailure;
    error: unknown;
    retryInMs: number;
    consecutiveFailures: number;
  }): void {
    this.deps.metrics.recordSandboxStartFailure(this.label);
    if (!retried) return;
    const { failure, retryInMs, consecutiveFailures } = retried;
    this.deps.log.warn({ pool: this.pool.name, err: retried.error, retryInMs }, 'sandbox.start failed');
    void this.event('startFailed', {
      sessionId: failure.sandboxId,
      reason: failure.code,
      details: { message: failure.message, retryInMs, consecutiveFailures },
    });
  }

  /** A request found every session of the pool allocated. */
  poolFull(): void {
    this.deps.metrics.recordPoolFull(this.label);
  }

  /** An identifier got its session: from the warm set (`readySince`: when that instance was ready) or started on demand. */
  allocated(row: SessionRow, allocation: { warm: boolean; durationMs: number; readySince?: string }): void {
    const { warm, durationMs } = allocation;
    void this.event('allocated', {
      sessionId: row.id,
      identifier: row.identifier,
      details: { warm, durationMs },
    });
    this.deps.metrics.recordAllocation(this.label, warm, durationMs / 1000);
    if (allocation.readySince !== undefined) {
      this.usage('ready', allocation.readySince, Date.parse(row.allocatedAt ?? row.createdAt));
    }
  }

  /** A session ran an execution. */
  executed(containerType: string, end: ExecutionEnd, seconds: number): void {
    this.deps.metrics.recordExecution(this.label, containerType, end, seconds);
  }

  /**
   * Stores an instance's row as it stands: an end is stored before the instance is destroyed, since
   * a new session for the same identifier may be stored meanwhile. Never rejects: a failure is logged.
   */
  storeRow(row: SessionRow): Promise<void> {
    return this.deps.store
      .putSession(row)
      .catch((error: unknown) =>
        this.deps.log.error({ err: error, sandbox: row.id }, 'session.end not stored'),
      );
  }

  /** An instance ended (its row already stored): counted, billed, announced. */
  ended(row: SessionRow, record: EndRecord = {}): Promise<void> {
    const reason = row.endReason as EndReason;
    const endedAtMs = Date.parse(row.endedAt!);
    if (row.identifier !== null) {
      this.deps.metrics.recordSessionEnd(this.label, reason);
      if (record.usage) this.deps.metrics.recordSessionUsage(this.label, record.usage);
      if (!record.whileServerWasDown) {
        this.usage('session', row.allocatedAt ?? row.createdAt, endedAtMs, {
          cpuSeconds: record.usage?.cpuSeconds ?? 0,
          executions: record.executions ?? 0,
        });
      }
    } else if (!record.whileServerWasDown) {
      this.usage('ready', row.createdAt, endedAtMs);
    }
    const details = record.whileServerWasDown
      ? { ...row.endDetails, whileServerWasDown: true }
      : (row.endDetails ?? (row.identifier === null ? { ready: true } : null));
    return this.event('ended', { sessionId: row.id, identifier: row.identifier, reason, details });
  }

  /**
   * A connection the egress rules refused: one event per connection, since its retries share a
   * source port.
   */
  egressDenied(instanceId: string, identifier: string | null, attempt: DeniedConnection): void {
    const key = `${instanceId} ${attempt.protocol} ${attempt.destination}:${String(attempt.port)} ${String(attempt.sourcePort)}`;
    const now = this.deps.now();
    for (const [seen, at] of this.deniedSeen) if (now - at > DENIED_DEDUP_MS) this.deniedSeen.delete(seen);
    if (this.deniedSeen.has(key)) return;
    this.deniedSeen.set(key, now);
    void this.event('egressDenied', {
      sessionId: instanceId,
      identifier,
      reason: attempt.port === null ? attempt.destination : `${attempt.destination}:${attempt.port}`,
      details: { destination: attempt.destination, port: attempt.port, protocol: attempt.protocol },
    });
  }

  imagePulled(image: string, digest: string, seconds: number): void {
    void this.event('imagePulled', { details: { image, digest, seconds } });
  }

  imagePullFailed(image: string, error: unknown): void {
    this.deps.log.warn({ pool: this.pool.name, image, err: error }, 'image.pull failed');
    void this.event('imagePullFailed', {
      reason: error instanceof AppError ? error.code : ErrorCode.ImagePullFailed,
      details: { image, message: (error as Error).message },
    });
  }

  /** A request proxied to a custom container ended; `responseSeconds` is when its answer began. */
  proxied(outcome: string, responseSeconds: number | undefined): void {
    this.deps.metrics.recordProxyRequest(this.label, outcome, responseSeconds);
  }

  upgraded(outcome: 'switched' | 'refused' | 'unreachable'): void {
    this.deps.metrics.recordProxyUpgrade(this.label, outcome);
  }

  /** Adds to the usage ledger what an instance cost from `startedAt` until `endedAtMs`. */
  private usage(
    kind: 'session' | 'ready',
    startedAt: string,
    endedAtMs: number,
    measured?: { cpuSeconds: number; executions: number },
  ): void {
    if (this.forgotten) return;
    const entry = ledgerEntry(this.pool, this.spec, { kind, startedAt, endedAtMs, ...measured });
    void this.track(
      this.deps.store
        .appendUsage(entry)
        .catch((error: unknown) => this.deps.log.error({ err: error, kind }, 'usage not recorded')),
    );
  }

  /** Stores a pool event and hands it to live readers. */
  private event(
    type: string,
    fields: { sessionId?: string; identifier?: string | null; reason?: string; details?: JsonObject | null },
  ): Promise<void> {
    if (this.forgotten) return Promise.resolve();
    const event = {
      poolId: this.pool.id,
      sessionId: fields.sessionId ?? null,
      identifier: fields.identifier ?? null,
      type,
      reason: fields.reason ?? null,
      details: fields.details ?? null,
      at: new Date(this.deps.now()).toISOString(),
    };
    return this.track(
      this.deps.store
        .appendEvent(event)
        .then((seq) => this.deps.feed.publish({ ...event, seq }))
        .catch((error: unknown) => this.deps.log.error({ err: error, type }, 'event not stored')),
    );
  }

  /** Keeps a write nobody awaits in view until it lands. */
  private track(write: Promise<void>): Promise<void> {
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
    return write;
  }
}
