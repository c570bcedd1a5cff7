/**
 * @module pool/node-registry
 * This server as a node of the cluster: registered in the store under its name with the URL other
 * nodes reach it on and its capacity, holding a lease it renews every third of its length (a node
 * that stops renewing is lost). Each renewal also looks at the cluster (the nodes and what they
 * hold, for placement), follows pools changed through other nodes, and, on the one node that holds
 * the store's leadership, ends what lost nodes held. Draining takes the node out of service for new
 * work: no new session or ready instance, its sessions run to their end, and then it reports itself
 * drained, which is what Kubernetes' preStop waits for. A restart undrains it.
 */

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { NodeMemory } from '../observability/metrics.js';
import type { NodeRow, Store } from '../store/store.js';
import type { ClusterView, Reservation } from './cluster-view.js';
import type { PoolService } from './pool-service.js';

export interface NodeRegistryDeps {
  store: Store;
  pools: PoolService;
  cluster: ClusterView;
  log: Logger;
  now: () => number;
  name: string;
  /** What this node's sandboxes may reserve together. */
  capacity: Reservation;
  leaseSeconds: number;
  /** This node's memory as the memory guard last read it. */
  memory?: () => NodeMemory;
}

/** A node as the API shows it. */
export interface NodeView extends NodeRow {
  /** Its lease lies ahead. */
  live: boolean;
  /** Draining, and nothing of its own left running or starting. */
  drained: boolean;
  /** The node answering leads the cluster's duties (known for that node alone). */
  leader?: boolean;
  /**
   * What it holds now, and the cores and memory that reserves: exact for the node answering, as of
   * the last look for the others.
   */
  load: { sessions: number; ready: number; starting?: number; cpu: number; memoryBytes: number };
  /** The memory of the node answering: committed and allocatable, the sandboxes' limit and use. */
  memory?: NodeMemory;
}

export class NodeRegistry {
  private row: NodeRow | undefined;
  private renewal: NodeJS.Timeout | undefined;
  private leads = false;
  /**
   * Since when this node has renewed its lease without a miss. The leader judges other nodes lost
   * only after a whole lease of this: when the store itself was away, every lease lapsed together,
   * and none of those nodes is lost.
   */
  private inTouchSince = 0;
  /** The lease renewal under way: a slow one (the store failing over) is not overlapped by the next. */
  private ticking: Promise<void> | undefined;
  /** Following the pools, under way; a change announced meanwhile makes it run once more. */
  private following: Promise<void> | undefined;
  private followAgain = false;
  private unsubscribe: () => void = () => undefined;

  constructor(private readonly deps: NodeRegistryDeps) {}

  get name(): string {
    return this.deps.name;
  }

  get draining(): boolean {
    return this.row?.draining ?? false;
  }

  /** Whether this node held the store's leadership at its last look. */
  get leading(): boolean {
    return this.leads;
  }

  /** Registers this node (not draining: a restart undrains), looks at the cluster, and keeps doing so. */
  async start(url: string): Promise<void> {
    const now = this.deps.now();
    this.row = {
      name: this.deps.name,
      url,
      maxSandboxes: this.deps.capacity.sandboxes,
      maxCpu: this.deps.capacity.cpu,
      maxMemoryBytes: this.deps.capacity.memoryBytes,
      draining: false,
      startedAt: new Date(now).toISOString(),
      leaseUntil: this.leaseFrom(now),
    };
    await this.deps.store.putNode(this.row);
    this.inTouchSince = now;
    await this.look();
    this.renewal = setInterval(
      () => {
        this.ticking ??= this.renewAndLead().finally(() => (this.ticking = undefined));
        void this.followPools();
      },
      (this.deps.leaseSeconds * 1000) / 3,
    );
    this.renewal.unref();
  }

  /** Stops renewing; resolves when the renewal under way has finished. */
  async stop(): Promise<void> {
    clearInterval(this.renewal);
    this.unsubscribe();
    await Promise.all([this.ticking, this.following]);
  }

  /** Follows the pools now, or once more after the follow under way (a change may have come since). */
  private followPools(): Promise<void> {
    if (this.following) {
      this.followAgain = true;
      return this.following;
    }
    this.following = this.deps.pools
      .follow()
      .catch((error: unknown) => this.deps.log.warn({ err: error }, 'pools.follow failed'))
      .finally(() => {
        this.following = undefined;
        if (this.followAgain) {
          this.followAgain = false;
          void this.followPools();
        }
      });
    return this.following;
  }

