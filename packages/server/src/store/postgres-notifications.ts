/**
 * @module store/postgres-notifications
 * PostgreSQL's LISTEN/NOTIFY, for the one change every node must hear of at once: a pool written
 * by another node. A connection of its own listens (notifications arrive only on the connection
 * that listens) and comes back by itself after the database does; a notification missed meanwhile
 * is caught up by the nodes' periodic look at the store.
 */

import pg from 'pg';

/** The channel pool changes are announced on. */
export const POOLS_CHANNEL = 'sandpool_pools';
const RECONNECT_MS = 1_000;

export class PoolChangeListener {
  private client: pg.Client | undefined;
  private readonly listeners = new Set<() => void>();
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly url: string) {}

  /** Calls `listener` on every pool change announced; returns what stops it. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    if (!this.client && !this.retry) void this.connect();
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    this.retry = undefined;
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.url });
    const again = () => {
      if (this.client === client) this.client = undefined;
      client.removeAllListeners();
      void client.end().catch(() => undefined);
      if (!this.closed && !this.retry) this.retry = setTimeout(() => void this.connect(), RECONNECT_MS);
    };
    client.on('error', again);
    client.on('end', again);
    client.on('notification', () => {
      for (const listener of this.listeners) listener();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${POOLS_CHANNEL}`);
      this.client = client;
      // Whatever changed while nobody listened is news too.
      for (const listener of this.listeners) listener();
    } catch {
      again();
    }
  }
}
