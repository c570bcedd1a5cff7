/**
 * @module pool/pool-manager
 * One pool on this server, as the rest of the server sees it: its identity and template, its status,
 * and the use cases on its sessions. The work is done by its parts: the warm set
 * (`pool/warm-pool`), the sessions and their claims (`pool/sessions`), and the recorder every fact
 * goes through (`pool/pool-recorder`). The rules they apply live in `pool/policy`.
 */

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { AgentRequest, AgentResult } from '../interpreter/agent-client.js';
import type { PoolRow, SessionRow, Store } from '../store/store.js';
import type { DeniedConnection } from '../sandbox/driver.js';
import type { EventFeed } from '../observability/event-feed.js';
import type { Metrics, PoolSnapshot, PoolUsage } from '../observability/metrics.js';
import type { ExecutionEnd } from '../observability/timeline.js';
import type { ClusterView, SandboxSize } from './cluster-view.js';
import type { EndState, HeldInstance, Instance, InstanceLauncher } from './instance.js';
import type { PressureCandidate } from './memory-guard.js';
import { endDetails, reasonFor, storedExpiry, warmTarget } from './policy.js';
import { PoolRecorder, type StartFailure } from './pool-recorder.js';
import { isPrivateIdentifier } from './private-identifier.js';
import type { SessionAttributes } from './session-attributes.js';
import {
  runnable,
  type ContainerTemplate,
  type ContainerType,
  type InterpreterType,
  type PoolSpec,
} from './pool-spec.js';
import { Sessions, type Allocation, type Claimed, type Reach, type Session } from './sessions.js';
import { WarmPool } from './warm-pool.js';

export type { Allocation, Claimed, Reach, Session, StartFailure };

export interface PoolManagerDeps {
  store: Store;
  launcher: InstanceLauncher;
  log: Logger;
  now: () => number;
  newInstanceId: (poolName: string) => string;
  refillParallelism: number;
  metrics: Metrics;
  /** Live readers of the pool's events. */
  feed: EventFeed;
  /** The nodes sessions and ready instances are placed on. */
  cluster: ClusterView;
}

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
  /** Instances being destroyed: their sandboxes are not gone yet. */
  ending: number;
  consecutiveStartFailures: number;
  lastStartError: string | null;
}

export class PoolManager {
  /** Every fact about the pool goes through here. */
  readonly recorder: PoolRecorder;
  private readonly warm: WarmPool;
  private readonly sessions: Sessions;
  private readonly retiring = new Set<string>();
  private imagePull: ImagePullProgress | undefined;

  constructor(
    private pool: PoolRow,
    private spec: PoolSpec,
    private readonly deps: PoolManagerDeps,
  ) {
    this.recorder = new PoolRecorder(pool, spec, deps);
    const newInstanceId = () => deps.newInstanceId(this.pool.name);
    this.warm = new WarmPool({
      ...deps,
      recorder: this.recorder,
      retiring: this.retiring,
      newInstanceId,
      template: () => ({ spec: this.spec, poolId: this.pool.id, generation: this.pool.generation }),
      claimed: () => this.sessions.claimed + deps.cluster.allocatedElsewhere(this.pool.id),
      claimsWaiting: () => this.sessions.claimsWaiting,
    });
    this.sessions = new Sessions({
      ...deps,
      recorder: this.recorder,
      retiring: this.retiring,
      warm: this.warm,
      newInstanceId,
      poolName: () => this.pool.name,
      poolId: () => this.pool.id,
      generation: () => this.pool.generation,
      spec: () => this.spec,
      notRunnable: () => this.notRunnable(),
    });
  }

  get id(): string {
    return this.pool.id;
  }

  get name(): string {
    return this.pool.name;
  }

  /** The pool's row as this node last applied it. */
  get row(): PoolRow {
    return this.pool;
  }

  get containerType(): ContainerType {
    return this.spec.containerType;
  }

  /** What each of the pool's sandboxes reserves on its node: the session size. */
  get sandboxSize(): SandboxSize {
    return { cpu: this.spec.cpu, memoryBytes: this.spec.memoryBytes };
  }

  /** Whether the pool's sandboxes reach the network beyond their own loopback. */
  get egress(): boolean {
    return this.spec.egress === 'EgressEnabled';
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
    return this.recorder.label;
  }

  /** CPU and memory its live instances (allocated and ready) use now, read from their cgroups. */
  async liveUsage(): Promise<PoolUsage> {
    const instances = [...this.sessions.instances(), ...this.warm.instances()];
    const usages = await Promise.all(instances.map((instance) => instance.usage().catch(() => undefined)));
    return {
      pool: this.metricLabel,
      preparedMemoryBytes: await this.deps.launcher.preparedMemory(this.spec).catch(() => undefined),
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
      readyTarget: warmTarget(this.spec, this.sessions.claimed),
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
      ready: this.warm.size,
      allocated: this.sessions.size,
      starting: this.warm.starting,
      ending: this.retiring.size,
      consecutiveStartFailures: this.warm.consecutiveStartFailures,
      lastStartError: this.warm.lastError,
    };
  }

