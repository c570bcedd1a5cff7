/**
 * @module pool/pool-manager
 * One pool's sandboxes: the warm set kept at its target, the identifier → session map, allocation
 * (single-flight per identifier, bounded by `maxConcurrentSessions`), executions serialized per
 * session, and every end recorded with its reason. The rules themselves live in pool/policy; this
 * class applies them and keeps the store in step.
 */

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { JsonObject, PoolRow, SessionRow, Store } from '../store/store.js';
import type { DeniedConnection } from '../sandbox/driver.js';
import type { EndState, SandboxLauncher, SessionSandbox } from './session-sandbox.js';
import { expiredReason, sessionExpiry, startBackoffMs, warmTarget, type SessionTimes } from './policy.js';
import type { EventFeed } from '../observability/event-feed.js';
import type { Metrics, PoolSnapshot, PoolUsage } from '../observability/metrics.js';
import type { ExecutionStatus } from '../observability/timeline.js';
import {
  runnable,
  type ContainerTemplate,
  type ContainerType,
  type EndReason,
  type InterpreterType,
  type PoolSpec,
} from './pool-spec.js';

const GIB = 1024 ** 3;
/** How long the retries of one refused connection count as that connection. */
const DENIED_DEDUP_MS = 60_000;

export interface PoolManagerDeps {
  store: Store;
  launcher: SandboxLauncher;
  log: Logger;
  now: () => number;
  newSandboxId: (poolName: string) => string;
  refillParallelism: number;
  metrics: Metrics;
  /** Live readers of the pool's events. */
  feed: EventFeed;
}

export interface Session {
  readonly identifier: string;
  readonly sandbox: SessionSandbox;
  readonly allocatedAt: number;
  lastAccessedAt: number;
  /** Requests being served. */
  busy: number;
  /** Executions run in this session since this server took it up (for the usage ledger). */
  executions: number;
  ended: EndReason | undefined;
  /** The end in progress: a second caller (the watcher and a request both noticing a death) waits for it. */
  ending: Promise<void> | undefined;
  /** Executions run one after another. */
  queue: Promise<unknown>;
  row: SessionRow;
}

/** What a session used, stored with its end (CPU and peak memory when its cgroup could be read). */
type SessionUsage = {
  lifetimeSeconds: number;
  idleSeconds: number;
  cpuSeconds?: number;
  peakMemoryBytes?: number;
};

export interface Allocation {
  /** The request created the session. */
  created: boolean;
  /** It came from the warm set (false: started on demand). */
  warm: boolean;
  durationMs: number;
  /** How the identifier's previous session ended, when this request replaced it. */
  previous: { reason: string; endedAt: string } | undefined;
}

/** A sandbox that failed to start: why (a typed reason and message, never the container's output). */
export interface StartFailure {
  sandboxId: string;
  at: string;
  code: string;
  message: string;
}

/** How many failed starts a pool remembers. */
const START_FAILURES_KEPT = 5;

/** A custom container image being pulled for the pool. */
export interface ImagePullProgress {
  image: string;
  stage: 'resolving' | 'downloading' | 'unpacking';
  startedAt: string;
}

export interface PoolStatus {
  /** Present while the pool's image is being pulled. */
  imagePull?: ImagePullProgress;
  ready: number;
  allocated: number;
  starting: number;
  consecutiveStartFailures: number;
  lastStartError: string | null;
}

interface ReadySandbox {
  sandbox: SessionSandbox;
  row: SessionRow;
}

/** Maps how a sandbox ended by itself to the session's end reason. */
export function reasonFor(state: EndState): EndReason {
  if (state.status === 'unknown') return 'hostLost';
  if (state.status === 'unhealthy') return 'unhealthy';
  switch (state.cause) {
    case 'oom':
      return 'oom';
    case 'crashed':
      return 'crashed';
    case 'killed':
      return 'killed';
    case 'exited':
      return 'containerExit';
    case 'destroyed':
      return 'hostLost';
  }
}

const times = (session: Session): SessionTimes => ({
  allocatedAt: session.allocatedAt,
  lastAccessedAt: session.lastAccessedAt,
  busy: session.busy > 0,
});

