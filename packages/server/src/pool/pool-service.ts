/**
 * @module pool/pool-service
 * Every pool on this node: creating, updating and deleting them as long-running operations,
 * following what other nodes did to them (a pool created, changed or deleted elsewhere), reconciling
 * the store with the host after a restart (reattach what lives, record what died, remove what nobody
 * owns), ending the sessions of lost nodes, and the reaper loop that applies expiry.
 */

import { randomBytes, randomUUID } from 'node:crypto';

import type { Logger } from 'pino';

import { poolId } from '../arm-id.js';
import { AppError, ErrorCode } from '../errors.js';
import type { JsonObject, OperationKind, OperationRow, PoolRow, SessionRow, Store } from '../store/store.js';
import type { ClusterView, Reservation, SandboxSize } from './cluster-view.js';
import type { HeldInstance, InstanceLauncher } from './instance.js';
import type { EventFeed } from '../observability/event-feed.js';
import type { Metrics, PoolSnapshot, PoolUsage } from '../observability/metrics.js';
import { registryCredentials, type ImageSource } from './container-image.js';
import type { PressureCandidate } from './memory-guard.js';
import { PoolManager } from './pool-manager.js';
import { needsPull, sameTemplate, storedSpec as specOf, type PoolSpec } from './pool-spec.js';

export interface PoolServiceDeps {
  store: Store;
  launcher: InstanceLauncher;
  log: Logger;
  now: () => number;
  refillParallelism: number;
  reaperIntervalMs: number;
  metrics: Metrics;
  feed: EventFeed;
  /** Custom container images, pulled at pool create/update. */
  images: ImageSource;
  /** The nodes sessions and ready instances are placed on; this node is `cluster.self`. */
  cluster: ClusterView;
}

export interface PoolDefinition {
  subscription: string;
  resourceGroup: string;
  name: string;
  location: string;
  tags: Record<string, string>;
  spec: PoolSpec;
}

/** Instance ids: the pool's name (for people reading `runc list`) and enough randomness to be unique. */
function newInstanceId(poolName: string): string {
  return `${poolName.slice(0, 40)}-${randomBytes(6).toString('hex')}`;
}

export class PoolService {
  private readonly managers = new Map<string, PoolManager>();
  /** The operation running on each pool, so a delete waits for nothing and a create for nothing else. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly changing = new Map<string, Promise<void>>();
  private reaper: NodeJS.Timeout | undefined;

  constructor(private readonly deps: PoolServiceDeps) {}

  /**
   * Drains this node (the cluster view already says so): every pool, present and future, starts no
   * new session or ready instance here, and the ready ones are retired; live sessions run to their
   * natural end.
   */
  async drainNode(): Promise<void> {
    await Promise.all([...this.managers.values()].map((manager) => manager.drainNode()));
  }

  /**
   * What this node holds now, across its pools, and the cores and memory that reserves: each
   * sandbox its pool's session size (a pool's size as it is now; sandboxes of an earlier template are
   * replaced soon after a change).
   */
  nodeLoad(): {
    sessions: number;
    ready: number;
    starting: number;
    ending: number;
    cpu: number;
    memoryBytes: number;
  } {
    const load = { sessions: 0, ready: 0, starting: 0, ending: 0, cpu: 0, memoryBytes: 0 };
    for (const manager of this.managers.values()) {
      const status = manager.status();
      const sandboxes = status.allocated + status.ready + status.starting + status.ending;
      const size = manager.sandboxSize;
      load.sessions += status.allocated;
      load.ready += status.ready;
      load.starting += status.starting;
      load.ending += status.ending;
      load.cpu += sandboxes * size.cpu;
      load.memoryBytes += sandboxes * size.memoryBytes;
    }
    return load;
  }

  /** What this node's sandboxes reserve now, starting and ending ones included: each holds its slot. */
  nodeReservation(): Reservation {
    const { sessions, ready, starting, ending, cpu, memoryBytes } = this.nodeLoad();
    return { sandboxes: sessions + ready + starting + ending, cpu, memoryBytes };
  }

  /** A pool's session size, if this node knows the pool. */
  sandboxSize(poolId: string): SandboxSize | undefined {
    return this.managers.get(poolId)?.sandboxSize;
  }

