/**
 * @module pool/policy
 * The pool's rules as pure functions of their inputs and the time: when a session expires, how many
 * ready sandboxes a pool keeps, how long to wait after failing starts. The pool manager only applies
 * them; tests table them.
 */

import type { JsonObject, SessionRow } from '../store/store.js';
import type { EndState } from './instance.js';
import { runnable, type EndReason, type Lifecycle, type PoolSpec } from './pool-spec.js';

export interface SessionTimes {
  /** Epoch milliseconds. */
  allocatedAt: number;
  /** Start or end of the latest request, whichever is later. */
  lastAccessedAt: number;
  /** A request is being served right now. */
  busy: boolean;
  /** When the session ends whatever its pool's lifecycle says (E2B's timeout), if it was given one. */
  deadline?: number | undefined;
}

/** When the session ends by itself, and why. */
export function sessionExpiry(
  lifecycle: Lifecycle,
  times: SessionTimes,
): { at: number; reason: Extract<EndReason, 'cooldown' | 'maxAlive'> } {
  // A session given a lifetime of its own lives exactly that long, idle or not.
  if (times.deadline !== undefined) return { at: times.deadline, reason: 'maxAlive' };
  switch (lifecycle.type) {
    case 'Timed':
      return { at: times.lastAccessedAt + lifecycle.cooldownSeconds * 1000, reason: 'cooldown' };
    case 'OnContainerExit':
      return { at: times.allocatedAt + lifecycle.maxAliveSeconds * 1000, reason: 'maxAlive' };
  }
}

/** When a session ends by itself, from the times its row holds (a session another node serves). */
export function storedExpiry(spec: PoolSpec, row: SessionRow): number {
  const allocatedAt = Date.parse(row.allocatedAt ?? row.createdAt);
  const lastAccessedAt = Date.parse(row.lastAccessedAt ?? row.allocatedAt ?? row.createdAt);
  const deadline = row.deadline === null ? undefined : Date.parse(row.deadline);
  return sessionExpiry(spec.lifecycle, { allocatedAt, lastAccessedAt, busy: false, deadline }).at;
}

/**
 * The reason to end the session now, if any. A request in progress keeps a `Timed` session alive
 * (the cooldown counts from its end); `maxAlive` is a hard limit.
 */
export function expiredReason(
  lifecycle: Lifecycle,
  times: SessionTimes,
  now: number,
): Extract<EndReason, 'cooldown' | 'maxAlive'> | undefined {
  const expiry = sessionExpiry(lifecycle, times);
  if (now < expiry.at) return undefined;
  if (expiry.reason === 'cooldown' && times.busy) return undefined;
  return expiry.reason;
}

/**
 * Ready sandboxes to keep: the configured number, never pushing the pool past its maximum; none
 * while the pool's image is not pulled.
 */
export function warmTarget(spec: PoolSpec, allocated: number): number {
  if (!runnable(spec)) return 0;
  return Math.max(0, Math.min(spec.readySessionInstances, spec.maxConcurrentSessions - allocated));
}

const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 60_000;

/** Delay before the next start after `failures` consecutive failed starts (0 means no delay). */
export function startBackoffMs(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1));
}

/** The session's end reason when its instance ended by itself. */
export function reasonFor(state: EndState): EndReason {
  if (state.status === 'unknown') return 'hostLost';
  if (state.status === 'unhealthy') return 'unhealthy';
  switch (state.cause) {
    case 'oom':
      return 'oom';
    case 'hostOom':
      return 'hostMemoryPressure';
    case 'crashed':
      return 'crashed';
    case 'killed':
      return 'killed';
    case 'exited':
      return 'containerExit';
    case 'destroyed':
      return 'hostLost';
  }
}

/** What the end's record says beyond its reason: the exit code and signal, or the failed probe. */
export function endDetails(state: EndState): JsonObject | null {
  if (state.status === 'unhealthy') return { message: state.message };
  return state.status === 'exited' ? { exitCode: state.exitCode, signal: state.signal } : null;
}
