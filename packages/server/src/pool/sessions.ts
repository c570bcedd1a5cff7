/**
 * @module pool/sessions
 * A pool's sessions on this node: the identifier → session map, claims (single-flight per identifier,
 * bounded by `maxConcurrentSessions` across the cluster, placed by the store on a ready sandbox or a
 * cold start), work on a session (executions one at a time), and ends with their reasons, by request,
 * by expiry or by death. A claim the store places on another node is answered with that node's name:
 * the request goes there.
 */

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { JsonObject, Placement, SessionRow, Store } from '../store/store.js';
import type { ClusterView } from './cluster-view.js';
import type { HeldInstance, Instance } from './instance.js';
import { endDetails, expiredReason, reasonFor, sessionExpiry, type SessionTimes } from './policy.js';
import type { EndReason, PoolSpec } from './pool-spec.js';
import type { PoolRecorder } from './pool-recorder.js';
import { retire } from './retire.js';
import type { WarmPool } from './warm-pool.js';

/** When a client refused for want of room may try again: sessions end, and memory frees, by then. */
const NO_ROOM_RETRY_SECONDS = 5;

/** How many identifiers held by other nodes a pool remembers. */
const ELSEWHERE_KEPT = 10_000;

export interface Session extends HeldInstance {
  readonly identifier: string;
  /** The session's id on the wire (`x-ms-session-guid`): its instance's id. */
  readonly id: string;
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
}

export interface Allocation {
  /** The request created the session. */
  created: boolean;
  /** It came from the warm set (false: started on demand). */
  warm: boolean;
  durationMs: number;
  /** How the identifier's previous session ended, when this request replaced it. */
  previous: { reason: string; endedAt: string } | undefined;
}

export interface Claimed {
  session: Session;
  allocation: Allocation;
}

/** Where an identifier's session is: here (claimed), or on another node (by name). */
export type Reach = { here: Claimed } | { node: string };

export interface SessionsDeps {
  store: Store;
  recorder: PoolRecorder;
  warm: WarmPool;
  cluster: ClusterView;
  log: Logger;
  now: () => number;
  newInstanceId: () => string;
  poolName: () => string;
  poolId: () => string;
  generation: () => number;
  spec: () => PoolSpec;
  /** Why the pool cannot start an instance now (an image pull under way or failed), if it cannot. */
  notRunnable: () => AppError | undefined;
  /** The pool's instances being retired (see RetireDeps). */
  retiring: Set<string>;
}

const times = (session: Session): SessionTimes => ({
  allocatedAt: session.allocatedAt,
  lastAccessedAt: session.lastAccessedAt,
  busy: session.busy > 0,
});

export class Sessions {
  private readonly byIdentifier = new Map<string, Session>();
  private readonly claiming = new Map<string, Promise<Reach>>();
  /**
   * Claims made ahead of their request's handler (while routing it): the handler's acquire reports
   * them as created, with the allocation they had.
   */
  private readonly fresh = new Map<string, Claimed>();
  /**
   * Identifiers whose live session another node holds, as last found: their requests go there
   * without asking the store (sessions never move; one that ended is claimed again by its old node,
   * or refused there with `SessionElsewhere`, which the forwarder answers by forgetting the entry).
   */
  private readonly elsewhere = new Map<string, string>();
  /** Why nothing new is claimed (the pool is being deleted, the node drained), once that is so. */
  private closedWith: AppError | undefined;

  constructor(private readonly deps: SessionsDeps) {}

  /** Sessions allocated or being allocated. */
  get claimed(): number {
    return this.byIdentifier.size + this.claiming.size;
  }

  get size(): number {
    return this.byIdentifier.size;
  }

  /** Sessions bound to identifiers, oldest first. */
  list(): Session[] {
    return [...this.byIdentifier.values()].sort((a, b) => a.allocatedAt - b.allocatedAt);
  }

  get(identifier: string): Session | undefined {
    return this.byIdentifier.get(identifier);
  }

  byInstance(instanceId: string): Session | undefined {
    return [...this.byIdentifier.values()].find((s) => s.id === instanceId);
  }

  /** When a session will end by itself under the pool's lifecycle. */
  expiresAt(session: Session): number {
    return sessionExpiry(this.deps.spec().lifecycle, times(session)).at;
  }

  /** Takes up sessions whose instances outlived a restart. */
  adopt(held: HeldInstance[]): void {
    for (const { instance, row } of held) this.watch(this.bind(row.identifier!, instance, row));
  }

