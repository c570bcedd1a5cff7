/**
 * @module pool/cluster-view
 * What this node knows of the cluster, as of the last look at the store (every lease renewal): the
 * live nodes, whether they drain, their room, and how many sandboxes each holds per pool. Placement
 * asks it where a new session may go and how large this node's share of a pool's ready target is.
 * The share is a pure function of the store's rows, so every node computes the same split and no
 * leader hands targets out. A node alone (the embedded store) is the whole cluster.
 */

import type { NodeRow, SessionCount } from '../store/store.js';

export interface ClusterViewDeps {
  /** This node's name. */
  self: string;
  /** How many sandboxes this node may hold. */
  maxSandboxes: number;
  /** What this node holds now (exact, unlike the store's counts of the others). */
  localLoad: () => number;
  /** Whether this node is draining. */
  draining: () => boolean;
  now: () => number;
}

export class ClusterView {
  private nodes: NodeRow[] = [];
  private counts: SessionCount[] = [];

  constructor(private readonly deps: ClusterViewDeps) {}

  get self(): string {
    return this.deps.self;
  }

  get draining(): boolean {
    return this.deps.draining();
  }

  /** Takes in the store's nodes and counts, read together. */
  update(nodes: NodeRow[], counts: SessionCount[]): void {
    this.nodes = nodes;
    this.counts = counts;
  }

  /** A node's registration, if it has registered. */
  node(name: string): NodeRow | undefined {
    return this.nodes.find((node) => node.name === name);
  }

  /** Other nodes whose lease has run out, as of the last look. */
  lostNodes(): string[] {
    return this.nodes
      .filter((node) => node.name !== this.deps.self && !this.isLive(node.name))
      .map((node) => node.name);
  }

  /** Whether the node's lease lay ahead at the last look. */
  isLive(name: string): boolean {
    const node = this.node(name);
    return node !== undefined && Date.parse(node.leaseUntil) > this.deps.now();
  }

  /** Nodes that take new work, by name; this node among them unless it drains. */
  private serving(): string[] {
    const others = this.nodes
      .filter((node) => node.name !== this.deps.self && !node.draining && this.isLive(node.name))
      .map((node) => node.name);
    const names = this.draining ? others : [...others, this.deps.self];
    return names.sort();
  }

  private room(name: string): number {
    if (name === this.deps.self) return this.deps.maxSandboxes - this.deps.localLoad();
    const held = this.counts
      .filter((count) => count.node === name)
      .reduce((sum, count) => sum + count.count, 0);
    return (this.node(name)?.maxSandboxes ?? 0) - held;
  }

  /** Nodes whose ready sandboxes a new session may take, this one first (its own answer fastest). */
  readyOrder(): string[] {
    const serving = this.serving();
    return serving.includes(this.deps.self)
      ? [this.deps.self, ...serving.filter((name) => name !== this.deps.self)]
      : serving;
  }

  /** Where a session with no ready sandbox starts: here if there is room, else where most room is. */
  coldNode(): string | undefined {
    const withRoom = this.serving().filter((name) => this.room(name) > 0);
    if (withRoom.includes(this.deps.self)) return this.deps.self;
    return withRoom.sort((a, b) => this.room(b) - this.room(a))[0];
  }

  /**
   * This node's part of a pool's cluster-wide ready target: the target split evenly over the serving
   * nodes with room, the remainder going to the first by name.
   */
  readyShare(total: number): number {
    const sharing = this.serving().filter((name) => name === this.deps.self || this.room(name) > 0);
    const index = sharing.indexOf(this.deps.self);
    if (index === -1) return 0;
    return Math.floor(total / sharing.length) + (index < total % sharing.length ? 1 : 0);
  }

  /** Sessions of the pool other nodes hold, as of the last look. */
  allocatedElsewhere(poolId: string): number {
    return this.counts
      .filter(
        (count) => count.poolId === poolId && count.state === 'allocated' && count.node !== this.deps.self,
      )
      .reduce((sum, count) => sum + count.count, 0);
  }

  /** Live sandboxes a node holds, as of the last look (this node's from its own count). */
  held(name: string): { sessions: number; ready: number } {
    const of = (state: SessionCount['state']) =>
      this.counts
        .filter((count) => count.node === name && count.state === state)
        .reduce((sum, count) => sum + count.count, 0);
    return { sessions: of('allocated'), ready: of('ready') };
  }
}
