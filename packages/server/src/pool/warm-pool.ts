/**
 * @module pool/warm-pool
 * A pool's warm set on this node: instances started from its template ahead of demand and kept at
 * this node's share of the target `pool/policy` sets (`pool/cluster-view` splits it over the nodes),
 * refilled as sessions claim them, with a growing backoff after failed starts.
 * Starting on demand (when the warm set is empty) goes through here too, so every start is timed
 * and counted the same way.
 */

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { SessionRow, Store } from '../store/store.js';
import type { ClusterView } from './cluster-view.js';
import type { HeldInstance, Instance, InstanceLauncher, StartPurpose } from './instance.js';
import { endDetails, reasonFor, startBackoffMs, warmTarget } from './policy.js';
import type { EndReason, PoolSpec } from './pool-spec.js';
import type { PoolRecorder, StartFailure } from './pool-recorder.js';
import { retire } from './retire.js';

/** How many failed starts a pool remembers. */
const START_FAILURES_KEPT = 5;

export interface WarmPoolDeps {
  store: Store;
  launcher: InstanceLauncher;
  recorder: PoolRecorder;
  log: Logger;
  now: () => number;
  newInstanceId: () => string;
  refillParallelism: number;
  /** The pool as it is now: its template and the generation that template belongs to. */
  template: () => { spec: PoolSpec; poolId: string; generation: number };
  /** Sessions allocated or being allocated across the cluster: the warm target shrinks as they near the max. */
  claimed: () => number;
  /** Claims under way on this node: refills wait for them, so a burst of claims is served first. */
  claimsWaiting: () => number;
  cluster: ClusterView;
  /** The pool's instances being retired (see RetireDeps). */
  retiring: Set<string>;
}