  /**
   * The identifier's session, allocated on first use; concurrent first requests share one. A session
   * another node holds is refused with `SessionElsewhere` (requests are routed before they get here,
   * so this is a race with a move, and a retry lands right).
   */
  async acquire(identifier: string): Promise<Claimed> {
    const reach = await this.reach(identifier);
    if ('here' in reach) return reach.here;
    throw new AppError(
      ErrorCode.SessionElsewhere,
      `the session of this identifier is held by node ${reach.node}; retry and the request is routed there`,
    );
  }

  /**
   * Where the identifier's session is, claiming one (placed by the store) when it has none. A claim
   * is recorded (`allocated`) when it reaches its request's handler.
   */
  async reach(identifier: string): Promise<Reach> {
    const fresh = this.fresh.get(identifier);
    if (fresh) {
      this.fresh.delete(identifier);
      return { here: this.reported(fresh) };
    }
    const reach = await this.claimOrJoin(identifier);
    return 'here' in reach && reach.here.allocation.created ? { here: this.reported(reach.here) } : reach;
  }

  /**
   * Where a request for the identifier goes, before its handler runs: the node holding its session,
   * or undefined for here. A new session is claimed now, since the store may place it on another
   * node's ready instance; a claim placed here waits for the handler's {@link acquire}, which reports
   * it as the request's own, and goes back to the warm set if the handler refuses the request
   * ({@link returnUnused}), so a bad request costs no session.
   */
  async route(identifier: string): Promise<string | undefined> {
    if (this.byIdentifier.has(identifier)) return undefined;
    const known = this.knownElsewhere(identifier);
    if (known !== undefined) return known;
    // This node may not have caught up with the pool yet (an image another node just pinned): a
    // session another node holds is still reached.
    if (this.deps.notRunnable() !== undefined) {
      const elsewhere = await this.locate(identifier);
      if (elsewhere !== undefined) return elsewhere;
    }
    const reach = await this.claimOrJoin(identifier);
    if ('node' in reach) return this.heldElsewhere(identifier, reach.node);
    if (reach.here.allocation.created) this.fresh.set(identifier, reach.here);
    return undefined;
  }

  /** The node last found holding the identifier's session, while that node is live. */
  private knownElsewhere(identifier: string): string | undefined {
    const node = this.elsewhere.get(identifier);
    if (node === undefined || this.deps.cluster.isLive(node)) return node;
    this.elsewhere.delete(identifier);
    return undefined;
  }

  /** Forgets where the identifier's session was found (a forward to that node failed). */
  forgetElsewhere(identifier: string): void {
    this.elsewhere.delete(identifier);
  }

  private heldElsewhere(identifier: string, node: string): string {
    this.elsewhere.delete(identifier);
    this.elsewhere.set(identifier, node);
    // The oldest entry goes first: a bound, not a cache policy worth more.
    if (this.elsewhere.size > ELSEWHERE_KEPT) this.elsewhere.delete(this.elsewhere.keys().next().value!);
    return node;
  }

  /**
   * Puts a claim no handler took (the request was refused before it reached the session) back in
   * the warm set: its row is ready again and nothing of it was recorded as a session.
   */
  async returnUnused(identifier: string): Promise<void> {
    const claimed = this.fresh.get(identifier);
    if (!claimed) return;
    this.fresh.delete(identifier);
    const { session } = claimed;
    if (session.busy > 0 || this.byIdentifier.get(identifier) !== session) return;
    this.byIdentifier.delete(identifier);
    // Its instance lives on as a ready one: the session's watcher records nothing more.
    session.ending = Promise.resolve();
    const row: SessionRow = {
      ...session.row,
      identifier: null,
      state: 'ready',
      allocatedAt: null,
      lastAccessedAt: null,
    };
    await this.deps.store.putSession(row);
    this.deps.warm.giveBack({ instance: session.instance, row });
  }

  /** The identifier's session here, being claimed, or claimed now; or the node that holds it. */
  private claimOrJoin(identifier: string): Promise<Reach> {
    const existing = this.byIdentifier.get(identifier);
    if (existing) {
      return Promise.resolve({
        here: {
          session: existing,
          allocation: { created: false, warm: true, durationMs: 0, previous: undefined },
        },
      });
    }
    const inFlight = this.claiming.get(identifier);
    if (inFlight)
      return inFlight.then((reach) => ('here' in reach ? { here: this.joined(reach.here) } : reach));
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    const claim = this.claim(identifier).finally(() => this.claiming.delete(identifier));
    this.claiming.set(identifier, claim);
    return claim;
  }

