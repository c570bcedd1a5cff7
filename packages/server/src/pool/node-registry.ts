/**
 * @module pool/node-registry
 * This server as a node of the service: registered in the store under its name with the URL it is
 * reached on and its capacity, and holding a lease it renews every third of its length (a node that
 * stops renewing is lost). Draining takes the node out of service for new work: no new session or
 * ready instance, its sessions run to their end, and then it reports itself drained, which is what
 * Kubernetes' preStop waits for. A restart undrains it.
 */

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { NodeRow, Store } from '../store/store.js';
import type { PoolService } from './pool-service.js';

export interface NodeRegistryDeps {
  store: Store;
  pools: PoolService;
  log: Logger;
  now: () => number;
  name: string;
  maxSandboxes: number;
  leaseSeconds: number;
}

/** A node as the API shows it. */
export interface NodeView extends NodeRow {
  /** Its lease lies ahead. */
  live: boolean;
  /** Draining, and nothing of its own left running or starting. */
  drained: boolean;
  /** What it holds now: known for the node answering (undefined for others). */
  load?: { sessions: number; ready: number; starting: number };
}

export class NodeRegistry {
  private row: NodeRow | undefined;
  private renewal: NodeJS.Timeout | undefined;

  constructor(private readonly deps: NodeRegistryDeps) {}

  get name(): string {
    return this.deps.name;
  }

  /**
   * Registers this node (not draining: a restart undrains) and starts renewing its lease. Nodes do
   * not share sessions yet, so a store another live node holds is refused rather than shared: each
   * would take the other's sessions for lost ({@link claimStore}).
   */
  async start(url: string): Promise<void> {
    await this.claimStore();
    const now = this.deps.now();
    this.row = {
      name: this.deps.name,
      url,
      maxSandboxes: this.deps.maxSandboxes,
      draining: false,
      startedAt: new Date(now).toISOString(),
      leaseUntil: this.leaseFrom(now),
    };
    await this.deps.store.putNode(this.row);
    this.renewal = setInterval(
      () => {
        this.renew().catch((error: unknown) => this.deps.log.warn({ err: error }, 'node.lease not renewed'));
      },
      (this.deps.leaseSeconds * 1000) / 3,
    );
    this.renewal.unref();
  }

  /** Refuses a store another live node holds; checked before this server touches any session. */
  async claimStore(): Promise<void> {
    const now = this.deps.now();
    const holder = (await this.deps.store.listNodes()).find(
      (node) => node.name !== this.deps.name && Date.parse(node.leaseUntil) > now,
    );
    if (holder) {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `node ${holder.name} holds this store (its lease runs until ${holder.leaseUntil}); one node per store until clustering lands`,
      );
    }
  }

  stop(): void {
    clearInterval(this.renewal);
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
    await this.deps.pools.drainNode(name);
    this.row = { ...this.current(), draining: true };
    await this.deps.store.putNode(this.row);
    return this.view(this.row);
  }

  /** Every registered node, this one with what it holds. */
  async list(): Promise<NodeView[]> {
    const rows = await this.deps.store.listNodes();
    return rows.map((row) => this.view(row.name === this.deps.name ? this.current() : row));
  }

  private async renew(): Promise<void> {
    this.row = { ...this.current(), leaseUntil: this.leaseFrom(this.deps.now()) };
    await this.deps.store.putNode(this.row);
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
    if (row.name !== this.deps.name) return { ...row, live, drained: row.draining && !live };
    const load = this.deps.pools.nodeLoad();
    return { ...row, live, drained: row.draining && load.sessions + load.starting + load.ready === 0, load };
  }
}
