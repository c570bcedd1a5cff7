/**
 * @module pool/cluster-view
 * What this node knows of the cluster, as of the last look at the store (every lease renewal): the
 * live nodes, whether they drain, their capacity, and how many sandboxes each holds per pool.
 * Placement asks it where a new session may go and how large this node's share of a pool's ready
 * target is. A node's room for a pool is how many more of that pool's sandboxes fit in each of its
 * limits: sandbox slots, cores and memory, every sandbox (ready or in a session) reserving its
 * pool's session size. The share is a pure function of the store's rows, so every node computes the
 * same split and no leader hands targets out. A node alone (the embedded store) is the whole cluster.
 */

import type { NodeRow, SessionCount } from '../store/store.js';

/** What one sandbox of a pool reserves on its node: its session size. */
export interface SandboxSize {
  /** Cores. */
  cpu: number;
  memoryBytes: number;
}

/** Sandboxes with the cores and memory they reserve: a node's capacity, or what it holds. */
export interface Reservation extends SandboxSize {
  sandboxes: number;
}

export interface ClusterViewDeps {
  /** This node's name. */
  self: string;
  /** What this node's sandboxes may reserve together. */
  capacity: Reservation;
  /** What this node's sandboxes reserve now, starting ones included (exact, unlike the store's counts). */
  localReservation: () => Reservation;
  /** A pool's session size; undefined for a pool this node does not know (it counts as a slot only). */
  sizeOf: (poolId: string) => SandboxSize | undefined;
  /** Whether this node is draining. */
  draining: () => boolean;
  /** Whether this node's sandboxes are short of memory: it then takes no new sandbox. */
  memoryPressure: () => boolean;
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