  /** Sessions bound to identifiers, oldest first; a connection's own sessions are nobody else's to see. */
  listSessions(): Session[] {
    return this.sessions.list().filter((session) => !isPrivateIdentifier(session.identifier));
  }

  getSession(identifier: string): Session | undefined {
    return this.sessions.get(identifier);
  }

  /** When a session will end by itself under the pool's lifecycle. */
  expiresAt(session: Session): number {
    return this.sessions.expiresAt(session);
  }

  /** This node's name: the holder of every session {@link listSessions} returns. */
  get node(): string {
    return this.deps.cluster.self;
  }

  /**
   * Sessions other nodes hold, as the store has them (their last use as their node last stored it),
   * with when each ends by itself.
   */
  async sessionsElsewhere(): Promise<{ row: SessionRow; expiresAt: number }[]> {
    const rows = await this.deps.store.listSessions(this.pool.id, ['allocated']);
    return rows
      .filter(
        (row) =>
          row.node !== null &&
          row.node !== this.deps.cluster.self &&
          row.identifier !== null &&
          !isPrivateIdentifier(row.identifier),
      )
      .map((row) => ({ row, expiresAt: storedExpiry(this.spec, row) }));
  }

  /** Takes up instances that outlived a restart (from the store, reattached by the launcher). */
  adopt(ready: HeldInstance[], allocated: HeldInstance[]): void {
    this.warm.adopt(ready);
    this.sessions.adopt(allocated);
  }

  /**
   * Records the end of an instance that died while no server watched it (found at start), and
   * removes what is left of it.
   */
  async recordLost(row: SessionRow, state: EndState): Promise<void> {
    await this.deps.launcher.destroy(row.id).catch(() => undefined);
    const ended: SessionRow = {
      ...row,
      state: 'ended',
      endedAt: new Date(this.deps.now()).toISOString(),
      endReason: reasonFor(state),
      endDetails: endDetails(state),
    };
    await this.recorder.storeRow(ended);
    await this.recorder.ended(ended, { whileServerWasDown: true });
  }

  /**
   * The identifier's session on this node, allocated on first use; concurrent first requests share
   * one. For callers that serve only here (MCP tools): a session elsewhere is `SessionElsewhere`.
   */
  acquire(identifier: string): Promise<Claimed> {
    return this.sessions.acquire(identifier);
  }

  /**
   * Where a request for the identifier is served (see `Sessions.reach`): here with its session,
   * here without one, or on the node that holds it (with the placement, for a new one).
   */
  reach(
    identifier: string,
    options: { create: boolean; placed?: SessionRow | undefined; stay?: boolean },
  ): Promise<Reach> {
    return this.sessions.reach(identifier, options);
  }

  /** Gives a session held here a lifetime of its own and what a front door keeps with it (stored). */
  annotate(session: Session, changes: { deadline?: number; attributes?: SessionAttributes }): Promise<void> {
    return this.sessions.annotate(session, changes);
  }

  /** Forgets which node holds the identifier's session: a request forwarded there failed. */
  forgetHolder(identifier: string): void {
    this.sessions.forgetElsewhere(identifier);
  }

  /**
   * Runs `work` on a session this node holds and keeps it alive meanwhile. With `serialize`, work on
   * one session runs one at a time (executions).
   */
  use<T>(session: Session, work: () => Promise<T>, options: { serialize: boolean }): Promise<T> {
    return this.sessions.use(session, work, options);
  }

  /**
   * Runs `work` against the identifier's session, allocating one if needed, and keeps the session
   * alive meanwhile. With `serialize`, work on one session runs one at a time (executions).
   */
  async withSession<T>(
    identifier: string,
    work: (session: Session, allocation: Allocation) => Promise<T>,
    options: { serialize: boolean },
  ): Promise<{ value: T; session: Session; allocation: Allocation }> {
    const { session, allocation } = await this.sessions.acquire(identifier);
    const value = await this.sessions.use(session, () => work(session, allocation), options);
    return { value, session, allocation };
  }

  /**
   * Runs code in a session already acquired, after the executions before it (one at a time), and
   * counts it for the session's usage record and the pool's metrics.
   */
  async execute(session: Session, request: AgentRequest): Promise<AgentResult> {
    const started = performance.now();
    let end: ExecutionEnd = 'failed';
    try {
      const result = await this.sessions.use(session, () => session.instance.execute(request), {
        serialize: true,
      });
      end = result.timedOut ? 'timeout' : result.status === 'succeeded' ? 'succeeded' : 'failed';
      return result;
    } catch (error) {
      if (error instanceof AppError && error.code === ErrorCode.SessionLost) end = 'lost';
      throw error;
    } finally {
      session.executions++;
      this.recorder.executed(this.interpreterType, end, (performance.now() - started) / 1000);
    }
  }

  /** Ends the identifier's session, if it has one (a caller's DELETE). */
  async stop(identifier: string): Promise<boolean> {
    const session = this.sessions.get(identifier);
    if (!session) return false;
    await this.sessions.end(session, 'stopped');
    return true;
  }

