/**
 * @module pool/sessions
 * A pool's sessions: the identifier → session map, claims (single-flight per identifier, bounded by
 * `maxConcurrentSessions`, served from the warm set or started on demand), work on a session
 * (executions one at a time), and ends with their reasons, by request, by expiry or by death.
 */

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { JsonObject, SessionRow, Store } from '../store/store.js';
import type { HeldInstance, Instance } from './instance.js';
import { endDetails, expiredReason, reasonFor, sessionExpiry, type SessionTimes } from './policy.js';
import type { EndReason, PoolSpec } from './pool-spec.js';
import type { PoolRecorder } from './pool-recorder.js';
import { retire } from './retire.js';
import type { WarmPool } from './warm-pool.js';

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

export interface SessionsDeps {
  store: Store;
  recorder: PoolRecorder;
  warm: WarmPool;
  log: Logger;
  now: () => number;
  newInstanceId: () => string;
  poolName: () => string;
  poolId: () => string;
  spec: () => PoolSpec;
  /** Why the pool cannot start an instance now (an image pull under way or failed), if it cannot. */
  notRunnable: () => AppError | undefined;
}

const times = (session: Session): SessionTimes => ({
  allocatedAt: session.allocatedAt,
  lastAccessedAt: session.lastAccessedAt,
  busy: session.busy > 0,
});

export class Sessions {
  private readonly byIdentifier = new Map<string, Session>();
  private readonly claiming = new Map<string, Promise<Claimed>>();
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

  /** The identifier's session, allocated on first use; concurrent first requests share one. */
  acquire(identifier: string): Promise<Claimed> {
    const existing = this.byIdentifier.get(identifier);
    if (existing) {
      return Promise.resolve({
        session: existing,
        allocation: { created: false, warm: true, durationMs: 0, previous: undefined },
      });
    }
    const inFlight = this.claiming.get(identifier);
    if (inFlight) return inFlight;
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    const claim = this.claim(identifier).finally(() => this.claiming.delete(identifier));
    this.claiming.set(identifier, claim);
    return claim;
  }

  /** Why a new session cannot be claimed now, if it cannot. */
  private refusal(): AppError | undefined {
    if (this.closedWith) return this.closedWith;
    const name = this.deps.poolName();
    const notRunnable = this.deps.notRunnable();
    if (notRunnable) return notRunnable;
    const { maxConcurrentSessions } = this.deps.spec();
    if (this.claimed < maxConcurrentSessions) return undefined;
    this.deps.recorder.poolFull();
    return new AppError(
      ErrorCode.SessionPoolFull,
      `session pool ${name} has all ${maxConcurrentSessions} sessions allocated; end one (DELETE session) or raise maxConcurrentSessions`,
      { details: { maxConcurrentSessions } },
    );
  }

  private async claim(identifier: string): Promise<Claimed> {
    const started = this.deps.now();
    const previous = this.deps.store.lastEndedSession(this.deps.poolId(), identifier).catch(() => undefined);
    let taken = this.deps.warm.take();
    const warm = taken !== undefined;
    if (!taken) {
      const id = this.deps.newInstanceId();
      taken = { instance: await this.deps.warm.launch(id), row: this.deps.warm.newRow(id) };
    }
    const now = new Date(this.deps.now()).toISOString();
    const row: SessionRow = {
      ...taken.row,
      identifier,
      state: 'allocated',
      allocatedAt: now,
      lastAccessedAt: now,
    };
    const session = this.bind(identifier, taken.instance, row);
    try {
      await this.deps.store.putSession(row);
    } catch (error) {
      // The store still holds what it held: a warm instance goes back to the ready set it is recorded
      // in; a cold one, never recorded, goes.
      this.byIdentifier.delete(identifier);
      if (warm) this.deps.warm.giveBack(taken);
      else await taken.instance.destroy().catch(() => undefined);
      throw error;
    }
    this.watch(session);
    this.deps.warm.refill();
    const durationMs = this.deps.now() - started;
    this.deps.recorder.allocated(row, { warm, durationMs, ...(warm && { readySince: taken.row.createdAt }) });
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