/** A pool's metrics label: unique across resource groups, bounded like the pools themselves. */
export const metricLabelOf = (pool: Pick<PoolRow, 'resourceGroup' | 'name'>) =>
  `${pool.resourceGroup}/${pool.name}`;

export function endDetails(state: EndState): JsonObject | null {
  if (state.status === 'unhealthy') return { message: state.message };
  return state.status === 'exited' ? { exitCode: state.exitCode, signal: state.signal } : null;
}

export class PoolManager {
  private readonly ready: ReadySandbox[] = [];
  private readonly sessions = new Map<string, Session>();
  private readonly allocating = new Map<string, Promise<{ session: Session; allocation: Allocation }>>();
  private readonly starts = new Set<Promise<void>>();
  private failures = 0;
  private lastStartError: string | null = null;
  /** The latest failed starts, newest last: their sandboxes' console logs are archived under these ids. */
  private readonly startFailures: StartFailure[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private draining = false;
  /** The server is stopping: nothing new starts, and what is running is kept for the next start. */
  private detaching = false;
  /** Store writes nobody awaits (events, usage): a stopping server waits for them before the store closes. */
  private readonly writes = new Set<Promise<unknown>>();
  /** The pool is deleted: nothing more is recorded for it (its records are gone with it). */
  private forgotten = false;
  private warmWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private imagePull: ImagePullProgress | undefined;
  /** Refused connections already recorded, by connection, with when they were first seen. */
  private readonly deniedSeen = new Map<string, number>();

  constructor(
    private pool: PoolRow,
    private spec: PoolSpec,
    private readonly deps: PoolManagerDeps,
  ) {}

  get id(): string {
    return this.pool.id;
  }

  get name(): string {
    return this.pool.name;
  }

  get containerType(): ContainerType {
    return this.spec.containerType;
  }

  /** What a custom container pool runs; undefined for code interpreter pools. */
  get container(): ContainerTemplate | undefined {
    return this.spec.container;
  }

  /** The code interpreter the pool runs; a custom container pool has none (its requests are proxied). */
  get interpreterType(): InterpreterType {
    const type = this.spec.containerType;
    if (type === 'CustomContainer') {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `session pool ${this.name} runs a custom container, which has no code interpreter API`,
      );
    }
    return type;
  }

  get metricLabel(): string {
    return metricLabelOf(this.pool);
  }

  /** CPU and memory its live sandboxes (allocated and ready) use now, read from their cgroups. */
  async liveUsage(): Promise<PoolUsage> {
    const sandboxes = [
      ...[...this.sessions.values()].map((s) => s.sandbox),
      ...this.ready.map((r) => r.sandbox),
    ];
    const usages = await Promise.all(sandboxes.map((sandbox) => sandbox.usage().catch(() => undefined)));
    return {
      pool: this.metricLabel,
      cpuSeconds: usages.reduce((sum, u) => sum + (u?.cpuSeconds ?? 0), 0),
      memoryBytes: usages.reduce((sum, u) => sum + (u?.memoryBytes ?? 0), 0),
    };
  }

  /** The pool's state as a metrics scrape reads it. */
  snapshot(): PoolSnapshot {
    const status = this.status();
    return {
      id: this.id,
      pool: this.metricLabel,
      containerType: this.spec.containerType,
      maxSessions: this.spec.maxConcurrentSessions,
      readyTarget: warmTarget(this.spec, this.sessions.size + this.allocating.size),
      ready: status.ready,
      allocated: status.allocated,
      starting: status.starting,
      consecutiveStartFailures: status.consecutiveStartFailures,
      lastStartError: status.lastStartError,
    };
  }

  /** Shows (or, with undefined, clears) the progress of the pool's image pull. */
  setImagePull(progress: ImagePullProgress | undefined): void {
    this.imagePull = progress;
  }

  status(): PoolStatus {
    return {
      ...(this.imagePull && { imagePull: this.imagePull }),
      ready: this.ready.length,
      allocated: this.sessions.size,
      starting: this.starts.size,
      consecutiveStartFailures: this.failures,
      lastStartError: this.lastStartError,
    };
  }

  /** Sessions bound to identifiers, oldest first. */
  listSessions(): Session[] {
    return [...this.sessions.values()].sort((a, b) => a.allocatedAt - b.allocatedAt);
  }