  /**
   * Destroys, without recording an end, the instances whose ids are not in `live` (the cluster ended
   * them while this node was out of touch). Returns how many.
   */
  async dropAbsent(live: Set<string>): Promise<number> {
    const gone = [...this.sessions.dropAbsent(live), ...this.warm.dropAbsent(live)];
    await Promise.all(gone.map((instance) => instance.destroy().catch(() => undefined)));
    return gone.length;
  }

  /** The sandboxes the memory guard may end to relieve the host: the ready ones and the sessions'. */
  pressureCandidates(): PressureCandidate[] {
    const pool = this.metricLabel;
    const memoryBytes = (instance: Instance) => async () => (await instance.usage())?.memoryBytes;
    const ready = this.warm.held().map(({ instance, row }): PressureCandidate => ({
      kind: 'ready',
      pool,
      instanceId: instance.id,
      lastUsedAt: Date.parse(row.createdAt),
      busy: false,
      memoryBytes: memoryBytes(instance),
      end: () => this.warm.evict(instance.id, 'hostMemoryPressure'),
    }));
    const sessions = this.sessions.list().map((session): PressureCandidate => ({
      kind: 'session',
      pool,
      instanceId: session.id,
      lastUsedAt: session.lastAccessedAt,
      busy: session.busy > 0,
      memoryBytes: memoryBytes(session.instance),
      end: () => this.sessions.end(session, 'hostMemoryPressure'),
    }));
    return [...ready, ...sessions];
  }

  /** Ends sessions whose time is up and stores when the others were last used. */
  reap(): Promise<void> {
    return this.sessions.reap();
  }

  /** Records a connection the egress rules refused, if the instance is this pool's (else false). */
  egressDenied(instanceId: string, attempt: DeniedConnection): boolean {
    const session = this.sessions.byInstance(instanceId);
    if (!session && !this.warm.has(instanceId)) return false;
    this.recorder.egressDenied(instanceId, session?.identifier ?? null, attempt);
    return true;
  }

  /**
   * Applies a changed pool: a new template replaces the ready instances (allocated sessions keep
   * theirs until they end); a smaller warm target retires the surplus.
   */
  async update(pool: PoolRow, spec: PoolSpec, templateChanged: boolean): Promise<void> {
    this.pool = pool;
    this.spec = spec;
    this.recorder.update(pool, spec);
    await this.warm.reshape(templateChanged);
  }

  /** Starts instances until the warm set reaches its target. */
  refill(): void {
    this.warm.refill();
  }

  /** Brings the warm set to this node's share of the target, after the cluster changed. */
  rebalance(): Promise<void> {
    return this.warm.rebalance();
  }

  /** Resolves once the warm set reaches its target; rejects when the latest start failed or the next one fails. */
  whenWarm(): Promise<void> {
    return this.warm.whenWarm();
  }

  /** Ends everything, for a deleted pool: nothing starts afterwards. */
  async endEverything(): Promise<void> {
    await Promise.all([
      this.warm.stopStarting('poolDeleted'),
      this.sessions.stopClaiming(
        new AppError(ErrorCode.SessionPoolBusy, `session pool ${this.name} is being deleted`),
      ),
    ]);
    await Promise.all([this.warm.retireAll('poolDeleted'), this.sessions.endAll()]);
  }

  /**
   * Takes the pool out of this node's service, for a node being drained: no ready instance (those it
   * had are retired) and, since placement passes over a draining node, no new session; its sessions
   * run to their natural end.
   */
  async drainNode(): Promise<void> {
    await this.warm.stopStarting('nodeDrained');
    await this.warm.retireAll('nodeDrained');
  }

  /**
   * Marks the pool deleted once it has ended everything: from now on nothing is recorded for it, so
   * no late write (an async execution ending, an event) can land among a new pool's records of the
   * same name.
   */
  forget(): void {
    this.recorder.forget();
  }

  /** Whether the pool is deleted and records nothing more. */
  get isForgotten(): boolean {
    return this.recorder.isForgotten;
  }

  /**
   * Stops background work and lets go of every instance without ending it, for a server shutting
   * down: starts under way finish and are recorded as ready (the next start takes them up), and the
   * writes in flight land before the store closes.
   */
  async detach(): Promise<void> {
    await this.warm.stopStarting();
    this.warm.release();
    this.sessions.release();
    await this.recorder.settled();
  }

  /** The latest failed starts, newest first. */
  recentStartFailures(): StartFailure[] {
    return this.warm.startFailures();
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

  /** Why no instance can start now: the pool's image is being pulled, or its pull failed. */
  private notRunnable(): AppError | undefined {
    if (runnable(this.spec)) return undefined;
    return new AppError(
      ErrorCode.SessionPoolNotReady,
      this.imagePull
        ? `session pool ${this.name} is pulling its image ${this.imagePull.image} (${this.imagePull.stage}); retry shortly`
        : `session pool ${this.name} has no usable image: its pull failed (see the pool's provisioningState)`,
    );
  }
}