  /** One renewal: the lease, a look at the cluster and the leader's duties, then the pools. */
  async tick(): Promise<void> {
    await this.renewAndLead();
    await this.followPools();
  }

  /**
   * The store-bound part of a renewal. Following the pools runs beside it, never in its way: ending
   * a deleted pool here waits for starts under way, and the lease must not wait with it.
   */
  private async renewAndLead(): Promise<void> {
    const steps: [string, () => Promise<unknown>][] = [
      ['node.lease not renewed', () => this.renew()],
      ['cluster.look failed', () => this.look()],
      ['cluster.lead failed', () => this.lead()],
    ];
    for (const [failure, step] of steps) {
      await step().catch((error: unknown) => this.deps.log.warn({ err: error }, failure));
    }
  }

  /** Reads the nodes and what they hold, for placement and the nodes list. */
  private async look(): Promise<void> {
    const [nodes, counts] = await Promise.all([this.deps.store.listNodes(), this.deps.store.countSessions()]);
    this.deps.cluster.update(nodes, counts);
  }

  /** The leader ends what nodes whose lease ran out held; leadership moves when its holder dies. */
  private async lead(): Promise<void> {
    this.leads = await this.deps.store.holdLeadership().catch(() => false);
    if (!this.leads || this.deps.now() - this.inTouchSince < this.deps.leaseSeconds * 1000) return;
    // The nodes as the look just before read them.
    for (const node of this.deps.cluster.lostNodes()) {
      const ended = await this.deps.pools.endLostNode(node);
      if (ended > 0) this.deps.log.warn({ node, ended }, 'node.lost: its sessions ended hostLost');
    }
  }

  /** Drains this node (idempotent); `name` must be its own. */
  async drain(name: string): Promise<NodeView> {
    if (name !== this.deps.name) {
      const other = await this.deps.store.getNode(name);
      if (!other) throw new AppError(ErrorCode.NodeNotFound, `no node named ${name} has registered`);
      throw new AppError(
        ErrorCode.InvalidParameter,
        `node ${name} is drained through its own URL (${other.url}); this is node ${this.deps.name}`,
        { target: 'name' },
      );
    }
    this.row = { ...this.current(), draining: true };
    await this.deps.store.putNode(this.row);
    await this.deps.pools.drainNode();
    return this.view(this.row);
  }

  /** Every registered node, this one with what it holds. */
  async list(): Promise<NodeView[]> {
    const rows = await this.deps.store.listNodes();
    return rows.map((row) => this.view(row.name === this.deps.name ? this.current() : row));
  }

  /**
   * Renews the lease. A lease that ran out (the node stalled, or lost the store) may have had its
   * sessions ended by the leader: what the store no longer holds live is let go of here.
   */
  private async renew(): Promise<void> {
    const now = this.deps.now();
    const lapsed = Date.parse(this.current().leaseUntil) <= now;
    const renewed = { ...this.current(), leaseUntil: this.leaseFrom(now) };
    try {
      await this.deps.store.putNode(renewed);
    } catch (error) {
      this.inTouchSince = Number.POSITIVE_INFINITY;
      throw error;
    }
    this.row = renewed;
    if (this.inTouchSince === Number.POSITIVE_INFINITY) this.inTouchSince = now;
    if (lapsed) {
      const dropped = await this.deps.pools.dropEndedElsewhere();
      this.deps.log.warn({ dropped }, 'node.lease lapsed and was renewed');
    }
  }

  private current(): NodeRow {
    if (!this.row) throw new Error('the node has not registered yet');
    return this.row;
  }

  private leaseFrom(now: number): string {
    return new Date(now + this.deps.leaseSeconds * 1000).toISOString();
  }

  private view(row: NodeRow): NodeView {
    const live = Date.parse(row.leaseUntil) > this.deps.now();
    if (row.name !== this.deps.name) {
      const { cpu, memoryBytes } = this.deps.cluster.reserved(row.name);
      const load = { ...this.deps.cluster.held(row.name), cpu, memoryBytes };
      return { ...row, live, drained: row.draining && (!live || load.sessions + load.ready === 0), load };
    }
    // The node list shows sandboxes by state; one being destroyed still keeps the node from drained.
    const { ending, ...load } = this.deps.pools.nodeLoad();
    const memory = this.deps.memory?.();
    return {
      ...row,
      live,
      leader: this.leads,
      drained: row.draining && load.sessions + load.starting + load.ready + ending === 0,
      load,
      ...(memory && { memory }),
    };
  }
}
