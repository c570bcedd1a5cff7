/**
 * @module observability/event-feed
 * Lifecycle events as they happen, for live readers (the events stream). Events are stored first;
 * the feed hands each stored event, with its sequence number, to the subscribers of its pool.
 */

import type { EventRow } from '../store/store.js';

export type EventListener = (event: EventRow) => void;

export class EventFeed {
  private readonly listeners = new Map<string, Set<EventListener>>();

  /** Calls `listener` with every event of the pool from now on; returns the way to stop. */
  subscribe(poolId: string, listener: EventListener): () => void {
    let set = this.listeners.get(poolId);
    if (!set) {
      set = new Set();
      this.listeners.set(poolId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(poolId);
    };
  }

  publish(event: EventRow): void {
    for (const listener of this.listeners.get(event.poolId) ?? []) listener(event);
  }
}