  getSession(identifier: string): Session | undefined {
    return this.sessions.get(identifier);
  }

  /** When a session will end by itself under the pool's lifecycle. */
  expiresAt(session: Session): number {
    return sessionExpiry(this.spec.lifecycle, times(session)).at;
  }

  /** Adopts sandboxes that outlived a restart (from the store, reattached by the launcher). */
  adopt(ready: ReadySandbox[], allocated: { sandbox: SessionSandbox; row: SessionRow }[]): void {
    for (const entry of ready) {
      this.ready.push(entry);
      this.watchReady(entry);
    }
    for (const { sandbox, row } of allocated) {
      const session = this.bind(row.identifier!, sandbox, row);
      this.watchSession(session);
    }
  }

  /**
   * Runs `work` against the identifier's session, allocating one if needed, and keeps the session
   * alive meanwhile: the cooldown restarts when the work starts and when it ends. With `serialize`,
   * work on one session runs one at a time (executions).
   */
  async withSession<T>(
    identifier: string,
    work: (session: Session, allocation: Allocation) => Promise<T>,
    options: { serialize: boolean },
  ): Promise<{ value: T; session: Session; allocation: Allocation }> {
    const { session, allocation } = await this.acquire(identifier);
    const value = await this.useSession(session, () => work(session, allocation), options);
    return { value, session, allocation };
  }

  /** Runs `work` on a session already acquired, as {@link withSession} does. */
  async useSession<T>(session: Session, work: () => Promise<T>, options: { serialize: boolean }): Promise<T> {
    session.busy++;
    this.touch(session);
    try {
      if (!options.serialize) return await work();
      const result = session.queue.then(work, work);
      session.queue = result.catch(() => undefined);
      return await result;
    } finally {
      session.busy--;
      this.touch(session);
      // A sandbox found dead while serving ends its session before the response leaves, so the
      // next request gets a fresh one.
      const state = session.sandbox.endState;
      if (state) await this.end(session, reasonFor(state), endDetails(state));
    }
  }

  /** Counts an execution the session ran, for its usage record and the pool's metrics. */
  executed(session: Session, status: ExecutionStatus, seconds: number): void {
    session.executions++;
    this.deps.metrics.recordExecution(this.metricLabel, this.interpreterType, status, seconds);
  }

  /** The identifier's session, allocated on first use; concurrent first requests share one. */
  acquire(identifier: string): Promise<{ session: Session; allocation: Allocation }> {
    const existing = this.sessions.get(identifier);
    if (existing) {
      return Promise.resolve({
        session: existing,
        allocation: { created: false, warm: true, durationMs: 0, previous: undefined },
      });
    }
    const inFlight = this.allocating.get(identifier);
    if (inFlight) return inFlight;
    if (this.draining) {
      return Promise.reject(
        new AppError(ErrorCode.SessionPoolBusy, `session pool ${this.name} is being deleted`),
      );
    }
    if (!runnable(this.spec)) {
      return Promise.reject(
        new AppError(
          ErrorCode.SessionPoolNotReady,
          this.imagePull
            ? `session pool ${this.name} is pulling its image ${this.imagePull.image} (${this.imagePull.stage}); retry shortly`
            : `session pool ${this.name} has no usable image: its pull failed (see the pool's provisioningState)`,
        ),
      );
    }
    if (this.sessions.size + this.allocating.size >= this.spec.maxConcurrentSessions) {
      this.deps.metrics.recordPoolFull(this.metricLabel);
      return Promise.reject(
        new AppError(
          ErrorCode.SessionPoolFull,
          `session pool ${this.name} has all ${this.spec.maxConcurrentSessions} sessions allocated; end one (DELETE session) or raise maxConcurrentSessions`,
          { details: { maxConcurrentSessions: this.spec.maxConcurrentSessions } },
        ),
      );
    }
    const allocation = this.allocate(identifier).finally(() => this.allocating.delete(identifier));
    this.allocating.set(identifier, allocation);
    return allocation;
  }

