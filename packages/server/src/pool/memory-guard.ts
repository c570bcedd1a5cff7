/**
 * @module pool/memory-guard
 * Keeps memory pressure among the sandboxes and decides who pays for it. Sessions reserve their
 * pool's memory size, and the node may reserve more than the sandboxes' hard limit (their parent
 * cgroup's) holds: an idle interpreter stays far below its size. When the sandboxes' working set
 * nears that limit anyway, the kernel's OOM killer would pick a victim by size, often an idle
 * session well inside its own limit. The guard acts first: the node admits no new session, and
 * sandboxes end by policy (see {@link pressureVictims}) with reason `hostMemoryPressure` until the
 * working set is back below the mark.
 */

import type { Logger } from 'pino';

import type { NodeMemory } from '../observability/metrics.js';
import type { SandboxesMemory } from '../sandbox/driver.js';

/** A sandbox the guard may end: a ready one, or a session's. */
export interface PressureCandidate {
  kind: 'ready' | 'session';
  /** The pool's metric label. */
  pool: string;
  instanceId: string;
  /** When a request last reached it (a ready sandbox: when it started). */
  lastUsedAt: number;
  /** A request is being served (an execution runs). */
  busy: boolean;
  /** The memory its cgroup holds now; undefined once it is gone. */
  memoryBytes: () => Promise<number | undefined>;
  /** Ends it with reason hostMemoryPressure. */
  end: () => Promise<void>;
}

export interface MemoryGuardDeps {
  /** What every sandbox on the host holds, and their common limit. */
  read: () => Promise<SandboxesMemory>;
  /** What this node's sandboxes reserve now. */
  committedBytes: () => number;
  allocatableBytes: number;
  /** The share of the limit the working set may reach (0.9: 90 %). */
  pressureRatio: number;
  candidates: () => PressureCandidate[];
  /** Called with each sandbox the guard ended. */
  ended?: (candidate: PressureCandidate) => void;
  log: Logger;
  intervalMs: number;
}

/**
 * Pressure lifts this far below the mark: ending sandboxes stops there, so one that grows back
 * slightly does not put the node straight back under pressure.
 */
const RELIEF_MARGIN = 0.05;

/**
 * Whom to end, in order, so that at least `excessBytes` are freed: ready sandboxes first (they
 * are nobody's yet), then sessions by how long they have been idle, longest first; a session in
 * the middle of a request only when every other choice is taken.
 */
export function pressureVictims<T extends Pick<PressureCandidate, 'kind' | 'lastUsedAt' | 'busy'>>(
  candidates: (T & { bytes: number })[],
  excessBytes: number,
): T[] {
  const rank = (c: T) => (c.kind === 'ready' ? 0 : c.busy ? 2 : 1);
  const ordered = [...candidates].sort((a, b) => rank(a) - rank(b) || a.lastUsedAt - b.lastUsedAt);
  const victims: T[] = [];
  let freed = 0;
  for (const candidate of ordered) {
    if (freed >= excessBytes) break;
    victims.push(candidate);
    freed += candidate.bytes;
  }
  return victims;
}

export class MemoryGuard {
  private timer: NodeJS.Timeout | undefined;
  private pressure = false;
  private last: SandboxesMemory = { limitBytes: null, workingSetBytes: 0 };
  /** The relief under way: one at a time, since the memory it frees shows only once it is done. */
  private relieving: Promise<void> | undefined;

  constructor(private readonly deps: MemoryGuardDeps) {}

  /** The node admits no new session: the sandboxes' working set is above the mark. */
  get underPressure(): boolean {
    return this.pressure;
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.deps.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.relieving;
  }

  /** The latest reading with what the node reserves and may reserve, for /metrics, /readyz and the node list. */
  status(): NodeMemory {
    return {
      committedBytes: this.deps.committedBytes(),
      allocatableBytes: this.deps.allocatableBytes,
      sandboxLimitBytes: this.last.limitBytes,
      workingSetBytes: this.last.workingSetBytes,
      pressureMarkBytes: this.mark(this.last.limitBytes),
      underPressure: this.pressure,
    };
  }

  /** Reads the sandboxes' memory and, above the mark, ends sandboxes by policy. */
  async check(): Promise<void> {
    if (this.relieving) return this.relieving;
    try {
      this.last = await this.deps.read();
    } catch (error) {
      this.deps.log.error({ err: error }, 'memory.read failed');
      return;
    }
    const { limitBytes, workingSetBytes } = this.last;
    const mark = this.mark(limitBytes);
    if (mark === null || limitBytes === null) {
      this.pressure = false;
      return;
    }
    const relievedAt = mark - RELIEF_MARGIN * limitBytes;
    if (workingSetBytes < relievedAt) {
      if (this.pressure) this.deps.log.info({ workingSetBytes, limitBytes }, 'memory.pressure ended');
      this.pressure = false;
      return;
    }
    if (workingSetBytes < mark && !this.pressure) return;
    if (!this.pressure) this.deps.log.warn({ workingSetBytes, limitBytes }, 'memory.pressure began');
    this.pressure = true;
    this.relieving = this.relieve(workingSetBytes - relievedAt).finally(() => {
      this.relieving = undefined;
    });
    return this.relieving;
  }

  /**
   * The working set at which the node is under pressure; null when the sandboxes have no limit,
   * or their sizes fit in it (no sandbox can then push another out).
   */
  private mark(limitBytes: number | null): number | null {
    if (limitBytes === null || this.deps.committedBytes() <= limitBytes) return null;
    return this.deps.pressureRatio * limitBytes;
  }

  private async relieve(excessBytes: number): Promise<void> {
    const candidates = await Promise.all(
      this.deps.candidates().map(async (candidate) => ({
        ...candidate,
        bytes: (await candidate.memoryBytes().catch(() => undefined)) ?? 0,
      })),
    );
    const victims = pressureVictims(candidates, excessBytes);
    this.deps.log.warn(
      { excessBytes, victims: victims.map((v) => ({ pool: v.pool, instance: v.instanceId, kind: v.kind })) },
      'memory.pressure relief',
    );
    await Promise.all(
      victims.map(async (victim) => {
        try {
          await victim.end();
          this.deps.ended?.(victim);
        } catch (error) {
          this.deps.log.error({ err: error, instance: victim.instanceId }, 'memory.pressure end failed');
        }
      }),
    );
  }
}
