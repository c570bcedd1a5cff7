/**
 * @module pool-events
 * A pool's events for the detail page: the last hour's, the last day's ends (for the idle-time
 * distribution), then every new one live over the server's event stream.
 */

import type { PoolEvent } from '@sandpool/sdk';
import { useEffect, useRef, useState } from 'preact/hooks';

import type { SignedIn } from './auth.js';

const HOUR_MS = 3_600_000;
const RECENT_KEPT = 200;

export interface PoolEvents {
  /** Newest first. */
  recent: PoolEvent[];
  /** Sessions ended in the last day, oldest first. */
  ended: PoolEvent[];
  live: boolean;
  error: Error | undefined;
}

export function usePoolEvents(
  auth: SignedIn,
  resourceGroup: string,
  name: string,
  onEvent: (event: PoolEvent) => void,
): PoolEvents {
  const [state, setState] = useState<PoolEvents>({ recent: [], ended: [], live: false, error: undefined });
  const onEventRef = useRef(onEvent);
  onEventRef.current = onEvent;

  useEffect(() => {
    const pools = auth.client(resourceGroup).pools;
    const abort = new AbortController();
    const since = (ms: number) => new Date(Date.now() - ms).toISOString();
    const follow = async () => {
      const [recent, ended] = await Promise.all([
        pools.events(name, { since: since(HOUR_MS) }),
        pools.events(name, { types: ['ended'], since: since(24 * HOUR_MS) }),
      ]);
      const lastId = [...recent, ...ended].reduce((max, e) => Math.max(max, Number(e.id)), 0);
      setState({ recent: recent.reverse().slice(0, RECENT_KEPT), ended, live: true, error: undefined });
      for await (const event of pools.watchEvents(name, { after: String(lastId), signal: abort.signal })) {
        setState((s) => ({
          ...s,
          recent: [event, ...s.recent].slice(0, RECENT_KEPT),
          ended: event.type === 'ended' ? [...s.ended, event] : s.ended,
        }));
        onEventRef.current(event);
      }
    };
    follow().catch((cause: unknown) => {
      if (abort.signal.aborted) return;
      setState((s) => ({
        ...s,
        live: false,
        error: cause instanceof Error ? cause : new Error(String(cause)),
      }));
    });
    return () => abort.abort();
  }, [auth, resourceGroup, name]);

  return state;
}