  private async allocate(identifier: string): Promise<{ session: Session; allocation: Allocation }> {
    const started = this.deps.now();
    const previous = this.deps.store.lastEndedSession(this.pool.id, identifier).catch(() => undefined);
    let taken = this.ready.shift();
    const warm = taken !== undefined;
    if (!taken) {
      const id = this.deps.newSandboxId(this.name);
      const sandbox = await this.startSandbox(id);
      taken = { sandbox, row: this.newRow(id) };
    }
    const now = this.deps.now();
    const row: SessionRow = {
      ...taken.row,
      identifier,
      state: 'allocated',
      allocatedAt: new Date(now).toISOString(),
      lastAccessedAt: new Date(now).toISOString(),
    };
    const session = this.bind(identifier, taken.sandbox, row);
    try {
      await this.deps.store.putSession(row);
    } catch (error) {
      // The store still holds what it held: a warm sandbox goes back to the ready set it is recorded
      // in; a cold one, never recorded, goes.
      this.sessions.delete(identifier);
      if (warm) this.ready.unshift(taken);
      else await taken.sandbox.destroy().catch(() => undefined);
      throw error;
    }
    if (warm) this.recordUsage('ready', taken.row.createdAt, started);
    this.watchSession(session);
    this.refill();
    const durationMs = this.deps.now() - started;
    this.event('allocated', { sessionId: row.id, identifier, details: { warm, durationMs } });
    this.deps.metrics.recordAllocation(this.metricLabel, warm, durationMs / 1000);
    const before = await previous;
    return {
      session,
      allocation: {
        created: true,
        warm,
        durationMs,
        previous: before && { reason: before.endReason ?? 'unknown', endedAt: before.endedAt ?? '' },
      },
    };
  }

  private bind(identifier: string, sandbox: SessionSandbox, row: SessionRow): Session {
    const session: Session = {
      identifier,
      sandbox,
      allocatedAt: Date.parse(row.allocatedAt ?? row.createdAt),
      lastAccessedAt: Date.parse(row.lastAccessedAt ?? row.allocatedAt ?? row.createdAt),
      busy: 0,
      executions: 0,
      ended: undefined,
      ending: undefined,
      queue: Promise.resolve(),
      row,
    };
    this.sessions.set(identifier, session);
    return session;
  }

  private touch(session: Session): void {
    session.lastAccessedAt = Math.max(session.lastAccessedAt, this.deps.now());
  }

  /** Work nobody awaits: its failure is logged, never left to reject unheard. */
  private background(work: Promise<unknown>, what: string): void {
    work.catch((error: unknown) => this.deps.log.error({ err: error, pool: this.name }, `${what} failed`));
  }

  private watchSession(session: Session): void {
    session.sandbox.onEnd((state) => {
      this.background(this.end(session, reasonFor(state), endDetails(state)), 'session.end');
    });
  }

  private watchReady(entry: ReadySandbox): void {
    entry.sandbox.onEnd((state) => {
      const index = this.ready.indexOf(entry);
      if (index === -1) return;
      this.ready.splice(index, 1);
      this.background(this.retire(entry, reasonFor(state), endDetails(state)), 'sandbox.retire');
      this.refill();
    });
  }

  /**
   * Records a connection the egress rules refused, if the sandbox is this pool's: one event per
   * connection (its retries share a source port). False when the sandbox is not this pool's.
   */
  egressDenied(sandboxId: string, attempt: DeniedConnection): boolean {
    const session = [...this.sessions.values()].find((s) => s.sandbox.id === sandboxId);
    if (!session && !this.ready.some((r) => r.sandbox.id === sandboxId)) return false;
    const key = `${sandboxId} ${attempt.protocol} ${attempt.destination}:${String(attempt.port)} ${String(attempt.sourcePort)}`;
    const now = this.deps.now();
    for (const [seen, at] of this.deniedSeen) if (now - at > DENIED_DEDUP_MS) this.deniedSeen.delete(seen);
    if (this.deniedSeen.has(key)) return true;
    this.deniedSeen.set(key, now);
    this.event('egressDenied', {
      sessionId: sandboxId,
      identifier: session?.identifier ?? null,
      reason: attempt.port === null ? attempt.destination : `${attempt.destination}:${attempt.port}`,
      details: { destination: attempt.destination, port: attempt.port, protocol: attempt.protocol },
    });
    return true;
  }