  get underMemoryPressure(): boolean {
    return this.deps.memoryPressure();
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

  /** What the node's sandboxes reserve: this node's exactly, another's as of the last look. */
  reserved(name: string): Reservation {
    if (name === this.deps.self) return this.deps.localReservation();
    const reserved = { sandboxes: 0, cpu: 0, memoryBytes: 0 };
    for (const count of this.counts) {
      if (count.node !== name) continue;
      const size = this.deps.sizeOf(count.poolId);
      reserved.sandboxes += count.count;
      reserved.cpu += (size?.cpu ?? 0) * count.count;
      reserved.memoryBytes += (size?.memoryBytes ?? 0) * count.count;
    }
    return reserved;
  }

  /** What the node may reserve; a node registered before cores and memory were counted has no limit on them. */
  private capacity(name: string): Reservation {
    if (name === this.deps.self) return this.deps.capacity;
    const row = this.node(name);
    return {
      sandboxes: row?.maxSandboxes ?? 0,
      cpu: row?.maxCpu ?? Number.POSITIVE_INFINITY,
      memoryBytes: row?.maxMemoryBytes ?? Number.POSITIVE_INFINITY,
    };
  }

  /**
   * How many more of the pool's sandboxes fit on the node, in every one of its limits; none on this
   * node while its sandboxes are short of memory.
   */
  room(name: string, poolId: string): number {
    if (name === this.deps.self && this.underMemoryPressure) return 0;
    const { sandboxes, cpu, memoryBytes } = this.roomByLimit(name, poolId);
    return Math.max(0, Math.min(sandboxes, cpu, memoryBytes));
  }

  /** How many more of the pool's sandboxes each of the node's limits leaves room for. */
  private roomByLimit(name: string, poolId: string): Reservation {
    const size = this.deps.sizeOf(poolId) ?? { cpu: 0, memoryBytes: 0 };
    const capacity = this.capacity(name);
    const reserved = this.reserved(name);
    // A millionth of slack: sizes like 0.25 cores add up exactly, others may not.
    const fits = (limit: number, taken: number, each: number) =>
      each > 0 ? Math.floor((limit - taken) / each + 1e-6) : Number.POSITIVE_INFINITY;
    return {
      sandboxes: capacity.sandboxes - reserved.sandboxes,
      cpu: fits(capacity.cpu, reserved.cpu, size.cpu),
      memoryBytes: fits(capacity.memoryBytes, reserved.memoryBytes, size.memoryBytes),
    };
  }

  /** Why this node has no room for another of the pool's sandboxes, in words; undefined if it has. */
  fullBecause(poolId: string): string | undefined {
    if (this.underMemoryPressure) return 'its sandboxes are short of memory';
    const room = this.roomByLimit(this.deps.self, poolId);
    const capacity = this.deps.capacity;
    const reserved = this.deps.localReservation();
    const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
    if (room.memoryBytes <= 0) {
      return `its sandboxes reserve ${gib(reserved.memoryBytes)} of the ${gib(capacity.memoryBytes)} of memory it may commit`;
    }
    if (room.cpu <= 0)
      return `its sandboxes reserve ${reserved.cpu} of the ${capacity.cpu} cores it may commit`;
    if (room.sandboxes <= 0) return `it holds ${reserved.sandboxes} of its ${capacity.sandboxes} sandboxes`;
    return undefined;
  }

  /** Nodes whose ready sandboxes a new session may take, this one first (its own answer fastest). */
  readyOrder(): string[] {
    const serving = this.underMemoryPressure
      ? this.serving().filter((name) => name !== this.deps.self)
      : this.serving();
    return serving.includes(this.deps.self)
      ? [this.deps.self, ...serving.filter((name) => name !== this.deps.self)]
      : serving;
  }

  /** Where a pool's session with no ready sandbox starts: here if one fits, else where most fit. */
  coldNode(poolId: string): string | undefined {
    const withRoom = this.serving().filter((name) => this.room(name, poolId) > 0);
    if (withRoom.includes(this.deps.self)) return this.deps.self;
    return withRoom.sort((a, b) => this.room(b, poolId) - this.room(a, poolId))[0];
  }

  /**
   * This node's part of a pool's cluster-wide ready target: the target split evenly over the serving
   * nodes that have room for one of the pool's sandboxes or hold some already (a node full of its own
   * share keeps it), the remainder going to the first by name. A node's warm set stops where its
   * room does, whatever its share.
   */
  readyShare(poolId: string, total: number): number {
    const sharing = this.serving().filter(
      (name) =>
        this.room(name, poolId) > 0 ||
        this.sum((count) => count.node === name && count.poolId === poolId && count.state === 'ready') > 0,
    );
    const index = sharing.indexOf(this.deps.self);
    if (index === -1) return 0;
    return Math.floor(total / sharing.length) + (index < total % sharing.length ? 1 : 0);
  }

  /** Sessions of the pool other nodes hold, as of the last look. */
  allocatedElsewhere(poolId: string): number {
    return this.sum(
      (count) => count.poolId === poolId && count.state === 'allocated' && count.node !== this.deps.self,
    );
  }

  /** Live sandboxes a node holds, as of the last look. */
  held(name: string): { sessions: number; ready: number } {
    return {
      sessions: this.sum((count) => count.node === name && count.state === 'allocated'),
      ready: this.sum((count) => count.node === name && count.state === 'ready'),
    };
  }

  /** The cluster's live sandboxes per pool and state, as of the last look. */
  sandboxTotals(): Omit<SessionCount, 'node'>[] {
    const totals = new Map<string, Omit<SessionCount, 'node'>>();
    for (const count of this.counts) {
      const key = `${count.poolId}\n${count.state}`;
      const total = totals.get(key) ?? { poolId: count.poolId, state: count.state, count: 0 };
      total.count += count.count;
      totals.set(key, total);
    }
    return [...totals.values()];
  }

  /** The registered nodes by state, as of the last look. */
  nodeTotals(): Record<'serving' | 'draining' | 'lost', number> {
    const nodes = { serving: 0, draining: 0, lost: 0 };
    for (const node of this.nodes) {
      nodes[!this.isLive(node.name) ? 'lost' : node.draining ? 'draining' : 'serving'] += 1;
    }
    return nodes;
  }

  /** Sandboxes counted at the last look, of the kind `match` picks. */
  private sum(match: (count: SessionCount) => boolean): number {
    return this.counts.filter(match).reduce((total, count) => total + count.count, 0);
  }
}