  /** Records a new session as its request takes it up. */
  private reported(claimed: Claimed): Claimed {
    const { session, allocation } = claimed;
    this.deps.recorder.allocated(session.row, {
      warm: allocation.warm,
      durationMs: allocation.durationMs,
      ...(allocation.warm && { readySince: session.row.createdAt }),
    });
    return claimed;
  }

  /** The node holding the identifier's live session, when another node does. */
  async locate(identifier: string): Promise<string | undefined> {
    if (this.byIdentifier.has(identifier) || this.claiming.has(identifier)) return undefined;
    const known = this.knownElsewhere(identifier);
    if (known !== undefined) return known;
    const node = (await this.deps.store.liveSession(this.deps.poolId(), identifier))?.node;
    return node === this.deps.cluster.self || node === null || node === undefined
      ? undefined
      : this.heldElsewhere(identifier, node);
  }

  /** A concurrent request that shared another's claim reached an existing session. */
  private joined(claimed: Claimed): Claimed {
    return { session: claimed.session, allocation: { ...claimed.allocation, created: false, durationMs: 0 } };
  }

  /** Why a new session cannot be claimed now, if it cannot. */
  private refusal(): AppError | undefined {
    if (this.closedWith) return this.closedWith;
    const notRunnable = this.deps.notRunnable();
    if (notRunnable) return notRunnable;
    if (this.claimed < this.deps.spec().maxConcurrentSessions) return undefined;
    return this.full();
  }

  private full(): AppError {
    const name = this.deps.poolName();
    const { maxConcurrentSessions } = this.deps.spec();
    this.deps.recorder.poolFull();
    return new AppError(
      ErrorCode.SessionPoolFull,
      `session pool ${name} has all ${maxConcurrentSessions} sessions allocated; end one (DELETE session) or raise maxConcurrentSessions`,
      { details: { maxConcurrentSessions } },
    );
  }

  private async claim(identifier: string): Promise<Reach> {
    const started = this.deps.now();
    const row = this.placed(await this.place(identifier));
    if (row.node !== this.deps.cluster.self && row.node !== null) return { node: row.node };
    // Read after the placement, which saw every end committed before it (a leader ending a lost
    // node's sessions just now among them), and beside the start.
    const previous = this.deps.store.lastEndedSession(this.deps.poolId(), identifier).catch(() => undefined);
    // The row is this node's: a ready instance (claimed here or by the node that routed the request
    // here), or one to start now.
    let instance = await this.deps.warm.take(row.id);
    const warm = instance !== undefined;
    if (!instance) {
      // Another node placed the session here before it heard this node is short of memory.
      if (this.deps.cluster.underMemoryPressure) {
        await this.deps.store.deleteSession(row.id).catch(() => undefined);
        throw this.noRoom();
      }
      try {
        instance = await this.deps.warm.launch(row.id);
      } catch (error) {
        // The placement reserved the identifier for a sandbox that never ran: it had no session.
        await this.deps.store.deleteSession(row.id).catch(() => undefined);
        throw error;
      }
    }
    const session = this.bind(identifier, instance, row);
    this.watch(session);
    this.deps.warm.refill();
    const durationMs = this.deps.now() - started;
    const before = await previous;
    return {
      here: {
        session,
        allocation: {
          created: true,
          warm,
          durationMs,
          previous: before && { reason: before.endReason ?? 'unknown', endedAt: before.endedAt ?? '' },
        },
      },
    };
  }

  /** Asks the store to place the identifier's session, in one transaction across the cluster. */
  private place(identifier: string): Promise<Placement> {
    const { cluster } = this.deps;
    const poolId = this.deps.poolId();
    return this.deps.store.placeSession({
      poolId,
      identifier,
      generation: this.deps.generation(),
      maxSessions: this.deps.spec().maxConcurrentSessions,
      nodes: cluster.readyOrder(),
      coldNode: cluster.coldNode(poolId),
      coldId: this.deps.newInstanceId(),
      at: new Date(this.deps.now()).toISOString(),
    });
  }

  /** The placed session's row, or why there is none. */
  private placed(placement: Placement): SessionRow {
    if (placement.kind === 'full') throw this.full();
    if (placement.kind === 'noNode') {
      if (this.deps.cluster.draining) {
        throw new AppError(
          ErrorCode.NodeDraining,
          `node ${this.deps.cluster.self} is draining and no other node can take a new session of pool ${this.deps.poolName()}`,
        );
      }
      throw this.noRoom();
    }
    return placement.row;
  }

