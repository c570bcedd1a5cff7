/**
 * @module api/management/event-routes
 * A pool's lifecycle events (allocated, ready, ended with its reason, startFailed), a Sandpool
 * extension beside the ARM resource: `GET …/sessionPools/{name}/events` pages through the stored
 * ones, narrowed by type, identifier and time; with `Accept: text/event-stream` the same request
 * replays what the client missed (`Last-Event-ID`) and then streams new events as they happen.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { CredentialWatch } from '../../auth/credential-watch.js';
import { AppError, ErrorCode } from '../../errors.js';
import type { EventFeed } from '../../observability/event-feed.js';
import type { PoolService } from '../../pool/pool-service.js';
import type { EventQuery, EventRow, Store } from '../../store/store.js';
import { MANAGEMENT_VERSIONS, requireApiVersion } from '../api-version.js';
import { EVENT_TYPES, eventRoutes } from '../schemas/events.js';
import { nextLinkAfter, optionalInteger, optionalTime } from '../wire.js';
import { loadPool, type PoolParams } from './session-pools.js';

const PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;
const REPLAY_PAGE = 500;
/** A comment line this often keeps proxies from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;

type Query = Record<string, string | undefined>;
type Filters = Omit<EventQuery, 'afterSeq' | 'limit'>;

export function eventResource(event: EventRow) {
  return {
    id: String(event.seq),
    type: event.type,
    at: event.at,
    identifier: event.identifier,
    sessionId: event.sessionId,
    reason: event.reason,
    details: event.details,
  };
}

function filtersFrom(query: Query): Filters {
  const types = query.type
    ?.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const type of types ?? []) {
    if (!(EVENT_TYPES as readonly string[]).includes(type)) {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `type must be among ${EVENT_TYPES.join(', ')}; got "${type}"`,
        {
          target: 'type',
        },
      );
    }
  }
  const since = optionalTime(query.since, 'since');
  return {
    ...(types?.length && { types }),
    ...(query.identifier !== undefined && { identifier: query.identifier }),
    ...(since && { since }),
  };
}

const matches = (event: EventRow, filters: Filters) =>
  (!filters.types || filters.types.includes(event.type)) &&
  (filters.identifier === undefined || event.identifier === filters.identifier) &&
  (filters.since === undefined || event.at >= filters.since);

export function registerEventRoutes(
  app: FastifyInstance,
  deps: {
    pools: PoolService;
    store: Store;
    feed: EventFeed;
    credentials: CredentialWatch;
    publicUrl: () => string;
  },
): void {
  const streams = new Set<FastifyReply['raw']>();
  // Streams never end by themselves; a closing server ends them so it can close.
  app.addHook('preClose', (done) => {
    for (const raw of streams) raw.end();
    done();
  });

  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    id: string,
    after: number,
    filters: Filters,
  ) {
    const store = deps.store;
    let cursor = after;
    let replaying = true;
    const missed: EventRow[] = [];
    const raw = reply.raw;
    const send = (event: EventRow) => {
      if (event.seq <= cursor) return;
      cursor = event.seq;
      if (!matches(event, filters)) return;
      raw.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(eventResource(event))}\n\n`);
    };
    // Subscribe before replaying, so nothing that happens meanwhile falls between the two.
    const unsubscribe = deps.feed.subscribe(id, (event) => (replaying ? missed.push(event) : send(event)));
    reply.hijack();
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      // A stream's connection is never reused: when it ends, the socket closes with it.
      connection: 'close',
      'x-ms-request-id': request.id,
    });
    raw.write(': sandpool events\n\n');
    const heartbeat = setInterval(() => raw.write(': keepalive\n\n'), HEARTBEAT_MS);
    streams.add(raw);
    // A stream lives no longer than the credential that opened it; the client's reconnect then
    // needs a valid one.
    const unwatch = deps.credentials.watch(request.principal, (why) => {
      raw.end(`: the credential was ${why}\n\n`);
    });
    const close = () => {
      clearInterval(heartbeat);
      unsubscribe();
      unwatch();
      streams.delete(raw);
    };
    // The response closes when the client goes away or the server ends the stream.
    raw.once('close', close);
    try {
      for (;;) {
        const page = await store.listEvents(id, { ...filters, afterSeq: cursor, limit: REPLAY_PAGE });
        for (const event of page) send(event);
        if (page.length < REPLAY_PAGE) break;
      }
    } finally {
      replaying = false;
      for (const event of missed.splice(0)) send(event);
    }
  }

  app.get(
    '/subscriptions/:subscription/resourceGroups/:resourceGroup/providers/Microsoft.App/sessionPools/:name/events',
    eventRoutes.list,
    async (request, reply) => {
      const query = request.query as Query;
      const apiVersion = requireApiVersion(query['api-version'], MANAGEMENT_VERSIONS);
      const params = request.params as PoolParams;
      const { id } = await loadPool(deps.pools, params);
      const filters = filtersFrom(query);
      const lastEventId = request.headers['last-event-id'];
      const after =
        optionalInteger(
          typeof lastEventId === 'string' ? lastEventId : query.$skipToken,
          typeof lastEventId === 'string' ? 'Last-Event-ID' : '$skipToken',
          { min: 0, max: Number.MAX_SAFE_INTEGER },
        ) ?? 0;
      if (request.headers.accept?.includes('text/event-stream')) {
        await stream(request, reply, id, after, filters);
        return reply;
      }
      const top = optionalInteger(query.$top, '$top', { min: 1, max: MAX_PAGE_SIZE }) ?? PAGE_SIZE;
      const page = await deps.store.listEvents(id, { ...filters, afterSeq: after, limit: top });
      const nextLink = nextLinkAfter(
        `${deps.publicUrl()}${request.url.split('?')[0] ?? ''}`,
        { 'api-version': apiVersion, type: query.type, identifier: query.identifier, since: query.since },
        page,
        top,
      );
      return { value: page.map(eventResource), ...(nextLink && { nextLink }) };
    },
  );
}