  /** Reconciles the store with the host, resumes interrupted operations and starts the reaper. */
  async start(): Promise<void> {
    const onHost = await this.deps.launcher.attachAll();
    const self = this.deps.cluster.self;
    for (const pool of await this.deps.store.listPools()) {
      const manager = this.manage(pool);
      // Only this node's: what another node holds is that node's to reconcile, and what the cluster
      // ended while this node was away is gone from the list (its sandboxes are removed below).
      const rows = await this.deps.store.listSessions(pool.id, ['ready', 'allocated'], self);
      const ready: HeldInstance[] = [];
      const allocated: typeof ready = [];
      for (const stored of rows) {
        const row = { ...stored, node: self };
        if (stored.node === null) await this.deps.store.putSession(row);
        const found = onHost.get(row.id) ?? { status: 'unknown' };
        onHost.delete(row.id);
        if ('execute' in found) {
          (row.state === 'ready' ? ready : allocated).push({ instance: found, row });
          continue;
        }
        await manager.recordLost(row, found);
      }
      manager.adopt(ready, allocated);
      this.deps.log.info(
        {
          pool: pool.name,
          ready: ready.length,
          allocated: allocated.length,
          lost: rows.length - ready.length - allocated.length,
        },
        'pool.reconcile',
      );
    }
    // What is left on the host belongs to no pool: a create the crash interrupted, a deleted pool.
    for (const [id, found] of onHost) {
      this.deps.log.warn({ sandbox: id }, 'removing a sandbox no pool owns');
      if ('release' in found) found.release();
      await this.deps.launcher
        .destroy(id)
        .catch((error: unknown) =>
          this.deps.log.error({ err: error, sandbox: id }, 'sandbox.destroy failed'),
        );
    }
    for (const operation of await this.deps.store.listOperations({ status: 'InProgress' })) {
      if (operation.node === self || operation.node === null) this.resume(operation);
    }
    this.deps.launcher.onEgressDenied((sandboxId, attempt) => {
      for (const manager of this.managers.values()) if (manager.egressDenied(sandboxId, attempt)) return;
    });
    for (const manager of this.managers.values()) manager.refill();
    this.reaper = setInterval(() => void this.reap(), this.deps.reaperIntervalMs);
    this.reaper.unref();
  }

  /**
   * Stops background work and waits for running operations, starts under way and writes in flight,
   * so the store closes with nothing lost; sandboxes keep running for the next start.
   */
  async stop(): Promise<void> {
    clearInterval(this.reaper);
    await Promise.allSettled(this.running.values());
    await this.reap();
    await Promise.all([...this.managers.values()].map((manager) => manager.detach()));
  }

  /**
   * Follows what other nodes did to the pools: a pool created elsewhere is taken up, a changed one applied, a deleted one ended here. Pools with an operation running on
   * this node are this node's to change, and skipped. Every pool's warm set then moves to this
   * node's share of the ready target, which changes as nodes come and go.
   */
  async follow(): Promise<void> {
    const stored = await this.deps.store.listPools();
    const busy = (id: string) => this.changing.has(id) || this.running.has(id);
    for (const pool of stored) {
      if (busy(pool.id)) continue;
      const manager = this.managers.get(pool.id);
      if (pool.provisioningState === 'Deleting') {
        if (manager) await this.endHere(pool.id, manager);
        continue;
      }
      if (!manager) {
        // A custom container's image, pinned by the node that pulled it, comes to this node's cache
        // with the first start (the launcher fetches that digest).
        this.manage(pool);
        continue;
      }
      // A pinned image digest changes the spec alone (no new generation, no new updatedAt).
      if (
        manager.row.updatedAt !== pool.updatedAt ||
        manager.row.generation !== pool.generation ||
        JSON.stringify(manager.row.spec) !== JSON.stringify(pool.spec)
      ) {
        await manager.update(pool, specOf(pool), manager.row.generation !== pool.generation);
      }
    }
    const ids = new Set(stored.map((pool) => pool.id));
    for (const [id, manager] of this.managers) {
      if (!ids.has(id) && !busy(id)) await this.endHere(id, manager);
    }
    await Promise.all([...this.managers.values()].map((manager) => manager.rebalance()));
  }

  /** Ends this node's part of a pool deleted through another node: nothing of it is recorded any more. */
  private async endHere(id: string, manager: PoolManager): Promise<void> {
    this.managers.delete(id);
    manager.forget();
    await manager.endEverything();
  }

