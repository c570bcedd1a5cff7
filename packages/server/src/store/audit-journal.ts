/**
 * @module store/audit-journal
 * The audit trail's way into the store, which may not answer for a while (a database restarting or
 * failing over, a locked file). Every entry is first appended to a journal on the node's own disk, one
 * write before anything else, and then written to the store in batches, in the order recorded. While
 * the store refuses, entries wait in the journal and the writes are retried with backoff; a node
 * killed meanwhile sends them at its next start, before anything newer. The store keeps an entry once
 * per request id, so an entry sent again (its first write's answer lost, or the node killed before it
 * emptied its journal) lands once.
 *
 * The journal is bounded: at {@link MAX_WAITING} entries it is full, and the API refuses the requests
 * it would audit rather than serve them unrecorded. A write reaches the kernel before `record`
 * returns, so a killed process loses nothing; the file is flushed to disk every second, so a host
 * that loses power loses at most that second.
 */

import { closeSync, fdatasyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';

import type { NewAuditEntry, Store } from './store.js';

/** Entries waiting for the store, at most; past it, audited requests are refused. */
export const MAX_WAITING = 100_000;
/** Entries per write to the store. */
const BATCH = 500;
const RETRY_FIRST_MS = 250;
const RETRY_LAST_MS = 5_000;
const SYNC_EVERY_MS = 1_000;

export interface AuditBacklog {
  /** Entries recorded and not yet stored. */
  waiting: number;
  /** When the oldest of them was recorded; null with none waiting. */
  oldestAt: string | null;
  /** Why the store refused the latest write; null once one succeeds. */
  storeError: string | null;
  /** Whether the journal is full, so audited requests are refused. */
  full: boolean;
}

export interface AuditJournalEvents {
  /** The store refused a write that it had taken before (once per outage). */
  storeFailed: (error: unknown, waiting: number) => void;
  /** The store took the writes again, and the journal emptied. */
  caughtUp: (stored: number) => void;
}

export class AuditJournal {
  private readonly queue: NewAuditEntry[];
  private writer: Promise<void> | undefined;
  private failure: string | null = null;
  /** Entries stored since the current outage began (for the caught-up report). */
  private storedSinceFailure = 0;
  private dirty = false;
  private closed = false;
  private retry: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private readonly syncTimer: NodeJS.Timeout;

  private constructor(
    private readonly fd: number,
    waiting: NewAuditEntry[],
    private readonly store: Pick<Store, 'appendAudit'>,
    private readonly events: AuditJournalEvents,
    private readonly maxWaiting: number,
  ) {
    this.queue = waiting;
    this.syncTimer = setInterval(() => this.sync(), SYNC_EVERY_MS);
    this.syncTimer.unref();
  }

  /**
   * Opens the journal at `path` (0600, made if missing) and starts sending what an earlier process
   * left in it.
   */
  static open(
    path: string,
    store: Pick<Store, 'appendAudit'>,
    events: AuditJournalEvents,
    maxWaiting = MAX_WAITING,
  ): AuditJournal {
    const fd = openSync(path, 'a+', 0o600);
    const journal = new AuditJournal(fd, readEntries(path), store, events, maxWaiting);
    journal.kick();
    return journal;
  }

  /** Keeps the entry: on disk now, in the store as soon as it answers. */
  record(entry: NewAuditEntry): void {
    if (this.closed) throw new Error('the audit journal is closed');
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    this.dirty = true;
    this.queue.push(entry);
    this.kick();
  }

  get full(): boolean {
    return this.queue.length >= this.maxWaiting;
  }

  backlog(): AuditBacklog {
    return {
      waiting: this.queue.length,
      oldestAt: this.queue[0]?.at ?? null,
      storeError: this.failure,
      full: this.full,
    };
  }

  /** Resolves once every entry recorded so far is in the store (or the journal closed). */
  async drained(): Promise<void> {
    while (this.writer) await this.writer;
  }

  /**
   * Stops writing: what waits stays in the journal for the next start. Gives the store one more
   * chance first, for at most `graceMs`.
   */
  async close(graceMs = 2_000): Promise<void> {
    if (this.closed) return;
    this.retry?.wake();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.drained(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    // A write still under way touches nothing once it ends: what it stored is sent again next start.
    this.closed = true;
    this.retry?.wake();
    clearInterval(this.syncTimer);
    this.sync();
    closeSync(this.fd);
  }

  private kick(): void {
    if (this.writer || this.queue.length === 0 || this.closed) return;
    this.writer = this.write().finally(() => {
      this.writer = undefined;
      // Entries recorded while the last batch was on its way.
      this.kick();
    });
  }

  private async write(): Promise<void> {
    let retryMs = RETRY_FIRST_MS;
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue.slice(0, BATCH);
      try {
        await this.store.appendAudit(batch);
      } catch (error) {
        if (this.failure === null) {
          this.storedSinceFailure = 0;
          this.events.storeFailed(error, this.queue.length);
        }
        this.failure = error instanceof Error ? error.message : String(error);
        await this.pause(retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_LAST_MS);
        continue;
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may run while the write awaits
      if (this.closed) return;
      retryMs = RETRY_FIRST_MS;
      this.queue.splice(0, batch.length);
      if (this.failure !== null) this.storedSinceFailure += batch.length;
      if (this.queue.length === 0) this.emptied();
    }
  }

  /** Every entry is stored: the journal starts over. */
  private emptied(): void {
    ftruncateSync(this.fd);
    this.dirty = false;
    if (this.failure !== null) {
      this.failure = null;
      this.events.caughtUp(this.storedSinceFailure);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.retry = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.retry = { timer, wake };
    });
  }

  private sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    fdatasyncSync(this.fd);
  }
}

/**
 * The entries a journal holds, in order. A last line cut short (the host lost power mid-write) is
 * passed over; so is any line that is not an entry, which this process did not write.
 */
function readEntries(path: string): NewAuditEntry[] {
  const entries: NewAuditEntry[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue;
    try {
      const entry = JSON.parse(line) as NewAuditEntry;
      if (typeof entry.requestId === 'string' && typeof entry.action === 'string') entries.push(entry);
    } catch {
      continue;
    }
  }
  return entries;
}