  /** Ends a session: its sandbox is destroyed and the end recorded with its reason. */
  end(session: Session, reason: EndReason, details: JsonObject | null = null): Promise<void> {
    if (session.ending) return session.ending;
    session.ended = reason;
    if (this.sessions.get(session.identifier) === session) this.sessions.delete(session.identifier);
    session.ending = (async () => {
      let usage: SessionUsage | undefined;
      await this.retire(session, reason, details, async () => (usage = await this.usageAtEnd(session)));
      this.recordUsage(
        'session',
        session.row.allocatedAt ?? session.row.createdAt,
        Date.parse(session.row.endedAt!),
        { cpuSeconds: usage?.cpuSeconds ?? 0, executions: session.executions },
      );
      this.refill();
    })();
    return session.ending;
  }

  /**
   * What the session cost, recorded with its end: lifetime, idle time before the end, and the CPU
   * time and peak memory its cgroup counted (absent when the sandbox is already gone).
   */
  private async usageAtEnd(session: Session): Promise<SessionUsage> {
    const now = this.deps.now();
    const measured = await session.sandbox.usage().catch(() => undefined);
    const usage: SessionUsage = {
      lifetimeSeconds: Math.max(0, now - session.allocatedAt) / 1000,
      idleSeconds: Math.max(0, now - session.lastAccessedAt) / 1000,
      ...(measured && {
        cpuSeconds: Math.round(measured.cpuSeconds * 1000) / 1000,
        peakMemoryBytes: measured.peakMemoryBytes,
      }),
    };
    this.deps.metrics.recordSessionUsage(this.metricLabel, {
      ...usage,
      ...(measured && { cpuSeconds: measured.cpuSeconds }),
    });
    return usage;
  }

  /** Ends the identifier's session, if it has one. */
  async stop(identifier: string): Promise<boolean> {
    const session = this.sessions.get(identifier);
    if (!session) return false;
    await this.end(session, 'stopped');
    return true;
  }

  private async retire(
    entry: { sandbox: SessionSandbox; row: SessionRow },
    reason: EndReason,
    details: JsonObject | null,
    /** For sessions: what the session used, added to the end's details before the sandbox goes. */
    measure?: () => Promise<JsonObject>,
  ) {
    const endedAt = new Date(this.deps.now()).toISOString();
    let row: SessionRow = { ...entry.row, state: 'ended', endedAt, endReason: reason, endDetails: details };
    const store = (ended: SessionRow) =>
      this.deps.store
        .putSession(ended)
        .catch((error: unknown) =>
          this.deps.log.error({ err: error, sandbox: ended.id }, 'session.end not stored'),
        );
    // The row first: a new session for the same identifier may be stored before the destroy ends.
    entry.row = row;
    await store(row);
    if (row.identifier !== null) this.deps.metrics.recordSessionEnd(this.metricLabel, reason);
    if (measure) {
      row = { ...row, endDetails: { ...details, usage: await measure() } };
      entry.row = row;
      await store(row);
    } else if (row.identifier === null) {
      this.recordUsage('ready', row.createdAt, Date.parse(endedAt));
    }
    await entry.sandbox
      .destroy()
      .catch((error: unknown) =>
        this.deps.log.error({ err: error, sandbox: row.id }, 'sandbox.destroy failed'),
      );
    this.event('ended', {
      sessionId: row.id,
      identifier: row.identifier,
      reason,
      details: row.endDetails ?? (row.identifier === null ? { ready: true } : null),
    });
  }

  /** Ends sessions whose time is up and stores when the others were last used. */
  async reap(): Promise<void> {
    const now = this.deps.now();
    const ends: Promise<void>[] = [];
    for (const session of this.sessions.values()) {
      const reason = expiredReason(this.spec.lifecycle, times(session), now);
      if (reason) {
        ends.push(this.end(session, reason));
        continue;
      }
      const stored = Date.parse(session.row.lastAccessedAt ?? '');
      if (session.lastAccessedAt !== stored) {
        session.row = { ...session.row, lastAccessedAt: new Date(session.lastAccessedAt).toISOString() };
        ends.push(this.deps.store.putSession(session.row));
      }
    }
    await Promise.all(ends);
  }

