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
import type { SessionAttributes } from './session-attributes.js';
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

/**
 * Where a request for an identifier is served: here, with its session (claimed now or before); on
 * another node, with the placement when the store placed a new session there just now; or here
 * without one (a request that creates none, for an identifier with none).
 */
export type Reach = { here: Claimed } | { node: string; placed?: SessionRow } | { absent: true };

/** A claim's outcome: the session here, or the node the store placed it on. */
type Claim = { here: Claimed } | { node: string; placed: SessionRow };

/** How a request that found its session live reached it. */
const EXISTING: Allocation = { created: false, warm: true, durationMs: 0, previous: undefined };

function elsewhere(node: string): AppError {
  return new AppError(
    ErrorCode.SessionElsewhere,
    `the session of this identifier is held by node ${node}; retry and the request is routed there`,
  );
}

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
  deadline: session.row.deadline === null ? undefined : Date.parse(session.row.deadline),
});

export class Sessions {
  private readonly byIdentifier = new Map<string, Session>();
  private readonly claiming = new Map<string, Promise<Claim>>();
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

  /** Claims under way. */
  get claimsWaiting(): number {
    return this.claiming.size;
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
   * The identifier's session here, allocated on first use; concurrent first requests share one. A
   * session another node holds (or one the store places on another node's sandbox) is refused with
   * `SessionElsewhere`: callers that cannot forward (MCP tools) serve only what this node holds.
   */
  async acquire(identifier: string): Promise<Claimed> {
    const reach = await this.reach(identifier, { create: true, stay: true });
    // With `create` and `stay`, a session is here or the reach threw; the type does not know.
    if (!('here' in reach)) throw elsewhere('node' in reach ? reach.node : 'unknown');
    return reach.here;
  }

  /**
   * Where a request for the identifier is served. With `create`, an identifier without a session
   * gets one, placed by the store here or on another node's ready sandbox (`placed`, which that node
   * takes up without placing it again). A request another node forwarded here (`stay`) is served
   * here: a session found elsewhere meanwhile is `SessionElsewhere`, and the client's retry lands.
   */
  async reach(
    identifier: string,
    options: { create: boolean; placed?: SessionRow | undefined; stay?: boolean },
  ): Promise<Reach> {
    const existing = this.byIdentifier.get(identifier);
    if (existing) return { here: { session: existing, allocation: EXISTING } };
    const stay = options.stay ?? false;
    if (!options.create) {
      if (stay || this.claiming.has(identifier)) return { absent: true };
      const node = await this.locate(identifier);
      return node === undefined ? { absent: true } : { node };
    }
    if (!stay && options.placed === undefined) {
      const known = this.knownElsewhere(identifier);
      if (known !== undefined) return { node: known };
      // This node may not have caught up with the pool yet (an image another node just pinned): a
      // session another node holds is still reached.
      if (this.deps.notRunnable() !== undefined) {
        const holder = await this.locate(identifier);
        if (holder !== undefined) return { node: holder };
      }
    }
    const reach = await this.claimOrJoin(identifier, options.placed);
    if ('here' in reach) return reach;
    if (stay) throw elsewhere(reach.node);
    this.heldElsewhere(identifier, reach.node);
    return reach;
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

  /** The identifier's session here, being claimed, or claimed now; or the node that holds it. */
  private claimOrJoin(identifier: string, placed: SessionRow | undefined): Promise<Claim> {
    const existing = this.byIdentifier.get(identifier);
    if (existing) return Promise.resolve({ here: { session: existing, allocation: EXISTING } });
    const inFlight = this.claiming.get(identifier);
    if (inFlight)
      return inFlight.then((reach) => ('here' in reach ? { here: this.joined(reach.here) } : reach));
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    const claim = this.claim(identifier, placed).finally(() => {
      this.claiming.delete(identifier);
      // The last claim of a burst lets the refills it held back start.
      if (this.claiming.size === 0) this.deps.warm.refill();
    });
    this.claiming.set(identifier, claim);
    return claim;
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

  private async claim(identifier: string, placement: SessionRow | undefined): Promise<Claim> {
    const started = this.deps.now();
    const row = placement ?? this.placed(await this.place(identifier));
    if (row.node !== this.deps.cluster.self && row.node !== null) return { node: row.node, placed: row };
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
    this.deps.recorder.allocated(row, {
      warm,
      durationMs,
      ...(warm && { readySince: row.createdAt }),
    });
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
    session.ending = (async () => {
      await retire(session, reason, details, this.deps, session);
      this.deps.warm.refill();
    })();
    return session.ending;
  }

  /**
   * Gives a session its own lifetime (`deadline`, epoch ms) and what a front door keeps with it, and
   * stores both: the reaper ends it then, and every node reads them from its row.
   */
  async annotate(
    session: Session,
    changes: { deadline?: number; attributes?: SessionAttributes },
  ): Promise<void> {
    session.row = {
      ...session.row,
      ...(changes.deadline !== undefined && { deadline: new Date(changes.deadline).toISOString() }),
      ...(changes.attributes !== undefined && { attributes: changes.attributes as unknown as JsonObject }),
    };
    await this.deps.store.putSession(session.row);
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
