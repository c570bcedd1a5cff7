/**
 * @module pool/session-samples
 * What a session's sandbox used, sampled every few seconds while it lives on this node: CPU (as a
 * share of its cores since the sample before), memory and its `/mnt/data`'s fill. E2B's metrics read
 * them; the first sample is taken when watching starts, so a sandbox has one at once.
 */

import { statfs } from 'node:fs/promises';

import type { Session } from './sessions.js';

const EVERY_MS = 5_000;
/** An hour's worth per session. */
const KEPT = 720;

export interface SessionSample {
  /** Epoch ms. */
  at: number;
  cpuUsedPct: number;
  memoryBytes: number;
  dataBytes: number;
}

interface Watched {
  session: Session;
  samples: SessionSample[];
  lastCpuSeconds: number | undefined;
  lastAt: number;
}

export class SessionSamples {
  private readonly watched = new Map<string, Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly now: () => number) {}

  /** Samples the session from now until it ends. */
  watch(session: Session): void {
    if (this.watched.has(session.id)) return;
    this.watched.set(session.id, { session, samples: [], lastCpuSeconds: undefined, lastAt: this.now() });
    void this.sample(session.id);
    if (!this.timer) {
      this.timer = setInterval(() => {
        for (const id of this.watched.keys()) void this.sample(id);
      }, EVERY_MS);
      this.timer.unref();
    }
  }

  /** The session's samples taken within [start, end] (epoch ms; open where not given). */
  of(session: Session, start?: number, end?: number): SessionSample[] {
    const samples = this.watched.get(session.id)?.samples ?? [];
    return samples.filter(
      (sample) => (start ?? 0) <= sample.at && sample.at <= (end ?? Number.POSITIVE_INFINITY),
    );
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }

  private async sample(id: string): Promise<void> {
    const watched = this.watched.get(id);
    if (!watched) return;
    const { session } = watched;
    if (session.ended) {
      this.watched.delete(id);
      if (this.watched.size === 0) this.stop();
      return;
    }
    const [usage, fill] = await Promise.all([
      session.instance.usage().catch(() => undefined),
      statfs(session.instance.dataDir).catch(() => undefined),
    ]);
    if (!usage) return;
    const at = this.now();
    const seconds = (at - watched.lastAt) / 1000;
    const cpuUsedPct =
      watched.lastCpuSeconds === undefined || seconds <= 0
        ? 0
        : Math.max(0, ((usage.cpuSeconds - watched.lastCpuSeconds) / seconds) * 100);
    watched.lastCpuSeconds = usage.cpuSeconds;
    watched.lastAt = at;
    watched.samples.push({
      at,
      cpuUsedPct: Math.round(cpuUsedPct * 100) / 100,
      memoryBytes: usage.memoryBytes,
      dataBytes: fill ? (fill.blocks - fill.bfree) * fill.bsize : 0,
    });
    if (watched.samples.length > KEPT) watched.samples.shift();
  }
}