export class WarmPool {
  private readonly ready: HeldInstance[] = [];
  /** Starts under way, by instance id: a start resolves once its instance is held (or given up). */
  private readonly starts = new Map<string, Promise<void>>();
  /** Starts on demand under way, for claims the warm set could not serve. */
  private launching = 0;
  private failures = 0;
  /** The latest failed starts, newest last. */
  private readonly failed: StartFailure[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  /** Nothing new starts: the pool is being deleted, the node drained, or the server stopping. */
  private closed = false;
  /** Why a start that finishes after closing is retired (undefined: it is kept for the next server). */
  private retireAs: EndReason | undefined;
  private waiters: { resolve: () => void; reject: (error: Error) => void }[] = [];

  constructor(private readonly deps: WarmPoolDeps) {}

  get size(): number {
    return this.ready.length;
  }

  /** Instances starting, for the warm set or for a claim: each holds its sandbox, cores and memory already. */
  get starting(): number {
    return this.starts.size + this.launching;
  }

  get consecutiveStartFailures(): number {
    return this.failures;
  }

  /** Why the latest start failed, while starts keep failing. */
  get lastError(): string | null {
    return this.failures > 0 ? (this.failed.at(-1)?.message ?? null) : null;
  }

  /** The latest failed starts, newest first. */
  startFailures(): StartFailure[] {
    return [...this.failed].reverse();
  }

  instances(): Instance[] {
    return this.ready.map((held) => held.instance);
  }

  /** The ready instances with their rows. */
  held(): readonly HeldInstance[] {
    return this.ready;
  }

  /** Retires a ready instance out of turn (the host is short of memory); nothing if it left the set. */
  async evict(instanceId: string, reason: EndReason): Promise<void> {
    const index = this.ready.findIndex((held) => held.instance.id === instanceId);
    if (index === -1) return;
    await this.retire(this.ready.splice(index, 1)[0]!, reason);
  }

  has(instanceId: string): boolean {
    return this.ready.some((held) => held.instance.id === instanceId);
  }

  /** Takes up ready instances that outlived a restart. */
  adopt(held: HeldInstance[]): void {
    for (const entry of held) this.hold(entry);
  }

  /**
   * The ready instance the store allocated to a session: it leaves the warm set, which refills. The
   * store records an instance ready a moment before the warm set holds it, so a start under way for
   * that id is waited for.
   */
  async take(id: string): Promise<Instance | undefined> {
    await this.starts.get(id);
    const index = this.ready.findIndex((held) => held.instance.id === id);
    if (index === -1) return undefined;
    return this.ready.splice(index, 1)[0]!.instance;
  }

  /** Takes back an instance claimed for a request that never used it; ready again if still current. */
  giveBack(held: HeldInstance): void {
    if (this.closed || held.row.generation !== this.deps.template().generation) {
      void this.retire(held, this.retireAs ?? 'poolUpdated').catch((error: unknown) =>
        this.deps.log.error({ err: error }, 'sandbox.retire failed'),
      );
      return;
    }
    this.hold(held);
  }

  /** Starts an instance on demand, for a claim the warm set could not serve. */
  async launch(id: string): Promise<Instance> {
    this.launching++;
    try {
      return await this.start(id, 'claim');
    } catch (error) {
      this.deps.recorder.startFailed();
      throw error;
    } finally {
      this.launching--;
    }
  }

  /** Starts an instance from the template, timing it. */
  private async start(id: string, purpose: StartPurpose): Promise<Instance> {
    const started = performance.now();
    const instance = await this.deps.launcher.start(id, this.deps.template().spec, purpose);
    this.deps.recorder.started((performance.now() - started) / 1000);
    return instance;
  }

  /** A row for a new instance of the pool's current template. */
  private newRow(id: string): SessionRow {
    const { poolId, generation } = this.deps.template();
    return {
      id,
      poolId,
      identifier: null,
      state: 'ready',
      node: this.deps.cluster.self,
      generation,
      createdAt: new Date(this.deps.now()).toISOString(),
      allocatedAt: null,
      lastAccessedAt: null,
      endedAt: null,
      endReason: null,
      endDetails: null,
      deadline: null,
      attributes: null,
    };
  }

  /** Resolves once the warm set reaches its target; rejects when the latest start failed or the next one fails. */
  whenWarm(): Promise<void> {
    // A closed warm set starts nothing more: it is as warm as it will get.
    if (this.closed || this.ready.length >= this.target()) return Promise.resolve();
    const lastError = this.lastError;
    if (lastError !== null) return Promise.reject(new Error(lastError));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Starts instances until the warm set (with those starting) reaches its target. */
  refill(): void {
    if (this.closed || this.retryTimer) return;
    const target = this.target();
    if (this.ready.length >= target) {
      for (const waiter of this.waiters.splice(0)) waiter.resolve();
      return;
    }
    // A start costs the server and the host CPU that claims under way would wait for: it waits for
    // them (the last to end calls again), while ready instances are left to hand out.
    if (this.ready.length > 0 && this.deps.claimsWaiting() > 0) return;
    while (this.ready.length + this.starts.size < target && this.starts.size < this.deps.refillParallelism) {
      const id = this.deps.newInstanceId();
      const start: Promise<void> = this.startReady(id).finally(() => {
        this.starts.delete(id);
        this.refill();
      });
      this.starts.set(id, start);
    }
  }

  /**
   * The template changed (every ready instance is replaced) or the target shrank (the surplus goes).
   * Failed starts are forgotten: the new template gets a fresh try.
   */
  async reshape(templateChanged: boolean): Promise<void> {
    const surplus = templateChanged ? this.ready.splice(0) : this.ready.splice(this.target());
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.failures = 0;
    await Promise.all(surplus.map((held) => this.retire(held, 'poolUpdated')));
    this.refill();
  }

  /**
   * Brings the warm set to this node's share, which moves as nodes come and go: the surplus is
   * retired (the nodes with room start theirs), a shortfall started.
   */
  async rebalance(): Promise<void> {
    if (this.closed) return;
    await Promise.all(this.ready.splice(this.target()).map((held) => this.retire(held, 'rebalanced')));
    this.refill();
  }

  /**
   * Stops starting instances; resolves when the starts under way have finished. With `retireAs` (a
   * pool deleted, a node drained) they are retired for that reason; without (a server stopping) they
   * are kept ready for the next server.
   */
  async stopStarting(retireAs?: EndReason): Promise<void> {
    this.closed = true;
    this.retireAs ??= retireAs;
    clearTimeout(this.retryTimer);
    await Promise.allSettled([...this.starts.values()]);
  }

  /** Retires every ready instance (after {@link stopStarting}). */
  async retireAll(reason: EndReason): Promise<void> {
    await Promise.all(this.ready.splice(0).map((held) => this.retire(held, reason)));
    for (const waiter of this.waiters.splice(0))
      waiter.reject(new Error(`the warm set was retired: ${reason}`));
  }

  /** Forgets the ready instances not in `live`, handing them back. */
  dropAbsent(live: Set<string>): Instance[] {
    const gone = this.ready.filter((held) => !live.has(held.instance.id));
    for (const held of gone) this.ready.splice(this.ready.indexOf(held), 1);
    return gone.map((held) => held.instance);
  }

  /** Lets go of every ready instance without ending it: the next server takes them up. */
  release(): void {
    for (const held of this.ready) held.instance.release();
  }

  /** This node's share of the ready target, as far as its room reaches. */
  private target(): number {
    const { spec, poolId } = this.deps.template();
    const { cluster } = this.deps;
    const share = cluster.readyShare(poolId, warmTarget(spec, this.deps.claimed()));
    return Math.min(share, this.ready.length + this.starts.size + cluster.room(cluster.self, poolId));
  }

  private hold(held: HeldInstance): void {
    this.ready.push(held);
    held.instance.onEnd((state) => {
      const index = this.ready.indexOf(held);
      if (index === -1) return;
      this.ready.splice(index, 1);
      this.retire(held, reasonFor(state), endDetails(state)).catch((error: unknown) =>
        this.deps.log.error({ err: error }, 'sandbox.retire failed'),
      );
      this.refill();
    });
  }

  private retire(held: HeldInstance, reason: EndReason, details: ReturnType<typeof endDetails> = null) {
    return retire(held, reason, details, this.deps);
  }

  private async startReady(id: string): Promise<void> {
    const { generation } = this.deps.template();
    const row = this.newRow(id);
    let instance: Instance;
    try {
      instance = await this.start(id, 'warm');
      if (this.retireAs === undefined && generation === this.deps.template().generation) {
        // An instance the store does not know of would outlive every reconciliation: record it, or drop it.
        await this.deps.store.putSession(row).catch(async (error: unknown) => {
          await instance.destroy().catch(() => undefined);
          throw error;
        });
      }
    } catch (error) {
      this.failedToStart(id, error);
      return;
    }
    this.failures = 0;
    const held = { instance, row };
    if (this.retireAs !== undefined || generation !== this.deps.template().generation) {
      await this.retire(held, this.retireAs ?? 'poolUpdated');
      return;
    }
    this.hold(held);
    this.deps.recorder.ready(id);
  }

  private failedToStart(id: string, error: unknown): void {
    this.failures++;
    const failure: StartFailure = {
      sandboxId: id,
      at: new Date(this.deps.now()).toISOString(),
      code: error instanceof AppError ? error.code : ErrorCode.SandboxStartFailed,
      message: (error as Error).message,
    };
    this.failed.push(failure);
    this.failed.splice(0, this.failed.length - START_FAILURES_KEPT);
    const retryInMs = startBackoffMs(this.failures);
    this.deps.recorder.startFailed({ failure, error, retryInMs, consecutiveFailures: this.failures });
    for (const waiter of this.waiters.splice(0)) waiter.reject(error as Error);
    if (!this.closed && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.refill();
      }, retryInMs);
      this.retryTimer.unref();
    }
  }
}