  /**
   * Applies a changed pool: a new template replaces the ready sandboxes (allocated sessions keep
   * theirs until they end); a smaller warm target retires the surplus.
   */
  async update(pool: PoolRow, spec: PoolSpec, templateChanged: boolean): Promise<void> {
    this.pool = pool;
    this.spec = spec;
    const surplus = templateChanged
      ? this.ready.splice(0)
      : this.ready.splice(warmTarget(spec, this.sessions.size));
    this.resetBackoff();
    await Promise.all(surplus.map((entry) => this.retire(entry, 'poolUpdated', null)));
    this.refill();
  }

  /** Ends everything, for a deleted pool. Nothing starts afterwards. */
  async drain(): Promise<void> {
    this.draining = true;
    clearTimeout(this.retryTimer);
    await Promise.allSettled([...this.allocating.values(), ...this.starts]);
    const ready = this.ready.splice(0);
    await Promise.all([
      ...ready.map((entry) => this.retire(entry, 'poolDeleted', null)),
      ...[...this.sessions.values()].map((session) => this.end(session, 'poolDeleted')),
    ]);
    for (const waiter of this.warmWaiters.splice(0)) waiter.reject(new Error('the pool was deleted'));
  }

  /**
   * Marks the drained pool deleted: from now on nothing is recorded for it, so no late write (an
   * async execution ending, an event) can land among a new pool's records of the same name.
   */
  forget(): void {
    this.forgotten = true;
  }

  /** The latest failed starts, newest first. */
  recentStartFailures(): StartFailure[] {
    return [...this.startFailures].reverse();
  }

  /**
   * The text with every value of the pool's secrets masked: console output leaves the server only
   * through this, since a container may print what its environment holds.
   */
  redact(text: string): string {
    let masked = text;
    for (const secret of this.spec.secrets) {
      // One- and two-character values would mask half of any text and hide nothing worth hiding.
      if (secret.value.length >= 3) masked = masked.replaceAll(secret.value, `[secret ${secret.name}]`);
    }
    return masked;
  }

  /** Whether the pool is deleted and records nothing more. */
  get isForgotten(): boolean {
    return this.forgotten;
  }

  /**
   * Stops background work and lets go of every sandbox without ending it, for a server shutting
   * down: starts under way finish and are recorded as ready (the next start takes them up), and the
   * writes in flight land before the store closes.
   */
  async detach(): Promise<void> {
    this.detaching = true;
    clearTimeout(this.retryTimer);
    await Promise.allSettled([...this.starts]);
    for (const { sandbox } of [...this.ready, ...this.sessions.values()]) sandbox.release();
    await Promise.allSettled([...this.writes]);
  }

  /** Keeps a write nobody awaits in view until it lands. */
  private track(write: Promise<unknown>): void {
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
  }

  /** Resolves once the warm set reaches its target; rejects when the latest start failed or the next one fails. */
  whenWarm(): Promise<void> {
    if (this.ready.length >= warmTarget(this.spec, this.sessions.size)) return Promise.resolve();
    if (this.lastStartError !== null) return Promise.reject(new Error(this.lastStartError));
    return new Promise((resolve, reject) => this.warmWaiters.push({ resolve, reject }));
  }

  private resetBackoff(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.failures = 0;
    this.lastStartError = null;
  }

  /** Starts sandboxes until the warm set (with those starting) reaches its target. */
  refill(): void {
    if (this.draining || this.detaching || this.retryTimer) return;
    const target = warmTarget(this.spec, this.sessions.size + this.allocating.size);
    if (this.ready.length >= target) {
      for (const waiter of this.warmWaiters.splice(0)) waiter.resolve();
      return;
    }
    while (this.ready.length + this.starts.size < target && this.starts.size < this.deps.refillParallelism) {
      const start: Promise<void> = this.startReady().finally(() => {
        this.starts.delete(start);
        this.refill();
      });
      this.starts.add(start);
    }
  }

