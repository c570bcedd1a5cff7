/**
 * @module api/e2b/sandbox-connections
 * The requests under way to each E2B sandbox on this node (command streams, code runs, watches, file
 * transfers): when the sandbox ends, by a kill, its timeout or its death, their connections are
 * reset rather than ended cleanly, since E2B's SDKs read a clean end of stream as success. A
 * connection is followed only while its request is answered: a kept-alive one that goes on to
 * another sandbox is not that sandbox's.
 */

import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

import type { EventFeed } from '../../observability/event-feed.js';

export class SandboxConnections {
  private readonly open = new Map<string, Set<Socket>>();
  private readonly followed = new Map<string, () => void>();

  constructor(private readonly feed: EventFeed) {}

  /** Resets `response`'s connection if the pool's session of `identifier` ends before it is answered. */
  track(poolId: string, identifier: string, response: ServerResponse): void {
    const socket = response.socket;
    if (!socket) return;
    const key = `${poolId}\n${identifier}`;
    let sockets = this.open.get(key);
    if (!sockets) {
      sockets = new Set();
      this.open.set(key, sockets);
    }
    sockets.add(socket);
    response.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0 && this.open.get(key) === sockets) this.open.delete(key);
    });
    if (!this.followed.has(poolId)) {
      this.followed.set(
        poolId,
        this.feed.subscribe(poolId, (event) => {
          if (event.type === 'ended' && event.identifier !== null) this.reset(poolId, event.identifier);
        }),
      );
    }
  }

  /** Resets every connection with a request under way to the session. */
  reset(poolId: string, identifier: string): void {
    const key = `${poolId}\n${identifier}`;
    for (const socket of this.open.get(key) ?? []) socket.resetAndDestroy();
    this.open.delete(key);
  }
}