  /**
   * Ends what a lost node held (run by the cluster's leader): its sessions end `hostLost`, the next
   * request for one of their identifiers gets a new session, and the ready targets it held move to
   * the nodes left. Returns how many ended.
   */
  async endLostNode(node: string): Promise<number> {
    const rows = await this.deps.store.endNodeSessions(
      node,
      'hostLost',
      new Date(this.deps.now()).toISOString(),
    );
    for (const row of rows) await this.managers.get(row.poolId)?.recorder.ended(row);
    for (const operation of await this.deps.store.listOperations({ status: 'InProgress' })) {
      if (operation.node !== node) continue;
      const taken = { ...operation, node: this.deps.cluster.self };
      await this.deps.store.putOperation(taken);
      this.resume(taken);
    }
    return rows.length;
  }

  /**
   * Lets go of what this node holds but the store no longer records live here (ended by the leader
   * while this node's lease had lapsed): those sandboxes are destroyed without a second record of
   * their end. Returns how many.
   */
  async dropEndedElsewhere(): Promise<number> {
    let dropped = 0;
    for (const manager of this.managers.values()) {
      const live = await this.deps.store.listSessions(
        manager.id,
        ['ready', 'allocated'],
        this.deps.cluster.self,
      );
      dropped += await manager.dropAbsent(new Set(live.map((row) => row.id)));
    }
    return dropped;
  }

  async reap(): Promise<void> {
    await Promise.all(
      [...this.managers.values()].map((m) =>
        m
          .reap()
          .catch((error: unknown) => this.deps.log.error({ err: error, pool: m.name }, 'pool.reap failed')),
      ),
    );
  }

  /** Every sandbox of this node the memory guard may end. */
  pressureCandidates(): PressureCandidate[] {
    return [...this.managers.values()].flatMap((manager) => manager.pressureCandidates());
  }

  /** Every pool's state, for a metrics scrape. */
  snapshot(): PoolSnapshot[] {
    return [...this.managers.values()].map((manager) => manager.snapshot());
  }

  /** Every pool's live CPU and memory use, for a metrics scrape. */
  liveUsage(): Promise<PoolUsage[]> {
    return Promise.all([...this.managers.values()].map((manager) => manager.liveUsage()));
  }

  manager(id: string): PoolManager | undefined {
    return this.managers.get(id);
  }

  /**
   * The pool's manager, taking up a pool another node created since this node last followed the
   * store (a request for it may come here first).
   */
  async known(id: string): Promise<PoolManager | undefined> {
    const manager = this.managers.get(id);
    if (manager) return manager;
    const pool = await this.deps.store.getPool(id);
    if (!pool || pool.provisioningState === 'Deleting' || this.changing.has(id)) return undefined;
    return this.managers.get(id) ?? this.manage(pool);
  }

  /**
   * The pool's manager (taken up from the store when another node created the pool just now), or
   * ResourceNotFound in ARM's words.
   */
  async require(id: string, name: string): Promise<PoolManager> {
    const manager = this.managers.get(id) ?? (await this.known(id));
    if (!manager) {
      throw new AppError(
        ErrorCode.ResourceNotFound,
        `The Resource 'Microsoft.App/sessionPools/${name}' was not found.`,
      );
    }
    return manager;
  }

  listPools(filter: { subscription?: string; resourceGroup?: string }): Promise<PoolRow[]> {
    return this.deps.store.listPools(filter);
  }

  getPool(id: string): Promise<PoolRow | undefined> {
    return this.deps.store.getPool(id);
  }

  /** The identifier's most recent ended session in the pool, if the store still has it. */
  lastEndedSession(poolId: string, identifier: string): Promise<SessionRow | undefined> {
    return this.deps.store.lastEndedSession(poolId, identifier);
  }

  getOperation(id: string): Promise<OperationRow | undefined> {
    return this.deps.store.getOperation(id);
  }

  /**
   * Creates the pool or updates it in place. Returns at once; the operation completes when the warm
   * set has reached its target (or a sandbox fails to start).
   */
  put(definition: PoolDefinition): Promise<{ pool: PoolRow; operation: OperationRow; created: boolean }> {
    const id = poolId(definition.subscription, definition.resourceGroup, definition.name);
    return this.exclusive(id, () => this.apply(id, definition));
  }