  /** Adds to the usage ledger what a sandbox cost from `startedAt` until `endedAtMs`. */
  private recordUsage(
    kind: 'session' | 'ready',
    startedAt: string,
    endedAtMs: number,
    measured: { cpuSeconds: number; executions: number } = { cpuSeconds: 0, executions: 0 },
  ): void {
    const seconds = Math.max(0, endedAtMs - Date.parse(startedAt)) / 1000;
    const write = this.deps.store
      .appendUsage({
        kind,
        poolId: this.pool.id,
        resourceGroup: this.pool.resourceGroup,
        pool: this.pool.name,
        tags: this.pool.tags,
        startedAt,
        endedAt: new Date(endedAtMs).toISOString(),
        seconds,
        cpuSeconds: measured.cpuSeconds,
        memoryGibSeconds: (this.spec.memoryBytes / GIB) * seconds,
        executions: measured.executions,
      })
      .catch((error: unknown) => this.deps.log.error({ err: error, kind }, 'usage not recorded'));
    this.track(write);
  }

  /** Starts a sandbox from the pool's template, timing it (and counting it when it fails). */
  private async startSandbox(id: string): Promise<SessionSandbox> {
    const started = performance.now();
    try {
      const sandbox = await this.deps.launcher.start(id, this.spec);
      this.deps.metrics.recordSandboxStart(this.metricLabel, (performance.now() - started) / 1000);
      return sandbox;
    } catch (error) {
      this.deps.metrics.recordSandboxStartFailure(this.metricLabel);
      throw error;
    }
  }

  private newRow(id: string): SessionRow {
    return {
      id,
      poolId: this.pool.id,
      identifier: null,
      state: 'ready',
      generation: this.pool.generation,
      createdAt: new Date(this.deps.now()).toISOString(),
      allocatedAt: null,
      lastAccessedAt: null,
      endedAt: null,
      endReason: null,
      endDetails: null,
    };
  }

  private async startReady(): Promise<void> {
    const id = this.deps.newSandboxId(this.name);
    const generation = this.pool.generation;
    const row = this.newRow(id);
    let sandbox: SessionSandbox;
    try {
      sandbox = await this.startSandbox(id);
      if (!this.draining && generation === this.pool.generation) {
        // A sandbox the store does not know of would outlive every reconciliation: record it, or drop it.
        await this.deps.store.putSession(row).catch(async (error: unknown) => {
          await sandbox.destroy().catch(() => undefined);
          throw error;
        });
      }
    } catch (error) {
      this.failures++;
      this.lastStartError = (error as Error).message;
      this.startFailures.push({
        sandboxId: id,
        at: new Date(this.deps.now()).toISOString(),
        code: error instanceof AppError ? error.code : ErrorCode.SandboxStartFailed,
        message: this.lastStartError,
      });
      this.startFailures.splice(0, this.startFailures.length - START_FAILURES_KEPT);
      const retryInMs = startBackoffMs(this.failures);
      this.deps.log.warn({ pool: this.name, err: error, retryInMs }, 'sandbox.start failed');
      this.event('startFailed', {
        sessionId: id,
        reason: error instanceof AppError ? error.code : 'SandboxStartFailed',
        details: { message: this.lastStartError, retryInMs, consecutiveFailures: this.failures },
      });
      for (const waiter of this.warmWaiters.splice(0)) waiter.reject(error as Error);
      if (!this.draining && !this.detaching && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.refill();
        }, retryInMs);
        this.retryTimer.unref();
      }
      return;
    }
    this.failures = 0;
    this.lastStartError = null;
    const entry = { sandbox, row };
    if (this.draining || generation !== this.pool.generation) {
      await this.retire(entry, this.draining ? 'poolDeleted' : 'poolUpdated', null);
      return;
    }
    this.ready.push(entry);
    this.watchReady(entry);
    this.event('ready', { sessionId: id });
  }

  /** Records a pool event and hands it to live readers. */
  event(
    type: string,
    fields: { sessionId?: string; identifier?: string | null; reason?: string; details?: JsonObject | null },
  ): void {
    if (this.forgotten) return;
    const event = {
      poolId: this.pool.id,
      sessionId: fields.sessionId ?? null,
      identifier: fields.identifier ?? null,
      type,
      reason: fields.reason ?? null,
      details: fields.details ?? null,
      at: new Date(this.deps.now()).toISOString(),
    };
    this.track(
      this.deps.store
        .appendEvent(event)
        .then((seq) => this.deps.feed.publish({ ...event, seq }))
        .catch((error: unknown) => this.deps.log.error({ err: error, type }, 'event not stored')),
    );
  }
}