  /** The refusal of a new session no node has room for: the client may retry once sessions end. */
  private noRoom(): AppError {
    const here = this.deps.cluster.fullBecause(this.deps.poolId());
    return new AppError(
      ErrorCode.NoNodeAvailable,
      `no node can take a new session of pool ${this.deps.poolName()}: every node is draining or full${here ? ` (this node: ${here})` : ''}`,
      { details: { retryAfterSeconds: NO_ROOM_RETRY_SECONDS } },
    );
  }

  /**
   * Runs `work` on a claimed session and keeps the session alive meanwhile: the cooldown restarts
   * when the work starts and when it ends. With `serialize`, work runs one at a time (executions).
   */
  async use<T>(session: Session, work: () => Promise<T>, options: { serialize: boolean }): Promise<T> {
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
      // An instance found dead while serving ends its session before the response leaves, so the
      // next request gets a fresh one.
      const state = session.instance.endState;
      if (state) await this.end(session, reasonFor(state), endDetails(state));
    }
  }

  /** Ends a session: its instance is retired and the end recorded with its reason. */
  end(session: Session, reason: EndReason, details: JsonObject | null = null): Promise<void> {
    if (session.ending) return session.ending;
    session.ended = reason;
    if (this.byIdentifier.get(session.identifier) === session) this.byIdentifier.delete(session.identifier);
    if (this.fresh.get(session.identifier)?.session === session) this.fresh.delete(session.identifier);
    session.ending = (async () => {
      await retire(session, reason, details, this.deps, session);
      this.deps.warm.refill();
    })();
    return session.ending;
  }

  /** Ends sessions whose time is up and stores when the others were last used. */
  async reap(): Promise<void> {
    const now = this.deps.now();
    const { lifecycle } = this.deps.spec();
    const work: Promise<void>[] = [];
    for (const session of this.byIdentifier.values()) {
      const reason = expiredReason(lifecycle, times(session), now);
      if (reason) {
        work.push(this.end(session, reason));
        continue;
      }
      const stored = Date.parse(session.row.lastAccessedAt ?? '');
      if (session.lastAccessedAt !== stored) {
        session.row = { ...session.row, lastAccessedAt: new Date(session.lastAccessedAt).toISOString() };
        work.push(this.deps.store.putSession(session.row));
      }
    }
    await Promise.all(work);
  }

  /** Refuses new claims with `refusal` from now on, and waits for those under way. */
  async stopClaiming(refusal: AppError): Promise<void> {
    this.closedWith ??= refusal;
    await Promise.allSettled([...this.claiming.values()]);
  }

  /** Ends every session of a deleted pool (after {@link stopClaiming}). */
  async endAll(): Promise<void> {
    await Promise.all([...this.byIdentifier.values()].map((session) => this.end(session, 'poolDeleted')));
  }

  /** Forgets the sessions whose instances are not in `live`, handing back their instances. */
  dropAbsent(live: Set<string>): Instance[] {
    const gone = [...this.byIdentifier.values()].filter((session) => !live.has(session.id));
    for (const session of gone) {
      // Its end is the cluster's record: the instance's death, when destroyed, records nothing more.
      session.ended = 'hostLost';
      session.ending = Promise.resolve();
      this.byIdentifier.delete(session.identifier);
      this.fresh.delete(session.identifier);
    }
    return gone.map((session) => session.instance);
  }

  /** Lets go of every session's instance without ending it: the next server takes them up. */
  release(): void {
    for (const session of this.byIdentifier.values()) session.instance.release();
  }

  instances(): Instance[] {
    return [...this.byIdentifier.values()].map((session) => session.instance);
  }

  private bind(identifier: string, instance: Instance, row: SessionRow): Session {
    const session: Session = {
      identifier,
      id: instance.id,
      instance,
      allocatedAt: Date.parse(row.allocatedAt ?? row.createdAt),
      lastAccessedAt: Date.parse(row.lastAccessedAt ?? row.allocatedAt ?? row.createdAt),
      busy: 0,
      executions: 0,
      ended: undefined,
      ending: undefined,
      queue: Promise.resolve(),
      row,
    };
    this.byIdentifier.set(identifier, session);
    return session;
  }

  private touch(session: Session): void {
    session.lastAccessedAt = Math.max(session.lastAccessedAt, this.deps.now());
  }

  private watch(session: Session): void {
    session.instance.onEnd((state) => {
      this.end(session, reasonFor(state), endDetails(state)).catch((error: unknown) =>
        this.deps.log.error({ err: error, pool: this.deps.poolName() }, 'session.end failed'),
      );
    });
  }
}