  private async apply(
    id: string,
    definition: PoolDefinition,
  ): Promise<{ pool: PoolRow; operation: OperationRow; created: boolean }> {
    const existing = await this.deps.store.getPool(id);
    if (existing?.provisioningState === 'Deleting') {
      throw new AppError(ErrorCode.SessionPoolBusy, `session pool ${definition.name} is being deleted`);
    }
    const now = new Date(this.deps.now()).toISOString();
    const previous = existing && specOf(existing);
    const pull = needsPull(definition.spec, previous);
    // An unchanged image keeps the digest pinned when it was pulled: a moved tag needs a new image.
    const spec: PoolSpec =
      definition.spec.container && !pull
        ? {
            ...definition.spec,
            container: { ...definition.spec.container, imageDigest: previous!.container!.imageDigest },
          }
        : definition.spec;
    const templateChanged = previous !== undefined && !sameTemplate(previous, spec);
    const pool: PoolRow = {
      id,
      subscription: existing?.subscription ?? definition.subscription,
      resourceGroup: existing?.resourceGroup ?? definition.resourceGroup,
      name: existing?.name ?? definition.name,
      location: definition.location,
      tags: definition.tags,
      spec: spec as unknown as JsonObject,
      provisioningState: 'InProgress',
      generation: (existing?.generation ?? 0) + (templateChanged || !existing ? 1 : 0),
      statusMessage: null,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    await this.deps.store.putPool(pool);
    const operation = await this.newOperation(id, existing ? 'update' : 'create');
    const manager = this.managers.get(id) ?? this.manage(pool);
    if (pull) {
      // The sandboxes running now keep their image until the new one is in the cache.
      this.run(operation, async () => {
        await this.pullImage(pool, spec, manager);
        await this.settle(id);
      });
    } else {
      await manager.update(pool, spec, templateChanged);
      this.run(operation, () => this.settle(id));
    }
    return { pool, operation, created: !existing };
  }

  /**
   * Pulls the pool's image and pins its digest, then hands the pool's new template to its manager.
   * A failed pull leaves the pool Failed with the registry's reason and the running sandboxes as they
   * were; an update that came meanwhile wins.
   */
  private async pullImage(pool: PoolRow, spec: PoolSpec, manager: PoolManager): Promise<void> {
    const container = spec.container!;
    const startedAt = new Date(this.deps.now()).toISOString();
    const started = performance.now();
    manager.setImagePull({ image: container.image, stage: 'resolving', startedAt });
    let digest: string;
    try {
      const pulled = await this.deps.images.pull(container.image, registryCredentials(spec), (stage) =>
        manager.setImagePull({ image: container.image, stage, startedAt }),
      );
      digest = pulled.digest;
    } catch (error) {
      manager.recorder.imagePullFailed(container.image, error);
      const current = await this.deps.store.getPool(pool.id);
      if (current?.generation === pool.generation) {
        await this.deps.store.putPool({
          ...current,
          provisioningState: 'Failed',
          statusMessage: (error as Error).message,
        });
      }
      throw error;
    } finally {
      manager.setImagePull(undefined);
    }
    manager.recorder.imagePulled(container.image, digest, Math.round(performance.now() - started) / 1000);
    const current = await this.deps.store.getPool(pool.id);
    if (current?.generation !== pool.generation) return;
    const pinned: PoolSpec = { ...spec, container: { ...container, imageDigest: digest } };
    const updated: PoolRow = { ...current, spec: pinned as unknown as JsonObject };
    await this.deps.store.putPool(updated);
    await manager.update(updated, pinned, true);
  }

  /** Deletes the pool: every session ends with reason `poolDeleted`. Undefined if there is no such pool. */
  delete(id: string): Promise<OperationRow | undefined> {
    return this.exclusive(id, () => this.markDeleted(id));
  }

  private async markDeleted(id: string): Promise<OperationRow | undefined> {
    const pool = await this.deps.store.getPool(id);
    if (!pool) return undefined;
    await this.deps.store.putPool({
      ...pool,
      provisioningState: 'Deleting',
      updatedAt: new Date(this.deps.now()).toISOString(),
    });
    const operation = await this.newOperation(id, 'delete');
    this.run(operation, () => this.remove(id));
    return operation;
  }

  /**
   * Runs changes to one pool one after another, so two concurrent PUTs of a new pool create one
   * manager, not two that each own sandboxes.
   */
  private exclusive<T>(id: string, change: () => Promise<T>): Promise<T> {
    const result = (this.changing.get(id) ?? Promise.resolve()).then(change, change);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.changing.set(id, settled);
    void settled.then(() => {
      if (this.changing.get(id) === settled) this.changing.delete(id);
    });
    return result;
  }

  /** Waits until the operation running on a pool has finished (tests, shutdown). */
  async settled(id: string): Promise<void> {
    await this.running.get(id);
  }

  private manage(pool: PoolRow): PoolManager {
    const manager = new PoolManager(pool, specOf(pool), {
      store: this.deps.store,
      launcher: this.deps.launcher,
      log: this.deps.log.child({ pool: pool.name }),
      now: this.deps.now,
      newInstanceId,
      refillParallelism: this.deps.refillParallelism,
      metrics: this.deps.metrics,
      feed: this.deps.feed,
      cluster: this.deps.cluster,
    });
    this.managers.set(pool.id, manager);
    if (this.deps.cluster.draining) {
      manager
        .drainNode()
        .catch((error: unknown) => this.deps.log.error({ err: error, pool: pool.name }, 'pool.drain failed'));
    }
    return manager;
  }

  private async newOperation(poolId: string, kind: OperationKind): Promise<OperationRow> {
    const operation: OperationRow = {
      id: randomUUID(),
      poolId,
      kind,
      status: 'InProgress',
      node: this.deps.cluster.self,
      error: null,
      startedAt: new Date(this.deps.now()).toISOString(),
      endedAt: null,
    };
    await this.deps.store.putOperation(operation);
    return operation;
  }

  /** Finishes an operation a restart interrupted, pulling again if the image was not in the cache yet. */
  private resume(operation: OperationRow): void {
    this.run(operation, async () => {
      if (operation.kind === 'delete') return this.remove(operation.poolId);
      const pool = await this.deps.store.getPool(operation.poolId);
      const manager = this.managers.get(operation.poolId);
      const spec = pool && specOf(pool);
      if (pool && manager && spec?.container?.imageDigest === null) await this.pullImage(pool, spec, manager);
      await this.settle(operation.poolId);
    });
  }

  /** Runs an operation after whatever runs on the same pool, and records how it ended. */
  private run(operation: OperationRow, work: () => Promise<void>): void {
    const previous = this.running.get(operation.poolId) ?? Promise.resolve();
    const done = previous.then(async () => {
      let error: { code: string; message: string } | null = null;
      try {
        await work();
      } catch (cause) {
        error = {
          code: cause instanceof AppError ? cause.code : ErrorCode.SandboxStartFailed,
          message: (cause as Error).message,
        };
      }
      await this.deps.store.putOperation({
        ...operation,
        status: error ? 'Failed' : 'Succeeded',
        error,
        endedAt: new Date(this.deps.now()).toISOString(),
      });
      this.deps.log.info(
        {
          operation: `pool.${operation.kind}`,
          poolId: operation.poolId,
          outcome: error ? 'failed' : 'succeeded',
          error,
        },
        'pool.operation',
      );
    });
    const tracked = done.finally(() => {
      if (this.running.get(operation.poolId) === tracked) this.running.delete(operation.poolId);
    });
    this.running.set(operation.poolId, tracked);
  }

  /** Waits for the warm set and records the pool's provisioning state. */
  private async settle(id: string): Promise<void> {
    const manager = this.managers.get(id);
    const pool = await this.deps.store.getPool(id);
    if (!manager || !pool) return;
    try {
      await manager.whenWarm();
      await this.deps.store.putPool({ ...pool, provisioningState: 'Succeeded', statusMessage: null });
    } catch (error) {
      const current = await this.deps.store.getPool(id);
      if (current && current.provisioningState !== 'Deleting') {
        await this.deps.store.putPool({
          ...current,
          provisioningState: 'Failed',
          statusMessage: (error as Error).message,
        });
      }
      throw new AppError(
        ErrorCode.SandboxStartFailed,
        `the pool's sandboxes fail to start: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }

  private async remove(id: string): Promise<void> {
    const manager = this.managers.get(id);
    this.managers.delete(id);
    await manager?.endEverything();
    manager?.forget();
    await this.deps.store.deletePool(id);
  }
}
